// Prompts over workers on NATS JetStream: what `cozy serve --queue` does
// with the prompts it accepts (ServerQueue), and the names both sides use.
//
//   COZY_PROMPTS  stream, work queue, subject cozy.prompts: one message a
//                 prompt, its id the prompt_id (a second publish inside the
//                 duplicate window is dropped). Durable pull consumer
//                 "workers": explicit acks, the server's ack wait; a busy
//                 worker extends it with in-progress acks.
//   COZY_RESULTS  stream, kept a week: cozy.results.<id> (one a prompt:
//                 its history item, or "withdrawn"), cozy.files.<id> (the
//                 files a prompt wrote, in parts, sent before its result).
//                 Durable pull consumer "server". A worker looks here before
//                 running a prompt: one with a result is not run again.
//   cozy.events.<id>  core NATS: a running prompt's ComfyUI events.
//   cozy.interrupt    core NATS: a prompt_id, or empty for every prompt.
//
// <id> is the prompt_id's bytes in hex (a prompt_id may hold dots).
#pragma once

#include "nats.hpp"
#include "prompt_run.hpp"
#include "store.hpp"

#include <cozy/host/validate.hpp>

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <thread>

namespace cozy::server::queue {

inline const std::string prompts_stream = "COZY_PROMPTS";
inline const std::string prompts_subject = "cozy.prompts";
inline const std::string workers_consumer = "workers";
inline const std::string results_stream = "COZY_RESULTS";
inline const std::string results_prefix = "cozy.results.";
inline const std::string files_prefix = "cozy.files.";
inline const std::string server_consumer = "server";
inline const std::string events_prefix = "cozy.events.";
inline const std::string interrupt_subject = "cozy.interrupt";

struct Settings {
  std::string url;                              ///< nats://HOST:PORT
  std::chrono::milliseconds ack_wait{30000};    ///< a worker silent this long loses its prompt
  int max_deliveries = 3;                       ///< then a prompt is reported failed, not run again
  int replicas = 1;                             ///< of the streams, on a NATS cluster (3 on a 3-node one)
};

/// A queued prompt as it travels (ComfyUI's queue entry, by name).
nlohmann::json encode(const QueuedPrompt& prompt);
QueuedPrompt decode(const nlohmann::json& message);

/// Makes the two streams and their consumers (or takes them as they are).
void ensure_queue(nats::Connection& connection, const Settings& settings);

/// The server's side: publishes what is queued, forwards the workers'
/// events to the WebSocket clients, records their results in the history
/// and writes the files they send back into the server's folders.
class ServerQueue {
 public:
  struct Host {
    Store& store;
    /// To the WebSocket clients (client id or empty for all); any thread.
    std::function<void(const std::string& client, const std::string& type, nlohmann::json data)> event;
    std::function<void()> status;  ///< the queue changed; any thread
    LogLine log;
    host::FileFolders roots;  ///< "output", "temp", "models": where files sent back go
  };

  /// Connects and makes the queue; throws cozy::Error when it cannot.
  ServerQueue(Settings settings, Host host);
  ~ServerQueue();
  ServerQueue(const ServerQueue&) = delete;
  ServerQueue& operator=(const ServerQueue&) = delete;

  void submitted();  ///< a prompt was queued: publish it
  void interrupt(const std::string& prompt_id);
  /// Prompts removed from the pending queue: a worker that takes them skips them.
  void withdrawn(const std::vector<std::string>& prompt_ids);

 private:
  void publish_loop();
  void results_loop();
  void on_result(const std::string& prompt_id, const nlohmann::json& result);
  void drop_files(const std::string& prompt_id);

  Settings settings_;
  Host host_;
  std::unique_ptr<nats::Connection> connection_;
  std::unique_ptr<nats::Subscription> events_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false, submitted_ = true;
  std::set<std::string> published_;
  // Parts of files, by prompt and by attempt, unacknowledged until the result comes.
  std::map<std::string, std::map<std::string, std::vector<std::unique_ptr<nats::Message>>>> files_;
  std::thread publisher_, results_;
};

}  // namespace cozy::server::queue
