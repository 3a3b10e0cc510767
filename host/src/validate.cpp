#include <cozy/host/validate.hpp>

#include <boost/graph/adjacency_list.hpp>
#include <boost/graph/strong_components.hpp>

#include <cxxabi.h>

#include <algorithm>
#include <cstdlib>
#include <typeinfo>
#include <cmath>
#include <map>
#include <sstream>
#include <string_view>
#include <unordered_map>

namespace cozy::host {
namespace {

std::string describe(const nlohmann::json& value) {
  std::string text = value.dump();
  if (text.size() > 60) text = text.substr(0, 57) + "...";
  return text;
}

std::string join(const std::vector<std::string>& items, std::size_t limit = 40) {
  std::string out;
  for (std::size_t i = 0; i < items.size() && i < limit; ++i) out += (i ? ", " : "") + items[i];
  if (items.size() > limit) out += ", ... (" + std::to_string(items.size() - limit) + " more)";
  return out;
}

std::string number_text(double v) {
  if (std::floor(v) == v && std::fabs(v) < 1e15) return std::to_string(static_cast<long long>(v));
  std::ostringstream s;
  s << v;
  return s.str();
}

// What is wrong with a value: a message and ComfyUI's type for it.
struct Problem {
  std::string type, message;
  bool empty() const { return message.empty(); }
};

// Checks one literal against the input it is given to.
Problem check_literal(const InputSpec& spec, const nlohmann::json& value) {
  const std::string& type = spec.type;
  if (type == types::ANY) return {};
  if (value.is_object() && type != types::BOUNDING_BOX)
    return {"invalid_input_type", "expects " + type + ", got the object " + describe(value) +
                                      " (object literals are for BOUNDING_BOX inputs)"};
  if (type == types::BOUNDING_BOX) {
    if (!value.is_object())
      return {"invalid_input_type",
              "expects a BOUNDING_BOX such as {\"x\": 0, \"y\": 0, \"width\": 512, \"height\": 512}, got " +
                  describe(value)};
    for (const auto& [key, item] : value.items()) {
      const bool size = key == "width" || key == "height";
      if (!size && key != "x" && key != "y")
        return {"invalid_input_type", "a BOUNDING_BOX has x, y, width and height, not '" + key + "'"};
      if (!item.is_number_integer() || item.get<std::int64_t>() < (size ? 1 : 0) || item.get<std::int64_t>() > (1 << 24))
        return {"invalid_input_type", "a BOUNDING_BOX's " + key + " is a whole number of pixels, at least " +
                                          (size ? "1" : "0") + ", got " + describe(item)};
    }
    return {};
  }
  if (!types::is_primitive(type))
    return {"invalid_input_type", "expects a link from an output of type " + type + ", got the literal " + describe(value)};
  if (type == types::BOOLEAN) {
    if (!value.is_boolean()) return {"invalid_input_type", "expects BOOLEAN (true or false), got " + describe(value)};
    return {};
  }
  if (type == types::STRING) {
    if (!value.is_string()) return {"invalid_input_type", "expects STRING, got " + describe(value)};
    if (!spec.choices.empty() &&
        std::find(spec.choices.begin(), spec.choices.end(), value.get<std::string>()) == spec.choices.end())
      return {"value_not_in_list", "'" + value.get<std::string>() + "' is not among the choices: " + join(spec.choices)};
    return {};
  }
  double number = 0;
  if (type == types::INT) {
    if (!value.is_number_integer()) return {"invalid_input_type", "expects INT, got " + describe(value)};
    number = value.is_number_unsigned() ? static_cast<double>(value.get<unsigned long long>())
                                        : static_cast<double>(value.get<long long>());
  } else {  // FLOAT
    if (!value.is_number()) return {"invalid_input_type", "expects FLOAT, got " + describe(value)};
    number = value.get<double>();
  }
  if ((spec.min && number < *spec.min) || (spec.max && number > *spec.max)) {
    return {spec.min && number < *spec.min ? "value_smaller_than_min" : "value_bigger_than_max",
            describe(value) + " is out of range [" + (spec.min ? number_text(*spec.min) : "-inf") + ", " +
                (spec.max ? number_text(*spec.max) : "inf") + "]"};
  }
  return {};
}

}  // namespace

std::size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t above = row[j];
      bool same = std::tolower(static_cast<unsigned char>(a[i - 1])) == std::tolower(static_cast<unsigned char>(b[j - 1]));
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (same ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

std::vector<std::string> similar_names(const std::string& name, const std::vector<std::string>& known) {
  std::vector<std::string> near;
  for (const auto& candidate : known)
    if (edit_distance(candidate, name) <= std::max<std::size_t>(2, name.size() / 4)) near.push_back(candidate);
  return near;
}

std::vector<const InputValue*> match_inputs(const GraphNode& node, const NodeSpec& spec,
                                            std::vector<std::string>* unknown) {
  std::vector<const InputValue*> given(spec.inputs.size(), nullptr);
  constexpr std::size_t kLinearLimit = 16;
  std::unordered_map<std::string_view, std::size_t> index;
  if (spec.inputs.size() > kLinearLimit) {
    index.reserve(spec.inputs.size());
    for (std::size_t i = 0; i < spec.inputs.size(); ++i) index.emplace(spec.inputs[i].name, i);
  }
  for (const auto& [name, value] : node.inputs) {
    std::size_t position = spec.inputs.size();
    if (spec.inputs.size() > kLinearLimit) {
      if (auto it = index.find(name); it != index.end()) position = it->second;
    } else {
      for (std::size_t i = 0; i < spec.inputs.size(); ++i)
        if (spec.inputs[i].name == name) position = i;
    }
    if (position < spec.inputs.size()) given[position] = &value;
    else if (unknown) unknown->push_back(name);
  }
  return given;
}

std::vector<std::string> list_files(const std::filesystem::path& folder, const std::vector<std::string>& extensions) {
  namespace fs = std::filesystem;
  std::vector<std::string> files;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(folder, fs::directory_options::skip_permission_denied, ec), end;
       !ec && it != end; it.increment(ec)) {
    if (!it->is_regular_file(ec)) continue;
    const std::string name = it->path().filename().string();
    bool wanted = extensions.empty();
    for (const auto& e : extensions)
      wanted = wanted || (name.size() >= e.size() && name.compare(name.size() - e.size(), e.size(), e) == 0);
    if (wanted) files.push_back(it->path().lexically_relative(folder).generic_string());
  }
  std::sort(files.begin(), files.end());
  return files;
}

std::string strip_folder_annotation(const std::string& name, const std::string& folder) {
  const std::string suffix = " [" + folder + "]";
  if (name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0)
    return name.substr(0, name.size() - suffix.size());
  return name;
}

namespace {
// A file input's literal names a file in its folder (or an absolute path).
std::string check_file(const InputSpec& spec, const nlohmann::json& value, const FileFolders& folders) {
  namespace fs = std::filesystem;
  auto folder = folders.find(spec.file_folder);
  if (folder == folders.end() || !value.is_string()) return {};
  const fs::path name(strip_folder_annotation(value.get<std::string>(), spec.file_folder));
  std::error_code ec;
  if (name.is_absolute()) return fs::is_regular_file(name, ec) ? "" : "no file " + name.string();
  if (fs::is_regular_file(folder->second / name, ec)) return {};
  std::vector<std::string> files = list_files(folder->second, spec.file_extensions);
  if (files.size() > 12) files.resize(12), files.push_back("...");
  return "'" + name.string() + "' is not a file in the " + spec.file_folder + " folder " + folder->second.string() +
         (files.empty() ? " (it has none that fit)" : "; files there: " + join(files));
}
}  // namespace

namespace {
// The checks of one node; every error goes to `errors`.
void validate_node(const Graph& graph, const GraphNode& node, const SpecSource& specs, const FileFolders* folders,
                   std::vector<Issue>& errors, bool& any_output) {
  auto error = [&](const std::string& input, std::string type, std::string message,
                   nlohmann::json extra = nlohmann::json::object()) {
    if (!input.empty()) extra["input_name"] = input;
    Issue issue{node.id, node.class_type, input, std::move(message)};
    issue.type = std::move(type);
    issue.extra_info = std::move(extra);
    errors.push_back(std::move(issue));
  };
  {
    const NodeSpec* spec = specs.find_spec(node.class_type);
    if (!spec) {
      std::vector<std::string> near = similar_names(node.class_type, specs.class_types());
      error("", "missing_node_type",
            "unknown class_type '" + node.class_type + "'" +
                (near.empty() ? std::string() : "; did you mean: " + join(near) + "?"),
            {{"node_id", node.id}, {"class_type", node.class_type}, {"node_title", node.title}});
      return;
    }
    any_output = any_output || spec->output_node;

    std::vector<std::string> unknown;
    std::vector<const InputValue*> given = match_inputs(node, *spec, &unknown);
    for (const auto& name : unknown) {
      std::vector<std::string> names;
      for (const auto& in : spec->inputs) names.push_back(in.name);
      error(name, "unknown_input",
            "unknown input; " + (names.empty() ? std::string("this node takes no inputs") : "valid inputs: " + join(names)));
    }
    for (std::size_t k = 0; k < spec->inputs.size(); ++k) {
      const InputSpec& in = spec->inputs[k];
      const InputValue* value = given[k];
      const std::string& name = in.name;
      if (!value) {
        if (in.required && !has_value(in.default_value))
          error(name, "required_input_missing", "missing required input of type " + in.type);
        continue;
      }
      if (value->is_link) {
        const GraphNode* from = graph.find(value->link.node);
        if (!from) {
          error(name, "bad_linked_input", "links to node " + value->link.node + ", which is not in the graph",
                {{"received_value", {value->link.node, value->link.output}}});
          continue;
        }
        const NodeSpec* from_spec = specs.find_spec(from->class_type);
        if (!from_spec) continue;  // reported on that node
        if (value->link.output >= static_cast<int>(from_spec->outputs.size())) {
          error(name, "bad_linked_input",
                "links to output " + std::to_string(value->link.output) + " of node " + from->id + " (" +
                    from->class_type + "), which has " + std::to_string(from_spec->outputs.size()) + " output" +
                    (from_spec->outputs.size() == 1 ? "" : "s"),
                {{"received_value", {value->link.node, value->link.output}}});
          continue;
        }
        const OutputSpec& out = from_spec->outputs[static_cast<std::size_t>(value->link.output)];
        if (!types_compatible(out.type, in.type))
          error(name, "return_type_mismatch",
                "type mismatch: expects " + in.type + ", but output " + std::to_string(value->link.output) +
                    " of node " + from->id + " (" + from->class_type + ") is " + out.type,
                {{"received_type", out.type}, {"linked_node", {value->link.node, value->link.output}}});
      } else if (value->is_list) {
        if (in.type != types::ANY)
          error(name, "invalid_input_type", "takes a single " + in.type + ", not a list",
                {{"received_value", value->literal}});
      } else if (Problem problem = check_literal(in, value->literal); !problem.empty()) {
        error(name, problem.type, problem.message, {{"received_value", value->literal}});
      } else if (folders && !in.file_folder.empty()) {
        if (std::string missing = check_file(in, value->literal, *folders); !missing.empty())
          error(name, "value_not_in_list", missing, {{"received_value", value->literal}});
      }
    }
  }
}

// The C++ type of the exception being handled, demangled.
std::string exception_type_name() {
  const std::type_info* type = abi::__cxa_current_exception_type();
  if (!type) return "unknown";
  int status = 0;
  char* name = abi::__cxa_demangle(type->name(), nullptr, nullptr, &status);
  std::string text = status == 0 && name ? name : type->name();
  std::free(name);
  return text;
}
}  // namespace

std::vector<Issue> drop_unknown_inputs(Graph& graph, const SpecSource& specs) {
  std::vector<Issue> warnings;
  for (GraphNode& node : graph.nodes) {
    const NodeSpec* spec = specs.find_spec(node.class_type);
    if (!spec) continue;
    auto known = [&](const std::string& name) {
      return std::any_of(spec->inputs.begin(), spec->inputs.end(), [&](const InputSpec& in) { return in.name == name; });
    };
    for (auto it = node.inputs.begin(); it != node.inputs.end();) {
      if (known(it->first)) {
        ++it;
        continue;
      }
      std::vector<std::string> names;
      for (const auto& in : spec->inputs) names.push_back(in.name);
      Issue issue{node.id, node.class_type, it->first,
                  "unknown input, ignored; " +
                      (names.empty() ? std::string("this node takes no inputs") : "valid inputs: " + join(names))};
      issue.type = "unknown_input";
      issue.extra_info = {{"input_name", it->first}};
      warnings.push_back(std::move(issue));
      it = node.inputs.erase(it);
    }
  }
  return warnings;
}

std::vector<Issue> validate(const Graph& graph, const SpecSource& specs, const FileFolders* folders) {
  std::vector<Issue> errors;
  bool any_output = false;

  for (const GraphNode& node : graph.nodes) {
    try {
      validate_node(graph, node, specs, folders, errors, any_output);
    } catch (const std::exception& e) {
      Issue issue{node.id, node.class_type, "", std::string("validation failed: ") + e.what()};
      issue.type = "exception_during_validation";
      issue.extra_info = {{"exception_type", exception_type_name()}, {"exception_message", e.what()}};
      errors.push_back(std::move(issue));
    }
  }

  // Cycles: every strongly connected component of more than one node, and
  // every node that links to itself, lies on a cycle.
  using Digraph = boost::adjacency_list<boost::vecS, boost::vecS, boost::directedS>;
  Digraph g(graph.nodes.size());
  std::vector<bool> self_loop(graph.nodes.size(), false);
  for (std::size_t i = 0; i < graph.nodes.size(); ++i) {
    for (const auto& [name, value] : graph.nodes[i].inputs) {
      if (!value.is_link) continue;
      auto it = graph.index.find(value.link.node);
      if (it == graph.index.end()) continue;
      if (it->second == i) self_loop[i] = true;
      boost::add_edge(it->second, i, g);
    }
  }
  std::vector<int> component(graph.nodes.size());
  int count = graph.nodes.empty() ? 0 : boost::strong_components(g, component.data());
  std::vector<std::vector<std::size_t>> members(static_cast<std::size_t>(count));
  for (std::size_t i = 0; i < graph.nodes.size(); ++i) members[static_cast<std::size_t>(component[i])].push_back(i);
  for (const auto& cycle : members) {
    if (cycle.empty() || (cycle.size() == 1 && !self_loop[cycle.front()])) continue;
    std::vector<std::string> ids;
    for (std::size_t i : cycle) ids.push_back(graph.nodes[i].id);
    std::sort(ids.begin(), ids.end());
    const GraphNode& first = graph.nodes[cycle.front()];
    Issue issue{first.id, first.class_type, "", "cycle through nodes " + join(ids, 100)};
    issue.type = "dependency_cycle";
    issue.extra_info = {{"nodes", ids}};
    errors.push_back(std::move(issue));
  }

  if (!any_output) {
    std::vector<std::string> outputs;
    for (const auto& type : specs.class_types())
      if (const NodeSpec* s = specs.find_spec(type); s && s->output_node) outputs.push_back(type);
    Issue issue{"", "", "", "the graph has no output node, so nothing would run" +
                                (outputs.empty() ? std::string() : "; output nodes: " + join(outputs))};
    issue.type = "prompt_no_outputs";
    errors.push_back(std::move(issue));
  }
  return errors;
}

}  // namespace cozy::host
