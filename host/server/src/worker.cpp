// `cozy worker`: prompts from NATS JetStream, run on this machine.
#include <cozy/server/worker.hpp>

#include "queue.hpp"

#include <cozy/error.hpp>

#include <unistd.h>

#include <condition_variable>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

namespace cozy::server {

namespace fs = std::filesystem;

struct Worker::Impl {
  Impl(std::shared_ptr<const host::Registry> r, WorkerOptions o)
      : registry(std::move(r)), options(std::move(o)), executor(registry) {
    if (options.temp_dir.empty()) options.temp_dir = options.output_dir.parent_path() / "temp";
    if (options.name.empty()) {
      char host[256] = {};
      gethostname(host, sizeof host - 1);
      options.name = std::string(host) + ":" + std::to_string(getpid());
    }
    folders = {{"models", options.models_dir}, {"input", options.input_dir}, {"output", options.output_dir}};
    roots = {{"output", options.output_dir},
             {"temp", options.temp_dir},
             {"models", options.model_save_dir.empty() ? options.output_dir : options.model_save_dir}};
  }

  std::shared_ptr<const host::Registry> registry;
  WorkerOptions options;
  host::FileFolders folders, roots;
  host::Executor executor;
  std::unique_ptr<nats::Connection> connection;

  std::mutex mutex;
  std::condition_variable stopped_cv;
  bool stopping = false;
  std::shared_ptr<host::CancelToken> cancel;  // of the running prompt
  std::string running;                        // its id

  std::mutex log_mutex;
  void log(const std::string& line) {
    if (!options.log) return;
    std::lock_guard<std::mutex> lock(log_mutex);
    *options.log << line << std::endl;
  }

