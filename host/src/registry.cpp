#include <cozy/host/registry.hpp>
#include <cozy/check.hpp>
#include <cozy/plugin.hpp>

#include <boost/dll/runtime_symbol_info.hpp>
#include <boost/dll/shared_library.hpp>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>


namespace cozy::host {
namespace {

using Library = boost::dll::shared_library;

// Objects a plugin makes hold its library: the object is released first,
// then the library (pair members are destroyed in reverse order).
ObjectPtr keep_library_alive(ObjectPtr object, const std::shared_ptr<void>& library) {
  if (!object) return object;
  auto holder = std::make_shared<std::pair<std::shared_ptr<void>, ObjectPtr>>(library, object);
  return ObjectPtr(holder, object.get());
}

// Wraps a plugin's run function so every object it returns pins the plugin.
// A struct, not a lambda, so that `run` is destroyed before `library`.
struct PinningRun {
  std::shared_ptr<void> library;
  RunFunction run;
  Outputs operator()(const Inputs& inputs, Context& context) const {
    Outputs outputs = run(inputs, context);
    for (auto& value : outputs)
      if (value.is_object()) value = Value(keep_library_alive(value.as_object(), library));
    return outputs;
  }
};

class StagingRegistrar : public Registrar {
 public:
  void add(NodeDef def) override { defs.push_back(std::move(def)); }
  std::vector<NodeDef> defs;
};

std::string version_text(std::uint32_t major, std::uint32_t minor) {
  return std::to_string(major) + "." + std::to_string(minor);
}

// Checks the descriptor before anything else in the library is called.
std::string check_descriptor(const PluginDescriptor* d) {
  if (!d) return "the entry point returned no descriptor";
  if (d->size < sizeof(PluginDescriptor)) return "the descriptor is from an older, incompatible SDK";
  std::string plugin_abi = version_text(d->sdk_abi_major, d->sdk_abi_minor);
  std::string host_abi = version_text(COZY_SDK_ABI_MAJOR, COZY_SDK_ABI_MINOR);
  if (d->sdk_abi_major != COZY_SDK_ABI_MAJOR)
    return "built for SDK ABI " + plugin_abi + ", but the host has SDK ABI " + host_abi +
           " (major versions differ)";
  if (d->sdk_abi_minor > COZY_SDK_ABI_MINOR)
    return "built for SDK ABI " + plugin_abi + ", newer than the host's SDK ABI " + host_abi;
  if (!d->torch_version || std::strcmp(d->torch_version, TORCH_VERSION) != 0)
    return std::string("built against LibTorch ") + (d->torch_version ? d->torch_version : "(none)") +
           ", but the host runs LibTorch " TORCH_VERSION;
  if (!d->compiler_abi || std::strcmp(d->compiler_abi, COZY_COMPILER_ABI) != 0)
    return std::string("built with compiler ABI ") + (d->compiler_abi ? d->compiler_abi : "(none)") +
           ", but the host has " COZY_COMPILER_ABI;
  if (!d->name || !*d->name) return "the descriptor has no plugin name";
  if (!d->register_nodes) return "the descriptor has no register function";
  return {};
}

// The editor options a spec carries as JSON text must be JSON objects; the
// SDK's own checks cannot parse JSON (it has no JSON library).
std::vector<std::string> ui_problems(const NodeDef& def) {
  std::vector<std::string> problems;
  auto check = [&](const std::string& text, const std::string& where) {
    if (text.empty()) return;
    nlohmann::json parsed = nlohmann::json::parse(text, nullptr, false);
    if (parsed.is_discarded() || !parsed.is_object())
      problems.push_back(where + " has ui options that are not a JSON object: " + text.substr(0, 60));
  };
  const std::string node = "node " + def.spec.class_type;
  check(def.spec.ui, node);
  for (const auto& in : def.spec.inputs) check(in.ui, node + ", input '" + in.name + "'");
  return problems;
}

std::vector<std::string> declaration_problems(const NodeDef& def) {
  std::vector<std::string> problems = spec_problems(def);
  for (auto& problem : ui_problems(def)) problems.push_back(std::move(problem));
  return problems;
}

}  // namespace

Registry::Registry() = default;
Registry::~Registry() = default;

void Registry::add(NodeDef def, const std::string& plugin) {
  std::string type = def.spec.class_type;
  if (std::vector<std::string> problems = declaration_problems(def); !problems.empty()) throw Error(problems.front());
  if (nodes_.count(type)) throw Error("node type " + type + " is already registered by " + nodes_[type]->plugin);
  auto node = std::make_unique<RegisteredNode>();
  node->def = std::move(def);
  node->plugin = plugin;
  nodes_.emplace(std::move(type), std::move(node));
}

const PluginRecord& Registry::load_plugin(const std::filesystem::path& file) {
  auto start = std::chrono::steady_clock::now();
  PluginRecord record;
  record.file = file;
  auto finish = [&](std::string error) -> const PluginRecord& {
    record.error = std::move(error);
    record.loaded = record.error.empty();
    record.load_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    plugins_.push_back(std::move(record));
    return plugins_.back();
  };

  std::shared_ptr<Library> library;
  try {
    library = std::make_shared<Library>(file, boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local);
  } catch (const std::exception& e) {
    return finish(std::string("not a loadable shared library: ") + e.what());
  }
  if (!library->has(kPluginEntryPoint))
    return finish(std::string("not a Cozy plugin: it exports no entry point '") + kPluginEntryPoint + "'");

  const PluginDescriptor* descriptor = nullptr;
  try {
    descriptor = library->get_alias<const PluginDescriptor*()>(kPluginEntryPoint)();
  } catch (const std::exception& e) {
    return finish(std::string("the entry point failed: ") + e.what());
  } catch (...) {
    return finish("the entry point threw a non-standard exception");
  }
  if (std::string problem = check_descriptor(descriptor); !problem.empty()) return finish(problem);
  record.name = descriptor->name;
  record.version = descriptor->version ? descriptor->version : "";

  for (const auto& other : plugins_)
    if (other.loaded && other.name == record.name)
      return finish("plugin '" + record.name + "' is already loaded from " + other.file.string());

  StagingRegistrar staging;
  try {
    descriptor->register_nodes(staging);
  } catch (const std::exception& e) {
    return finish(std::string("threw while registering its nodes: ") + e.what());
  } catch (...) {
    return finish("threw a non-standard exception while registering its nodes");
  }

  // All or nothing: a plugin with a mistake in a declaration, or that
  // clashes with a known node type, adds none. Every mistake is listed.
  std::vector<std::string> problems;
  for (const auto& def : staging.defs)
    for (auto& problem : declaration_problems(def)) problems.push_back(std::move(problem));
  if (!problems.empty()) {
    std::string text = "declares its nodes wrongly: ";
    for (std::size_t i = 0; i < problems.size(); ++i) text += (i ? "; " : "") + problems[i];
    return finish(text);
  }
  std::map<std::string, bool> seen;
  for (const auto& def : staging.defs) {
    const std::string& type = def.spec.class_type;
    if (auto it = nodes_.find(type); it != nodes_.end())
      return finish("registers node type " + type + ", which plugin '" + it->second->plugin + "' already registered");
    if (seen[type]) return finish("registers node type " + type + " twice");
    seen[type] = true;
  }
  std::shared_ptr<void> pin = library;
  for (auto& def : staging.defs) {
    record.node_types.push_back(def.spec.class_type);
    def.run = PinningRun{pin, std::move(def.run)};
    auto node = std::make_unique<RegisteredNode>();
    node->library = pin;
    node->def = std::move(def);
    node->plugin = record.name;
    std::string type = node->def.spec.class_type;
    nodes_.emplace(std::move(type), std::move(node));
  }
  // The staged definitions are moved-from now; clear them while the library
  // is certainly still loaded.
  staging.defs.clear();
  return finish({});
}

void Registry::load_folder(const std::filesystem::path& folder) {
  std::error_code ec;
  if (!std::filesystem::is_directory(folder, ec)) {
    PluginRecord record;
    record.file = folder;
    record.error = "plugin folder does not exist";
    plugins_.push_back(std::move(record));
    return;
  }
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(folder, ec)) {
    const auto& path = entry.path();
    if (entry.is_regular_file() && path.extension() == boost::dll::shared_library::suffix()) files.push_back(path);
  }
  std::sort(files.begin(), files.end());
  for (const auto& file : files) load_plugin(file);
}

