// The core plugin's nodes, loaded from the built plugin and run in graphs.
#include "test_nodes.hpp"

#include <cozy/host/validate.hpp>

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include <fstream>

namespace cozy::host {
namespace {

namespace fs = std::filesystem;

class CoreNodes : public ::testing::Test {
 protected:
  void SetUp() override {
    registry->load_folder(COZY_PLUGIN_DIR);
    root = fs::temp_directory_path() / ("cozy_core_" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(root);
    fs::create_directories(root / "in");
    options.input_dir = root / "in";
    options.output_dir = root / "out";
    options.temp_dir = root / "temp";
    options.use_cache = false;
  }

  RunReport run(const std::string& text) {
    ParseResult parsed = parse_graph(text);
    EXPECT_TRUE(parsed.errors.empty());
    std::vector<Issue> errors = validate(*parsed.graph, *registry);
    EXPECT_TRUE(errors.empty()) << errors.front().to_string();
    return executor.run(*parsed.graph, options);
  }
  // LoadImage(file) -> Sink; returns {image, mask}.
  std::pair<at::Tensor, at::Tensor> load(const std::string& file) {
    RunReport report = run(R"({"1": {"class_type": "LoadImage", "inputs": {"image": ")" + file + R"("}},
      "2": {"class_type": "Sink", "inputs": {"value": ["1", 0]}}, "3": {"class_type": "Sink", "inputs": {"value": ["1", 1]}}})");
    EXPECT_TRUE(report.success) << (report.failures.empty() ? "" : report.failures[0].message);
    if (!report.success) return {};
    return {report.outputs.at("2")[0].as_tensor(), report.outputs.at("3")[0].as_tensor()};
  }
  std::vector<fs::path> files_in(const fs::path& dir) {
    std::vector<fs::path> files;
    if (fs::exists(dir))
      for (const auto& e : fs::recursive_directory_iterator(dir))
        if (e.is_regular_file()) files.push_back(fs::relative(e.path(), dir));
    std::sort(files.begin(), files.end());
    return files;
  }

  std::shared_ptr<Registry> registry = testing::test_registry();
  Executor executor{registry};
  RunOptions options;
  fs::path root;
};

TEST_F(CoreNodes, LoadImageReadsGreyAndColourAt8And16Bits) {
  cv::Mat grey(2, 3, CV_8UC1, cv::Scalar(51));
  grey.at<uint8_t>(1, 2) = 255;
  cv::imwrite((root / "in" / "grey.png").string(), grey);
  cv::Mat colour(2, 2, CV_8UC3, cv::Scalar(10, 20, 30));  // B, G, R
  cv::imwrite((root / "in" / "colour.png").string(), colour);
  cv::Mat deep(2, 2, CV_16UC3, cv::Scalar(0, 32768, 65535));
  cv::imwrite((root / "in" / "deep.png").string(), deep);
  cv::Mat rgba(2, 2, CV_8UC4, cv::Scalar(0, 0, 255, 255));
  rgba.at<cv::Vec4b>(0, 0)[3] = 0;
  cv::imwrite((root / "in" / "alpha.png").string(), rgba);

  auto [g, g_mask] = load("grey.png");
  ASSERT_TRUE(g.defined());
  EXPECT_EQ(g.sizes(), (at::IntArrayRef{1, 1, 2, 3}));
  EXPECT_FLOAT_EQ(g[0][0][0][0].item<float>(), 51 / 255.f);
  EXPECT_FLOAT_EQ(g[0][0][1][2].item<float>(), 1.f);
  EXPECT_EQ(g_mask.sizes(), (at::IntArrayRef{1, 1, 2, 3}));
  EXPECT_EQ(g_mask.sum().item<float>(), 0.f) << "no alpha: nothing is masked";

  auto [c, c_mask] = load("colour.png");
  EXPECT_EQ(c.sizes(), (at::IntArrayRef{1, 3, 2, 2}));
  EXPECT_FLOAT_EQ(c[0][0][0][0].item<float>(), 30 / 255.f) << "channel 0 is red";
  EXPECT_FLOAT_EQ(c[0][2][0][0].item<float>(), 10 / 255.f) << "channel 2 is blue";

  auto [d, d_mask] = load((root / "in" / "deep.png").string());  // an absolute path
  EXPECT_FLOAT_EQ(d[0][0][0][0].item<float>(), 1.f);
  EXPECT_FLOAT_EQ(d[0][1][0][0].item<float>(), 32768 / 65535.f);
  EXPECT_FLOAT_EQ(d[0][2][0][0].item<float>(), 0.f);

  auto [a, a_mask] = load("alpha.png");
  EXPECT_EQ(a.sizes(), (at::IntArrayRef{1, 3, 2, 2}));
  EXPECT_FLOAT_EQ(a_mask[0][0][0][0].item<float>(), 1.f) << "transparent pixels are masked (1 - alpha)";
  EXPECT_FLOAT_EQ(a_mask[0][0][1][1].item<float>(), 0.f);
  EXPECT_FLOAT_EQ(a[0][0][1][1].item<float>(), 1.f);
}

TEST_F(CoreNodes, LoadImageReadsJpeg) {
  cv::Mat colour(8, 8, CV_8UC3, cv::Scalar(200, 100, 50));
  cv::imwrite((root / "in" / "photo.jpg").string(), colour);
  auto [image, mask] = load("photo.jpg");
  ASSERT_TRUE(image.defined());
  EXPECT_NEAR(image[0][0][4][4].item<float>(), 50 / 255.f, 3 / 255.f);
  EXPECT_NEAR(image[0][2][4][4].item<float>(), 200 / 255.f, 3 / 255.f);
}

TEST_F(CoreNodes, LoadImageNamesAMissingOrCorruptFile) {
  RunReport missing = run(R"({"1": {"class_type": "LoadImage", "inputs": {"image": "nope.png"}},
    "2": {"class_type": "Sink", "inputs": {"value": ["1", 0]}}})");
  ASSERT_EQ(missing.failures.size(), 1u);
  EXPECT_EQ(missing.failures[0].message, "image file not found: " + (root / "in" / "nope.png").string());
  std::ofstream(root / "in" / "bad.png") << "not a png";
  RunReport corrupt = run(R"({"1": {"class_type": "LoadImage", "inputs": {"image": "bad.png"}},
    "2": {"class_type": "Sink", "inputs": {"value": ["1", 0]}}})");
  ASSERT_EQ(corrupt.failures.size(), 1u);
  EXPECT_NE(corrupt.failures[0].message.find("cannot read image"), std::string::npos) << corrupt.failures[0].message;
}

