// cozy/host/graph.hpp — a graph file in ComfyUI's API format, parsed.
//
//   { "3": { "class_type": "SaveImage",
//            "inputs": { "images": ["2", 0], "filename_prefix": "out" },
//            "_meta": { "title": "Save" } } }
//
// Also accepted: the body of ComfyUI's `POST /prompt`, `{"prompt": {...}}`.
// Parsing checks the shape of the file only; what the nodes mean is checked
// by `validate()`. Torch-free, so the fuzzer builds without LibTorch.
#pragma once

#include <cozy/literal.hpp>

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace cozy::host {

/// `[node_id, output_index]` in the file.
struct Link {
  std::string node;
  int output = 0;
};

/// One input as written: a link, or a literal (a list literal is kept as
/// the JSON array inside `{"__value__": [...]}`, with `is_list` set; an
/// object literal, such as a BOUNDING_BOX, as the flat JSON object).
struct InputValue {
  bool is_link = false;
  bool is_list = false;
  Link link;
  nlohmann::json literal;
};

struct GraphNode {
  std::string id;
  std::string class_type;
  std::string title;  ///< `_meta.title`, may be empty
  std::vector<std::pair<std::string, InputValue>> inputs;

  const InputValue* input(const std::string& name) const {
    for (const auto& [n, v] : inputs)
      if (n == name) return &v;
    return nullptr;
  }
  InputValue* input(const std::string& name) {
    for (auto& [n, v] : inputs)
      if (n == name) return &v;
    return nullptr;
  }
};

struct Graph {
  std::vector<GraphNode> nodes;
  std::unordered_map<std::string, std::size_t> index;  ///< id -> position in nodes

  const GraphNode* find(const std::string& id) const {
    auto it = index.find(id);
    return it == index.end() ? nullptr : &nodes[it->second];
  }
  GraphNode* find(const std::string& id) {
    auto it = index.find(id);
    return it == index.end() ? nullptr : &nodes[it->second];
  }
};

/// One problem found in a graph: where, and what is wrong.
struct Issue {
  std::string node_id;     ///< empty for problems of the whole file
  std::string class_type;  ///< empty when unknown
  std::string input;       ///< empty when the problem is not about one input
  std::string message;
  /// What kind of problem, by ComfyUI's names where it has one
  /// (required_input_missing, bad_linked_input, return_type_mismatch,
  /// invalid_input_type, value_not_in_list, value_smaller_than_min,
  /// value_bigger_than_max, exception_during_validation, missing_node_type,
  /// prompt_no_outputs, invalid_prompt) and Cozy's own (unknown_input,
  /// dependency_cycle). A server answers ComfyUI's node_errors with it.
  std::string type = "invalid_prompt";
  /// ComfyUI's extra_info: input_name, received_value, received_type,
  /// linked_node, exception_type, as the type calls for.
  nlohmann::json extra_info = nlohmann::json::object();

  /// "node 3 (SaveImage), input 'images': <message>"
  std::string to_string() const;
  nlohmann::json to_json() const;
};

/// A literal as JSON (null for "no value").
nlohmann::json literal_json(const Literal& literal);

struct ParseResult {
  std::optional<Graph> graph;  ///< set only if `errors` is empty
  std::vector<Issue> errors;
};

/// Parses graph text; malformed JSON is reported with its line and column.
ParseResult parse_graph(std::string_view text);
/// Parses an already-decoded JSON document.
ParseResult parse_graph_json(const nlohmann::json& document);

/// Sets `ID.INPUT=VALUE` (VALUE is JSON if it parses as JSON, else a string).
/// Returns an error message, or an empty string on success.
std::string apply_override(Graph& graph, const std::string& assignment);

}  // namespace cozy::host
