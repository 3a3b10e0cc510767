// cozy/server/worker.hpp — `cozy worker`: runs the prompts that
// `cozy serve --queue` puts on NATS JetStream, on any machine that reaches
// the NATS server.
//
// A worker takes one prompt at a time from the durable consumer "workers",
// tells JetStream it is still busy (in-progress acks, every third of the ack
// wait), streams the run's ComfyUI events to the server over core NATS,
// sends back the files the prompt wrote (the server puts them in its own
// folders, so `/view` serves them), then the history item, and only then
// acknowledges the prompt. A worker that dies leaves its prompt
// unacknowledged: JetStream gives it to another after the ack wait. A prompt
// whose result is in the results stream is not run again; one delivered
// more than the server's --max-deliveries times is reported failed. See
// docs/distributed.md.
#pragma once

#include <cozy/host/executor.hpp>
#include <cozy/host/registry.hpp>

#include <filesystem>
#include <memory>
#include <ostream>
#include <string>

namespace cozy::server {

struct WorkerOptions {
  std::string queue_url;  ///< nats://HOST:PORT
  std::string name;       ///< in the server's log; empty: HOST:PID
  std::filesystem::path input_dir = "input";
  std::filesystem::path output_dir = "output";
  std::filesystem::path models_dir = "models";
  std::filesystem::path model_save_dir;  ///< empty: output_dir
  std::filesystem::path temp_dir;        ///< empty: <output_dir>/../temp
  host::RunOptions run;                  ///< device, jobs, threads
  std::ostream* log = nullptr;           ///< a line for each prompt and each node log
};

class Worker {
 public:
  Worker(std::shared_ptr<const host::Registry> registry, WorkerOptions options);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  /// Takes and runs prompts until stop(). Throws cozy::Error when it cannot
  /// reach the queue at the start (afterwards it reconnects for ever).
  void run();
  /// From another thread: the running prompt is interrupted and given back
  /// to the queue at once (another worker takes it); run() returns.
  void stop();

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace cozy::server
