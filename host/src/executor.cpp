#include <cozy/host/executor.hpp>
#include <cozy/check.hpp>
#include <cozy/host/validate.hpp>

#include <ATen/Parallel.h>
#include <c10/util/Exception.h>
#include <cxxabi.h>

#include <boost/graph/adjacency_list.hpp>
#include <boost/graph/topological_sort.hpp>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

namespace {
// What an output is, for the `executed` event: a tensor's device, dtype and
// shape (to see where data lives between nodes), an object's type, a literal.
nlohmann::json describe_value(const cozy::Value& v) {
  if (v.is_tensor()) {
    const at::Tensor& t = v.as_tensor();
    if (!t.defined()) return {{"kind", "tensor"}, {"defined", false}};
    return {{"kind", "tensor"}, {"device", t.device().str()}, {"dtype", std::string(c10::toString(t.scalar_type()))},
            {"shape", t.sizes().vec()}};
  }
  if (v.is_object()) return {{"kind", "object"}, {"type", v.as_object() ? v.as_object()->type_name() : "null"}};
  if (v.empty()) return {{"kind", "none"}};
  if (v.is_list()) return {{"kind", "list"}, {"size", v.as_list().size()}};
  nlohmann::json value;
  if (v.is_bool()) value = v.as_bool();
  else if (v.is_int()) value = v.as_int();
  else if (v.is_float()) value = v.as_float();
  else if (v.is_string()) value = v.as_string().size() <= 4096 ? v.as_string() : v.as_string().substr(0, 4096) + "...";
  return {{"kind", "literal"}, {"type", v.kind()}, {"value", std::move(value)}};
}

// The C++ type of the exception being handled, demangled ("c10::Error").
std::string current_exception_type() {
  const std::type_info* type = abi::__cxa_current_exception_type();
  if (!type) return "unknown";
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> name(abi::__cxa_demangle(type->name(), nullptr, nullptr, &status), std::free);
  return status == 0 && name ? std::string(name.get()) : std::string(type->name());
}

bool is_image_file(const std::filesystem::path& file) {
  std::string ext = file.extension().string();
  for (auto& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (const char* image : {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"})
    if (ext == image) return true;
  return false;
}

// An output's values: one described as above, several as a list.
nlohmann::json describe_items(const std::vector<cozy::Value>& items) {
  if (items.size() == 1) return describe_value(items.front());
  nlohmann::json list = {{"kind", "list"}, {"size", items.size()}};
  if (!items.empty()) list["first"] = describe_value(items.front());
  return list;
}

long long now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}
}  // namespace

namespace cozy::host {

// ---------------------------------------------------------------- the plan

namespace {

// What one output of a node holds in a run: its list of values, one per run
// of the node unless the output is a list (NodeSpec's comment has the rules).
using Items = std::vector<Value>;
using Slots = std::vector<Items>;  // one per declared output

struct InputSource {
  enum Kind : std::uint8_t { absent, literal, link } kind = absent;
  std::uint32_t producer = 0;  // plan index, for links
  std::uint32_t output = 0;
  Value value;  // for literals
};

struct PlanNode {
  std::string id;
  std::string title;
  const RegisteredNode* node = nullptr;
  std::vector<InputSource> inputs;      // one per spec input
  std::vector<std::uint32_t> producers;  // distinct plan indices
  std::vector<std::uint32_t> consumers;  // distinct plan indices
  std::uint64_t key = 0;
  bool cacheable = false;  // pure, and every upstream node pure
  std::uint32_t level = 0;
};

constexpr std::uint64_t kFnvOffset = 1469598103934665603ull;
constexpr std::uint64_t kFnvPrime = 1099511628211ull;

void hash_bytes(std::uint64_t& h, const void* data, std::size_t size) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (std::size_t i = 0; i < size; ++i) h = (h ^ p[i]) * kFnvPrime;
}
void hash_string(std::uint64_t& h, const std::string& s) {
  hash_bytes(h, s.data(), s.size());
  hash_bytes(h, "\0", 1);
}
template <class T>
void hash_pod(std::uint64_t& h, T v) {
  hash_bytes(h, &v, sizeof v);
}

Value literal_value(const nlohmann::json& j, const std::string& type) {
  if (type == types::FLOAT && j.is_number()) return Value(j.get<double>());
  if (type == types::BOUNDING_BOX && j.is_object()) {  // validated: whole numbers; ComfyUI's defaults
    auto get = [&](const char* key, std::int64_t fallback) {
      return j.contains(key) ? Value(j[key].get<std::int64_t>()) : Value(fallback);
    };
    return Value(List{get("x", 0), get("y", 0), get("width", 512), get("height", 512)});
  }
  switch (j.type()) {
    case nlohmann::json::value_t::boolean: return Value(j.get<bool>());
    case nlohmann::json::value_t::number_integer: return Value(j.get<std::int64_t>());
    case nlohmann::json::value_t::number_unsigned: return Value(static_cast<std::int64_t>(j.get<std::uint64_t>()));
    case nlohmann::json::value_t::number_float: return Value(j.get<double>());
    case nlohmann::json::value_t::string: return Value(j.get<std::string>());
    case nlohmann::json::value_t::array: {
      List list;
      list.reserve(j.size());
      for (const auto& item : j) list.push_back(literal_value(item, types::ANY));
      return Value(std::move(list));
    }
    default: return Value();
  }
}

}  // namespace

struct Plan::Impl {
  std::vector<PlanNode> nodes;  // topological order
  std::uint32_t width = 1;      // most nodes on one level: the useful parallelism
};

Plan::Plan() = default;
Plan::~Plan() = default;
Plan::Plan(Plan&&) noexcept = default;
Plan& Plan::operator=(Plan&&) noexcept = default;
std::size_t Plan::size() const { return impl ? impl->nodes.size() : 0; }

Plan Executor::plan(const Graph& graph) const {
  const std::size_t n = graph.nodes.size();
  using Digraph = boost::adjacency_list<boost::vecS, boost::vecS, boost::bidirectionalS>;
  Digraph g(n);
  std::vector<const RegisteredNode*> defs(n);
  for (std::size_t i = 0; i < n; ++i) {
    const GraphNode& node = graph.nodes[i];
    defs[i] = registry_->find(node.class_type);
    if (!defs[i]) throw Error("node " + node.id + ": unknown class_type " + node.class_type + " (validate first)");
    for (const auto& [name, input] : node.inputs) {
      if (!input.is_link) continue;
      auto it = graph.index.find(input.link.node);
      if (it == graph.index.end()) throw Error("node " + node.id + ": link to missing node " + input.link.node);
      boost::add_edge(it->second, i, g);
    }
  }
  std::vector<std::size_t> reverse_order;
  reverse_order.reserve(n);
  try {
    boost::topological_sort(g, std::back_inserter(reverse_order));
  } catch (const boost::not_a_dag&) {
    throw Error("the graph has a cycle (validate first)");
  }

  // Walking from the sinks up: a node is needed if it is an output node or
  // feeds a needed node.
  std::vector<char> needed(n, 0);
  for (std::size_t v : reverse_order) {
    if (defs[v]->def.spec.output_node) needed[v] = 1;
    if (!needed[v]) {
      for (auto [e, end] = boost::out_edges(v, g); e != end; ++e)
        if (needed[boost::target(*e, g)]) {
          needed[v] = 1;
          break;
        }
    }
  }

  Plan plan;
  plan.impl = std::make_unique<Plan::Impl>();
  auto& nodes = plan.impl->nodes;
  std::vector<std::uint32_t> position(n, UINT32_MAX);
  for (auto it = reverse_order.rbegin(); it != reverse_order.rend(); ++it) {
    if (!needed[*it]) continue;
    position[*it] = static_cast<std::uint32_t>(nodes.size());
    nodes.emplace_back();
  }
  std::vector<std::uint32_t> level_count;
  for (auto it = reverse_order.rbegin(); it != reverse_order.rend(); ++it) {
    std::size_t v = *it;
    if (!needed[v]) continue;
    const GraphNode& source = graph.nodes[v];
    const NodeSpec& spec = defs[v]->def.spec;
    PlanNode& node = nodes[position[v]];
    node.id = source.id;
    node.title = source.title;
    node.node = defs[v];
    node.inputs.resize(spec.inputs.size());
    node.cacheable = spec.pure;
    std::uint64_t key = kFnvOffset;
    hash_string(key, spec.class_type);
    std::vector<const InputValue*> given_inputs = match_inputs(source, spec);
    for (std::size_t k = 0; k < spec.inputs.size(); ++k) {
      const InputSpec& in = spec.inputs[k];
      InputSource& slot = node.inputs[k];
      hash_string(key, in.name);
      const InputValue* given = given_inputs[k];
      if (given && given->is_link) {
        std::uint32_t producer = position[graph.index.at(given->link.node)];
        slot.kind = InputSource::link;
        slot.producer = producer;
        slot.output = static_cast<std::uint32_t>(given->link.output);
        if (std::find(node.producers.begin(), node.producers.end(), producer) == node.producers.end())
          node.producers.push_back(producer);
        hash_pod(key, nodes[producer].key);
        hash_pod(key, slot.output);
        node.cacheable = node.cacheable && nodes[producer].cacheable;
        node.level = std::max(node.level, nodes[producer].level + 1);
      } else if (given) {
        slot.kind = InputSource::literal;
        slot.value = literal_value(given->literal, in.type);
        hash_string(key, given->literal.dump());
      } else if (has_value(in.default_value)) {
        slot.kind = InputSource::literal;
        slot.value = to_value(in.default_value);
        hash_string(key, "default");
      } else {
        hash_string(key, "absent");
      }
    }
    node.key = key;
    for (std::uint32_t producer : node.producers) nodes[producer].consumers.push_back(position[v]);
    if (level_count.size() <= node.level) level_count.resize(node.level + 1, 0);
    ++level_count[node.level];
  }
  for (std::uint32_t c : level_count) plan.impl->width = std::max(plan.impl->width, c);
  return plan;
}

std::pair<int, int> resolve_parallelism(int jobs, int threads) {
  int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  if (jobs <= 0) jobs = cores;
  if (threads <= 0) threads = std::max(1, cores / jobs);
  return {jobs, threads};
}

// ---------------------------------------------------------------- workers

// Threads that live as long as the Executor. run() hands one task to
// `helpers` of them and runs it on the caller too; it returns once the
// caller's call has returned and every helper that started has returned.
// Helpers that had not woken by then are not waited for: the task (a run's
// work loop) has nothing left for them.
class Executor::Workers {
 public:
  ~Workers() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    for (auto& t : threads_) t.join();
  }

  void run(int helpers, const std::function<void()>& task) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      while (static_cast<int>(threads_.size()) < helpers) threads_.emplace_back([this] { loop(); });
      task_ = &task;
      slots_ = helpers;
    }
    if (helpers > 0) wake_.notify_all();
    task();
    std::unique_lock<std::mutex> lock(mutex_);
    slots_ = 0;
    done_.wait(lock, [this] { return active_ == 0; });
    task_ = nullptr;
  }

  std::size_t size() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return threads_.size();
  }

 private:
  void loop() {
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      wake_.wait(lock, [this] { return stopping_ || slots_ > 0; });
      if (stopping_) return;
      --slots_;
      ++active_;
      const std::function<void()>* task = task_;
      lock.unlock();
      (*task)();
      lock.lock();
      if (--active_ == 0) done_.notify_all();
    }
  }

  mutable std::mutex mutex_;
  std::condition_variable wake_, done_;
  std::vector<std::thread> threads_;
  const std::function<void()>* task_ = nullptr;
  int slots_ = 0, active_ = 0;
  bool stopping_ = false;
};

