#include <cozy/host/graph.hpp>

#include <algorithm>

namespace cozy::host {

std::string Issue::to_string() const {
  std::string out;
  if (!node_id.empty()) {
    out = "node " + node_id;
    if (!class_type.empty()) out += " (" + class_type + ")";
    if (!input.empty()) out += ", input '" + input + "'";
    out += ": ";
  }
  return out + message;
}

nlohmann::json Issue::to_json() const {
  return {{"node_id", node_id}, {"class_type", class_type}, {"input", input},
          {"message", message}, {"type", type},       {"extra_info", extra_info}};
}

nlohmann::json literal_json(const Literal& literal) {
  return std::visit(
      [](const auto& v) -> nlohmann::json {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, std::monostate>) return nullptr;
        else return v;
      },
      literal);
}

namespace {

std::pair<std::size_t, std::size_t> line_and_column(std::string_view text, std::size_t byte) {
  std::size_t line = 1, column = 1;
  for (std::size_t i = 0; i < byte && i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++line;
      column = 1;
    } else {
      ++column;
    }
  }
  return {line, column};
}

// A link is a two-element array: a node id (string; a number is accepted,
// as some exporters write one) and a non-negative integer output index.
bool parse_link(const nlohmann::json& value, Link& link) {
  if (!value.is_array() || value.size() != 2) return false;
  const auto& id = value[0];
  const auto& index = value[1];
  if (id.is_string()) {
    link.node = id.get<std::string>();
  } else if (id.is_number_integer()) {
    link.node = std::to_string(id.get<long long>());
  } else {
    return false;
  }
  if (!index.is_number_integer() || index.get<long long>() < 0 || index.get<long long>() > 1 << 20) return false;
  link.output = index.get<int>();
  return true;
}

// List literals may nest, but not without bound: later stages recurse.
constexpr int kMaxListDepth = 32;
int nesting(const nlohmann::json& value, int depth = 0) {
  if (depth > kMaxListDepth || !value.is_array()) return depth;
  int deepest = depth;
  for (const auto& item : value) deepest = std::max(deepest, nesting(item, depth + 1));
  return deepest;
}

}  // namespace

ParseResult parse_graph(std::string_view text) {
  nlohmann::json document;
  try {
    document = nlohmann::json::parse(text.begin(), text.end());
  } catch (const nlohmann::json::parse_error& e) {
    // e.byte is 1-based and points just past the offending character.
    auto [line, column] = line_and_column(text, e.byte == 0 ? 0 : e.byte - 1);
    std::string what = e.what();
    // Drop nlohmann's "[json.exception.parse_error.101] parse error at line 1, column 2: " prefix.
    auto colon = what.find(": ");
    if (colon != std::string::npos) what = what.substr(colon + 2);
    ParseResult result;
    result.errors.push_back({"", "", "", "malformed JSON at line " + std::to_string(line) + ", column " +
                                             std::to_string(column) + ": " + what});
    return result;
  } catch (const nlohmann::json::exception& e) {
    // A number too large for a double is reported without a position.
    std::string what = e.what();
    auto bracket = what.find("] ");
    if (bracket != std::string::npos) what = what.substr(bracket + 2);
    ParseResult result;
    result.errors.push_back({"", "", "", "malformed JSON: " + what});
    return result;
  }
  return parse_graph_json(document);
}

