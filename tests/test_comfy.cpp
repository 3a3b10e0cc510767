// The comfy plugin: each node against ComfyUI's results (reference arrays
// made by tests/data/comfy/make_reference.py with torch, PIL, scipy and
// kornia, as ComfyUI computes them), its declarations against ComfyUI's
// (tests/data/comfy/object_info.json), and its file nodes.
#include <cozy/host/registry.hpp>
#include <cozy/testing.hpp>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include <fstream>
#include <set>
#include <sstream>

namespace cozy {
namespace {

namespace fs = std::filesystem;
const fs::path kData = fs::path(COZY_SOURCE_DIR) / "tests" / "data" / "comfy";

nlohmann::json read_json(const fs::path& file) {
  std::ifstream in(file);
  return nlohmann::json::parse(in);
}

// The reference sets: make_reference.py's (Debian's torch, PIL 9.4, scipy,
// kornia) and make_quantize_reference.py's (Pillow 13.0's quantizer).
struct ReferenceSet {
  nlohmann::json doc;
  std::string blob;

  explicit ReferenceSet(const std::string& stem) : doc(read_json(kData / (stem + ".json"))) {
    std::ifstream in(kData / (stem + ".bin"), std::ios::binary);
    std::ostringstream bytes;
    bytes << in.rdbuf();
    blob = bytes.str();
  }
  at::Tensor tensor(const std::string& name) const {
    const auto& entry = doc["tensors"].at(name);
    std::vector<int64_t> shape = entry["shape"].get<std::vector<int64_t>>();
    int64_t count = 1;
    for (int64_t s : shape) count *= s;
    const size_t offset = entry["offset"].get<size_t>();
    at::Tensor t = at::empty(shape, at::kFloat);
    std::memcpy(t.data_ptr<float>(), blob.data() + offset, count * sizeof(float));
    return t;
  }
};

class ComfyNodes : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    plugin = new testing::Plugin(fs::path(COZY_PLUGIN_DIR) / "libcozy_comfy.so");
    sets = new std::vector<ReferenceSet>{ReferenceSet("reference"), ReferenceSet("quantize")};
  }
  static void TearDownTestSuite() {
    delete plugin;
    delete sets;
  }

  static Value widget(const nlohmann::json& v) {
    if (v.is_boolean()) return Value(v.get<bool>());
    if (v.is_number_integer()) return Value(v.get<int64_t>());
    if (v.is_number_float()) return Value(v.get<double>());
    return Value(v.get<std::string>());
  }

  static testing::Plugin* plugin;
  static std::vector<ReferenceSet>* sets;
};
testing::Plugin* ComfyNodes::plugin = nullptr;
std::vector<ReferenceSet>* ComfyNodes::sets = nullptr;

