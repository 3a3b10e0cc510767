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

#include <cozy/context.hpp>
#include <cozy/value.hpp>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace cozy {

/// A model SaveModel can write: one file that the matching Load node reads.
class COZY_INTERFACE SavableModel {
 public:
  virtual ~SavableModel() = default;
  /// Writes the model (weights and metadata) to `file`.
  virtual void save(const std::filesystem::path& file) const = 0;
};

class COZY_INTERFACE Generator : public Object {
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

/// What FineTuneOnFeedback asks of a generator: a few adversarial steps
/// towards the images a user liked, away from the ones they disliked. A
/// generator that can be tuned so (it keeps the discriminator it was trained
/// against, say) implements this beside Generator; the node finds it with a
/// dynamic cast, whichever plugin made the generator.
class COZY_INTERFACE FeedbackTunable {
 public:
  struct Request {
    at::Tensor liked;             ///< images [L, C, H, W] in [0, 1], L >= 1, on the run's device
    at::Tensor liked_classes;     ///< class weights [L, K] for a conditional model; undefined otherwise
    at::Tensor disliked;          ///< images [M, C, H, W] in [0, 1]; undefined when none was disliked
    at::Tensor disliked_classes;  ///< [M, K] for a conditional model; undefined otherwise
    std::int64_t fresh_samples = 1;  ///< generated images the discriminator judges each step
    std::int64_t steps = 100;
    double learning_rate = 1e-4;
    std::int64_t seed = 0;
    bool augment = true;  ///< DiffAugment (random shifts and cutouts) on what the discriminator sees
  };
  virtual ~FeedbackTunable() = default;
  /// A new generator on `ctx.device()`; this one is left as it was. Reports
  /// progress and stops (cozy::Cancelled) through `ctx`.
  virtual std::shared_ptr<Generator> tune_on_feedback(const Request& request, Context& ctx) const = 0;
};

/// A GAN's discriminator: how real images look to it.
class COZY_INTERFACE Discriminator : public Object {
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
class COZY_INTERFACE Vae : public Object {
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
class COZY_INTERFACE Classifier : public Object {
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