std::vector<std::string> Registry::type_warnings() const {
  // Type name -> the node types that make it, and those that take it.
  std::map<std::string, std::vector<std::string>> made, taken;
  for (const auto& [type, node] : nodes_) {
    for (const auto& out : node->def.spec.outputs) made[out.type].push_back(type);
    for (const auto& in : node->def.spec.inputs) taken[in.type].push_back(type);
  }
  std::vector<std::string> known;
  for (const auto& [name, nodes] : made) known.push_back(name);
  for (const auto& [name, nodes] : taken)
    if (!made.count(name)) known.push_back(name);
  auto list = [](const std::vector<std::string>& nodes) {
    std::string text;
    for (std::size_t i = 0; i < nodes.size() && i < 5; ++i) text += (i ? ", " : "") + nodes[i];
    if (nodes.size() > 5) text += ", ...";
    return text;
  };
  auto near = [&](const std::string& name) {
    std::string best;
    std::size_t best_distance = std::max<std::size_t>(2, name.size() / 3) + 1;
    for (const auto& other : known) {
      if (other == name || (!made.count(other) || !taken.count(other))) continue;  // only names in use both ways
      std::size_t d = edit_distance(name, other);
      if (d < best_distance) best = other, best_distance = d;
    }
    return best.empty() ? std::string() : "; did you mean " + best + "?";
  };
  std::vector<std::string> warnings;
  for (const auto& [name, nodes] : taken) {
    if (name == types::ANY || types::is_widget(name) || made.count(name) || made.count(types::ANY)) continue;
    warnings.push_back(name + ": consumed by " + list(nodes) + ", made by no node" + near(name));
  }
  for (const auto& [name, nodes] : made) {
    if (name == types::ANY || types::is_widget(name) || taken.count(name) || taken.count(types::ANY)) continue;
    warnings.push_back(name + ": made by " + list(nodes) + ", consumed by no node" + near(name));
  }
  return warnings;
}

