// cozy/testing.hpp — test one node of a plugin alone, as the host runs it.
//
//     cozy::testing::Plugin plugin("build/libcozy_my_nodes.so");  // loaded as the host loads it
//     cozy::testing::FakeContext ctx;                             // CPU, scratch folders, captures
//     cozy::Outputs out = cozy::testing::run_node(plugin.node("MyTint"),
//                                                {{"image", at::ones({1, 3, 4, 4})}, {"strength", 0.5}}, ctx);
//     // out[0] is checked against the node's declared output; ctx.progress, ctx.logs,
//     // ctx.files and ctx.texts hold what the node reported.
//
// The way Holoscan tests an operator alone: no graph, no host, the same
// checks. `run_node` refuses what the host refuses (a spec with mistakes, a
// missing required input, an unknown input name, a literal of the wrong
// type or out of range) and checks what the node returns against its
// declared outputs, with the host's messages. Link `Cozy::testing`.
#pragma once

#include <cozy/check.hpp>
#include <cozy/plugin.hpp>

#include <boost/dll/shared_library.hpp>

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

namespace cozy::testing {

/// A Context for one node run alone. Everything the node reports is kept.
class FakeContext : public Context {
 public:
  struct Progress {
    std::int64_t value = 0, max = 0;
    std::string text;
  };

  /// Folders input/, output/, models/ and temp/ under `root` (made when
  /// missing); by default a fresh folder under the system's temp.
  explicit FakeContext(std::filesystem::path root = {}) {
    if (root.empty()) {
      std::random_device random;
      root = std::filesystem::temp_directory_path() / ("cozy-test-" + std::to_string(random()));
    }
    root_ = root;
    input_ = root / "input", output_ = root / "output", models_ = root / "models", temp_ = root / "temp";
    for (const auto& dir : {input_, output_, models_, temp_}) std::filesystem::create_directories(dir);
  }

  c10::Device device() const override { return device_; }
  int threads() const override { return threads_; }
  void progress(std::int64_t value, std::int64_t max, std::string_view text) override {
    progress_reports.push_back({value, max, std::string(text)});
  }
  bool cancelled() const override { return cancel_requested; }
  void log(LogLevel level, std::string_view message) override { logs.emplace_back(level, std::string(message)); }
  const std::filesystem::path& input_dir() const override { return input_; }
  const std::filesystem::path& output_dir() const override { return output_; }
  const std::filesystem::path& model_dir() const override { return models_; }
  const std::filesystem::path& model_save_dir() const override { return model_save_dir_.empty() ? output_ : model_save_dir_; }
  const std::filesystem::path& temp_dir() const override { return temp_; }
  void add_file(const std::filesystem::path& file, std::string_view kind) override {
    files.emplace_back(file, std::string(kind));
  }
  const std::string& node_id() const override { return id; }
  void show_text(std::string_view text) override { texts.emplace_back(text); }
  Collective* collective() const override { return collective_; }

  const std::filesystem::path& root() const { return root_; }

  c10::Device device_ = c10::Device(c10::kCPU);  ///< what the node sees as the run's device
  int threads_ = 1;
  bool cancel_requested = false;  ///< set it to test a node's cancellation
  std::string id = "1";
  std::filesystem::path model_save_dir_;  ///< what model_save_dir() returns; empty: the output folder
  Collective* collective_ = nullptr;       ///< what collective() returns: set it to run a node as one rank
  std::vector<Progress> progress_reports;
  std::vector<std::pair<LogLevel, std::string>> logs;
  std::vector<std::pair<std::filesystem::path, std::string>> files;  ///< (path, "output" or "temp")
  std::vector<std::string> texts;

 private:
  std::filesystem::path root_, input_, output_, models_, temp_;
};

/// The node types of a plugin library, loaded and checked as the host loads
/// it: its entry point, its descriptor's versions, every spec. Throws
/// cozy::Error with the reason when the host would refuse it.
class Plugin {
 public:
  explicit Plugin(const std::filesystem::path& library) {
    try {
      library_ = boost::dll::shared_library(library, boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local);
    } catch (const std::exception& e) {
      throw Error("cannot load " + library.string() + ": " + e.what());
    }
    if (!library_.has(kPluginEntryPoint)) throw Error(library.string() + " is not a Cozy plugin (no entry point)");
    const PluginDescriptor* d = library_.get_alias<const PluginDescriptor*()>(kPluginEntryPoint)();
    if (!d || d->sdk_abi_major != COZY_SDK_ABI_MAJOR || d->sdk_abi_minor > COZY_SDK_ABI_MINOR)
      throw Error(library.string() + " was built for another SDK ABI");
    name_ = d->name ? d->name : "";
    Collect collect;
    d->register_nodes(collect);
    defs_ = std::move(collect.defs);
    std::string problems;
    for (const auto& def : defs_)
      for (const auto& p : spec_problems(def)) problems += (problems.empty() ? "" : "; ") + p;
    if (!problems.empty()) throw Error(library.string() + " declares its nodes wrongly: " + problems);
  }
  ~Plugin() { defs_.clear(); }  // the node's code lives in the library: gone first
  Plugin(const Plugin&) = delete;
  Plugin& operator=(const Plugin&) = delete;

