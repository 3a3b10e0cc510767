#include <cozy/host/workflow.hpp>

#include <algorithm>
#include <functional>
#include <map>
#include <optional>
#include <set>

namespace cozy::host {

namespace {

using json = nlohmann::json;

// Where an input's value comes from once the editor's helpers are resolved.
struct Source {
  enum Kind { none, literal, link } kind = none;
  json value;           // literal
  std::string node;     // link: the API node id
  std::int64_t slot = 0;
};

struct Link {
  std::int64_t origin = 0, origin_slot = 0, target = 0, target_slot = 0;
};

// Node ids in the editor are numbers (strings in some versions); the ids of
// a subgraph's input and output nodes are -10 and -20.
constexpr std::int64_t kSubgraphInput = -10, kSubgraphOutput = -20;

std::optional<std::int64_t> as_id(const json& v) {
  if (v.is_number_integer()) return v.get<std::int64_t>();
  if (v.is_string()) {
    try {
      std::size_t used = 0;
      const std::int64_t id = std::stoll(v.get<std::string>(), &used);
      if (used == v.get<std::string>().size()) return id;
    } catch (const std::exception&) {
    }
  }
  return std::nullopt;
}

std::string id_text(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  return v.dump();
}

const std::set<std::string> kIgnored = {"Note", "MarkdownNote"};
const std::set<std::string> kControlValues = {"fixed", "increment", "decrement", "randomize"};

struct Scope {
  std::map<std::int64_t, const json*> nodes;
  std::map<std::int64_t, Link> links;
  std::string prefix;                                      // "" or "5:" (and "5:3:" ...)
  std::function<Source(std::int64_t slot)> input_source;   // a subgraph's input slot, from outside
  std::vector<Link> outputs;                               // links into the subgraph's output node
};

class Converter {
 public:
  Converter(const json& workflow, const SpecSource& specs) : specs_(specs) {
    if (workflow.contains("definitions") && workflow["definitions"].is_object() &&
        workflow["definitions"].contains("subgraphs") && workflow["definitions"]["subgraphs"].is_array())
      for (const auto& sg : workflow["definitions"]["subgraphs"])
        if (sg.is_object() && sg.contains("id")) subgraphs_[id_text(sg["id"])] = &sg;
  }

  Conversion run(const json& workflow) {
    Scope top = scope_of(workflow, "");
    top.input_source = [](std::int64_t) { return Source{}; };
    emit(top, 0);
    return std::move(result_);
  }

 private:
  Scope scope_of(const json& graph, const std::string& prefix) {
    Scope s;
    s.prefix = prefix;
    if (graph.contains("nodes") && graph["nodes"].is_array())
      for (const auto& n : graph["nodes"])
        if (n.is_object() && n.contains("id"))
          if (auto id = as_id(n["id"])) s.nodes[*id] = &n;
    if (graph.contains("links") && graph["links"].is_array())
      for (const auto& l : graph["links"]) {
        Link link;
        std::optional<std::int64_t> id;
        if (l.is_array() && l.size() >= 5) {  // [id, origin, origin_slot, target, target_slot, type]
          id = as_id(l[0]);
          link = {as_id(l[1]).value_or(0), l[2].is_number() ? l[2].get<std::int64_t>() : 0, as_id(l[3]).value_or(0),
                  l[4].is_number() ? l[4].get<std::int64_t>() : 0};
        } else if (l.is_object() && l.contains("id")) {
          id = as_id(l["id"]);
          link = {as_id(l.value("origin_id", json(0))).value_or(0), l.value("origin_slot", std::int64_t{0}),
                  as_id(l.value("target_id", json(0))).value_or(0), l.value("target_slot", std::int64_t{0})};
        }
        if (!id) continue;
        s.links[*id] = link;
        if (link.target == kSubgraphOutput) s.outputs.push_back(link);
      }
    return s;
  }

  std::string name_of(const json& node) const {
    const std::string id = id_text(node.value("id", json()));
    const std::string title = node.contains("title") && node["title"].is_string() ? node["title"].get<std::string>()
                                                                                    : node.value("type", std::string());
    return "UI node " + id + " ('" + title + "')";
  }

  void error(const json& node, const std::string& message, const std::string& input = {}) {
    Issue issue{id_text(node.value("id", json())), node.value("type", std::string()), input,
                name_of(node) + ": " + message};
    result_.errors.push_back(std::move(issue));
  }

  const json* subgraph(const json& node) const {
    auto it = subgraphs_.find(node.value("type", std::string()));
    return it == subgraphs_.end() ? nullptr : it->second;
  }

  // The source behind input `input` (an element of a node's "inputs").
  Source source_of_input(const Scope& scope, const json& input, int depth) {
    if (!input.contains("link") || input["link"].is_null()) return {};
    auto id = as_id(input["link"]);
    if (!id) return {};
    auto it = scope.links.find(*id);
    if (it == scope.links.end()) return {};
    return resolve(scope, it->second.origin, it->second.origin_slot, depth);
  }

