// Every post-process filter against the reference library on the same input:
// OpenCV, or PIL's definitions written here from their formulas with OpenCV
// arithmetic. On 1 and 3 channels, on a batch of 2, with stated tolerances.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cozy/host/validate.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <set>

#include "test_nodes.hpp"

namespace cozy::host {
namespace {

using Reference = std::function<cv::Mat(const cv::Mat&)>;  // H x W x C float (RGB) -> same

cv::Mat to_mat(const at::Tensor& chw) {
  at::Tensor hwc = chw.permute({1, 2, 0}).contiguous();
  cv::Mat view(static_cast<int>(hwc.size(0)), static_cast<int>(hwc.size(1)), CV_32FC(static_cast<int>(hwc.size(2))),
               hwc.data_ptr<float>());
  return view.clone();
}

cv::Mat clamp01(const cv::Mat& m) {
  cv::Mat out;
  cv::min(cv::max(m, 0.0), 1.0, out);
  return out;
}

cv::Mat luma_of(const cv::Mat& m) {
  if (m.channels() == 1) return m.clone();
  cv::Mat grey;
  cv::cvtColor(m, grey, cv::COLOR_RGB2GRAY);
  return grey;
}

// Replicates a one-channel Mat to `channels`.
cv::Mat widen(const cv::Mat& grey, int channels) {
  if (channels == 1) return grey;
  cv::Mat out;
  cv::merge(std::vector<cv::Mat>(static_cast<std::size_t>(channels), grey), out);
  return out;
}

class Filters : public ::testing::Test {
 protected:
  void SetUp() override {
    registry->load_folder(COZY_PLUGIN_DIR);
    registry->add(testing::make("Given", {InputSpec::Int("slot", 0)}, {{"IMAGE", types::IMAGE}},
                                [this](const Inputs& in, Context&) -> Outputs { return {given[in.integer("slot")]}; }));
    registry->add(testing::make("GivenMask", {}, {{"MASK", types::MASK}},
                                [this](const Inputs&, Context&) -> Outputs { return {given_mask}; }));
    options.use_cache = false;
    at::manual_seed(7);
  }

  // A batch of two different images, with some pixels at exactly 0 and 1.
  at::Tensor random_batch(int64_t channels, int64_t h = 23, int64_t w = 17) {
    at::Tensor t = at::rand({2, channels, h, w});
    t[0][0][0][0] = 0.f;
    t[1][0][1][1] = 1.f;
    return t;
  }

  at::Tensor run(const std::string& type, const nlohmann::json& inputs, const at::Tensor& image,
                 const std::string& image_input = "image") {
    given[0] = image;
    nlohmann::json node_inputs = inputs;
    node_inputs[image_input] = {"1", 0};
    nlohmann::json graph = {{"1", {{"class_type", "Given"}}},
                            {"2", {{"class_type", type}, {"inputs", node_inputs}}},
                            {"3", {{"class_type", "Sink"}, {"inputs", {{"value", {"2", 0}}}}}}};
    return run_graph(graph);
  }

  at::Tensor run_graph(const nlohmann::json& graph) {
    ParseResult parsed = parse_graph_json(graph);
    EXPECT_TRUE(parsed.errors.empty());
    std::vector<Issue> errors = validate(*parsed.graph, *registry);
    EXPECT_TRUE(errors.empty()) << errors.front().to_string();
    RunReport report = executor.run(*parsed.graph, options);
    if (!report.failures.empty()) last_error = report.failures[0].message;
    if (!report.success) return {};
    const Value& out = report.outputs.at("3")[0];
    if (!out.is_list()) return out.as_tensor();
    // A list (RebatchImages' batches: the Sink ran once on each): one batch.
    std::vector<at::Tensor> batches;
    for (const Value& v : out.as_list()) batches.push_back(v.as_tensor());
    return at::cat(batches, 0);
  }

  // Runs the filter on 1- and 3-channel batches and compares every image
  // with `reference` within `tolerance` (largest absolute difference).
  void check(const std::string& type, const nlohmann::json& inputs, const Reference& reference, double tolerance,
             std::vector<int64_t> channel_counts = {1, 3}) {
    for (int64_t channels : channel_counts) check_on(random_batch(channels), type, inputs, reference, tolerance);
  }

  // check() on a given batch.
  void check_on(const at::Tensor& batch, const std::string& type, const nlohmann::json& inputs,
                const Reference& reference, double tolerance) {
    const int64_t channels = batch.size(1);
    at::Tensor out = run(type, inputs, batch);
    ASSERT_TRUE(out.defined()) << type << ": " << last_error;
    EXPECT_GE(out.min().item<float>(), 0.f) << type;
    EXPECT_LE(out.max().item<float>(), 1.f) << type;
    ASSERT_EQ(out.size(0), batch.size(0)) << type;
    for (int64_t b = 0; b < batch.size(0); ++b) {
      cv::Mat expected = reference(to_mat(batch[b]));
      cv::Mat actual = to_mat(out[b]);
      ASSERT_EQ(actual.size(), expected.size()) << type << " channels " << channels;
      ASSERT_EQ(actual.channels(), expected.channels()) << type << " channels " << channels;
      double difference = cv::norm(actual, expected, cv::NORM_INF);
      EXPECT_LE(difference, tolerance) << type << " " << inputs.dump() << " channels " << channels << " image " << b
                                       << " of " << batch.sizes();
    }
  }

  // The shipped test card (input/test_card.png, 128 x 128) resized to h x w,
  // and mirrored: a batch of two images with long edges, flat areas and
  // gradients, which random pixels lack.
  static at::Tensor card_batch(int64_t channels, int h, int w) {
    cv::Mat card = cv::imread(std::string(COZY_SOURCE_DIR) + "/input/test_card.png", cv::IMREAD_COLOR);
    EXPECT_FALSE(card.empty());
    cv::Mat rgb, sized, values;
    cv::cvtColor(card, rgb, channels == 1 ? cv::COLOR_BGR2GRAY : cv::COLOR_BGR2RGB);
    cv::resize(rgb, sized, cv::Size(w, h), 0, 0, cv::INTER_CUBIC);
    sized.convertTo(values, CV_32F, 1 / 255.0);
    at::Tensor one = at::from_blob(values.data, {h, w, channels}, at::kFloat).permute({2, 0, 1}).clone();
    return at::stack({one, one.flip({2})});
  }