Executor::Executor(std::shared_ptr<const Registry> registry)
    : registry_(std::move(registry)), workers_(std::make_unique<Workers>()) {}
Executor::~Executor() {
  std::lock_guard<std::mutex> lock(run_mutex_);  // a run in progress finishes first
  workers_.reset();
}

// ---------------------------------------------------------------- a run

namespace {
enum NodeState : std::uint8_t { waiting = 0, succeeded = 1, failed = 2, skipped = 3 };
constexpr std::uint32_t kNone = UINT32_MAX;
}  // namespace

struct Executor::Run {
  Run(const Plan::Impl& p, const RunOptions& o, RunReport& r) : plan(p), options(o), report(r) {}
  const Plan::Impl& plan;
  const RunOptions& options;
  RunReport& report;
  int threads = 1;
  std::filesystem::path temp_dir;

  std::vector<Slots> values;      // by plan index; cleared after the last consumer
  std::vector<Slots> for_cache;   // outputs of cacheable nodes that ran
  std::vector<char> needed, from_cache;
  std::unique_ptr<std::atomic<int>[]> pending;    // producers not finished
  std::unique_ptr<std::atomic<int>[]> uses_left;  // running consumers not finished
  std::unique_ptr<std::atomic<std::uint8_t>[]> state;

  std::mutex queue_mutex;
  std::condition_variable queue_cv;
  std::vector<std::uint32_t> ready;
  int sleepers = 0;
  std::atomic<std::size_t> remaining{0};
  std::atomic<std::size_t> executed{0};
  std::mutex report_mutex;
  std::string interrupted_node;  // the node that stopped on the cancellation, if one did