const RegisteredNode* Registry::find(const std::string& class_type) const {
  auto it = nodes_.find(class_type);
  return it == nodes_.end() ? nullptr : it->second.get();
}

const NodeSpec* Registry::find_spec(const std::string& class_type) const {
  const RegisteredNode* node = find(class_type);
  return node ? &node->def.spec : nullptr;
}

std::vector<std::string> Registry::class_types() const {
  std::vector<std::string> types;
  types.reserve(nodes_.size());
  for (const auto& [type, node] : nodes_) types.push_back(type);
  return types;
}

std::vector<std::filesystem::path> plugin_search_path(const std::vector<std::filesystem::path>& extra) {
  std::vector<std::filesystem::path> folders;
  std::error_code ec;
  // The plugins beside the program: `plugins/` in a build tree, and
  // `../lib/cozy/plugins` once installed.
  std::filesystem::path program_dir = boost::dll::program_location(ec).parent_path();
  for (const auto& candidate : {program_dir / "plugins", program_dir / ".." / "lib" / "cozy" / "plugins"}) {
    if (std::filesystem::is_directory(candidate, ec)) {
      folders.push_back(candidate);
      break;
    }
  }
  if (const char* env = std::getenv("COZY_PLUGIN_PATH"); env && *env) {
    std::string list = env;
    std::size_t start = 0;
    while (start <= list.size()) {
      std::size_t colon = list.find(':', start);
      if (colon == std::string::npos) colon = list.size();
      if (colon > start) folders.emplace_back(list.substr(start, colon - start));
      start = colon + 1;
    }
  }
  folders.insert(folders.end(), extra.begin(), extra.end());
  // The same folder named twice is searched once.
  std::vector<std::filesystem::path> unique;
  std::vector<std::filesystem::path> seen;
  for (const auto& folder : folders) {
    std::filesystem::path canonical = std::filesystem::weakly_canonical(folder, ec);
    if (ec) canonical = folder;
    if (std::find(seen.begin(), seen.end(), canonical) != seen.end()) continue;
    seen.push_back(canonical);
    unique.push_back(folder);
  }
  return unique;
}