ParseResult parse_graph_json(const nlohmann::json& document_in) {
  ParseResult result;
  auto fail = [&](std::string id, std::string input, std::string message, std::string class_type = {}) {
    result.errors.push_back({std::move(id), std::move(class_type), std::move(input), std::move(message)});
  };
  const nlohmann::json* document = &document_in;
  if (document->is_object() && document->contains("prompt") && (*document)["prompt"].is_object()) {
    document = &(*document)["prompt"];  // the body of ComfyUI's POST /prompt
  }
  if (!document->is_object()) {
    fail("", "", "a graph is a JSON object of node id -> node, got " + std::string(document->type_name()));
    return result;
  }
  Graph graph;
  graph.nodes.reserve(document->size());
  for (const auto& [id, body] : document->items()) {
    if (!body.is_object()) {
      fail(id, "", "a node is a JSON object with class_type and inputs, got " + std::string(body.type_name()));
      continue;
    }
    GraphNode node;
    node.id = id;
    auto class_type = body.find("class_type");
    if (class_type == body.end() || !class_type->is_string()) {
      fail(id, "", class_type == body.end() ? "missing class_type" : "class_type must be a string");
      continue;
    }
    node.class_type = class_type->get<std::string>();
    if (auto meta = body.find("_meta"); meta != body.end() && meta->is_object()) {
      if (auto title = meta->find("title"); title != meta->end() && title->is_string())
        node.title = title->get<std::string>();
    }
    bool ok = true;
    if (auto inputs = body.find("inputs"); inputs != body.end()) {
      if (!inputs->is_object()) {
        fail(id, "", "inputs must be a JSON object, got " + std::string(inputs->type_name()), node.class_type);
        continue;
      }
      for (const auto& [name, value] : inputs->items()) {
        InputValue input;
        if (value.is_array()) {
          if (!parse_link(value, input.link)) {
            fail(id, name,
                 "a link is [node_id, output_index]; a list literal is written {\"__value__\": [...]}",
                 node.class_type);
            ok = false;
            continue;
          }
          input.is_link = true;
        } else if (value.is_object() && !value.contains("__value__")) {
          // An object literal (a BOUNDING_BOX's {"x": ..., "width": ...}):
          // flat, of scalars; validation checks it against the input's type.
          bool flat = value.size() <= 16;
          for (const auto& [key, item] : value.items()) flat = flat && !item.is_structured() && !item.is_null();
          if (!flat) {
            fail(id, name,
                 "an object literal holds at most 16 keys with scalar values (a list literal is written "
                 "{\"__value__\": [...]})",
                 node.class_type);
            ok = false;
            continue;
          }
          input.literal = value;
        } else if (value.is_object()) {
          auto list = value.find("__value__");
          if (value.size() != 1 || !list->is_array()) {
            fail(id, name, "a list literal is written {\"__value__\": [...]}", node.class_type);
            ok = false;
            continue;
          }
          if (nesting(*list) > kMaxListDepth) {
            fail(id, name, "list literal nested more than " + std::to_string(kMaxListDepth) + " deep", node.class_type);
            ok = false;
            continue;
          }
          input.is_list = true;
          input.literal = *list;
        } else if (value.is_null()) {
          fail(id, name, "null is not a value", node.class_type);
          ok = false;
          continue;
        } else {
          input.literal = value;
        }
        node.inputs.emplace_back(name, std::move(input));
      }
    }
    if (!ok) continue;
    graph.index.emplace(node.id, graph.nodes.size());
    graph.nodes.push_back(std::move(node));
  }
  if (result.errors.empty()) result.graph = std::move(graph);
  return result;
}

std::string apply_override(Graph& graph, const std::string& assignment) {
  auto eq = assignment.find('=');
  auto dot = assignment.find('.');
  if (eq == std::string::npos || dot == std::string::npos || dot > eq || dot == 0 || dot + 1 == eq)
    return "--set expects ID.INPUT=VALUE, got '" + assignment + "'";
  std::string id = assignment.substr(0, dot);
  std::string name = assignment.substr(dot + 1, eq - dot - 1);
  std::string text = assignment.substr(eq + 1);
  GraphNode* node = graph.find(id);
  if (!node) return "--set " + assignment + ": there is no node " + id;
  InputValue value;
  try {
    value.literal = nlohmann::json::parse(text);
    if (value.literal.is_array() || value.literal.is_object() || value.literal.is_null())
      value.literal = text;  // only scalars are read as JSON; anything else is a string
  } catch (const nlohmann::json::parse_error&) {
    value.literal = text;
  }
  if (InputValue* existing = node->input(name)) {
    *existing = std::move(value);
  } else {
    node->inputs.emplace_back(name, std::move(value));
  }
  return {};
}

}  // namespace cozy::host
