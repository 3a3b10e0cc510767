// One queued prompt run to its history item: checked again (a plugin or a
// file may be gone since it was queued), run on an executor, its events
// passed on as ComfyUI's clients expect them. The server's own executor
// thread and a queue worker (`cozy worker`) run prompts through this alone.
#pragma once

#include "store.hpp"

#include <cozy/host/executor.hpp>
#include <cozy/host/registry.hpp>
#include <cozy/host/validate.hpp>

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace cozy::server {

/// Where a ComfyUI event goes: (client id or empty for all, type, data).
using EventForward = std::function<void(const std::string& client, const std::string& type, nlohmann::json data)>;
using LogLine = std::function<void(const std::string& line)>;

/// A graph's file inputs must name files inside their folders.
std::vector<host::Issue> confine_files(const host::Graph& graph, const host::Registry& registry,
                                       const host::FileFolders& folders);

struct PromptOutcome {
  nlohmann::json history_item;  ///< as GET /history shows it
  host::RunReport report;
  bool success = false;
  bool interrupted = false;
  std::vector<std::string> log;  ///< what happened, a line each ("prompt ID: done in S s")
};

/// `base` (device, jobs, threads) with the folders a run reads and writes.
host::RunOptions with_folders(host::RunOptions base, const std::filesystem::path& input,
                              const std::filesystem::path& output, const std::filesystem::path& models,
                              const std::filesystem::path& model_save, const std::filesystem::path& temp);

/// Runs `prompt` with `base` (device, jobs, threads, folders); its events go
/// to `forward` (all but the final `executing` with a null node, which the
/// caller sends once the history is written), node logs to `log`.
PromptOutcome run_prompt(const QueuedPrompt& prompt, host::Executor& executor, const host::Registry& registry,
                         const host::FileFolders& folders, host::RunOptions base, std::shared_ptr<host::CancelToken> cancel,
                         const EventForward& forward, const LogLine& log);

/// A history item for a prompt that did not run to its end for a reason of
/// the server's (it crashed every process that took it): an execution_error
/// with `message`, exception type `type`.
nlohmann::json given_up_item(const QueuedPrompt& prompt, const std::string& message, const std::string& type,
                             int attempts);

double now_ms();

}  // namespace cozy::server
