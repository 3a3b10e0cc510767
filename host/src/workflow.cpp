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

// Safe reads: a field of the wrong type (a hand-edited or damaged file)
// reads as absent, never throws.
std::string str(const json& j, const char* key) {
  if (!j.is_object()) return {};
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}
std::int64_t number_or(const json& v, std::int64_t fallback) {
  if (v.is_number_integer()) return v.get<std::int64_t>();
  if (v.is_number_float()) {
    const double d = v.get<double>();
    if (d >= -9.0e18 && d <= 9.0e18) return static_cast<std::int64_t>(d);
  }
  return fallback;
}
std::int64_t integer(const json& j, const char* key, std::int64_t fallback) {
  if (!j.is_object()) return fallback;
  auto it = j.find(key);
  return it != j.end() ? number_or(*it, fallback) : fallback;
}
const json& array(const json& j, const char* key) {
  static const json empty = json::array();
  if (!j.is_object()) return empty;
  auto it = j.find(key);
  return it != j.end() && it->is_array() ? *it : empty;
}
const json& field(const json& j, const char* key) {
  static const json none;
  if (!j.is_object()) return none;
  auto it = j.find(key);
  return it != j.end() ? *it : none;
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
    for (const auto& n : array(graph, "nodes"))
      if (n.is_object() && n.contains("id"))
        if (auto id = as_id(n["id"])) s.nodes[*id] = &n;
    for (const auto& l : array(graph, "links")) {
        Link link;
        std::optional<std::int64_t> id;
        if (l.is_array() && l.size() >= 5) {  // [id, origin, origin_slot, target, target_slot, type]
          id = as_id(l[0]);
          link = {as_id(l[1]).value_or(0), number_or(l[2], 0), as_id(l[3]).value_or(0), number_or(l[4], 0)};
        } else if (l.is_object() && l.contains("id")) {
          id = as_id(l["id"]);
          link = {as_id(field(l, "origin_id")).value_or(0), integer(l, "origin_slot", 0),
                  as_id(field(l, "target_id")).value_or(0), integer(l, "target_slot", 0)};
        }
        if (!id) continue;
        s.links[*id] = link;
        if (link.target == kSubgraphOutput) s.outputs.push_back(link);
      }
    return s;
  }

  std::string name_of(const json& node) const {
    const std::string id = id_text(field(node, "id"));
    const std::string title = str(node, "title").empty() ? str(node, "type") : str(node, "title");
    return "UI node " + id + " ('" + title + "')";
  }

  void error(const json& node, const std::string& message, const std::string& input = {}) {
    Issue issue{id_text(field(node, "id")), str(node, "type"), input,
                name_of(node) + ": " + message};
    result_.errors.push_back(std::move(issue));
  }

  const json* subgraph(const json& node) const {
    auto it = subgraphs_.find(str(node, "type"));
    return it == subgraphs_.end() ? nullptr : it->second;
  }

  // The source behind input `input` (an element of a node's "inputs").
  Source source_of_input(const Scope& scope, const json& input, int depth) {
    auto id = as_id(field(input, "link"));
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
    const std::string type = str(node, "type");
    const std::int64_t mode = integer(node, "mode", 0);
    if (mode == 2) return {};  // muted: what it fed gets nothing
    const json& inputs = array(node, "inputs");
    if (type == "Reroute") return inputs.empty() ? Source{} : source_of_input(scope, inputs[0], depth + 1);
    if (type == "PrimitiveNode") {
      const json& values = array(node, "widgets_values");
      if (!values.empty()) return {Source::literal, values[0], "", 0};
      return {};
    }
    if (mode == 4) {  // bypassed: the input of the output's type, the same slot first
      const json& outputs = array(node, "outputs");
      const std::string out_type =
          slot >= 0 && slot < static_cast<std::int64_t>(outputs.size()) ? str(outputs[slot], "type") : "";
      std::optional<std::size_t> pick;
      for (std::size_t i = 0; i < inputs.size(); ++i) {
        const bool linked = as_id(field(inputs[i], "link")).has_value();
        const std::string in_type = str(inputs[i], "type");
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
    const json inputs = array(instance, "inputs");
    inner.input_source = [this, &outer, inputs, depth](std::int64_t slot) -> Source {
      if (slot < 0 || slot >= static_cast<std::int64_t>(inputs.size())) return {};
      return source_of_input(outer, inputs[slot], depth + 1);
    };
    return inner;
  }

  void emit(const Scope& scope, int depth) {
    for (const auto& [id, node_ptr] : scope.nodes) {
      const json& node = *node_ptr;
      const std::string type = str(node, "type");
      const std::int64_t mode = integer(node, "mode", 0);
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
      for (const auto& input : array(node, "inputs")) {
        const std::string name = str(input, "name");
        if (name.empty() || !as_id(field(input, "link"))) continue;
        Source s = source_of_input(scope, input, depth);
        if (s.kind == Source::link) api_inputs[name] = json::array({s.node, s.slot});
        else if (s.kind == Source::literal) api_inputs[name] = s.value;
      }
      json entry = {{"class_type", type}, {"inputs", api_inputs}};
      const std::string title = str(node, "title").empty() ? spec->display_name : str(node, "title");
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
        if (in.required == required && types::is_widget(in.type)) widgets.push_back(&in);
    const json& named = field(node, "widgets_values_named").is_object() ? field(node, "widgets_values_named")
                                                                         : field(node, "widgets_values");
    if (named.is_object()) {
      for (const InputSpec* in : widgets)
        if (named.contains(in->name)) out[in->name] = named[in->name];
      return;
    }
    const json& values = array(node, "widgets_values");
    std::size_t i = 0;
    for (const InputSpec* in : widgets) {
      if (i >= values.size()) break;
      out[in->name] = values[i++];
      const json ui = json::parse(in->ui, nullptr, false);
      const bool seed_like = in->type == types::INT && (in->name == "seed" || in->name == "noise_seed" ||
                                                        (ui.is_object() && ui.value("control_after_generate", false)));
      if (seed_like && i < values.size() && values[i].is_string() && kControlValues.count(values[i].get<std::string>()))
        ++i;  // the control_after_generate widget
      const bool upload = (in->file_folder == "input" || in->file_folder == "output") && std::find(in->file_extensions.begin(), in->file_extensions.end(),
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