  // Runs `node` with `image` on its IMAGE inputs and `mask` on its MASK ones.
  template <class Node>
  at::Tensor run_node(const Node& node, const at::Tensor& image, const at::Tensor& mask) {
    given[0] = given[1] = image;
    given_mask = mask;
    nlohmann::json node_inputs = node.widgets;
    nlohmann::json graph = {{"3", {{"class_type", "Sink"}, {"inputs", {{"value", {"2", 0}}}}}}};
    int slot = 0;
    for (const auto& [name, link_type] : node.links) {
      const std::string id = std::to_string(10 + slot);
      graph[id] = link_type == types::MASK ? nlohmann::json{{"class_type", "GivenMask"}}
                                           : nlohmann::json{{"class_type", "Given"}, {"inputs", {{"slot", slot % 2}}}};
      node_inputs[name] = {id, 0};
      ++slot;
    }
    graph["2"] = {{"class_type", node.type}, {"inputs", node_inputs}};
    last_error.clear();
    return run_graph(graph);
  }

  // Identity settings return the input unchanged.
  void check_identity(const std::string& type, const nlohmann::json& inputs, const std::string& image_input = "image") {
    for (int64_t channels : {1, 3}) {
      at::Tensor batch = random_batch(channels);
      at::Tensor out = run(type, inputs, batch, image_input);
      ASSERT_TRUE(out.defined()) << type << ": " << last_error;
      EXPECT_TRUE(at::equal(out, batch)) << type << " " << inputs.dump() << " channels " << channels;
    }
  }

  std::string invalid(const std::string& type, const nlohmann::json& inputs) {
    nlohmann::json node_inputs = inputs;
    node_inputs["image"] = {"1", 0};
    nlohmann::json graph = {{"1", {{"class_type", "Given"}}},
                            {"2", {{"class_type", type}, {"inputs", node_inputs}}},
                            {"3", {{"class_type", "Sink"}, {"inputs", {{"value", {"2", 0}}}}}}};
    ParseResult parsed = parse_graph_json(graph);
    std::vector<Issue> errors = validate(*parsed.graph, *registry);
    return errors.empty() ? "" : errors[0].to_string();
  }

