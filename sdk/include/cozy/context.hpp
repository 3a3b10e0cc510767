// cozy/context.hpp — what a running node may ask of the host.
#pragma once

#include <cozy/error.hpp>

#include <c10/core/Device.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

namespace cozy {

class Collective;  // cozy/distributed.hpp

enum class LogLevel { debug, info, warning, error };

/// Handed to a node for the duration of one call. Implemented by the host;
/// every method is safe to call from the node's thread.
class COZY_INTERFACE Context {
 public:
  virtual ~Context() = default;

  /// The device of this run. Put new tensors here; keep tensors here.
  virtual c10::Device device() const = 0;
  /// LibTorch intra-op threads the host set for this run.
  virtual int threads() const = 0;

  /// Report progress of a long node (sent as a `progress` event).
  virtual void progress(std::int64_t value, std::int64_t max, std::string_view text = {}) = 0;
  /// True once the user asked to stop. Long nodes poll it between steps.
  virtual bool cancelled() const = 0;
  /// Throws `cozy::Cancelled` if the run was cancelled.
  void check_cancelled() const {
    if (cancelled()) throw Cancelled();
  }
  virtual void log(LogLevel level, std::string_view message) = 0;

  /// Where relative input file names are resolved (`--input-dir`).
  virtual const std::filesystem::path& input_dir() const = 0;
  /// Where output nodes write (`--output-dir`).
  virtual const std::filesystem::path& output_dir() const = 0;
  /// Where models are loaded from (`--models-dir`; by default the shipped
  /// models/ folder).
  virtual const std::filesystem::path& model_dir() const = 0;
  /// A scratch folder for previews; its files may be removed at any time.
  virtual const std::filesystem::path& temp_dir() const = 0;

  /// Tell the user (and the `executed` event) about a file this node wrote.
  /// `kind` is "output" for results and "temp" for previews, as in ComfyUI.
  virtual void add_file(const std::filesystem::path& file, std::string_view kind) = 0;

  /// The id of the node being run, for messages.
  virtual const std::string& node_id() const = 0;

  /// Shows a text in the node, as ComfyUI's nodes show theirs (its
  /// `executed` event's output `{"text": [...]}`, the history, the log).
  virtual void show_text(std::string_view text) = 0;

  /// Where a node writes a model it made (a checkpoint, a fine-tuned
  /// generator): the user's folder, never the shipped models. `--models-dir`
  /// when the user gave one, else the output folder. Since SDK 2.2.
  virtual const std::filesystem::path& model_save_dir() const { return output_dir(); }

  /// The ranks this process trains with (cozy/distributed.hpp), or null when
  /// it runs alone. Since SDK 3.1.
  virtual Collective* collective() const { return nullptr; }
};

}  // namespace cozy
