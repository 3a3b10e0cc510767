#include "comfy.hpp"

#include <cozy/host/validate.hpp>

#include <map>
#include <set>

namespace cozy::server::comfy {
namespace {

// The fixed phrase ComfyUI puts in "message" for each type; "details" says
// what exactly.
std::string phrase(const host::Issue& issue) {
  static const std::map<std::string, std::string> phrases = {
      {"required_input_missing", "Required input is missing"},
      {"bad_linked_input", "Bad linked input"},
      {"return_type_mismatch", "Return type mismatch between linked nodes"},
      {"invalid_input_type", "Invalid input type"},
      {"value_not_in_list", "Value not in list"},
      {"value_smaller_than_min", "Value smaller than min"},
      {"value_bigger_than_max", "Value bigger than max"},
      {"exception_during_validation", "Exception when validating node"},
      {"unknown_input", "Unknown input"},
      {"dependency_cycle", "Dependency cycle detected"},
      {"prompt_no_outputs", "Prompt has no outputs"},
      {"invalid_prompt", "Invalid prompt"}};
  if (issue.type == "missing_node_type")
    return "Node '" + issue.class_type + "' not found. The plugin that provides it may not be loaded.";
  auto it = phrases.find(issue.type);
  return it == phrases.end() ? issue.type : it->second;
}

// Output nodes each node feeds (itself included), for dependent_outputs.
std::map<std::string, std::vector<std::string>> dependent_outputs(const host::Graph& graph,
                                                                  const std::set<std::string>& outputs) {
  std::map<std::string, std::vector<std::string>> result;
  for (const auto& out : outputs) {
    std::vector<std::string> stack = {out};
    std::set<std::string> seen;
    while (!stack.empty()) {
      std::string id = stack.back();
      stack.pop_back();
      if (!seen.insert(id).second) continue;
      result[id].push_back(out);
      if (const host::GraphNode* node = graph.find(id))
        for (const auto& [name, value] : node->inputs)
          if (value.is_link) stack.push_back(value.link.node);
    }
  }
  return result;
}

}  // namespace

nlohmann::json error(const std::string& type, const std::string& message, const std::string& details,
                     const nlohmann::json& extra_info) {
  return {{"type", type}, {"message", message}, {"details", details}, {"extra_info", extra_info}};
}

nlohmann::json validation_failure(const std::vector<host::Issue>& issues, const host::Graph* graph,
                                  const std::vector<std::string>& output_nodes) {
  nlohmann::json node_errors = nlohmann::json::object();
  const std::set<std::string> outputs(output_nodes.begin(), output_nodes.end());
  const host::Issue* whole_prompt = nullptr;  // an error of the whole prompt becomes "error" itself
  for (const auto& issue : issues) {
    if (issue.node_id.empty() || issue.type == "missing_node_type" || issue.type == "prompt_no_outputs") {
      if (!whole_prompt) whole_prompt = &issue;
    }
  }
  std::map<std::string, std::vector<std::string>> dependents;
  if (graph) dependents = dependent_outputs(*graph, outputs);  // each node lists the outputs it would have fed
  std::string all_details;
  for (const auto& issue : issues) {
    all_details += (all_details.empty() ? "" : "\n") + phrase(issue) + ": " + issue.to_string();
    if (issue.node_id.empty()) continue;
    nlohmann::json& entry = node_errors[issue.node_id];
    if (entry.is_null()) {
      entry = {{"errors", nlohmann::json::array()},
               {"dependent_outputs", dependents.count(issue.node_id) ? dependents[issue.node_id] : std::vector<std::string>{}},
               {"class_type", issue.class_type}};
    }
    std::string details = issue.input.empty() ? issue.message : issue.input + ": " + issue.message;
    entry["errors"].push_back(error(issue.type, phrase(issue), details, issue.extra_info));
  }
  nlohmann::json top = whole_prompt ? error(whole_prompt->type, phrase(*whole_prompt), whole_prompt->to_string(),
                                            whole_prompt->extra_info)
                                    : error("prompt_outputs_failed_validation", "Prompt outputs failed validation",
                                            all_details);
  return {{"error", top}, {"node_errors", node_errors}};
}

nlohmann::json queue_info(std::size_t remaining) { return {{"exec_info", {{"queue_remaining", remaining}}}}; }

nlohmann::json history_item(const QueuedPrompt& prompt, const host::Graph* graph, const host::RunReport& report,
                            const std::vector<nlohmann::json>& messages, bool success, double started_ms,
                            double finished_ms) {
  nlohmann::json outputs = nlohmann::json::object();
  for (const auto& [id, ui] : report.ui) outputs[id] = ui;
  nlohmann::json meta = nlohmann::json::object();
  if (graph) {
    for (const auto& [id, ui] : report.ui) {
      const host::GraphNode* node = graph->find(id);
      meta[id] = {{"node_id", id},
                  {"display_node", id},
                  {"parent_node", nullptr},
                  {"real_node_id", id},
                  {"title", node ? node->title : ""}};
    }
  }
  nlohmann::json failures = nlohmann::json::array();
  for (const auto& f : report.failures)
    failures.push_back({{"node_id", f.node_id}, {"node_type", f.class_type}, {"exception_message", f.message},
                        {"exception_type", f.exception_type}});
  return {{"prompt", prompt.as_comfy()},
          {"outputs", outputs},
          {"status", {{"status_str", success ? "success" : "error"}, {"completed", success}, {"messages", messages}}},
          {"meta", meta},
          // Cozy's own: when it ran and for how long, what failed, what came from the cache.
          {"cozy",
           {{"started_ms", started_ms},
            {"finished_ms", finished_ms},
            {"seconds", report.seconds},
            {"interrupted", report.interrupted},
            {"cached", report.cached},
            {"failures", failures}}}};
}

nlohmann::json job(const QueuedPrompt& prompt, const std::string& status, bool detail) {
  const double created = prompt.extra_data.value("create_time", 0.0);
  nlohmann::json j = {{"id", prompt.prompt_id}, {"status", status}, {"create_time", created}, {"priority", prompt.number}};
  if (prompt.extra_data.contains("workflow_id")) j["workflow_id"] = prompt.extra_data["workflow_id"];
  if (detail) j["workflow"] = {{"prompt", prompt.prompt}, {"extra_data", prompt.extra_data}};
  return j;
}

nlohmann::json job_from_history(const std::string& prompt_id, const nlohmann::json& item, bool detail) {
  QueuedPrompt prompt;
  prompt.prompt_id = prompt_id;
  if (item.contains("prompt") && item["prompt"].is_array() && item["prompt"].size() >= 5) {
    prompt.number = item["prompt"][0].get<double>();
    prompt.prompt = item["prompt"][2];
    prompt.extra_data = item["prompt"][3];
  }
  const nlohmann::json cozy = item.value("cozy", nlohmann::json::object());
  const bool success = item["status"].value("status_str", "") == "success";
  const std::string status = success ? "completed" : cozy.value("interrupted", false) ? "cancelled" : "failed";
  nlohmann::json j = job(prompt, status, detail);
  j["execution_start_time"] = cozy.value("started_ms", 0.0);
  j["execution_end_time"] = cozy.value("finished_ms", 0.0);
  // The first image any node showed, and how many files all of them wrote.
  std::size_t count = 0;
  nlohmann::json preview = nullptr;
  const nlohmann::json outputs = item.value("outputs", nlohmann::json::object());
  for (const auto& [node, output] : outputs.items())
    for (const auto& [kind, list] : output.items()) {
      if (!list.is_array()) continue;
      count += list.size();
      if (preview.is_null() && kind == "images" && !list.empty()) {
        preview = list[0];
        preview["nodeId"] = node;
        preview["mediaType"] = "images";
      }
    }
  j["outputs_count"] = count;
  j["preview_output"] = preview;
  const nlohmann::json messages = item["status"].value("messages", nlohmann::json::array());
  if (!messages.empty() && messages.back().is_array() && messages.back()[0] == "execution_error")
    j["execution_error"] = messages.back()[1];
  if (detail) {
    j["outputs"] = outputs;
    j["update_time"] = cozy.value("finished_ms", 0.0);
    j["execution_status"] = item["status"];
    j["execution_meta"] = item.value("meta", nlohmann::json::object());
  }
  return j;
}

nlohmann::json node_info(const host::RegisteredNode& node, const host::FileFolders& folders) {
  nlohmann::json info = host::object_info(node.def.spec, &folders);
  info["python_module"] = "cozy." + node.plugin;
  return info;
}

}  // namespace cozy::server::comfy
