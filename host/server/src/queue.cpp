#include "queue.hpp"

#include "http.hpp"

#include <cozy/error.hpp>
#include <cozy/files.hpp>

#include <algorithm>
#include <fstream>
#include <sstream>

namespace cozy::server::queue {

namespace fs = std::filesystem;

nlohmann::json encode(const QueuedPrompt& prompt) {
  return {{"number", prompt.number},
          {"prompt_id", prompt.prompt_id},
          {"prompt", prompt.prompt},
          {"extra_data", prompt.extra_data},
          {"outputs", prompt.outputs}};
}

QueuedPrompt decode(const nlohmann::json& message) {
  QueuedPrompt prompt;
  prompt.number = message.at("number").get<double>();
  prompt.prompt_id = message.at("prompt_id").get<std::string>();
  prompt.prompt = message.at("prompt");
  prompt.extra_data = message.value("extra_data", nlohmann::json::object());
  prompt.outputs = message.value("outputs", nlohmann::json::array());
  return prompt;
}

void ensure_queue(nats::Connection& connection, const Settings& settings) {
  nats::StreamConfig prompts;
  prompts.name = prompts_stream;
  prompts.subjects = {prompts_subject};
  prompts.work_queue = true;
  prompts.duplicate_window = std::chrono::hours(1);
  prompts.replicas = settings.replicas;
  connection.ensure_stream(prompts);
  nats::StreamConfig results;
  results.name = results_stream;
  results.subjects = {results_prefix + "*", files_prefix + "*"};
  results.max_age = std::chrono::hours(24 * 7);
  results.duplicate_window = std::chrono::hours(1);
  results.replicas = settings.replicas;
  connection.ensure_stream(results);

  nats::ConsumerConfig workers;
  workers.stream = prompts_stream;
  workers.durable = workers_consumer;
  workers.filter_subject = prompts_subject;
  workers.ack_wait = settings.ack_wait;
  // One more than the deliveries a prompt is run: the last one only reports
  // it failed (a worker that takes it sees the count).
  workers.max_deliver = settings.max_deliveries + 1;
  connection.ensure_consumer(workers);
  nats::ConsumerConfig server;
  server.stream = results_stream;
  server.durable = server_consumer;
  server.ack_wait = std::chrono::minutes(5);  // parts of files wait for their result
  server.max_ack_pending = 100000;
  connection.ensure_consumer(server);
}

// ------------------------------------------------------------ ServerQueue

ServerQueue::ServerQueue(Settings settings, Host host) : settings_(std::move(settings)), host_(std::move(host)) {
  connection_ = std::make_unique<nats::Connection>(settings_.url, "cozy serve",
                                                   [this](const std::string& line) { host_.log("queue: " + line); });
  ensure_queue(*connection_, settings_);
  events_ = connection_->subscribe(events_prefix + "*", [this](nats::Message& message) {
    nlohmann::json event = nlohmann::json::parse(message.data(), nullptr, false);
    if (event.is_discarded() || !event.is_object() || !event.contains("type") || !event["type"].is_string()) return;
    const std::string type = event["type"];
    nlohmann::json data = event.value("data", nlohmann::json::object());
    if (type == "execution_start" && data.contains("prompt_id") && data["prompt_id"].is_string()) {
      if (host_.store.mark_running(data["prompt_id"].get<std::string>())) host_.status();
    }
    host_.event(event.value("client", ""), type, std::move(data));
  });
  publisher_ = std::thread([this] { publish_loop(); });
  results_ = std::thread([this] { results_loop(); });
}

ServerQueue::~ServerQueue() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (publisher_.joinable()) publisher_.join();
  if (results_.joinable()) results_.join();
  events_.reset();
  files_.clear();
  connection_.reset();
}

void ServerQueue::submitted() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    submitted_ = true;
  }
  wake_.notify_all();
}

void ServerQueue::interrupt(const std::string& prompt_id) { connection_->send(interrupt_subject, prompt_id); }

void ServerQueue::withdrawn(const std::vector<std::string>& prompt_ids) {
  for (const auto& id : prompt_ids) {
    try {
      connection_->publish(results_prefix + nats::subject_token(id),
                           nlohmann::json{{"prompt_id", id}, {"withdrawn", true}}.dump());
    } catch (const Error& e) {
      host_.log("queue: prompt " + id + ": " + e.what());
    }
  }
}

