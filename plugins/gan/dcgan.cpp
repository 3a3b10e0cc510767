#include "dcgan.hpp"

#include "layers.hpp"

#include <cozy/error.hpp>

namespace cozy::gan {

namespace nn = torch::nn;

namespace {
nn::ConvTranspose2d up(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t padding) {
  return nn::ConvTranspose2d(nn::ConvTranspose2dOptions(in, out, kernel).stride(stride).padding(padding).bias(false));
}
nn::Conv2d down(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t padding) {
  return nn::Conv2d(nn::Conv2dOptions(in, out, kernel).stride(stride).padding(padding).bias(false));
}
nn::LeakyReLU leaky() { return nn::LeakyReLU(nn::LeakyReLUOptions().negative_slope(0.2)); }

// Class indices [N] as one-hot rows, or class weights [N, K] as they are.
torch::Tensor label_planes(const torch::Tensor& labels, int64_t classes) {
  if (labels.is_floating_point() && labels.dim() == 2) return labels.to(torch::kFloat);
  return torch::one_hot(labels.to(torch::kLong), classes).to(torch::kFloat);
}

void check_size(int64_t size) {
  if (size != 28 && size != 32 && size != 64)
    throw Error("DCGAN image size must be 28, 32 or 64, not " + std::to_string(size));
}
}  // namespace

GeneratorNetImpl::GeneratorNetImpl(const DcganOptions& o) : options(o) {
  check_size(o.image_size);
  const int64_t w = o.width, in = o.latent + o.classes;
  nn::Sequential s;
  if (o.image_size == 28) {
    s->push_back(up(in, 4 * w, 4, 1, 0)), s->push_back(nn::BatchNorm2d(4 * w)), s->push_back(nn::ReLU());
    s->push_back(up(4 * w, 2 * w, 3, 2, 1)), s->push_back(nn::BatchNorm2d(2 * w)), s->push_back(nn::ReLU());
  } else {
    const int64_t top = o.image_size == 64 ? 8 * w : 4 * w;
    s->push_back(up(in, top, 4, 1, 0)), s->push_back(nn::BatchNorm2d(top)), s->push_back(nn::ReLU());
    if (o.image_size == 64)
      s->push_back(up(8 * w, 4 * w, 4, 2, 1)), s->push_back(nn::BatchNorm2d(4 * w)), s->push_back(nn::ReLU());
    s->push_back(up(4 * w, 2 * w, 4, 2, 1)), s->push_back(nn::BatchNorm2d(2 * w)), s->push_back(nn::ReLU());
  }
  s->push_back(up(2 * w, w, 4, 2, 1)), s->push_back(nn::BatchNorm2d(w)), s->push_back(nn::ReLU());
  s->push_back(up(w, o.channels, 4, 2, 1)), s->push_back(nn::Tanh());
  net = register_module("net", s);
}

torch::Tensor GeneratorNetImpl::forward(const torch::Tensor& z, const torch::Tensor& labels) {
  torch::Tensor input = options.classes > 0 ? torch::cat({z, label_planes(labels, options.classes)}, 1) : z;
  // The transposed convolutions through cozy::layers (oneDNN on the CPU).
  return layers::forward(*net, input.view({input.size(0), input.size(1), 1, 1}));
}

DiscriminatorNetImpl::DiscriminatorNetImpl(const DcganOptions& o) : options(o) {
  check_size(o.image_size);
  const int64_t w = o.width;
  nn::Sequential s;
  s->push_back(down(o.channels + o.classes, w, 4, 2, 1)), s->push_back(leaky());
  s->push_back(down(w, 2 * w, 4, 2, 1)), s->push_back(nn::BatchNorm2d(2 * w)), s->push_back(leaky());
  s->push_back(down(2 * w, 4 * w, 4, 2, 1)), s->push_back(nn::BatchNorm2d(4 * w)), s->push_back(leaky());
  if (o.image_size == 28) {
    s->push_back(down(4 * w, 1, 3, 1, 0));
  } else if (o.image_size == 32) {
    s->push_back(down(4 * w, 1, 4, 1, 0));
  } else {
    s->push_back(down(4 * w, 8 * w, 4, 2, 1)), s->push_back(nn::BatchNorm2d(8 * w)), s->push_back(leaky());
    s->push_back(down(8 * w, 1, 4, 1, 0));
  }
  net = register_module("net", s);
}

torch::Tensor DiscriminatorNetImpl::forward(const torch::Tensor& images, const torch::Tensor& labels) {
  torch::Tensor input = images;
  if (options.classes > 0) {
    torch::Tensor planes = label_planes(labels, options.classes).view({images.size(0), options.classes, 1, 1});
    input = torch::cat({images, planes.expand({-1, -1, images.size(2), images.size(3)})}, 1);
  }
  return net->forward(input).view({-1});
}

void init_weights(nn::Module& module, at::Generator& generator) {
  torch::NoGradGuard no_grad;
  for (auto& m : module.modules(/*include_self=*/false)) {
    const std::string name = m->name();
    if (name.find("Conv") != std::string::npos) {
      for (auto& p : m->named_parameters(false))
        if (p.key() == "weight") p.value().normal_(0.0, 0.02, generator);
    } else if (name.find("BatchNorm") != std::string::npos) {
      for (auto& p : m->named_parameters(false)) {
        if (p.key() == "weight") p.value().normal_(1.0, 0.02, generator);
        if (p.key() == "bias") p.value().zero_();
      }
    }
  }
}

void ema_update(nn::Module& average, const nn::Module& model, double decay, std::int64_t step) {
  torch::NoGradGuard no_grad;
  const double d = std::min(decay, double(1 + step) / double(10 + step));
  auto to = average.parameters();
  auto from = model.parameters();
  for (std::size_t i = 0; i < to.size(); ++i) to[i].mul_(d).add_(from[i], 1 - d);
  auto to_buffers = average.buffers();
  auto from_buffers = model.buffers();
  for (std::size_t i = 0; i < to_buffers.size(); ++i) to_buffers[i].copy_(from_buffers[i]);
}

torch::Tensor discriminator_loss(const std::string& loss, const torch::Tensor& d_real, const torch::Tensor& d_fake,
                                 float real_target) {
  if (loss == "hinge") return torch::relu(1 - d_real).mean() + torch::relu(1 + d_fake).mean();
  return torch::binary_cross_entropy_with_logits(d_real, torch::full_like(d_real, real_target)) +
         torch::binary_cross_entropy_with_logits(d_fake, torch::zeros_like(d_fake));
}

torch::Tensor generator_loss(const std::string& loss, const torch::Tensor& d_on_fake) {
  if (loss == "hinge") return -d_on_fake.mean();
  return torch::binary_cross_entropy_with_logits(d_on_fake, torch::ones_like(d_on_fake));
}

}  // namespace cozy::gan
