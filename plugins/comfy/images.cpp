// ComfyUI's image nodes: scaling, filters, blends, noise, geometry, batches.
#include "comfy.hpp"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>

namespace cozy::comfy {

namespace {

using types::IMAGE;
using types::INT;

InputSpec image_input(const char* name = "image") { return InputSpec::Link(name, IMAGE); }

NodeDef image_scale() {
  NodeDef d = NodeDef::named("ImageScale", "Upscale Image", "image/upscaling",
                             "Scales to width x height (0 keeps the aspect ratio from the other), as ComfyUI's "
                             "ImageScale: torch's interpolate or PIL's Lanczos, optionally cropped to the aspect "
                             "ratio at the centre first.");
  d.spec.inputs = {image_input(), InputSpec::Choice("upscale_method", upscale_methods()), pixels_input("width", 512, 0),
                   pixels_input("height", 512, 0), InputSpec::Choice("crop", {"disabled", "center"})};
  d.spec.outputs = {{"IMAGE", IMAGE}};
  d.run = [](const Inputs& in, Context&) -> Outputs {
    const at::Tensor& image = in.image_or_rgba("image");
    int64_t width = in.integer("width"), height = in.integer("height");
    if (width == 0 && height == 0) return {image};
    if (width == 0) width = std::max<int64_t>(1, py_round(static_cast<double>(image.size(3)) * height / image.size(2)));
    else if (height == 0)
      height = std::max<int64_t>(1, py_round(static_cast<double>(image.size(2)) * width / image.size(3)));
    return {scale_image(image, width, height, in.string("upscale_method"), in.string("crop"))};
  };
  return d;
}

NodeDef image_scale_by() {
  NodeDef d = NodeDef::named("ImageScaleBy", "Upscale Image By", "image/upscaling",
                             "Scales both sides by scale_by (rounded as Python rounds), as ComfyUI's ImageScaleBy.");
  d.spec.inputs = {image_input(), InputSpec::Choice("upscale_method", upscale_methods()),
                   InputSpec::Float("scale_by", 1.0).range(0.01, 8.0).with_step(0.01)};
  d.spec.outputs = {{"IMAGE", IMAGE}};
  d.run = [](const Inputs& in, Context&) -> Outputs {
    const at::Tensor& image = in.image_or_rgba("image");
    const double s = in.number("scale_by");
    return {scale_image(image, py_round(image.size(3) * s), py_round(image.size(2) * s), in.string("upscale_method"),
                        "disabled")};
  };
  return d;
}

NodeDef image_scale_to_total_pixels() {
  NodeDef d = NodeDef::named("ImageScaleToTotalPixels", "Scale Image to Total Pixels", "image/upscaling",
                             "Scales to about megapixels x 2^20 pixels, each side a multiple of resolution_steps.");
  d.spec.inputs = {image_input(), InputSpec::Choice("upscale_method", upscale_methods()),
                   InputSpec::Float("megapixels", 1.0).range(0.01, 16.0).with_step(0.01),
                   InputSpec::Int("resolution_steps", 1).range(1, 256)};
  d.spec.outputs = {{"IMAGE", IMAGE}};
  d.run = [](const Inputs& in, Context&) -> Outputs {
    const at::Tensor& image = in.image_or_rgba("image");
    const double total = in.number("megapixels") * 1024 * 1024;
    const double scale = std::sqrt(total / static_cast<double>(image.size(3) * image.size(2)));
    const int64_t steps = in.integer("resolution_steps");
    const int64_t width = py_round(image.size(3) * scale / steps) * steps;
    const int64_t height = py_round(image.size(2) * scale / steps) * steps;
    return {scale_image(image, width, height, in.string("upscale_method"), "disabled")};
  };
  return d;
}

// Scales so that the longer side is `size` (both sides when square).
std::pair<int64_t, int64_t> longer_side(int64_t width, int64_t height, int64_t size) {
  if (height > width) return {py_round(static_cast<double>(width) / height * size), size};
  if (width > height) return {size, py_round(static_cast<double>(height) / width * size)};
  return {size, size};
}

NodeDef image_scale_to_max_dimension() {
  NodeDef d = NodeDef::named("ImageScaleToMaxDimension", "Scale Image to Max Dimension", "image/upscaling",
                             "Scales so that the longer side is largest_size, keeping the aspect ratio.");
  // ComfyUI lists "bilinear" twice here; its list is kept as it is.
  d.spec.inputs = {image_input(),
                   InputSpec::Choice("upscale_method", {"area", "lanczos", "bilinear", "nearest-exact", "bilinear", "bicubic"}),
                   pixels_input("largest_size", 512, 0)};
  d.spec.outputs = {{"IMAGE", IMAGE}};
  d.run = [](const Inputs& in, Context&) -> Outputs {
    const at::Tensor& image = in.image_or_rgba("image");
    auto [width, height] = longer_side(image.size(3), image.size(2), in.integer("largest_size"));
    return {scale_image(image, width, height, in.string("upscale_method"), "disabled")};
  };
  return d;
}

NodeDef resize_and_pad() {
  NodeDef d = NodeDef::named("ResizeAndPadImage", "Resize And Pad Image", "image/transform",
                             "Scales to fit target_width x target_height and pads the rest, centred, in white or black.");
  d.spec.inputs = {image_input(), pixels_input("target_width", 512, 1), pixels_input("target_height", 512, 1),
                   InputSpec::Choice("padding_color", {"white", "black"}),
                   InputSpec::Choice("interpolation", {"area", "bicubic", "nearest-exact", "bilinear", "lanczos"})};
  d.spec.outputs = {{"IMAGE", IMAGE}};
  d.run = [](const Inputs& in, Context&) -> Outputs {
    const at::Tensor& image = in.image_or_rgba("image");
    const int64_t tw = in.integer("target_width"), th = in.integer("target_height");
    const int64_t w = image.size(3), h = image.size(2);
    const double scale = std::min(static_cast<double>(tw) / w, static_cast<double>(th) / h);
    const int64_t nw = static_cast<int64_t>(w * scale), nh = static_cast<int64_t>(h * scale);
    at::Tensor resized = scale_image(image, nw, nh, in.string("interpolation"), "disabled");
    at::Tensor padded = at::full({image.size(0), image.size(1), th, tw}, in.string("padding_color") == "black" ? 0.0 : 1.0,
                                 image.options());
    padded.narrow(2, (th - nh) / 2, nh).narrow(3, (tw - nw) / 2, nw).copy_(resized);
    return {padded};
  };
  return d;
}

NodeDef image_invert() {
  NodeDef d = NodeDef::named("ImageInvert", "Invert Image Colors", "image/color", "1 - image, as ComfyUI's ImageInvert.");
  d.spec.inputs = {image_input()};
  d.spec.outputs = {{"IMAGE", IMAGE}};
  d.run = [](const Inputs& in, Context&) -> Outputs { return {1.0 - in.image_or_rgba("image")}; };
  return d;
}

// ComfyUI's gaussian_kernel: a size x size kernel over [-1, 1]^2 (whatever
// the size: sigma is relative to the radius), normalised.
at::Tensor gaussian_kernel(int64_t size, double sigma, const at::TensorOptions& options) {
  at::Tensor axis = at::linspace(-1, 1, size, options);
  std::vector<at::Tensor> grid = at::meshgrid({axis, axis}, "ij");
  at::Tensor d = at::sqrt(grid[0] * grid[0] + grid[1] * grid[1]);
  at::Tensor g = at::exp(-(d * d) / (2.0 * sigma * sigma));
  return g / g.sum();
}

// conv2d of an image with a per-channel kernel, over the image padded by
// reflection, as ComfyUI's ImageBlur and ImageSharpen.
at::Tensor reflect_conv(const at::Tensor& image, const at::Tensor& kernel2d, int64_t radius) {
  const int64_t c = image.size(1);
  if (radius >= image.size(2) || radius >= image.size(3))
    throw Error("the radius (" + std::to_string(radius) + ") must be smaller than the image's sides (" +
                std::to_string(image.size(3)) + " x " + std::to_string(image.size(2)) + "), as torch's reflect pad needs");
  at::Tensor kernel = kernel2d.repeat({c, 1, 1}).unsqueeze(1);
  at::Tensor padded = at::pad(image.contiguous(), {radius, radius, radius, radius}, "reflect");
  at::Tensor out = at::conv2d(padded, kernel, {}, 1, kernel2d.size(0) / 2, 1, c);
  return out.narrow(2, radius, out.size(2) - 2 * radius).narrow(3, radius, out.size(3) - 2 * radius);
}

NodeDef image_blur() {
  NodeDef d = NodeDef::named("ImageBlur", "Blur Image", "image/postprocessing",
                             "ComfyUI's Gaussian blur: a (2 blur_radius + 1)^2 kernel over [-1, 1]^2 with this sigma, "
                             "reflected borders.");
  d.spec.inputs = {image_input(), InputSpec::Int("blur_radius", 1).range(1, 31).with_step(1),
                   InputSpec::Float("sigma", 1.0).range(0.1, 10.0).with_step(0.1)};
  d.spec.outputs = {{"IMAGE", IMAGE}};
  d.run = [](const Inputs& in, Context&) -> Outputs {
    const at::Tensor& image = in.image_or_rgba("image");
    const int64_t r = in.integer("blur_radius");
    if (r == 0) return {image};
    return {reflect_conv(image, gaussian_kernel(2 * r + 1, in.number("sigma"), image.options()), r)};
  };
  return d;
}

NodeDef image_sharpen() {
  NodeDef d = NodeDef::named("ImageSharpen", "Sharpen Image", "image/postprocessing",
                             "ComfyUI's sharpen: the image less alpha x 10 times its Gaussian-weighted neighbourhood, "
                             "the centre weight making the kernel sum to 1; clamped to [0, 1].");
  d.spec.inputs = {image_input(), InputSpec::Int("sharpen_radius", 1).range(1, 31).with_step(1),
                   InputSpec::Float("sigma", 1.0).range(0.1, 10.0).with_step(0.01),
                   InputSpec::Float("alpha", 1.0).range(0.0, 5.0).with_step(0.01)};
  d.spec.outputs = {{"IMAGE", IMAGE}};
  d.run = [](const Inputs& in, Context&) -> Outputs {
    const at::Tensor& image = in.image_or_rgba("image");
    const int64_t r = in.integer("sharpen_radius");
    if (r == 0) return {image};
    const int64_t size = 2 * r + 1;
    at::Tensor kernel = gaussian_kernel(size, in.number("sigma"), image.options()) * -(in.number("alpha") * 10);
    at::Tensor centre = kernel[size / 2][size / 2];
    centre.copy_(centre - kernel.sum() + 1.0);
    return {reflect_conv(image, kernel, r).clamp(0, 1)};
  };
  return d;
}

at::Tensor blend_mode(const at::Tensor& img1, const at::Tensor& img2, const std::string& mode) {
  if (mode == "normal") return img2;
  if (mode == "multiply") return img1 * img2;
  if (mode == "screen") return 1 - (1 - img1) * (1 - img2);
  if (mode == "overlay") return at::where(img1 <= 0.5, 2 * img1 * img2, 1 - 2 * (1 - img1) * (1 - img2));
  if (mode == "soft_light") {
    at::Tensor g = at::where(img1 <= 0.25, ((16 * img1 - 12) * img1 + 4) * img1, at::sqrt(img1));
    return at::where(img2 <= 0.5, img1 - (1 - 2 * img2) * img1 * (1 - img1), img1 + (2 * img2 - 1) * (g - img1));
  }
  if (mode == "difference") return img1 - img2;
  throw Error("unknown blend_mode '" + mode + "'");
}

NodeDef image_blend() {
  NodeDef d = NodeDef::named("ImageBlend", "Blend Images", "image/postprocessing",
                             "image1 mixed with image1 blended with image2 (resized bicubic, centre-cropped, to "
                             "image1's size) by blend_factor; clamped to [0, 1].");
  d.spec.inputs = {image_input("image1"), image_input("image2"),
                   InputSpec::Float("blend_factor", 0.5).range(0.0, 1.0).with_step(0.01),
                   InputSpec::Choice("blend_mode", {"normal", "multiply", "screen", "overlay", "soft_light", "difference"})};
  d.spec.outputs = {{"IMAGE", IMAGE}};
  d.run = [](const Inputs& in, Context&) -> Outputs {
    auto [image1, image2] = alpha_fix(in.image_or_rgba("image1"), in.image_or_rgba("image2"));
    image2 = image2.to(image1.device());
    if (image1.sizes() != image2.sizes())
      image2 = common_upscale(image2, image1.size(3), image1.size(2), "bicubic", "center");
    const double f = in.number("blend_factor");
    at::Tensor blended = blend_mode(image1, image2, in.string("blend_mode"));
    return {at::clamp(image1 * (1 - f) + blended * f, 0, 1)};
  };
  return d;
}

NodeDef image_add_noise() {
  NodeDef d = NodeDef::named("ImageAddNoise", "Add Noise to Image", "image/filters",
                             "image + strength x normal noise, clamped to [0, 1]; the noise is torch's randn from "
                             "this seed on the CPU, drawn in ComfyUI's [B, H, W, C] order: ComfyUI's numbers.");
  d.spec.inputs = {image_input(),
                   InputSpec::Int("seed", 0)
                       .range(0, 18446744073709551615.0)
                       .help("The random seed used for creating the noise.")
                       .with_ui(R"({"control_after_generate": true})"),
                   InputSpec::Float("strength", 0.5).range(0.0, 1.0).with_step(0.01)};
  d.spec.outputs = {{"IMAGE", IMAGE}};
  d.run = [](const Inputs& in, Context&) -> Outputs {
    const at::Tensor& image = in.image_or_rgba("image");
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(in.integer("seed")));
    at::Tensor noise = at::randn({image.size(0), image.size(2), image.size(3), image.size(1)}, gen, at::kFloat)
                           .permute({0, 3, 1, 2})
                           .to(image.device());
    return {at::clip(image + in.number("strength") * noise, 0.0, 1.0)};
  };
  return d;
}

NodeDef image_crop() {
  NodeDef d = NodeDef::named("ImageCrop", "Crop Image (DEPRECATED)", "image/transform",
                             "The width x height rectangle at (x, y), clipped to the image (x and y at most the last "
                             "column and row).");
  d.spec.inputs = {image_input(), pixels_input("width", 512, 1), pixels_input("height", 512, 1), pixels_input("x", 0, 0),
                   pixels_input("y", 0, 0)};
  d.spec.outputs = {{"IMAGE", IMAGE}};
  d.spec.ui = R"({"deprecated": true})";
  d.run = [](const Inputs& in, Context&) -> Outputs {
    const at::Tensor& image = in.image_or_rgba("image");
    const int64_t x = std::min(in.integer("x"), image.size(3) - 1), y = std::min(in.integer("y"), image.size(2) - 1);
    return {py_slice(py_slice(image, 2, y, in.integer("height")), 3, x, in.integer("width")).contiguous()};
  };
  return d;
}

// ComfyUI's ImageCropV2: ImageCrop with its region as one BOUNDING_BOX,
// and a preview of the crop.
NodeDef image_crop_v2() {
  NodeDef d = NodeDef::named("ImageCropV2", "Crop Image", "image/transform", "Crop an image to the specified dimensions.");
  d.spec.inputs = {image_input(), InputSpec::Link("crop_region", types::BOUNDING_BOX)
                                      .with_ui(R"({"default": {"x": 0, "y": 0, "width": 512, "height": 512},)"
                                               R"( "socketless": true, "component": "ImageCrop"})")};
  d.spec.outputs = {{"IMAGE", IMAGE}};
  d.run = [](const Inputs& in, Context& ctx) -> Outputs {
    const at::Tensor& image = in.image_or_rgba("image");
    const List& box = in["crop_region"].as_list();
    const int64_t x = std::min(box.at(0).as_int(), image.size(3) - 1), y = std::min(box.at(1).as_int(), image.size(2) - 1);
    at::Tensor crop = py_slice(py_slice(image, 2, y, box.at(3).as_int()), 3, x, box.at(2).as_int()).contiguous();
    preview(crop, ctx);
    return {crop};
  };
  return d;
}

// RebatchImages: every image of every batch in the incoming list, in order,
// regrouped into batches of batch_size; consecutive batches may share
// `overlap` frames, merged as merge_overlap_mode says.
const std::vector<std::string> kMergeModes = {"truncate start", "truncate end", "fade smooth", "fade linear"};

at::Tensor merge_batches(const std::vector<at::Tensor>& batches, int64_t overlap, const std::string& mode) {
  if (batches.size() == 1) return batches.front();
  int64_t total = 0;
  for (const auto& t : batches) total += t.size(0);
  total -= overlap * static_cast<int64_t>(batches.size() - 1);
  std::vector<int64_t> shape = batches.front().sizes().vec();
  shape[0] = total;
  at::Tensor merged = at::empty(shape, batches.front().options());
  int64_t end = batches.front().size(0);
  merged.narrow(0, 0, end).copy_(batches.front());
  at::Tensor weight;
  if (overlap > 0 && (mode == "fade smooth" || mode == "fade linear")) {
    weight = at::linspace(0, 1, overlap, merged.options());
    if (mode == "fade smooth") weight = weight * weight * (3 - 2 * weight);
    weight = weight.reshape({overlap, 1, 1, 1});
  }
  for (std::size_t i = 1; i < batches.size(); ++i) {
    const at::Tensor& t = batches[i];
    if (overlap > 0) {
      at::Tensor shared = merged.narrow(0, end - overlap, overlap);
      at::Tensor incoming = t.narrow(0, 0, overlap);
      if (mode == "truncate end") shared.copy_(incoming);
      else if (weight.defined()) shared.copy_(shared * (1 - weight) + incoming * weight);
    }
    const int64_t added = t.size(0) - overlap;
    merged.narrow(0, end, added).copy_(t.narrow(0, overlap, added));
    end += added;
  }
  return merged;
}

NodeDef rebatch_images() {
  NodeDef d = NodeDef::named("RebatchImages", "Rebatch Images", "image/batch",
                             "The images of every incoming batch, in order, in batches of batch_size (the last may be "
                             "smaller); a batch starts a new one where the image size changes.");
  d.spec.inputs = {image_input("images"),
                   InputSpec::Int("batch_size", 1).range(1, 4096).help("Number of images or frames in each output batch."),
                   InputSpec::Int("overlap", 0)
                       .range(0, 4096)
                       .help("Frames duplicated between output splits and reconciled between input batches.")
                       .with_ui(R"({"advanced": true})"),
                   InputSpec::Choice("merge_overlap_mode", kMergeModes)
                       .help("How overlapping frames from consecutive input batches are merged.")
                       .with_ui(R"({"advanced": true})")};
  d.spec.outputs = {{"IMAGE", IMAGE, /*is_list=*/true}};
  d.spec.input_is_list = true;
  d.run = [](const Inputs& in, Context& ctx) -> Outputs {
    // Every input arrives as a list; the settings are their first elements.
    const int64_t batch_size = in["batch_size"].as_list().at(0).as_int();
    const int64_t overlap = in.has("overlap") ? in["overlap"].as_list().at(0).as_int() : 0;
    const std::string mode = in.has("merge_overlap_mode") ? in["merge_overlap_mode"].as_list().at(0).as_string() : kMergeModes[0];
    std::vector<at::Tensor> pending;
    for (const Value& v : in["images"].as_list()) {
      const at::Tensor& t = v.as_tensor();
      if (!t.defined() || t.dim() != 4) throw Error("input 'images' holds something that is not an IMAGE: " + Inputs::describe(t));
      pending.push_back(t);
    }
    List out;
    if (pending.empty()) return {Value(std::move(out))};
    if (overlap >= batch_size) throw Error("Rebatch overlap must be smaller than the batch size");
    auto compatible = [](const at::Tensor& a, const at::Tensor& b) {
      return a.size(1) == b.size(1) && a.size(2) == b.size(2) && a.size(3) == b.size(3);
    };
    while (!pending.empty()) {
      ctx.check_cancelled();
      std::size_t count = 1;
      int64_t length = pending.front().size(0);
      while (length < batch_size && count < pending.size()) {
        const at::Tensor& next = pending[count];
        if (!compatible(pending.front(), next)) break;
        if (overlap > std::min(length, next.size(0))) throw Error("Rebatch overlap cannot exceed an input batch");
        length += next.size(0) - overlap;
        ++count;
      }
      at::Tensor merged =
          merge_batches(std::vector<at::Tensor>(pending.begin(), pending.begin() + static_cast<std::ptrdiff_t>(count)),
                        overlap, mode);
      pending.erase(pending.begin(), pending.begin() + static_cast<std::ptrdiff_t>(count));
      out.push_back(merged.narrow(0, 0, std::min(batch_size, merged.size(0))).contiguous());
      if (length > batch_size)
        pending.insert(pending.begin(), merged.narrow(0, batch_size - overlap, merged.size(0) - (batch_size - overlap)));
    }
    return {Value(std::move(out))};
  };
  return d;
}

NodeDef image_pad_for_outpaint() {
  NodeDef d = NodeDef::named("ImagePadForOutpaint", "Pad Image for Outpainting", "image/transform",
                             "Pads with grey (0.5) and gives the MASK of what to paint: 1 outside, and inside a "
                             "quadratic fall-off over `feathering` pixels from each padded side.");
  auto side = [](const char* name) { return InputSpec::Int(name, 0).range(0, kMaxResolution).with_step(8); };
  d.spec.inputs = {image_input(), side("left"), side("top"), side("right"), side("bottom"),
                   InputSpec::Int("feathering", 40).range(0, kMaxResolution).with_step(1)};
  d.spec.outputs = {{"IMAGE", IMAGE}, {"MASK", types::MASK}};
  d.run = [](const Inputs& in, Context&) -> Outputs {
    const at::Tensor& image = in.image_or_rgba("image");
    const int64_t left = in.integer("left"), top = in.integer("top"), right = in.integer("right"),
                  bottom = in.integer("bottom"), f = in.integer("feathering");
    const int64_t b = image.size(0), c = image.size(1), h = image.size(2), w = image.size(3);
    at::Tensor out = at::full({b, c, h + top + bottom, w + left + right}, 0.5, image.options());
    out.narrow(2, top, h).narrow(3, left, w).copy_(image);
    at::Tensor mask = at::ones({1, 1, h + top + bottom, w + left + right}, at::kFloat);
    at::Tensor inner = at::zeros({h, w}, at::kDouble);
    if (f > 0 && f * 2 < h && f * 2 < w) {
      at::Tensor i = at::arange(h, at::kDouble).unsqueeze(1).expand({h, w});
      at::Tensor j = at::arange(w, at::kDouble).unsqueeze(0).expand({h, w});
      at::Tensor dist = at::minimum(at::minimum(top != 0 ? i : at::full_like(i, h), bottom != 0 ? h - i : at::full_like(i, h)),
                                    at::minimum(left != 0 ? j : at::full_like(j, w), right != 0 ? w - j : at::full_like(j, w)));
      at::Tensor v = (static_cast<double>(f) - dist) / static_cast<double>(f);
      inner = at::where(dist < f, v * v, at::zeros_like(v));
    }
    mask[0][0].narrow(0, top, h).narrow(1, left, w).copy_(inner.to(at::kFloat));
    return {out, mask.to(image.device())};
  };
  return d;
}

NodeDef image_flip() {
  NodeDef d = NodeDef::named("ImageFlip", "Flip Image", "image/transform",
                             "Mirrors top to bottom (about the x axis) or left to right (about the y axis).");
  d.spec.inputs = {image_input(), InputSpec::Choice("flip_method", {"x-axis: vertically", "y-axis: horizontally"})};
  d.spec.outputs = {{"IMAGE", IMAGE}};
  d.run = [](const Inputs& in, Context&) -> Outputs {
    const at::Tensor& image = in.image_or_rgba("image");
    const std::string& how = in.string("flip_method");
    if (how.rfind("x", 0) == 0) return {at::flip(image, {2})};
    if (how.rfind("y", 0) == 0) return {at::flip(image, {3})};
    return {image};
  };
  return d;
}

NodeDef image_rotate() {
  NodeDef d = NodeDef::named("ImageRotate", "Rotate Image", "image/transform", "Rotates by a multiple of 90 degrees, clockwise.");
  d.spec.inputs = {image_input(), InputSpec::Choice("rotation", {"none", "90 degrees", "180 degrees", "270 degrees"})};
  d.spec.outputs = {{"IMAGE", IMAGE}};
  d.run = [](const Inputs& in, Context&) -> Outputs {
    const at::Tensor& image = in.image_or_rgba("image");
    const std::string& r = in.string("rotation");
    const int64_t k = r.rfind("90", 0) == 0 ? 1 : r.rfind("180", 0) == 0 ? 2 : r.rfind("270", 0) == 0 ? 3 : 0;
    return {at::rot90(image, k, {3, 2}).contiguous()};
  };
  return d;
}

// Pads `t` along `dim` by `total`, split as ComfyUI's stitch does (the odd pixel after).
at::Tensor pad_centred(const at::Tensor& t, int64_t dim, int64_t total, double value) {
  const int64_t before = total / 2, after = total - total / 2;
  if (dim == 2) return at::constant_pad_nd(t, {0, 0, before, after}, value);
  return at::constant_pad_nd(t, {before, after}, value);
}

NodeDef image_stitch() {
  NodeDef d = NodeDef::named("ImageStitch", "Stitch Images",
                             "image/transform",
                             "Stitches image2 to image1 in the specified direction.\nIf image2 is not provided, "
                             "returns image1 unchanged.\nOptional spacing can be added between images.");
  d.spec.inputs = {image_input("image1"), InputSpec::Choice("direction", {"right", "down", "left", "up"}),
                   InputSpec::Boolean("match_image_size", true),
                   InputSpec::Int("spacing_width", 0).range(0, 1024).with_step(2),
                   InputSpec::Choice("spacing_color", {"white", "black", "red", "green", "blue"}),
                   image_input("image2").optional()};
  d.spec.outputs = {{"IMAGE", IMAGE}};
  d.run = [](const Inputs& in, Context&) -> Outputs {
    at::Tensor image1 = in.image_or_rgba("image1");
    if (!in.has("image2")) return {image1};
    at::Tensor image2 = in.image_or_rgba("image2").to(image1.device());
    const std::string& direction = in.string("direction");
    const bool horizontal = direction == "left" || direction == "right";
    std::tie(image1, image2) = match_grey(image1, image2);
    const int64_t batch = std::max(image1.size(0), image2.size(0));
    auto fill_batch = [&](const at::Tensor& t) {
      return t.size(0) < batch ? at::cat({t, t.narrow(0, t.size(0) - 1, 1).repeat({batch - t.size(0), 1, 1, 1})}) : t;
    };
    image1 = fill_batch(image1);
    image2 = fill_batch(image2);
    const std::string& colour = in.string("spacing_color");
    const bool grey_spacing = colour == "white" || colour == "black";
    if (in.boolean("match_image_size")) {
      const int64_t h1 = image1.size(2), w1 = image1.size(3);
      const double aspect = static_cast<double>(image2.size(3)) / image2.size(2);
      const int64_t tw = horizontal ? static_cast<int64_t>(h1 * aspect) : w1;
      const int64_t th = horizontal ? h1 : static_cast<int64_t>(w1 / aspect);
      image2 = common_upscale(image2, tw, th, "lanczos", "disabled");
    } else {
      const double pad_value = colour == "white" ? 1.0 : 0.0;  // a colour pads with black, as ComfyUI
      const int dim = horizontal ? 2 : 3;
      const int64_t target = std::max(image1.size(dim), image2.size(dim));
      if (image1.size(dim) < target) image1 = pad_centred(image1, dim, target - image1.size(dim), pad_value);
      if (image2.size(dim) < target) image2 = pad_centred(image2, dim, target - image2.size(dim), pad_value);
    }
    if (image1.size(1) != image2.size(1)) {
      const int64_t channels = std::max(image1.size(1), image2.size(1));
      auto widen = [&](const at::Tensor& t) {
        if (t.size(1) == channels) return t;
        return at::cat({t, at::ones({t.size(0), channels - t.size(1), t.size(2), t.size(3)}, t.options())}, 1);
      };
      image1 = widen(image1);
      image2 = widen(image2);
    }
    std::vector<at::Tensor> parts = direction == "left" || direction == "up" ? std::vector<at::Tensor>{image2, image1}
                                                                                : std::vector<at::Tensor>{image1, image2};
    int64_t spacing = in.integer("spacing_width");
    if (spacing > 0) {
      spacing += spacing % 2;
      const int64_t c = image1.size(1);
      at::Tensor gap = horizontal ? at::zeros({image1.size(0), c, std::max(image1.size(2), image2.size(2)), spacing}, image1.options())
                                  : at::zeros({image1.size(0), c, spacing, std::max(image1.size(3), image2.size(3))}, image1.options());
      if (grey_spacing) {
        gap.narrow(1, 0, std::min<int64_t>(3, c)).fill_(colour == "white" ? 1.0 : 0.0);
      } else {
        const int index = colour == "red" ? 0 : colour == "green" ? 1 : 2;
        if (index < c) gap.narrow(1, index, 1).fill_(1.0);
      }
      if (c == 4) gap.narrow(1, 3, 1).fill_(1.0);
      parts.insert(parts.begin() + 1, gap);
    }
    return {at::cat(parts, horizontal ? 3 : 2)};
  };
  return d;
}

NodeDef image_batch() {
  NodeDef d = NodeDef::named("ImageBatch", "Batch Images (DEPRECATED)", "image/batch",
                             "Joins two batches into one. image2 is resized (bilinear, centre-cropped to the aspect "
                             "ratio) to image1's size if they differ; an opaque alpha is added to the one without; a "
                             "grey batch is repeated to three channels when the other is colour.");
  d.spec.inputs = {image_input("image1"), image_input("image2")};
  d.spec.outputs = {{"IMAGE", IMAGE}};
  d.spec.ui = R"({"deprecated": true})";
  d.run = [](const Inputs& in, Context&) -> Outputs {
    at::Tensor a = in.image_or_rgba("image1"), b = in.image_or_rgba("image2").to(a.device());
    std::tie(a, b) = match_grey(a, b);
    if (a.size(1) > b.size(1)) b = at::constant_pad_nd(b, {0, 0, 0, 0, 0, 1}, 1.0);
    else if (b.size(1) > a.size(1)) a = at::constant_pad_nd(a, {0, 0, 0, 0, 0, 1}, 1.0);
    if (a.size(2) != b.size(2) || a.size(3) != b.size(3)) b = common_upscale(b, a.size(3), a.size(2), "bilinear", "center");
    return {at::cat({a, b}, 0)};
  };
  return d;
}

NodeDef repeat_image_batch() {
  NodeDef d = NodeDef::named("RepeatImageBatch", "Repeat Image Batch", "image/batch", "The batch repeated `amount` times.");
  d.spec.inputs = {image_input(), InputSpec::Int("amount", 1).range(1, 4096)};
  d.spec.outputs = {{"IMAGE", IMAGE}};
  d.run = [](const Inputs& in, Context&) -> Outputs {
    return {in.image_or_rgba("image").repeat({in.integer("amount"), 1, 1, 1})};
  };
  return d;
}

NodeDef image_from_batch() {
  NodeDef d = NodeDef::named("ImageFromBatch", "Get Image from Batch", "image/batch",
                             "`length` images from batch_index on (negative counts from the end), clipped to the batch.");
  d.spec.inputs = {image_input(), InputSpec::Int("batch_index", 0).range(-kMaxResolution, kMaxResolution),
                   InputSpec::Int("length", 1).range(1, 4096)};
  d.spec.outputs = {{"IMAGE", IMAGE}};
  d.run = [](const Inputs& in, Context&) -> Outputs {
    const at::Tensor& image = in.image_or_rgba("image");
    const int64_t n = image.size(0);
    int64_t index = in.integer("batch_index");
    if (index < 0) index += n;
    index = std::max<int64_t>(0, std::min(n - 1, index));
    const int64_t length = std::min(n - index, in.integer("length"));
    return {image.narrow(0, index, length).clone()};
  };
  return d;
}

NodeDef get_image_size() {
  NodeDef d = NodeDef::named("GetImageSize", "Get Image Size", "image", "Returns the width, height, and batch size of the image.");
  d.spec.inputs = {image_input()};
  d.spec.outputs = {{"width", INT}, {"height", INT}, {"batch_size", INT}};
  d.run = [](const Inputs& in, Context& ctx) -> Outputs {
    const at::Tensor& image = in.image_or_rgba("image");
    ctx.show_text("width: " + std::to_string(image.size(3)) + ", height: " + std::to_string(image.size(2)) +
                  "\n batch size: " + std::to_string(image.size(0)));
    return {Value(image.size(3)), Value(image.size(2)), Value(image.size(0))};
  };
  return d;
}


// kornia.filters.canny as ComfyUI calls it (kernel 5 x 5, sigma 1,
// hysteresis on), its tensor operations in its order.
at::Tensor kornia_canny(const at::Tensor& image, double low, double high) {
  const auto options = image.options();
  at::Tensor x = image;
  if (x.size(1) == 3) {
    at::Tensor w = at::tensor({0.299f, 0.587f, 0.114f}, options);
    x = w[0] * x.narrow(1, 0, 1) + w[1] * x.narrow(1, 1, 1) + w[2] * x.narrow(1, 2, 1);
  }
  const int64_t b = x.size(0), c = x.size(1), h = x.size(2), wd = x.size(3);
  if (h < 3 || wd < 3) throw Error("Canny needs an image of at least 3 x 3 pixels");
  // gaussian_blur2d: a separable 5-tap Gaussian, sigma 1, reflected borders.
  at::Tensor t = at::arange(5, options) - 2;
  at::Tensor sigma = at::ones({1, 1}, options);
  at::Tensor gauss = at::exp(-t.pow(2.0).expand({1, -1}) / (2 * sigma.pow(2.0)));
  gauss = gauss / gauss.sum(-1, true);
  at::Tensor kx = gauss.view({1, 1, 1, 5}).expand({-1, c, -1, -1}).reshape({-1, 1, 1, 5});
  at::Tensor ky = gauss.view({1, 1, 5, 1}).expand({-1, c, -1, -1}).reshape({-1, 1, 5, 1});
  at::Tensor blurred = at::conv2d(at::pad(x, {2, 2, 0, 0}, "reflect"), kx, c10::nullopt, at::IntArrayRef{1}, at::IntArrayRef{0}, at::IntArrayRef{1}, c);
  blurred = at::conv2d(at::pad(blurred, {0, 0, 2, 2}, "reflect"), ky, c10::nullopt, at::IntArrayRef{1}, at::IntArrayRef{0}, at::IntArrayRef{1}, c);
  // spatial_gradient: Sobel, not normalised, replicated borders.
  at::Tensor sobel_x = at::tensor({-1.f, 0.f, 1.f, -2.f, 0.f, 2.f, -1.f, 0.f, 1.f}, options).view({3, 3});
  at::Tensor sobel = at::stack({sobel_x, sobel_x.transpose(0, 1)}).unsqueeze(1);
  at::Tensor padded = at::pad(blurred.reshape({b * c, 1, h, wd}), {1, 1, 1, 1}, "replicate");
  at::Tensor gradients = at::conv2d(padded, sobel).reshape({b, c, 2, h, wd});
  at::Tensor gx = gradients.select(2, 0), gy = gradients.select(2, 1);
  at::Tensor magnitude = at::sqrt(gx * gx + gy * gy + 1e-6);
  at::Tensor angle = 180.0 * at::atan2(gy, gx) / M_PI;
  angle = at::round(angle / 45) * 45;
  // Non-maximum suppression along the rounded gradient direction.
  static const float nms[8][9] = {{0, 0, 0, 0, 1, -1, 0, 0, 0}, {0, 0, 0, 0, 1, 0, 0, 0, -1}, {0, 0, 0, 0, 1, 0, 0, -1, 0},
                                  {0, 0, 0, 0, 1, 0, -1, 0, 0}, {0, 0, 0, -1, 1, 0, 0, 0, 0}, {-1, 0, 0, 0, 1, 0, 0, 0, 0},
                                  {0, -1, 0, 0, 1, 0, 0, 0, 0}, {0, 0, -1, 0, 1, 0, 0, 0, 0}};
  static const float hysteresis[8][9] = {{0, 0, 0, 0, 0, 1, 0, 0, 0}, {0, 0, 0, 0, 0, 0, 0, 0, 1}, {0, 0, 0, 0, 0, 0, 0, 1, 0},
                                         {0, 0, 0, 0, 0, 0, 1, 0, 0}, {0, 0, 0, 1, 0, 0, 0, 0, 0}, {1, 0, 0, 0, 0, 0, 0, 0, 0},
                                         {0, 1, 0, 0, 0, 0, 0, 0, 0}, {0, 0, 1, 0, 0, 0, 0, 0, 0}};
  at::Tensor nms_kernels = at::from_blob(const_cast<float*>(&nms[0][0]), {8, 1, 3, 3}, at::kFloat).to(options);
  at::Tensor nms_magnitude = at::conv2d(magnitude, nms_kernels, {}, 1, 1);
  at::Tensor positive = at::remainder(angle / 45, 8).to(at::kLong);
  at::Tensor negative = at::remainder(angle / 45 + 4, 8).to(at::kLong);
  at::Tensor selected = at::stack({at::gather(nms_magnitude, 1, positive), at::gather(nms_magnitude, 1, negative)}, 1);
  at::Tensor is_max = std::get<0>(selected.min(1)) > 0.0;
  magnitude = magnitude * is_max;
  // Thresholds: 1 strong, 0.5 weak; then weak edges next to strong ones
  // become strong until nothing changes.
  at::Tensor edges = ((magnitude > low) * 0.5 + (magnitude > high) * 0.5).to(options.dtype());
  at::Tensor kernels = at::from_blob(const_cast<float*>(&hysteresis[0][0]), {8, 1, 3, 3}, at::kFloat).to(options);
  at::Tensor old = -at::ones(edges.sizes(), options);
  at::Tensor linked;
  while ((old - edges).abs().ne(0).any().item<bool>()) {
    at::Tensor weak = (edges == 0.5).to(at::kFloat), strong = (edges == 1).to(at::kFloat);
    linked = (at::conv2d(edges, kernels, {}, 1, 1) == 1).any(1, true).to(options.dtype());
    linked = linked * weak + strong;
    old = edges.clone();
    edges = linked + (linked == 0) * weak * 0.5;
  }
  return linked;
}

NodeDef canny() {
  NodeDef d = NodeDef::named("Canny", "Detect Edges (Canny)", "image/filters",
                             "Edges, white on black, by kornia's Canny as ComfyUI calls it: grey (BT.601), a 5 x 5 "
                             "Gaussian (sigma 1), Sobel gradients, non-maximum suppression, hysteresis between the "
                             "thresholds (gradient magnitudes).");
  d.spec.inputs = {image_input(), InputSpec::Float("low_threshold", 0.4).range(0.01, 0.99).with_step(0.01),
                   InputSpec::Float("high_threshold", 0.8).range(0.01, 0.99).with_step(0.01),
                   InputSpec::Choice("device", {"cpu", "gpu"}).optional().help("gpu: the run's device")};
  d.spec.outputs = {{"IMAGE", IMAGE}};
  d.run = [](const Inputs& in, Context& ctx) -> Outputs {
    const at::Tensor& image = in.image("image");
    const double low = in.number("low_threshold"), high = in.number("high_threshold");
    if (low > high) throw Error("low_threshold must not be above high_threshold");
    const bool gpu = in.has("device") && in.string("device") == "gpu";
    at::Tensor edges = kornia_canny(image.to(gpu ? ctx.device() : c10::Device(c10::kCPU)), low, high);
    return {edges.repeat({1, 3, 1, 1}).to(image.device())};
  };
  return d;
}

}  // namespace

void register_image_nodes(Registrar& r) {
  r.add(image_scale());
  r.add(image_scale_by());
  r.add(image_scale_to_total_pixels());
  r.add(image_scale_to_max_dimension());
  r.add(resize_and_pad());
  r.add(image_invert());
  r.add(image_blur());
  r.add(image_sharpen());
  r.add(image_blend());
  r.add(image_add_noise());
  r.add(image_crop());
  r.add(image_crop_v2());
  r.add(rebatch_images());
  r.add(image_pad_for_outpaint());
  r.add(image_flip());
  r.add(image_rotate());
  r.add(image_stitch());
  r.add(image_batch());
  r.add(repeat_image_batch());
  r.add(image_from_batch());
  r.add(get_image_size());
  r.add(canny());
}

}  // namespace cozy::comfy
