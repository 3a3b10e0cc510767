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

}  // namespace cozy
