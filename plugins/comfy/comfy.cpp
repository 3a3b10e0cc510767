// The comfy plugin's registration, and ComfyUI's primitives, mask loaders and
// previews. See docs/comfyui.md for the nodes and how each matches ComfyUI.
#include "comfy.hpp"

#include "image_io.hpp"

namespace cozy::comfy {

namespace {

constexpr double kMaxSize = 9223372036854775807.0;  // Python's sys.maxsize, ComfyUI's bound for its primitives

NodeDef primitive(const char* type, const char* display, InputSpec input) {
  NodeDef d = NodeDef::named(type, display, "utils/primitive", "");
  input.default_value = Literal{};  // ComfyUI declares none: the graph gives the value
  d.spec.outputs = {{input.type, input.type}};
  d.spec.inputs = {std::move(input)};
  d.run = [](const Inputs& in, Context&) -> Outputs { return {in.at(0)}; };
  return d;
}

const std::vector<std::string> kImageExtensions = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"};

// A file name as ComfyUI's frontend may write it, "name.png [output]": the
// annotation names the folder, which the node already knows.
std::filesystem::path file_in(const std::string& value, const std::filesystem::path& folder, const char* annotation) {
  std::string name = value;
  const std::string suffix = std::string(" [") + annotation + "]";
  if (name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0)
    name.resize(name.size() - suffix.size());
  std::filesystem::path file(name);
  return file.is_relative() ? folder / file : file;
}

NodeDef load_image_mask() {
  NodeDef d = NodeDef::named("LoadImageMask", "Load Image (as Mask)", "mask",
                             "One channel of an image file in the input folder as a MASK: alpha as 1 - alpha (all 0 "
                             "without alpha), or red, green or blue (a grey file's one channel).");
  d.spec.inputs = {InputSpec::String("image").files_in("input", kImageExtensions),
                   InputSpec::Choice("channel", {"alpha", "red", "green", "blue"})};
  d.spec.outputs = {{"MASK", types::MASK}};
  d.spec.pure = false;  // the file can change
  d.run = [](const Inputs& in, Context& ctx) -> Outputs {
    auto loaded = image_io::read_image(file_in(in.string("image"), ctx.input_dir(), "input"));
    const std::string& channel = in.string("channel");
    at::Tensor mask;
    if (channel == "alpha") {
      mask = loaded.alpha ? 1.0 - *loaded.alpha : at::zeros({1, 1, loaded.image.size(2), loaded.image.size(3)});
    } else {
      const int64_t index = loaded.image.size(1) == 1 ? 0 : channel == "red" ? 0 : channel == "green" ? 1 : 2;
      mask = loaded.image.narrow(1, index, 1).contiguous();
    }
    return {mask.to(ctx.device())};
  };
  return d;
}

NodeDef load_image_output() {
  NodeDef d = NodeDef::named("LoadImageOutput", "Load Image (from Outputs)", "image",
                             "Load an image from the output folder. When the refresh button is clicked, the node will "
                             "update the image list and automatically select the first image, allowing for easy "
                             "iteration.");
  d.spec.inputs = {InputSpec::String("image").files_in("output", kImageExtensions)};
  d.spec.outputs = {{"IMAGE", types::IMAGE}, {"MASK", types::MASK}};
  d.spec.pure = false;
  d.run = [](const Inputs& in, Context& ctx) -> Outputs {
    auto loaded = image_io::read_image(file_in(in.string("image"), ctx.output_dir(), "output"));
    at::Tensor mask = loaded.alpha ? 1.0 - *loaded.alpha : at::zeros({1, 1, loaded.image.size(2), loaded.image.size(3)});
    return {loaded.image.to(ctx.device()), mask.to(ctx.device())};
  };
  return d;
}

NodeDef mask_preview() {
  NodeDef d = NodeDef::named("MaskPreview", "Preview Mask", "mask", "Shows the mask as a grey image (a preview).");
  d.spec.inputs = {InputSpec::Link("mask", types::MASK)};
  d.spec.output_node = true;
  d.spec.pure = false;
  d.run = [](const Inputs& in, Context& ctx) -> Outputs {
    preview(in.mask("mask"), ctx);
    return {};
  };
  return d;
}

// ComfyUI's PrimitiveBoundingBox: four INTs as one BOUNDING_BOX.
NodeDef primitive_bounding_box() {
  NodeDef d = NodeDef::named("PrimitiveBoundingBox", "Bounding Box", "utilities/primitive", "");
  d.spec.inputs = {InputSpec::Int("x", 0).range(0, kMaxResolution), InputSpec::Int("y", 0).range(0, kMaxResolution),
                   InputSpec::Int("width", 512).range(1, kMaxResolution),
                   InputSpec::Int("height", 512).range(1, kMaxResolution)};
  d.spec.outputs = {{"BOUNDING_BOX", types::BOUNDING_BOX}};
  d.run = [](const Inputs& in, Context&) -> Outputs {
    return {Value(List{in.at(0), in.at(1), in.at(2), in.at(3)})};
  };
  return d;
}

void register_nodes(Registrar& r) {
  r.add(primitive("PrimitiveString", "String", InputSpec::String("value")));
  r.add(primitive("PrimitiveStringMultiline", "String (Multiline)", InputSpec::String("value").multiline_text()));
  r.add(primitive("PrimitiveInt", "Int",
                  InputSpec::Int("value", 0).range(-kMaxSize, kMaxSize).with_ui(R"({"control_after_generate": true})")));
  r.add(primitive("PrimitiveFloat", "Float", InputSpec::Float("value", 0).range(-kMaxSize, kMaxSize)));
  r.add(primitive("PrimitiveBoolean", "Boolean", InputSpec::Boolean("value", false)));
  r.add(primitive_bounding_box());
  r.add(load_image_mask());
  r.add(load_image_output());
  r.add(mask_preview());
  register_image_nodes(r);
  register_mask_nodes(r);
  register_quantize_node(r);
}

}  // namespace

}  // namespace cozy::comfy

COZY_PLUGIN("comfy", "0.1.0", cozy::comfy::register_nodes)