  const std::string& name() const { return name_; }
  const NodeDef& node(const std::string& class_type) const {
    for (const auto& def : defs_)
      if (def.spec.class_type == class_type) return def;
    throw Error("plugin " + name_ + " has no node " + class_type);
  }
  std::vector<std::string> class_types() const {
    std::vector<std::string> types;
    for (const auto& def : defs_) types.push_back(def.spec.class_type);
    return types;
  }

 private:
  struct Collect : Registrar {
    void add(NodeDef def) override { defs.push_back(std::move(def)); }
    std::vector<NodeDef> defs;
  };
  boost::dll::shared_library library_;  // declared first: destroyed last
  std::string name_;
  std::vector<NodeDef> defs_;
};

/// Runs `def` once with `inputs` (by name) as the host would run it in a
/// graph: defaults filled, every check the validator makes of literal
/// values, the outputs checked against the declared ones. Throws
/// cozy::Error with the host's message when something does not fit. For a
/// node with `input_is_list`, give each input as a list Value (a default
/// arrives as a list of one, as the host sends it); a list output is
/// returned as the list Value the node made.
inline Outputs run_node(const NodeDef& def, const std::map<std::string, Value>& inputs, Context& ctx) {
  const NodeSpec& spec = def.spec;
  if (std::vector<std::string> problems = spec_problems(def); !problems.empty()) throw Error(problems.front());
  for (const auto& [name, value] : inputs)
    if (spec.input_index(name) < 0) throw Error("node " + spec.class_type + " has no input '" + name + "'");
  auto check = [](const InputSpec& in, Value& v, const std::string& where) {
    if (in.type == types::FLOAT && v.is_int()) v = Value(static_cast<double>(v.as_int()));
    if (!types::is_primitive(in.type)) return;
    const std::string problem = output_problem(OutputSpec{in.name, in.type}, v);
    if (!problem.empty()) throw Error(where + " " + problem);
    if (v.is_int() || v.is_float()) {
      const double number = v.as_float();
      if ((in.min && number < *in.min) || (in.max && number > *in.max))
        throw Error(where + ": " + detail::number_text(number) + " is out of range [" +
                    (in.min ? detail::number_text(*in.min) : "-inf") + ", " +
                    (in.max ? detail::number_text(*in.max) : "inf") + "]");
    }
    if (v.is_string() && !in.choices.empty() &&
        std::find(in.choices.begin(), in.choices.end(), v.as_string()) == in.choices.end())
      throw Error(where + ": '" + v.as_string() + "' is not among the choices");
  };
  std::vector<Value> values(spec.inputs.size());
  for (std::size_t i = 0; i < spec.inputs.size(); ++i) {
    const InputSpec& in = spec.inputs[i];
    auto given = inputs.find(in.name);
    const std::string where = "node " + spec.class_type + ", input '" + in.name + "'";
    if (given == inputs.end() || given->second.empty()) {
      values[i] = to_value(in.default_value);
      if (values[i].empty() && in.required) throw Error(where + ": missing required input of type " + in.type);
      if (spec.input_is_list && !values[i].empty()) values[i] = Value(List{values[i]});
      continue;
    }
    Value v = given->second;
    if (spec.input_is_list) {
      if (!v.is_list()) throw Error(where + " takes a list (the node's input_is_list), got " + v.kind());
      List items = v.as_list();
      for (Value& item : items) check(in, item, where);
      v = Value(std::move(items));
    } else {
      check(in, v, where);
    }
    values[i] = std::move(v);
  }
  Outputs outputs = def.run(Inputs(spec, values), ctx);
  if (outputs.size() != spec.outputs.size())
    throw Error("node " + spec.class_type + " returned " + std::to_string(outputs.size()) + " outputs, but declares " +
                std::to_string(spec.outputs.size()));
  for (std::size_t k = 0; k < outputs.size(); ++k) {
    const OutputSpec& out = spec.outputs[k];
    const std::string where = "node " + spec.class_type + ", output " + std::to_string(k) + " '" + out.name + "' ";
    if (!out.is_list) {
      if (std::string problem = output_problem(out, outputs[k]); !problem.empty()) throw Error(where + problem);
      continue;
    }
    if (!outputs[k].is_list()) throw Error(where + "is declared a list of " + out.type + " but is a value of type " + outputs[k].kind());
    for (const Value& item : outputs[k].as_list())
      if (std::string problem = output_problem(out, item); !problem.empty()) throw Error(where + problem);
  }
  return outputs;
}

}  // namespace cozy::testing