// Every prompt the store holds is published once per process; a publish
// that was already made (by an earlier process, before a crash) is dropped
// by its id inside the stream's duplicate window, and a worker skips a
// prompt whose result is in COZY_RESULTS.
void ServerQueue::publish_loop() {
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait_for(lock, std::chrono::seconds(1), [this] { return stopping_ || submitted_; });
      if (stopping_) return;
      submitted_ = false;
    }
    std::vector<QueuedPrompt> queued;
    try {
      queued = host_.store.pending();
      for (auto& p : host_.store.running()) queued.push_back(std::move(p));
    } catch (const std::exception& e) {
      host_.log("queue: " + std::string(e.what()));
      continue;
    }
    for (const auto& prompt : queued) {
      if (published_.count(prompt.prompt_id)) continue;
      try {
        connection_->publish(prompts_subject, encode(prompt).dump(), prompt.prompt_id, {},
                             std::chrono::milliseconds(5000));
        published_.insert(prompt.prompt_id);
      } catch (const Error& e) {
        host_.log("queue: " + std::string(e.what()) + " (tried again in a second)");
        break;
      }
      std::lock_guard<std::mutex> lock(mutex_);
      if (stopping_) return;
    }
  }
}

void ServerQueue::results_loop() {
  std::unique_ptr<nats::PullSubscription> subscription;
  nats::ConsumerConfig consumer;
  consumer.stream = results_stream;
  consumer.durable = server_consumer;
  for (;;) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (stopping_) return;
    }
    try {
      if (!subscription) subscription = connection_->pull(consumer);
      for (auto& message : subscription->fetch(64, std::chrono::milliseconds(500))) {
        const std::string subject = message->subject();
        if (subject.rfind(files_prefix, 0) == 0) {
          const std::string id = message->header("Cozy-Prompt");
          if (host_.store.history_item(id)) {  // a late part for a prompt recorded already
            message->ack();
            connection_->remove(results_stream, message->sequence());
            continue;
          }
          auto& parts = files_[id][message->header("Cozy-Attempt")];
          const bool again = std::any_of(parts.begin(), parts.end(),
                                         [&](const auto& m) { return m->sequence() == message->sequence(); });
          if (!again) parts.push_back(std::move(message));
          continue;
        }
        nlohmann::json result = nlohmann::json::parse(message->data(), nullptr, false);
        if (!result.is_discarded() && result.is_object() && result.contains("prompt_id") &&
            result["prompt_id"].is_string()) {
          const std::string id = result["prompt_id"];
          try {
            on_result(id, result);
          } catch (const std::exception& e) {
            host_.log("queue: prompt " + id + ": cannot record its result: " + e.what());
          }
          drop_files(id);
        }
        message->ack();
      }
    } catch (const std::exception& e) {
      host_.log("queue: " + std::string(e.what()));
      subscription.reset();
      std::this_thread::sleep_for(std::chrono::seconds(1));
    }
  }
}

namespace {

// Renames every reference to (type, subfolder, filename) in a history item's outputs.
void rename_refs(nlohmann::json& node, const std::string& type, const std::string& subfolder, const std::string& from,
                 const std::string& to) {
  if (node.is_object()) {
    if (node.value("filename", "") == from && node.value("subfolder", "") == subfolder && node.value("type", "") == type)
      node["filename"] = to;
    for (auto& [key, value] : node.items()) rename_refs(value, type, subfolder, from, to);
  } else if (node.is_array()) {
    for (auto& value : node) rename_refs(value, type, subfolder, from, to);
  }
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream data;
  data << in.rdbuf();
  return data.str();
}

}  // namespace