// Every case the script wrote: the node's outputs equal ComfyUI's to the
// case's tolerance (float rounding of the same operations in another build
// of torch; exact for PIL's integer Lanczos, scipy's and kornia's morphology).
TEST_F(ComfyNodes, MatchComfyUIsResults) {
  at::set_num_threads(1);
  std::map<std::string, int> per_node;
  for (const ReferenceSet& set : *sets)
  for (const auto& c : set.doc["cases"]) {
    const std::string node = c["node"];
    std::map<std::string, Value> inputs;
    for (const auto& [name, tensor_name] : c["tensors"].items()) inputs[name] = set.tensor(tensor_name);
    for (const auto& [name, value] : c["widgets"].items()) inputs[name] = widget(value);
    const std::string what = node + " " + c["widgets"].dump();
    testing::FakeContext ctx;
    Outputs out;
    try {
      out = testing::run_node(plugin->node(node), inputs, ctx);
    } catch (const std::exception& e) {
      ADD_FAILURE() << what << ": " << e.what();
      continue;
    }
    const auto& expected_names = c["outputs"];
    ASSERT_EQ(out.size(), expected_names.size()) << what;
    for (size_t k = 0; k < out.size(); ++k) {
      at::Tensor expected = set.tensor(expected_names[k]);
      at::Tensor actual = out[k].as_tensor().to(at::kCPU);
      ASSERT_EQ(actual.sizes(), expected.sizes()) << what << " output " << k;
      if (expected.numel() == 0) continue;
      const double diff = (actual - expected).abs().max().item<double>();
      EXPECT_LE(diff, c["tolerance"].get<double>()) << what << " output " << k;
    }
    fs::remove_all(ctx.root());
    ++per_node[node];
  }
  // Every node of the plugin that computes pixels has cases.
  for (const char* node : {"ImageScale", "ImageScaleBy", "ImageScaleToTotalPixels", "ImageScaleToMaxDimension",
                           "ResizeAndPadImage", "ImageInvert", "ImageBlur", "ImageSharpen", "ImageBlend",
                           "ImageAddNoise", "ImageCrop", "ImagePadForOutpaint", "ImageFlip", "ImageRotate",
                           "ImageStitch", "ImageBatch", "RepeatImageBatch", "ImageFromBatch", "ImageToMask",
                           "ImageColorToMask", "SolidMask", "InvertMask", "CropMask", "MaskComposite", "FeatherMask",
                           "GrowMask", "ThresholdMask", "ImageCompositeMasked", "PorterDuffImageComposite",
                           "SplitImageWithAlpha", "JoinImageWithAlpha", "Morphology", "Canny", "ImageQuantize"})
    EXPECT_GT(per_node[node], 0) << node;
}

// ImageQuantize on an image of more colours than PIL's colour table holds
// (69632 > 65536), where PIL drops a bit of every channel to count them:
// the bytes equal Pillow's (a hash of them, made by the script).
TEST_F(ComfyNodes, QuantizeManyColoursAsPIL) {
  at::set_num_threads(1);
  at::Tensor y = at::arange(256, at::kLong).view({256, 1}).expand({256, 272});
  at::Tensor x = at::arange(272, at::kLong).view({1, 272}).expand({256, 272});
  at::Tensor bytes = at::stack({x.remainder(256), y, (7 * x + 13 * y).remainder(256)}, 0).to(at::kByte);
  at::Tensor image = (bytes.to(at::kFloat) / 255).unsqueeze(0);
  const auto& cases = (*sets)[1].doc["many_colours"];
  ASSERT_EQ(cases.size(), 3u);
  for (const auto& c : cases) {
    testing::FakeContext ctx;
    Outputs out = testing::run_node(plugin->node("ImageQuantize"),
                                    {{"image", image}, {"colors", widget(c["colors"])}, {"dither", widget(c["dither"])}}, ctx);
    at::Tensor hwc = (out[0].as_tensor() * 255).round().to(at::kByte).squeeze(0).permute({1, 2, 0}).contiguous();
    uint64_t h = 1469598103934665603ull;
    const uint8_t* p = hwc.data_ptr<uint8_t>();
    for (int64_t i = 0; i < hwc.numel(); ++i) h = (h ^ p[i]) * 1099511628211ull;
    char text[17];
    std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(h));
    EXPECT_EQ(std::string(text), c["fnv1a"].get<std::string>()) << c.dump();
    fs::remove_all(ctx.root());
  }
}

