// cozy/distributed.hpp — one training run over several processes.
//
// When cozy runs as one rank of several (`cozy run --nproc N`, or started by
// torchrun), Context::collective() gives the node the ranks' collectives;
// otherwise it is null and the node trains alone. A trainer reads its shard
// of each global batch, starts from rank 0's weights, sums its gradients
// with every rank's after backward() and lets rank 0 alone write files.
// The host implements it on torch's c10d (Gloo); see docs/distributed.md.
#pragma once

#include <cozy/version.hpp>

#include <ATen/core/Tensor.h>

#include <vector>

namespace cozy {

class COZY_INTERFACE Collective {
 public:
  virtual ~Collective() = default;

  /// This process's rank, 0 .. world_size() - 1.
  virtual int rank() const = 0;
  /// How many ranks train together.
  virtual int world_size() const = 0;
  /// How many times the run was started again after a rank failed (cozy run
  /// --max-restarts, torchrun's restarts): a trainer that writes checkpoints
  /// resumes from its last one when this is above 0.
  virtual int restart_count() const = 0;

  /// Sums each tensor over the ranks, in place; every rank passes tensors of
  /// the same shapes, in the same order. Throws cozy::Error naming the rank
  /// that stopped answering when one died, or when the timeout passed.
  virtual void all_reduce_sum(std::vector<at::Tensor>& tensors) = 0;
  /// Rank `root`'s tensors to every rank, in place.
  virtual void broadcast(std::vector<at::Tensor>& tensors, int root) = 0;
  /// Returns once every rank has called it.
  virtual void barrier() = 0;
};

}  // namespace cozy
