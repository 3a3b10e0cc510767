#include "prompt_run.hpp"

#include "comfy.hpp"
#include "http.hpp"

#include <mutex>

namespace cozy::server {

double now_ms() {
  return static_cast<double>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count());
}

std::vector<host::Issue> confine_files(const host::Graph& graph, const host::Registry& registry,
                                       const host::FileFolders& folders) {
  std::vector<host::Issue> issues;
  for (const auto& node : graph.nodes) {
    const NodeSpec* spec = registry.find_spec(node.class_type);
    if (!spec) continue;
    for (const auto& in : spec->inputs) {
      if (in.file_folder.empty()) continue;
      const host::InputValue* value = node.input(in.name);
      if (!value || value->is_link || !value->literal.is_string()) continue;
      auto folder = folders.find(in.file_folder);
      if (folder == folders.end()) continue;
      const std::string name = host::strip_folder_annotation(value->literal.get<std::string>(), in.file_folder);
      if (std::string problem = confined_path_problem(folder->second, name); !problem.empty()) {
        host::Issue issue{node.id, node.class_type, in.name,
                          "'" + name + "' " + problem + " (the server reads only files inside the " + in.file_folder +
                              " folder)"};
        issue.type = "value_not_in_list";
        issue.extra_info = {{"input_name", in.name}, {"received_value", name}};
        issues.push_back(std::move(issue));
      }
    }
  }
  return issues;
}

host::RunOptions with_folders(host::RunOptions base, const std::filesystem::path& input,
                              const std::filesystem::path& output, const std::filesystem::path& models,
                              const std::filesystem::path& model_save, const std::filesystem::path& temp) {
  base.input_dir = input;
  base.output_dir = output;
  base.model_dir = models;
  base.model_save_dir = model_save;
  base.temp_dir = temp;
  return base;
}

namespace {

// Receives a run's events on the executor's threads: forwards what
// ComfyUI's clients expect and keeps what the history records. Never
// blocks on a socket.
class PromptSink : public host::EventSink {
 public:
  PromptSink(const EventForward& forward, const LogLine& log, std::string client)
      : forward_(forward), log_(log), client_(std::move(client)) {}
  void emit(const host::Event& event) override {
    if (event.type == "log") {  // node logs go to the server's own log, not to clients
      if (event.data.value("level", "") != "debug")
        log_(event.data.value("level", "") + ": prompt " + event.data.value("prompt_id", "") + " node " +
             event.data.value("node", "") + ": " + event.data.value("message", ""));
      return;
    }
    if (event.type == "executing" && event.data["node"].is_null()) return;  // sent after the history is written
    if (event.type == "executed" && event.data["output"].is_null()) return;  // ComfyUI sends it only with output
    nlohmann::json data = event.data;
    if (event.type == "execution_start" || event.type == "execution_cached" || event.type == "execution_success" ||
        event.type == "execution_error" || event.type == "execution_interrupted") {
      std::lock_guard<std::mutex> lock(mutex_);
      messages_.push_back({event.type, data});
    }
    if (event.type == "executed") data.erase("values"), data.erase("seconds");
    forward_(client_, event.type, std::move(data));
  }
  std::vector<nlohmann::json> messages() {
    std::lock_guard<std::mutex> lock(mutex_);
    return messages_;
  }

 private:
  const EventForward& forward_;
  const LogLine& log_;
  std::string client_;
  std::mutex mutex_;
  std::vector<nlohmann::json> messages_;
};

nlohmann::json error_event(const std::string& prompt_id, const nlohmann::json& node_id, const nlohmann::json& node_type,
                           const std::string& message, const std::string& type) {
  return {{"prompt_id", prompt_id},           {"node_id", node_id},
          {"node_type", node_type},           {"exception_message", message},
          {"exception_type", type},           {"traceback", nlohmann::json::array()},
          {"executed", nlohmann::json::array()}, {"current_inputs", nlohmann::json::object()},
          {"current_outputs", nlohmann::json::object()}};
}

}  // namespace

PromptOutcome run_prompt(const QueuedPrompt& prompt, host::Executor& executor, const host::Registry& registry,
                         const host::FileFolders& folders, host::RunOptions base, std::shared_ptr<host::CancelToken> cancel,
                         const EventForward& forward, const LogLine& log) {
  PromptOutcome outcome;
  PromptSink sink(forward, log, prompt.extra_data.value("client_id", ""));
  std::optional<host::Graph> graph;
  const double started = now_ms();
  host::ParseResult parsed = host::parse_graph_json(prompt.prompt);
  std::vector<host::Issue> issues = parsed.errors;
  if (parsed.graph) {
    host::drop_unknown_inputs(*parsed.graph, registry);  // warned of when it was queued
    issues = host::validate(*parsed.graph, registry, &folders);
    std::vector<host::Issue> outside = confine_files(*parsed.graph, registry, folders);
    issues.insert(issues.end(), outside.begin(), outside.end());
  }
  host::RunReport& report = outcome.report;
  if (issues.empty()) {
    graph = std::move(parsed.graph);
    base.events = &sink;
    base.use_cache = true;
    base.prompt_id = prompt.prompt_id;
    base.cancel = std::move(cancel);
    try {
      report = executor.run(*graph, base);
      outcome.success = report.success;
    } catch (const std::exception& e) {
      report.failures.push_back({"", "", e.what(), "std::exception", nlohmann::json::object(), ""});
      sink.emit({"execution_error", error_event(prompt.prompt_id, nullptr, nullptr, e.what(), "std::exception")});
    }
  } else {
    // It validated when it was queued; a plugin or a file is gone since.
    std::string message;
    for (const auto& issue : issues) message += (message.empty() ? "" : "; ") + issue.to_string();
    sink.emit({"execution_start", {{"prompt_id", prompt.prompt_id}, {"timestamp", now_ms()}}});
    sink.emit({"execution_error", error_event(prompt.prompt_id, issues.front().node_id, issues.front().class_type,
                                              message, "prompt_outputs_failed_validation")});
  }
  outcome.interrupted = report.interrupted;
  outcome.history_item = comfy::history_item(prompt, graph ? &*graph : nullptr, report, sink.messages(),
                                             outcome.success, started, now_ms());
  const std::string head = "prompt " + prompt.prompt_id + ": ";
  if (outcome.success) {
    outcome.log.push_back(head + "done in " + std::to_string(report.seconds) + " s");
  } else if (report.interrupted) {
    outcome.log.push_back(head + "interrupted");
  } else {
    for (const auto& f : report.failures)
      outcome.log.push_back(head + "error: node " + f.node_id + " (" + f.class_type + "): " + f.message);
    for (const auto& issue : issues) outcome.log.push_back(head + "invalid: " + issue.to_string());
  }
  return outcome;
}

nlohmann::json given_up_item(const QueuedPrompt& prompt, const std::string& message, const std::string& type,
                             int attempts) {
  nlohmann::json error = error_event(prompt.prompt_id, nullptr, nullptr, message, type);
  return {{"prompt", prompt.as_comfy()},
          {"outputs", nlohmann::json::object()},
          {"status",
           {{"status_str", "error"},
            {"completed", false},
            {"messages", nlohmann::json::array({nlohmann::json::array({"execution_error", error})})}}},
          {"meta", nlohmann::json::object()},
          {"cozy",
           {{"attempts", attempts},
            {"interrupted", false},
            {"cached", nlohmann::json::array()},
            {"failures", nlohmann::json::array({nlohmann::json{{"node_id", nullptr}, {"exception_message", message}}})}}}};
}

}  // namespace cozy::server
