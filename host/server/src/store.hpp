// The queue and history of `cozy serve`, in SQLite in the user folder.
//
// A prompt is written (and the write committed) before its prompt_id is
// told to the client, so a crash loses nothing a client was told was
// queued. A prompt that was running when the process died is pending again
// at the next start, and runs again.
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

struct sqlite3;

namespace cozy::server {

/// One queued prompt, as ComfyUI keeps it: [number, prompt_id, prompt,
/// extra_data, outputs_to_execute].
struct QueuedPrompt {
  double number = 0;
  std::string prompt_id;
  nlohmann::json prompt;
  nlohmann::json extra_data = nlohmann::json::object();
  nlohmann::json outputs = nlohmann::json::array();
  std::int64_t sequence = 0;  ///< order of arrival, for equal numbers
  int attempts = 0;           ///< times it was started (a restart after a crash starts it again)
  nlohmann::json as_comfy() const { return {number, prompt_id, prompt, extra_data, outputs}; }
};

class Store {
 public:
  /// Opens (or makes) `file`; prompts left running are made pending again,
  /// unless they were started `max_attempts` times already (each such start
  /// ended with the process dying): those go to the history as failed, so a
  /// prompt that crashes the server cannot keep it from starting.
  Store(const std::filesystem::path& file, std::size_t history_limit, int max_attempts = 2);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  /// Adds a pending prompt; committed when this returns. Throws if the
  /// prompt_id exists (queued or in history).
  void enqueue(QueuedPrompt& prompt);
  /// The pending prompt with the lowest number (then the earliest), marked
  /// running; nullopt when none is pending.
  std::optional<QueuedPrompt> start_next();
  /// Marks a pending prompt running (a queue worker started it), without
  /// counting an attempt; false when it is not pending.
  bool mark_running(const std::string& prompt_id);
  /// Moves a running prompt to the history, in one transaction.
  void finish(const std::string& prompt_id, const nlohmann::json& history_item);

  std::vector<QueuedPrompt> pending() const;
  std::vector<QueuedPrompt> running() const;
  /// Removes pending prompts; returns how many.
  std::size_t remove_pending(const std::vector<std::string>& prompt_ids);
  std::size_t clear_pending();
  std::size_t remaining() const;  ///< pending and running

  /// Prompts the constructor moved to the history because they crashed the
  /// process `max_attempts` times.
  const std::vector<std::string>& given_up() const { return given_up_; }

  /// The history, oldest first; at most `max_items` of the newest (all if 0),
  /// skipping `offset` from the start when offset >= 0.
  std::vector<std::pair<std::string, nlohmann::json>> history(std::size_t max_items = 0, std::int64_t offset = -1) const;
  std::optional<nlohmann::json> history_item(const std::string& prompt_id) const;
  void delete_history(const std::vector<std::string>& prompt_ids);
  void clear_history();

 private:
  void exec(const char* sql) const;
  std::vector<QueuedPrompt> select(const char* where) const;
  sqlite3* db_ = nullptr;
  std::vector<std::string> given_up_;
  std::size_t history_limit_;
  mutable std::mutex mutex_;
};

}  // namespace cozy::server
