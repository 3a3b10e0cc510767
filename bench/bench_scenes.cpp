// One layout (input/two_objects_layout.json: a striped sneaker at left, a
// checked bag at right) rendered and composed on the CPU at 64 x 64 and
// 256 x 256, and made by the learned LayoutToImage model at its size:
// images per second, medians of the repeats, 1 and 2 LibTorch threads.
//
//   build/bench/bench_scenes [repeats=21]
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cozy/host/executor.hpp>
#include <cozy/host/graph.hpp>
#include <cozy/host/registry.hpp>
#include <cozy/host/validate.hpp>
#include <cstdio>
#include <filesystem>
#include <map>

#include "bench_graphs.hpp"
#include "bench_nodes.hpp"

namespace {

using namespace cozy;
using namespace cozy::host;
using json = nlohmann::json;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

class BenchContext : public Context {
 public:
  explicit BenchContext(int threads) : threads_(threads) {}
  c10::Device device() const override { return c10::kCPU; }
  int threads() const override { return threads_; }
  void progress(std::int64_t, std::int64_t, std::string_view) override {}
  bool cancelled() const override { return false; }
  void log(LogLevel, std::string_view) override {}
  const fs::path& input_dir() const override { return dir_; }
  const fs::path& output_dir() const override { return dir_; }
  const fs::path& model_dir() const override { return dir_; }
  const fs::path& temp_dir() const override { return dir_; }
  void add_file(const fs::path&, std::string_view) override {}
  const std::string& node_id() const override { return id_; }
  void show_text(std::string_view) override {}

 private:
  int threads_;
  fs::path dir_ = fs::temp_directory_path();
  std::string id_ = "bench";
};

// Calls node `type` once with `given` inputs (defaults for the others).
Outputs call(const Registry& registry, const std::string& type, const std::map<std::string, Value>& given,
             Context& ctx) {
  const RegisteredNode* node = registry.find(type);
  if (!node) throw std::runtime_error("no node " + type);
  const std::vector<Value> values = bench::node_inputs(node->def.spec, given);
  return node->def.run(Inputs(node->def.spec, values), ctx);
}

double median_rate(int repeats, const std::function<void()>& fn) {
  fn();  // untimed: lazy set-up
  std::vector<double> seconds;
  for (int r = 0; r < repeats; ++r) {
    auto start = Clock::now();
    fn();
    seconds.push_back(std::chrono::duration<double>(Clock::now() - start).count());
  }
  std::sort(seconds.begin(), seconds.end());
  return 1.0 / seconds[seconds.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  const int repeats = argc > 1 ? std::atoi(argv[1]) : 21;
  auto registry = std::make_shared<Registry>();
  registry->load_folder(COZY_PLUGIN_DIR);
  bench::add_keep_node(*registry);
  Executor executor(registry);
  RunOptions options;
  options.model_dir = fs::path(COZY_SOURCE_DIR) / "models";
  options.input_dir = fs::path(COZY_SOURCE_DIR) / "input";
  options.output_dir = fs::temp_directory_path() / "cozy_bench_scenes";
  options.use_cache = false;
  const bool learned = fs::exists(options.model_dir / "layout_pix2pix_00001.pt");
  json load = {{"g", {{"class_type", "LoadGenerator"}, {"inputs", {{"checkpoint", "fashion_cdcgan_00001.pt"}}}}},
               {"l", {{"class_type", "LoadLayout"}, {"inputs", {{"file", "two_objects_layout.json"}}}}},
               {"kg", {{"class_type", "Keep"}, {"inputs", {{"value", {"g", 0}}}}}},
               {"kl", {{"class_type", "Keep"}, {"inputs", {{"value", {"l", 0}}}}}},
               {"c", {{"class_type", "LoadClassifier"}, {"inputs", {{"checkpoint", "fashion_critic_00001.pt"}}}}},
               {"kc", {{"class_type", "Keep"}, {"inputs", {{"value", {"c", 0}}}}}}};
  if (learned) {
    load["m"] = {{"class_type", "LoadLayoutModel"}, {"inputs", {{"checkpoint", "layout_pix2pix_00001.pt"}}}};
    load["km"] = {{"class_type", "Keep"}, {"inputs", {{"value", {"m", 0}}}}};
  }
  RunReport report;
  try {
    report = bench::run_graph(executor, *registry, load, options);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  const Value generator = report.outputs.at("kg")[0], layout = report.outputs.at("kl")[0],
              critic = report.outputs.at("kc")[0];

  std::printf("one layout of 2 shapes (input/two_objects_layout.json), CPU; images/s, median of %d\n", repeats);
  std::printf("%-34s %4s %4s | %10s\n", "what", "size", "thr", "images/s");
  for (int threads : {1, 2}) {
    at::set_num_threads(threads);
    BenchContext ctx(threads);
    for (int64_t size : {64, 256}) {
      const std::map<std::string, Value> render_in = {{"layout", layout}, {"width", size}, {"height", size}};
      const std::map<std::string, Value> compose_in = {
          {"layout", layout}, {"generator", generator}, {"width", size}, {"height", size}};
      const double render = median_rate(repeats, [&] { (void)call(*registry, "RenderLayout", render_in, ctx); });
      const double compose = median_rate(repeats, [&] { (void)call(*registry, "ComposeScene", compose_in, ctx); });
      // As the shipped graphs compose: uncut, the critic choosing among the 8 candidates.
      std::map<std::string, Value> critic_in = compose_in;
      critic_in["fit"] = std::string("box");
      critic_in["critic"] = critic;
      const double with_critic =
          median_rate(repeats, [&] { (void)call(*registry, "ComposeScene", critic_in, ctx); });
      const double both = median_rate(repeats, [&] {
        (void)call(*registry, "RenderLayout", render_in, ctx);
        (void)call(*registry, "ComposeScene", compose_in, ctx);
      });
      std::printf("%-34s %4lld %4d | %10.1f\n", "RenderLayout", static_cast<long long>(size), threads, render);
      std::printf("%-34s %4lld %4d | %10.1f\n", "ComposeScene", static_cast<long long>(size), threads, compose);
      std::printf("%-34s %4lld %4d | %10.1f\n", "RenderLayout + ComposeScene", static_cast<long long>(size), threads,
                  both);
      std::printf("%-34s %4lld %4d | %10.1f\n", "ComposeScene, box, critic", static_cast<long long>(size), threads,
                  with_critic);
    }
    if (learned) {
      const Value model = report.outputs.at("km")[0];
      const double rate = median_rate(repeats, [&] {
        (void)call(*registry, "LayoutToImage", {{"model", model}, {"layout", layout}}, ctx);
      });
      std::printf("%-34s %4d %4d | %10.1f\n", "LayoutToImage (pix2pix)", 64, threads, rate);
    }
    std::fflush(stdout);
  }
  return 0;
}