void ServerQueue::on_result(const std::string& prompt_id, const nlohmann::json& result) {
  if (result.value("withdrawn", false)) return;
  if (host_.store.history_item(prompt_id)) return;  // recorded already (a result sent twice)
  nlohmann::json item = result.at("history");
  const std::string worker = result.value("worker", "");

  // The files of the attempt that produced this result, each put together from its parts.
  struct File {
    std::string type, subfolder, filename;
    std::vector<std::pair<int, std::string>> parts;
    int count = 0;
  };
  std::map<std::string, File> files;
  auto attempts = files_.find(prompt_id);
  if (attempts != files_.end()) {
    auto parts = attempts->second.find(result.value("attempt", ""));
    if (parts != attempts->second.end()) {
      for (const auto& message : parts->second) {
        File& file = files[message->header("Cozy-Type") + "\n" + message->header("Cozy-Subfolder") + "\n" +
                           message->header("Cozy-Filename")];
        file.type = message->header("Cozy-Type");
        file.subfolder = message->header("Cozy-Subfolder");
        file.filename = message->header("Cozy-Filename");
        file.count = std::atoi(message->header("Cozy-Parts").c_str());
        file.parts.emplace_back(std::atoi(message->header("Cozy-Part").c_str()), message->data());
      }
    }
  }
  for (auto& [key, file] : files) {
    const std::string where = file.type + " file " + (fs::path(file.subfolder) / file.filename).string();
    auto root = host_.roots.find(file.type);
    std::sort(file.parts.begin(), file.parts.end());
    file.parts.erase(std::unique(file.parts.begin(), file.parts.end(),
                                 [](const auto& a, const auto& b) { return a.first == b.first; }),
                     file.parts.end());
    if (root == host_.roots.end()) {
      host_.log("queue: prompt " + prompt_id + ": " + where + ": not a folder files come back to; dropped");
      continue;
    }
    if (static_cast<int>(file.parts.size()) != file.count) {
      host_.log("queue: prompt " + prompt_id + ": " + where + " came incomplete (" + std::to_string(file.parts.size()) +
                " of " + std::to_string(file.count) + " parts); dropped");
      continue;
    }
    const std::string relative = (fs::path(file.subfolder) / file.filename).generic_string();
    if (std::string problem = confined_path_problem(root->second, relative); !problem.empty()) {
      host_.log("queue: prompt " + prompt_id + ": " + where + ": " + problem + "; dropped");
      continue;
    }
    std::string data;
    for (const auto& [index, bytes] : file.parts) data += bytes;
    const fs::path folder = root->second / file.subfolder;
    fs::create_directories(folder);
    // A worker on another machine numbers its files by its own folder: a
    // name taken here by another file gets a suffix, and the history says so.
    const fs::path name(file.filename);
    for (int suffix = 1;; ++suffix) {
      const std::string candidate =
          suffix == 1 ? file.filename : name.stem().string() + "-" + std::to_string(suffix) + name.extension().string();
      const fs::path target = folder / candidate;
      if (fs::exists(target) && read_file(target) == data) break;  // the same file (a folder shared with the worker)
      const bool written = write_new_file(target, [&](const fs::path& temp) {
        std::ofstream out(temp, std::ios::binary);
        out.write(data.data(), static_cast<std::streamsize>(data.size()));
        if (!out) throw Error("cannot write " + temp.string());
      });
      if (written) {
        if (candidate != file.filename)
          rename_refs(item["outputs"], file.type, file.subfolder, file.filename, candidate);
        break;
      }
      if (suffix > 1000) throw Error("no free name for " + target.string());
    }
  }
  if (item.contains("cozy") && item["cozy"].is_object()) item["cozy"]["worker"] = worker;
  host_.store.finish(prompt_id, item);
  for (const auto& line : result.value("log", nlohmann::json::array()))
    if (line.is_string()) host_.log(line.get<std::string>() + " (worker " + worker + ")");
  const std::string client = item.value("prompt", nlohmann::json::array()).size() > 3
                                 ? item["prompt"][3].value("client_id", "")
                                 : "";
  host_.event(client, "executing", {{"node", nullptr}, {"prompt_id", prompt_id}});
  host_.status();
}

void ServerQueue::drop_files(const std::string& prompt_id) {
  auto attempts = files_.find(prompt_id);
  if (attempts == files_.end()) return;
  for (auto& [attempt, parts] : attempts->second)
    for (auto& message : parts) {
      message->ack();
      connection_->remove(results_stream, message->sequence());
    }
  files_.erase(attempts);
}

}  // namespace cozy::server::queue