  bool cancelled() const { return options.cancel && options.cancel->cancelled(); }

  void emit(const char* type, nlohmann::json data) {
    if (!options.events) return;
    data["prompt_id"] = options.prompt_id;
    options.events->emit(Event{type, std::move(data)});
  }

  // A file a node reported, relative to the folder that holds it.
  FileRef file_ref(const std::filesystem::path& file, std::string_view kind) const {
    namespace fs = std::filesystem;
    const std::pair<const char*, const fs::path*> roots[] = {{"output", &options.output_dir},
                                                             {"temp", &temp_dir},
                                                             {"input", &options.input_dir},
                                                             {"models", &options.model_dir}};
    const fs::path absolute = fs::absolute(file).lexically_normal();
    std::vector<std::pair<const char*, const fs::path*>> order;
    for (const auto& root : roots)
      if (kind == root.first) order.insert(order.begin(), root);
      else order.push_back(root);
    for (const auto& [type, root] : order) {
      if (root->empty()) continue;
      fs::path relative = absolute.lexically_relative(fs::absolute(*root).lexically_normal());
      if (relative.empty() || *relative.begin() == ".." || relative == ".") continue;
      return {relative.filename().string(), relative.parent_path().generic_string(), type, file};
    }
    return {file.filename().string(), "", std::string(kind), file};
  }

