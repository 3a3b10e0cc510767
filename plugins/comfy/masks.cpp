// ComfyUI's mask nodes, its compositing nodes and its morphology.
#include "comfy.hpp"

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>

namespace cozy::comfy {

namespace {

using types::IMAGE;
using types::MASK;

InputSpec mask_input(const char* name = "mask") { return InputSpec::Link(name, MASK); }

NodeDef image_to_mask() {
  NodeDef d = NodeDef::named("ImageToMask", "Convert Image to Mask", "mask", "One channel of the image as a MASK.");
  d.spec.inputs = {InputSpec::Link("image", IMAGE), InputSpec::Choice("channel", {"red", "green", "blue", "alpha"})};
  d.spec.outputs = {{"MASK", MASK}};
  d.run = [](const Inputs& in, Context&) -> Outputs {
    at::Tensor image = as_rgb(in.image_or_rgba("image"));
    const std::string& channel = in.string("channel");
    const int64_t index = channel == "red" ? 0 : channel == "green" ? 1 : channel == "blue" ? 2 : 3;
    if (index >= image.size(1)) throw Error("the image has no alpha channel (JoinImageWithAlpha gives it one)");
    return {image.narrow(1, index, 1).contiguous()};
  };
  return d;
}

NodeDef image_color_to_mask() {
  NodeDef d = NodeDef::named("ImageColorToMask", "ImageColorToMask", "mask",
                             "1 where the pixel, in 8 bits (rounded), is exactly `color` (0xRRGGBB), else 0.");
  d.spec.inputs = {InputSpec::Link("image", IMAGE), InputSpec::Int("color", 0).range(0, 0xFFFFFF).with_step(1).with_ui(R"({"display": "number"})")};
  d.spec.outputs = {{"MASK", MASK}};
  d.run = [](const Inputs& in, Context&) -> Outputs {
    at::Tensor image = as_rgb(in.image_or_rgba("image"));
    at::Tensor bytes = (at::clamp(image, 0, 1.0) * 255.0).round().to(at::kInt);
    at::Tensor key = at::bitwise_left_shift(bytes.narrow(1, 0, 1), 16) + at::bitwise_left_shift(bytes.narrow(1, 1, 1), 8) +
                     bytes.narrow(1, 2, 1);
    return {(key == in.integer("color")).to(at::kFloat)};
  };
  return d;
}

NodeDef solid_mask() {
  NodeDef d = NodeDef::named("SolidMask", "SolidMask", "mask", "A width x height MASK of one value.");
  d.spec.inputs = {InputSpec::Float("value", 1.0).range(0.0, 1.0).with_step(0.01), pixels_input("width", 512, 1),
                   pixels_input("height", 512, 1)};
  d.spec.outputs = {{"MASK", MASK}};
  d.run = [](const Inputs& in, Context& ctx) -> Outputs {
    return {at::full({1, 1, in.integer("height"), in.integer("width")}, in.number("value"),
                     at::TensorOptions(at::kFloat).device(ctx.device()))};
  };
  return d;
}

NodeDef invert_mask() {
  NodeDef d = NodeDef::named("InvertMask", "InvertMask", "mask", "1 - mask.");
  d.spec.inputs = {mask_input()};
  d.spec.outputs = {{"MASK", MASK}};
  d.run = [](const Inputs& in, Context&) -> Outputs { return {1.0 - in.mask("mask")}; };
  return d;
}

NodeDef crop_mask() {
  NodeDef d = NodeDef::named("CropMask", "CropMask", "mask", "The width x height rectangle at (x, y), clipped to the mask.");
  d.spec.inputs = {mask_input(), pixels_input("x", 0, 0), pixels_input("y", 0, 0), pixels_input("width", 512, 1),
                   pixels_input("height", 512, 1)};
  d.spec.outputs = {{"MASK", MASK}};
  d.run = [](const Inputs& in, Context&) -> Outputs {
    const at::Tensor& mask = in.mask("mask");
    if (in.integer("x") >= mask.size(3) || in.integer("y") >= mask.size(2))
      throw Error("(x, y) = (" + std::to_string(in.integer("x")) + ", " + std::to_string(in.integer("y")) +
                  ") is outside the " + std::to_string(mask.size(3)) + " x " + std::to_string(mask.size(2)) +
                  " mask: the crop would be empty");
    return {py_slice(py_slice(mask, 2, in.integer("y"), in.integer("height")), 3, in.integer("x"), in.integer("width"))
                .contiguous()};
  };
  return d;
}

NodeDef mask_composite() {
  NodeDef d = NodeDef::named("MaskComposite", "MaskComposite", "mask",
                             "source combined into destination at (x, y) by the operation (and, or, xor on the "
                             "rounded masks); clamped to [0, 1].");
  d.spec.inputs = {mask_input("destination"), mask_input("source"), pixels_input("x", 0, 0), pixels_input("y", 0, 0),
                   InputSpec::Choice("operation", {"multiply", "add", "subtract", "and", "or", "xor"})};
  d.spec.outputs = {{"MASK", MASK}};
  d.run = [](const Inputs& in, Context&) -> Outputs {
    at::Tensor output = in.mask("destination").clone();
    at::Tensor source = in.mask("source").to(output.device());
    const int64_t left = in.integer("x"), top = in.integer("y");
    const int64_t right = std::min(left + source.size(3), output.size(3));
    const int64_t bottom = std::min(top + source.size(2), output.size(2));
    if (right > left && bottom > top) {
      at::Tensor s = source.narrow(2, 0, bottom - top).narrow(3, 0, right - left);
      at::Tensor dst = output.narrow(2, top, bottom - top).narrow(3, left, right - left);
      const std::string& op = in.string("operation");
      at::Tensor result;
      if (op == "multiply") result = dst * s;
      else if (op == "add") result = dst + s;
      else if (op == "subtract") result = dst - s;
      else if (op == "and") result = at::bitwise_and(dst.round().to(at::kBool), s.round().to(at::kBool)).to(at::kFloat);
      else if (op == "or") result = at::bitwise_or(dst.round().to(at::kBool), s.round().to(at::kBool)).to(at::kFloat);
      else if (op == "xor") result = at::bitwise_xor(dst.round().to(at::kBool), s.round().to(at::kBool)).to(at::kFloat);
      else throw Error("unknown operation '" + op + "'");
      dst.copy_(result);
    }
    return {at::clamp(output, 0.0, 1.0)};
  };
  return d;
}

NodeDef feather_mask() {
  NodeDef d = NodeDef::named("FeatherMask", "FeatherMask", "mask",
                             "Fades the mask linearly to 0 over `left`, `top`, `right` and `bottom` pixels from each "
                             "side (ComfyUI's loops, including its right and bottom ones also scaling the first "
                             "column and row).");
  d.spec.inputs = {mask_input(), pixels_input("left", 0, 0), pixels_input("top", 0, 0), pixels_input("right", 0, 0),
                   pixels_input("bottom", 0, 0)};
  d.spec.outputs = {{"MASK", MASK}};
  d.run = [](const Inputs& in, Context&) -> Outputs {
    at::Tensor output = in.mask("mask").clone();
    const int64_t h = output.size(2), w = output.size(3);
    const int64_t left = std::min(in.integer("left"), w), right = std::min(in.integer("right"), w);
    const int64_t top = std::min(in.integer("top"), h), bottom = std::min(in.integer("bottom"), h);
    // Python's index -x: the x-th from the end, and 0 for x = 0.
    auto from_end = [](int64_t x, int64_t n) { return x == 0 ? 0 : n - x; };
    for (int64_t x = 0; x < left; ++x) output.select(3, x).mul_((x + 1.0) / left);
    for (int64_t x = 0; x < right; ++x) output.select(3, from_end(x, w)).mul_(static_cast<double>(x + 1) / right);
    for (int64_t y = 0; y < top; ++y) output.select(2, y).mul_(static_cast<double>(y + 1) / top);
    for (int64_t y = 0; y < bottom; ++y) output.select(2, from_end(y, h)).mul_(static_cast<double>(y + 1) / bottom);
    return {output};
  };
  return d;
}

// Grey dilation (or erosion) of each plane of a [B, C, H, W] tensor with a
// kernel: OpenCV's, whose default border is what scipy's grey_dilation
// gives for a 3 x 3 footprint and kornia's "geodesic" border for any
// (pixels outside the image never win). The kernel's anchor is at
// (size / 2, size / 2), as kornia's origin.
at::Tensor morph(const at::Tensor& x, int op, const cv::Mat& kernel, int iterations = 1) {
  at::Tensor cpu = x.detach().to(at::kCPU).contiguous();
  at::Tensor out = at::empty_like(cpu);
  const int64_t planes = cpu.size(0) * cpu.size(1);
  const int h = static_cast<int>(cpu.size(2)), w = static_cast<int>(cpu.size(3));
  for (int64_t p = 0; p < planes; ++p) {
    cv::Mat src(h, w, CV_32F, cpu.data_ptr<float>() + p * h * w);
    cv::Mat dst(h, w, CV_32F, out.data_ptr<float>() + p * h * w);
    cv::morphologyEx(src, dst, op, kernel, cv::Point(kernel.cols / 2, kernel.rows / 2), iterations);
  }
  return out.to(x.device());
}

NodeDef grow_mask() {
  NodeDef d = NodeDef::named("GrowMask", "Grow Mask", "mask",
                             "Grows the mask by `expand` pixels (shrinks it for a negative one): that many grey "
                             "dilations (erosions) with a 3 x 3 cross, or square without tapered corners.");
  d.spec.inputs = {mask_input(), InputSpec::Int("expand", 0).range(-kMaxResolution, kMaxResolution).with_step(1),
                   InputSpec::Boolean("tapered_corners", true)};
  d.spec.outputs = {{"MASK", MASK}};
  d.run = [](const Inputs& in, Context& ctx) -> Outputs {
    at::Tensor mask = in.mask("mask");
    const int64_t expand = in.integer("expand");
    const uint8_t c = in.boolean("tapered_corners") ? 0 : 1;
    cv::Mat kernel = (cv::Mat_<uint8_t>(3, 3) << c, 1, c, 1, 1, 1, c, 1, c);
    for (int64_t i = 0; i < std::abs(expand); ++i) {
      ctx.check_cancelled();
      mask = morph(mask, expand < 0 ? cv::MORPH_ERODE : cv::MORPH_DILATE, kernel);
    }
    return {mask};
  };
  return d;
}

NodeDef threshold_mask() {
  NodeDef d = NodeDef::named("ThresholdMask", "ThresholdMask", "mask", "1 where mask > value, else 0.");
  d.spec.inputs = {mask_input(), InputSpec::Float("value", 0.5).range(0.0, 1.0).with_step(0.01)};
  d.spec.outputs = {{"MASK", MASK}};
  d.run = [](const Inputs& in, Context&) -> Outputs { return {(in.mask("mask") > in.number("value")).to(at::kFloat)}; };
  return d;
}

// ComfyUI's composite() with multiplier 1: source (its batch made the
// destination's) pasted at (x, y) through the mask (resized bilinear to the
// source), clipped to the destination.
at::Tensor composite(at::Tensor destination, at::Tensor source, int64_t x, int64_t y, const at::Tensor* mask_in,
                     bool resize_source) {
  source = source.to(destination.device());
  if (resize_source)
    source = at::upsample_bilinear2d(source.contiguous(), {destination.size(2), destination.size(3)}, false,
                                     c10::nullopt, c10::nullopt);
  source = repeat_to_batch(source, destination.size(0));
  x = std::max(-source.size(3), std::min(x, destination.size(3)));
  y = std::max(-source.size(2), std::min(y, destination.size(2)));
  const int64_t left = x, top = y;
  at::Tensor mask;
  if (!mask_in) {
    mask = at::ones_like(source);
  } else {
    mask = at::upsample_bilinear2d(mask_in->to(destination.device()).contiguous(), {source.size(2), source.size(3)}, false,
                                   c10::nullopt, c10::nullopt);
    mask = repeat_to_batch(mask, source.size(0));
  }
  const int64_t visible_w = std::min(destination.size(3) - left + std::min<int64_t>(0, x), source.size(3));
  const int64_t visible_h = std::min(destination.size(2) - top + std::min<int64_t>(0, y), source.size(2));
  if (visible_w <= 0 || visible_h <= 0) return destination;
  mask = mask.narrow(2, 0, visible_h).narrow(3, 0, visible_w);
  at::Tensor inverse = at::ones_like(mask) - mask;
  at::Tensor source_part = mask * source.narrow(2, 0, visible_h).narrow(3, 0, visible_w);
  at::Tensor dst = destination.narrow(2, top, visible_h).narrow(3, left, visible_w);
  dst.copy_(source_part + inverse * dst);
  return destination;
}

NodeDef image_composite_masked() {
  NodeDef d = NodeDef::named("ImageCompositeMasked", "ImageCompositeMasked", "image",
                             "source pasted onto destination at (x, y), through the mask where one is given.");
  d.spec.inputs = {InputSpec::Link("destination", IMAGE), InputSpec::Link("source", IMAGE), pixels_input("x", 0, 0),
                   pixels_input("y", 0, 0), InputSpec::Boolean("resize_source", false), mask_input().optional()};
  d.spec.outputs = {{"IMAGE", IMAGE}};
  d.run = [](const Inputs& in, Context&) -> Outputs {
    auto [destination, source] = alpha_fix(in.image_or_rgba("destination"), in.image_or_rgba("source"));
    at::Tensor mask;
    if (in.has("mask")) mask = in.mask("mask");
    return {composite(destination.clone(), source, in.integer("x"), in.integer("y"), in.has("mask") ? &mask : nullptr,
                      in.boolean("resize_source"))};
  };
  return d;
}

const std::vector<std::string>& porter_duff_modes() {
  static const std::vector<std::string> modes = {"ADD",     "CLEAR",    "DARKEN",  "DST",    "DST_ATOP", "DST_IN",
                                                 "DST_OUT", "DST_OVER", "LIGHTEN", "MULTIPLY", "OVERLAY", "SCREEN",
                                                 "SRC",     "SRC_ATOP", "SRC_IN",  "SRC_OUT", "SRC_OVER", "XOR"};
  return modes;
}

// ComfyUI's porter_duff_composite on one image [C, H, W] and its mask [1, H, W].
std::pair<at::Tensor, at::Tensor> porter_duff(at::Tensor src_image, at::Tensor src_alpha, at::Tensor dst_image,
                                              at::Tensor dst_alpha, const std::string& mode) {
  src_alpha = 1 - src_alpha;
  dst_alpha = 1 - dst_alpha;
  src_image = src_image * src_alpha;
  dst_image = dst_image * dst_alpha;
  at::Tensor a, im;
  const at::Tensor &sa = src_alpha, &da = dst_alpha, &s = src_image, &t = dst_image;
  if (mode == "ADD") a = at::clamp(sa + da, 0, 1), im = at::clamp(s + t, 0, 1);
  else if (mode == "CLEAR") a = at::zeros_like(da), im = at::zeros_like(t);
  else if (mode == "DARKEN") a = sa + da - sa * da, im = (1 - da) * s + (1 - sa) * t + at::minimum(s, t);
  else if (mode == "DST") a = da, im = t;
  else if (mode == "DST_ATOP") a = sa, im = sa * t + (1 - da) * s;
  else if (mode == "DST_IN") a = sa * da, im = t * sa;
  else if (mode == "DST_OUT") a = (1 - sa) * da, im = (1 - sa) * t;
  else if (mode == "DST_OVER") a = da + (1 - da) * sa, im = t + (1 - da) * s;
  else if (mode == "LIGHTEN") a = sa + da - sa * da, im = (1 - da) * s + (1 - sa) * t + at::maximum(s, t);
  else if (mode == "MULTIPLY") a = sa * da, im = s * t;
  else if (mode == "OVERLAY")
    a = sa + da - sa * da, im = at::where(2 * t < da, 2 * s * t, sa * da - 2 * (da - s) * (sa - t));
  else if (mode == "SCREEN") a = sa + da - sa * da, im = s + t - s * t;
  else if (mode == "SRC") a = sa, im = s;
  else if (mode == "SRC_ATOP") a = da, im = da * s + (1 - sa) * t;
  else if (mode == "SRC_IN") a = sa * da, im = s * da;
  else if (mode == "SRC_OUT") a = (1 - da) * sa, im = (1 - da) * s;
  else if (mode == "SRC_OVER") a = sa + (1 - sa) * da, im = s + (1 - sa) * t;
  else if (mode == "XOR") a = (1 - da) * sa + (1 - sa) * da, im = (1 - da) * s + (1 - sa) * t;
  else throw Error("unknown mode '" + mode + "'");
  im = at::where(a > 1e-5, im / a, at::zeros_like(im));
  // The mask clamped to [0, 1], Cozy's MASK range: bicubic resizing of the
  // alphas may overshoot, which ComfyUI leaves.
  return {at::clamp(im, 0, 1), at::clamp(1 - a, 0, 1)};
}

NodeDef porter_duff_composite() {
  NodeDef d = NodeDef::named("PorterDuffImageComposite", "Porter-Duff Image Composite", "mask/compositing",
                             "Composites source over destination by one of Porter and Duff's operators, each with its "
                             "alpha given as a MASK (1 - alpha); gives the image and its MASK.");
  InputSpec mode = InputSpec::Choice("mode", porter_duff_modes());
  mode.default_value = std::string("DST");
  d.spec.inputs = {InputSpec::Link("source", IMAGE), mask_input("source_alpha"), InputSpec::Link("destination", IMAGE),
                   mask_input("destination_alpha"), mode};
  d.spec.outputs = {{"IMAGE", IMAGE}, {"MASK", MASK}};
  d.run = [](const Inputs& in, Context&) -> Outputs {
    at::Tensor source = in.image_or_rgba("source"), destination = in.image_or_rgba("destination");
    const at::Tensor &source_alpha = in.mask("source_alpha"), &destination_alpha = in.mask("destination_alpha");
    std::tie(source, destination) = match_grey(source, destination);
    if (source.size(1) != destination.size(1))
      throw Error("source and destination must have the same channels (" + std::to_string(source.size(1)) + " and " +
                  std::to_string(destination.size(1)) + ")");
    const int64_t batch =
        std::min({source.size(0), source_alpha.size(0), destination.size(0), destination_alpha.size(0)});
    const std::string& mode = in.string("mode");
    std::vector<at::Tensor> images, alphas;
    for (int64_t i = 0; i < batch; ++i) {
      at::Tensor src = source[i].unsqueeze(0), dst = destination[i].unsqueeze(0).to(src.device());
      at::Tensor sa = source_alpha[i].unsqueeze(0).to(src.device()), da = destination_alpha[i].unsqueeze(0).to(src.device());
      const int64_t h = dst.size(2), w = dst.size(3);
      if (da.size(2) != h || da.size(3) != w) da = common_upscale(da, w, h, "bicubic", "center");
      if (src.sizes() != dst.sizes()) src = common_upscale(src, w, h, "bicubic", "center");
      if (sa.sizes() != da.sizes()) sa = common_upscale(sa, da.size(3), da.size(2), "bicubic", "center");
      auto [image, alpha] = porter_duff(src[0], sa[0], dst[0], da[0], mode);
      images.push_back(image);
      alphas.push_back(alpha);
    }
    return {at::stack(images), at::stack(alphas)};
  };
  return d;
}

NodeDef split_image_with_alpha() {
  NodeDef d = NodeDef::named("SplitImageWithAlpha", "Split Image with Alpha", "mask/compositing",
                             "The colour channels, and the alpha as a MASK (1 - alpha; 0 where there is none).");
  d.spec.inputs = {InputSpec::Link("image", IMAGE)};
  d.spec.outputs = {{"IMAGE", IMAGE}, {"MASK", MASK}};
  d.run = [](const Inputs& in, Context&) -> Outputs {
    const at::Tensor& image = in.image_or_rgba("image");
    at::Tensor colour = image.narrow(1, 0, std::min<int64_t>(3, image.size(1))).contiguous();
    at::Tensor alpha = image.size(1) > 3 ? image.narrow(1, 3, 1) : at::ones_like(image.narrow(1, 0, 1));
    return {colour, 1.0 - alpha};
  };
  return d;
}

NodeDef join_image_with_alpha() {
  NodeDef d = NodeDef::named("JoinImageWithAlpha", "Join Image with Alpha", "mask/compositing",
                             "An RGBA image: the colour channels and 1 - alpha (the MASK resized bilinear to the "
                             "image); batches repeated to the longer.");
  d.spec.inputs = {InputSpec::Link("image", IMAGE), mask_input("alpha")};
  d.spec.outputs = {{"IMAGE", IMAGE}};
  d.run = [](const Inputs& in, Context&) -> Outputs {
    at::Tensor image = as_rgb(in.image_or_rgba("image"));
    at::Tensor alpha = in.mask("alpha").to(image.device());
    const int64_t batch = std::max(image.size(0), alpha.size(0));
    image = repeat_to_batch(image, batch);
    alpha = repeat_to_batch(alpha, batch);
    alpha = 1.0 - at::upsample_bilinear2d(alpha.contiguous(), {image.size(2), image.size(3)}, false, c10::nullopt,
                                          c10::nullopt);
    return {at::cat({image.narrow(1, 0, 3), alpha}, 1)};
  };
  return d;
}

NodeDef morphology() {
  NodeDef d = NodeDef::named("Morphology", "ImageMorphology", "image/postprocessing",
                             "Grey-level morphology with a kernel_size square, as kornia.morphology: pixels outside "
                             "the image never count (its geodesic border).");
  d.spec.inputs = {InputSpec::Link("image", IMAGE),
                   InputSpec::Choice("operation", {"erode", "dilate", "open", "close", "gradient", "bottom_hat", "top_hat"}),
                   InputSpec::Int("kernel_size", 3).range(3, 999).with_step(1)};
  d.spec.outputs = {{"IMAGE", IMAGE}};
  d.run = [](const Inputs& in, Context&) -> Outputs {
    const at::Tensor& image = in.image_or_rgba("image");
    const int k = static_cast<int>(in.integer("kernel_size"));
    const cv::Mat kernel = cv::Mat::ones(k, k, CV_8U);
    const std::string& op = in.string("operation");
    auto erode = [&](const at::Tensor& x) { return morph(x, cv::MORPH_ERODE, kernel); };
    auto dilate = [&](const at::Tensor& x) { return morph(x, cv::MORPH_DILATE, kernel); };
    if (op == "erode") return {erode(image)};
    if (op == "dilate") return {dilate(image)};
    if (op == "open") return {dilate(erode(image))};
    if (op == "close") return {erode(dilate(image))};
    if (op == "gradient") return {dilate(image) - erode(image)};
    if (op == "top_hat") return {image - dilate(erode(image))};
    if (op == "bottom_hat") return {erode(dilate(image)) - image};
    throw Error("unknown operation '" + op + "'");
  };
  return d;
}

}  // namespace

void register_mask_nodes(Registrar& r) {
  r.add(image_to_mask());
  r.add(image_color_to_mask());
  r.add(solid_mask());
  r.add(invert_mask());
  r.add(crop_mask());
  r.add(mask_composite());
  r.add(feather_mask());
  r.add(grow_mask());
  r.add(threshold_mask());
  r.add(image_composite_masked());
  r.add(porter_duff_composite());
  r.add(split_image_with_alpha());
  r.add(join_image_with_alpha());
  r.add(morphology());
}

}  // namespace cozy::comfy
