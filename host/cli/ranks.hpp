// `cozy run --nproc N`: N local ranks of one training run, each a cozy
// process joined to the others through the environment torchrun would give
// it (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT), supervised here.
#pragma once

#include <string>
#include <vector>

namespace cozy::cli {

/// Runs `arguments` (this cozy's `run` command line, less --nproc and
/// --max-restarts) as `nproc` ranks on this machine. When a rank fails, the
/// others fail too (their collectives say which rank went); every rank is
/// then started again, up to `max_restarts` times, with COZY_RESTART_COUNT
/// telling trainers to resume from their last checkpoint. A rank still
/// running `grace_seconds` after another failed is killed. Returns the exit
/// status: 0 when every rank succeeded.
int run_ranks(const std::vector<std::string>& arguments, int nproc, int max_restarts, int grace_seconds);

/// `argv` without the options that start ranks (--nproc, --max-restarts,
/// in either spelling).
std::vector<std::string> rank_arguments(int argc, char** argv);

}  // namespace cozy::cli