  Source resolve(const Scope& scope, std::int64_t origin, std::int64_t slot, int depth) {
    if (depth > 64) return {};  // a cycle of reroutes or bypasses
    if (origin == kSubgraphInput) return scope.input_source(slot);
    auto found = scope.nodes.find(origin);
    if (found == scope.nodes.end()) return {};
    const json& node = *found->second;
    const std::string type = node.value("type", std::string());
    const int mode = node.value("mode", 0);
    if (mode == 2) return {};  // muted: what it fed gets nothing
    const json inputs = node.value("inputs", json::array());
    if (type == "Reroute") return inputs.empty() ? Source{} : source_of_input(scope, inputs[0], depth + 1);
    if (type == "PrimitiveNode") {
      const json values = node.value("widgets_values", json::array());
      if (values.is_array() && !values.empty()) return {Source::literal, values[0], "", 0};
      return {};
    }
    if (mode == 4) {  // bypassed: the input of the output's type, the same slot first
      const json outputs = node.value("outputs", json::array());
      const std::string out_type =
          slot < static_cast<std::int64_t>(outputs.size()) ? outputs[slot].value("type", std::string()) : "";
      std::optional<std::size_t> pick;
      for (std::size_t i = 0; i < inputs.size(); ++i) {
        const bool linked = inputs[i].contains("link") && !inputs[i]["link"].is_null();
        const std::string in_type = inputs[i].value("type", std::string());
        if (!linked || (in_type != out_type && in_type != "*" && out_type != "*")) continue;
        if (!pick || static_cast<std::int64_t>(i) == slot) pick = i;
      }
      return pick ? source_of_input(scope, inputs[*pick], depth + 1) : Source{};
    }
    if (const json* sg = subgraph(node)) {
      Scope inner = inner_scope(scope, node, *sg, depth);
      for (const Link& l : inner.outputs)
        if (l.target_slot == slot) return resolve(inner, l.origin, l.origin_slot, depth + 1);
      return {};
    }
    return {Source::link, json(), scope.prefix + id_text(node["id"]), slot};
  }

  Scope inner_scope(const Scope& outer, const json& instance, const json& sg, int depth) {
    Scope inner = scope_of(sg, outer.prefix + id_text(instance["id"]) + ":");
    const json inputs = instance.value("inputs", json::array());
    inner.input_source = [this, &outer, inputs, depth](std::int64_t slot) -> Source {
      if (slot < 0 || slot >= static_cast<std::int64_t>(inputs.size())) return {};
      return source_of_input(outer, inputs[slot], depth + 1);
    };
    return inner;
  }

  void emit(const Scope& scope, int depth) {
    for (const auto& [id, node_ptr] : scope.nodes) {
      const json& node = *node_ptr;
      const std::string type = node.value("type", std::string());
      const int mode = node.value("mode", 0);
      if (kIgnored.count(type) || type == "PrimitiveNode" || type == "Reroute" || mode == 2 || mode == 4) continue;
      if (const json* sg = subgraph(node)) {
        if (depth > 16) {
          error(node, "subgraphs nest too deep");
          continue;
        }
        Scope inner = inner_scope(scope, node, *sg, depth);
        emit(inner, depth + 1);
        continue;
      }
      const NodeSpec* spec = specs_.find_spec(type);
      if (!spec) {
        error(node, "unknown node type '" + type + "'");
        continue;
      }
      json api_inputs = json::object();
      widget_inputs(node, *spec, api_inputs);
      for (const auto& input : node.value("inputs", json::array())) {
        if (!input.is_object() || !input.contains("name")) continue;
        const std::string name = input["name"].get<std::string>();
        const bool linked = input.contains("link") && !input["link"].is_null();
        if (!linked) continue;
        Source s = source_of_input(scope, input, depth);
        if (s.kind == Source::link) api_inputs[name] = json::array({s.node, s.slot});
        else if (s.kind == Source::literal) api_inputs[name] = s.value;
      }
      json entry = {{"class_type", type}, {"inputs", api_inputs}};
      const std::string title = node.contains("title") && node["title"].is_string() ? node["title"].get<std::string>()
                                                                                    : spec->display_name;
      entry["_meta"] = {{"title", title.empty() ? type : title}};
      result_.prompt[scope.prefix + id_text(node["id"])] = std::move(entry);
    }
  }

  // widgets_values to inputs, by the order the node type declares its
  // widget inputs (required, then optional), as the editor makes widgets.
  void widget_inputs(const json& node, const NodeSpec& spec, json& out) {
    std::vector<const InputSpec*> widgets;
    for (bool required : {true, false})
      for (const auto& in : spec.inputs)
        if (in.required == required && types::is_primitive(in.type)) widgets.push_back(&in);
    const json named = node.contains("widgets_values_named") ? node["widgets_values_named"]
                       : node.contains("widgets_values") && node["widgets_values"].is_object() ? node["widgets_values"]
                                                                                              : json();
    if (named.is_object()) {
      for (const InputSpec* in : widgets)
        if (named.contains(in->name)) out[in->name] = named[in->name];
      return;
    }
    const json values = node.value("widgets_values", json::array());
    if (!values.is_array()) return;
    std::size_t i = 0;
    for (const InputSpec* in : widgets) {
      if (i >= values.size()) break;
      out[in->name] = values[i++];
      const bool seed_like = in->type == types::INT && (in->name == "seed" || in->name == "noise_seed");
      if (seed_like && i < values.size() && values[i].is_string() && kControlValues.count(values[i].get<std::string>()))
        ++i;  // the control_after_generate widget
      const bool upload = in->file_folder == "input" && std::find(in->file_extensions.begin(), in->file_extensions.end(),
                                                                  ".png") != in->file_extensions.end();
      if (upload && i < values.size() && values[i] == "image") ++i;  // the upload button
    }
  }

  const SpecSource& specs_;
  std::map<std::string, const json*> subgraphs_;
  Conversion result_;
};

}  // namespace

bool is_ui_workflow(const nlohmann::json& document) {
  return document.is_object() && document.contains("nodes") && document["nodes"].is_array() &&
         document.contains("links");
}

Conversion convert_ui_workflow(const nlohmann::json& workflow, const SpecSource& specs) {
  if (!is_ui_workflow(workflow)) {
    Conversion c;
    c.errors.push_back({"", "", "", "not an editor workflow: no \"nodes\" and \"links\""});
    return c;
  }
  return Converter(workflow, specs).run(workflow);
}

}  // namespace cozy::host
