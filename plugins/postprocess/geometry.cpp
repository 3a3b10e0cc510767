// Geometry and composition.
#include "common.hpp"

#include <opencv2/imgproc.hpp>

#include <cmath>

namespace cozy::postprocess {
namespace {

const std::vector<std::string> kMethods = {"bilinear", "nearest", "bicubic", "area", "lanczos"};

// Resizes with torch where it matches OpenCV (nearest, bilinear, bicubic,
// area by a whole factor) and with OpenCV otherwise (lanczos, other area).
at::Tensor resize(const at::Tensor& image, int64_t h, int64_t w, const std::string& method, int threads) {
  if (h == image.size(2) && w == image.size(3)) return image;
  at::Tensor x = image.contiguous();
  if (cpu_kernels(image)) {
    const int interpolation = method == "nearest"    ? cv::INTER_NEAREST
                              : method == "bilinear" ? cv::INTER_LINEAR
                              : method == "bicubic"  ? cv::INTER_CUBIC
                              : method == "area"     ? cv::INTER_AREA
                                                     : cv::INTER_LANCZOS4;
    at::Tensor out = per_plane(x, h, w, threads, [&](const cv::Mat& src, cv::Mat& dst) {
      cv::resize(src, dst, dst.size(), 0, 0, interpolation);
    });
    return method == "bicubic" || method == "lanczos" ? out.clamp_(0, 1) : out;
  }
  if (method == "nearest") return at::upsample_nearest2d(x, {h, w});
  if (method == "bilinear") return at::upsample_bilinear2d(x, {h, w}, /*align_corners=*/false);
  if (method == "bicubic") return at::upsample_bicubic2d(x, {h, w}, false).clamp(0, 1);
  if (method == "area" && image.size(2) % h == 0 && image.size(3) % w == 0) return at::adaptive_avg_pool2d(x, {h, w});
  int interpolation = method == "area" ? cv::INTER_AREA : cv::INTER_LANCZOS4;
  at::Tensor out = per_plane(x, h, w, threads, [&](const cv::Mat& src, cv::Mat& dst) {
    cv::resize(src, dst, dst.size(), 0, 0, interpolation);
  });
  return out.clamp(0, 1);
}

int64_t scaled(int64_t size, double factor) { return std::max<int64_t>(1, std::llround(size * factor)); }

// A grey image repeated to three channels when the other operand has three.
std::pair<at::Tensor, at::Tensor> match_channels(at::Tensor a, at::Tensor b) {
  if (a.size(1) != b.size(1)) {
    if (a.size(1) == 1) a = a.expand({-1, 3, -1, -1});
    else b = b.expand({-1, 3, -1, -1});
  }
  return {a, b};
}

}  // namespace

void register_geometry(Registrar& r) {
  {
    NodeDef d = filter("Resize", "Resize", "geometry",
                       "To width x height (0 keeps the aspect ratio from the other side). nearest, bilinear and "
                       "bicubic (OpenCV's conventions: pixel centres, A = -0.75) and area by a whole factor run as "
                       "tensor operations on the device; lanczos and other area sizes use OpenCV on the CPU.");
    d.spec.inputs.push_back(InputSpec::Int("width", 512).range(0, 16384));
    d.spec.inputs.push_back(InputSpec::Int("height", 512).range(0, 16384));
    d.spec.inputs.push_back(InputSpec::Choice("method", kMethods));
    d.run = [](const Inputs& in, Context& ctx) -> Outputs {
      at::Tensor image = image_input(in, "image");
      int64_t w = in.integer("width"), h = in.integer("height");
      if (w == 0 && h == 0) throw Error("width and height cannot both be 0");
      if (w == 0) w = scaled(image.size(3), static_cast<double>(h) / image.size(2));
      if (h == 0) h = scaled(image.size(2), static_cast<double>(w) / image.size(3));
      return {resize(image, h, w, in.string("method"), ctx.threads())};
    };
    r.add(std::move(d));
  }
  {
    NodeDef d = filter("Upscale", "Upscale by Factor", "geometry",
                       "Resizes both sides by factor (rounded), with Resize's methods.");
    d.spec.inputs.push_back(InputSpec::Float("factor", 2.0).range(0.05, 16).with_step(0.05));
    d.spec.inputs.push_back(InputSpec::Choice("method", {"bicubic", "bilinear", "nearest", "area", "lanczos"}));
    d.run = [](const Inputs& in, Context& ctx) -> Outputs {
      at::Tensor image = image_input(in, "image");
      double f = in.number("factor");
      return {resize(image, scaled(image.size(2), f), scaled(image.size(3), f), in.string("method"), ctx.threads())};
    };
    r.add(std::move(d));
  }
  {
    NodeDef d = filter("Crop", "Crop", "geometry", "The rectangle at (x, y) of width x height; it must lie inside.");
    d.spec.inputs.push_back(InputSpec::Int("x", 0).range(0, 16384));
    d.spec.inputs.push_back(InputSpec::Int("y", 0).range(0, 16384));
    d.spec.inputs.push_back(InputSpec::Int("width", 256).range(1, 16384));
    d.spec.inputs.push_back(InputSpec::Int("height", 256).range(1, 16384));
    d.run = [](const Inputs& in, Context&) -> Outputs {
      at::Tensor image = image_input(in, "image");
      int64_t x = in.integer("x"), y = in.integer("y"), w = in.integer("width"), h = in.integer("height");
      if (x + w > image.size(3))
        throw Error("x + width = " + std::to_string(x + w) + " exceeds the image width " + std::to_string(image.size(3)));
      if (y + h > image.size(2))
        throw Error("y + height = " + std::to_string(y + h) + " exceeds the image height " +
                    std::to_string(image.size(2)));
      if (cpu_kernels(image)) {  // row copies straight from the tensor's planes
        return {per_plane(image, h, w, 1, [&](const cv::Mat& src, cv::Mat& dst) {
          src(cv::Rect(static_cast<int>(x), static_cast<int>(y), static_cast<int>(w), static_cast<int>(h))).copyTo(dst);
        })};
      }
      return {image.narrow(2, y, h).narrow(3, x, w).contiguous()};
    };
    r.add(std::move(d));
  }
  {
    NodeDef d = filter("Pad", "Pad", "geometry",
                       "Adds borders: constant (value), reflect (OpenCV's BORDER_REFLECT_101, narrower than the "
                       "image) or replicate (the edge pixel).");
    for (const char* side : {"left", "top", "right", "bottom"})
      d.spec.inputs.push_back(InputSpec::Int(side, 0).range(0, 4096));
    d.spec.inputs.push_back(InputSpec::Choice("mode", {"constant", "reflect", "replicate"}));
    d.spec.inputs.push_back(InputSpec::Float("value", 0.0).range(0, 1).with_step(0.01).help("constant mode only"));
    d.run = [](const Inputs& in, Context& ctx) -> Outputs {
      at::Tensor image = image_input(in, "image");
      std::vector<int64_t> pad = {in.integer("left"), in.integer("right"), in.integer("top"), in.integer("bottom")};
      const std::string& mode = in.string("mode");
      if (mode == "reflect" &&
          (pad[0] >= image.size(3) || pad[1] >= image.size(3) || pad[2] >= image.size(2) || pad[3] >= image.size(2)))
        throw Error("reflect padding must be narrower than the image (" + std::to_string(image.size(3)) + " x " +
                    std::to_string(image.size(2)) + ")");
      if (cpu_kernels(image)) {
        const int border = mode == "constant" ? cv::BORDER_CONSTANT
                           : mode == "reflect" ? cv::BORDER_REFLECT_101
                                               : cv::BORDER_REPLICATE;
        const double value = in.number("value");
        return {per_plane(image, image.size(2) + pad[2] + pad[3], image.size(3) + pad[0] + pad[1], ctx.threads(),
                          [&](const cv::Mat& src, cv::Mat& dst) {
                            cv::copyMakeBorder(src, dst, int(pad[2]), int(pad[3]), int(pad[0]), int(pad[1]), border,
                                               cv::Scalar::all(value));
                          })};
      }
      if (mode == "constant") return {at::constant_pad_nd(image, pad, in.number("value"))};
      if (mode == "reflect") return {at::reflection_pad2d(image.contiguous(), pad)};
      return {at::replication_pad2d(image.contiguous(), pad)};
    };
    r.add(std::move(d));
  }
  {
    NodeDef d = filter("Rotate", "Rotate", "geometry",
                       "Rotates counter-clockwise by degrees about the centre (OpenCV's getRotationMatrix2D), "
                       "bilinear, outside filled with fill. expand grows the canvas to hold the whole image. "
                       "Multiples of 90 are exact.");
    d.spec.inputs.push_back(InputSpec::Float("degrees", 0.0).range(-360, 360).with_step(1));
    d.spec.inputs.push_back(InputSpec::Boolean("expand", false));
    d.spec.inputs.push_back(InputSpec::Float("fill", 0.0).range(0, 1).with_step(0.01));
    d.run = [](const Inputs& in, Context& ctx) -> Outputs {
      at::Tensor image = image_input(in, "image");
      const double degrees = in.number("degrees");
      const bool expand = in.boolean("expand");
      const int64_t h = image.size(2), w = image.size(3);
      double quarter = degrees / 90.0;
      if (quarter == std::round(quarter)) {
        int turns = static_cast<int>(((static_cast<long>(std::round(quarter)) % 4) + 4) % 4);
        if (turns == 0) return {image};
        if (turns == 2 || expand || h == w) return {at::rot90(image, turns, {2, 3}).contiguous()};
      }
      const double a = degrees * M_PI / 180.0, cos_a = std::cos(a), sin_a = std::sin(a);
      int64_t out_w = w, out_h = h;
      if (expand) {
        out_w = static_cast<int64_t>(std::ceil(std::abs(w * cos_a) + std::abs(h * sin_a) - 1e-9));
        out_h = static_cast<int64_t>(std::ceil(std::abs(w * sin_a) + std::abs(h * cos_a) - 1e-9));
      }
      if (cpu_kernels(image)) {
        cv::Mat matrix = cv::getRotationMatrix2D(cv::Point2f((w - 1) / 2.f, (h - 1) / 2.f), degrees, 1.0);
        matrix.at<double>(0, 2) += (out_w - 1) / 2.0 - (w - 1) / 2.0;
        matrix.at<double>(1, 2) += (out_h - 1) / 2.0 - (h - 1) / 2.0;
        const double fill = in.number("fill");
        return {per_plane(image, out_h, out_w, ctx.threads(), [&](const cv::Mat& src, cv::Mat& dst) {
                  cv::warpAffine(src, dst, matrix, dst.size(), cv::INTER_LINEAR, cv::BORDER_CONSTANT,
                                 cv::Scalar::all(fill));
                }).clamp_(0, 1)};
      }
      // For each output pixel, the source position: the inverse of OpenCV's
      // rotation matrix about the centres, in pixel coordinates.
      auto options = image.options();
      at::Tensor ys = at::arange(out_h, options) - (out_h - 1) / 2.0;
      at::Tensor xs = at::arange(out_w, options) - (out_w - 1) / 2.0;
      auto grid_yx = at::meshgrid({ys, xs}, "ij");
      at::Tensor sx = grid_yx[1] * cos_a - grid_yx[0] * sin_a + (w - 1) / 2.0;
      at::Tensor sy = grid_yx[1] * sin_a + grid_yx[0] * cos_a + (h - 1) / 2.0;
      // grid_sample with align_corners: -1 and 1 are the centres of the edge pixels.
      at::Tensor grid = at::stack({sx / std::max<int64_t>(w - 1, 1) * 2 - 1, sy / std::max<int64_t>(h - 1, 1) * 2 - 1}, 2);
      grid = grid.unsqueeze(0).expand({image.size(0), out_h, out_w, 2});
      at::Tensor rotated = at::grid_sampler(image, grid, /*bilinear*/ 0, /*zeros*/ 0, /*align_corners=*/true);
      at::Tensor coverage = at::grid_sampler(at::ones({image.size(0), 1, h, w}, options), grid, 0, 0, true);
      return {(rotated + in.number("fill") * (1 - coverage)).clamp(0, 1)};
    };
    r.add(std::move(d));
  }
  {
    NodeDef d = filter("Flip", "Flip", "geometry", "Mirrors left-right (horizontal), top-bottom (vertical), or both.");
    d.spec.inputs.push_back(InputSpec::Choice("direction", {"horizontal", "vertical", "both"}));
    d.run = [](const Inputs& in, Context& ctx) -> Outputs {
      at::Tensor image = image_input(in, "image");
      const std::string& direction = in.string("direction");
      if (cpu_kernels(image)) {
        const int code = direction == "horizontal" ? 1 : direction == "vertical" ? 0 : -1;
        return {per_plane(image, image.size(2), image.size(3), ctx.threads(),
                          [&](const cv::Mat& src, cv::Mat& dst) { cv::flip(src, dst, code); })};
      }
      if (direction == "horizontal") return {image.flip({3})};
      if (direction == "vertical") return {image.flip({2})};
      return {image.flip({2, 3})};
    };
    r.add(std::move(d));
  }
  {
    NodeDef d;
    d.spec.class_type = "Blend";
    d.spec.display_name = "Blend";
    d.spec.category = "image/postprocess/composition";
    d.spec.description =
        "Composites layer over base: normal L, multiply B L, screen 1 - (1 - B)(1 - L), overlay (B < 0.5 ? 2 B L : "
        "1 - 2 (1 - B)(1 - L)); out = B + opacity x mask x (blend - B). Sizes must match; a batch of 1 is "
        "broadcast.";
    d.spec.inputs = {InputSpec::Link("base", types::IMAGE), InputSpec::Link("layer", types::IMAGE),
                     InputSpec::Choice("mode", {"normal", "multiply", "screen", "overlay"}),
                     InputSpec::Float("opacity", 1.0).range(0, 1).with_step(0.01),
                     InputSpec::Link("mask", types::MASK).optional()};
    d.spec.outputs = {{"IMAGE", types::IMAGE}};
    d.run = [](const Inputs& in, Context&) -> Outputs {
      auto [base, layer] = match_channels(image_input(in, "base"), image_input(in, "layer"));
      if (base.size(2) != layer.size(2) || base.size(3) != layer.size(3))
        throw Error("base is " + std::to_string(base.size(3)) + " x " + std::to_string(base.size(2)) +
                    " but layer is " + std::to_string(layer.size(3)) + " x " + std::to_string(layer.size(2)) +
                    "; resize one first");
      const std::string& mode = in.string("mode");
      at::Tensor blended = layer;
      if (mode == "multiply") blended = base * layer;
      else if (mode == "screen") blended = 1 - (1 - base) * (1 - layer);
      else if (mode == "overlay") blended = at::where(base < 0.5, 2 * base * layer, 1 - 2 * (1 - base) * (1 - layer));
      at::Tensor alpha = at::full({1, 1, 1, 1}, in.number("opacity"), base.options());
      if (in.has("mask")) {
        at::Tensor mask = mask_input(in, "mask");
        if (mask.size(2) != base.size(2) || mask.size(3) != base.size(3))
          throw Error("mask size differs from the images");
        alpha = alpha * mask.to(base.device());
      }
      return {(base + alpha * (blended - base)).clamp(0, 1)};
    };
    r.add(std::move(d));
  }
  {
    NodeDef d;
    d.spec.class_type = "ImageToMask";
    d.spec.display_name = "Convert Image to Mask";
    d.spec.category = "mask";
    d.spec.description = "One channel of an image (or its BT.601 luma) as a MASK. A grey image gives its one channel.";
    d.spec.inputs = {InputSpec::Link("image", types::IMAGE), InputSpec::Choice("channel", {"red", "green", "blue", "luma"})};
    d.spec.outputs = {{"MASK", types::MASK}};
    d.run = [](const Inputs& in, Context&) -> Outputs {
      at::Tensor image = image_input(in, "image");
      const std::string& channel = in.string("channel");
      if (image.size(1) == 1) return {image};
      if (channel == "luma") return {luma(image)};
      int64_t index = channel == "red" ? 0 : channel == "green" ? 1 : 2;
      return {image.narrow(1, index, 1).contiguous()};
    };
    r.add(std::move(d));
  }
  {
    NodeDef d;
    d.spec.class_type = "MaskToImage";
    d.spec.display_name = "Convert Mask to Image";
    d.spec.category = "mask";
    d.spec.description = "A MASK as a three-channel grey IMAGE, as ComfyUI's MaskToImage.";
    d.spec.inputs = {InputSpec::Link("mask", types::MASK)};
    d.spec.outputs = {{"IMAGE", types::IMAGE}};
    d.run = [](const Inputs& in, Context&) -> Outputs {
      return {mask_input(in, "mask").expand({-1, 3, -1, -1}).contiguous()};
    };
    r.add(std::move(d));
  }
}

}  // namespace cozy::postprocess