  class NodeContext;
  void process(std::uint32_t index, std::vector<std::uint32_t>& now_ready);
  void work();
  nlohmann::json current_inputs(const PlanNode& node, const std::vector<Value>& arguments) const;
};

class Executor::Run::NodeContext final : public Context {
 public:
  NodeContext(Run& run, const PlanNode& node) : run_(run), node_(node) {}
  c10::Device device() const override { return run_.options.device; }
  int threads() const override { return run_.threads; }
  void progress(std::int64_t value, std::int64_t max, std::string_view text) override {
    nlohmann::json data = {{"value", value}, {"max", max}, {"node", node_.id}};
    if (!text.empty()) data["text"] = std::string(text);
    run_.emit("progress", std::move(data));
  }
  bool cancelled() const override { return run_.cancelled(); }
  void log(LogLevel level, std::string_view message) override {
    static const char* names[] = {"debug", "info", "warning", "error"};
    run_.emit("log", {{"node", node_.id}, {"level", names[static_cast<int>(level)]}, {"message", std::string(message)}});
  }
  const std::filesystem::path& input_dir() const override { return run_.options.input_dir; }
  const std::filesystem::path& output_dir() const override { return run_.options.output_dir; }
  const std::filesystem::path& model_dir() const override { return run_.options.model_dir; }
  const std::filesystem::path& model_save_dir() const override {
    return run_.options.model_save_dir.empty() ? run_.options.output_dir : run_.options.model_save_dir;
  }
  const std::filesystem::path& temp_dir() const override { return run_.temp_dir; }
  Collective* collective() const override { return run_.options.collective.get(); }
  void add_file(const std::filesystem::path& file, std::string_view kind) override {
    files.push_back(run_.file_ref(file, kind));
  }
  const std::string& node_id() const override { return node_.id; }
  void show_text(std::string_view text) override { texts.emplace_back(text); }

