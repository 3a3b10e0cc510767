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
#include <sstream>

namespace cozy {
namespace {

namespace fs = std::filesystem;
const fs::path kData = fs::path(COZY_SOURCE_DIR) / "tests" / "data" / "comfy";

nlohmann::json read_json(const fs::path& file) {
  std::ifstream in(file);
  return nlohmann::json::parse(in);
}

class ComfyNodes : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    plugin = new testing::Plugin(fs::path(COZY_PLUGIN_DIR) / "libcozy_comfy.so");
    reference = new nlohmann::json(read_json(kData / "reference.json"));
    std::ifstream in(kData / "reference.bin", std::ios::binary);
    std::ostringstream bytes;
    bytes << in.rdbuf();
    blob = new std::string(bytes.str());
  }
  static void TearDownTestSuite() {
    delete plugin;
    delete reference;
    delete blob;
  }

  static at::Tensor tensor(const std::string& name) {
    const auto& entry = (*reference)["tensors"].at(name);
    std::vector<int64_t> shape = entry["shape"].get<std::vector<int64_t>>();
    int64_t count = 1;
    for (int64_t s : shape) count *= s;
    const size_t offset = entry["offset"].get<size_t>();
    at::Tensor t = at::empty(shape, at::kFloat);
    std::memcpy(t.data_ptr<float>(), blob->data() + offset, count * sizeof(float));
    return t;
  }

  static Value widget(const nlohmann::json& v) {
    if (v.is_boolean()) return Value(v.get<bool>());
    if (v.is_number_integer()) return Value(v.get<int64_t>());
    if (v.is_number_float()) return Value(v.get<double>());
    return Value(v.get<std::string>());
  }

  static testing::Plugin* plugin;
  static nlohmann::json* reference;
  static std::string* blob;
};
testing::Plugin* ComfyNodes::plugin = nullptr;
nlohmann::json* ComfyNodes::reference = nullptr;
std::string* ComfyNodes::blob = nullptr;

// Every case the script wrote: the node's outputs equal ComfyUI's to the
// case's tolerance (float rounding of the same operations in another build
// of torch; exact for PIL's integer Lanczos, scipy's and kornia's morphology).
TEST_F(ComfyNodes, MatchComfyUIsResults) {
  at::set_num_threads(1);
  std::map<std::string, int> per_node;
  for (const auto& c : (*reference)["cases"]) {
    const std::string node = c["node"];
    std::map<std::string, Value> inputs;
    for (const auto& [name, tensor_name] : c["tensors"].items()) inputs[name] = tensor(tensor_name);
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
      at::Tensor expected = tensor(expected_names[k]);
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
                           "SplitImageWithAlpha", "JoinImageWithAlpha", "Morphology"})
    EXPECT_GT(per_node[node], 0) << node;
}

}  // namespace
}  // namespace cozy
