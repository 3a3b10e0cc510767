// cozy/dataset.hpp — a labelled image data set, shared between plugins.
//
// A DATASET edge carries a `cozy::Dataset`: the data plugin makes them
// (Fashion-MNIST, IDX files, CIFAR-10, image folders); trainers and metrics
// read batches from them without knowing where they came from.
#pragma once

#include <cozy/value.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace cozy {

class COZY_INTERFACE Dataset : public Object {
 public:
  std::string type_name() const override { return "DATASET"; }

  /// Number of examples.
  virtual std::int64_t size() const = 0;
  /// {C, H, W} of every image.
  virtual std::vector<std::int64_t> image_shape() const = 0;
  /// Names of the classes; label i names class_names()[i].
  virtual const std::vector<std::string>& class_names() const = 0;
  /// The examples at `indices` (each in [0, size())): images float32
  /// [N, C, H, W] in [0, 1] and labels int64 [N], both on the CPU.
  virtual std::pair<at::Tensor, at::Tensor> batch(const at::Tensor& indices) const = 0;
  /// Every label, int64 [size()], on the CPU.
  virtual at::Tensor labels() const = 0;
  /// One line for people: where it came from and what was selected.
  virtual std::string describe() const = 0;
};

/// A data set held in memory: images float32 [N, C, H, W] in [0, 1] on the
/// CPU, one class unless labels are given. For plugins that cut data sets
/// out of something else (patches of a scene, slices of a volume).
/// Header-only: a plugin that uses it needs nothing new from the host.
class ImageDataset final : public Dataset {
 public:
  ImageDataset(at::Tensor images, std::string about, std::vector<std::string> class_names = {"image"},
               at::Tensor labels = {})
      : images_(std::move(images)), about_(std::move(about)), names_(std::move(class_names)), labels_(std::move(labels)) {
    if (images_.dim() != 4) throw Error("an ImageDataset holds images [N, C, H, W]");
    if (!labels_.defined()) labels_ = images_.new_zeros({images_.size(0)}, at::kLong);
    if (labels_.dim() != 1 || labels_.size(0) != images_.size(0)) throw Error("one label an image");
  }
  std::int64_t size() const override { return images_.size(0); }
  std::vector<std::int64_t> image_shape() const override { return {images_.size(1), images_.size(2), images_.size(3)}; }
  const std::vector<std::string>& class_names() const override { return names_; }
  std::pair<at::Tensor, at::Tensor> batch(const at::Tensor& indices) const override {
    const at::Tensor i = indices.to(at::kLong);
    return {images_.index_select(0, i), labels_.index_select(0, i)};
  }
  at::Tensor labels() const override { return labels_; }
  std::string describe() const override { return about_; }
  /// Every image, [N, C, H, W].
  const at::Tensor& images() const { return images_; }

 private:
  at::Tensor images_;
  std::string about_;
  std::vector<std::string> names_;
  at::Tensor labels_;
};

}  // namespace cozy
