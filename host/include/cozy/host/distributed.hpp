// Ranks of one training run on torch's c10d (Gloo): joined from torchrun's
// environment or from `cozy run --nproc N`'s, or made in one process for
// tests. See docs/distributed.md.
#pragma once

#include <cozy/distributed.hpp>

#include <chrono>
#include <memory>
#include <vector>

namespace cozy::host {

/// The environment's rank, or null when WORLD_SIZE is not set: RANK,
/// WORLD_SIZE, MASTER_ADDR, MASTER_PORT, and torchrun's
/// TORCHELASTIC_USE_AGENT_STORE and TORCHELASTIC_RESTART_COUNT (or cozy's
/// COZY_RESTART_COUNT). Rank 0 serves the rendezvous store unless torchrun's
/// agent does. GLOO_SOCKET_IFNAME names the network interface to use.
/// Throws cozy::Error when the environment is incomplete or the other ranks
/// do not come within `timeout`, which also bounds every collective.
std::shared_ptr<Collective> join_from_environment(std::chrono::milliseconds timeout);

/// `world_size` ranks in this process (one per thread, an in-memory store,
/// loopback), for tests: rank i is element i.
std::vector<std::shared_ptr<Collective>> local_group(int world_size, std::chrono::milliseconds timeout);

}  // namespace cozy::host
