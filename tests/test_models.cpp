// The vae and metrics plugins, and the gan plugin's training options
// (resume, FreezeD, adversarial examples, epoch grids), TorchScript
// generators and latent nodes.
#include "test_nodes.hpp"

#include "mixture.hpp"

#include <cozy/host/validate.hpp>
#include <cozy/models.hpp>
#include <cozy/random.hpp>

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/script.h>
#include <torch/serialize/archive.h>

#include <fstream>
#include <opencv2/imgcodecs.hpp>
#include <set>

namespace cozy::host {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

class Models : public ::testing::Test {
 protected:
  void SetUp() override {
    registry->load_folder(COZY_PLUGIN_DIR);
    dir = fs::temp_directory_path() /
          ("cozy_models_" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(dir);
    options.output_dir = dir / "out";
    options.model_dir = dir / "models";
    options.model_save_dir = options.model_dir;  // as `--models-dir` does: saved models load again by name
    options.use_cache = false;
    options.threads = 1;  // determinism
    options.jobs = 1;
  }

  RunReport run(const json& graph) {
    last_error.clear();
    ParseResult parsed = parse_graph_json(graph);
    EXPECT_TRUE(parsed.errors.empty());
    std::vector<Issue> errors = validate(*parsed.graph, *registry);
    EXPECT_TRUE(errors.empty()) << errors.front().to_string();
    RunReport report = executor.run(*parsed.graph, options);
    if (!report.failures.empty()) last_error = report.failures[0].message;
    return report;
  }

  static json fashion(const std::string& split, int subset, int seed = 0) {
    return {{"class_type", "LoadFashionMNIST"},
            {"inputs", {{"split", split}, {"subset", subset}, {"shuffle_seed", seed}}}};
  }
  static json sink(const std::string& node, int output = 0) {
    return {{"class_type", "Sink"}, {"inputs", {{"value", {node, output}}}}};
  }
  static double number(const RunReport& r, const std::string& node) { return r.outputs.at(node)[0].as_float(); }
  static const at::Tensor& tensor(const RunReport& r, const std::string& node) {
    return r.outputs.at(node)[0].as_tensor();
  }

  // Trains and saves a small classifier as models/c_00001.pt (once per test).
  void train_classifier(int epochs = 2) {
    json g = {{"1", fashion("train", 3000, 1)},
              {"2", fashion("test", 500)},
              {"3", {{"class_type", "TrainClassifier"},
                     {"inputs", {{"dataset", {"1", 0}}, {"test_dataset", {"2", 0}}, {"epochs", epochs}, {"batch", 64},
                                 {"width", 8}, {"features", 32}, {"name", "cls/c"}}}}},
              {"4", {{"class_type", "SaveModel"}, {"inputs", {{"model", {"3", 0}}, {"filename_prefix", "c"}}}}}};
    RunReport r = run(g);
    ASSERT_TRUE(r.success) << last_error;
  }

  // A small GAN: models/g_00001.pt.
  void train_gan(int steps = 4) {
    json g = {{"1", fashion("train", 256, 2)},
              {"2", {{"class_type", "TrainGAN"},
                     {"inputs", {{"dataset", {"1", 0}}, {"steps", steps}, {"batch", 32}, {"width", 8}, {"latent", 16},
                                 {"seed", 3}, {"name", "gan/g"}}}}},
              {"3", {{"class_type", "SaveModel"}, {"inputs", {{"model", {"2", 0}}, {"filename_prefix", "g"}}}}}};
    RunReport r = run(g);
    ASSERT_TRUE(r.success) << last_error;
  }

  std::shared_ptr<Registry> registry = testing::test_registry();
  Executor executor{registry};
  RunOptions options;
  fs::path dir;
  std::string last_error;
};

std::vector<std::vector<double>> read_csv(const fs::path& file) {
  std::ifstream in(file);
  std::string line;
  std::getline(in, line);  // header
  std::vector<std::vector<double>> rows;
  while (std::getline(in, line)) {
    std::vector<double> row;
    std::stringstream cells(line);
    for (std::string cell; std::getline(cells, cell, ',');) row.push_back(cell == "nan" ? NAN : std::stod(cell));
    rows.push_back(row);
  }
  return rows;
}

// ------------------------------------------------------------------ classifier

TEST_F(Models, TheClassifierLearnsAndItsCheckpointRoundTrips) {
  train_classifier(2);
  auto log = read_csv(options.output_dir / "cls" / "c_log_00001.csv");
  ASSERT_EQ(log.size(), 2u);
  EXPECT_LT(log[1][1], log[0][1]) << "the training loss falls";
  EXPECT_GT(log[1][2], 0.6) << "test accuracy well above chance (0.1) after 2 epochs on 3,000 images";

  json g = {{"1", {{"class_type", "LoadClassifier"}, {"inputs", {{"checkpoint", "c_00001.pt"}}}}},
            {"2", fashion("test", 500)},
            {"3", {{"class_type", "ClassifierAccuracy"}, {"inputs", {{"classifier", {"1", 0}}, {"dataset", {"2", 0}}}}}},
            {"4", {{"class_type", "DatasetImages"}, {"inputs", {{"dataset", {"2", 0}}, {"count", 500}}}}},
            {"5", {{"class_type", "ClassifierAccuracy"},
                   {"inputs", {{"classifier", {"1", 0}}, {"dataset", {"2", 0}}, {"images", {"4", 0}}}}}}};
  RunReport r = run(g);
  ASSERT_TRUE(r.success) << last_error;
  EXPECT_NEAR(number(r, "3"), log[1][2], 1e-6) << "the loaded classifier is the trained one";
  EXPECT_DOUBLE_EQ(number(r, "5"), number(r, "3")) << "its own images through the images input";
  json report = json::parse(r.outputs.at("3")[1].as_string());
  EXPECT_EQ(report["metric"], "accuracy");
  EXPECT_EQ(report["per_class"].size(), 10u);
}

// The shipped classifier names each image of 500 test images; Fashion-MNIST's
// test set has its 10 classes in equal shares, and so do the names.
TEST_F(Models, ClassifyImagesNamesEachImage) {
  const std::string shipped = (fs::path(COZY_SOURCE_DIR) / "models" / "fashion_classifier_00001.pt").string();
  json g = {{"1", {{"class_type", "LoadClassifier"}, {"inputs", {{"checkpoint", shipped}}}}},
            {"2", fashion("test", 500)},
            {"3", {{"class_type", "DatasetImages"}, {"inputs", {{"dataset", {"2", 0}}, {"count", 500}}}}},
            {"4", {{"class_type", "ClassifyImages"}, {"inputs", {{"classifier", {"1", 0}}, {"images", {"3", 0}}}}}}};
  RunReport r = run(g);
  ASSERT_TRUE(r.success) << last_error;
  std::stringstream names(r.outputs.at("4")[0].as_string());
  int count = 0;
  for (std::string name; std::getline(names, name, ',');) ++count;
  EXPECT_EQ(count, 500);
  json shares = json::parse(r.outputs.at("4")[1].as_string());
  EXPECT_EQ(shares.size(), 10u) << shares.dump();
  double sum = 0;
  for (const auto& [name, share] : shares.items()) {
    sum += share.get<double>();
    EXPECT_NEAR(share.get<double>(), 0.1, 0.05) << name;
  }
  EXPECT_NEAR(sum, 1.0, 1e-3);
}

TEST_F(Models, ModelCheckpointErrorsNameTheFile) {
  train_gan(1);
  json load_vae = {{"1", {{"class_type", "LoadVAE"}, {"inputs", {{"checkpoint", "g_00001.pt"}}}}}, {"2", sink("1")}};
  EXPECT_FALSE(run(load_vae).success);
  EXPECT_EQ(last_error, (options.model_dir / "g_00001.pt").string() + " holds a gan model, not a VAE");
  json load_cls = {{"1", {{"class_type", "LoadClassifier"}, {"inputs", {{"checkpoint", "g_00001.pt"}}}}},
                   {"2", sink("1")}};
  EXPECT_FALSE(run(load_cls).success);
  EXPECT_EQ(last_error, (options.model_dir / "g_00001.pt").string() + " holds a gan model, not a classifier");
  load_vae["1"]["inputs"]["checkpoint"] = "none.pt";
  EXPECT_FALSE(run(load_vae).success);
  EXPECT_EQ(last_error, "checkpoint not found: " + (options.model_dir / "none.pt").string());

  json not_a_model = {{"1", {{"class_type", "Const"}, {"inputs", {{"value", 3}}}}},
                      {"2", {{"class_type", "SaveModel"}, {"inputs", {{"model", {"1", 0}}}}}}};
  EXPECT_FALSE(run(not_a_model).success);
  EXPECT_EQ(last_error,
            "SaveModel saves models whose plugin implements cozy::SavableModel (Cozy's generators, VAEs, classifiers "
            "and layout models do); got a value of type INT");
}

// ------------------------------------------------------------------ VAE

// Three Gaussians in 2-D, one with correlated axes: EM finds them again.
TEST(LatentMixture, FitsAKnownMixtureAndSamplesFromIt) {
  at::Generator gen = seeded_generator(5);
  const at::Tensor means = at::tensor({-5.0, 0.0, 5.0, 0.0, 0.0, 6.0}, at::kDouble).view({3, 2});
  const at::Tensor covs = at::tensor({1.0, 0.0, 0.0, 0.25, 1.0, 0.8, 0.8, 1.0, 0.5, 0.0, 0.0, 2.0}, at::kDouble).view({3, 2, 2});
  const at::Tensor weights = at::tensor({0.5, 0.3, 0.2}, at::kDouble);
  vae::LatentMixture truth;
  truth.weights = weights, truth.means = means, truth.cholesky = at::linalg_cholesky(covs);
  const at::Tensor z = truth.sample(9000, gen);

  vae::LatentMixture fit = vae::fit_mixture(z, 3, /*diagonal=*/false, 500, gen);
  // Components come in any order: match each true one to the nearest fitted mean.
  for (int64_t c = 0; c < 3; ++c) {
    const int64_t m = (fit.means - means[c]).pow(2).sum(1).argmin().item<int64_t>();
    EXPECT_LT((fit.means[m] - means[c]).abs().max().item<double>(), 0.1) << "component " << c;
    EXPECT_NEAR(fit.weights[m].item<double>(), weights[c].item<double>(), 0.02) << "component " << c;
    const at::Tensor cov = at::matmul(fit.cholesky[m], fit.cholesky[m].t());
    EXPECT_LT((cov - covs[c]).abs().max().item<double>(), 0.12) << "component " << c << ": " << cov;
  }
  // At least as likely as the mixture that made the data (it is fitted to these points).
  EXPECT_GE(fit.log_likelihood, truth.log_density(z).mean().item<double>() - 1e-9);
  EXPECT_GT(fit.iterations, 1);

  // Its samples have its moments.
  const at::Tensor s = fit.sample(40000, gen).to(at::kDouble);
  EXPECT_EQ(s.sizes(), (at::IntArrayRef{40000, 2}));
  const at::Tensor mean = at::matmul(fit.weights, fit.means);
  EXPECT_LT((s.mean(0) - mean).abs().max().item<double>(), 0.08);

  // Diagonal covariances stay diagonal; one component is the data's mean and variance.
  vae::LatentMixture diagonal = vae::fit_mixture(z, 3, /*diagonal=*/true, 500, gen);
  for (int64_t c = 0; c < 3; ++c) EXPECT_EQ(diagonal.cholesky[c][0][1].item<double>(), 0.0);
  EXPECT_LT(diagonal.log_likelihood, fit.log_likelihood) << "the correlated component fits worse without covariance";
  vae::LatentMixture one = vae::fit_mixture(z, 1, false, 50, gen);
  EXPECT_TRUE(at::allclose(one.means[0], z.to(at::kDouble).mean(0), 1e-9, 1e-9));
  EXPECT_TRUE(at::allclose(at::matmul(one.cholesky[0], one.cholesky[0].t()),
                           at::cov(z.to(at::kDouble).t(), /*correction=*/0), 1e-6, 1e-4))
      << "the covariance (and its floor, a millionth of the mean variance)";

  try {
    vae::fit_mixture(z.narrow(0, 0, 2), 3, false, 10, gen);
    FAIL() << "three components from two latents";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "a mixture of 3 components needs at least as many latents, not 2");
  }
}

TEST_F(Models, TheVaeSamplesFromItsPriorOrFromAMixtureFittedToItsLatents) {
  const std::string shipped = (fs::path(COZY_SOURCE_DIR) / "models" / "fashion_vae_00001.pt").string();
  json g = {{"1", {{"class_type", "LoadVAE"}, {"inputs", {{"checkpoint", shipped}}}}},
            {"2", fashion("train", 3000, 1)},
            {"3", {{"class_type", "FitLatentMixture"},
                   {"inputs", {{"vae", {"1", 0}}, {"dataset", {"2", 0}}, {"components", 4}, {"seed", 2}}}}},
            {"4", {{"class_type", "VAESample"}, {"inputs", {{"vae", {"1", 0}}, {"batch", 16}, {"seed", 3}}}}},
            {"5", {{"class_type", "VAESample"},
                   {"inputs", {{"vae", {"1", 0}}, {"batch", 16}, {"seed", 3}, {"mixture", {"3", 0}}}}}},
            {"6", sink("4")}, {"7", sink("5")}, {"8", sink("5", 1)}, {"9", sink("3", 1)}, {"10", sink("4", 1)}};
  RunReport r = run(g);
  ASSERT_TRUE(r.success) << last_error;
  for (const char* id : {"6", "7"}) {
    EXPECT_EQ(tensor(r, id).sizes(), (at::IntArrayRef{16, 1, 28, 28}));
    EXPECT_GE(tensor(r, id).min().item<float>(), 0.f);
    EXPECT_LE(tensor(r, id).max().item<float>(), 1.f);
  }
  EXPECT_EQ(tensor(r, "8").sizes(), (at::IntArrayRef{16, 32}));
  EXPECT_FALSE(at::equal(tensor(r, "8"), tensor(r, "10"))) << "the mixture's latents are not the prior's";
  const json report = json::parse(r.outputs.at("9")[0].as_string());
  EXPECT_EQ(report["components"], 4);
  EXPECT_EQ(report["latents"], 3000);
  EXPECT_EQ(report["covariance"], "full");
  RunReport again = run(g);
  EXPECT_TRUE(at::equal(tensor(again, "7"), tensor(r, "7"))) << "the same seeds give the same images";
}

TEST_F(Models, TheVaeLearnsAndItsNodesWork) {
  json g = {{"1", fashion("train", 2000, 1)},
            {"2", fashion("test", 300)},
            {"3", {{"class_type", "TrainVAE"},
                   {"inputs", {{"dataset", {"1", 0}}, {"test_dataset", {"2", 0}}, {"epochs", 3}, {"batch", 64},
                               {"latent", 8}, {"width", 8}, {"name", "vae/v"}}}}},
            {"4", {{"class_type", "SaveModel"}, {"inputs", {{"model", {"3", 0}}, {"filename_prefix", "v"}}}}},
            {"5", {{"class_type", "DatasetImages"}, {"inputs", {{"dataset", {"2", 0}}, {"count", 6}}}}},
            {"6", {{"class_type", "VAEReconstruct"}, {"inputs", {{"vae", {"3", 0}}, {"images", {"5", 0}}}}}},
            {"7", sink("6")}};
  RunReport r = run(g);
  ASSERT_TRUE(r.success) << last_error;
  auto log = read_csv(options.output_dir / "vae" / "v_log_00001.csv");
  ASSERT_EQ(log.size(), 3u);
  EXPECT_LT(log[2][2] + log[2][3], log[0][2] + log[0][3]) << "test reconstruction + KL per image falls";
  EXPECT_TRUE(fs::exists(options.output_dir / "vae" / "v_epoch3_00001.png"));
  const at::Tensor& recon = tensor(r, "7");
  EXPECT_EQ(recon.sizes(), (at::IntArrayRef{6, 1, 28, 28}));
  EXPECT_GE(recon.min().item<float>(), 0.f);
  EXPECT_LE(recon.max().item<float>(), 1.f);

  // The saved VAE gives the same reconstructions; encode (mean) + decode is reconstruct.
  json load = {{"1", {{"class_type", "LoadVAE"}, {"inputs", {{"checkpoint", "v_00001.pt"}}}}},
               {"2", fashion("test", 300)},
               {"3", {{"class_type", "DatasetImages"}, {"inputs", {{"dataset", {"2", 0}}, {"count", 6}}}}},
               {"4", {{"class_type", "VAEEncode"}, {"inputs", {{"vae", {"1", 0}}, {"images", {"3", 0}}}}}},
               {"5", {{"class_type", "VAEDecode"}, {"inputs", {{"vae", {"1", 0}}, {"latent", {"4", 0}}}}}},
               {"6", sink("5")},
               {"7", {{"class_type", "VAEEncode"},
                      {"inputs", {{"vae", {"1", 0}}, {"images", {"3", 0}}, {"mode", "sample"}, {"seed", 4}}}}},
               {"8", sink("7")},
               {"9", sink("4")}};
  RunReport l = run(load);
  ASSERT_TRUE(l.success) << last_error;
  EXPECT_TRUE(at::allclose(tensor(l, "6"), recon, 1e-5, 1e-6));
  EXPECT_EQ(tensor(l, "9").sizes(), (at::IntArrayRef{6, 8}));
  EXPECT_FALSE(at::equal(tensor(l, "8"), tensor(l, "9"))) << "a draw from the posterior is not its mean";
  RunReport again = run(load);
  EXPECT_TRUE(at::equal(tensor(again, "8"), tensor(l, "8"))) << "the same seed draws the same latents";

  json wrong = {{"1", {{"class_type", "LoadVAE"}, {"inputs", {{"checkpoint", "v_00001.pt"}}}}},
                {"2", {{"class_type", "LatentNoise"}, {"inputs", {{"size", 5}, {"batch", 2}}}}},
                {"3", {{"class_type", "VAEDecode"}, {"inputs", {{"vae", {"1", 0}}, {"latent", {"2", 0}}}}}},
                {"4", sink("3")}};
  EXPECT_FALSE(run(wrong).success);
  EXPECT_EQ(last_error, "the VAE decodes latents [N, 8], not [2, 5]");
}

TEST_F(Models, ResumingTheVaeGivesTheUninterruptedResult) {
  auto graph = [&](int epochs, json extra) {
    json inputs = {{"dataset", {"1", 0}}, {"epochs", epochs}, {"batch", 64}, {"latent", 4}, {"width", 4},
                   {"checkpoint_every", 1}, {"name", "vae/r"}};
    inputs.update(extra);
    return json{{"1", fashion("train", 256, 1)},
                {"2", {{"class_type", "TrainVAE"}, {"inputs", inputs}}},
                {"3", {{"class_type", "LatentNoise"}, {"inputs", {{"size", 4}, {"batch", 3}}}}},
                {"4", {{"class_type", "VAEDecode"}, {"inputs", {{"vae", {"2", 0}}, {"latent", {"3", 0}}}}}},
                {"5", sink("4")}};
  };
  RunReport straight = run(graph(2, json::object()));
  ASSERT_TRUE(straight.success) << last_error;
  const fs::path epoch1 = options.output_dir / "vae" / "r_epoch1_00001.pt";
  ASSERT_TRUE(fs::exists(epoch1));
  RunReport resumed = run(graph(2, {{"resume", epoch1.string()}}));
  ASSERT_TRUE(resumed.success) << last_error;
  EXPECT_TRUE(at::equal(tensor(straight, "5"), tensor(resumed, "5")));
  auto log = read_csv(options.output_dir / "vae" / "r_log_00002.csv");
  EXPECT_EQ(log.size(), 2u) << "the log continues the checkpoint's";
}

// ------------------------------------------------------------------ metrics

TEST_F(Models, MetricsOnKnownCases) {
  train_classifier(1);
  auto graph = [&](json images) {
    return json{{"1", {{"class_type", "LoadClassifier"}, {"inputs", {{"checkpoint", "c_00001.pt"}}}}},
                {"2", fashion("test", 400)},
                {"3", fashion("train", 2000, 5)},
                {"4", {{"class_type", "DatasetImages"}, {"inputs", {{"dataset", {"2", 0}}, {"count", 400}}}}},
                {"5", images},
                {"6", {{"class_type", "FID"},
                       {"inputs", {{"classifier", {"1", 0}}, {"images", {"5", 0}}, {"reference", {"2", 0}},
                                   {"floor_dataset", {"3", 0}}}}}},
                {"7", {{"class_type", "PrecisionRecall"},
                       {"inputs", {{"classifier", {"1", 0}}, {"images", {"5", 0}}, {"reference", {"2", 0}}}}}},
                {"8", {{"class_type", "Memorization"},
                       {"inputs", {{"images", {"5", 0}}, {"train", {"2", 0}}, {"test", {"3", 0}}, {"limit", 200}}}}},
                {"9", {{"class_type", "SaveMetrics"},
                       {"inputs", {{"report1", {"6", 2}}, {"report2", {"7", 2}}, {"report3", {"8", 1}}}}}}};
  };
  auto brightened = [](double factor) {
    return json{{"class_type", "Brightness"}, {"inputs", {{"image", {"4", 0}}, {"factor", factor}}}};
  };
  // The reference against itself.
  RunReport same = run(graph(brightened(1.0)));
  ASSERT_TRUE(same.success) << last_error;
  EXPECT_NEAR(number(same, "6"), 0.0, 1e-6) << "FID of a set with itself";
  EXPECT_GT(same.outputs.at("6")[1].as_float(), 0.0) << "two different real sets are some distance apart";
  EXPECT_DOUBLE_EQ(same.outputs.at("7")[0].as_float(), 1.0) << "precision of the reference itself";
  EXPECT_DOUBLE_EQ(same.outputs.at("7")[1].as_float(), 1.0) << "recall of the reference itself";
  EXPECT_DOUBLE_EQ(number(same, "8"), 0.0) << "images of the training set are at distance 0 from it";
  json saved = json::parse(std::ifstream(options.output_dir / "metrics_00001.json"));
  EXPECT_EQ(saved["fid"]["fid"], 0.0);
  EXPECT_EQ(saved["precision_recall"]["precision"], 1.0);
  EXPECT_EQ(saved["memorization"]["closer_than_1pct_of_test"], 1.0);

  // A shifted set is worse, and more so the larger the shift.
  RunReport dim = run(graph(brightened(0.8)));
  RunReport darker = run(graph(brightened(0.4)));
  ASSERT_TRUE(dim.success && darker.success) << last_error;
  EXPECT_GT(number(dim, "6"), 0.1);
  EXPECT_GT(number(darker, "6"), number(dim, "6"));
  EXPECT_LT(darker.outputs.at("7")[0].as_float(), 0.9) << "dark images leave the real manifold";
  EXPECT_LT(darker.outputs.at("7")[0].as_float(), dim.outputs.at("7")[0].as_float());
  EXPECT_GT(number(dim, "8"), 0.0);
}

TEST_F(Models, ConditionalAccuracyAndErrors) {
  train_classifier(1);
  train_gan(2);
  json g = {{"1", {{"class_type", "LoadClassifier"}, {"inputs", {{"checkpoint", "c_00001.pt"}}}}},
            {"2", {{"class_type", "LoadGenerator"}, {"inputs", {{"checkpoint", "g_00001.pt"}}}}},
            {"3", {{"class_type", "ConditionalAccuracy"},
                   {"inputs", {{"generator", {"2", 0}}, {"classifier", {"1", 0}}, {"per_class", 20}}}}}};
  RunReport r = run(g);
  ASSERT_TRUE(r.success) << last_error;
  const double acc = number(r, "3");
  EXPECT_GE(acc, 0.0);
  EXPECT_LE(acc, 1.0);
  json report = json::parse(r.outputs.at("3")[1].as_string());
  EXPECT_EQ(report["images"], 200);
  EXPECT_EQ(report["per_class"].size(), 10u);
  EXPECT_EQ(run(g).outputs.at("3")[0].as_float(), acc) << "the same seed, the same samples";

  // Images of the wrong shape for the classifier.
  json wrong = {{"1", {{"class_type", "LoadClassifier"}, {"inputs", {{"checkpoint", "c_00001.pt"}}}}},
                {"2", fashion("test", 20)},
                {"3", {{"class_type", "EmptyImage"}, {"inputs", {{"width", 32}, {"height", 32}, {"batch_size", 4}}}}},
                {"4", {{"class_type", "FID"},
                       {"inputs", {{"classifier", {"1", 0}}, {"images", {"3", 0}}, {"reference", {"2", 0}}}}}}};
  EXPECT_FALSE(run(wrong).success);
  EXPECT_EQ(last_error, "the images are [4, 3, 32, 32]; the classifier takes [N, 1, 28, 28]");
}

// ------------------------------------------------------------------ GAN training options

json gan_training(int steps, json extra = json::object()) {
  json inputs = {{"dataset", {"1", 0}}, {"steps", steps}, {"batch", 32}, {"width", 8}, {"latent", 16},
                 {"seed", 11}, {"checkpoint_every", 3}, {"name", "run/g"}};
  inputs.update(extra);
  return {{"1", {{"class_type", "LoadFashionMNIST"},
                 {"inputs", {{"split", "train"}, {"subset", 128}, {"shuffle_seed", 2}}}}},
          {"2", {{"class_type", "TrainGAN"}, {"inputs", inputs}}},
          {"3", {{"class_type", "GANSample"}, {"inputs", {{"generator", {"2", 0}}, {"seed", 5}, {"batch", 10}}}}},
          {"4", {{"class_type", "Sink"}, {"inputs", {{"value", {"3", 0}}}}}},
          {"5", {{"class_type", "SaveModel"}, {"inputs", {{"model", {"2", 0}}, {"filename_prefix", "g"}}}}}};
}

TEST_F(Models, TrainGanAveragesItsGeneratorAndTakesTheHingeLoss) {
  // ema: the node returns (and SaveModel saves) the average, not G's own weights.
  RunReport averaged = run(gan_training(9, {{"ema", 0.9}}));
  ASSERT_TRUE(averaged.success) << last_error;
  RunReport plain = run(gan_training(9));
  ASSERT_TRUE(plain.success) << last_error;
  EXPECT_FALSE(at::equal(tensor(averaged, "4"), tensor(plain, "4")));
  json load = {{"1", {{"class_type", "LoadGenerator"}, {"inputs", {{"checkpoint", "g_00001.pt"}}}}},
               {"2", {{"class_type", "GANSample"}, {"inputs", {{"generator", {"1", 0}}, {"seed", 5}, {"batch", 10}}}}},
               {"3", sink("2")}};
  RunReport loaded = run(load);
  ASSERT_TRUE(loaded.success) << last_error;
  EXPECT_TRUE(at::equal(tensor(loaded, "3"), tensor(averaged, "4"))) << "the saved model is the average";
  // The average is in the step checkpoints: a resumed run ends where the uninterrupted one did.
  const fs::path step3 = options.output_dir / "run" / "g_step3_00001.pt";
  ASSERT_TRUE(fs::exists(step3));
  RunReport resumed = run(gan_training(9, {{"ema", 0.9}, {"resume", step3.string()}}));
  ASSERT_TRUE(resumed.success) << last_error;
  EXPECT_TRUE(at::equal(tensor(resumed, "4"), tensor(averaged, "4")));

  // hinge: D's loss starts near 2 (max(0, 1 - 0) + max(0, 1 + 0)), where the bce loss starts near 1.39.
  RunReport hinge = run(gan_training(9, {{"loss", "hinge"}, {"name", "hinge/g"}}));
  ASSERT_TRUE(hinge.success) << last_error;
  auto log = read_csv(options.output_dir / "hinge" / "g_losses_00001.csv");
  ASSERT_EQ(log.size(), 9u);
  EXPECT_NEAR(log[0][1], 2.0, 0.3);
  EXPECT_FALSE(at::equal(tensor(hinge, "4"), tensor(plain, "4")));
  EXPECT_FALSE(run(gan_training(3, {{"loss", "hinge"}, {"label_smoothing", 0.1}})).success);
  EXPECT_EQ(last_error, "label_smoothing applies to the bce loss, not hinge");
}

TEST_F(Models, ResumingGivesTheUninterruptedResult) {
  // 128 images in batches of 32: 4 steps an epoch, so 9 steps cross two epochs.
  RunReport straight = run(gan_training(9));
  ASSERT_TRUE(straight.success) << last_error;
  EXPECT_TRUE(fs::exists(options.output_dir / "run" / "g_epoch1_00001.png"));
  EXPECT_TRUE(fs::exists(options.output_dir / "run" / "g_epoch2_00001.png"));
  EXPECT_TRUE(fs::exists(options.output_dir / "run" / "g_final_00001.png"));
  const fs::path step3 = options.output_dir / "run" / "g_step3_00001.pt";
  ASSERT_TRUE(fs::exists(step3));
  RunReport resumed = run(gan_training(9, {{"resume", step3.string()}}));
  ASSERT_TRUE(resumed.success) << last_error;
  EXPECT_TRUE(at::equal(tensor(straight, "4"), tensor(resumed, "4")))
      << "weights, optimiser, random state and data order all come back";
  auto log = read_csv(options.output_dir / "run" / "g_losses_00002.csv");
  EXPECT_EQ(log.size(), 9u) << "the loss log continues the checkpoint's";

  fs::create_directories(options.model_dir);
  EXPECT_FALSE(run(gan_training(9, {{"resume", (options.model_dir / "g_00001.pt").string()}})).success);
  EXPECT_EQ(last_error, "cannot resume from " + (options.model_dir / "g_00001.pt").string() +
                            ": it is not a step checkpoint of TrainGAN");
  EXPECT_FALSE(run(gan_training(9, {{"resume", step3.string()}, {"init_from", step3.string()}})).success);
  EXPECT_EQ(last_error, "give resume or init_from, not both");
  EXPECT_FALSE(run(gan_training(2, {{"freeze_d", 1}})).success);
  EXPECT_EQ(last_error, "freeze_d needs init_from (a trained discriminator)");
}

// The discriminator's first convolution weight, read from a checkpoint.
at::Tensor first_d_weight(const fs::path& file) {
  torch::serialize::InputArchive archive, d, net, conv;
  archive.load_from(file.string());
  archive.read("discriminator", d);
  d.read("net", net);
  net.read("0", conv);
  at::Tensor w;
  conv.read("weight", w);
  return w;
}

TEST_F(Models, FreezeDKeepsTheFirstDiscriminatorLayers) {
  ASSERT_TRUE(run(gan_training(3)).success) << last_error;
  const fs::path base = options.model_dir / "g_00001.pt";
  RunReport tuned = run(gan_training(3, {{"init_from", base.string()}, {"freeze_d", 1}, {"checkpoint_every", 0}}));
  ASSERT_TRUE(tuned.success) << last_error;
  EXPECT_TRUE(at::equal(first_d_weight(base), first_d_weight(options.model_dir / "g_00002.pt")));
  RunReport free = run(gan_training(3, {{"init_from", base.string()}, {"checkpoint_every", 0}}));
  ASSERT_TRUE(free.success) << last_error;
  EXPECT_FALSE(at::equal(first_d_weight(base), first_d_weight(options.model_dir / "g_00003.pt")));
  EXPECT_FALSE(run(gan_training(3, {{"init_from", base.string()}, {"freeze_d", 8}})).success);
  EXPECT_EQ(last_error, "freeze_d 8 is more than the discriminator's 4 convolutions");
}

// A copy of an archive without the entries named in `drop` (nested archives
// copied whole): a checkpoint as another program might have written it.
void copy_archive(torch::serialize::InputArchive& from, torch::serialize::OutputArchive& to,
                  const std::set<std::string>& drop = {}) {
  for (const std::string& key : from.keys()) {
    if (drop.count(key)) continue;
    torch::serialize::InputArchive nested;
    at::Tensor tensor;
    c10::IValue value;
    if (from.try_read(key, nested)) {
      torch::serialize::OutputArchive out;
      copy_archive(nested, out);
      to.write(key, out);
    } else if (from.try_read(key, tensor)) {
      const bool buffer = key == "running_mean" || key == "running_var" || key == "num_batches_tracked";
      to.write(key, tensor, buffer);
    } else if (from.try_read(key, value)) {
      to.write(key, value);
    }
  }
}

TEST_F(Models, TrainingFromACheckpointChecksThatItFits) {
  ASSERT_TRUE(run(gan_training(3)).success) << last_error;  // 10 classes, 1 x 28 x 28
  const fs::path base = options.model_dir / "g_00001.pt", step3 = options.output_dir / "run" / "g_step3_00001.pt";
  // Image folders: 32 x 32 colour, and 28 x 28 grey in two classes.
  for (const char* cls : {"a", "b"}) {
    fs::create_directories(dir / "in" / "colour" / cls);
    fs::create_directories(dir / "in" / "grey" / cls);
    for (int i = 0; i < 2; ++i) {
      const std::string name = std::to_string(i) + ".png";
      cv::imwrite((dir / "in" / "colour" / cls / name).string(), cv::Mat(32, 32, CV_8UC3, cv::Scalar(10 * i, 50, 90)));
      cv::imwrite((dir / "in" / "grey" / cls / name).string(), cv::Mat(28, 28, CV_8UC1, cv::Scalar(40 * i)));
    }
  }
  options.input_dir = dir / "in";
  json colour = gan_training(2, {{"init_from", base.string()}});
  colour["1"] = {{"class_type", "LoadImageFolder"}, {"inputs", {{"folder", "colour"}}}};
  EXPECT_FALSE(run(colour).success);
  EXPECT_EQ(last_error, "the checkpoint makes 1x28x28 images; the data set's are [3, 32, 32]");
  json two_classes = gan_training(2, {{"init_from", base.string()}});
  two_classes["1"] = {{"class_type", "LoadImageFolder"}, {"inputs", {{"folder", "grey"}, {"grey", true}}}};
  EXPECT_FALSE(run(two_classes).success);
  EXPECT_EQ(last_error, "the checkpoint has 10 classes; the data set 2");
  // Resuming on another data set (its order no longer fits).
  json other_data = gan_training(9, {{"resume", step3.string()}});
  other_data["1"]["inputs"]["subset"] = 96;
  EXPECT_FALSE(run(other_data).success);
  EXPECT_EQ(last_error, "cannot resume: the data set is not the one it was trained on");

  // A checkpoint with the generator only.
  torch::serialize::InputArchive full;
  full.load_from(base.string());
  torch::serialize::OutputArchive generator_only;
  copy_archive(full, generator_only, {"discriminator"});
  const fs::path g_only = options.model_dir / "g_only.pt";
  generator_only.save_to(g_only.string());
  json sample = {{"1", {{"class_type", "LoadGenerator"}, {"inputs", {{"checkpoint", "g_only.pt"}}}}},
                 {"2", {{"class_type", "GANSample"}, {"inputs", {{"generator", {"1", 0}}, {"batch", 2}}}}},
                 {"3", sink("2")}};
  EXPECT_TRUE(run(sample).success) << "the generator alone samples: " << last_error;
  EXPECT_FALSE(run(gan_training(2, {{"resume", g_only.string()}})).success);
  EXPECT_EQ(last_error, "cannot resume: the checkpoint has no discriminator");
  EXPECT_FALSE(run(gan_training(2, {{"init_from", g_only.string()}, {"freeze_d", 1}})).success);
  EXPECT_EQ(last_error, "freeze_d needs a checkpoint with a discriminator");
  EXPECT_TRUE(run(gan_training(2, {{"init_from", g_only.string()}})).success)
      << "without freeze_d a new discriminator is trained: " << last_error;
  json d_only = {{"1", {{"class_type", "LoadDiscriminator"}, {"inputs", {{"checkpoint", "g_only.pt"}}}}},
                 {"2", sink("1")}};
  EXPECT_FALSE(run(d_only).success);
  EXPECT_EQ(last_error, "checkpoint " + g_only.string() + " holds no discriminator");
  json tune = {
      {"1", {{"class_type", "LoadGenerator"}, {"inputs", {{"checkpoint", "g_only.pt"}}}}},
      {"2", {{"class_type", "GANSample"}, {"inputs", {{"generator", {"1", 0}}, {"batch", 2}}}}},
      {"3", {{"class_type", "Feedback"}, {"inputs", {{"batch", 2}, {"liked", "0"}}}}},
      {"4",
       {{"class_type", "FineTuneOnFeedback"},
        {"inputs", {{"generator", {"1", 0}}, {"images", {"2", 0}}, {"latent", {"2", 1}}, {"feedback", {"3", 0}}}}}},
      {"5", sink("4")}};
  EXPECT_FALSE(run(tune).success);
  EXPECT_EQ(last_error,
            "this DCGAN has no discriminator to tune against (load it from TrainGAN or a Cozy checkpoint)");
}

TEST_F(Models, ClassifierAndVaeNeedSizesDivisibleByFour) {
  fs::create_directories(dir / "in" / "odd" / "a");
  cv::imwrite((dir / "in" / "odd" / "a" / "x.png").string(), cv::Mat(30, 30, CV_8UC1, cv::Scalar(100)));
  options.input_dir = dir / "in";
  for (const char* trainer : {"TrainClassifier", "TrainVAE"}) {
    json g = {{"1", {{"class_type", "LoadImageFolder"}, {"inputs", {{"folder", "odd"}, {"grey", true}}}}},
              {"2", {{"class_type", trainer}, {"inputs", {{"dataset", {"1", 0}}, {"epochs", 1}}}}},
              {"3", sink("2")}};
    EXPECT_FALSE(run(g).success) << trainer;
    EXPECT_EQ(last_error, std::string(trainer) == "TrainVAE" ? "the VAE needs an image size divisible by 4"
                                                             : "the classifier needs an image size divisible by 4");
  }
}

TEST_F(Models, AdversarialExamplesForTheDiscriminator) {
  RunReport plain = run(gan_training(3));
  RunReport fgsm = run(gan_training(3, {{"adversarial", "fgsm"}, {"epsilon", 0.05}}));
  RunReport pgd = run(gan_training(3, {{"adversarial", "pgd"}, {"epsilon", 0.05}, {"pgd_steps", 3}}));
  ASSERT_TRUE(plain.success && fgsm.success && pgd.success) << last_error;
  EXPECT_FALSE(at::equal(tensor(plain, "4"), tensor(fgsm, "4")));
  EXPECT_FALSE(at::equal(tensor(fgsm, "4"), tensor(pgd, "4")));
  for (const auto& csv : {"g_losses_00002.csv", "g_losses_00003.csv"})
    for (const auto& row : read_csv(options.output_dir / "run" / csv)) EXPECT_TRUE(std::isfinite(row[1]));
  // With epsilon 0 the attack changes nothing.
  RunReport zero = run(gan_training(3, {{"adversarial", "pgd"}, {"epsilon", 0.0}}));
  EXPECT_TRUE(at::equal(tensor(plain, "4"), tensor(zero, "4")));
}

TEST_F(Models, MoreErrorsNameTheProblem) {
  train_gan(1);
  // A latent of the wrong width for GANSample.
  json g = {{"1", {{"class_type", "LoadGenerator"}, {"inputs", {{"checkpoint", "g_00001.pt"}}}}},
            {"2", {{"class_type", "LatentNoise"}, {"inputs", {{"size", 5}, {"batch", 2}}}}},
            {"3", {{"class_type", "GANSample"}, {"inputs", {{"generator", {"1", 0}}, {"latent", {"2", 0}}}}}},
            {"4", sink("3")}};
  EXPECT_FALSE(run(g).success);
  EXPECT_EQ(last_error, "the latent is [2, 5]; this generator takes [N, 16] or [N, 26] (z and class weights)");
  // Feedback with nothing liked cannot steer a fine-tuning.
  json ft = {{"1", {{"class_type", "LoadGenerator"}, {"inputs", {{"checkpoint", "g_00001.pt"}}}}},
             {"2", {{"class_type", "GANSample"}, {"inputs", {{"generator", {"1", 0}}, {"batch", 4}}}}},
             {"3", {{"class_type", "Feedback"}, {"inputs", {{"batch", 4}, {"disliked", "0"}}}}},
             {"4", {{"class_type", "FineTuneOnFeedback"},
                    {"inputs", {{"generator", {"1", 0}}, {"images", {"2", 0}}, {"latent", {"2", 1}}, {"feedback", {"3", 0}}}}}},
             {"5", sink("4")}};
  EXPECT_FALSE(run(ft).success);
  EXPECT_EQ(last_error, "no image was liked: nothing to move towards");
  // A discriminator asked to judge images of another shape.
  json ds = {{"1", {{"class_type", "LoadDiscriminator"}, {"inputs", {{"checkpoint", "g_00001.pt"}}}}},
             {"2", {{"class_type", "EmptyImage"}, {"inputs", {{"width", 32}, {"height", 32}, {"batch_size", 4}}}}},
             {"3", {{"class_type", "DiscriminatorScore"},
                    {"inputs", {{"discriminator", {"1", 0}}, {"images", {"2", 0}}, {"class_index", 1}}}}},
             {"4", sink("3")}};
  EXPECT_FALSE(run(ds).success);
  EXPECT_EQ(last_error, "the discriminator judges images [N, 1, 28, 28], not [4, 3, 32, 32]");
  // SaveMetrics takes metric reports only.
  json sm = {{"1", {{"class_type", "String"}, {"inputs", {{"value", "hello"}}}}},
             {"2", {{"class_type", "SaveMetrics"}, {"inputs", {{"report1", {"1", 0}}}}}}};
  EXPECT_FALSE(run(sm).success);
  EXPECT_EQ(last_error, "report1 is not a JSON object (connect a metric's report)");
  // TrainVAE resumes only its own epoch checkpoints.
  json vae = {{"1", fashion("train", 64, 1)},
              {"2", {{"class_type", "TrainVAE"},
                     {"inputs", {{"dataset", {"1", 0}}, {"epochs", 1}, {"latent", 4}, {"width", 4},
                                 {"resume", (options.model_dir / "g_00001.pt").string()}}}}},
              {"3", sink("2")}};
  EXPECT_FALSE(run(vae).success);
  EXPECT_EQ(last_error, (options.model_dir / "g_00001.pt").string() + " holds a gan model, not a VAE");
  json saved = {{"1", fashion("train", 64, 1)},
                {"2", {{"class_type", "TrainVAE"}, {"inputs", {{"dataset", {"1", 0}}, {"epochs", 1}, {"latent", 4}, {"width", 4}}}}},
                {"3", {{"class_type", "SaveModel"}, {"inputs", {{"model", {"2", 0}}, {"filename_prefix", "v"}}}}}};
  ASSERT_TRUE(run(saved).success) << last_error;
  vae["2"]["inputs"]["resume"] = (options.model_dir / "v_00001.pt").string();
  EXPECT_FALSE(run(vae).success);
  EXPECT_EQ(last_error, "cannot resume from " + (options.model_dir / "v_00001.pt").string() +
                            ": it is not an epoch checkpoint of TrainVAE");
}

// ------------------------------------------------------------------ TorchScript, latents

TEST_F(Models, ATorchScriptGeneratorLoads) {
  torch::jit::Module m("TinyGenerator");
  m.register_attribute("latent_size", c10::IntType::get(), int64_t{8});
  m.register_attribute("num_classes", c10::IntType::get(), int64_t{2});
  m.register_parameter("weight", at::arange(8 * 16, at::kFloat).reshape({8, 16}) / 100, false);
  m.define(R"(
    def forward(self, z, labels):
        x = torch.tanh(torch.mm(z, self.weight)) * 0 + (labels.float() * 2 - 1).view(-1, 1)
        return x.view(-1, 1, 4, 4)
  )");
  fs::create_directories(options.model_dir);
  m.save((options.model_dir / "script.pt").string());
  json g = {{"1", {{"class_type", "LoadGenerator"}, {"inputs", {{"checkpoint", "script.pt"}}}}},
            {"2", {{"class_type", "GANSample"}, {"inputs", {{"generator", {"1", 0}}, {"batch", 4}}}}},
            {"3", sink("2")}};
  RunReport r = run(g);
  ASSERT_TRUE(r.success) << last_error;
  const at::Tensor& images = tensor(r, "3");
  ASSERT_EQ(images.sizes(), (at::IntArrayRef{4, 1, 4, 4}));
  // Labels 0, 1, 0, 1 -> -1, 1, -1, 1 on [-1, 1] -> 0, 1, 0, 1 on [0, 1].
  EXPECT_TRUE(at::equal(images.amax({1, 2, 3}), at::tensor({0.f, 1.f, 0.f, 1.f})));

  torch::jit::Module nameless("NoLatent");
  nameless.define("def forward(self, z):\n    return z\n");
  nameless.save((options.model_dir / "nameless.pt").string());
  g["1"]["inputs"]["checkpoint"] = "nameless.pt";
  EXPECT_FALSE(run(g).success);
  EXPECT_EQ(last_error,
            "TorchScript generator " + (options.model_dir / "nameless.pt").string() + " has no int attribute latent_size");

  // The probe at load: attributes of the wrong type or range, a forward that
  // fails on a test latent, and one that does not return images.
  // A module with latent_size = `latent` and the given forward, saved as
  // `name`: the error LoadGenerator gives.
  auto refused = [&](const std::string& name, const c10::IValue& latent, const std::string& forward) {
    torch::jit::Module m("Probe");
    const c10::TypePtr type = latent.isInt() ? c10::TypePtr(c10::IntType::get()) : c10::TypePtr(c10::StringType::get());
    m.register_attribute("latent_size", type, latent);
    m.define(forward);
    m.save((options.model_dir / name).string());
    g["1"]["inputs"]["checkpoint"] = name;
    EXPECT_FALSE(run(g).success) << name;
    return last_error;
  };
  const std::string prefix = "TorchScript generator " + (options.model_dir).string() + "/";
  EXPECT_EQ(refused("text_latent.pt", std::string("eight"), "def forward(self, z):\n    return z.view(-1, 1, 2, 4)\n"),
            prefix + "text_latent.pt: latent_size is not an int");
  EXPECT_EQ(refused("zero_latent.pt", int64_t{0}, "def forward(self, z):\n    return z.view(-1, 1, 1, 1)\n"),
            prefix + "zero_latent.pt: bad latent_size or num_classes");
  // 8 values are not 27: the interpreter's error, named by its last line.
  EXPECT_EQ(refused("failing.pt", int64_t{8}, "def forward(self, z):\n    return z.view(-1, 3, 3, 3)\n"),
            prefix + "failing.pt failed on a test latent: RuntimeError: shape '[-1, 3, 3, 3]' is invalid for input "
                     "of size 8");
  // A forward that wants labels without num_classes: the call itself fails (c10::Error).
  const std::string unlabelled =
      refused("unlabelled.pt", int64_t{8}, "def forward(self, z, labels):\n    return z.view(-1, 1, 2, 4)\n");
  EXPECT_EQ(unlabelled.rfind(prefix + "unlabelled.pt failed on a test latent: ", 0), 0u) << unlabelled;
  EXPECT_NE(unlabelled.find("labels"), std::string::npos) << unlabelled;
  EXPECT_EQ(refused("flat.pt", int64_t{8}, "def forward(self, z):\n    return torch.tanh(z)\n"),
            prefix + "flat.pt does not return images [N, C, H, W]");

  // An unconditional generator samples, but cannot draw one class per shape.
  torch::jit::Module plain("PlainGenerator");
  plain.register_attribute("latent_size", c10::IntType::get(), int64_t{8});
  plain.define("def forward(self, z):\n    return torch.tanh(z[:, :1]).view(-1, 1, 1, 1).expand(-1, 1, 4, 4)\n");
  plain.save((options.model_dir / "plain.pt").string());
  g["1"]["inputs"]["checkpoint"] = "plain.pt";
  ASSERT_TRUE(run(g).success) << last_error;
  json pairs = {{"1", {{"class_type", "LoadGenerator"}, {"inputs", {{"checkpoint", "plain.pt"}}}}},
                {"2", {{"class_type", "SyntheticLayouts"}, {"inputs", {{"generator", {"1", 0}}, {"count", 2}, {"size", 16}}}}},
                {"3", sink("2")}};
  EXPECT_FALSE(run(pairs).success);
  EXPECT_EQ(last_error, "SyntheticLayouts needs a class-conditional generator (one class per shape)");
}

TEST_F(Models, LatentNoiseAndInterpolation) {
  json g = {{"1", {{"class_type", "LatentNoise"}, {"inputs", {{"size", 6}, {"batch", 3}, {"seed", 1}}}}},
            {"2", {{"class_type", "LatentNoise"}, {"inputs", {{"size", 6}, {"batch", 3}, {"seed", 2}}}}},
            {"3", {{"class_type", "LatentInterpolate"},
                   {"inputs", {{"a", {"1", 0}}, {"b", {"2", 0}}, {"steps", 5}, {"method", "slerp"}}}}},
            {"4", {{"class_type", "LatentInterpolate"},
                   {"inputs", {{"a", {"1", 0}}, {"b", {"2", 0}}, {"steps", 5}, {"method", "linear"}}}}},
            {"5", sink("1")}, {"6", sink("2")}, {"7", sink("3")}, {"8", sink("4")},
            {"9", {{"class_type", "LatentNoise"}, {"inputs", {{"size", 6}, {"batch", 50}, {"truncation", 0.5}}}}},
            {"10", sink("9")}};
  RunReport r = run(g);
  ASSERT_TRUE(r.success) << last_error;
  const at::Tensor &a = tensor(r, "5"), &b = tensor(r, "6"), &s = tensor(r, "7"), &l = tensor(r, "8");
  ASSERT_EQ(s.sizes(), (at::IntArrayRef{15, 6}));
  EXPECT_TRUE(at::allclose(s[0], a[0], 1e-5, 1e-6));
  EXPECT_TRUE(at::allclose(s[4], b[0], 1e-5, 1e-6));
  EXPECT_TRUE(at::allclose(s[5], a[1], 1e-5, 1e-6));
  EXPECT_TRUE(at::allclose(l[2], (a[0] + b[0]) / 2, 1e-5, 1e-6));
  // Slerp keeps roughly the norm Gaussian latents have; the linear midpoint is shorter.
  const at::Tensor mid = s[2];
  EXPECT_GT(mid.norm().item<double>(), l[2].norm().item<double>());
  EXPECT_GT(mid.norm().item<double>(), 0.9 * std::min(a[0].norm().item<double>(), b[0].norm().item<double>()));
  EXPECT_LE(tensor(r, "10").abs().max().item<float>(), 0.5f);
  RunReport again = run(g);
  EXPECT_TRUE(at::equal(tensor(again, "5"), a)) << "the same seed, the same latents";
}

}  // namespace
}  // namespace cozy::host
