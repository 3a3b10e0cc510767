// cozy/models.hpp — trained models shared between plugins.
//
// A GENERATOR edge carries a `cozy::Generator`: the gan plugin makes them
// (trained, or loaded from a checkpoint); samplers, metrics and interaction
// nodes draw images from them without knowing the architecture.
#pragma once

#include <cozy/value.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace cozy {

class Generator : public Object {
 public:
  std::string type_name() const override { return "GENERATOR"; }

  /// Length D of the latent vectors z [N, D].
  virtual std::int64_t latent_size() const = 0;
  /// Number of classes it is conditioned on; 0 for an unconditional model.
  virtual std::int64_t num_classes() const = 0;
  virtual const std::vector<std::string>& class_names() const = 0;
  /// {C, H, W} of the images it makes.
  virtual std::vector<std::int64_t> image_shape() const = 0;
  /// The device its weights are on.
  virtual c10::Device device() const = 0;
  /// Images float32 [N, C, H, W] in [0, 1] from z [N, D] and, for a
  /// conditional model, labels int64 [N]; on the generator's device.
  /// Inference only (no gradients); safe to call from several threads.
  virtual at::Tensor generate(const at::Tensor& z, const at::Tensor& labels) const = 0;
};

}  // namespace cozy