TEST_F(CoreNodes, SaveImageWritesEveryImageAndNeverOverwrites) {
  const std::string graph = R"({
    "1": {"class_type": "EmptyImage", "inputs": {"width": 4, "height": 3, "batch_size": 3, "color": 16744448}},
    "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "run/pic"}}})";
  RunReport first = run(graph);
  ASSERT_TRUE(first.success) << first.failures[0].message;
  EXPECT_EQ(files_in(options.output_dir),
            (std::vector<fs::path>{"run/pic_00001.png", "run/pic_00002.png", "run/pic_00003.png"}));
  EXPECT_EQ(first.files.at("2").size(), 3u);

  // A later run goes on counting above the highest existing number.
  std::ofstream(options.output_dir / "run" / "pic_00007.png") << "someone else's file";
  RunReport second = run(graph);
  ASSERT_TRUE(second.success);
  EXPECT_EQ(second.files.at("2").front().path, options.output_dir / "run" / "pic_00008.png");
  // As ComfyUI reports a file: its name, its folder under the output folder, and "output".
  EXPECT_EQ(second.files.at("2").front().to_json(),
            (nlohmann::json{{"filename", "pic_00008.png"}, {"subfolder", "run"}, {"type", "output"}}));
  EXPECT_EQ(second.ui.at("2")["images"].size(), 3u);
  std::ifstream kept(options.output_dir / "run" / "pic_00007.png");
  std::string content((std::istreambuf_iterator<char>(kept)), std::istreambuf_iterator<char>());
  EXPECT_EQ(content, "someone else's file");

  cv::Mat saved = cv::imread((options.output_dir / "run" / "pic_00001.png").string(), cv::IMREAD_UNCHANGED);
  ASSERT_EQ(saved.type(), CV_8UC3);
  EXPECT_EQ(saved.at<cv::Vec3b>(0, 0), cv::Vec3b(0, 128, 255));  // 0xFF8000 as B, G, R
}

TEST_F(CoreNodes, SaveImageWrites16BitPngs) {
  RunReport report = run(R"({
    "1": {"class_type": "EmptyImage", "inputs": {"width": 2, "height": 2, "color": 8421504}},
    "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "deep", "bit_depth": "16"}}})");
  ASSERT_TRUE(report.success);
  cv::Mat saved = cv::imread((options.output_dir / "deep_00001.png").string(), cv::IMREAD_UNCHANGED);
  ASSERT_EQ(saved.type(), CV_16UC3);
  EXPECT_EQ(saved.at<cv::Vec3w>(0, 0)[0], static_cast<uint16_t>(std::lround(128 / 255.0 * 65535)));
}

TEST_F(CoreNodes, SaveImageRefusesAPrefixThatEscapesTheOutputFolder) {
  for (const std::string prefix : {"../escaped", "a/../../escaped", "/tmp/escaped"}) {
    RunReport report = run(R"({
      "1": {"class_type": "EmptyImage", "inputs": {"width": 2, "height": 2}},
      "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": ")" + prefix + R"("}}})");
    ASSERT_EQ(report.failures.size(), 1u) << prefix;
    const std::string& message = report.failures[0].message;
    if (prefix[0] == '/')
      EXPECT_EQ(message, "filename_prefix '" + prefix + "' must be relative to " + options.output_dir.string());
    else
      EXPECT_EQ(message, "filename_prefix '" + prefix + "' escapes the folder " + options.output_dir.string());
  }
  EXPECT_FALSE(fs::exists(root / "escaped_00001.png"));
  EXPECT_TRUE(files_in(root).empty() || files_in(root / "out").empty());
}

