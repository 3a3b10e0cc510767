// cozy/models.hpp — trained models shared between plugins.
//
// A GENERATOR edge carries a `cozy::Generator`, a VAE edge a `cozy::Vae`, a
// CLASSIFIER edge a `cozy::Classifier`. The gan, vae and metrics plugins make
// them (trained, or loaded from a checkpoint); samplers, metrics and
// interaction nodes use them without knowing the architecture.
//
// Images are float32 [N, C, H, W] in [0, 1]. Every method is inference only
// (no gradients) and safe to call from several threads at once.
#pragma once

#include <cozy/value.hpp>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace cozy {

/// A model SaveModel can write: one file that the matching Load node reads.
class SavableModel {
 public:
  virtual ~SavableModel() = default;
  /// Writes the model (weights and metadata) to `file`.
  virtual void save(const std::filesystem::path& file) const = 0;
};

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
  /// conditional model, labels: int64 class indices [N], or float32 class
  /// weights [N, K] (one-hot rows, or mixtures: a DCGAN's label input is
  /// linear); on the generator's device.
  /// Inference only (no gradients); safe to call from several threads.
  virtual at::Tensor generate(const at::Tensor& z, const at::Tensor& labels) const = 0;
};

/// A GAN's discriminator: how real images look to it.
class Discriminator : public Object {
 public:
  std::string type_name() const override { return "DISCRIMINATOR"; }

  virtual std::int64_t num_classes() const = 0;
  virtual const std::vector<std::string>& class_names() const = 0;
  /// {C, H, W} of the images it judges.
  virtual std::vector<std::int64_t> image_shape() const = 0;
  virtual c10::Device device() const = 0;
  /// One logit per image [N] (higher: more real) for images [N, C, H, W] in
  /// [0, 1] and, for a conditional one, labels as Generator::generate takes.
  virtual at::Tensor logits(const at::Tensor& images, const at::Tensor& labels) const = 0;
};

/// A variational auto-encoder: images to a latent distribution and back.
class Vae : public Object {
 public:
  std::string type_name() const override { return "VAE"; }

  /// Length D of the latent vectors.
  virtual std::int64_t latent_size() const = 0;
  /// {C, H, W} of the images it encodes and decodes.
  virtual std::vector<std::int64_t> image_shape() const = 0;
  virtual c10::Device device() const = 0;
  /// The posterior's mean and log-variance, each [N, D], for images [N, C, H, W].
  virtual std::pair<at::Tensor, at::Tensor> encode(const at::Tensor& images) const = 0;
  /// Images [N, C, H, W] in [0, 1] from latents [N, D].
  virtual at::Tensor decode(const at::Tensor& z) const = 0;
};

/// An image classifier; its penultimate layer is the feature space of the
/// metrics (FID, precision and recall).
class Classifier : public Object {
 public:
  std::string type_name() const override { return "CLASSIFIER"; }

  virtual std::int64_t num_classes() const = 0;
  virtual const std::vector<std::string>& class_names() const = 0;
  /// {C, H, W} of the images it takes.
  virtual std::vector<std::int64_t> image_shape() const = 0;
  virtual c10::Device device() const = 0;
  /// Class scores (logits) [N, K] for images [N, C, H, W].
  virtual at::Tensor logits(const at::Tensor& images) const = 0;
  /// Penultimate-layer features [N, F] for images [N, C, H, W].
  virtual at::Tensor features(const at::Tensor& images) const = 0;
};

}  // namespace cozy