// RebatchImages takes the list of batches and gives a list: frames in
// order, batch_size at a time, a batch ending where the frame size changes;
// with an overlap, consecutive batches share frames, merged by the mode.
TEST_F(ComfyNodes, RebatchImagesRegroupsTheFramesOfAList) {
  auto frames = [](std::initializer_list<float> values, int64_t size = 2) {
    std::vector<at::Tensor> list;
    for (float v : values) list.push_back(at::full({1, 3, size, size}, v));
    return at::cat(list, 0);
  };
  auto values = [](const Value& batch) {
    std::vector<float> out;
    const at::Tensor& t = batch.as_tensor();
    for (int64_t i = 0; i < t.size(0); ++i) out.push_back(t[i][0][0][0].item<float>());
    return out;
  };
  auto rebatch = [&](List images, int64_t size, int64_t overlap, const std::string& mode) {
    testing::FakeContext ctx;
    Outputs out = testing::run_node(plugin->node("RebatchImages"),
                                    {{"images", Value(std::move(images))}, {"batch_size", Value(List{Value(size)})},
                                     {"overlap", Value(List{Value(overlap)})},
                                     {"merge_overlap_mode", Value(List{Value(mode)})}},
                                    ctx);
    std::vector<std::vector<float>> batches;
    for (const Value& b : out[0].as_list()) batches.push_back(values(b));
    return batches;
  };
  using Batches = std::vector<std::vector<float>>;
  const List three_two = {frames({1, 2, 3}), frames({4, 5})};
  EXPECT_EQ(rebatch(three_two, 2, 0, "truncate start"), (Batches{{1, 2}, {3, 4}, {5}}));
  EXPECT_EQ(rebatch(three_two, 4, 0, "truncate start"), (Batches{{1, 2, 3, 4}, {5}}));
  // A size change starts a new batch.
  EXPECT_EQ(rebatch({frames({1, 2}), frames({3}, 4), frames({4})}, 3, 0, "truncate start"),
            (Batches{{1, 2}, {3}, {4}}));
  // Overlap 1: where two inputs join, their shared frame (3 and 4) is the
  // first's, the second's, or a blend (one frame's weight is 0: the first's);
  // an input longer than a batch gives batches that repeat a frame.
  EXPECT_EQ(rebatch(three_two, 4, 1, "truncate start"), (Batches{{1, 2, 3, 5}}));
  EXPECT_EQ(rebatch(three_two, 4, 1, "truncate end"), (Batches{{1, 2, 4, 5}}));
  EXPECT_EQ(rebatch(three_two, 4, 1, "fade linear"), (Batches{{1, 2, 3, 5}}));
  EXPECT_EQ(rebatch({frames({1, 2, 3, 4, 5})}, 3, 1, "truncate start"), (Batches{{1, 2, 3}, {3, 4, 5}}));
  EXPECT_EQ(rebatch({frames({1, 2}), frames({4, 6})}, 4, 2, "fade linear"), (Batches{{1, 6}}));  // weights 0, 1
  // Three shared frames fade by 0, 1/2, 1 (smooth, 3w^2 - 2w^3: the same here).
  EXPECT_EQ(rebatch({frames({0, 0, 0}), frames({9, 9, 9})}, 4, 3, "fade smooth"), (Batches{{0, 4.5, 9}}));
  EXPECT_TRUE(rebatch({}, 2, 0, "truncate start").empty());
  testing::FakeContext ctx;
  EXPECT_THROW(testing::run_node(plugin->node("RebatchImages"),
                                 {{"images", Value(three_two)}, {"batch_size", Value(List{Value(2)})},
                                  {"overlap", Value(List{Value(2)})}, {"merge_overlap_mode", Value(List{Value("truncate start")})}},
                                 ctx),
               Error);
}

}  // namespace
}  // namespace cozy

