// A scripted user steering the shipped class-conditional GAN with
// EvolveLatents: each round, the user likes the images the shipped
// classifier puts in one class; the liked latents breed the next batch.
// Prints, for several liked classes, that class's share of each batch.
//
//   build/bench/bench_feedback [rounds=3] [batch=64]
#include <ATen/ATen.h>

#include <cozy/host/executor.hpp>
#include <cozy/host/graph.hpp>
#include <cozy/host/registry.hpp>
#include <cozy/host/validate.hpp>
#include <cozy/models.hpp>
#include <cstdio>
#include <filesystem>
#include <iostream>

#include "bench_graphs.hpp"

namespace {

using namespace cozy;
using namespace cozy::host;
using json = nlohmann::json;
namespace fs = std::filesystem;

RunReport run(Executor& executor, const Registry& registry, const json& graph, const RunOptions& options) {
  return bench::run_graph(executor, registry, graph, options);
}

}  // namespace

int main(int argc, char** argv) {
  const int rounds = argc > 1 ? std::atoi(argv[1]) : 3;
  const int64_t batch = argc > 2 ? std::atoll(argv[2]) : 64;
  auto registry = std::make_shared<Registry>();
  registry->load_folder(COZY_PLUGIN_DIR);
  bench::add_keep_node(*registry);
  Executor executor(registry);
  const fs::path dir = fs::temp_directory_path() / "cozy_bench_feedback";
  fs::remove_all(dir);
  RunOptions options;
  options.model_dir = fs::path(COZY_SOURCE_DIR) / "models";
  options.input_dir = dir / "in";
  options.output_dir = dir / "out";
  options.use_cache = false;
  fs::create_directories(options.input_dir);

  const json load = {
      {"g", {{"class_type", "LoadGenerator"}, {"inputs", {{"checkpoint", "fashion_cdcgan_00001.pt"}}}}},
      {"c", {{"class_type", "LoadClassifier"}, {"inputs", {{"checkpoint", "fashion_classifier_00001.pt"}}}}},
      {"kc", {{"class_type", "Keep"}, {"inputs", {{"value", {"c", 0}}}}}},
      {"ki", {{"class_type", "Keep"}, {"inputs", {{"value", {"s", 0}}}}}}};
  std::printf("scripted user, EvolveLatents (mutation 0.25), %d rounds of %lld images; share of the liked class\n",
              rounds, static_cast<long long>(batch));
  std::printf("%-12s | round 0", "liked class");
  for (int r = 1; r <= rounds; ++r) std::printf(" | round %d", r);
  std::printf("\n");
  int counter = 0;
  for (int64_t liked_class : {1, 5, 7, 8, 0}) {
    json first = load;
    first["s"] = {{"class_type", "GANSample"},
                  {"inputs", {{"generator", {"g", 0}}, {"seed", 100 + liked_class}, {"batch", batch}}}};
    const std::string prefix = "l" + std::to_string(counter++);
    first["save"] = {{"class_type", "SaveLatents"},
                     {"inputs", {{"latent", {"s", 1}}, {"filename_prefix", prefix + "_0"}}}};
    RunReport report = run(executor, *registry, first, options);
    auto classifier = std::dynamic_pointer_cast<Classifier>(report.outputs.at("kc")[0].as_object());
    at::Tensor images = report.outputs.at("ki")[0].as_tensor();
    auto predicted = [&](const at::Tensor& x) { return classifier->logits(x).argmax(1) == liked_class; };
    std::printf("%-12s | %7.2f", classifier->class_names()[liked_class].c_str(),
                predicted(images).to(at::kDouble).mean().item<double>());
    for (int r = 1; r <= rounds; ++r) {
      fs::rename(options.output_dir / (prefix + "_" + std::to_string(r - 1) + "_00001.pt"),
                 options.input_dir / "last.pt");
      at::Tensor mask = predicted(images);
      std::string liked;
      for (int64_t i = 0; i < batch; ++i)
        if (mask[i].item<bool>()) liked += (liked.empty() ? "" : ",") + std::to_string(i);
      json g = load;
      g["l"] = {{"class_type", "LoadLatents"}, {"inputs", {{"file", "last.pt"}}}};
      g["f"] = {{"class_type", "Feedback"}, {"inputs", {{"batch", batch}, {"liked", liked}}}};
      g["e"] = {{"class_type", "EvolveLatents"},
                {"inputs",
                 {{"latent", {"l", 0}},
                  {"feedback", {"f", 0}},
                  {"generator", {"g", 0}},
                  {"batch", batch},
                  {"mutation", 0.25},
                  {"seed", r}}}};
      g["s"] = {{"class_type", "GANSample"}, {"inputs", {{"generator", {"g", 0}}, {"latent", {"e", 0}}}}};
      g["save"] = {{"class_type", "SaveLatents"},
                   {"inputs", {{"latent", {"s", 1}}, {"filename_prefix", prefix + "_" + std::to_string(r)}}}};
      report = run(executor, *registry, g, options);
      images = report.outputs.at("ki")[0].as_tensor();
      std::printf(" | %7.2f", predicted(images).to(at::kDouble).mean().item<double>());
    }
    std::printf("\n");
    std::fflush(stdout);
  }
  fs::remove_all(dir);
  return 0;
}
