// A scripted user steering a shipped GAN with feedback: each round, the
// user likes the images the shipped classifier puts in one class.
//
//   build/bench/bench_feedback [rounds=3] [batch=64]
//     EvolveLatents on the class-conditional GAN: the liked latents breed
//     the next batch. Prints that class's share of each batch.
//   build/bench/bench_feedback [rounds=3] [batch=64] finetune [steps=100] [lr=1e-4] [class]
//     FineTuneOnFeedback on the unconditional GAN (fashion_dcgan_00001.pt):
//     liked images as real, the others as fake, each round from the last
//     round's checkpoint. Prints the share of each batch, then, on 10,000
//     samples of the first and the last generator, the share, the FID
//     against that class's real test images, and the FID of the samples the
//     classifier puts in that class (equal numbers from both generators).
#include <ATen/ATen.h>

#include <cozy/host/executor.hpp>
#include <cozy/host/graph.hpp>
#include <cozy/host/registry.hpp>
#include <cozy/host/validate.hpp>
#include <cozy/models.hpp>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <unistd.h>

#include "bench_graphs.hpp"
#include "measures.hpp"

namespace {

using namespace cozy;
using namespace cozy::host;
using json = nlohmann::json;
namespace fs = std::filesystem;

RunReport run(Executor& executor, const Registry& registry, const json& graph, const RunOptions& options) {
  return bench::run_graph(executor, registry, graph, options);
}

std::string indices(const at::Tensor& mask, bool value) {
  std::string out;
  for (int64_t i = 0; i < mask.size(0); ++i)
    if (mask[i].item<bool>() == value) out += (out.empty() ? "" : ",") + std::to_string(i);
  return out;
}

// FineTuneOnFeedback rounds for several liked classes.
int fine_tune(int rounds, int64_t batch, int64_t steps, double lr, const std::vector<int64_t>& classes) {
  auto registry = std::make_shared<Registry>();
  registry->load_folder(COZY_PLUGIN_DIR);
  bench::add_keep_node(*registry);
  Executor executor(registry);
  const fs::path dir = fs::temp_directory_path() / ("cozy_bench_finetune_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  RunOptions options;
  options.model_dir = dir / "models";  // the fine-tuned checkpoints go here
  options.input_dir = dir / "in";
  options.output_dir = dir / "out";
  options.use_cache = false;
  fs::create_directories(options.model_dir);
  fs::create_directories(options.input_dir);
  const fs::path shipped = fs::path(COZY_SOURCE_DIR) / "models";
  for (const char* file : {"fashion_dcgan_00001.pt", "fashion_classifier_00001.pt"})
    fs::copy_file(shipped / file, options.model_dir / file);

  std::printf(
      "scripted user, FineTuneOnFeedback (%lld steps, lr %g) on fashion_dcgan_00001.pt, %d rounds of %lld "
      "images\n",
      static_cast<long long>(steps), lr, rounds, static_cast<long long>(batch));
  std::printf("%-12s | round 0", "liked class");
  for (int r = 1; r <= rounds; ++r) std::printf(" | round %d", r);
  std::printf(" | share before, after | FID to the class before, after | class only: n | FID before, after\n");
  const json classifier = {{"class_type", "LoadClassifier"},
                           {"inputs", {{"checkpoint", "fashion_classifier_00001.pt"}}}};
  for (int64_t liked_class : classes) {
    std::string current = "fashion_dcgan_00001.pt";
    std::shared_ptr<Classifier> judge;
    auto share = [&](const at::Tensor& images) {
      return (judge->logits(images).argmax(1) == liked_class).to(at::kDouble).mean().item<double>();
    };
    for (int r = 0; r <= rounds; ++r) {
      const json sample = {{"class_type", "GANSample"},
                           {"inputs", {{"generator", {"g", 0}}, {"seed", 1000 + r}, {"batch", batch}}}};
      json shown = {{"g", {{"class_type", "LoadGenerator"}, {"inputs", {{"checkpoint", current}}}}},
                    {"c", classifier},
                    {"s", sample},
                    {"kc", {{"class_type", "Keep"}, {"inputs", {{"value", {"c", 0}}}}}},
                    {"ki", {{"class_type", "Keep"}, {"inputs", {{"value", {"s", 0}}}}}}};
      RunReport report = run(executor, *registry, shown, options);
      judge = std::dynamic_pointer_cast<Classifier>(report.outputs.at("kc")[0].as_object());
      at::Tensor images = report.outputs.at("ki")[0].as_tensor();
      if (r == 0) std::printf("%-12s", judge->class_names()[static_cast<std::size_t>(liked_class)].c_str());
      std::printf(" | %7.2f", share(images));
      std::fflush(stdout);
      if (r == rounds) break;
      at::Tensor liked = judge->logits(images).argmax(1) == liked_class;
      if (!liked.any().item<bool>()) {
        std::printf(" (nothing liked)");
        break;
      }
      const std::string prefix = "tuned_" + std::to_string(liked_class) + "_" + std::to_string(r);
      json tune = {
          {"g", {{"class_type", "LoadGenerator"}, {"inputs", {{"checkpoint", current}}}}},
          {"s", sample},
          {"f",
           {{"class_type", "Feedback"},
            {"inputs", {{"batch", batch}, {"liked", indices(liked, true)}, {"disliked", indices(liked, false)}}}}},
          {"t",
           {{"class_type", "FineTuneOnFeedback"},
            {"inputs",
             {{"generator", {"g", 0}},
              {"images", {"s", 0}},
              {"latent", {"s", 1}},
              {"feedback", {"f", 0}},
              {"steps", steps},
              {"lr", lr},
              {"seed", r},
              {"filename_prefix", prefix}}}}},
          {"kt", {{"class_type", "Keep"}, {"inputs", {{"value", {"t", 0}}}}}}};
      run(executor, *registry, tune, options);
      current = prefix + "_00001.pt";
    }
    // The first and the last generator on 10,000 samples each: the share
    // of the liked class; the FID of the first 1,000 against that class's
    // 1,000 real test images; and the FID of the images of that class only
    // (as many of each generator's as the scarcer has, at most 1,000), so
    // that the quality within the class is compared, not the mixture.
    json measure = {{"c", classifier},
                    {"real",
                     {{"class_type", "LoadFashionMNIST"},
                      {"inputs", {{"split", "test"}, {"classes", std::to_string(liked_class)}}}}},
                    {"ri", {{"class_type", "DatasetImages"}, {"inputs", {{"dataset", {"real", 0}}, {"count", 1000}}}}},
                    {"kr", {{"class_type", "Keep"}, {"inputs", {{"value", {"ri", 0}}}}}}};
    int turn = 0;
    for (const std::string& file : {std::string("fashion_dcgan_00001.pt"), current}) {
      const std::string t = std::to_string(turn++);
      measure["g" + t] = {{"class_type", "LoadGenerator"}, {"inputs", {{"checkpoint", file}}}};
      measure["s" + t] = {{"class_type", "GANSample"},
                          {"inputs", {{"generator", {"g" + t, 0}}, {"seed", 7}, {"batch", 10000}}}};
      measure["ki" + t] = {{"class_type", "Keep"}, {"inputs", {{"value", {"s" + t, 0}}}}};
    }
    RunReport report = run(executor, *registry, measure, options);
    const at::Tensor real = judge->features(report.outputs.at("kr")[0].as_tensor());
    at::Tensor samples[2], mine[2];
    for (int t = 0; t < 2; ++t) {
      samples[t] = report.outputs.at("ki" + std::to_string(t))[0].as_tensor();
      mine[t] = samples[t].index_select(0, (judge->logits(samples[t]).argmax(1) == liked_class).nonzero().squeeze(1));
    }
    const int64_t n = std::min({mine[0].size(0), mine[1].size(0), int64_t{1000}});
    auto fid = [&](const at::Tensor& images) { return metrics::frechet_distance(judge->features(images), real); };
    std::printf(" | %6.3f, %6.3f | %7.1f, %7.1f | %4lld | %6.1f, %6.1f\n", share(samples[0]), share(samples[1]),
                fid(samples[0].narrow(0, 0, 1000)), fid(samples[1].narrow(0, 0, 1000)), static_cast<long long>(n),
                fid(mine[0].narrow(0, 0, n)), fid(mine[1].narrow(0, 0, n)));
    std::fflush(stdout);
  }
  fs::remove_all(dir);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const int rounds = argc > 1 ? std::atoi(argv[1]) : 3;
  const int64_t batch = argc > 2 ? std::atoll(argv[2]) : 64;
  if (argc > 3 && std::string(argv[3]) == "finetune")
    return fine_tune(rounds, batch, argc > 4 ? std::atoll(argv[4]) : 100, argc > 5 ? std::atof(argv[5]) : 1e-4,
                     argc > 6 ? std::vector<int64_t>{std::atoll(argv[6])} : std::vector<int64_t>{1, 5, 7, 8, 0});
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
