// cozy — run, validate and inspect node graphs.
#include <cozy/host/executor.hpp>
#include <cozy/host/registry.hpp>
#include <cozy/host/validate.hpp>

#include <ATen/Context.h>
#include <CLI/CLI.hpp>

#include <csignal>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <unistd.h>

namespace {

using namespace cozy::host;

constexpr int kExitOk = 0;
constexpr int kExitNodeFailed = 1;
constexpr int kExitInvalid = 2;

std::atomic<Executor*> g_running{nullptr};

extern "C" void on_interrupt(int) {
  if (Executor* executor = g_running.load()) executor->cancel();
  std::signal(SIGINT, SIG_DFL);  // a second Ctrl-C ends the program at once
}

std::shared_ptr<Registry> load_registry(const std::vector<std::string>& extra) {
  auto registry = std::make_shared<Registry>();
  std::vector<std::filesystem::path> folders(extra.begin(), extra.end());
  for (const auto& folder : plugin_search_path(folders)) registry->load_folder(folder);
  return registry;
}

// Failures to load plugins are not fatal, but the user should hear of them.
void warn_failed_plugins(const Registry& registry) {
  for (const auto& p : registry.plugins())
    if (!p.loaded) std::cerr << "warning: plugin " << p.file.string() << " not loaded: " << p.error << '\n';
}

// Reads, parses, applies --set, validates. Prints every error; nullopt if any.
std::optional<Graph> load_graph(const std::string& file, const std::vector<std::string>& overrides,
                                const Registry& registry) {
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    std::cerr << "error: cannot read graph file " << file << '\n';
    return std::nullopt;
  }
  std::stringstream text;
  text << in.rdbuf();
  ParseResult parsed = parse_graph(text.str());
  std::vector<Issue> errors = parsed.errors;
  if (parsed.graph) {
    for (const auto& assignment : overrides)
      if (std::string problem = apply_override(*parsed.graph, assignment); !problem.empty())
        errors.push_back({"", "", "", problem});
    if (errors.empty()) errors = validate(*parsed.graph, registry);
  }
  if (errors.empty()) return std::move(parsed.graph);
  std::cerr << file << ": " << errors.size() << (errors.size() == 1 ? " error" : " errors") << '\n';
  for (const auto& e : errors) std::cerr << "  " << e.to_string() << '\n';
  return std::nullopt;
}

std::optional<c10::Device> parse_device(const std::string& text) {
  if (text == "auto") return c10::Device(at::hasCUDA() ? c10::kCUDA : c10::kCPU);
  try {
    c10::Device device(text);
    if (device.is_cuda() && !at::hasCUDA()) {
      std::cerr << "error: --device " << text << ": this LibTorch has no CUDA, or no GPU is visible\n";
      return std::nullopt;
    }
    if (!device.is_cpu() && !device.is_cuda()) {
      std::cerr << "error: --device must be auto, cpu, cuda or cuda:N\n";
      return std::nullopt;
    }
    return device;
  } catch (const std::exception&) {
    std::cerr << "error: --device must be auto, cpu, cuda or cuda:N, got '" << text << "'\n";
    return std::nullopt;
  }
}

std::string literal_text(const cozy::Literal& literal) {
  return std::visit(
      [](const auto& v) -> std::string {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, std::monostate>) return "";
        else if constexpr (std::is_same_v<T, bool>) return v ? "true" : "false";
        else if constexpr (std::is_same_v<T, std::string>) return "\"" + v + "\"";
        else {
          std::ostringstream s;
          s << v;
          return s.str();
        }
      },
      literal);
}

