// cozy/host/executor.hpp — runs a validated graph as a DAG.
//
// Only nodes that output nodes depend on run. Independent branches run in
// parallel on a bounded pool of worker threads that lives as long as the
// Executor; a node starts once all its inputs are ready, and a value is
// released once its last consumer has run. Results of pure nodes are cached
// across runs of the same Executor: the key of a node is its class_type, its
// literal inputs and the keys of its upstream nodes, so changing one input
// re-runs that node and what depends on it, and nothing else. A node that
// throws is reported; the nodes that depend on it are skipped, and
// independent branches still finish.
//
// What travels on an edge is a list of values, one long unless a node makes
// more (OutputSpec::is_list); a node runs once per element of its longest
// input list, or once on the whole lists (NodeSpec::input_is_list), as
// ComfyUI maps nodes over lists. Its events are sent once, with the files
// of every run.
//
// Every run emits exactly one terminal event, after every node that will run
// has run: `execution_success`, `execution_error` (the first failure; the
// report lists them all) or `execution_interrupted`; then `executing` with
// node null, as ComfyUI sends them.
//
// Thread safety: plan(), execute(), run(), clear_cache() and cache_size()
// may be called from any thread. Runs of one Executor are serialised: a
// second execute() waits for the first to finish (a server runs one prompt
// at a time, as ComfyUI does). A node must not run a graph on the Executor
// that is running it.
#pragma once

#include <cozy/host/events.hpp>
#include <cozy/host/graph.hpp>
#include <cozy/host/registry.hpp>

#include <c10/core/Device.h>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace cozy::host {

/// Asks one run to stop. The caller makes it, keeps it, and hands it to the
/// run in RunOptions; cancelling one token never touches another run. A
/// token cancelled before its run starts stops that run before any node
/// (a Ctrl-C or an /interrupt between queueing and starting is not lost).
/// cancel() is lock-free, so a signal handler may call it.
class CancelToken {
 public:
  void cancel() noexcept { flag_.store(true, std::memory_order_relaxed); }
  bool cancelled() const noexcept { return flag_.load(std::memory_order_relaxed); }

 private:
  std::atomic<bool> flag_{false};
  static_assert(std::atomic<bool>::is_always_lock_free, "cancel() must be safe in a signal handler");
};

struct RunOptions {
  c10::Device device = c10::Device(c10::kCPU);
  int jobs = 0;     ///< parallel nodes; 0: the number of cores
  int threads = 0;  ///< LibTorch intra-op threads; 0: cores / jobs, at least 1
  std::filesystem::path input_dir = "input";
  std::filesystem::path output_dir = "output";
  std::filesystem::path model_dir = "models";  ///< models are read from here
  /// Where nodes write the models they make; empty: `output_dir`. Never the
  /// folder of shipped models unless the user names it.
  std::filesystem::path model_save_dir;
  std::filesystem::path temp_dir;  ///< empty: a folder under the system's temp
  /// Receives the run's events. Without one, nothing is written anywhere
  /// (node logs included): the library never writes to stderr itself.
  EventSink* events = nullptr;
  bool use_cache = true;
  std::string prompt_id;
  /// This run's cancellation; null: the run cannot be cancelled.
  std::shared_ptr<CancelToken> cancel;
  /// The ranks this process trains with (cozy/distributed.hpp); null: alone.
  std::shared_ptr<Collective> collective;
};

struct NodeFailure {
  std::string node_id;
  std::string class_type;
  std::string message;         ///< what went wrong, without LibTorch's backtrace
  std::string exception_type;  ///< the C++ type of what was thrown, e.g. "c10::Error"
  nlohmann::json inputs;       ///< the node's inputs as ComfyUI's current_inputs shows them
  std::string detail;          ///< the whole message where it says more (LibTorch's C++ backtrace), else empty
};

/// A file a node wrote, as ComfyUI reports it: its name, the folder under
/// its root, and which root ("output", "temp", "input", or "models").
struct FileRef {
  std::string filename;
  std::string subfolder;
  std::string type;
  std::filesystem::path path;  ///< the full path, for the command line
  nlohmann::json to_json() const { return {{"filename", filename}, {"subfolder", subfolder}, {"type", type}}; }
};

struct RunReport {
  bool success = false;      ///< every needed node ran or came from the cache
  bool interrupted = false;  ///< cancelled before the end
  std::vector<NodeFailure> failures;  ///< in the order they happened
  std::vector<std::string> cached;    ///< ids served from the cache
  std::vector<std::string> skipped;   ///< ids not run because an input failed, or cancelled
  std::vector<std::string> ran;       ///< ids whose run function returned, in order
  std::size_t executed = 0;           ///< nodes whose run function was called
  /// Outputs of the output nodes (kept for library users and tests).
  std::unordered_map<std::string, Outputs> outputs;
  /// Files written, by node id, as the nodes reported them.
  std::unordered_map<std::string, std::vector<FileRef>> files;
  /// What each node that wrote files or showed values sent in its
  /// `executed` event's `output` ({"images": [...]}...): ComfyUI's history.
  std::unordered_map<std::string, nlohmann::json> ui;
  double seconds = 0;
  int jobs = 0, threads = 0;
};

/// A graph compiled for execution: the nodes output nodes need, in
/// topological order, with literals converted and cache keys computed.
class Plan {
 public:
  Plan();
  ~Plan();
  Plan(Plan&&) noexcept;
  Plan& operator=(Plan&&) noexcept;
  std::size_t size() const;
  struct Impl;
  std::unique_ptr<Impl> impl;
};

class Executor {
 public:
  explicit Executor(std::shared_ptr<const Registry> registry);
  ~Executor();  ///< waits for a run in progress, then stops the workers
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  /// Compiles a graph that passed `validate()`. Throws cozy::Error otherwise.
  Plan plan(const Graph& graph) const;
  /// Runs a plan; runs of one Executor happen one after another.
  RunReport execute(const Plan& plan, const RunOptions& options);
  /// plan() then execute().
  RunReport run(const Graph& graph, const RunOptions& options) { return execute(plan(graph), options); }

  void clear_cache();
  std::size_t cache_size() const;
  /// Worker threads alive now (they are made as a run first needs them).
  std::size_t worker_threads() const;

 private:
  struct Run;
  class Workers;
  std::shared_ptr<const Registry> registry_;
  std::unique_ptr<Workers> workers_;
  mutable std::mutex run_mutex_;  // one run at a time; guards cache_
  std::unordered_map<std::uint64_t, std::vector<std::vector<Value>>> cache_;  // per output, its list
};

/// `jobs` and `threads` as the executor resolves 0 (automatic) on this machine.
std::pair<int, int> resolve_parallelism(int jobs, int threads);

}  // namespace cozy::host
