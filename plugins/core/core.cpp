// The core plugin: primitives, image files in and out, grids. (ImageBatch is
// the comfy plugin's: it resizes as ComfyUI does.)
#include <cozy/sdk.hpp>

#include <sstream>

#include "image_io.hpp"

#include <ATen/ATen.h>

#include <cmath>

namespace {

using cozy::InputSpec;
using cozy::NodeDef;
using cozy::Outputs;
namespace types = cozy::types;

constexpr double kMaxInt = 9007199254740991.0;  // 2^53 - 1: exact in a double, as in JSON

NodeDef primitive(const char* type, InputSpec input, const char* description) {
  NodeDef def;
  def.spec.class_type = type;
  def.spec.category = "utils/primitive";
  def.spec.description = description;
  def.spec.outputs = {{input.type, input.type}};
  def.spec.inputs = {std::move(input)};
  def.run = [](const cozy::Inputs& in, cozy::Context&) -> Outputs { return {in.at(0)}; };
  return def;
}

NodeDef seed_node() {
  NodeDef def = primitive("Seed", InputSpec::Int("seed", 0).range(0, kMaxInt).help("seed for random number generators"),
                          "A seed for the nodes that draw random numbers.");
  def.spec.outputs = {{"seed", types::INT}};
  return def;
}

NodeDef empty_image() {
  NodeDef def;
  def.spec.class_type = "EmptyImage";
  def.spec.display_name = "Empty Image";
  def.spec.category = "image";
  def.spec.description = "A batch of images of one colour, on the run's device.";
  def.spec.inputs = {InputSpec::Int("width", 512).range(1, 16384).with_step(1),
                     InputSpec::Int("height", 512).range(1, 16384).with_step(1),
                     InputSpec::Int("batch_size", 1).range(1, 4096),
                     InputSpec::Int("color", 0).range(0, 0xFFFFFF).with_step(1).help("0xRRGGBB")};
  def.spec.outputs = {{"IMAGE", types::IMAGE}};
  def.run = [](const cozy::Inputs& in, cozy::Context& ctx) -> Outputs {
    const int64_t color = in.integer("color");
    at::Tensor rgb = at::tensor({(color >> 16 & 0xFF) / 255.0f, (color >> 8 & 0xFF) / 255.0f, (color & 0xFF) / 255.0f});
    at::Tensor image = rgb.to(ctx.device()).view({1, 3, 1, 1}).expand(
        {in.integer("batch_size"), 3, in.integer("height"), in.integer("width")});
    return {image.contiguous()};
  };
  return def;
}

NodeDef load_image() {
  NodeDef def;
  def.spec.class_type = "LoadImage";
  def.spec.display_name = "Load Image";
  def.spec.category = "image";
  def.spec.description =
      "Reads a PNG or JPEG (8 or 16 bit, grey or colour) with OpenCV. A relative name is looked up in the "
      "input folder (--input-dir). Outputs the image on the run's device, and a MASK that is 1 where the file "
      "is transparent (1 - alpha, as in ComfyUI; all 0 without alpha). Not cached: the file can change.";
  def.spec.inputs = {InputSpec::String("image")
                         .files_in("input", {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"})
                         .help("file name in the input folder, or an absolute path")};
  def.spec.outputs = {{"IMAGE", types::IMAGE}, {"MASK", types::MASK}};
  def.spec.pure = false;
  def.run = [](const cozy::Inputs& in, cozy::Context& ctx) -> Outputs {
    std::filesystem::path file(in.string("image"));
    if (file.is_relative()) file = ctx.input_dir() / file;
    auto loaded = cozy::image_io::read_image(file);
    at::Tensor mask = loaded.alpha ? 1.0 - *loaded.alpha
                                   : at::zeros({1, 1, loaded.image.size(2), loaded.image.size(3)});
    return {loaded.image.to(ctx.device()), mask.to(ctx.device())};
  };
  return def;
}

// Writes each image of a batch as `<folder>/<stem>_<NNNNN>.png`.
void save_batch(const at::Tensor& images, const std::filesystem::path& folder, const std::string& stem, int bit_depth,
                const char* kind, cozy::Context& ctx) {
  at::Tensor cpu = images.detach().to(at::kCPU);
  for (int64_t i = 0; i < cpu.size(0); ++i) {
    ctx.check_cancelled();
    at::Tensor one = cpu[i];
    auto file = cozy::write_numbered_file(folder, stem, ".png", [&](const std::filesystem::path& temp) {
      cozy::image_io::write_png(one, temp, bit_depth);
    });
    ctx.add_file(file, kind);
  }
}

NodeDef save_image() {
  NodeDef def;
  def.spec.class_type = "SaveImage";
  def.spec.display_name = "Save Image";
  def.spec.category = "image";
  def.spec.description =
      "Writes one PNG per image of the batch (grey, RGB or RGBA) as <prefix>_<counter>.png under the output folder. Each file is "
      "written under a temporary name and then linked to a free name: never half-written, never replacing an "
      "earlier file. The prefix may name a subfolder, but must stay inside the output folder.";
  def.spec.inputs = {InputSpec::Link("images", types::IMAGE),
                     InputSpec::String("filename_prefix", "cozy").help("may contain subfolders, e.g. run1/img"),
                     InputSpec::Choice("bit_depth", {"8", "16"}).help("bits per channel of the PNG").optional()};
  def.spec.output_node = true;
  def.run = [](const cozy::Inputs& in, cozy::Context& ctx) -> Outputs {
    const at::Tensor& images = in.image_or_rgba("images");
    std::filesystem::path target = cozy::path_inside(ctx.output_dir(), in.string("filename_prefix"), "filename_prefix");
    std::string stem = target.filename().string();
    if (stem.empty() || stem == "." || stem == "..") throw cozy::Error("filename_prefix must end in a file name");
    save_batch(images, target.parent_path(), stem, std::stoi(in.string("bit_depth")), "output", ctx);
    return {};
  };
  return def;
}

NodeDef preview_image() {
  NodeDef def;
  def.spec.class_type = "PreviewImage";
  def.spec.display_name = "Preview Image";
  def.spec.category = "image";
  def.spec.description =
      "Writes the batch as 8-bit PNGs to the temporary folder and reports them in the `executed` event, like "
      "ComfyUI's preview; the files are not results and may be removed.";
  def.spec.inputs = {InputSpec::Link("images", types::IMAGE)};
  def.spec.output_node = true;
  def.spec.pure = false;  // a preview is wanted every time the graph runs
  def.run = [](const cozy::Inputs& in, cozy::Context& ctx) -> Outputs {
    save_batch(in.image_or_rgba("images"), ctx.temp_dir(), "preview_" + ctx.node_id(), 8, "temp", ctx);
    return {};
  };
  return def;
}

NodeDef image_grid() {
  NodeDef def;
  def.spec.class_type = "ImageGrid";
  def.spec.display_name = "Image Grid";
  def.spec.category = "image";
  def.spec.description = "A contact sheet: the images of a batch laid out in rows, as one image.";
  def.spec.inputs = {InputSpec::Link("images", types::IMAGE),
                     InputSpec::Int("columns", 0).range(0, 1024).help("0: as square as possible"),
                     InputSpec::Int("padding", 2).range(0, 256).help("pixels between and around images"),
                     InputSpec::Float("background", 1.0).range(0, 1).with_step(0.01).help("grey level of the padding")};
  def.spec.outputs = {{"IMAGE", types::IMAGE}};
  def.run = [](const cozy::Inputs& in, cozy::Context&) -> Outputs {
    const at::Tensor& images = in.image("images");
    const int64_t b = images.size(0), c = images.size(1), h = images.size(2), w = images.size(3);
    const int64_t pad = in.integer("padding");
    int64_t columns = in.integer("columns");
    if (columns == 0) columns = static_cast<int64_t>(std::ceil(std::sqrt(static_cast<double>(b))));
    columns = std::min(columns, b);
    const int64_t rows = (b + columns - 1) / columns;
    at::Tensor grid = at::full({1, c, rows * h + (rows + 1) * pad, columns * w + (columns + 1) * pad},
                               in.number("background"), images.options());
    for (int64_t i = 0; i < b; ++i) {
      const int64_t y = pad + (i / columns) * (h + pad), x = pad + (i % columns) * (w + pad);
      grid[0].narrow(1, y, h).narrow(2, x, w).copy_(images[i]);
    }
    return {grid};
  };
  return def;
}

// A value as PreviewAny shows it: scalars as they are, a list as JSON-like
// text, a tensor by its type, shape, device and range, an object by its type.
std::string show_value(const cozy::Value& v) {
  if (v.empty()) return "(nothing)";
  if (v.is_bool()) return v.as_bool() ? "true" : "false";
  if (v.is_int()) return std::to_string(v.as_int());
  if (v.is_float()) {
    std::ostringstream out;
    out << v.as_float();
    return out.str();
  }
  if (v.is_string()) return v.as_string();
  if (v.is_list()) {
    std::string text = "[";
    const cozy::List& list = v.as_list();
    for (std::size_t i = 0; i < list.size(); ++i) text += (i ? ", " : "") + show_value(list[i]);
    return text + "]";
  }
  if (v.is_tensor()) {
    const at::Tensor& t = v.as_tensor();
    std::string text = "tensor " + cozy::Inputs::describe(t);
    if (!t.defined()) return text;
    text += " on " + t.device().str();
    if (t.numel() > 0 && t.is_floating_point()) {
      const at::Tensor f = t.detach().to(at::kFloat);
      std::ostringstream out;
      out << ", min " << f.min().item<float>() << ", max " << f.max().item<float>() << ", mean " << f.mean().item<float>();
      text += out.str();
    }
    return text;
  }
  return v.as_object() ? "object " + v.as_object()->type_name() : "null object";
}

NodeDef preview_any() {
  NodeDef def = NodeDef::named("PreviewAny", "Preview Any", "utils",
                               "Shows any value in the node (the executed event's text, the history) and the log: "
                               "numbers and strings as they are, a tensor by its type, shape, device and range, an "
                               "object by its type.");
  def.spec.inputs = {InputSpec::Link("source", types::ANY)};
  def.spec.output_node = true;
  def.run = [](const cozy::Inputs& in, cozy::Context& ctx) -> Outputs {
    const std::string text = show_value(in["source"]);
    ctx.show_text(text);
    ctx.log(cozy::LogLevel::info, text);
    return {};
  };
  return def;
}

void register_nodes(cozy::Registrar& r) {
  r.add(primitive("Int", InputSpec::Int("value", 0).range(-kMaxInt, kMaxInt), "An integer."));
  r.add(primitive("Float", InputSpec::Float("value", 0.0), "A floating-point number."));
  r.add(primitive("String", InputSpec::String("value").multiline_text(), "A string."));
  r.add(primitive("Boolean", InputSpec::Boolean("value", false), "true or false."));
  r.add(seed_node());
  r.add(empty_image());
  r.add(load_image());
  r.add(save_image());
  r.add(preview_image());
  r.add(image_grid());
  r.add(preview_any());
}

}  // namespace

COZY_PLUGIN("core", "0.1.0", register_nodes)
