// cozy/host/executor.hpp — runs a validated graph as a DAG.
//
// Only nodes that output nodes depend on run. Independent branches run in
// parallel on a bounded pool; a node starts once all its inputs are ready,
// and a value is released once its last consumer has run. Results of pure
// nodes are cached across runs of the same Executor: the key of a node is
// its class_type, its literal inputs and the keys of its upstream nodes, so
// changing one input re-runs that node and what depends on it, and nothing
// else. A node that throws is reported; the nodes that depend on it are
// skipped, and independent branches still finish.
#pragma once

#include <cozy/host/events.hpp>
#include <cozy/host/graph.hpp>
#include <cozy/host/registry.hpp>

#include <c10/core/Device.h>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace cozy::host {

struct RunOptions {
  c10::Device device = c10::Device(c10::kCPU);
  int jobs = 0;     ///< parallel nodes; 0: the number of cores
  int threads = 0;  ///< LibTorch intra-op threads; 0: cores / jobs, at least 1
  std::filesystem::path input_dir = "input";
  std::filesystem::path output_dir = "output";
  std::filesystem::path model_dir = "models";
  std::filesystem::path temp_dir;  ///< empty: a folder under the system's temp
  EventSink* events = nullptr;
  bool use_cache = true;
  std::string prompt_id;
};

struct NodeFailure {
  std::string node_id;
  std::string class_type;
  std::string message;
};

struct RunReport {
  bool success = false;      ///< every needed node ran or came from the cache
  bool interrupted = false;  ///< cancelled before the end
  std::vector<NodeFailure> failures;
  std::vector<std::string> cached;   ///< ids served from the cache
  std::vector<std::string> skipped;  ///< ids not run because an input failed, or cancelled
  std::size_t executed = 0;          ///< nodes whose run function was called
  /// Outputs of the output nodes (kept for library users and tests).
  std::unordered_map<std::string, Outputs> outputs;
  /// Files written, by node id, as the nodes reported them.
  std::unordered_map<std::string, std::vector<std::filesystem::path>> files;
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
  ~Executor();

  /// Compiles a graph that passed `validate()`. Throws cozy::Error otherwise.
  Plan plan(const Graph& graph) const;
  /// Runs a plan. Safe to call again with another plan; not concurrently.
  RunReport execute(const Plan& plan, const RunOptions& options);
  /// plan() then execute().
  RunReport run(const Graph& graph, const RunOptions& options) { return execute(plan(graph), options); }

  /// Asks the run in progress to stop: nodes not yet started are skipped,
  /// running nodes see `Context::cancelled()`. Safe from a signal handler.
  void cancel() { cancelled_.store(true, std::memory_order_relaxed); }
  void clear_cache();
  std::size_t cache_size() const;

 private:
  struct Run;
  std::shared_ptr<const Registry> registry_;
  std::atomic<bool> cancelled_{false};
  std::unordered_map<std::uint64_t, Outputs> cache_;
};

/// `jobs` and `threads` as the executor resolves 0 (automatic) on this machine.
std::pair<int, int> resolve_parallelism(int jobs, int threads);

}  // namespace cozy::host