  std::vector<FileRef> files;
  std::vector<std::string> texts;

 private:
  Run& run_;
  const PlanNode& node_;
};

nlohmann::json Executor::Run::current_inputs(const PlanNode& node, const std::vector<Value>& arguments) const {
  nlohmann::json inputs = nlohmann::json::object();
  const NodeSpec& spec = node.node->def.spec;
  for (std::size_t k = 0; k < node.inputs.size() && k < arguments.size(); ++k) {
    if (node.inputs[k].kind == InputSource::absent) continue;
    nlohmann::json described = describe_value(arguments[k]);
    if (node.inputs[k].kind == InputSource::link)
      described["from"] = {plan.nodes[node.inputs[k].producer].id, node.inputs[k].output};
    inputs[spec.inputs[k].name] = std::move(described);
  }
  return inputs;
}

void Executor::Run::process(std::uint32_t index, std::vector<std::uint32_t>& now_ready) {
  const PlanNode& node = plan.nodes[index];
  const NodeSpec& spec = node.node->def.spec;
  NodeState outcome = succeeded;

  if (!from_cache[index]) {
    for (std::uint32_t p : node.producers)
      if (state[p].load(std::memory_order_acquire) != succeeded) outcome = skipped;
    if (outcome == succeeded && cancelled()) outcome = skipped;
    if (outcome == skipped) {
      std::lock_guard<std::mutex> lock(report_mutex);
      report.skipped.push_back(node.id);
    } else {
      std::string error, exception_type, detail;
      nlohmann::json inputs_at_failure;
      bool interrupted = false;
      Slots outputs(spec.outputs.size());
      std::chrono::steady_clock::time_point started;
      const std::string& display = node.title.empty() ? spec.class_type : node.title;
      {
        // What each input brings: a list, one long unless a node upstream
        // made more. The node runs once per element of the longest (or once
        // on the whole lists when it takes lists).
        std::size_t runs = 1;
        if (!spec.input_is_list) {
          std::size_t longest = 1;
          for (const InputSource& in : node.inputs) {
            if (in.kind != InputSource::link) continue;
            const std::size_t size = values[in.producer][in.output].size();
            if (size == 0) runs = 0;
            longest = std::max(longest, size);
          }
          if (runs != 0) runs = longest;
        }
        // One argument buffer per worker, reused from node to node (taken out
        // of its slot while in use, so a node that runs a graph itself is safe).
        thread_local std::vector<Value> spare;
        std::vector<Value> arguments = std::move(spare);
        arguments.resize(node.inputs.size());
        struct GiveBack {  // drop our references to the inputs, also on error
          std::vector<Value>& arguments;
          ~GiveBack() {
            for (auto& v : arguments) v = Value();
            spare = std::move(arguments);
          }
        } give_back{arguments};
        auto gather = [&](std::size_t run) {
          for (std::size_t k = 0; k < node.inputs.size(); ++k) {
            const InputSource& in = node.inputs[k];
            if (in.kind == InputSource::literal) {
              arguments[k] = spec.input_is_list ? Value(List{in.value}) : in.value;
            } else if (in.kind == InputSource::link) {
              const Items& items = values[in.producer][in.output];
              if (spec.input_is_list) arguments[k] = Value(List(items.begin(), items.end()));
              else arguments[k] = items[std::min(run, items.size() - 1)];
            }
          }
        };
        // ComfyUI's display_node is the id of the node that shows the output
        // (this one); the title is Cozy's, for progress lines.
        if (options.events) emit("executing", {{"node", node.id}, {"display_node", node.id}, {"title", display}});
        NodeContext context(*this, node);
        started = std::chrono::steady_clock::now();
        for (std::size_t run = 0; run < runs && error.empty(); ++run) {
          try {
            if (run > 0 && cancelled()) throw Cancelled();
            gather(run);
            Outputs returned = node.node->def.run(Inputs(spec, arguments.data(), node.inputs.size()), context);
            if (returned.size() != spec.outputs.size()) {
              error = "returned " + std::to_string(returned.size()) + " outputs, but declares " +
                      std::to_string(spec.outputs.size());
              exception_type = "cozy::Error";
            }
            // What a node returns is checked here, so the next node is not
            // blamed for it.
            for (std::size_t k = 0; k < returned.size() && error.empty(); ++k) {
              const OutputSpec& out = spec.outputs[k];
              std::string problem;
              if (!out.is_list) {
                problem = output_problem(out, returned[k]);
                if (problem.empty()) outputs[k].push_back(std::move(returned[k]));
              } else if (!returned[k].is_list()) {
                problem = "is declared a list of " + out.type + " but is a value of type " + returned[k].kind();
              } else {
                for (const Value& item : returned[k].as_list()) {
                  if (problem = output_problem(out, item); !problem.empty()) break;
                  outputs[k].push_back(item);
                }
              }
              if (!problem.empty()) {
                error = "output " + std::to_string(k) + " '" + out.name + "' " + problem;
                exception_type = "cozy::Error";
              }
            }
          } catch (const Cancelled&) {
            interrupted = true;
            error = "cancelled";
          } catch (const c10::Error& e) {
            error = e.what_without_backtrace();  // LibTorch's C++ frames are for developers (detail)
            detail = e.what();
            exception_type = current_exception_type();
          } catch (const std::exception& e) {
            error = e.what();
            exception_type = current_exception_type();
          } catch (...) {
            error = "threw an exception that is not a std::exception";
            exception_type = current_exception_type();
          }
          if (!exception_type.empty()) {
            if (error.empty()) error = "failed without a message";
            inputs_at_failure = current_inputs(node, arguments);
          }
        }
        executed.fetch_add(1, std::memory_order_relaxed);
        if (error.empty()) {
          nlohmann::json ui = nlohmann::json::object();
          if (!context.texts.empty()) ui["text"] = context.texts;
          if (!context.files.empty()) {
            nlohmann::json images = nlohmann::json::array(), others = nlohmann::json::array();
            for (const FileRef& f : context.files) (is_image_file(f.filename) ? images : others).push_back(f.to_json());
            if (!images.empty()) ui["images"] = std::move(images);
            if (!others.empty()) ui["files"] = std::move(others);
          }
          {
            std::lock_guard<std::mutex> lock(report_mutex);
            report.ran.push_back(node.id);
            if (!context.files.empty()) {
              auto& list = report.files[node.id];
              list.insert(list.end(), context.files.begin(), context.files.end());
            }
            if (!ui.empty()) report.ui[node.id] = ui;
          }
          if (options.events) {
            const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
            nlohmann::json described = nlohmann::json::array();
            for (const Items& items : outputs) described.push_back(describe_items(items));
            emit("executed", {{"node", node.id}, {"display_node", node.id}, {"title", display}, {"output", ui.empty() ? nullptr : ui},
                              {"values", std::move(described)}, {"seconds", seconds}});
          }
        } else if (interrupted) {
          std::lock_guard<std::mutex> lock(report_mutex);
          report.skipped.push_back(node.id);
          if (interrupted_node.empty()) interrupted_node = node.id;
        } else {
          std::lock_guard<std::mutex> lock(report_mutex);
          report.failures.push_back(
              {node.id, spec.class_type, error, exception_type, std::move(inputs_at_failure), std::move(detail)});
        }
      }
      if (error.empty()) {
        values[index] = std::move(outputs);
        if (options.use_cache && node.cacheable) for_cache[index] = values[index];
      } else {
        outcome = interrupted ? skipped : failed;
      }
    }
    // This node has read its inputs: release what no one else will read.
    for (std::uint32_t p : node.producers) {
      if (uses_left[p].fetch_sub(1, std::memory_order_acq_rel) == 1 && !plan.nodes[p].node->def.spec.output_node)
        Slots().swap(values[p]);
    }
  }
  state[index].store(outcome, std::memory_order_release);
  for (std::uint32_t c : node.consumers) {
    if (!needed[c] || from_cache[c]) continue;
    if (pending[c].fetch_sub(1, std::memory_order_acq_rel) == 1) now_ready.push_back(c);
  }
}