TEST_F(CoreNodes, PreviewImageWritesToTheTempFolder) {
  RunReport report = run(R"({
    "1": {"class_type": "EmptyImage", "inputs": {"width": 2, "height": 2, "batch_size": 2}},
    "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}})");
  ASSERT_TRUE(report.success);
  EXPECT_EQ(files_in(options.temp_dir), (std::vector<fs::path>{"preview_2_00001.png", "preview_2_00002.png"}));
  EXPECT_TRUE(files_in(options.output_dir).empty());
}

TEST_F(CoreNodes, ImageGridLaysTheBatchOutInRows) {
  // Five 2x2 images of grey levels 0.1 .. 0.5, three columns, padding 1.
  ParseResult parsed = parse_graph(R"({"1": {"class_type": "ImageGrid", "inputs": {"images": ["9", 0], "columns": 3, "padding": 1, "background": 1.0}},
    "2": {"class_type": "Sink", "inputs": {"value": ["1", 0]}}})");
  // Feed the batch through a node made for this test.
  registry->add(testing::make("FiveGreys", {}, {{"IMAGE", types::IMAGE}}, [](const Inputs&, Context&) -> Outputs {
    return {(at::arange(1, 6, at::kFloat) / 10).view({5, 1, 1, 1}).expand({5, 3, 2, 2}).contiguous()};
  }));
  parsed.graph->nodes.push_back({"9", "FiveGreys", "", {}});
  parsed.graph->index["9"] = parsed.graph->nodes.size() - 1;
  ASSERT_TRUE(validate(*parsed.graph, *registry).empty());
  RunReport report = executor.run(*parsed.graph, options);
  ASSERT_TRUE(report.success);
  at::Tensor grid = report.outputs.at("2")[0].as_tensor();
  EXPECT_EQ(grid.sizes(), (at::IntArrayRef{1, 3, 2 * 2 + 3, 3 * 2 + 4}));
  EXPECT_FLOAT_EQ(grid[0][0][0][0].item<float>(), 1.0f);   // padding
  EXPECT_FLOAT_EQ(grid[0][0][1][1].item<float>(), 0.1f);   // image 0 at (1, 1)
  EXPECT_FLOAT_EQ(grid[0][0][1][4].item<float>(), 0.2f);   // image 1 at (1, 4)
  EXPECT_FLOAT_EQ(grid[0][0][4][4].item<float>(), 0.5f);   // image 4: row 1, column 1
  EXPECT_FLOAT_EQ(grid[0][0][4][7].item<float>(), 1.0f);   // no sixth image: background
}

TEST_F(CoreNodes, ImageBatchMatchesSizeAndChannels) {
  RunReport report = run(R"({
    "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 6, "batch_size": 2, "color": 16711680}},
    "2": {"class_type": "EmptyImage", "inputs": {"width": 4, "height": 3, "batch_size": 1, "color": 255}},
    "3": {"class_type": "ImageBatch", "inputs": {"image1": ["1", 0], "image2": ["2", 0]}},
    "4": {"class_type": "Sink", "inputs": {"value": ["3", 0]}}})");
  ASSERT_TRUE(report.success);
  at::Tensor batch = report.outputs.at("4")[0].as_tensor();
  EXPECT_EQ(batch.sizes(), (at::IntArrayRef{3, 3, 6, 8}));
  EXPECT_FLOAT_EQ(batch[0][0][0][0].item<float>(), 1.f);
  EXPECT_FLOAT_EQ(batch[2][2][5][7].item<float>(), 1.f);
  EXPECT_FLOAT_EQ(batch[2][0][5][7].item<float>(), 0.f);
}

TEST_F(CoreNodes, PrimitivesPassTheirValue) {
  RunReport report = run(R"({
    "1": {"class_type": "Int", "inputs": {"value": -7}}, "2": {"class_type": "Sink", "inputs": {"value": ["1", 0]}},
    "3": {"class_type": "Float", "inputs": {"value": 2.5}}, "4": {"class_type": "Sink", "inputs": {"value": ["3", 0]}},
    "5": {"class_type": "String", "inputs": {"value": "hi"}}, "6": {"class_type": "Sink", "inputs": {"value": ["5", 0]}},
    "7": {"class_type": "Boolean", "inputs": {"value": true}}, "8": {"class_type": "Sink", "inputs": {"value": ["7", 0]}},
    "9": {"class_type": "Seed", "inputs": {"seed": 42}}, "10": {"class_type": "Sink", "inputs": {"value": ["9", 0]}}})");
  ASSERT_TRUE(report.success);
  EXPECT_EQ(report.outputs.at("2")[0].as_int(), -7);
  EXPECT_DOUBLE_EQ(report.outputs.at("4")[0].as_float(), 2.5);
  EXPECT_EQ(report.outputs.at("6")[0].as_string(), "hi");
  EXPECT_TRUE(report.outputs.at("8")[0].as_bool());
  EXPECT_EQ(report.outputs.at("10")[0].as_int(), 42);
}

}  // namespace
}  // namespace cozy::host
