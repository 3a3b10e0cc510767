// Data-parallel training over the ranks a node's Context gives
// (cozy/distributed.hpp): each rank takes its share of every global batch,
// starts from rank 0's weights, and after backward() the gradients are
// averaged over the ranks, so every rank takes the same step: the step one
// process would take on the whole global batch (batch x world size), up to
// float rounding. Alone (no collective, or one rank) it does nothing and
// the trainer runs as it always did.
#pragma once

#include <cozy/context.hpp>
#include <cozy/distributed.hpp>

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <string>

namespace torch::nn {
class Module;
}

namespace cozy::training {

/// The checkpoint `<prefix><N>_<counter>.pt` in `folder` with the largest N
/// (and counter): where a restarted run resumes. Empty when there is none.
std::filesystem::path latest_checkpoint(const std::filesystem::path& folder, const std::string& prefix);

class DataParallel {
 public:
  explicit DataParallel(const Context& ctx) : c_(ctx.collective()) {}

  /// More than one rank trains.
  bool active() const { return c_ && c_->world_size() > 1; }
  int rank() const { return c_ ? c_->rank() : 0; }
  int world() const { return c_ ? c_->world_size() : 1; }
  /// Rank 0 writes checkpoints, logs and grids; the others write nothing.
  bool writes() const { return rank() == 0; }
  /// How many times the run started again (cozy/distributed.hpp).
  int restarts() const { return c_ ? c_->restart_count() : 0; }

  /// Rank 0's parameters and buffers, to every rank.
  void broadcast(torch::nn::Module& module);
  /// Rank 0's buffers (BatchNorm's running statistics), to every rank.
  void broadcast_buffers(torch::nn::Module& module);
  /// The parameters' gradients summed over the ranks (in buckets of about
  /// 25 MB, all in flight at once) and divided by the world size.
  void average_gradients(torch::nn::Module& module);
  /// The sum of a number over the ranks (a loss, for the log).
  double sum(double value);
  /// The mean of a CPU tensor over the ranks (losses, for the log).
  at::Tensor average(at::Tensor value);

  /// Global batches an epoch: size / (batch x world).
  std::int64_t steps(std::int64_t size, std::int64_t batch) const { return size / (batch * world()); }
  /// This rank's indices of global batch `step` of `order` (batch x world
  /// entries from step x batch x world; this rank's `batch` of them).
  at::Tensor shard(const at::Tensor& order, std::int64_t step, std::int64_t batch) const;
  /// A generator for this rank's own draws (noise, latents): seeded by the
  /// seed, the rank and the epoch, so a run resumed at an epoch draws what
  /// it would have drawn.
  at::Generator noise(std::int64_t seed, std::int64_t epoch) const;

  /// Rank 0's `file` (empty: none) on every rank: the others get a copy in
  /// `folder`. For a checkpoint only rank 0 can see (the others write into
  /// scratch folders).
  std::filesystem::path share_file(const std::filesystem::path& file, const std::filesystem::path& folder);

  /// Seconds this rank has spent in collectives.
  double seconds() const { return seconds_; }

 private:
  Collective* c_;
  double seconds_ = 0;
};

}  // namespace cozy::training