void Executor::Run::work() {
  std::vector<std::uint32_t> now_ready;
  std::uint32_t next = kNone;
  for (;;) {
    if (next == kNone) {
      std::unique_lock<std::mutex> lock(queue_mutex);
      while (ready.empty() && remaining.load(std::memory_order_acquire) != 0) {
        ++sleepers;
        queue_cv.wait(lock);
        --sleepers;
      }
      if (ready.empty()) return;
      next = ready.back();
      ready.pop_back();
    }
    now_ready.clear();
    process(next, now_ready);
    next = kNone;
    if (!now_ready.empty()) {
      // Run one successor here, without a hand-off; share the rest.
      next = now_ready.back();
      now_ready.pop_back();
      if (!now_ready.empty()) {
        std::lock_guard<std::mutex> lock(queue_mutex);
        ready.insert(ready.end(), now_ready.begin(), now_ready.end());
        if (sleepers > 0) queue_cv.notify_all();
      }
    }
    if (remaining.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      std::lock_guard<std::mutex> lock(queue_mutex);
      queue_cv.notify_all();
      return;
    }
  }
}

RunReport Executor::execute(const Plan& plan_in, const RunOptions& options) {
  if (!plan_in.impl) throw Error("empty plan");
  const Plan::Impl& plan = *plan_in.impl;
  const std::size_t n = plan.nodes.size();
  std::lock_guard<std::mutex> one_run_at_a_time(run_mutex_);
  auto start = std::chrono::steady_clock::now();

  RunReport report;
  Run run(plan, options, report);
  int jobs = options.jobs > 0 ? options.jobs : std::min<int>(resolve_parallelism(0, 0).first, static_cast<int>(plan.width));
  std::tie(jobs, run.threads) = resolve_parallelism(jobs, options.threads);
  report.jobs = jobs;
  report.threads = run.threads;
  run.temp_dir = options.temp_dir.empty() ? std::filesystem::temp_directory_path() / "cozy" : options.temp_dir;

  run.values.resize(n);
  run.for_cache.resize(n);
  run.needed.assign(n, 0);
  run.from_cache.assign(n, 0);
  run.pending.reset(new std::atomic<int>[n]);
  run.uses_left.reset(new std::atomic<int>[n]);
  run.state.reset(new std::atomic<std::uint8_t>[n]);

  // From the sinks up: a node runs if an output node needs it and its
  // result is not in the cache; a cached result cuts off what lies above it.
  std::vector<std::string> cached_ids;
  for (std::size_t i = n; i-- > 0;) {
    const PlanNode& node = plan.nodes[i];
    bool need = node.node->def.spec.output_node;
    for (std::uint32_t c : node.consumers)
      if (run.needed[c] && !run.from_cache[c]) need = true;
    run.needed[i] = need;
    if (need && options.use_cache && node.cacheable) {
      if (auto hit = cache_.find(node.key); hit != cache_.end()) {
        run.from_cache[i] = 1;
        run.values[i] = hit->second;
        cached_ids.push_back(node.id);
      }
    }
  }
  std::size_t count = 0;
  for (std::size_t i = 0; i < n; ++i) {
    run.state[i].store(waiting, std::memory_order_relaxed);
    int uses = 0;
    for (std::uint32_t c : plan.nodes[i].consumers)
      if (run.needed[c] && !run.from_cache[c]) ++uses;
    run.uses_left[i].store(uses, std::memory_order_relaxed);
    if (!run.needed[i]) continue;
    ++count;
    int producers = run.from_cache[i] ? 0 : static_cast<int>(plan.nodes[i].producers.size());
    run.pending[i].store(producers, std::memory_order_relaxed);
    if (producers == 0) run.ready.push_back(static_cast<std::uint32_t>(i));
  }
  std::reverse(run.ready.begin(), run.ready.end());  // the stack pops the first node first
  run.remaining.store(count);

  run.emit("execution_start", {{"nodes", count}, {"timestamp", now_ms()}});
  if (!cached_ids.empty()) run.emit("execution_cached", {{"nodes", cached_ids}, {"timestamp", now_ms()}});
  report.cached = cached_ids;

  if (count > 0) {
    jobs = std::max(1, std::min<int>(jobs, static_cast<int>(count)));
    const int threads = run.threads;
    // Each worker sets its own OpenMP thread count: LibTorch's setting is
    // per thread, and a worker keeps what an earlier run set.
    const std::function<void()> task = [&run, threads] {
      if (at::get_num_threads() != threads) at::set_num_threads(threads);
      run.work();
    };
    workers_->run(jobs - 1, task);
  }
  report.executed = run.executed.load();

  for (std::size_t i = 0; i < n; ++i) {
    const PlanNode& node = plan.nodes[i];
    if (node.node->def.spec.output_node && run.state[i].load() == succeeded) {
      Outputs outputs;
      for (const Items& items : run.values[i]) outputs.push_back(items.size() == 1 ? items.front() : Value(List(items)));
      report.outputs[node.id] = std::move(outputs);
    }
  }
  if (options.use_cache) {
    std::unordered_map<std::uint64_t, Slots> next;
    for (std::size_t i = 0; i < n; ++i) {
      const PlanNode& node = plan.nodes[i];
      if (!node.cacheable) continue;
      if (run.state[i].load() == succeeded && !run.from_cache[i]) {
        next[node.key] = std::move(run.for_cache[i]);
      } else if (auto old = cache_.find(node.key); old != cache_.end()) {
        next[node.key] = old->second;
      }
    }
    cache_ = std::move(next);
  }

  report.interrupted = run.cancelled() || !run.interrupted_node.empty();
  report.success = report.failures.empty() && report.skipped.empty() && !report.interrupted;
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  // The one terminal event, after every node that will run has run.
  nlohmann::json executed_ids = report.cached;
  for (const auto& id : report.ran) executed_ids.push_back(id);
  if (!report.failures.empty()) {
    const NodeFailure& first = report.failures.front();
    nlohmann::json all = nlohmann::json::array();
    for (const auto& f : report.failures)
      all.push_back({{"node_id", f.node_id}, {"node_type", f.class_type}, {"exception_message", f.message},
                     {"exception_type", f.exception_type}});
    run.emit("execution_error", {{"node_id", first.node_id},
                                 {"node_type", first.class_type},
                                 {"executed", executed_ids},
                                 {"exception_message", first.message},
                                 {"exception_type", first.exception_type},
                                 {"traceback", nlohmann::json::array()},
                                 {"current_inputs", first.inputs.is_null() ? nlohmann::json::object() : first.inputs},
                                 {"current_outputs", nlohmann::json::object()},
                                 {"errors", std::move(all)},
                                 {"timestamp", now_ms()}});
  } else if (report.interrupted) {
    const PlanNode* stopped = nullptr;
    for (const auto& node : plan.nodes)
      if (node.id == run.interrupted_node) stopped = &node;
    run.emit("execution_interrupted",
             {{"node_id", stopped ? nlohmann::json(stopped->id) : nlohmann::json(nullptr)},
              {"node_type", stopped ? nlohmann::json(stopped->node->def.spec.class_type) : nlohmann::json(nullptr)},
              {"executed", executed_ids},
              {"timestamp", now_ms()}});
  } else {
    run.emit("execution_success", {{"timestamp", now_ms()}});
  }
  run.emit("executing", {{"node", nullptr}, {"display_node", nullptr}});
  return report;
}

void Executor::clear_cache() {
  std::lock_guard<std::mutex> lock(run_mutex_);
  cache_.clear();
}
std::size_t Executor::cache_size() const {
  std::lock_guard<std::mutex> lock(run_mutex_);
  return cache_.size();
}
std::size_t Executor::worker_threads() const { return workers_->size(); }

}  // namespace cozy::host