void print_node(const cozy::NodeSpec& spec, const std::string& plugin) {
  std::cout << spec.class_type;
  if (!spec.display_name.empty() && spec.display_name != spec.class_type) std::cout << " (" << spec.display_name << ")";
  std::cout << "\n  category: " << spec.category << "\n  plugin: " << plugin << "\n  "
            << (spec.output_node ? "output node, " : "") << (spec.pure ? "pure (cached)" : "impure (never cached)")
            << "\n";
  if (!spec.description.empty()) std::cout << "  " << spec.description << "\n";
  std::cout << "  inputs:\n";
  if (spec.inputs.empty()) std::cout << "    (none)\n";
  for (const auto& in : spec.inputs) {
    std::cout << "    " << in.name << ": " << in.type << (in.required ? "" : " (optional)");
    if (cozy::has_value(in.default_value)) std::cout << " = " << literal_text(in.default_value);
    if (in.min || in.max)
      std::cout << " in [" << (in.min ? std::to_string(*in.min) : "-inf") << ", "
                << (in.max ? std::to_string(*in.max) : "inf") << "]";
    if (!in.choices.empty()) {
      std::cout << " one of:";
      for (const auto& c : in.choices) std::cout << " " << c;
    }
    if (!in.tooltip.empty()) std::cout << "  — " << in.tooltip;
    std::cout << "\n";
  }
  std::cout << "  outputs:\n";
  if (spec.outputs.empty()) std::cout << "    (none)\n";
  for (std::size_t i = 0; i < spec.outputs.size(); ++i)
    std::cout << "    " << i << " " << spec.outputs[i].name << ": " << spec.outputs[i].type << "\n";
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"cozy: runs node graphs (ComfyUI's API format) with plugins in C++"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("cozy ") + COZY_VERSION);

  std::vector<std::string> plugin_dirs;
  auto add_plugin_option = [&](CLI::App* cmd) {
    cmd->add_option("--plugins", plugin_dirs, "a further plugin folder (after the build's and COZY_PLUGIN_PATH)");
  };

  // run
  std::string graph_file;
  std::vector<std::string> overrides;
  std::string device_text = "auto", progress = "auto";
  RunOptions options;
  options.use_cache = false;  // one run per process: release values as soon as they are used
  std::string input_dir = "input", output_dir = "output", model_dir;
  auto* run = app.add_subcommand("run", "validate a graph, then run it");
  run->add_option("graph", graph_file, "graph file (ComfyUI API format)")->required();
  run->add_option("--set", overrides, "override a literal input: ID.INPUT=VALUE (repeatable)");
  run->add_option("--device", device_text, "auto, cpu, cuda or cuda:N")->capture_default_str();
  run->add_option("--jobs", options.jobs, "nodes run in parallel (default: cores, at most the graph's width)")
      ->check(CLI::NonNegativeNumber);
  run->add_option("--threads", options.threads, "LibTorch intra-op threads (default: cores / jobs)")
      ->check(CLI::NonNegativeNumber);
  run->add_option("--input-dir", input_dir, "folder for relative input file names")->capture_default_str();
  run->add_option("--output-dir", output_dir, "folder output nodes write to")->capture_default_str();
  run->add_option("--models-dir", model_dir, "folder of models (default: models)");
  run->add_option("--progress", progress, "auto, bar, json or none")
      ->check(CLI::IsMember({"auto", "bar", "json", "none"}))
      ->capture_default_str();
  add_plugin_option(run);

  // validate
  auto* validate_cmd = app.add_subcommand("validate", "check a graph; exit 0 if valid, 2 if not");
  validate_cmd->add_option("graph", graph_file, "graph file (ComfyUI API format)")->required();
  validate_cmd->add_option("--set", overrides, "override a literal input: ID.INPUT=VALUE (repeatable)");
  add_plugin_option(validate_cmd);

  // nodes
  std::string node_class;
  bool as_json = false;
  auto* nodes_cmd = app.add_subcommand("nodes", "list node types, or describe one");
  nodes_cmd->add_option("class", node_class, "a class_type to describe");
  nodes_cmd->add_flag("--json", as_json, "print the shape of ComfyUI's GET /object_info");
  add_plugin_option(nodes_cmd);

  // plugins
  auto* plugins_cmd = app.add_subcommand("plugins", "list loaded and failed plugins, with load times");
  plugins_cmd->add_flag("--json", as_json, "print JSON");
  add_plugin_option(plugins_cmd);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return kExitInvalid;
  }

  std::shared_ptr<Registry> registry = load_registry(plugin_dirs);

  if (*plugins_cmd) {
    if (as_json) {
      nlohmann::json list = nlohmann::json::array();
      for (const auto& p : registry->plugins())
        list.push_back({{"file", p.file.string()}, {"name", p.name}, {"version", p.version}, {"loaded", p.loaded},
                        {"error", p.error}, {"load_ms", p.load_ms}, {"nodes", p.node_types}});
      std::cout << list.dump(2) << '\n';
      return kExitOk;
    }
    std::cout << "loaded:\n";
    for (const auto& p : registry->plugins())
      if (p.loaded)
        std::cout << "  " << p.name << " " << p.version << "  " << p.node_types.size() << " nodes  " << std::fixed
                  << std::setprecision(1) << p.load_ms << " ms  " << p.file.string() << '\n';
    std::cout << "failed:\n";
    for (const auto& p : registry->plugins())
      if (!p.loaded)
        std::cout << "  " << p.file.string() << "  " << std::fixed << std::setprecision(1) << p.load_ms
                  << " ms: " << p.error << '\n';
    return kExitOk;
  }

  if (*nodes_cmd) {
    warn_failed_plugins(*registry);
    std::vector<std::string> wanted = registry->class_types();
    if (!node_class.empty()) {
      if (!registry->find(node_class)) {
        std::cerr << "error: unknown node type " << node_class << '\n';
        return kExitInvalid;
      }
      wanted = {node_class};
    }
    if (as_json) {
      nlohmann::json info = nlohmann::json::object();
      for (const auto& type : wanted) info[type] = object_info(registry->find(type)->def.spec);
      std::cout << info.dump(2) << '\n';
    } else if (!node_class.empty()) {
      const RegisteredNode* node = registry->find(node_class);
      print_node(node->def.spec, node->plugin);
    } else {
      for (const auto& type : wanted) {
        const auto& spec = registry->find(type)->def.spec;
        std::cout << std::left << std::setw(24) << type << " " << std::setw(22) << spec.category << " "
                  << registry->find(type)->plugin << '\n';
      }
    }
    return kExitOk;
  }

  warn_failed_plugins(*registry);
  std::optional<Graph> graph = load_graph(graph_file, overrides, *registry);
  if (!graph) return kExitInvalid;
  if (*validate_cmd) {
    std::cout << graph_file << ": valid (" << graph->nodes.size() << " nodes)\n";
    return kExitOk;
  }

  std::optional<c10::Device> device = parse_device(device_text);
  if (!device) return kExitInvalid;
  options.device = *device;
  options.input_dir = input_dir;
  options.output_dir = output_dir;
  options.model_dir = model_dir.empty() ? std::filesystem::path("models") : std::filesystem::path(model_dir);
  if (progress == "auto") progress = isatty(STDERR_FILENO) ? "bar" : "none";
  std::unique_ptr<EventSink> sink;
  if (progress == "bar") sink = std::make_unique<ProgressBarSink>(std::cerr);
  if (progress == "json") sink = std::make_unique<JsonLinesSink>(std::cout);
  options.events = sink.get();

  Executor executor(registry);
  g_running.store(&executor);
  std::signal(SIGINT, on_interrupt);
  RunReport report;
  try {
    report = executor.run(*graph, options);
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << '\n';
    return kExitNodeFailed;
  }
  g_running.store(nullptr);

  for (const auto& f : report.failures)
    std::cerr << "error: node " << f.node_id << " (" << f.class_type << "): " << f.message << '\n';
  if (!report.skipped.empty())
    std::cerr << report.skipped.size() << " node(s) skipped" << (report.interrupted ? " (interrupted)" : "") << '\n';
  if (progress != "json") {
    for (const auto& [id, files] : report.files)
      for (const auto& f : files) std::cout << f.string() << '\n';
  }
  if (report.interrupted) return kExitNodeFailed;
  return report.success ? kExitOk : kExitNodeFailed;
}