nlohmann::json object_info(const NodeSpec& spec, const FileFolders* folders) {
  nlohmann::json required = nlohmann::json::object(), optional = nlohmann::json::object();
  nlohmann::json order_required = nlohmann::json::array(), order_optional = nlohmann::json::array();
  for (const auto& in : spec.inputs) {
    nlohmann::json options = nlohmann::json::object();
    const bool no_file_default = !in.file_folder.empty() && literal_json(in.default_value) == "";
    if (has_value(in.default_value) && !no_file_default) options["default"] = literal_json(in.default_value);
    if (in.min) options["min"] = *in.min;
    if (in.max) options["max"] = *in.max;
    if (in.step) options["step"] = *in.step;
    if (!in.tooltip.empty()) options["tooltip"] = in.tooltip;
    if (in.multiline) options["multiline"] = true;
    // ComfyUI writes a COMBO as the list of its choices in the type's place.
    nlohmann::json entry = nlohmann::json::array();
    if (!in.choices.empty()) entry.push_back(in.choices);
    else if (!in.file_folder.empty() && folders && folders->count(in.file_folder))
      entry.push_back(list_files(folders->at(in.file_folder), in.file_extensions));
    else entry.push_back(in.type);
    if (!in.file_folder.empty()) options["file_folder"] = in.file_folder;
    // An image chosen from the input (or output) folder gets ComfyUI's upload button.
    if ((in.file_folder == "input" || in.file_folder == "output") &&
        std::find(in.file_extensions.begin(), in.file_extensions.end(), ".png") != in.file_extensions.end()) {
      options["image_upload"] = true;
      if (in.file_folder == "output") options["image_folder"] = "output";
    }
    if (nlohmann::json ui = nlohmann::json::parse(in.ui, nullptr, false); ui.is_object()) options.update(ui);
    if (!options.empty()) entry.push_back(options);
    (in.required ? required : optional)[in.name] = entry;
    (in.required ? order_required : order_optional).push_back(in.name);
  }
  nlohmann::json input = {{"required", required}};
  if (!optional.empty()) input["optional"] = optional;
  nlohmann::json input_order = {{"required", order_required}};
  if (!order_optional.empty()) input_order["optional"] = order_optional;
  nlohmann::json output = nlohmann::json::array(), output_name = nlohmann::json::array(),
                 output_is_list = nlohmann::json::array();
  for (const auto& out : spec.outputs) {
    output.push_back(out.type);
    output_name.push_back(out.name);
    output_is_list.push_back(out.is_list);
  }
  nlohmann::json info = {{"input", input},
          {"input_order", input_order},
          {"output", output},
          {"output_is_list", output_is_list},
          {"output_name", output_name},
          {"name", spec.class_type},
          {"display_name", spec.display_name.empty() ? spec.class_type : spec.display_name},
          {"description", spec.description},
          {"category", spec.category},
          {"output_node", spec.output_node},
          {"is_input_list", spec.input_is_list},
          {"pure", spec.pure}};
  if (nlohmann::json ui = nlohmann::json::parse(spec.ui, nullptr, false); ui.is_object()) info.update(ui);
  return info;
}

}  // namespace cozy::host