namespace cozy {
namespace {

// Two JSON values equal as ComfyUI's frontend reads them: numbers by value.
bool same(const nlohmann::json& a, const nlohmann::json& b) {
  if (a.is_number() && b.is_number()) return a.get<double>() == b.get<double>();
  return a == b;
}

// Cozy's object_info for each node ComfyUI declares (tests/data/comfy/
// object_info.json): names, category, inputs in order with their types or
// choices, defaults, bounds and steps, outputs. Cozy may add a tooltip, the
// folder of a file input, and the first choice as a combo's default (what
// ComfyUI's frontend takes). Where Cozy differs on purpose, the difference is
// listed here and in docs/comfyui.md.
TEST(ComfyDeclarations, MatchComfyUIsObjectInfo) {
  host::Registry registry;
  registry.load_folder(COZY_PLUGIN_DIR);
  const nlohmann::json comfy = read_json(kData / "object_info.json");
  // SaveImage: Cozy's files are named cozy_NNNNN.png unless the graph says
  // otherwise, and it can write 16-bit PNGs (an optional input).
  const std::set<std::string> differ = {"SaveImage.filename_prefix.default", "SaveImage.optional"};
  int nodes = 0;
  for (const auto& [name, want] : comfy.items()) {
    if (name == "_about") continue;
    ++nodes;
    const host::RegisteredNode* node = registry.find(name);
    ASSERT_NE(node, nullptr) << name << " is not a Cozy node";
    const nlohmann::json got = host::object_info(node->def.spec);
    for (const char* key : {"display_name", "category", "output_node", "output", "output_name"})
      EXPECT_EQ(got[key], want[key]) << name << " " << key;
    for (const char* key : {"output_is_list", "is_input_list", "deprecated"})
      if (want.contains(key)) {
        EXPECT_EQ(got[key], want[key]) << name << " " << key;
      }
    EXPECT_EQ(got.value("deprecated", false), want.value("deprecated", false)) << name << " deprecated";
    for (const char* group : {"required", "optional"}) {
      const nlohmann::json none = nlohmann::json::array();
      const auto& want_order = want["input_order"].contains(group) ? want["input_order"][group] : none;
      const auto& got_order = got["input_order"].contains(group) ? got["input_order"][group] : none;
      if (differ.count(name + "." + group)) continue;
      EXPECT_EQ(got_order, want_order) << name << " " << group << " inputs";
      for (const auto& input : want_order) {
        const std::string in = input;
        if (!got["input"].contains(group) || !got["input"][group].contains(in)) continue;
        const auto& w = want["input"][group][in];
        const auto& g = got["input"][group][in];
        const bool files = w[0].is_array() && w[0].empty();  // a folder's files: whatever is there
        if (!files) {
          EXPECT_EQ(g[0], w[0]) << name << "." << in << " type";
        }
        const nlohmann::json wo = w.size() > 1 ? w[1] : nlohmann::json::object();
        const nlohmann::json go = g.size() > 1 ? g[1] : nlohmann::json::object();
        for (const auto& [key, value] : wo.items()) {
          if (differ.count(name + "." + in + "." + key)) continue;
          EXPECT_TRUE(go.contains(key) && same(go[key], value))
              << name << "." << in << "." << key << ": ComfyUI " << value.dump() << ", Cozy "
              << (go.contains(key) ? go[key].dump() : "(none)");
        }
        for (const auto& [key, value] : go.items()) {
          if (wo.contains(key) || key == "tooltip" || key == "file_folder") continue;
          const bool first_choice = key == "default" && w[0].is_array() && !w[0].empty() && value == w[0][0];
          EXPECT_TRUE(first_choice || differ.count(name + "." + in + "." + key))
              << name << "." << in << ": Cozy adds " << key << " = " << value.dump();
        }
      }
    }
  }
  EXPECT_GE(nodes, 52);
}

}  // namespace
}  // namespace cozy

