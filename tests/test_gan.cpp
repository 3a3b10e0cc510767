// The gan plugin: a short training run, determinism, checkpoints and their
// errors, sampling options, cancellation.
#include "test_nodes.hpp"

#include <cozy/host/validate.hpp>
#include <cozy/models.hpp>

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/serialize/archive.h>

#include <fstream>
#include <opencv2/imgcodecs.hpp>

namespace cozy::host {
namespace {

namespace fs = std::filesystem;

// Cancels the run at the third progress event of a node.
class CancelOnProgress : public EventSink {
 public:
  explicit CancelOnProgress(std::shared_ptr<CancelToken> token) : token_(std::move(token)) {}
  void emit(const Event& event) override {
    if (event.type == "progress" && ++seen_ == 3) token_->cancel();
  }

 private:
  std::shared_ptr<CancelToken> token_;
  int seen_ = 0;
};

class Gan : public ::testing::Test {
 protected:
  void SetUp() override {
    registry->load_folder(COZY_PLUGIN_DIR);
    dir = fs::temp_directory_path() / ("cozy_gan_" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(dir);
    options.output_dir = dir / "out";
    options.model_dir = dir / "models";
    options.model_save_dir = options.model_dir;  // as `--models-dir` does: saved models load again by name
    options.use_cache = false;
    options.threads = 1;  // determinism
    options.jobs = 1;
  }

  RunReport run(const nlohmann::json& graph) {
    ParseResult parsed = parse_graph_json(graph);
    EXPECT_TRUE(parsed.errors.empty());
    std::vector<Issue> errors = validate(*parsed.graph, *registry);
    EXPECT_TRUE(errors.empty()) << errors.front().to_string();
    RunReport report = executor.run(*parsed.graph, options);
    if (!report.failures.empty()) last_error = report.failures[0].message;
    return report;
  }

  // Fashion-MNIST subset -> TrainGAN -> GANSample(seed 5) -> Sink, and SaveModel.
  nlohmann::json training_graph(int steps, bool conditional = true) {
    return {{"1", {{"class_type", "LoadFashionMNIST"},
                   {"inputs", {{"split", "train"}, {"subset", 512}, {"shuffle_seed", 2}}}}},
            {"2", {{"class_type", "TrainGAN"},
                   {"inputs", {{"dataset", {"1", 0}}, {"steps", steps}, {"batch", 32}, {"width", 8}, {"latent", 16},
                               {"seed", 11}, {"conditional", conditional}, {"name", "run/g"}}}}},
            {"3", {{"class_type", "GANSample"}, {"inputs", {{"generator", {"2", 0}}, {"seed", 5}, {"batch", 10}}}}},
            {"4", {{"class_type", "Sink"}, {"inputs", {{"value", {"3", 0}}}}}},
            {"5", {{"class_type", "SaveModel"}, {"inputs", {{"model", {"2", 0}}, {"filename_prefix", "g"}}}}}};
  }

  nlohmann::json sample_graph(const std::string& checkpoint, nlohmann::json sample_inputs = {{"seed", 5}, {"batch", 10}}) {
    sample_inputs["generator"] = {"1", 0};
    return {{"1", {{"class_type", "LoadGenerator"}, {"inputs", {{"checkpoint", checkpoint}}}}},
            {"2", {{"class_type", "GANSample"}, {"inputs", sample_inputs}}},
            {"3", {{"class_type", "Sink"}, {"inputs", {{"value", {"2", 0}}}}}}};
  }

  std::shared_ptr<Registry> registry = testing::test_registry();
  Executor executor{registry};
  RunOptions options;
  fs::path dir;
  std::string last_error;
};

TEST_F(Gan, ShortTrainingLowersTheDiscriminatorLossAndWritesItsLog) {
  RunReport report = run(training_graph(40));
  ASSERT_TRUE(report.success) << last_error;
  at::Tensor images = report.outputs.at("4")[0].as_tensor();
  EXPECT_EQ(images.sizes(), (at::IntArrayRef{10, 1, 28, 28}));
  EXPECT_GE(images.min().item<float>(), 0.f);
  EXPECT_LE(images.max().item<float>(), 1.f);

  std::ifstream csv(options.output_dir / "run" / "g_losses_00001.csv");
  ASSERT_TRUE(csv) << "no loss log";
  std::string line;
  std::getline(csv, line);
  EXPECT_EQ(line, "step,loss_d,loss_g");
  std::vector<double> loss_d;
  while (std::getline(csv, line)) loss_d.push_back(std::stod(line.substr(line.find(',') + 1)));
  ASSERT_EQ(loss_d.size(), 40u);
  double last = 0;
  for (std::size_t i = 30; i < 40; ++i) last += loss_d[i] / 10;
  EXPECT_LT(last, loss_d[0]) << "the discriminator learns: its loss falls from " << loss_d[0];
  EXPECT_TRUE(fs::exists(options.output_dir / "run" / "g_losses_00001.png"));
}

TEST_F(Gan, TheSameSeedGivesTheSameImages) {
  RunReport first = run(training_graph(5));
  RunReport second = run(training_graph(5));
  ASSERT_TRUE(first.success && second.success) << last_error;
  EXPECT_TRUE(at::equal(first.outputs.at("4")[0].as_tensor(), second.outputs.at("4")[0].as_tensor()));
}

TEST_F(Gan, ACheckpointLoadsToTheSameGenerator) {
  RunReport trained = run(training_graph(5));
  ASSERT_TRUE(trained.success) << last_error;
  ASSERT_TRUE(fs::exists(options.model_dir / "g_00001.pt"));
  RunReport loaded = run(sample_graph("g_00001.pt"));
  ASSERT_TRUE(loaded.success) << last_error;
  EXPECT_TRUE(at::equal(trained.outputs.at("4")[0].as_tensor(), loaded.outputs.at("3")[0].as_tensor()));
  // A second save does not replace the first.
  run(training_graph(5));
  EXPECT_TRUE(fs::exists(options.model_dir / "g_00002.pt"));
}

TEST_F(Gan, CheckpointErrorsAreClear) {
  fs::create_directories(options.model_dir);
  EXPECT_FALSE(run(sample_graph("missing.pt")).success);
  EXPECT_EQ(last_error, "checkpoint not found: " + (options.model_dir / "missing.pt").string());

  std::ofstream(options.model_dir / "text.pt") << "not a checkpoint";
  EXPECT_FALSE(run(sample_graph("text.pt")).success);
  EXPECT_EQ(last_error, "not a checkpoint (corrupt, or not written by torch::save): " +
                            (options.model_dir / "text.pt").string());

  torch::serialize::OutputArchive no_metadata;
  no_metadata.write("something", c10::IValue(int64_t{1}));
  no_metadata.save_to((options.model_dir / "plain.pt").string());
  EXPECT_FALSE(run(sample_graph("plain.pt")).success);
  EXPECT_EQ(last_error, "not a Cozy checkpoint (no metadata): " + (options.model_dir / "plain.pt").string());

  torch::serialize::OutputArchive other_kind;
  other_kind.write("metadata", c10::IValue(std::string(R"({"format": "cozy-checkpoint", "kind": "vae"})")));
  other_kind.save_to((options.model_dir / "vae.pt").string());
  EXPECT_FALSE(run(sample_graph("vae.pt")).success);
  EXPECT_EQ(last_error, (options.model_dir / "vae.pt").string() + " holds a vae model, not a GAN generator");
}

TEST_F(Gan, SampleOptions) {
  ASSERT_TRUE(run(training_graph(2)).success) << last_error;
  RunReport one_class = run(sample_graph("g_00001.pt", {{"seed", 1}, {"batch", 4}, {"class_index", 7}, {"truncation", 0.5}}));
  ASSERT_TRUE(one_class.success) << last_error;
  EXPECT_EQ(one_class.outputs.at("3")[0].as_tensor().size(0), 4);
  EXPECT_FALSE(run(sample_graph("g_00001.pt", {{"class_index", 10}})).success);
  EXPECT_EQ(last_error, "class_index 10 is out of range: the generator has 10 classes");

  ASSERT_TRUE(run(training_graph(2, /*conditional=*/false)).success) << last_error;
  EXPECT_FALSE(run(sample_graph("g_00002.pt", {{"class_index", 1}})).success);
  EXPECT_EQ(last_error, "this generator is unconditional: class_index must be -1");
  EXPECT_TRUE(run(sample_graph("g_00002.pt")).success) << last_error;
}

TEST_F(Gan, TrainingRefusesImagesDcganCannotMake) {
  fs::create_directories(dir / "in" / "pics" / "a");
  cv::imwrite((dir / "in" / "pics" / "a" / "x.png").string(), cv::Mat(20, 30, CV_8UC3, cv::Scalar(1, 2, 3)));
  cv::imwrite((dir / "in" / "pics" / "a" / "y.png").string(), cv::Mat(20, 20, CV_8UC3, cv::Scalar(1, 2, 3)));
  options.input_dir = dir / "in";
  nlohmann::json graph = {
      {"1", {{"class_type", "LoadImageFolder"}, {"inputs", {{"folder", "pics"}, {"size", 20}}}}},
      {"2", {{"class_type", "TrainGAN"}, {"inputs", {{"dataset", {"1", 0}}, {"steps", 1}}}}},
      {"3", {{"class_type", "Sink"}, {"inputs", {{"value", {"2", 0}}}}}}};
  EXPECT_FALSE(run(graph).success);
  EXPECT_EQ(last_error, "DCGAN image size must be 28, 32 or 64, not 20");
}

TEST_F(Gan, ACheckpointWhoseWeightsDoNotMatchItsMetadata) {
  fs::create_directories(options.model_dir);
  // Metadata that promises a generator the archive does not hold.
  torch::serialize::OutputArchive changed;
  changed.write("metadata", c10::IValue(std::string(
                                R"({"format": "cozy-checkpoint", "kind": "gan", "latent": 16, "width": 32, )"
                                R"("channels": 1, "image_size": 28, "classes": []})")));
  changed.save_to((options.model_dir / "mismatch.pt").string());
  EXPECT_FALSE(run(sample_graph("mismatch.pt")).success);
  EXPECT_EQ(last_error, "checkpoint " + (options.model_dir / "mismatch.pt").string() + " has no generator");
  torch::serialize::OutputArchive incomplete;
  incomplete.write("metadata", c10::IValue(std::string(R"({"format": "cozy-checkpoint", "kind": "gan"})")));
  incomplete.save_to((options.model_dir / "incomplete.pt").string());
  EXPECT_FALSE(run(sample_graph("incomplete.pt")).success);
  EXPECT_EQ(last_error.rfind("incomplete checkpoint metadata in " + (options.model_dir / "incomplete.pt").string(), 0), 0u)
      << last_error;
  torch::serialize::OutputArchive bad_json;
  bad_json.write("metadata", c10::IValue(std::string("{not json")));
  bad_json.save_to((options.model_dir / "bad_json.pt").string());
  EXPECT_FALSE(run(sample_graph("bad_json.pt")).success);
  EXPECT_EQ(last_error, "corrupt checkpoint metadata in " + (options.model_dir / "bad_json.pt").string());
}

TEST_F(Gan, CancellingKeepsTheLastCheckpoint) {
  options.cancel = std::make_shared<CancelToken>();
  CancelOnProgress cancel(options.cancel);
  options.events = &cancel;
  RunReport report = run(training_graph(1000));
  EXPECT_TRUE(report.interrupted);
  EXPECT_TRUE(report.failures.empty());
  EXPECT_TRUE(fs::exists(options.output_dir / "run" / "g_step3_00001.pt")) << "a checkpoint at the last full step";
  EXPECT_FALSE(fs::exists(options.model_dir / "g_00001.pt")) << "nothing after the cancelled node ran";
}

}  // namespace
}  // namespace cozy::host
