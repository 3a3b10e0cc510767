// The project's image classifier: a small CNN whose penultimate layer is the
// feature space of FID and precision/recall.
//
//   Conv(C, w, 3, p1) BN ReLU MaxPool(2), Conv(w, 2w, 3, p1) BN ReLU MaxPool(2),
//   Linear(2w * (S/4)^2, F) ReLU   -> features [N, F]
//   Dropout(0.3) Linear(F, K)      -> logits [N, K]
// Input images in [0, 1] are mapped to [-1, 1] first.
#pragma once

#include "checkpoint.hpp"

#include <cozy/models.hpp>

#include <torch/torch.h>

namespace cozy::metrics {

struct ClassifierOptions {
  int64_t channels = 1;
  int64_t image_size = 28;
  int64_t classes = 10;
  int64_t width = 32;
  int64_t features = 128;
};

struct ClassifierNetImpl : torch::nn::Module {
  explicit ClassifierNetImpl(const ClassifierOptions& options);
  torch::Tensor features(const torch::Tensor& images);
  torch::Tensor forward(const torch::Tensor& images);
  ClassifierOptions options;
  torch::nn::Sequential body{nullptr};
  torch::nn::Dropout dropout{nullptr};
  torch::nn::Linear head{nullptr};
};
TORCH_MODULE(ClassifierNet);

/// A trained classifier, as other plugins see it.
class CnnClassifier : public Classifier, public SavableModel {
 public:
  CnnClassifier(ClassifierNet net, std::vector<std::string> classes, nlohmann::json metadata);
  int64_t num_classes() const override { return net_->options.classes; }
  const std::vector<std::string>& class_names() const override { return classes_; }
  std::vector<int64_t> image_shape() const override;
  c10::Device device() const override;
  at::Tensor logits(const at::Tensor& images) const override;
  at::Tensor features(const at::Tensor& images) const override;
  void save(const std::filesystem::path& file) const override;

 private:
  void check(const at::Tensor& images) const;
  ClassifierNet net_;
  std::vector<std::string> classes_;
  nlohmann::json metadata_;
};

nlohmann::json classifier_metadata(const ClassifierOptions& o, const std::vector<std::string>& classes);
std::shared_ptr<CnnClassifier> load_classifier(const std::filesystem::path& file, c10::Device device);

}  // namespace cozy::metrics
