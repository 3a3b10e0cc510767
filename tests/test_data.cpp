// The data plugin: each reader on small files the test writes (and their
// corrupt variants), and Fashion-MNIST itself from Debian's package.
#include "test_nodes.hpp"

#include <cozy/dataset.hpp>
#include <cozy/host/validate.hpp>

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>
#include <zlib.h>

#include <fstream>

namespace cozy::host {
namespace {

namespace fs = std::filesystem;

std::string header(std::vector<uint32_t> dims, uint8_t type = 0x08) {
  std::string h = {0, 0, static_cast<char>(type), static_cast<char>(dims.size())};
  for (uint32_t d : dims)
    for (int shift : {24, 16, 8, 0}) h.push_back(static_cast<char>((d >> shift) & 0xFF));
  return h;
}

void write(const fs::path& file, const std::string& bytes, bool gzip = false) {
  if (gzip) {
    gzFile out = gzopen(file.c_str(), "wb");
    gzwrite(out, bytes.data(), static_cast<unsigned>(bytes.size()));
    gzclose(out);
  } else {
    std::ofstream(file, std::ios::binary) << bytes;
  }
}

class DataNodes : public ::testing::Test {
 protected:
  void SetUp() override {
    registry->load_folder(COZY_PLUGIN_DIR);
    dir = fs::temp_directory_path() /
          ("cozy_data_" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(dir);
    fs::create_directories(dir);
    options.input_dir = dir;
    options.use_cache = false;
  }

  // Runs loader -> DatasetInfo and DatasetImages(start, count); returns the
  // dataset, or nullptr with last_error set.
  std::shared_ptr<Dataset> load(const std::string& type, nlohmann::json inputs) {
    nlohmann::json graph = {{"1", {{"class_type", type}, {"inputs", inputs}}},
                            {"2", {{"class_type", "Sink"}, {"inputs", {{"value", {"1", 0}}}}}}};
    ParseResult parsed = parse_graph_json(graph);
    std::vector<Issue> errors = validate(*parsed.graph, *registry);
    if (!errors.empty()) {
      last_error = errors[0].to_string();
      return nullptr;
    }
    RunReport report = executor.run(*parsed.graph, options);
    if (!report.success) {
      last_error = report.failures.empty() ? "?" : report.failures[0].message;
      return nullptr;
    }
    return report.outputs.at("2")[0].as<Dataset>();
  }

  // 5 images 2 x 3 (value 10 i + pixel) with labels 0, 1, 2, 0, 1.
  void write_idx_pair(bool gzip) {
    std::string images = header({5, 2, 3});
    for (int i = 0; i < 5; ++i)
      for (int p = 0; p < 6; ++p) images.push_back(static_cast<char>(10 * i + p));
    std::string labels = header({5}) + std::string({0, 1, 2, 0, 1});
    write(dir / "images.idx", images, gzip);
    write(dir / "labels.idx", labels, gzip);
  }

  std::shared_ptr<Registry> registry = testing::test_registry();
  Executor executor{registry};
  RunOptions options;
  fs::path dir;
  std::string last_error;
};

TEST_F(DataNodes, ReadsAnIdxPairPlainOrGzip) {
  for (bool gzip : {false, true}) {
    write_idx_pair(gzip);
    auto dataset = load("LoadIDX", {{"images", "images.idx"}, {"labels", "labels.idx"}, {"class_names", "a,b,c"}});
    ASSERT_TRUE(dataset) << last_error;
    EXPECT_EQ(dataset->size(), 5);
    EXPECT_EQ(dataset->image_shape(), (std::vector<int64_t>{1, 2, 3}));
    EXPECT_EQ(dataset->class_names(), (std::vector<std::string>{"a", "b", "c"}));
    auto [images, labels] = dataset->batch(at::tensor({3, 1}, at::kLong));
    EXPECT_EQ(images.sizes(), (at::IntArrayRef{2, 1, 2, 3}));
    EXPECT_FLOAT_EQ(images[0][0][1][2].item<float>(), 35 / 255.f);
    EXPECT_EQ(labels[0].item<int64_t>(), 0);
    EXPECT_EQ(labels[1].item<int64_t>(), 1);
  }
}

TEST_F(DataNodes, ChoosesClassesShufflesAndTakesASubset) {
  write_idx_pair(false);
  auto only = load("LoadIDX", {{"images", "images.idx"}, {"labels", "labels.idx"}, {"classes", "1"}});
  ASSERT_TRUE(only) << last_error;
  EXPECT_EQ(only->size(), 2);
  EXPECT_TRUE(at::equal(only->labels(), at::tensor({1, 1}, at::kLong)));
  auto named = load("LoadIDX", {{"images", "images.idx"}, {"labels", "labels.idx"}, {"class_names", "a,b,c"},
                                {"classes", "a, c"}});
  ASSERT_TRUE(named) << last_error;
  EXPECT_TRUE(at::equal(named->labels(), at::tensor({0, 2, 0}, at::kLong)));
  auto first = load("LoadIDX", {{"images", "images.idx"}, {"labels", "labels.idx"}, {"shuffle_seed", 3}, {"subset", 4}});
  auto second = load("LoadIDX", {{"images", "images.idx"}, {"labels", "labels.idx"}, {"shuffle_seed", 3}, {"subset", 4}});
  ASSERT_TRUE(first && second);
  EXPECT_EQ(first->size(), 4);
  EXPECT_TRUE(at::equal(first->batch(at::arange(4)).first, second->batch(at::arange(4)).first)) << "same seed, same order";
  EXPECT_NE(first->describe().find("shuffled with seed 3, first 4"), std::string::npos) << first->describe();
  EXPECT_FALSE(load("LoadIDX", {{"images", "images.idx"}, {"labels", "labels.idx"}, {"classes", "7"}}));
  EXPECT_EQ(last_error, "unknown class '7'; classes: 0 0, 1 1, 2 2");
}

TEST_F(DataNodes, NamesMissingAndCorruptIdxFiles) {
  write_idx_pair(false);
  EXPECT_FALSE(load("LoadIDX", {{"images", "nope.idx"}, {"labels", "labels.idx"}}));
  EXPECT_EQ(last_error, "data file not found: " + (dir / "nope.idx").string());

  write(dir / "bad_magic.idx", "\x01\x02\x08\x01\x00\x00\x00\x01x");
  EXPECT_FALSE(load("LoadIDX", {{"images", "bad_magic.idx"}, {"labels", "labels.idx"}}));
  EXPECT_EQ(last_error, "not an IDX file (bad magic number): " + (dir / "bad_magic.idx").string());

  write(dir / "short.idx", header({5, 2, 3}) + "abc");
  EXPECT_FALSE(load("LoadIDX", {{"images", "short.idx"}, {"labels", "labels.idx"}}));
  EXPECT_EQ(last_error, "IDX file " + (dir / "short.idx").string() +
                            " is truncated or too long: its header promises 30 bytes of data, it has 3");

  write(dir / "few_labels.idx", header({4}) + std::string({0, 1, 2, 0}));
  EXPECT_FALSE(load("LoadIDX", {{"images", "images.idx"}, {"labels", "few_labels.idx"}}));
  EXPECT_EQ(last_error, (dir / "images.idx").string() + " has 5 images but " + (dir / "few_labels.idx").string() +
                            " has 4 labels");

  // A gzip file cut in the middle.
  write_idx_pair(true);
  std::ifstream in(dir / "images.idx", std::ios::binary);
  std::string gz((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  write(dir / "cut.idx", gz.substr(0, gz.size() / 2));
  EXPECT_FALSE(load("LoadIDX", {{"images", "cut.idx"}, {"labels", "labels.idx"}}));
  EXPECT_NE(last_error.find("cut.idx"), std::string::npos) << last_error;
}

TEST_F(DataNodes, NamesEveryOtherIdxProblem) {
  write_idx_pair(false);
  write(dir / "ints.idx", header({1}, 0x0C) + std::string(4, '\0'));
  EXPECT_FALSE(load("LoadIDX", {{"images", "ints.idx"}, {"labels", "labels.idx"}}));
  EXPECT_EQ(last_error, "IDX file " + (dir / "ints.idx").string() + " holds a type other than unsigned bytes");
  write(dir / "five_dims.idx", header({1, 1, 1, 1, 1}) + "x");
  EXPECT_FALSE(load("LoadIDX", {{"images", "five_dims.idx"}, {"labels", "labels.idx"}}));
  EXPECT_EQ(last_error, "IDX file " + (dir / "five_dims.idx").string() + " has 5 dimensions");
  write(dir / "short_header.idx", std::string({0, 0, 8, 3, 0, 0}));
  EXPECT_FALSE(load("LoadIDX", {{"images", "short_header.idx"}, {"labels", "labels.idx"}}));
  EXPECT_EQ(last_error, "IDX file " + (dir / "short_header.idx").string() + " is truncated in its header");
  EXPECT_FALSE(load("LoadIDX", {{"images", "images.idx"}, {"labels", "images.idx"}}));
  EXPECT_EQ(last_error, "IDX labels " + (dir / "images.idx").string() + " must have 1 dimension");
  EXPECT_FALSE(load("LoadIDX", {{"images", "images.idx"}, {"labels", "labels.idx"}, {"class_names", "a,b"}}));
  EXPECT_EQ(last_error, (dir / "labels.idx").string() + " has label 2 but only 2 class names");
}

TEST_F(DataNodes, ReadsCifar10Batches) {
  fs::create_directories(dir / "cifar");
  std::string batch;
  for (int record = 0; record < 3; ++record) {
    batch.push_back(static_cast<char>(record * 4));  // labels 0, 4, 8
    for (int channel = 0; channel < 3; ++channel) batch += std::string(1024, static_cast<char>(channel * 100 + record));
  }
  write(dir / "cifar" / "test_batch.bin", batch);
  auto dataset = load("LoadCIFAR10", {{"folder", "cifar"}, {"split", "test"}});
  ASSERT_TRUE(dataset) << last_error;
  EXPECT_EQ(dataset->size(), 3);
  EXPECT_EQ(dataset->image_shape(), (std::vector<int64_t>{3, 32, 32}));
  EXPECT_EQ(dataset->class_names()[4], "deer");
  auto [images, labels] = dataset->batch(at::tensor({2}, at::kLong));
  EXPECT_EQ(labels[0].item<int64_t>(), 8);
  EXPECT_FLOAT_EQ(images[0][1][5][5].item<float>(), 102 / 255.f) << "channel planes R, G, B in order";

  write(dir / "cifar" / "test_batch.bin", batch.substr(0, 100));
  EXPECT_FALSE(load("LoadCIFAR10", {{"folder", "cifar"}, {"split", "test"}}));
  EXPECT_EQ(last_error, "not a CIFAR-10 binary batch (size 100 is not a multiple of 3073): " +
                            (dir / "cifar" / "test_batch.bin").string());
  EXPECT_FALSE(load("LoadCIFAR10", {{"folder", "cifar"}, {"split", "train"}}));
  EXPECT_EQ(last_error, "data file not found: " + (dir / "cifar" / "data_batch_1.bin").string());
}

TEST_F(DataNodes, ReadsAnImageFolderWithOneSubfolderPerClass) {
  for (const char* c : {"cats", "dogs"}) fs::create_directories(dir / "pets" / c);
  cv::imwrite((dir / "pets" / "cats" / "a.png").string(), cv::Mat(4, 6, CV_8UC3, cv::Scalar(0, 0, 255)));
  cv::imwrite((dir / "pets" / "dogs" / "b.png").string(), cv::Mat(4, 6, CV_8UC3, cv::Scalar(255, 0, 0)));
  cv::imwrite((dir / "pets" / "dogs" / "c.png").string(), cv::Mat(4, 6, CV_8UC1, cv::Scalar(128)));
  auto dataset = load("LoadImageFolder", {{"folder", "pets"}});
  ASSERT_TRUE(dataset) << last_error;
  EXPECT_EQ(dataset->class_names(), (std::vector<std::string>{"cats", "dogs"}));
  EXPECT_TRUE(at::equal(dataset->labels(), at::tensor({0, 1, 1}, at::kLong)));
  EXPECT_EQ(dataset->image_shape(), (std::vector<int64_t>{3, 4, 6}));
  auto [images, labels] = dataset->batch(at::arange(3));
  EXPECT_FLOAT_EQ(images[0][0][0][0].item<float>(), 1.f) << "red cat";
  EXPECT_FLOAT_EQ(images[1][2][0][0].item<float>(), 1.f) << "blue dog";

  auto resized = load("LoadImageFolder", {{"folder", "pets"}, {"size", 8}, {"grey", true}});
  ASSERT_TRUE(resized) << last_error;
  EXPECT_EQ(resized->image_shape(), (std::vector<int64_t>{1, 8, 8}));

  cv::imwrite((dir / "pets" / "dogs" / "d.png").string(), cv::Mat(5, 5, CV_8UC3, cv::Scalar(1, 2, 3)));
  EXPECT_FALSE(load("LoadImageFolder", {{"folder", "pets"}}));
  EXPECT_EQ(last_error, (dir / "pets" / "dogs" / "d.png").string() +
                            " is 5 x 5, unlike the images before it; set size to resize them all");
  fs::create_directories(dir / "flat");
  EXPECT_FALSE(load("LoadImageFolder", {{"folder", "flat"}}));
  EXPECT_EQ(last_error, "image folder " + (dir / "flat").string() + " has no class subfolders");
  fs::create_directories(dir / "empty" / "a");
  EXPECT_FALSE(load("LoadImageFolder", {{"folder", "empty"}}));
  EXPECT_EQ(last_error, "image folder " + (dir / "empty").string() + " has no PNG or JPEG images");
  EXPECT_FALSE(load("LoadImageFolder", {{"folder", "nowhere"}}));
  EXPECT_EQ(last_error, "image folder not found: " + (dir / "nowhere").string());
}

// The real data, from Debian's dataset-fashion-mnist.
TEST_F(DataNodes, FashionMnistFromDebian) {
  auto train = load("LoadFashionMNIST", {{"split", "train"}});
  ASSERT_TRUE(train) << last_error;
  EXPECT_EQ(train->size(), 60000);
  EXPECT_EQ(train->image_shape(), (std::vector<int64_t>{1, 28, 28}));
  EXPECT_EQ(train->class_names()[7], "Sneaker");
  at::Tensor counts = at::bincount(train->labels());
  EXPECT_TRUE(at::equal(counts, at::full({10}, 6000, at::kLong))) << "6,000 images of each class";
  auto test = load("LoadFashionMNIST", {{"split", "test"}, {"classes", "Sneaker,Bag"}, {"subset", 100},
                                        {"shuffle_seed", 1}});
  ASSERT_TRUE(test) << last_error;
  EXPECT_EQ(test->size(), 100);
  at::Tensor labels = test->labels();
  EXPECT_TRUE(((labels == 7) | (labels == 8)).all().item<bool>());
  auto [images, l] = test->batch(at::arange(100));
  EXPECT_GT(images.mean().item<float>(), 0.05f) << "real images, not zeros";
  EXPECT_LE(images.max().item<float>(), 1.f);
}

TEST_F(DataNodes, DatasetImagesAndInfoInAGraph) {
  nlohmann::json graph = {
      {"1", {{"class_type", "LoadFashionMNIST"}, {"inputs", {{"split", "test"}}}}},
      {"2", {{"class_type", "DatasetImages"}, {"inputs", {{"dataset", {"1", 0}}, {"start", 9998}, {"count", 5}}}}},
      {"3", {{"class_type", "Sink"}, {"inputs", {{"value", {"2", 0}}}}}},
      {"4", {{"class_type", "Sink"}, {"inputs", {{"value", {"2", 1}}}}}},
      {"5", {{"class_type", "DatasetInfo"}, {"inputs", {{"dataset", {"1", 0}}}}}}};
  ParseResult parsed = parse_graph_json(graph);
  ASSERT_TRUE(validate(*parsed.graph, *registry).empty());
  RunReport report = executor.run(*parsed.graph, options);
  ASSERT_TRUE(report.success) << (report.failures.empty() ? "" : report.failures[0].message);
  EXPECT_EQ(report.outputs.at("3")[0].as_tensor().sizes(), (at::IntArrayRef{2, 1, 28, 28})) << "only 2 left at 9998";
  EXPECT_EQ(report.outputs.at("4")[0].as_string().find(','), report.outputs.at("4")[0].as_string().rfind(','));
  EXPECT_NE(report.outputs.at("5")[0].as_string().find("Fashion-MNIST test: 10000 images of 1x28x28; T-shirt/top 1000"),
            std::string::npos)
      << report.outputs.at("5")[0].as_string();

  graph["2"]["inputs"]["start"] = 10000;
  ParseResult past = parse_graph_json(graph);
  RunReport past_end = executor.run(*past.graph, options);
  ASSERT_EQ(past_end.failures.size(), 1u);
  EXPECT_EQ(past_end.failures[0].message, "start 10000 is past the end of the data set (10000 examples)");
}

}  // namespace
}  // namespace cozy::host
