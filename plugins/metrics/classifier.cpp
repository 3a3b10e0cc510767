#include "classifier.hpp"

#include <cozy/error.hpp>

namespace cozy::metrics {

namespace nn = torch::nn;
namespace fs = std::filesystem;

ClassifierNetImpl::ClassifierNetImpl(const ClassifierOptions& o) : options(o) {
  if (o.image_size % 4 != 0) throw Error("the classifier needs an image size divisible by 4");
  const int64_t w = o.width, side = o.image_size / 4;
  body = register_module(
      "body", nn::Sequential(nn::Conv2d(nn::Conv2dOptions(o.channels, w, 3).padding(1)), nn::BatchNorm2d(w),
                             nn::ReLU(), nn::MaxPool2d(2), nn::Conv2d(nn::Conv2dOptions(w, 2 * w, 3).padding(1)),
                             nn::BatchNorm2d(2 * w), nn::ReLU(), nn::MaxPool2d(2), nn::Flatten(),
                             nn::Linear(2 * w * side * side, o.features), nn::ReLU()));
  dropout = register_module("dropout", nn::Dropout(0.3));
  head = register_module("head", nn::Linear(o.features, o.classes));
}

torch::Tensor ClassifierNetImpl::features(const torch::Tensor& images) { return body->forward(images * 2 - 1); }

torch::Tensor ClassifierNetImpl::forward(const torch::Tensor& images) {
  return head->forward(dropout->forward(features(images)));
}

CnnClassifier::CnnClassifier(ClassifierNet net, std::vector<std::string> classes, nlohmann::json metadata)
    : net_(std::move(net)), classes_(std::move(classes)), metadata_(std::move(metadata)) {
  net_->eval();
}

std::vector<int64_t> CnnClassifier::image_shape() const {
  return {net_->options.channels, net_->options.image_size, net_->options.image_size};
}

c10::Device CnnClassifier::device() const { return net_->parameters().front().device(); }

void CnnClassifier::check(const at::Tensor& images) const {
  const auto shape = image_shape();
  if (images.dim() != 4 || images.size(1) != shape[0] || images.size(2) != shape[1] || images.size(3) != shape[2])
    throw Error("the classifier takes images [N, " + std::to_string(shape[0]) + ", " + std::to_string(shape[1]) +
                ", " + std::to_string(shape[2]) + "], not " + c10::str(images.sizes()));
}

at::Tensor CnnClassifier::logits(const at::Tensor& images) const {
  check(images);
  torch::NoGradGuard no_grad;
  ClassifierNet net = net_;  // eval mode: only read
  return net->forward(images.to(device(), at::kFloat));
}

at::Tensor CnnClassifier::features(const at::Tensor& images) const {
  check(images);
  torch::NoGradGuard no_grad;
  ClassifierNet net = net_;
  return net->features(images.to(device(), at::kFloat));
}

void CnnClassifier::save(const fs::path& file) const {
  checkpoint::save(file, metadata_, [&](auto& a) { checkpoint::write_module(a, "classifier", *net_); });
}

nlohmann::json classifier_metadata(const ClassifierOptions& o, const std::vector<std::string>& classes) {
  nlohmann::json m = checkpoint::metadata("classifier");
  m.update({{"architecture", "cnn"}, {"channels", o.channels}, {"image_size", o.image_size}, {"width", o.width},
            {"features", o.features}, {"classes", classes}});
  return m;
}

std::shared_ptr<CnnClassifier> load_classifier(const fs::path& file, c10::Device device) {
  checkpoint::Reader r = checkpoint::open(file, device, "classifier", "a classifier");
  ClassifierOptions o;
  std::vector<std::string> classes;
  try {
    o.channels = r.metadata.at("channels");
    o.image_size = r.metadata.at("image_size");
    o.width = r.metadata.at("width");
    o.features = r.metadata.at("features");
    classes = r.metadata.at("classes").get<std::vector<std::string>>();
    o.classes = static_cast<int64_t>(classes.size());
  } catch (const nlohmann::json::exception& e) {
    throw Error("incomplete checkpoint metadata in " + file.string() + ": " + e.what());
  }
  ClassifierNet net(o);
  if (!r.read_module("classifier", *net)) throw Error("checkpoint " + file.string() + " has no classifier weights");
  net->to(device);
  return std::make_shared<CnnClassifier>(net, classes, r.metadata);
}

}  // namespace cozy::metrics
