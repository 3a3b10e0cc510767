// cozy — run, validate and inspect node graphs.
#include <ATen/Context.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <cozy/host/executor.hpp>
#include <cozy/host/memory.hpp>
#include <cozy/host/registry.hpp>
#include <cozy/host/validate.hpp>
#include <cozy/host/workflow.hpp>
#include <cozy/server/server.hpp>
#include <cozy/server/worker.hpp>
#include "new_plugin.hpp"
#include "ranks.hpp"
#include <cozy/distributed.hpp>
#include <cozy/host/distributed.hpp>
#include <atomic>
#include <chrono>
#include <csignal>
#include <thread>
#include <pthread.h>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <sstream>

namespace {

using namespace cozy::host;

constexpr int kExitOk = 0;
constexpr int kExitNodeFailed = 1;
constexpr int kExitInvalid = 2;

// The run's cancellation, made before the handler is installed: a Ctrl-C
// at any moment from then on stops the run, even before it starts.
std::shared_ptr<CancelToken> g_cancel = std::make_shared<CancelToken>();

extern "C" void on_interrupt(int) {
  g_cancel->cancel();
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
                                const Registry& registry, const FileFolders* folders = nullptr) {
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    std::cerr << "error: cannot read graph file " << file << '\n';
    return std::nullopt;
  }
  std::stringstream text;
  text << in.rdbuf();
  // A workflow saved by ComfyUI's editor runs as its API form.
  const nlohmann::json document = nlohmann::json::parse(text.str(), nullptr, false);
  ParseResult parsed;
  if (!document.is_discarded() && is_ui_workflow(document)) {
    Conversion converted = convert_ui_workflow(document, registry);
    for (const auto& warning : converted.warnings) std::cerr << "warning: " << warning << '\n';
    if (!converted.errors.empty()) {
      std::cerr << file << ": " << converted.errors.size() << (converted.errors.size() == 1 ? " error" : " errors")
                << " in the editor's workflow\n";
      for (const auto& e : converted.errors) std::cerr << "  " << e.message << '\n';
      return std::nullopt;
    }
    parsed = parse_graph_json(converted.prompt);
  } else {
    parsed = parse_graph(text.str());
  }
  std::vector<Issue> errors = parsed.errors;
  if (parsed.graph) {
    // Inputs ComfyUI ignores (an export's `upload` on LoadImage) are ignored, with a warning.
    for (const auto& w : drop_unknown_inputs(*parsed.graph, registry)) std::cerr << "warning: " << w.to_string() << '\n';
    for (const auto& assignment : overrides)
      if (std::string problem = apply_override(*parsed.graph, assignment); !problem.empty())
        errors.push_back({"", "", "", problem});
    if (errors.empty()) errors = validate(*parsed.graph, registry, folders);
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
  return cozy::has_value(literal) ? literal_json(literal).dump() : std::string();
}

std::string range_text(const cozy::InputSpec& in) {
  auto number = [](double v) {
    if (std::floor(v) == v && std::fabs(v) < 1e15) return std::to_string(static_cast<long long>(v));
    std::ostringstream s;
    s << v;
    return s.str();
  };
  if (!in.min && !in.max) return "";
  return "[" + (in.min ? number(*in.min) : std::string("-inf")) + ", " + (in.max ? number(*in.max) : std::string("inf")) +
         "]";
}

// The node reference in docs/nodes.md is this output.
void print_markdown(const Registry& registry) {
  std::cout << "# Node reference\n\nGenerated by `cozy nodes --markdown` from the plugins built here; a test checks "
               "that this file matches.\n";
  std::map<std::string, std::vector<const RegisteredNode*>> by_plugin;
  for (const auto& type : registry.class_types()) by_plugin[registry.find(type)->plugin].push_back(registry.find(type));
  for (const auto& [plugin, nodes] : by_plugin) {
    std::cout << "\n## Plugin `" << plugin << "`\n";
    for (const RegisteredNode* node : nodes) {
      const cozy::NodeSpec& spec = node->def.spec;
      std::cout << "\n### " << spec.class_type;
      if (!spec.display_name.empty() && spec.display_name != spec.class_type) std::cout << " — " << spec.display_name;
      std::cout << "\n\nCategory `" << spec.category << "`"
                << (spec.output_node ? "; output node" : "") << (spec.pure ? "" : "; impure (never cached)")
                << (spec.input_is_list ? "; takes its inputs as whole lists" : "") << ".";
      if (!spec.description.empty()) std::cout << " " << spec.description;
      std::cout << "\n\n";
      if (!spec.inputs.empty()) {
        std::cout << "| input | type | default | range / choices | notes |\n|---|---|---|---|---|\n";
        for (const auto& in : spec.inputs) {
          std::string choices;
          for (const auto& c : in.choices) choices += (choices.empty() ? "" : ", ") + c;
          std::cout << "| " << in.name << " | " << in.type << (in.required ? "" : " (optional)") << " | "
                    << literal_text(in.default_value) << " | " << (choices.empty() ? range_text(in) : choices) << " | "
                    << in.tooltip << " |\n";
        }
        std::cout << "\n";
      }
      if (!spec.outputs.empty()) {
        std::cout << "Outputs:";
        for (std::size_t i = 0; i < spec.outputs.size(); ++i)
          std::cout << (i ? "," : "") << " " << i << " `" << spec.outputs[i].name << "` ("
                    << (spec.outputs[i].is_list ? "list of " : "") << spec.outputs[i].type << ")";
        std::cout << "\n";
      }
    }
  }
}

void print_node(const cozy::NodeSpec& spec, const std::string& plugin) {
  std::cout << spec.class_type;
  if (!spec.display_name.empty() && spec.display_name != spec.class_type) std::cout << " (" << spec.display_name << ")";
  std::cout << "\n  category: " << spec.category << "\n  plugin: " << plugin << "\n  "
            << (spec.output_node ? "output node, " : "") << (spec.pure ? "pure (cached)" : "impure (never cached)")
            << (spec.input_is_list ? ", takes whole lists" : "") << "\n";
  if (!spec.description.empty()) std::cout << "  " << spec.description << "\n";
  std::cout << "  inputs:\n";
  if (spec.inputs.empty()) std::cout << "    (none)\n";
  for (const auto& in : spec.inputs) {
    std::cout << "    " << in.name << ": " << in.type << (in.required ? "" : " (optional)");
    if (cozy::has_value(in.default_value)) std::cout << " = " << literal_text(in.default_value);
    if (in.min || in.max) std::cout << " in " << range_text(in);
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
    std::cout << "    " << i << " " << spec.outputs[i].name << ": " << (spec.outputs[i].is_list ? "list of " : "")
              << spec.outputs[i].type << "\n";
}

// The files a run wrote: every path when there are few (or --list-files),
// else how many, in which folders, and the first few.
void print_files(const RunReport& report, bool every_path) {
  std::vector<std::filesystem::path> paths;
  for (const auto& [id, files] : report.files)
    for (const auto& f : files) paths.push_back(f.path);
  std::sort(paths.begin(), paths.end());
  constexpr std::size_t kListed = 10;
  if (every_path || paths.size() <= kListed) {
    for (const auto& p : paths) std::cout << p.string() << '\n';
    return;
  }
  std::map<std::string, std::size_t> folders;
  for (const auto& p : paths) ++folders[p.parent_path().string()];
  std::cout << "wrote " << paths.size() << " files in ";
  std::size_t shown = 0;
  for (const auto& [folder, count] : folders) {
    if (shown++ == 5) {
      std::cout << ", ... (" << folders.size() << " folders)";
      break;
    }
    std::cout << (shown > 1 ? ", " : "") << (folder.empty() ? "." : folder) << " (" << count << ")";
  }
  std::cout << "; the first: ";
  for (std::size_t i = 0; i < 3; ++i) std::cout << (i ? ", " : "") << paths[i].filename().string();
  std::cout << "; --list-files prints every path\n";
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
  run->add_option("--models-dir", model_dir,
                  "folder models are read from and saved to (default: read from models, save to the output folder)");
  run->add_option("--progress", progress, "auto, bar, json or none")
      ->check(CLI::IsMember({"auto", "bar", "json", "none"}))
      ->capture_default_str();
  bool list_files = false, verbose = false;
  run->add_flag("--list-files", list_files, "print the path of every file written (default: a summary past 10)");
  run->add_flag("--verbose", verbose, "with a failure, print LibTorch's C++ backtrace too");
  int nproc = 0, max_restarts = 0, dist_timeout = 300;
  run->add_option("--nproc", nproc, "train over N ranks on this machine (docs/distributed.md)")->check(CLI::Range(1, 256));
  run->add_option("--max-restarts", max_restarts, "with --nproc: start every rank again after one fails, K times")
      ->check(CLI::Range(0, 1000));
  run->add_option("--dist-timeout", dist_timeout,
                  "seconds the ranks wait for each other (to meet, and in each collective)")
      ->check(CLI::Range(1, 86400))
      ->capture_default_str();
  bool small_pages = false;
  run->add_flag(
      "--no-large-pages", small_pages,
      "tensors of 4 MiB and more from LibTorch's allocator in 4 KiB pages, not the host's pool of 2 MiB pages");
  add_plugin_option(run);

  // validate
  auto* validate_cmd = app.add_subcommand("validate", "check a graph; exit 0 if valid, 2 if not");
  validate_cmd->add_option("graph", graph_file, "graph file (ComfyUI API format)")->required();
  validate_cmd->add_option("--set", overrides, "override a literal input: ID.INPUT=VALUE (repeatable)");
  validate_cmd->add_option("--models-dir", model_dir, "also check that the models named are in this folder");
  bool validate_input_dir = false;
  validate_cmd->add_option_function<std::string>(
      "--input-dir", [&](const std::string& dir) { input_dir = dir, validate_input_dir = true; },
      "also check that the input files named are in this folder");
  add_plugin_option(validate_cmd);

  // nodes
  std::string node_class;
  bool as_json = false;
  auto* nodes_cmd = app.add_subcommand("nodes", "list node types, or describe one");
  nodes_cmd->add_option("class", node_class, "a class_type to describe");
  nodes_cmd->add_flag("--json", as_json, "print the shape of ComfyUI's GET /object_info");
  nodes_cmd->add_option("--models-dir", model_dir, "with --json: list this folder's models as choices (default: models)");
  nodes_cmd->add_option("--input-dir", input_dir, "with --json: list this folder's files as choices")
      ->capture_default_str();
  bool as_markdown = false;
  nodes_cmd->add_flag("--markdown", as_markdown, "print the node reference (docs/nodes.md)");
  add_plugin_option(nodes_cmd);

  // serve
  cozy::server::ServerOptions serve;
  std::string serve_device = "auto", temp_dir, front_end_root, user_dir = "user", models_dir_serve = "models";
  std::size_t max_upload_mb = 100;
  auto* serve_cmd = app.add_subcommand("serve", "serve ComfyUI's HTTP and WebSocket protocol (docs/server.md)");
  serve_cmd->add_option("--listen", serve.listen, "address to listen on")->capture_default_str();
  serve_cmd->add_option("--port", serve.port, "port; 0 picks a free one")->capture_default_str();
  serve_cmd->add_option("--input-dir", input_dir, "folder of inputs and uploads")->capture_default_str();
  serve_cmd->add_option("--output-dir", output_dir, "folder output nodes write to")->capture_default_str();
  serve_cmd->add_option("--temp-dir", temp_dir, "folder of previews (default: temp beside the output folder)");
  serve_cmd->add_option("--models-dir", models_dir_serve,
                        "folder models are read from; when given, models that graphs make are saved there too "
                        "(else in the output folder)")
      ->capture_default_str();
  serve_cmd->add_option("--user-dir", user_dir, "folder of the queue database, settings and workflows")
      ->capture_default_str();
  serve_cmd->add_option("--front-end-root", front_end_root,
                        "static files served at / (default: ComfyUI's frontend as scripts/frontend.sh installs it)");
  serve_cmd->add_option("--token", serve.token, "require this bearer token on every request (or COZY_TOKEN)");
  serve_cmd->add_option("--max-upload-mb", max_upload_mb, "largest upload, in MiB")->capture_default_str();
  serve_cmd->add_option("--history-size", serve.history_size, "prompts kept in the history")->capture_default_str();
  serve_cmd->add_option("--device", serve_device, "auto, cpu, cuda or cuda:N")->capture_default_str();
  serve_cmd->add_option("--jobs", serve.run.jobs, "nodes run in parallel")->check(CLI::NonNegativeNumber);
  serve_cmd->add_option("--threads", serve.run.threads, "LibTorch intra-op threads")->check(CLI::NonNegativeNumber);
  double ack_wait_s = 30;
  serve_cmd->add_option("--queue", serve.queue_url,
                        "nats://HOST:PORT: prompts go to `cozy worker`s through NATS JetStream instead of this "
                        "process (docs/distributed.md)");
  serve_cmd->add_option("--ack-wait", ack_wait_s, "with --queue: seconds a silent worker keeps its prompt")
      ->check(CLI::Range(0.5, 86400.0))
      ->capture_default_str();
  serve_cmd->add_option("--max-deliveries", serve.queue_max_deliveries,
                        "with --queue: a prompt that no worker finished this many times fails")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  serve_cmd->add_option("--queue-replicas", serve.queue_replicas,
                        "with --queue: copies of the queue's streams on a NATS cluster (3 on a 3-node one)")
      ->check(CLI::Range(1, 5))
      ->capture_default_str();
  add_plugin_option(serve_cmd);

  // worker
  cozy::server::WorkerOptions work;
  std::string worker_device = "auto", worker_models_dir = "models", worker_temp_dir;
  auto* worker_cmd =
      app.add_subcommand("worker", "run the prompts of `cozy serve --queue` from NATS JetStream (docs/distributed.md)");
  worker_cmd->add_option("--queue", work.queue_url, "nats://HOST:PORT, as given to cozy serve")->required();
  worker_cmd->add_option("--name", work.name, "this worker's name in the server's log (default: HOST:PID)");
  worker_cmd->add_option("--input-dir", input_dir, "folder of inputs (the server's, or a copy)")->capture_default_str();
  worker_cmd->add_option("--output-dir", output_dir, "folder output nodes write to; what a prompt writes is also sent "
                                                     "to the server's")
      ->capture_default_str();
  worker_cmd->add_option("--temp-dir", worker_temp_dir, "folder of previews (default: temp beside the output folder)");
  worker_cmd->add_option("--models-dir", worker_models_dir, "folder models are read from")->capture_default_str();
  worker_cmd->add_option("--device", worker_device, "auto, cpu, cuda or cuda:N")->capture_default_str();
  worker_cmd->add_option("--jobs", work.run.jobs, "nodes run in parallel")->check(CLI::NonNegativeNumber);
  worker_cmd->add_option("--threads", work.run.threads, "LibTorch intra-op threads")->check(CLI::NonNegativeNumber);
  add_plugin_option(worker_cmd);

  // convert
  std::string convert_in, convert_out;
  auto* convert_cmd =
      app.add_subcommand("convert", "write the API form of a workflow saved by ComfyUI's editor (docs/comfyui.md)");
  convert_cmd->add_option("workflow", convert_in, "the editor's workflow (nodes, links, widgets_values)")->required();
  convert_cmd->add_option("output", convert_out, "where to write the API-format graph")->required();
  add_plugin_option(convert_cmd);

  // new-plugin
  std::string new_name, new_dir = ".";
  auto* new_cmd = app.add_subcommand("new-plugin", "write a plugin project that builds and tests against the SDK");
  new_cmd->add_option("name", new_name, "the plugin's name (a letter, then letters, digits or _)")->required();
  new_cmd->add_option("--dir", new_dir, "the folder to write NAME/ in")->capture_default_str();

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

  if (*new_cmd) return cozy::cli::new_plugin(new_name, new_dir);

  // A server and a worker take SIGINT and SIGTERM by sigwait on one thread:
  // blocked here, before any thread starts (plugins and LibTorch start some
  // as they load), so no thread runs the default action and ends the process.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  if (*serve_cmd || *worker_cmd) pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  // Only a run keeps freed memory for its next node; listing and checking
  // leave the process's allocators as they are.
  if (*run) set_memory_policy(MemoryPolicy::batch(/*large_pages=*/!small_pages));
  // A server lives on: memory goes back to the system between prompts.
  if (*serve_cmd || *worker_cmd) set_memory_policy(MemoryPolicy::service());
  std::shared_ptr<Registry> registry = load_registry(plugin_dirs);

  if (*convert_cmd) {
    warn_failed_plugins(*registry);
    std::ifstream in(convert_in, std::ios::binary);
    if (!in) {
      std::cerr << "error: cannot read " << convert_in << '\n';
      return kExitInvalid;
    }
    const nlohmann::json document = nlohmann::json::parse(in, nullptr, false);
    if (document.is_discarded() || !is_ui_workflow(document)) {
      std::cerr << "error: " << convert_in << " is not a workflow saved by ComfyUI's editor (no \"nodes\" and \"links\")\n";
      return kExitInvalid;
    }
    Conversion converted = convert_ui_workflow(document, *registry);
    for (const auto& warning : converted.warnings) std::cerr << "warning: " << warning << '\n';
    if (!converted.errors.empty()) {
      for (const auto& e : converted.errors) std::cerr << "error: " << e.message << '\n';
      return kExitInvalid;
    }
    std::ofstream out(convert_out, std::ios::binary);
    out << converted.prompt.dump(2) << '\n';
    if (!out) {
      std::cerr << "error: cannot write " << convert_out << '\n';
      return kExitInvalid;
    }
    std::cout << convert_out << ": " << converted.prompt.size() << " nodes\n";
    return kExitOk;
  }

  if (*serve_cmd) {
    warn_failed_plugins(*registry);
    std::optional<c10::Device> device = parse_device(serve_device);
    if (!device) return kExitInvalid;
    serve.run.device = *device;
    serve.input_dir = input_dir;
    serve.output_dir = output_dir;
    serve.models_dir = models_dir_serve;
    if (serve_cmd->get_option("--models-dir")->count() > 0) serve.model_save_dir = models_dir_serve;
    serve.user_dir = user_dir;
    if (!temp_dir.empty()) serve.temp_dir = temp_dir;
    serve.front_end_root = front_end_root;
    if (front_end_root.empty() && std::filesystem::exists(std::filesystem::path(COZY_FRONTEND_DIR) / "index.html"))
      serve.front_end_root = COZY_FRONTEND_DIR;
    serve.web_extensions["cozy"] = std::filesystem::path(COZY_WEB_DIR) / "cozy";
    serve.max_upload_bytes = max_upload_mb << 20;
    serve.queue_ack_wait = std::chrono::milliseconds(static_cast<long long>(ack_wait_s * 1000));
    if (serve.token.empty())
      if (const char* token = std::getenv("COZY_TOKEN")) serve.token = token;
    const bool loopback = serve.listen == "127.0.0.1" || serve.listen == "::1" || serve.listen.rfind("127.", 0) == 0;
    if (!loopback && serve.token.empty())
      std::cerr << "warning: listening on " << serve.listen
                << " without a token: anyone who reaches this address can run graphs and read outputs "
                   "(--token or COZY_TOKEN)\n";
    serve.log = &std::cerr;
    cozy::server::Server server(registry, serve);
    try {
      server.start();
    } catch (const std::exception& e) {
      std::cerr << "error: " << e.what() << '\n';
      return kExitInvalid;
    }
    std::cout << "cozy serve: listening on " << server.url() << std::endl;
    if (!serve.queue_url.empty())
      std::cerr << "cozy serve: prompts go to the workers of " << serve.queue_url << '\n';
    if (serve.front_end_root.empty())
      std::cerr << "cozy serve: no web editor (ComfyUI's frontend is not installed: scripts/frontend.sh installs "
                   "it); the API is served\n";
    else
      std::cerr << "cozy serve: the web editor is at " << server.url() << "/ (from " << serve.front_end_root.string()
                << ")\n";
    int received = 0;
    sigwait(&stop_signals, &received);
    std::cerr << "cozy serve: " << (received == SIGINT ? "SIGINT" : "SIGTERM")
              << ": stopping (the running prompt is interrupted and stays queued)\n";
    server.stop();
    return kExitOk;
  }

  if (*worker_cmd) {
    warn_failed_plugins(*registry);
    std::optional<c10::Device> device = parse_device(worker_device);
    if (!device) return kExitInvalid;
    work.run.device = *device;
    work.input_dir = input_dir;
    work.output_dir = output_dir;
    work.models_dir = worker_models_dir;
    if (!worker_temp_dir.empty()) work.temp_dir = worker_temp_dir;
    work.log = &std::cerr;
    cozy::server::Worker worker(registry, work);
    // sigwait on the main thread: the kernel gives a signal sent to the
    // process to its main thread first when that thread waits for it (the
    // threads OpenBLAS starts before main() do not block it).
    std::atomic<bool> finished{false};
    int status = kExitOk;
    const pthread_t main_thread = pthread_self();
    std::thread runner([&] {
      try {
        worker.run();
      } catch (const std::exception& e) {
        std::cerr << "error: " << e.what() << '\n';
        status = kExitInvalid;
      }
      finished = true;
      pthread_kill(main_thread, SIGTERM);  // ends the sigwait below
    });
    int received = 0;
    sigwait(&stop_signals, &received);
    if (!finished) {
      std::cerr << "cozy worker: " << (received == SIGINT ? "SIGINT" : "SIGTERM")
                << ": stopping (the running prompt goes back to the queue)\n";
      worker.stop();
    }
    runner.join();
    return status;
  }

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
    const std::vector<std::string> warnings = registry->type_warnings();
    if (!warnings.empty()) {
      std::cout << "warnings:\n";
      for (const auto& w : warnings) std::cout << "  " << w << '\n';
    }
    return kExitOk;
  }

  if (*nodes_cmd) {
    warn_failed_plugins(*registry);
    std::vector<std::string> wanted = registry->class_types();
    if (!node_class.empty()) {
      if (!registry->find(node_class)) {
        std::vector<std::string> near = similar_names(node_class, registry->class_types());
        std::cerr << "error: unknown node type " << node_class;
        for (std::size_t i = 0; i < near.size(); ++i) std::cerr << (i ? ", " : "; did you mean: ") << near[i];
        std::cerr << (near.empty() ? "; `cozy nodes` lists them all" : "?") << '\n';
        return kExitInvalid;
      }
      wanted = {node_class};
    }
    if (as_markdown) {
      print_markdown(*registry);
    } else if (as_json) {
      nlohmann::json info = nlohmann::json::object();
      const FileFolders folders = {
          {"models", model_dir.empty() ? "models" : model_dir}, {"input", input_dir}, {"output", output_dir}};
      for (const auto& type : wanted) info[type] = object_info(registry->find(type)->def.spec, &folders);
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
  // A run checks that file inputs name files in their folders; validate does
  // when given the folders.
  FileFolders folders;
  if (*run || !model_dir.empty()) folders["models"] = model_dir.empty() ? "models" : model_dir;
  if (*run || validate_input_dir) folders["input"] = input_dir;
  if (*run) folders["output"] = output_dir;
  std::optional<Graph> graph = load_graph(graph_file, overrides, *registry, &folders);
  if (!graph) return kExitInvalid;
  if (*validate_cmd) {
    std::cout << graph_file << ": valid (" << graph->nodes.size() << " nodes)\n";
    return kExitOk;
  }

  // `--nproc N`: this process starts and watches N ranks, each this command
  // line again with the environment torchrun would give it.
  if (nproc > 0 && !std::getenv("WORLD_SIZE"))
    return cozy::cli::run_ranks(cozy::cli::rank_arguments(argc, argv), nproc, max_restarts, dist_timeout + 30);
  std::shared_ptr<cozy::Collective> collective;
  try {
    collective = join_from_environment(std::chrono::seconds(dist_timeout));
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << '\n';
    return kExitNodeFailed;
  }
  // Every rank runs the graph; rank 0 alone writes where the user sees: the
  // others write into a scratch folder, removed at the end, and print only
  // their errors.
  std::filesystem::path scratch;
  const std::string who = collective ? "rank " + std::to_string(collective->rank()) + ": " : "";
  if (collective && collective->rank() > 0) {
    scratch = std::filesystem::temp_directory_path() /
              ("cozy-rank" + std::to_string(collective->rank()) + "-" + std::to_string(getpid()));
    output_dir = (scratch / "output").string();
    std::filesystem::create_directories(output_dir);
  }
  struct RemoveScratch {
    std::filesystem::path dir;
    ~RemoveScratch() {
      std::error_code ec;
      if (!dir.empty()) std::filesystem::remove_all(dir, ec);
    }
  } remove_scratch{scratch};
  options.collective = collective;

  std::optional<c10::Device> device = parse_device(device_text);
  if (!device) return kExitInvalid;
  options.device = *device;
  options.input_dir = input_dir;
  options.output_dir = output_dir;
  options.model_dir = model_dir.empty() ? std::filesystem::path("models") : std::filesystem::path(model_dir);
  options.model_save_dir = model_dir;  // models a graph makes go to the user's folder: --models-dir, else output
  if (!scratch.empty()) options.model_save_dir = scratch / "models";  // models are read as rank 0 reads them
  if (progress == "auto") progress = isatty(STDERR_FILENO) ? "bar" : "none";
  std::unique_ptr<EventSink> sink;
  if (progress == "bar") sink = std::make_unique<ProgressBarSink>(std::cerr);
  if (progress == "json") sink = std::make_unique<JsonLinesSink>(std::cout);
  if (progress == "none") sink = std::make_unique<LogLinesSink>(std::cerr);  // nodes' warnings still reach the user
  options.events = scratch.empty() ? sink.get() : nullptr;
  options.cancel = g_cancel;

  Executor executor(registry);
  std::signal(SIGINT, on_interrupt);
  RunReport report;
  try {
    report = executor.run(*graph, options);
  } catch (const std::exception& e) {
    std::cerr << who << "error: " << e.what() << '\n';
    return kExitNodeFailed;
  }
  std::signal(SIGINT, SIG_DFL);

  for (const auto& f : report.failures) {
    std::cerr << who << "error: node " << f.node_id << " (" << f.class_type << "): " << f.message << '\n';
    if (verbose && !f.detail.empty()) std::cerr << f.detail << '\n';
  }
  if (!report.skipped.empty())
    std::cerr << report.skipped.size() << " node(s) skipped" << (report.interrupted ? " (interrupted)" : "") << '\n';
  if (progress != "json" && scratch.empty()) print_files(report, list_files);
  if (report.interrupted) return kExitNodeFailed;
  return report.success ? kExitOk : kExitNodeFailed;
}
