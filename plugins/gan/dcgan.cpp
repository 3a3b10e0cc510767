#include "dcgan.hpp"

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

// y = conv_transpose(x, W) computed as the input gradient of the ordinary
// convolution y -> x with the same weight; its backward is that convolution
// (for x) and the convolution's weight gradient with y's gradient as input.
struct ConvTransposeByGradient : torch::autograd::Function<ConvTransposeByGradient> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& w,
                               int64_t stride, int64_t padding) {
    const int64_t k_h = w.size(2), k_w = w.size(3);
    const std::vector<int64_t> shape = {x.size(0), w.size(1), (x.size(2) - 1) * stride - 2 * padding + k_h,
                                        (x.size(3) - 1) * stride - 2 * padding + k_w};
    ctx->saved_data["stride"] = stride;
    ctx->saved_data["padding"] = padding;
    ctx->save_for_backward({x, w});
    // Only the sizes of the "input" argument are read.
    const torch::Tensor like = at::empty(shape, x.options());
    return std::get<0>(at::convolution_backward(x, like, w, at::OptionalIntArrayRef{}, {stride, stride},
                                                {padding, padding}, {1, 1}, false, {0, 0}, 1, {true, false, false}));
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor &x = saved[0], &w = saved[1];
    const int64_t stride = ctx->saved_data["stride"].toInt(), padding = ctx->saved_data["padding"].toInt();
    const torch::Tensor grad = grads[0].contiguous();
    torch::Tensor grad_x, grad_w;
    if (ctx->needs_input_grad(0)) grad_x = at::conv2d(grad, w, {}, {stride, stride}, {padding, padding});
    if (ctx->needs_input_grad(1))
      grad_w =
          std::get<1>(at::convolution_backward(x, grad, w, at::OptionalIntArrayRef{}, {stride, stride},
                                               {padding, padding}, {1, 1}, false, {0, 0}, 1, {false, true, false}));
    return {grad_x, grad_w, torch::Tensor(), torch::Tensor()};
  }
};

void check_size(int64_t size) {
  if (size != 28 && size != 32 && size != 64)
    throw Error("DCGAN image size must be 28, 32 or 64, not " + std::to_string(size));
}
}  // namespace

GeneratorNetImpl::GeneratorNetImpl(const DcganOptions& o) : options(o) {
  check_size(o.image_size);
  const int64_t w = o.width, in = o.latent + o.classes;
  nn::Sequential s;
  // Each transposed convolution, with its stride and padding kept for forward().
  auto add_up = [&](int64_t from, int64_t to, int64_t kernel, int64_t stride, int64_t padding) {
    up_geometry.resize(s->size() + 1, {0, 0});
    up_geometry.back() = {stride, padding};
    s->push_back(up(from, to, kernel, stride, padding));
  };
  if (o.image_size == 28) {
    add_up(in, 4 * w, 4, 1, 0), s->push_back(nn::BatchNorm2d(4 * w)), s->push_back(nn::ReLU());
    add_up(4 * w, 2 * w, 3, 2, 1), s->push_back(nn::BatchNorm2d(2 * w)), s->push_back(nn::ReLU());
  } else {
    const int64_t top = o.image_size == 64 ? 8 * w : 4 * w;
    add_up(in, top, 4, 1, 0), s->push_back(nn::BatchNorm2d(top)), s->push_back(nn::ReLU());
    if (o.image_size == 64)
      add_up(8 * w, 4 * w, 4, 2, 1), s->push_back(nn::BatchNorm2d(4 * w)), s->push_back(nn::ReLU());
    add_up(4 * w, 2 * w, 4, 2, 1), s->push_back(nn::BatchNorm2d(2 * w)), s->push_back(nn::ReLU());
  }
  add_up(2 * w, w, 4, 2, 1), s->push_back(nn::BatchNorm2d(w)), s->push_back(nn::ReLU());
  add_up(w, o.channels, 4, 2, 1), s->push_back(nn::Tanh());
  up_geometry.resize(s->size(), {0, 0});
  net = register_module("net", s);
}

torch::Tensor conv_transpose(const torch::Tensor& x, const torch::Tensor& w, int64_t stride, int64_t padding) {
  const bool cpu_float = x.device().is_cpu() && x.scalar_type() == torch::kFloat && w.scalar_type() == torch::kFloat;
  if (!cpu_float) return at::conv_transpose2d(x, w, {}, {stride, stride}, {padding, padding});
  if (x.size(2) == 1 && x.size(3) == 1 && stride == 1 && padding == 0)
    return torch::mm(x.flatten(1), w.flatten(1)).view({x.size(0), w.size(1), w.size(2), w.size(3)});
  if (!at::globalContext().userEnabledMkldnn() || !at::hasMKLDNN())
    return at::conv_transpose2d(x, w, {}, {stride, stride}, {padding, padding});
  return ConvTransposeByGradient::apply(x.contiguous(), w, stride, padding);
}

torch::Tensor GeneratorNetImpl::forward(const torch::Tensor& z, const torch::Tensor& labels) {
  torch::Tensor input = options.classes > 0 ? torch::cat({z, label_planes(labels, options.classes)}, 1) : z;
  torch::Tensor x = input.view({input.size(0), input.size(1), 1, 1});
  // The layers in order, the transposed convolutions through conv_transpose.
  std::size_t i = 0;
  for (auto& layer : *net) {
    if (const auto* conv = layer.ptr()->as<nn::ConvTranspose2dImpl>())
      x = conv_transpose(x, conv->weight, up_geometry[i][0], up_geometry[i][1]);
    else
      x = layer.forward(x);
    ++i;
  }
  return x;
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

}  // namespace cozy::gan
