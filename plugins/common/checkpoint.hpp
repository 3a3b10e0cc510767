// One-file model checkpoints shared by the model plugins (gan, vae, metrics).
//
// A checkpoint is a torch::serialize archive holding one sub-archive per
// module (and optimiser, for resuming) plus "metadata": a JSON string with
// format "cozy-checkpoint", the model's kind ("gan", "vae", "classifier"),
// its architecture options, image shape, classes, data set, steps and seed.
#pragma once

#include <cozy/context.hpp>

#include <nlohmann/json.hpp>
#include <torch/nn/module.h>
#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>

#include <filesystem>
#include <functional>
#include <optional>
#include <string>

namespace cozy::checkpoint {

inline constexpr const char* kFormat = "cozy-checkpoint";

/// A metadata object with the format, version and kind filled in.
nlohmann::json metadata(const std::string& kind);

/// Writes `metadata` and whatever `write` puts in the archive to `file`.
void save(const std::filesystem::path& file, const nlohmann::json& metadata,
          const std::function<void(torch::serialize::OutputArchive&)>& write);

/// Adds a module's parameters and buffers under `name`.
void write_module(torch::serialize::OutputArchive& archive, const std::string& name, const torch::nn::Module& module);

/// An opened checkpoint of a known kind.
struct Reader {
  std::filesystem::path file;
  nlohmann::json metadata;
  torch::serialize::InputArchive archive;

  /// Loads `name` into `module` (which must have the same layers); false if
  /// the checkpoint has no `name`. A mismatch is a cozy::Error naming the file.
  bool read_module(const std::string& name, torch::nn::Module& module);
  /// The sub-archive `name`, for optimiser state; false if absent.
  bool read_archive(const std::string& name, torch::serialize::InputArchive& out);
};

/// Opens `file` (tensors mapped to `device`) and checks it is a Cozy
/// checkpoint of `kind`. A missing file, a file that is not an archive, one
/// without Cozy metadata, and one of another kind are cozy::Errors naming
/// the file; `what` names the model for messages ("a GAN generator").
Reader open(const std::filesystem::path& file, c10::Device device, const std::string& kind, const std::string& what);

/// As open, but an archive without Cozy metadata (a TorchScript module saved
/// by torch.jit.save, say) gives nullopt instead of an error.
std::optional<Reader> open_if_cozy(const std::filesystem::path& file, c10::Device device, const std::string& kind,
                                   const std::string& what);

/// A model file named in a graph: relative names are in the models folder.
std::filesystem::path model_path(const Context& ctx, const std::string& name);
/// A checkpoint to continue from: relative names are looked for in the
/// output folder (where trainers write step checkpoints), then the models folder.
std::filesystem::path resume_path(const Context& ctx, const std::string& name);

}  // namespace cozy::checkpoint