namespace cozy {
namespace {

// LoadImageMask's channels; LoadImageOutput reads the output folder, the
// frontend's " [output]" annotation included; an RGBA image made by
// JoinImageWithAlpha is saved as an RGBA PNG; MaskPreview writes a preview.
TEST_F(ComfyNodes, FilesInAndOut) {
  testing::FakeContext ctx;
  cv::Mat bgra(2, 3, CV_8UC4, cv::Scalar(10, 20, 30, 255));  // B, G, R, A
  bgra.at<cv::Vec4b>(1, 2)[3] = 0;
  cv::imwrite((ctx.input_dir() / "rgba.png").string(), bgra);
  cv::imwrite((ctx.input_dir() / "grey.png").string(), cv::Mat(2, 2, CV_8UC1, cv::Scalar(51)));

  auto mask_of = [&](const std::string& file, const std::string& channel) {
    return testing::run_node(plugin->node("LoadImageMask"), {{"image", file}, {"channel", channel}}, ctx)[0].as_tensor();
  };
  at::Tensor alpha = mask_of("rgba.png", "alpha");
  EXPECT_EQ(alpha.sizes(), (at::IntArrayRef{1, 1, 2, 3}));
  EXPECT_FLOAT_EQ(alpha[0][0][1][2].item<float>(), 1.f) << "transparent: masked";
  EXPECT_FLOAT_EQ(alpha[0][0][0][0].item<float>(), 0.f);
  EXPECT_FLOAT_EQ(mask_of("rgba.png", "red")[0][0][0][0].item<float>(), 30 / 255.f);
  EXPECT_FLOAT_EQ(mask_of("rgba.png", "blue")[0][0][0][0].item<float>(), 10 / 255.f);
  EXPECT_FLOAT_EQ(mask_of("grey.png", "green")[0][0][1][1].item<float>(), 51 / 255.f) << "a grey file's one channel";
  EXPECT_FLOAT_EQ(mask_of("grey.png", "alpha").sum().item<float>(), 0.f) << "no alpha: nothing masked";

  fs::copy_file(ctx.input_dir() / "rgba.png", ctx.output_dir() / "made.png");
  Outputs loaded = testing::run_node(plugin->node("LoadImageOutput"), {{"image", "made.png [output]"}}, ctx);
  EXPECT_EQ(loaded[0].as_tensor().sizes(), (at::IntArrayRef{1, 3, 2, 3}));
  EXPECT_FLOAT_EQ(loaded[1].as_tensor()[0][0][1][2].item<float>(), 1.f);

  // Join an alpha, save: an RGBA PNG with the alpha as 1 - mask.
  at::Tensor image = at::full({1, 3, 2, 3}, 0.5f);
  at::Tensor mask = at::zeros({1, 1, 2, 3});
  mask[0][0][0][1] = 1.f;
  Outputs joined = testing::run_node(plugin->node("JoinImageWithAlpha"), {{"image", image}, {"alpha", mask}}, ctx);
  ASSERT_EQ(joined[0].as_tensor().size(1), 4);
  testing::Plugin core(fs::path(COZY_PLUGIN_DIR) / "libcozy_core.so");
  testing::run_node(core.node("SaveImage"), {{"images", joined[0]}, {"filename_prefix", "rgba"}}, ctx);
  cv::Mat png = cv::imread((ctx.output_dir() / "rgba_00001.png").string(), cv::IMREAD_UNCHANGED);
  ASSERT_EQ(png.channels(), 4);
  EXPECT_EQ(png.at<cv::Vec4b>(0, 0), cv::Vec4b(128, 128, 128, 255));
  EXPECT_EQ(png.at<cv::Vec4b>(0, 1)[3], 0) << "masked: transparent";

  // Nodes that read colour refuse RGBA, saying what to do.
  testing::Plugin post(fs::path(COZY_PLUGIN_DIR) / "libcozy_postprocess.so");
  try {
    testing::run_node(post.node("Invert"), {{"image", joined[0]}}, ctx);
    ADD_FAILURE() << "Invert took an RGBA image";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("SplitImageWithAlpha"), std::string::npos) << e.what();
  }

  ctx.files.clear();
  testing::run_node(plugin->node("MaskPreview"), {{"mask", mask}}, ctx);
  ASSERT_EQ(ctx.files.size(), 1u);
  EXPECT_EQ(ctx.files[0].second, "temp");
  EXPECT_TRUE(fs::exists(ctx.files[0].first));
  fs::remove_all(ctx.root());
}

// ImageAddNoise draws ComfyUI's noise: torch's CPU generator from the seed,
// in ComfyUI's [B, H, W, C] order; the same seed gives the same image.
TEST_F(ComfyNodes, NoiseIsReproducible) {
  testing::FakeContext ctx;
  at::Tensor image = at::full({1, 3, 4, 5}, 0.5f);
  auto noisy = [&](int64_t seed) {
    return testing::run_node(plugin->node("ImageAddNoise"), {{"image", image}, {"seed", seed}, {"strength", 0.2}}, ctx)[0]
        .as_tensor();
  };
  EXPECT_TRUE(at::equal(noisy(7), noisy(7)));
  EXPECT_FALSE(at::equal(noisy(7), noisy(8)));
  fs::remove_all(ctx.root());
}

}  // namespace
}  // namespace cozy
