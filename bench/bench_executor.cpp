// Host overhead per node, against TBB's flow_graph on the same shapes.
//
//   build/bench/bench_executor [repeats]
//
// No-op nodes pass a small INT along every edge. For each shape and for 1
// and 2 workers it prints, as medians over the repeats: graph construction
// (Cozy: JSON text -> parsed graph -> validated -> plan; TBB: nodes and
// edges) and execution, in microseconds per node, and the ratio Cozy / TBB.
// Then: validation of a 10,000-node graph, and the load time of every
// plugin in the build's plugin folder, and what the check of a returned value
// against its declared output costs. Figures are printed, never asserted.
#include <cozy/check.hpp>
#include <cozy/host/executor.hpp>
#include <cozy/host/validate.hpp>

#include <ATen/ATen.h>
#include <oneapi/tbb/flow_graph.h>
#include <oneapi/tbb/global_control.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <random>
#include <vector>

namespace {

using namespace cozy;
using namespace cozy::host;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// A shape: for node i, the indices of its inputs (all < i). The last node is
// the sink (an output node).
struct Shape {
  const char* name;
  std::vector<std::vector<int>> inputs;
};

Shape chain(int n) {
  Shape s{"chain of 10,000", {}};
  s.inputs.push_back({});
  for (int i = 1; i < n; ++i) s.inputs.push_back({i - 1});
  return s;
}

Shape fan(int n) {
  Shape s{"fan out/in 10,000", {}};
  s.inputs.push_back({});
  for (int i = 0; i < n; ++i) s.inputs.push_back({0});
  std::vector<int> all;
  for (int i = 1; i <= n; ++i) all.push_back(i);
  s.inputs.push_back(all);
  return s;
}

Shape layers(int depth, int width) {
  Shape s{"100 layers x 100", {}};
  std::mt19937 rng(0);
  for (int i = 0; i < width; ++i) s.inputs.push_back({});
  for (int l = 1; l < depth; ++l) {
    int previous = (l - 1) * width;
    for (int i = 0; i < width; ++i) {
      int a = previous + static_cast<int>(rng() % width), b = previous + static_cast<int>(rng() % width);
      s.inputs.push_back({a, b});
    }
  }
  std::vector<int> last;
  for (int i = 0; i < width; ++i) last.push_back((depth - 1) * width + i);
  s.inputs.push_back(last);
  return s;
}

std::shared_ptr<Registry> noop_registry(std::size_t max_inputs) {
  auto registry = std::make_shared<Registry>();
  NodeDef noop;
  noop.spec.class_type = "Noop";
  noop.spec.inputs = {InputSpec::Link("a", types::INT).optional(), InputSpec::Link("b", types::INT).optional()};
  noop.spec.outputs = {{"INT", types::INT}};
  noop.run = [](const Inputs& in, Context&) -> Outputs {
    std::int64_t v = 1;
    if (!in.at(0).empty()) v += in.at(0).as_int();
    if (!in.at(1).empty()) v += in.at(1).as_int();
    return {v};
  };
  registry->add(noop);
  NodeDef sink;
  sink.spec.class_type = "Sink";
  sink.spec.output_node = true;
  for (std::size_t i = 0; i < max_inputs; ++i)
    sink.spec.inputs.push_back(InputSpec::Link("in" + std::to_string(i), types::INT).optional());
  sink.run = [](const Inputs& in, Context&) -> Outputs {
    std::int64_t total = 0;
    for (std::size_t i = 0; i < in.size(); ++i)
      if (!in.at(i).empty()) total += in.at(i).as_int();
    return {};
  };
  registry->add(sink);
  return registry;
}

std::string to_json(const Shape& shape) {
  std::string out = "{";
  for (std::size_t i = 0; i < shape.inputs.size(); ++i) {
    bool sink = i + 1 == shape.inputs.size();
    out += (i ? ",\"" : "\"") + std::to_string(i) + "\":{\"class_type\":\"" + (sink ? "Sink" : "Noop") + "\",\"inputs\":{";
    for (std::size_t k = 0; k < shape.inputs[i].size(); ++k) {
      std::string name = sink ? "in" + std::to_string(k) : (k == 0 ? "a" : "b");
      out += (k ? ",\"" : "\"") + name + "\":[\"" + std::to_string(shape.inputs[i][k]) + "\",0]";
    }
    out += "}}";
  }
  return out + "}";
}

struct Figures {
  double build = 0, run = 0;                // seconds, medians
  double parse = 0, validate = 0, plan = 0;  // the parts of `build` for Cozy
};

Figures bench_cozy(const Shape& shape, int jobs, int repeats) {
  auto registry = noop_registry(10000);
  Executor executor(registry);
  std::string text = to_json(shape);
  RunOptions options;
  options.jobs = jobs;
  options.threads = 1;
  options.use_cache = false;
  std::vector<double> build, run, parse, check, plan_time;
  for (int r = 0; r < repeats; ++r) {
    auto start = Clock::now();
    ParseResult parsed = parse_graph(text);
    auto validate_start = Clock::now();
    std::vector<Issue> errors = validate(*parsed.graph, *registry);
    auto plan_start = Clock::now();
    if (!errors.empty()) {
      std::fprintf(stderr, "invalid benchmark graph: %s\n", errors[0].to_string().c_str());
      std::exit(1);
    }
    Plan plan = executor.plan(*parsed.graph);
    auto end = Clock::now();
    build.push_back(std::chrono::duration<double>(end - start).count());
    parse.push_back(std::chrono::duration<double>(validate_start - start).count());
    check.push_back(std::chrono::duration<double>(plan_start - validate_start).count());
    plan_time.push_back(std::chrono::duration<double>(end - plan_start).count());
    start = Clock::now();
    RunReport report = executor.execute(plan, options);
    run.push_back(seconds_since(start));
    if (!report.success || report.executed != plan.size()) {
      std::fprintf(stderr, "benchmark run failed\n");
      std::exit(1);
    }
  }
  return {median(build), median(run), median(parse), median(check), median(plan_time)};
}

Figures bench_tbb(const Shape& shape, int workers, int repeats) {
  namespace flow = oneapi::tbb::flow;
  oneapi::tbb::global_control limit(oneapi::tbb::global_control::max_allowed_parallelism, workers);
  std::vector<double> build, run;
  for (int r = 0; r < repeats; ++r) {
    auto start = Clock::now();
    flow::graph g;
    std::vector<std::int64_t> values(shape.inputs.size(), 0);
    std::vector<std::unique_ptr<flow::continue_node<flow::continue_msg>>> nodes;
    nodes.reserve(shape.inputs.size());
    std::vector<std::size_t> roots;
    for (std::size_t i = 0; i < shape.inputs.size(); ++i) {
      const std::vector<int>* in = &shape.inputs[i];
      std::int64_t* slot = &values[i];
      const std::int64_t* base = values.data();
      nodes.push_back(std::make_unique<flow::continue_node<flow::continue_msg>>(
          g, [in, slot, base](const flow::continue_msg&) {
            std::int64_t v = 1;
            for (int k : *in) v += base[k];
            *slot = v;
          }));
      for (int k : *in) flow::make_edge(*nodes[static_cast<std::size_t>(k)], *nodes.back());
      if (in->empty()) roots.push_back(i);
    }
    build.push_back(seconds_since(start));
    start = Clock::now();
    for (std::size_t root : roots) nodes[root]->try_put(flow::continue_msg());
    g.wait_for_all();
    run.push_back(seconds_since(start));
  }
  return {median(build), median(run)};
}

}  // namespace

