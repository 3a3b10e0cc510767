// Geometry and composition.
#include "common.hpp"
#include "kernels.hpp"

#include <opencv2/imgproc.hpp>

#include <cmath>

namespace cozy::postprocess {
namespace {

// Runs `fn(plane, y)` for every output row of every plane of a batch, rows
// in parallel chunks. `streamed`: fn writes with non-temporal stores, fenced
// at the end of each chunk, before its thread joins.
template <class Fn>
void for_each_row(int64_t planes, int64_t rows, const Fn& fn, bool streamed = false) {
  parallel_for(0, planes * rows, 64, [&](int64_t begin, int64_t end) {
    for (int64_t plane = begin / rows, y = begin % rows, k = begin; k < end; ++k) {  // no division a row
      fn(plane, y);
      if (++y == rows) y = 0, ++plane;
    }
    if (streamed) kernels::stream_fence();
  });
}

// OpenCV's INTER_NEAREST source index for each of `out` positions over `in`
// (floor(i x in / out), as cv::resize computes it).
std::vector<int32_t> nearest_index(int64_t in, int64_t out) {
  const double step = 1.0 / (static_cast<double>(out) / static_cast<double>(in));
  std::vector<int32_t> index(static_cast<std::size_t>(out));
  for (int64_t i = 0; i < out; ++i)
    index[static_cast<std::size_t>(i)] =
        static_cast<int32_t>(std::min<int64_t>(static_cast<int64_t>(std::floor(i * step)), in - 1));
  return index;
}

// Nearest-neighbour resize of a CPU batch: one gather per output row, of
// all the image's planes at once.
at::Tensor resize_nearest(const at::Tensor& image, int64_t h, int64_t w) {
  const at::Tensor src = row_major(image);
  const Rows source(src);
  const int64_t channels = src.size(1), in_h = src.size(2), in_w = src.size(3);
  at::Tensor dst = at::empty({src.size(0), channels, h, w}, src.options());
  const std::vector<int32_t> xs = nearest_index(in_w, w), ys = nearest_index(in_h, h);
  float* d = dst.data_ptr<float>();
  for_each_row(src.size(0), h, [&](int64_t b, int64_t y) {
    const float* rows[3];
    float* out[3];
    for (int64_t c = 0; c < channels; ++c) {
      rows[c] = source(b, c, ys[static_cast<std::size_t>(y)]);
      out[c] = d + ((b * channels + c) * h + y) * w;
    }
    kernels::gather(rows, xs.data(), out, static_cast<int>(channels), w);
  });
  return dst;
}

// Pad on a CPU batch: each output row is a copy of its source row with its
// borders filled (a constant, the edge pixel, or the row mirrored about its
// edge pixel, reflect-101), a band of a plane's rows a call
// (kernels::pad_plane). An output larger than the last-level cache
// (kernels::streams) has the copied part of its rows streamed past the
// caches, whole lines only.
at::Tensor pad_rows(const at::Tensor& image, int64_t left, int64_t right, int64_t top, int64_t bottom, int mode,
                    float value) {
  const at::Tensor src = row_major(image);
  const Rows source(src);
  const int64_t channels = src.size(1), planes = src.size(0) * channels, h = src.size(2), w = src.size(3);
  const int64_t out_h = h + top + bottom, out_w = w + left + right;
  at::Tensor dst = at::empty({src.size(0), src.size(1), out_h, out_w}, src.options());
  float* d = dst.data_ptr<float>();
  const bool stream = kernels::streams(static_cast<int64_t>(dst.nbytes()));
  const int kernel_mode = mode == cv::BORDER_CONSTANT    ? kernels::kPadConstant
                          : mode == cv::BORDER_REPLICATE ? kernels::kPadReplicate
                                                         : kernels::kPadReflect101;
  parallel_for(0, planes * out_h, 64, [&](int64_t begin, int64_t end) {
    for (int64_t k = begin; k < end;) {  // the rows of each plane in [begin, end)
      const int64_t plane = k / out_h, y = k % out_h, stop = std::min(end - plane * out_h, out_h);
      kernels::pad_plane(source(plane / channels, plane % channels, 0), source.row, h, w, d + plane * out_h * out_w,
                         top, left, right, kernel_mode, value, y, stop, stream);
      k += stop - y;
    }
  });
  return dst;
}

// Clamps a float plane to [0, 1] in place: right after OpenCV made it,
// while it is in the cache (a pass of its own over the batch cost lanczos
// another read and write of the whole output).
void clamp_plane(cv::Mat& plane) {
  for (int y = 0; y < plane.rows; ++y) {
    float* row = plane.ptr<float>(y);
    for (int i = 0; i < plane.cols; ++i) row[i] = clamp01f(row[i]);
  }
}

const std::vector<std::string> kMethods = {"bilinear", "nearest", "bicubic", "area", "lanczos"};

// One axis of OpenCV's Lanczos-4 resize (cv::resize, INTER_LANCZOS4), as
// 8 taps an output: output i reads source pixels s - 3 ... s + 4, s =
// floor(f), f = (i + 0.5) in / out - 0.5 (single precision, as OpenCV), the
// indices clamped to the image (OpenCV's replicated border), weighted by
// the windowed sinc at t = f - s + 3 - k: sin(pi t) sin(pi t / 4) / t^2,
// normalised to sum 1. With y = -pi t / 4 that is, up to a factor common to
// the 8 taps, (-1)^k sin(y_0 + k pi / 4) / y^2, OpenCV's own form; a tap at
// t = 0 takes the whole weight. index and weight: [8, out], on `options`'
// device.
struct Taps {
  at::Tensor index, weight;
};

Taps lanczos_taps(int64_t in, int64_t out, const at::TensorOptions& options) {
  constexpr int kTaps = 8;
  std::vector<int64_t> index(static_cast<std::size_t>(kTaps * out));
  std::vector<float> weight(static_cast<std::size_t>(kTaps * out));
  const double scale = 1.0 / (static_cast<double>(out) / static_cast<double>(in));
  for (int64_t i = 0; i < out; ++i) {
    const float f = static_cast<float>((static_cast<double>(i) + 0.5) * scale - 0.5);
    const float start = std::floor(f), x = f - start;
    const double y0 = -static_cast<double>(x + 3) * M_PI * 0.25;
    float c[kTaps], sum = 0;
    for (int k = 0; k < kTaps; ++k) {
      const float t = x + 3 - static_cast<float>(k);
      const double y = -static_cast<double>(t) * M_PI * 0.25;
      c[k] = std::fabs(t) >= 1e-6f ? static_cast<float>((k % 2 ? -1 : 1) * std::sin(y0 + k * M_PI * 0.25) / (y * y))
                                   : 1e8f;
      sum += c[k];
    }
    const float norm = 1.f / sum;
    for (int k = 0; k < kTaps; ++k) {
      const auto at = static_cast<std::size_t>(k * out + i);
      index[at] = std::clamp<int64_t>(static_cast<int64_t>(start) - 3 + k, 0, in - 1);
      weight[at] = c[k] * norm;
    }
  }
  const auto cpu = at::TensorOptions().device(at::kCPU);
  return {at::tensor(index, cpu.dtype(at::kLong)).view({kTaps, out}).to(options.device()),
          at::tensor(weight, cpu.dtype(at::kFloat)).view({kTaps, out}).to(options.device())};
}

// Lanczos-4 resize as tensor operations on the image's device: along the
// rows, then down the columns (OpenCV's order), each pass 8 gathers of
// whole rows or columns summed with their weights, in tap order.
at::Tensor lanczos(const at::Tensor& image, int64_t h, int64_t w) {
  auto pass = [](const at::Tensor& x, int64_t dim, const Taps& taps, at::IntArrayRef shape) {
    at::Tensor sum;
    for (int64_t k = 0; k < taps.index.size(0); ++k) {
      at::Tensor term = x.index_select(dim, taps.index[k]) * taps.weight[k].view(shape);
      sum = sum.defined() ? sum.add_(term) : term;
    }
    return sum;
  };
  const at::Tensor rows = pass(image, 3, lanczos_taps(image.size(3), w, image.options()), {1, 1, 1, w});
  return pass(rows, 2, lanczos_taps(image.size(2), h, image.options()), {1, 1, h, 1}).clamp_(0, 1);
}

// Resizes with OpenCV or its own loops on the CPU; elsewhere with tensor
// operations that match OpenCV (nearest, bilinear, bicubic, lanczos, area by
// a whole factor), and with OpenCV through host memory for other area
// sizes.
at::Tensor resize(const at::Tensor& image, int64_t h, int64_t w, const std::string& method, int threads) {
  if (h == image.size(2) && w == image.size(3)) return image;
  const at::Tensor x = cpu_kernels(image) ? row_major(image) : image.contiguous();
  if (cpu_kernels(image) && method == "nearest") return resize_nearest(x, h, w);
  if (cpu_kernels(image)) {
    const int interpolation = method == "nearest"    ? cv::INTER_NEAREST
                              : method == "bilinear" ? cv::INTER_LINEAR
                              : method == "bicubic"  ? cv::INTER_CUBIC
                              : method == "area"     ? cv::INTER_AREA
                                                     : cv::INTER_LANCZOS4;
    const bool overshoots = method == "bicubic" || method == "lanczos";
    return per_plane(x, h, w, threads, [&](const cv::Mat& src, cv::Mat& dst) {
      cv::resize(src, dst, dst.size(), 0, 0, interpolation);
      if (overshoots) clamp_plane(dst);
    });
  }
  if (method == "nearest") return at::upsample_nearest2d(x, {h, w});
  if (method == "bilinear") return at::upsample_bilinear2d(x, {h, w}, /*align_corners=*/false);
  if (method == "bicubic") return at::upsample_bicubic2d(x, {h, w}, false).clamp(0, 1);
  if (method == "area" && image.size(2) % h == 0 && image.size(3) % w == 0) return at::adaptive_avg_pool2d(x, {h, w});
  if (method == "lanczos") return lanczos(x, h, w);
  return per_plane(x, h, w, threads,
                   [&](const cv::Mat& src, cv::Mat& dst) { cv::resize(src, dst, dst.size(), 0, 0, cv::INTER_AREA); });
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
                       "bicubic (OpenCV's conventions: pixel centres, A = -0.75), lanczos (OpenCV's Lanczos-4: 8 x 8 "
                       "taps, replicated border) and area by a whole factor run as tensor operations on the device; "
                       "on the CPU, and for other area sizes, OpenCV's resize (lanczos's overshoot clamped).");
    d.spec.inputs.push_back(InputSpec::Int("width", 512).range(0, 16384));
    d.spec.inputs.push_back(InputSpec::Int("height", 512).range(0, 16384));
    d.spec.inputs.push_back(InputSpec::Choice("method", kMethods));
    d.run = [](const Inputs& in, Context& ctx) -> Outputs {
      at::Tensor image = in.image("image");
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
      at::Tensor image = in.image("image");
      double f = in.number("factor");
      return {resize(image, scaled(image.size(2), f), scaled(image.size(3), f), in.string("method"), ctx.threads())};
    };
    r.add(std::move(d));
  }
  {
    NodeDef d = filter("Crop", "Crop", "geometry",
                       "The rectangle at (x, y) of width x height; it must lie inside. A view of the input, as "
                       "ComfyUI's ImageCrop: no pixel is copied (the nodes after it read the rectangle where it "
                       "lies), and the input's memory stays in use while the crop is.");
    d.spec.inputs.push_back(InputSpec::Int("x", 0).range(0, 16384));
    d.spec.inputs.push_back(InputSpec::Int("y", 0).range(0, 16384));
    d.spec.inputs.push_back(InputSpec::Int("width", 256).range(1, 16384));
    d.spec.inputs.push_back(InputSpec::Int("height", 256).range(1, 16384));
    d.run = [](const Inputs& in, Context&) -> Outputs {
      at::Tensor image = in.image("image");
      int64_t x = in.integer("x"), y = in.integer("y"), w = in.integer("width"), h = in.integer("height");
      if (x + w > image.size(3))
        throw Error("x + width = " + std::to_string(x + w) + " exceeds the image width " + std::to_string(image.size(3)));
      if (y + h > image.size(2))
        throw Error("y + height = " + std::to_string(y + h) + " exceeds the image height " +
                    std::to_string(image.size(2)));
      return {image.narrow(2, y, h).narrow(3, x, w)};
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
    d.run = [](const Inputs& in, Context&) -> Outputs {
      at::Tensor image = in.image("image");
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
        return {pad_rows(image, pad[0], pad[1], pad[2], pad[3], border, static_cast<float>(in.number("value")))};
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
                       "bilinear at warpAffine's positions (1/32 of a pixel) on every device, outside filled with "
                       "fill. expand grows the canvas to hold the whole image. Multiples of 90 are exact.");
    d.spec.inputs.push_back(InputSpec::Float("degrees", 0.0).range(-360, 360).with_step(1));
    d.spec.inputs.push_back(InputSpec::Boolean("expand", false));
    d.spec.inputs.push_back(InputSpec::Float("fill", 0.0).range(0, 1).with_step(0.01));
    d.run = [](const Inputs& in, Context&) -> Outputs {
      at::Tensor image = in.image("image");
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
      // warpAffine's source positions: the inverse of OpenCV's rotation matrix
      // about the centres, in 10-bit fixed point rounded to 1/32 of a pixel,
      // the sum of a column's part and a row's; each position and its
      // weights serve every plane.
      cv::Mat matrix = cv::getRotationMatrix2D(cv::Point2f((w - 1) / 2.f, (h - 1) / 2.f), degrees, 1.0);
      matrix.at<double>(0, 2) += (out_w - 1) / 2.0 - (w - 1) / 2.0;
      matrix.at<double>(1, 2) += (out_h - 1) / 2.0 - (h - 1) / 2.0;
      cv::Mat inverse;
      cv::invertAffineTransform(matrix, inverse);
      const double* m = inverse.ptr<double>();
      constexpr double kScale = 1 << 10;                          // AB_BITS
      constexpr int kShift = 10 - 5, kRound = 1 << (kShift - 1);  // to INTER_BITS
      std::vector<int32_t> step_x(static_cast<std::size_t>(out_w)), step_y(step_x.size());
      for (int64_t x = 0; x < out_w; ++x) {
        step_x[static_cast<std::size_t>(x)] = cv::saturate_cast<int>(m[0] * static_cast<double>(x) * kScale);
        step_y[static_cast<std::size_t>(x)] = cv::saturate_cast<int>(m[3] * static_cast<double>(x) * kScale);
      }
      // A row's part, rounding included.
      auto row_x = [&](int64_t y) {
        return cv::saturate_cast<int>((m[1] * static_cast<double>(y) + m[2]) * kScale) + kRound;
      };
      auto row_y = [&](int64_t y) {
        return cv::saturate_cast<int>((m[4] * static_cast<double>(y) + m[5]) * kScale) + kRound;
      };
      const float fill = static_cast<float>(in.number("fill"));
      if (cpu_kernels(image)) {
        // kernels::warp_row, kernels::warp_row_interleaved.
        const at::Tensor src = row_major(image);  // a view is read in place
        const Rows source(src);
        const int64_t stride = src.size(2) > 1 ? src.stride(2) : w;
        at::Tensor out = at::empty({src.size(0), src.size(1), out_h, out_w}, src.options());
        const int planes = static_cast<int>(src.size(1));
        const int64_t batch = src.size(0);
        // Image by image, bands of 16 output rows in parallel. Three planes
        // are first interleaved (kernels::warp_row_interleaved says why) and
        // warped a row at a time, in chunks of up to 2048 pixels: here whole
        // rows were faster than tiles of 16 x 64 to 8 x 256. One plane is
        // warped where it lies, in tiles of 16 x 64 (as warpAffine works in
        // blocks: a tile's source pixels stay in the core's cache).
        constexpr int64_t kRows = 16, kColumns = 2048;
        const int64_t bands = (out_h + kRows - 1) / kRows;
        float* target = out.data_ptr<float>();
        auto warp_bands = [&](int64_t b, const float* interleaved, int64_t pitch) {
          parallel_for(0, bands, 1, [&](int64_t begin, int64_t end) {
            int32_t x32[kColumns], y32[kColumns];
            const float* from[3] = {nullptr, nullptr, nullptr};  // the planes, where no interleaved copy is made
            for (int c = 0; c < planes && !interleaved; ++c) from[c] = source(b, c, 0);
            const int64_t columns = interleaved ? kColumns : 64;
            for (int64_t k = begin; k < end; ++k) {
              const int64_t top = k * kRows, bottom = std::min(out_h, top + kRows);
              for (int64_t left = 0; left < out_w; left += columns) {
                const int64_t n = std::min(columns, out_w - left);
                for (int64_t y = top; y < bottom; ++y) {
                  const int x0 = row_x(y), y0 = row_y(y);
                  for (int64_t x = 0; x < n; ++x) {
                    x32[x] = (x0 + step_x[static_cast<std::size_t>(left + x)]) >> kShift;
                    y32[x] = (y0 + step_y[static_cast<std::size_t>(left + x)]) >> kShift;
                  }
                  float* to[3];
                  for (int c = 0; c < planes; ++c) to[c] = target + ((b * planes + c) * out_h + y) * out_w + left;
                  if (interleaved)
                    kernels::warp_row_interleaved(interleaved, pitch, h, w, x32, y32, n, to, fill);
                  else
                    kernels::warp_row(from, to, planes, h, w, stride, x32, y32, n, fill);
                }
              }
            }
          });
        };
        if (planes == 3) {
          const int64_t pitch = kernels::interleaved_pitch(w);
          at::Tensor buffer = at::empty({(h + 2) * pitch}, src.options());
          float* interleaved = buffer.data_ptr<float>();
          for (int64_t b = 0; b < batch; ++b) {
            parallel_for(0, h + 2, 16, [&](int64_t begin, int64_t end) {
              for (int64_t y = begin; y < end; ++y) {
                const float* rows[3] = {nullptr, nullptr, nullptr};
                for (int c = 0; c < 3 && y >= 1 && y <= h; ++c) rows[c] = source(b, c, y - 1);
                kernels::interleave_row(y >= 1 && y <= h ? rows : nullptr, interleaved + y * pitch, w, fill);
              }
            });
            warp_bands(b, interleaved, pitch);
          }
        } else {
          for (int64_t b = 0; b < batch; ++b) warp_bands(b, nullptr, 0);
        }
        return {out};
      }
      // The same positions and weights as tensor operations (other devices):
      // the four taps of each position gathered from the image in a border of
      // fill one pixel wide (a tap outside reads fill), positions wholly
      // outside set to fill, as on the CPU.
      std::vector<int32_t> rows_x(static_cast<std::size_t>(out_h)), rows_y(rows_x.size());
      for (int64_t y = 0; y < out_h; ++y) {
        rows_x[static_cast<std::size_t>(y)] = row_x(y);
        rows_y[static_cast<std::size_t>(y)] = row_y(y);
      }
      const auto ints = at::TensorOptions().dtype(at::kInt);
      auto on_device = [&](const std::vector<int32_t>& v, at::IntArrayRef shape) {
        return at::tensor(v, ints).view(shape).to(image.device());
      };
      // In 1/32 of a pixel.
      const at::Tensor x32 =
          at::bitwise_right_shift(on_device(rows_x, {out_h, 1}) + on_device(step_x, {1, out_w}), kShift);
      const at::Tensor y32 =
          at::bitwise_right_shift(on_device(rows_y, {out_h, 1}) + on_device(step_y, {1, out_w}), kShift);
      const at::Tensor sx = at::bitwise_right_shift(x32, 5), sy = at::bitwise_right_shift(y32, 5);
      const at::Tensor fx = at::bitwise_and(x32, 31).to(at::kFloat) / 32,
                       fy = at::bitwise_and(y32, 31).to(at::kFloat) / 32;
      const at::Tensor outside = (sx >= w) | (sx < -1) | (sy >= h) | (sy < -1);
      const at::Tensor framed = at::constant_pad_nd(image, {1, 1, 1, 1}, fill).flatten(2);  // [B, C, (h + 2)(w + 2)]
      const at::Tensor tap = ((sy + 1).clamp(0, h) * (w + 2) + (sx + 1).clamp(0, w)).to(at::kLong).flatten();
      auto value = [&](int64_t offset) {
        return framed.index_select(2, tap + offset).view({image.size(0), image.size(1), out_h, out_w});
      };
      const at::Tensor rotated = value(0) * ((1 - fy) * (1 - fx)) + value(1) * ((1 - fy) * fx) +
                                 value(w + 2) * (fy * (1 - fx)) + value(w + 3) * (fy * fx);
      return {at::where(outside, at::scalar_tensor(fill, image.options()), rotated).clamp_(0, 1)};
    };
    r.add(std::move(d));
  }
  {
    NodeDef d = filter("Flip", "Flip", "geometry", "Mirrors left-right (horizontal), top-bottom (vertical), or both.");
    d.spec.inputs.push_back(InputSpec::Choice("direction", {"horizontal", "vertical", "both"}));
    d.run = [](const Inputs& in, Context&) -> Outputs {
      at::Tensor image = in.image("image");
      const std::string& direction = in.string("direction");
      const bool across = direction != "vertical", down = direction != "horizontal";
      if (cpu_kernels(image)) {  // each output row is a source row, mirrored or copied; rows in parallel
        const at::Tensor src = row_major(image);
        const Rows source(src);
        // Rows read bottom up (vertical, both) are lost by the prefetchers,
        // as a view's rows are, so they are asked for; and they are not
        // streamed past the caches, which they lost to: a Zen 5 (2 cores),
        // 16 images of 512 x 512, 1 thread, vertical 0.53-0.59 of OpenCV
        // streamed, 0.76-0.81 streamed with the prefetches, 1.48-1.52 in the
        // cache with them; both 1.72-1.76 and 2.05-2.21. Left to right only,
        // streaming still wins (2.05-2.36, 1.18-1.61 in the cache).
        const bool prefetch = !src.is_contiguous() || down;
        const int64_t channels = src.size(1), planes = src.size(0) * channels, h = src.size(2), w = src.size(3);
        at::Tensor dst = at::empty(src.sizes(), src.options());
        float* d = dst.data_ptr<float>();
        const bool stream = !down && kernels::streams(static_cast<int64_t>(dst.nbytes()));
        for_each_row(
            planes, h,
            [&](int64_t plane, int64_t y) {
              const int64_t b = plane / channels, c = plane % channels;
              const float* row = source(b, c, down ? h - 1 - y : y);
              if (prefetch && y + kPrefetchRows < h)
                prefetch_row(source(b, c, down ? h - 1 - y - kPrefetchRows : y + kPrefetchRows), w);
              float* out = d + (plane * h + y) * w;
              if (across)
                stream ? kernels::stream_reverse(row, out, w) : kernels::reverse(row, out, w);
              else  // vertical: never streamed
                kernels::copy(row, out, w);
            },
            stream);
        return {dst};
      }
      if (!down) return {image.flip({3})};
      if (!across) return {image.flip({2})};
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
      auto [base, layer] = match_channels(in.image("base"), in.image("layer"));
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
        at::Tensor mask = in.mask("mask");
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
    d.spec.class_type = "ChannelToMask";
    d.spec.display_name = "Channel to Mask";
    d.spec.category = "mask";
    d.spec.description =
        "One channel of an image (or its BT.601 luma) as a MASK. A grey image gives its one channel. (ComfyUI's "
        "ImageToMask, which offers alpha where this offers luma, is the comfy plugin's.)";
    d.spec.inputs = {InputSpec::Link("image", types::IMAGE), InputSpec::Choice("channel", {"red", "green", "blue", "luma"})};
    d.spec.outputs = {{"MASK", types::MASK}};
    d.run = [](const Inputs& in, Context&) -> Outputs {
      at::Tensor image = in.image("image");
      const std::string& channel = in.string("channel");
      if (image.size(1) == 1) return {image};
      if (channel == "luma") return {luma(image)};
      int64_t index = channel == "red" ? 0 : channel == "green" ? 1 : 2;
      return {copy_rows(image.narrow(1, index, 1))};
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
      return {copy_rows(in.mask("mask").expand({-1, 3, -1, -1}))};
    };
    r.add(std::move(d));
  }
}

}  // namespace cozy::postprocess