  std::shared_ptr<Registry> registry = testing::test_registry();
  Executor executor{registry};
  RunOptions options;
  at::Tensor given[2];
  at::Tensor given_mask;
  std::string last_error;
};

// ---------------------------------------------------------------- tone

TEST_F(Filters, BrightnessIsPilsBlendWithBlack) {
  check("Brightness", {{"factor", 1.7}}, [](const cv::Mat& m) { return clamp01(m * 1.7); }, 1e-6);
  check("Brightness", {{"factor", 0.3}}, [](const cv::Mat& m) { return clamp01(m * 0.3); }, 1e-6);
}

TEST_F(Filters, ContrastIsPilsBlendWithTheMeanGrey) {
  check("Contrast", {{"factor", 0.6}}, [](const cv::Mat& m) {
    double mean = cv::mean(luma_of(m))[0];
    return clamp01((m - cv::Scalar::all(mean)) * 0.6 + cv::Scalar::all(mean));
  }, 1e-5);
}

TEST_F(Filters, SaturationIsPilsBlendWithGrey) {
  check("Saturation", {{"factor", 1.8}}, [](const cv::Mat& m) {
    cv::Mat grey = widen(luma_of(m), m.channels());
    return clamp01(grey + (m - grey) * 1.8);
  }, 1e-5);
}

TEST_F(Filters, Gamma) {
  check("Gamma", {{"gamma", 2.2}}, [](const cv::Mat& m) {
    cv::Mat out;
    cv::pow(m, 1 / 2.2, out);
    return out;
  }, 1e-5);
}

// Gamma's own pow at the ends of its range: 0, subnormal and tiny inputs,
// values outside [0, 1] (clamped first), the extreme exponents, and enough
// pixels for the vector loop and its remainder.
TEST_F(Filters, GammaOfExtremeValuesIsPow) {
  const std::vector<float> values = {0.f,  1e-45f, 1e-39f, 1.17549435e-38f, 1e-30f, 1e-10f, 1e-3f,
                                     0.1f, 0.25f,  0.5f,   0.7071f,         0.75f,  0.999f, 0.9999999f,
                                     1.f,  1.5f,   -0.5f,  0.33f,           0.66f};
  at::Tensor row = at::empty({1, 1, 1, 2 * static_cast<int64_t>(values.size()) + 3});
  for (int64_t i = 0; i < row.size(3); ++i)
    row[0][0][0][i] = i < static_cast<int64_t>(values.size()) ? values[static_cast<std::size_t>(i)]
                                                              : static_cast<float>(i % 17) / 16.f;
  for (double gamma : {0.01, 0.1, 1 / 2.2, 2.2, 10.0}) {
    at::Tensor out = run("Gamma", {{"gamma", gamma}}, row);
    ASSERT_TRUE(out.defined()) << last_error;
    for (int64_t i = 0; i < row.size(3); ++i) {
      const double x = std::clamp(static_cast<double>(row[0][0][0][i].item<float>()), 0.0, 1.0);
      const double expected = std::pow(x, 1 / gamma);
      EXPECT_NEAR(out[0][0][0][i].item<float>(), expected, 1e-6 + 1e-5 * expected) << "gamma " << gamma << " x " << x;
    }
  }
}

TEST_F(Filters, LevelsWithGivenPoints) {
  check("Levels", {{"black", 0.1}, {"white", 0.8}, {"gamma", 1.5}}, [](const cv::Mat& m) {
    cv::Mat out = clamp01((m - cv::Scalar::all(0.1)) / 0.7);
    cv::pow(out, 1 / 1.5, out);
    return out;
  }, 1e-5);
}

TEST_F(Filters, LevelsAutoUsesPercentilesOfTheLuma) {
  check("Levels", {{"auto", true}, {"low_percentile", 5.0}, {"high_percentile", 90.0}}, [](const cv::Mat& m) {
    cv::Mat grey = luma_of(m).reshape(1, 1);
    std::vector<float> values(grey.begin<float>(), grey.end<float>());
    std::sort(values.begin(), values.end());
    auto percentile = [&](double p) {  // linear interpolation, as numpy and torch
      double position = p * (values.size() - 1);
      std::size_t below = static_cast<std::size_t>(std::floor(position));
      std::size_t above = std::min(below + 1, values.size() - 1);
      return values[below] + (position - below) * (values[above] - values[below]);
    };
    double black = percentile(0.05), white = percentile(0.90);
    return clamp01((m - cv::Scalar::all(black)) / (white - black));
  }, 1e-4);
}

TEST_F(Filters, HueShiftRotatesOpenCVsHue) {
  check("HueShift", {{"degrees", 75.0}}, [](const cv::Mat& m) {
    cv::Mat hsv, out;
    cv::cvtColor(m, hsv, cv::COLOR_RGB2HSV);
    for (auto it = hsv.begin<cv::Vec3f>(); it != hsv.end<cv::Vec3f>(); ++it) (*it)[0] = std::fmod((*it)[0] + 75.f, 360.f);
    cv::cvtColor(hsv, out, cv::COLOR_HSV2RGB);
    return clamp01(out);
  }, 1e-4, {3});
  check("HueShift", {{"degrees", 75.0}}, [](const cv::Mat& m) { return m.clone(); }, 0, {1});
}

TEST_F(Filters, ColorBalanceMultipliesEachChannel) {
  check("ColorBalance", {{"red", 1.2}, {"green", 0.8}, {"blue", 1.5}},
        [](const cv::Mat& m) { return clamp01(m.mul(cv::Scalar(1.2, 0.8, 1.5))); }, 1e-6, {3});
  check("ColorBalance", {{"red", 1.2}, {"green", 0.8}, {"blue", 1.5}},
        [](const cv::Mat& m) { return clamp01(m * ((1.2 + 0.8 + 1.5) / 3)); }, 1e-6, {1});
}

TEST_F(Filters, Invert) {
  check("Invert", nlohmann::json::object(), [](const cv::Mat& m) { return cv::Mat(cv::Scalar::all(1.0) - m); }, 1e-7);
}

TEST_F(Filters, GrayscaleIsOpenCVsRgb2Gray) {
  check("Grayscale", nlohmann::json::object(), [](const cv::Mat& m) { return luma_of(m); }, 1e-6);
  check("Grayscale", {{"keep_channels", true}}, [](const cv::Mat& m) { return widen(luma_of(m), 3); }, 1e-6, {3});
}

TEST_F(Filters, ThresholdIsOpenCVsBinaryThreshold) {
  check("Threshold", {{"threshold", 0.4}}, [](const cv::Mat& m) {
    cv::Mat out;
    cv::threshold(m, out, 0.4, 1.0, cv::THRESH_BINARY);
    return out;
  }, 0);
}

TEST_F(Filters, SepiaIsTheSepiaMatrix) {
  check("Sepia", {{"strength", 0.7}}, [](const cv::Mat& m) {
    cv::Mat rgb = m.channels() == 1 ? widen(m, 3) : m.clone(), sepia;
    cv::Matx33f matrix(0.393f, 0.769f, 0.189f, 0.349f, 0.686f, 0.168f, 0.272f, 0.534f, 0.131f);
    cv::transform(rgb, sepia, matrix);
    sepia = clamp01(sepia);
    return clamp01(rgb + (sepia - rgb) * 0.7);
  }, 1e-5);
}

// ---------------------------------------------------------------- detail

TEST_F(Filters, GaussianBlurMatchesOpenCV) {
  for (double sigma : {0.8, 1.5, 2.5}) {
    check("GaussianBlur", {{"sigma", sigma}}, [sigma](const cv::Mat& m) {
      cv::Mat out;
      cv::GaussianBlur(m, out, cv::Size(0, 0), sigma);
      return out;
    }, 2e-6);
  }
  // A kernel wider than the image.
  check("GaussianBlur", {{"sigma", 6.0}}, [](const cv::Mat& m) {
    cv::Mat out;
    cv::GaussianBlur(m, out, cv::Size(0, 0), 6.0);
    return out;
  }, 2e-6);
}

// An image with fewer planes than threads is blurred in bands of rows, each
// starting its ring of filtered rows anew: the seams must not show.
TEST_F(Filters, GaussianBlurInBandsMatchesOpenCV) {
  options.threads = 4;
  for (int64_t channels : {1, 3}) {
    at::Tensor image = at::rand({1, channels, 300, 70});
    for (double sigma : {0.8, 2.0}) {
      at::Tensor out = run("GaussianBlur", {{"sigma", sigma}}, image);
      ASSERT_TRUE(out.defined()) << last_error;
      cv::Mat expected;
      cv::GaussianBlur(to_mat(image[0]), expected, cv::Size(0, 0), sigma);
      EXPECT_LE(cv::norm(to_mat(out[0]), expected, cv::NORM_INF), 2e-6)
          << "sigma " << sigma << " channels " << channels;
    }
  }
}

TEST_F(Filters, SharpenIsAnUnsharpMask) {
  check("Sharpen", {{"amount", 1.5}, {"radius", 2.0}, {"threshold", 0.05}}, [](const cv::Mat& m) {
    cv::Mat blurred, detail, mask;
    cv::GaussianBlur(m, blurred, cv::Size(0, 0), 2.0);
    detail = m - blurred;
    cv::Mat magnitude = cv::abs(detail);
    cv::threshold(magnitude, mask, 0.05 - 1e-9, 1.0, cv::THRESH_BINARY);  // |d| >= threshold
    return clamp01(m + detail.mul(mask) * 1.5);
  }, 1e-5);
}

TEST_F(Filters, MedianDenoiseIsOpenCVsMedianBlur) {
  for (const char* size : {"3", "5"}) {
    check("MedianDenoise", {{"size", size}}, [size](const cv::Mat& m) {
      cv::Mat out;
      cv::medianBlur(m, out, std::stoi(size));
      return out;
    }, 0);
  }
}

TEST_F(Filters, BilateralDenoiseIsOpenCVsBilateralFilter) {
  // OpenCV reads the colour weights from a table (4096 steps a channel,
  // interpolated); the tensor path (other devices) computes them: 3.6e-7 at
  // most apart in these cases.
  struct Case {
    int diameter;
    double sigma_color, sigma_space;
  };
  for (Case c : {Case{5, 0.2, 2.0}, Case{9, 0.05, 4.0}, Case{1, 1.0, 0.5}}) {
    check(
        "BilateralDenoise", {{"diameter", c.diameter}, {"sigma_color", c.sigma_color}, {"sigma_space", c.sigma_space}},
        [c](const cv::Mat& m) {
          cv::Mat out;
          cv::bilateralFilter(m, out, c.diameter, c.sigma_color, c.sigma_space);
          return out;
        },
        1e-6);
  }
}

cv::Mat clahe_reference(const cv::Mat& m, double clip_limit, int tiles) {
  auto clahe = cv::createCLAHE(clip_limit, cv::Size(tiles, tiles));
  cv::Mat deep, equalised, out;
  if (m.channels() == 1) {
    m.convertTo(deep, CV_16U, 65535.0);
    clahe->apply(deep, equalised);
    equalised.convertTo(out, CV_32F, 1 / 65535.0);
    return out;
  }
  cv::Mat lab;
  cv::cvtColor(m, lab, cv::COLOR_RGB2Lab);
  std::vector<cv::Mat> parts;
  cv::split(lab, parts);
  parts[0].convertTo(deep, CV_16U, 65535.0 / 100);
  clahe->apply(deep, equalised);
  equalised.convertTo(parts[0], CV_32F, 100 / 65535.0);
  cv::merge(parts, lab);
  cv::cvtColor(lab, out, cv::COLOR_Lab2RGB);
  return clamp01(out);
}

TEST_F(Filters, ClaheIsOpenCVsClaheOnLightness) {
  check(
      "CLAHE", {{"clip_limit", 3.0}, {"tiles", 4}}, [](const cv::Mat& m) { return clahe_reference(m, 3.0, 4); }, 1e-5);
}

// On the test card, sides that divide by the tiles and sides that
// do not (OpenCV extends the image then), clip limits from 0.1 to 40:
// OpenCV's result to the bit on the CPU path (OpenCV) and on the tensor path
// (COZY_POSTPROCESS_TENSOR_OPS=1: the device's equalisation, run on the CPU).
TEST_F(Filters, ClaheOnTheTestCardIsOpenCVsToTheBit) {
  for (const auto& [h, w] : {std::pair{128, 128}, std::pair{150, 200}, std::pair{37, 61}})
    for (int64_t channels : {1, 3})
      for (const auto& [clip, tiles] :
           {std::pair{2.0, 8}, std::pair{40.0, 3}, std::pair{0.1, 16}, std::pair{3.0, 1}, std::pair{1.0, 12}})
        check_on(
            card_batch(channels, h, w), "CLAHE", {{"clip_limit", clip}, {"tiles", tiles}},
            [clip = clip, tiles = tiles](const cv::Mat& m) { return clahe_reference(m, clip, tiles); }, 0);
}

// OpenCV's Canny on the 8-bit luma, edges 1: the node's definition.
Reference canny_reference(double low, double high) {
  return [low, high](const cv::Mat& m) {
    cv::Mat bytes, edges, out;
    luma_of(m).convertTo(bytes, CV_8U, 255.0);
    cv::Canny(bytes, edges, low * 255, high * 255, 3, false);
    edges.convertTo(out, CV_32F, 1 / 255.0);
    return out;
  };
}

// Canny on the same images: long edges (hysteresis along chains), flat
// areas, thresholds given either way round, both paths to the bit.
TEST_F(Filters, CannyOnTheTestCardIsOpenCVsToTheBit) {
  for (const auto& [h, w] : {std::pair{128, 128}, std::pair{150, 200}, std::pair{256, 192}})
    for (int64_t channels : {1, 3})
      for (const auto& [low, high] :
           {std::pair{0.1, 0.3}, std::pair{0.02, 0.08}, std::pair{0.5, 0.2}, std::pair{0.0, 0.0}, std::pair{0.01, 0.9}})
        check_on(card_batch(channels, h, w), "EdgeDetect", {{"method", "canny"}, {"low", low}, {"high", high}},
                 canny_reference(low, high), 0);
}

// A faint spiral band, 7 turns, with one bright dot where it ends: only the
// dot's edges are strong, and hysteresis has to follow the faint edges all
// the way round (about 4000 pixels, one chain) to keep them.
TEST_F(Filters, CannyFollowsALongFaintChainFromOneStrongEnd) {
  cv::Mat image(160, 160, CV_32F, cv::Scalar(0));
  std::vector<cv::Point> spiral;
  for (double t = 2 * CV_PI; t < 16 * CV_PI; t += 0.01)
    spiral.emplace_back(80 + static_cast<int>(std::lround(t * 1.5 * std::cos(t))),
                        80 + static_cast<int>(std::lround(t * 1.5 * std::sin(t))));
  cv::polylines(image, spiral, false, cv::Scalar(0.15), 3);
  cv::Mat faint_only = image.clone();
  cv::circle(image, spiral.back(), 4, cv::Scalar(1.0), cv::FILLED);
  const at::Tensor one = at::from_blob(image.data, {1, 1, 160, 160}, at::kFloat).clone();
  const nlohmann::json inputs = {{"method", "canny"}, {"low", 0.05}, {"high", 0.9}};
  const Reference reference = canny_reference(0.05, 0.9);
  ASSERT_EQ(cv::countNonZero(reference(faint_only)), 0) << "without the dot no edge is strong";
  const cv::Mat expected = reference(image);
  ASSERT_GT(cv::countNonZero(expected), 3000) << "OpenCV keeps the faint spiral through the dot";
  check_on(at::cat({one, one.flip({3})}), "EdgeDetect", inputs, reference, 0);
}

TEST_F(Filters, SobelEdgesMatchOpenCVsSobel) {
  check("EdgeDetect", {{"method", "sobel"}}, [](const cv::Mat& m) {
    cv::Mat grey = luma_of(m), dx, dy, magnitude;
    cv::Sobel(grey, dx, CV_32F, 1, 0, 3);
    cv::Sobel(grey, dy, CV_32F, 0, 1, 3);
    cv::magnitude(dx, dy, magnitude);
    return clamp01(magnitude / 4);
  }, 1e-5);
}

TEST_F(Filters, CannyEdgesAreOpenCVsCanny) {
  check("EdgeDetect", {{"method", "canny"}, {"low", 0.2}, {"high", 0.5}}, canny_reference(0.2, 0.5), 0);
}

// ---------------------------------------------------------------- geometry

cv::Mat cv_resize(const cv::Mat& m, int w, int h, int interpolation) {
  cv::Mat out;
  cv::resize(m, out, cv::Size(w, h), 0, 0, interpolation);
  return clamp01(out);
}

TEST_F(Filters, ResizeMatchesOpenCV) {
  struct Case {
    const char* method;
    int interpolation;
    double tolerance;
  };
  // OpenCV computes bicubic and lanczos weights in single precision and, for
  // bicubic, treats the border differently: a few 1e-3 at the edge.
  for (Case c : {Case{"nearest", cv::INTER_NEAREST, 0}, Case{"bilinear", cv::INTER_LINEAR, 2e-6},
                 Case{"bicubic", cv::INTER_CUBIC, 5e-2}, Case{"lanczos", cv::INTER_LANCZOS4, 1e-6},
                 Case{"area", cv::INTER_AREA, 1e-6}}) {
    for (auto [w, h] : {std::pair{31, 40}, std::pair{11, 9}}) {
      check("Resize", {{"width", w}, {"height", h}, {"method", c.method}},
            [&](const cv::Mat& m) { return cv_resize(m, w, h, c.interpolation); }, c.tolerance);
    }
  }
}

TEST_F(Filters, BicubicMatchesOpenCVAwayFromTheBorder) {
  at::Tensor batch = random_batch(3, 24, 20);
  at::Tensor out = run("Resize", {{"width", 50}, {"height", 60}, {"method", "bicubic"}}, batch);
  cv::Mat expected = cv_resize(to_mat(batch[0]), 50, 60, cv::INTER_CUBIC);
  cv::Mat actual = to_mat(out[0]);
  cv::Rect inside(6, 6, 38, 48);
  EXPECT_LE(cv::norm(actual(inside), expected(inside), cv::NORM_INF), 1e-5);
}

TEST_F(Filters, AreaByAWholeFactorIsTheBlockMean) {
  at::Tensor batch = random_batch(3, 24, 16);
  at::Tensor out = run("Resize", {{"width", 8}, {"height", 12}, {"method", "area"}}, batch);
  EXPECT_LE(cv::norm(to_mat(out[1]), cv_resize(to_mat(batch[1]), 8, 12, cv::INTER_AREA), cv::NORM_INF), 1e-6);
}

TEST_F(Filters, ResizeKeepsTheAspectWhenOneSideIs0) {
  at::Tensor out = run("Resize", {{"width", 34}, {"height", 0}}, random_batch(1, 23, 17));
  EXPECT_EQ(out.sizes(), (at::IntArrayRef{2, 1, 46, 34}));
  EXPECT_EQ(invalid("Resize", {{"width", -1}}), "node 2 (Resize), input 'width': -1 is out of range [0, 16384]");
  EXPECT_FALSE(run("Resize", {{"width", 0}, {"height", 0}}, random_batch(1)).defined());
  EXPECT_EQ(last_error, "width and height cannot both be 0");
}

TEST_F(Filters, UpscaleByAFactor) {
  check("Upscale", {{"factor", 2.0}, {"method", "bilinear"}},
        [](const cv::Mat& m) { return cv_resize(m, m.cols * 2, m.rows * 2, cv::INTER_LINEAR); }, 2e-6);
  check("Upscale", {{"factor", 1.5}, {"method", "lanczos"}},
        [](const cv::Mat& m) { return cv_resize(m, 26, 35, cv::INTER_LANCZOS4); }, 1e-6);
}

TEST_F(Filters, CropIsARegionOfInterest) {
  check("Crop", {{"x", 3}, {"y", 5}, {"width", 10}, {"height", 7}},
        [](const cv::Mat& m) { return m(cv::Rect(3, 5, 10, 7)).clone(); }, 0);
  // A view, as ComfyUI's ImageCrop: the pixels stay where they are.
  at::Tensor batch = random_batch(3);
  at::Tensor view = run("Crop", {{"x", 3}, {"y", 5}, {"width", 10}, {"height", 7}}, batch);
  ASSERT_TRUE(view.defined()) << last_error;
  EXPECT_TRUE(view.is_alias_of(batch));
  EXPECT_EQ(view.data_ptr<float>(), batch.data_ptr<float>() + 5 * 17 + 3);
  EXPECT_FALSE(run("Crop", {{"x", 10}, {"y", 0}, {"width", 10}, {"height", 5}}, random_batch(3)).defined());
  EXPECT_EQ(last_error, "x + width = 20 exceeds the image width 17");
  EXPECT_FALSE(run("Crop", {{"x", 0}, {"y", 20}, {"width", 5}, {"height", 5}}, random_batch(3)).defined());
  EXPECT_EQ(last_error, "y + height = 25 exceeds the image height 23");
}

TEST_F(Filters, PadIsOpenCVsCopyMakeBorder) {
  struct Case {
    const char* mode;
    int border;
  };
  // Borders narrower and wider than a vector, and none (on several threads,
  // where bands of rows start inside a plane: EveryImageNodeGivesOne...).
  for (Case c : {Case{"constant", cv::BORDER_CONSTANT}, Case{"reflect", cv::BORDER_REFLECT_101},
                 Case{"replicate", cv::BORDER_REPLICATE}}) {
    for (std::array<int, 4> p : {std::array<int, 4>{3, 1, 0, 5}, std::array<int, 4>{9, 2, 16, 0}}) {
      check(
          "Pad", {{"left", p[0]}, {"top", p[1]}, {"right", p[2]}, {"bottom", p[3]}, {"mode", c.mode}, {"value", 0.25}},
          [&](const cv::Mat& m) {
            cv::Mat out;
            cv::copyMakeBorder(m, out, p[1], p[3], p[0], p[2], c.border, cv::Scalar::all(0.25));
            return out;
          },
          0);
    }
  }
  EXPECT_FALSE(run("Pad", {{"left", 17}, {"mode", "reflect"}}, random_batch(1)).defined());
  EXPECT_EQ(last_error, "reflect padding must be narrower than the image (17 x 23)");
}

cv::Mat cv_rotate(const cv::Mat& m, double degrees, bool expand, double fill) {
  const double a = degrees * M_PI / 180;
  int w = m.cols, h = m.rows, out_w = w, out_h = h;
  if (expand) {
    out_w = static_cast<int>(std::ceil(std::abs(w * std::cos(a)) + std::abs(h * std::sin(a)) - 1e-9));
    out_h = static_cast<int>(std::ceil(std::abs(w * std::sin(a)) + std::abs(h * std::cos(a)) - 1e-9));
  }
  cv::Mat matrix = cv::getRotationMatrix2D(cv::Point2f((w - 1) / 2.f, (h - 1) / 2.f), degrees, 1.0);
  matrix.at<double>(0, 2) += (out_w - 1) / 2.0 - (w - 1) / 2.0;
  matrix.at<double>(1, 2) += (out_h - 1) / 2.0 - (h - 1) / 2.0;
  cv::Mat out;
  cv::warpAffine(m, out, matrix, cv::Size(out_w, out_h), cv::INTER_LINEAR, cv::BORDER_CONSTANT, cv::Scalar::all(fill));
  return out;
}

TEST_F(Filters, RotateMatchesOpenCVsWarpAffine) {
  // Both paths compute warpAffine's own fixed-point positions (1/32 of a
  // pixel) and weights: the same to the last bit or two.
  for (double degrees : {30.0, -20.0, 37.0})
    for (bool expand : {false, true})
      check(
          "Rotate", {{"degrees", degrees}, {"expand", expand}, {"fill", 0.25}},
          [&](const cv::Mat& m) { return clamp01(cv_rotate(m, degrees, expand, 0.25)); }, 1e-7);
}

TEST_F(Filters, RotateOfThinAndWideImagesMatchesOpenCV) {
  // The edges of the warp: images of one row or column (no pixel has its four
  // taps inside), 2 x 2, and rows wider than the chunk of a row warped at once
  // (2048): warpAffine's own positions, the same to the bit on both paths.
  const double tolerance = 1e-7;
  for (auto [h, w] : std::vector<std::pair<int64_t, int64_t>>{{1, 9}, {9, 1}, {2, 2}, {3, 2100}})
    for (int64_t channels : {1, 3})
      for (bool expand : {false, true}) {
        at::Tensor batch = at::rand({2, channels, h, w});
        at::Tensor out = run("Rotate", {{"degrees", 37.0}, {"expand", expand}, {"fill", 0.25}}, batch);
        ASSERT_TRUE(out.defined()) << last_error;
        for (int64_t b = 0; b < 2; ++b) {
          cv::Mat expected = clamp01(cv_rotate(to_mat(batch[b]), 37.0, expand, 0.25));
          cv::Mat actual = to_mat(out[b]);
          ASSERT_EQ(actual.size(), expected.size()) << h << " x " << w;
          EXPECT_LE(cv::norm(actual, expected, cv::NORM_INF), tolerance)
              << h << " x " << w << ", " << channels << " channels, expand " << expand;
        }
      }
}

TEST_F(Filters, RotateByQuarterTurnsIsExact) {
  check("Rotate", {{"degrees", 90.0}, {"expand", true}}, [](const cv::Mat& m) {
    cv::Mat out;
    cv::rotate(m, out, cv::ROTATE_90_COUNTERCLOCKWISE);
    return out;
  }, 0);
  check("Rotate", {{"degrees", -180.0}}, [](const cv::Mat& m) {
    cv::Mat out;
    cv::rotate(m, out, cv::ROTATE_180);
    return out;
  }, 0);
}

TEST_F(Filters, FlipIsOpenCVsFlip) {
  for (auto [direction, code] : {std::pair{"horizontal", 1}, std::pair{"vertical", 0}, std::pair{"both", -1}}) {
    check("Flip", {{"direction", direction}}, [code = code](const cv::Mat& m) {
      cv::Mat out;
      cv::flip(m, out, code);
      return out;
    }, 0);
  }
}

// A batch larger than the last-level cache (32 MiB here): Pad and Flip
// write it with non-temporal stores (kernels::streams), which the small
// images above never do.
TEST_F(Filters, PadAndFlipOfABatchLargerThanTheCache) {
  // 37.6 MB, odd rows (every alignment); then a view of it (a crop, rows
  // apart: read in place, with prefetching).
  const at::Tensor whole = at::rand({12, 3, 512, 511});
  for (const at::Tensor& batch : {whole, whole.narrow(2, 1, 510).narrow(3, 3, 507)}) {
    for (auto [direction, dims] :
         {std::pair{"horizontal", std::vector<int64_t>{3}}, std::pair{"vertical", std::vector<int64_t>{2}},
          std::pair{"both", std::vector<int64_t>{2, 3}}}) {
      at::Tensor out = run("Flip", {{"direction", direction}}, batch);
      ASSERT_TRUE(out.defined()) << last_error;
      EXPECT_TRUE(at::equal(out, batch.flip(dims))) << direction << (batch.is_contiguous() ? "" : ", a view");
    }
    at::Tensor padded = run("Pad", {{"left", 5}, {"top", 2}, {"right", 16}, {"bottom", 1}, {"mode", "reflect"}}, batch);
    ASSERT_TRUE(padded.defined()) << last_error;
    EXPECT_TRUE(at::equal(padded, at::reflection_pad2d(batch.contiguous(), {5, 16, 2, 1})));
  }
}

TEST_F(Filters, BlendModesWithOpacityAndMask) {
  for (int64_t channels : {1, 3}) {
    at::Tensor base = random_batch(channels), layer = random_batch(channels);
    given_mask = at::rand({2, 1, 23, 17});
    given[1] = layer;
    for (const char* mode : {"normal", "multiply", "screen", "overlay"}) {
      for (bool with_mask : {false, true}) {
        nlohmann::json inputs = {{"mode", mode}, {"opacity", 0.6}, {"layer", {"4", 0}}};
        if (with_mask) inputs["mask"] = {"5", 0};
        given[0] = base;
        nlohmann::json graph = {{"1", {{"class_type", "Given"}}},
                                {"4", {{"class_type", "Given"}, {"inputs", {{"slot", 1}}}}},
                                {"5", {{"class_type", "GivenMask"}}},
                                {"2", {{"class_type", "Blend"}, {"inputs", inputs}}},
                                {"3", {{"class_type", "Sink"}, {"inputs", {{"value", {"2", 0}}}}}}};
        graph["2"]["inputs"]["base"] = {"1", 0};
        at::Tensor out = run_graph(graph);
        ASSERT_TRUE(out.defined()) << last_error;
        for (int64_t b = 0; b < 2; ++b) {
          cv::Mat B = to_mat(base[b]), L = to_mat(layer[b]), blended;
          cv::Mat ones(B.size(), B.type(), cv::Scalar::all(1.0));
          std::string m = mode;
          if (m == "normal") blended = L;
          else if (m == "multiply") blended = B.mul(L);
          else if (m == "screen") blended = ones - (ones - B).mul(ones - L);
          else {
            cv::Mat low = 2 * B.mul(L), high = ones - 2 * (ones - B).mul(ones - L), dark;
            cv::compare(B, cv::Scalar::all(0.5), dark, cv::CMP_LT);
            blended = high.clone();
            low.copyTo(blended, dark);
          }
          cv::Mat alpha(B.size(), B.type(), cv::Scalar::all(0.6));
          if (with_mask) alpha = widen(to_mat(given_mask[b]), B.channels()) * 0.6;
          cv::Mat expected = clamp01(B + alpha.mul(blended - B));
          EXPECT_LE(cv::norm(to_mat(out[b]), expected, cv::NORM_INF), 1e-5) << mode << " mask " << with_mask;
        }
      }
    }
  }
}

TEST_F(Filters, ChannelToMaskAndBack) {
  for (auto [channel, index] : {std::pair{"red", 0}, std::pair{"green", 1}, std::pair{"blue", 2}}) {
    check("ChannelToMask", {{"channel", channel}}, [index = index](const cv::Mat& m) {
      cv::Mat out;
      cv::extractChannel(m, out, m.channels() == 1 ? 0 : index);
      return out;
    }, 0);
  }
  check("ChannelToMask", {{"channel", "luma"}}, [](const cv::Mat& m) { return luma_of(m); }, 1e-6);
  given_mask = at::rand({2, 1, 23, 17});
  nlohmann::json graph = {{"1", {{"class_type", "GivenMask"}}},
                          {"2", {{"class_type", "MaskToImage"}, {"inputs", {{"mask", {"1", 0}}}}}},
                          {"3", {{"class_type", "Sink"}, {"inputs", {{"value", {"2", 0}}}}}}};
  at::Tensor image = run_graph(graph);
  ASSERT_EQ(image.sizes(), (at::IntArrayRef{2, 3, 23, 17}));
  EXPECT_TRUE(at::equal(image.select(1, 2), given_mask.select(1, 0)));
}

// ---------------------------------------------------------------- contract

TEST_F(Filters, IdentitySettingsReturnTheInputUnchanged) {
  check_identity("Brightness", {{"factor", 1.0}});
  check_identity("Contrast", {{"factor", 1.0}});
  check_identity("Saturation", {{"factor", 1.0}});
  check_identity("Gamma", {{"gamma", 1.0}});
  check_identity("HueShift", {{"degrees", 0.0}});
  check_identity("GaussianBlur", {{"sigma", 0.0}});
  check_identity("Sharpen", {{"amount", 0.0}});
  check_identity("Resize", {{"width", 17}, {"height", 23}, {"method", "bicubic"}});
  check_identity("Upscale", {{"factor", 1.0}, {"method", "lanczos"}});
  check_identity("Rotate", {{"degrees", 0.0}});
  check_identity("Rotate", {{"degrees", 360.0}});
  check_identity("Pad", nlohmann::json::object());
  check_identity("Crop", {{"width", 17}, {"height", 23}});
  check_identity("Blend", {{"opacity", 0.0}, {"layer", {"1", 0}}}, "base");
}

TEST_F(Filters, LevelsAndColorBalanceIdentityWithinRounding) {
  check("Levels", nlohmann::json::object(), [](const cv::Mat& m) { return m.clone(); }, 1e-6);
  check("ColorBalance", nlohmann::json::object(), [](const cv::Mat& m) { return m.clone(); }, 0);
}

TEST_F(Filters, OutOfRangeParametersAreValidationErrors) {
  EXPECT_EQ(invalid("Brightness", {{"factor", -0.5}}),
            "node 2 (Brightness), input 'factor': -0.5 is out of range [0, 10]");
  EXPECT_EQ(invalid("GaussianBlur", {{"sigma", 100}}), "node 2 (GaussianBlur), input 'sigma': 100 is out of range [0, 64]");
  EXPECT_EQ(invalid("MedianDenoise", {{"size", "7"}}),
            "node 2 (MedianDenoise), input 'size': '7' is not among the choices: 3, 5");
  EXPECT_EQ(invalid("Resize", {{"method", "cubic"}}),
            "node 2 (Resize), input 'method': 'cubic' is not among the choices: bilinear, nearest, bicubic, area, "
            "lanczos");
  EXPECT_EQ(invalid("Gamma", {{"gamma", 0}}), "node 2 (Gamma), input 'gamma': 0 is out of range [0.01, 10]");
}

// Values on edges may be views (Crop's, an expanded grey image): every node
// that takes IMAGEs and MASKs and returns one gives on a view what it gives
// on a contiguous copy of it. Each node runs with its defaults (settings
// that change the image where the defaults would not), on 1 and 3
// channels, on three kinds of view: a crop (rows apart, read in place), a
// transpose (columns apart: copied first) and a grey plane expanded to three
// channels (one plane read three times).
// Every pure node of the plugins that makes an IMAGE or a MASK from them,
// with settings that are not the identity, and a way to run it.
struct ImageNode {
  std::string type;
  std::vector<std::pair<std::string, std::string>> links;  // input, type
  nlohmann::json widgets;
};

std::vector<ImageNode> image_nodes(const Registry& registry) {
  const std::set<std::string> harness = {"Given", "GivenMask", "Sink"};
  const std::set<std::string> widget_types = {types::INT, types::FLOAT, types::STRING, types::BOOLEAN};
  // Settings that are not the identity, for nodes whose defaults are.
  const std::map<std::string, nlohmann::json> settings = {
      {"Blend", {{"mode", "overlay"}, {"opacity", 0.7}}},
      {"ImageBlend", {{"blend_mode", "multiply"}}},
      {"ImageRotate", {{"rotation", "90 degrees"}}},
      {"ImageScaleBy", {{"scale_by", 0.5}}},
      {"RepeatImageBatch", {{"amount", 2}}},
      {"ImageCrop", {{"width", 5}, {"height", 4}, {"x", 2}, {"y", 1}}},
      {"ImagePadForOutpaint", {{"left", 8}, {"feathering", 2}}},
      {"Brightness", {{"factor", 1.5}}},
      {"ColorBalance", {{"red", 1.2}, {"blue", 0.7}}},
      {"Contrast", {{"factor", 1.5}}},
      {"Gamma", {{"gamma", 2.2}}},
      {"HueShift", {{"degrees", 90.0}}},
      {"Levels", {{"black", 0.1}, {"white", 0.9}, {"gamma", 1.2}}},
      {"Pad", {{"left", 3}, {"top", 2}, {"right", 1}, {"bottom", 4}, {"mode", "reflect"}}},
      {"Rotate", {{"degrees", 30.0}}},
      {"Saturation", {{"factor", 1.5}}}};
  std::vector<ImageNode> nodes;
  for (const std::string& type : registry.class_types()) {
    const NodeSpec& spec = *registry.find_spec(type);
    if (harness.count(type) || spec.outputs.empty() || !spec.pure ||
        (spec.outputs[0].type != types::IMAGE && spec.outputs[0].type != types::MASK))
      continue;
    bool runnable = true;
    ImageNode node{type, {}, nlohmann::json::object()};
    for (const InputSpec& in : spec.inputs) {
      if (in.type == types::IMAGE || in.type == types::MASK)
        node.links.emplace_back(in.name, in.type);
      else if (!in.choices.empty())
        node.widgets[in.name] = in.choices.front();
      else if (!widget_types.count(in.type) ||
               (in.required && std::holds_alternative<std::monostate>(in.default_value)))
        runnable = runnable && !in.required;
    }
    if (!runnable || node.links.empty()) continue;
    if (auto it = settings.find(type); it != settings.end()) node.widgets.update(it->second);
    nodes.push_back(std::move(node));
  }
  return nodes;
}

TEST_F(Filters, EveryImageNodeReadsAViewAsItsCopy) {
  struct View {
    const char* name;
    std::function<at::Tensor(int64_t channels)> make;
  };
  const std::vector<View> views = {
      {"crop",
       [](int64_t c) {
         return at::rand({2, c, 31, 29}).narrow(2, 3, 23).narrow(3, 5, 17);
       }},
      {"transpose",
       [](int64_t c) {
         return at::rand({2, c, 17, 23}).transpose(2, 3);
       }},
      {"expanded",
       [](int64_t c) {
         return at::rand({2, 1, 23, 17}).expand({2, c, 23, 17});
       }},
  };
  int checked = 0;
  for (const ImageNode& node : image_nodes(*registry)) {
    const std::string& type = node.type;
    for (int64_t channels : {1, 3}) {
      for (const View& kind : views) {
        at::Tensor view = kind.make(channels), mask = kind.make(1);
        if (view.is_contiguous()) continue;  // one grey plane "expanded" to one channel
        at::Tensor expected = run_node(node, view.contiguous(), mask.contiguous());
        const std::string expected_error = last_error;
        at::Tensor actual = run_node(node, view, mask);
        if (!expected.defined()) {  // the node refuses this input: it must refuse the view alike
          EXPECT_FALSE(actual.defined()) << type << " on a " << kind.name;
          EXPECT_EQ(last_error, expected_error) << type << " on a " << kind.name;
          continue;
        }
        ASSERT_TRUE(actual.defined()) << type << " on a " << kind.name << ": " << last_error;
        // The kernels ran (but for the nodes that pass a colour image on as it is).
        if (kind.name != std::string("expanded") && channels == 3 && type != "ImageBatch" &&
            type != "SplitImageWithAlpha" && type != "RebatchImages") {
          EXPECT_FALSE(expected.sizes() == view.sizes() && at::equal(expected, view.contiguous())) << type;
        }
        ASSERT_EQ(actual.sizes(), expected.sizes()) << type << " on a " << kind.name;
        EXPECT_TRUE(at::allclose(actual, expected, 0, 1e-6))
            << type << " on a " << kind.name << " of " << channels << " channels: largest difference "
            << (actual - expected).abs().max().item<float>();
        ++checked;
      }
    }
  }
  EXPECT_GE(checked, 3 * 26) << "nodes checked on views";
}

// The plugin's loops hand out pieces of their work to whichever thread asks
// first (run_parallel): the result must not depend on which thread did what,
// nor on how many there were. Every image node on 1 and on 3 threads (more
// than this machine's cores, so that workers start late), on a batch large
// enough for many pieces and on a view of it, several runs in a row.
TEST_F(Filters, EveryImageNodeGivesOneResultOnAnyThreadCount) {
  // LibTorch's own operations (the tensor path) split work by thread count
  // too, and its vectorised pow differs from its scalar one in the last bit.
  const bool exact = !std::getenv("COZY_POSTPROCESS_TENSOR_OPS");
  const at::Tensor batch = at::rand({4, 3, 150, 230}), mask = at::rand({4, 1, 150, 230});
  const at::Tensor crop = batch.narrow(2, 7, 130).narrow(3, 9, 200),
                   crop_mask = mask.narrow(2, 7, 130).narrow(3, 9, 200);
  int checked = 0;
  for (const ImageNode& node : image_nodes(*registry)) {
    for (int64_t channels : {1, 3}) {
      for (bool view : {false, true}) {
        const at::Tensor image = (view ? crop : batch).narrow(1, 0, channels), m = view ? crop_mask : mask;
        options.threads = 1;
        const at::Tensor expected = run_node(node, image, m);
        if (!expected.defined()) continue;  // refused alike below is not the point here
        options.threads = 3;
        for (int repeat = 0; repeat < 3; ++repeat) {
          const at::Tensor actual = run_node(node, image, m);
          ASSERT_TRUE(actual.defined()) << node.type << ": " << last_error;
          EXPECT_TRUE(exact ? at::equal(actual, expected) : at::allclose(actual, expected, 0, 1e-6))
              << node.type << " on " << channels << " channels" << (view ? ", a view" : "") << ": largest difference "
              << (actual - expected).abs().max().item<float>();
        }
        ++checked;
      }
    }
  }
  options.threads = 1;
  EXPECT_GE(checked, 4 * 26) << "nodes checked";
}

TEST_F(Filters, EveryFilterKeepsValuesInRangeOnExtremeInput) {
  at::Tensor extreme = (at::rand({2, 3, 23, 17}) > 0.5).to(at::kFloat);  // only 0 and 1: worst overshoot
  for (const auto& [type, inputs] : std::vector<std::pair<std::string, nlohmann::json>>{
           {"Brightness", {{"factor", 10.0}}}, {"Contrast", {{"factor", 10.0}}}, {"Saturation", {{"factor", 10.0}}},
           {"Sharpen", {{"amount", 10.0}}}, {"Resize", {{"width", 40}, {"height", 40}, {"method", "bicubic"}}},
           {"Resize", {{"width", 40}, {"height", 40}, {"method", "lanczos"}}}, {"CLAHE", {{"clip_limit", 40.0}}},
           {"Levels", {{"black", 0.4}, {"white", 0.5}}}, {"Rotate", {{"degrees", 13.0}, {"fill", 1.0}}},
           {"Sepia", nlohmann::json::object()}, {"HueShift", {{"degrees", 123.0}}}}) {
    at::Tensor out = run(type, inputs, extreme);
    ASSERT_TRUE(out.defined()) << type << ": " << last_error;
    EXPECT_GE(out.min().item<float>(), 0.f) << type;
    EXPECT_LE(out.max().item<float>(), 1.f) << type;
  }
}

// docs/filters.md shows what graphs/filter_gallery.json makes: run it and
// compare with the pictures committed in docs/images/filters.
TEST_F(Filters, GalleryIsCurrent) {
  namespace fs = std::filesystem;
  fs::path out = fs::temp_directory_path() / "cozy_gallery";
  fs::remove_all(out);
  options.input_dir = fs::path(COZY_SOURCE_DIR) / "input";
  options.output_dir = out;
  std::ifstream in(fs::path(COZY_SOURCE_DIR) / "graphs" / "filter_gallery.json");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ParseResult parsed = parse_graph(text);
  ASSERT_TRUE(parsed.graph);
  ASSERT_TRUE(validate(*parsed.graph, *registry).empty());
  RunReport report = executor.run(*parsed.graph, options);
  ASSERT_TRUE(report.success);
  std::size_t compared = 0;
  for (const auto& entry : fs::directory_iterator(out / "filters")) {
    fs::path committed = fs::path(COZY_SOURCE_DIR) / "docs" / "images" / "filters" / entry.path().filename();
    ASSERT_TRUE(fs::exists(committed)) << committed << " is missing: regenerate the gallery (docs/filters.md)";
    cv::Mat made = cv::imread(entry.path().string(), cv::IMREAD_UNCHANGED);
    cv::Mat kept = cv::imread(committed.string(), cv::IMREAD_UNCHANGED);
    ASSERT_EQ(made.size(), kept.size()) << committed;
    ASSERT_EQ(made.type(), kept.type()) << committed;
    EXPECT_LE(cv::norm(made, kept, cv::NORM_INF), 2) << committed << " differs: regenerate the gallery";
    ++compared;
  }
  EXPECT_EQ(compared, 28u);
}

}  // namespace
}  // namespace cozy::host