int main(int argc, char** argv) {
  int repeats = argc > 1 ? std::atoi(argv[1]) : 11;
  std::printf("Cozy host overhead vs TBB flow_graph, no-op nodes, median of %d runs, microseconds per node\n", repeats);
  std::printf("%-18s %4s | %8s %8s %8s %8s | %8s %8s | %7s %7s\n", "shape", "jobs", "parse", "validate", "plan",
              "run", "tbb make", "tbb run", "run x", "build x");
  for (const Shape& shape : {chain(10000), fan(10000), layers(100, 100)}) {
    double n = static_cast<double>(shape.inputs.size());
    for (int jobs : {1, 2}) {
      Figures cozy = bench_cozy(shape, jobs, repeats);
      Figures tbb = bench_tbb(shape, jobs, repeats);
      std::printf("%-18s %4d | %8.3f %8.3f %8.3f %8.3f | %8.3f %8.3f | %7.2f %7.2f\n", shape.name, jobs,
                  cozy.parse / n * 1e6, cozy.validate / n * 1e6, cozy.plan / n * 1e6, cozy.run / n * 1e6,
                  tbb.build / n * 1e6, tbb.run / n * 1e6, cozy.run / tbb.run, cozy.build / tbb.build);
      if (jobs == 1)
        std::printf("%-18s      | validation of %zu nodes: %.2f ms\n", "", shape.inputs.size(), cozy.validate * 1e3);
    }
  }
  std::printf("\n");

  // What the executor's check of every returned value costs (output_problem,
  // cozy/check.hpp), per value, against the per-node figures above.
  {
    struct Kind {
      const char* name;
      OutputSpec spec;
      Value value;
    };
    struct Model : Object {
      std::string type_name() const override { return "GENERATOR"; }
    };
    const Kind kinds[] = {{"INT", {"n", types::INT}, Value(std::int64_t{3})},
                          {"IMAGE", {"image", types::IMAGE}, Value(at::zeros({1, 3, 8, 8}))},
                          {"GENERATOR", {"g", types::GENERATOR}, Value(std::make_shared<Model>())}};
    for (const Kind& kind : kinds) {
      std::vector<double> per_check;
      const int calls = 1000000;
      for (int r = 0; r < repeats; ++r) {
        std::size_t problems = 0;
        auto start = Clock::now();
        for (int i = 0; i < calls; ++i) problems += output_problem(kind.spec, kind.value).size();
        per_check.push_back(seconds_since(start) / calls);
        if (problems) std::exit(1);
      }
      std::printf("output check of a %-9s value: %.1f ns (median of %d x %d)\n", kind.name, median(per_check) * 1e9,
                  repeats, calls);
    }
  }
  std::printf("\n");

  std::vector<double> loads;
  for (int r = 0; r < repeats; ++r) {
    auto start = Clock::now();
    Registry registry;
    registry.load_folder(COZY_PLUGIN_DIR);
    loads.push_back(seconds_since(start));
    if (r == 0) {
      std::printf("plugins in %s:", COZY_PLUGIN_DIR);
      for (const auto& p : registry.plugins()) std::printf(" %s%s", p.name.c_str(), p.loaded ? "" : " (FAILED)");
      std::printf("\nload of all plugins: first %.2f ms, median %.2f ms\n", loads[0] * 1e3, median(loads) * 1e3);
    }
  }
  std::printf("load of all plugins, median of %d: %.2f ms\n", repeats, median(loads) * 1e3);
  return 0;
}