  void handle(nats::Message& message, const queue::Settings& settings);
  void publish_result(const QueuedPrompt& prompt, const std::string& attempt, const nlohmann::json& item,
                      const std::vector<std::string>& lines);
  std::size_t send_files(const std::string& prompt_id, const std::string& attempt, const host::RunReport& report);
};

Worker::Worker(std::shared_ptr<const host::Registry> registry, WorkerOptions options)
    : impl_(std::make_unique<Impl>(std::move(registry), std::move(options))) {}

Worker::~Worker() { stop(); }

void Worker::stop() {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  impl_->stopping = true;
  if (impl_->cancel) impl_->cancel->cancel();
  impl_->stopped_cv.notify_all();
}

void Worker::run() {
  Impl& w = *impl_;
  for (const fs::path& dir : {w.options.input_dir, w.options.output_dir, w.options.temp_dir}) fs::create_directories(dir);
  w.connection = std::make_unique<nats::Connection>(w.options.queue_url, "cozy worker " + w.options.name,
                                                    [&w](const std::string& line) { w.log("cozy worker: " + line); });
  auto interrupts = w.connection->subscribe(queue::interrupt_subject, [&w](nats::Message& message) {
    const std::string id = message.data();
    std::lock_guard<std::mutex> lock(w.mutex);
    if (w.cancel && (id.empty() || id == w.running)) w.cancel->cancel();
  });
  // The server makes the queue; a worker started first waits for it.
  std::optional<nats::ConsumerConfig> consumer;
  for (bool told = false;; told = true) {
    consumer = w.connection->consumer(queue::prompts_stream, queue::workers_consumer);
    if (consumer) break;
    if (!told) w.log("cozy worker: waiting for `cozy serve --queue " + w.options.queue_url + "` to make the queue");
    std::unique_lock<std::mutex> lock(w.mutex);
    if (w.stopped_cv.wait_for(lock, std::chrono::seconds(1), [&w] { return w.stopping; })) return;
  }
  queue::Settings settings;
  settings.url = w.options.queue_url;
  settings.ack_wait = consumer->ack_wait;
  settings.max_deliveries = consumer->max_deliver > 1 ? static_cast<int>(consumer->max_deliver - 1) : 1 << 30;
  auto subscription = w.connection->pull(*consumer);
  w.log("cozy worker " + w.options.name + ": taking prompts from " + w.options.queue_url);
  for (;;) {
    {
      std::lock_guard<std::mutex> lock(w.mutex);
      if (w.stopping) break;
    }
    for (auto& message : subscription->fetch(1, std::chrono::milliseconds(500))) {
      try {
        w.handle(*message, settings);
      } catch (const std::exception& e) {
        // The queue went away mid-way (it reconnects): the prompt is not
        // acknowledged, so it comes again, here or to another worker.
        w.log("cozy worker: " + std::string(e.what()) + "; the prompt comes again after the ack wait");
      }
    }
  }
  subscription.reset();
  interrupts.reset();
  w.connection->flush(std::chrono::milliseconds(2000));
  w.connection.reset();
}

void Worker::Impl::handle(nats::Message& message, const queue::Settings& settings) {
  QueuedPrompt prompt;
  try {
    prompt = queue::decode(nlohmann::json::parse(message.data()));
  } catch (const std::exception& e) {
    log("cozy worker: dropped a message that is not a prompt: " + std::string(e.what()));
    message.ack();
    return;
  }
  const std::string token = nats::subject_token(prompt.prompt_id);
  const std::string head = "prompt " + prompt.prompt_id + ": ";
  // Finished (or withdrawn) already: an earlier worker died between
  // sending its result and acknowledging, or the server published it again.
  if (auto last = connection->last_message(queue::results_stream, queue::results_prefix + token)) {
    log(head + "has a result already; not run again");
    message.ack();
    return;
  }
  const std::string attempt = options.name + "#" + std::to_string(message.delivered());
  if (message.delivered() > static_cast<std::uint64_t>(settings.max_deliveries)) {
    const int runs = settings.max_deliveries;
    const std::string why = "delivered to a worker " + std::to_string(runs) + (runs == 1 ? " time" : " times") +
                            "; each stopped before finishing it (it crashed, was killed or lost the queue), so it is "
                            "not run again";
    log(head + why);
    publish_result(prompt, attempt, given_up_item(prompt, why, "cozy::server::GaveUp", runs), {head + "failed: " + why});
    message.ack();
    return;
  }

  auto cancel = std::make_shared<host::CancelToken>();
  {
    std::lock_guard<std::mutex> lock(mutex);
    if (stopping) {
      message.nak();
      return;
    }
    this->cancel = cancel;
    running = prompt.prompt_id;
  }
  log(head + "started (delivery " + std::to_string(message.delivered()) + ")");
  // Busy: JetStream waits another ack wait each time. Lost for longer than
  // the ack wait, the prompt is someone else's: this run stops.
  std::mutex beat_mutex;
  std::condition_variable beat_cv;
  bool done = false, lost = false;
  std::thread heartbeat([&] {
    const auto period = std::max(settings.ack_wait / 3, std::chrono::milliseconds(100));
    auto last_ok = std::chrono::steady_clock::now();
    std::unique_lock<std::mutex> lock(beat_mutex);
    while (!beat_cv.wait_for(lock, period, [&] { return done; })) {
      if (message.in_progress() && connection->flush(period)) {
        last_ok = std::chrono::steady_clock::now();
      } else if (std::chrono::steady_clock::now() - last_ok > settings.ack_wait) {
        lost = true;
        cancel->cancel();
      }
    }
  });
  const host::RunOptions run = with_folders(options.run, options.input_dir, options.output_dir, options.models_dir,
                                            options.model_save_dir, options.temp_dir);
  EventForward forward = [this, &token](const std::string& client, const std::string& type, nlohmann::json data) {
    connection->send(queue::events_prefix + token,
                     nlohmann::json{{"client", client}, {"type", type}, {"data", std::move(data)}}.dump());
  };
  LogLine node_log = [this](const std::string& line) { log(line); };
  PromptOutcome outcome = run_prompt(prompt, executor, *registry, folders, run, cancel, forward, node_log);
  {
    std::lock_guard<std::mutex> lock(beat_mutex);
    done = true;
  }
  beat_cv.notify_all();
  heartbeat.join();
  bool stopped;
  {
    std::lock_guard<std::mutex> lock(mutex);
    this->cancel.reset();
    running.clear();
    stopped = stopping;
  }
  if (outcome.interrupted && (stopped || lost)) {
    log(head + (lost ? "lost the queue for longer than the ack wait; left to another worker"
                     : "interrupted by this worker's stop; given back to the queue"));
    message.nak();
    return;
  }
  try {
    const std::size_t files = send_files(prompt.prompt_id, attempt, outcome.report);
    publish_result(prompt, attempt, outcome.history_item, outcome.log);
    for (const auto& line : outcome.log) log(line + (files ? " (" + std::to_string(files) + " files sent)" : ""));
  } catch (const Error& e) {
    // Not acknowledged: after the ack wait another worker runs it.
    log(head + "cannot send its result: " + e.what());
    return;
  }
  if (!message.ack()) log(head + "its ack was not confirmed; a worker that gets it again finds its result");
}

void Worker::Impl::publish_result(const QueuedPrompt& prompt, const std::string& attempt, const nlohmann::json& item,
                                  const std::vector<std::string>& lines) {
  const nlohmann::json result = {{"prompt_id", prompt.prompt_id}, {"attempt", attempt}, {"worker", options.name},
                                 {"history", item},               {"log", lines}};
  connection->publish(queue::results_prefix + nats::subject_token(prompt.prompt_id), result.dump(),
                      "result:" + prompt.prompt_id);
}

std::size_t Worker::Impl::send_files(const std::string& prompt_id, const std::string& attempt,
                                     const host::RunReport& report) {
  const std::size_t part_size =
      static_cast<std::size_t>(std::max<std::int64_t>(connection->max_payload() - 16384, 65536));
  std::size_t sent = 0;
  for (const auto& [node, files] : report.files) {
    for (const host::FileRef& file : files) {
      if (!roots.count(file.type)) continue;  // an input is the server's already
      std::ifstream in(file.path, std::ios::binary);
      std::ostringstream bytes;
      bytes << in.rdbuf();
      if (!in) {  // a later node removed it, say: the rest still goes back
        log("prompt " + prompt_id + ": cannot read " + file.path.string() + " to send it; left out");
        continue;
      }
      const std::string data = bytes.str();
      const std::size_t parts = std::max<std::size_t>(1, (data.size() + part_size - 1) / part_size);
      for (std::size_t part = 0; part < parts; ++part) {
        const std::map<std::string, std::string> headers = {
            {"Cozy-Prompt", prompt_id},         {"Cozy-Attempt", attempt},      {"Cozy-Type", file.type},
            {"Cozy-Subfolder", file.subfolder}, {"Cozy-Filename", file.filename}, {"Cozy-Part", std::to_string(part)},
            {"Cozy-Parts", std::to_string(parts)}};
        connection->publish(queue::files_prefix + nats::subject_token(prompt_id),
                            data.substr(part * part_size, part_size),
                            prompt_id + "/" + attempt + "/" + std::to_string(sent) + "/" + std::to_string(part), headers);
      }
      ++sent;
    }
  }
  return sent;
}

}  // namespace cozy::server
