// comfy.utils.common_upscale: torch's interpolate for four methods, and PIL's
// Lanczos resampler (what ComfyUI calls for "lanczos") written out here, as
// Pillow's Resample.c computes it on 8-bit images.
#include "comfy.hpp"

#include "image_io.hpp"

#include <algorithm>
#include <cmath>

namespace cozy::comfy {

int64_t py_round(double x) { return static_cast<int64_t>(std::nearbyint(x)); }

const std::vector<std::string>& upscale_methods() {
  static const std::vector<std::string> methods = {"nearest-exact", "bilinear", "area", "bicubic", "lanczos"};
  return methods;
}

namespace {

// Pillow's fixed point for 8-bit resampling: 32 bits less 8 for the pixel and 2 for the sign and overflow.
constexpr int kPrecisionBits = 32 - 8 - 2;

double sinc(double x) {
  if (x == 0.0) return 1.0;
  x *= M_PI;
  return std::sin(x) / x;
}

double lanczos_filter(double x) { return -3.0 <= x && x < 3.0 ? sinc(x) * sinc(x / 3) : 0.0; }

// One axis's weights: for each output pixel, the first input pixel it reads,
// how many, and their weights in fixed point (Pillow's precompute_coeffs and
// normalize_coeffs_8bpc).
struct Weights {
  int ksize = 0;
  std::vector<int> first, count;
  std::vector<int32_t> k;  // out_size x ksize
};

Weights weights_for(int in_size, int out_size) {
  const double scale = static_cast<double>(in_size) / out_size;
  const double filterscale = scale < 1.0 ? 1.0 : scale;
  const double support = 3.0 * filterscale;
  Weights w;
  w.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  w.first.resize(out_size);
  w.count.resize(out_size);
  w.k.assign(static_cast<size_t>(out_size) * w.ksize, 0);
  std::vector<double> kk(w.ksize);
  for (int xx = 0; xx < out_size; ++xx) {
    const double center = (xx + 0.5) * scale;
    const double ss = 1.0 / filterscale;
    int xmin = static_cast<int>(center - support + 0.5);  // C's truncation, as Pillow
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    double total = 0.0;
    for (int x = 0; x < xmax; ++x) {
      kk[x] = lanczos_filter((x + xmin - center + 0.5) * ss);
      total += kk[x];
    }
    for (int x = 0; x < xmax; ++x) {
      const double v = total != 0.0 ? kk[x] / total : kk[x];
      w.k[static_cast<size_t>(xx) * w.ksize + x] =
          static_cast<int32_t>(v < 0 ? -0.5 + v * (1 << kPrecisionBits) : 0.5 + v * (1 << kPrecisionBits));
    }
    w.first[xx] = xmin;
    w.count[xx] = xmax;
  }
  return w;
}

uint8_t clip8(int32_t sum) {
  const int32_t v = sum >> kPrecisionBits;  // arithmetic shift: a floor, as Pillow's lookup table
  return static_cast<uint8_t>(std::clamp(v, 0, 255));
}

// Pillow's resize of one 8-bit image of `bands` interleaved bands (h x w) to
// out_h x out_w: the horizontal pass over the rows the vertical pass reads,
// into 8 bits, then the vertical pass; a pass is skipped when its size stays.
std::vector<uint8_t> resize8(const std::vector<uint8_t>& in, int h, int w, int bands, int out_h, int out_w) {
  const bool horizontal = out_w != w, vertical = out_h != h;
  const Weights wx = weights_for(w, out_w), wy = weights_for(h, out_h);
  const int row_first = wy.first[0];
  const int row_last = wy.first[out_h - 1] + wy.count[out_h - 1];
  std::vector<uint8_t> temp;
  const std::vector<uint8_t>* src = &in;
  int src_w = w, row_offset = 0;
  if (horizontal) {
    const int rows = row_last - row_first;
    temp.resize(static_cast<size_t>(rows) * out_w * bands);
    for (int y = 0; y < rows; ++y) {
      const uint8_t* line = in.data() + static_cast<size_t>(y + row_first) * w * bands;
      for (int xx = 0; xx < out_w; ++xx) {
        const int32_t* k = wx.k.data() + static_cast<size_t>(xx) * wx.ksize;
        for (int b = 0; b < bands; ++b) {
          int32_t sum = 1 << (kPrecisionBits - 1);
          for (int x = 0; x < wx.count[xx]; ++x) sum += line[(x + wx.first[xx]) * bands + b] * k[x];
          temp[(static_cast<size_t>(y) * out_w + xx) * bands + b] = clip8(sum);
        }
      }
    }
    src = &temp;
    src_w = out_w;
    row_offset = row_first;
  }
  if (!vertical) {
    if (horizontal) return temp;
    return in;
  }
  std::vector<uint8_t> out(static_cast<size_t>(out_h) * out_w * bands);
  for (int yy = 0; yy < out_h; ++yy) {
    const int32_t* k = wy.k.data() + static_cast<size_t>(yy) * wy.ksize;
    const int first = wy.first[yy] - row_offset;
    for (int xx = 0; xx < out_w; ++xx)
      for (int b = 0; b < bands; ++b) {
        int32_t sum = 1 << (kPrecisionBits - 1);
        for (int y = 0; y < wy.count[yy]; ++y)
          sum += (*src)[(static_cast<size_t>(first + y) * src_w + xx) * bands + b] * k[y];
        out[(static_cast<size_t>(yy) * out_w + xx) * bands + b] = clip8(sum);
      }
  }
  return out;
}

// Pillow's RGBA -> RGBa (premultiplied) and back, around a resize.
void premultiply(std::vector<uint8_t>& px) {
  for (size_t i = 0; i < px.size(); i += 4) {
    const unsigned alpha = px[i + 3];
    for (int c = 0; c < 3; ++c) {
      const unsigned tmp = px[i + c] * alpha + 128;
      px[i + c] = static_cast<uint8_t>(((tmp >> 8) + tmp) >> 8);
    }
  }
}

void unpremultiply(std::vector<uint8_t>& px) {
  for (size_t i = 0; i < px.size(); i += 4) {
    const unsigned alpha = px[i + 3];
    if (alpha == 255 || alpha == 0) continue;
    for (int c = 0; c < 3; ++c) px[i + c] = static_cast<uint8_t>(std::min(255u, (255u * px[i + c]) / alpha));
  }
}

}  // namespace

at::Tensor lanczos(const at::Tensor& bchw, int64_t width, int64_t height) {
  const int64_t b = bchw.size(0), c = bchw.size(1), h = bchw.size(2), w = bchw.size(3);
  if (c != 1 && c != 3 && c != 4) throw Error("lanczos resizes images of 1, 3 or 4 channels, not " + std::to_string(c));
  if (width < 1 || height < 1) throw Error("lanczos: the target size must be at least 1 x 1");
  // numpy's clip(255 x, 0, 255).astype(uint8): float32 products, truncated.
  at::Tensor bytes = (bchw.detach().to(at::kCPU) * 255.0).clamp(0, 255).to(at::kByte).permute({0, 2, 3, 1}).contiguous();
  at::Tensor out = at::empty({b, height, width, c}, at::kByte);
  for (int64_t i = 0; i < b; ++i) {
    const uint8_t* p = bytes[i].data_ptr<uint8_t>();
    std::vector<uint8_t> px(p, p + h * w * c);
    if (c == 4) premultiply(px);
    std::vector<uint8_t> resized =
        resize8(px, static_cast<int>(h), static_cast<int>(w), static_cast<int>(c), static_cast<int>(height),
                static_cast<int>(width));
    if (c == 4) unpremultiply(resized);
    std::copy(resized.begin(), resized.end(), out[i].data_ptr<uint8_t>());
  }
  return (out.to(at::kFloat) / 255.0).permute({0, 3, 1, 2}).contiguous().to(bchw.device());
}

at::Tensor common_upscale(const at::Tensor& bchw, int64_t width, int64_t height, const std::string& method,
                          const std::string& crop) {
  if (width < 1 || height < 1)
    throw Error("cannot scale to " + std::to_string(width) + " x " + std::to_string(height) + " pixels");
  at::Tensor s = bchw;
  if (crop == "center") {
    const int64_t old_w = s.size(3), old_h = s.size(2);
    const double old_aspect = static_cast<double>(old_w) / old_h, new_aspect = static_cast<double>(width) / height;
    int64_t x = 0, y = 0;
    if (old_aspect > new_aspect) x = py_round((old_w - old_w * (new_aspect / old_aspect)) / 2);
    else if (old_aspect < new_aspect) y = py_round((old_h - old_h * (old_aspect / new_aspect)) / 2);
    s = s.narrow(2, y, old_h - y * 2).narrow(3, x, old_w - x * 2);
  } else if (crop != "disabled") {
    throw Error("unknown crop '" + crop + "' (disabled or center)");
  }
  s = s.contiguous();
  if (method == "lanczos") return lanczos(s, width, height);
  if (method == "nearest-exact") return at::_upsample_nearest_exact2d(s, {height, width}, c10::nullopt, c10::nullopt);
  if (method == "bilinear") return at::upsample_bilinear2d(s, {height, width}, false, c10::nullopt, c10::nullopt);
  if (method == "bicubic") return at::upsample_bicubic2d(s, {height, width}, false, c10::nullopt, c10::nullopt);
  if (method == "area") return at::adaptive_avg_pool2d(s, {height, width});
  throw Error("unknown upscale_method '" + method + "'");
}

at::Tensor scale_image(const at::Tensor& bchw, int64_t width, int64_t height, const std::string& method,
                       const std::string& crop) {
  at::Tensor out = common_upscale(bchw, width, height, method, crop);
  return method == "bicubic" ? out.clamp(0, 1) : out;
}

at::Tensor repeat_to_batch(const at::Tensor& t, int64_t batch) {
  const int64_t n = t.size(0);
  if (n > batch) return t.narrow(0, 0, batch);
  if (n < batch) {
    std::vector<int64_t> reps(t.dim(), 1);
    reps[0] = (batch + n - 1) / n;
    return t.repeat(reps).narrow(0, 0, batch);
  }
  return t;
}

at::Tensor py_slice(const at::Tensor& t, int64_t dim, int64_t start, int64_t length) {
  const int64_t n = t.size(dim);
  start = std::clamp<int64_t>(start, 0, n);
  return t.narrow(dim, start, std::clamp<int64_t>(length, 0, n - start));
}

at::Tensor as_rgb(const at::Tensor& image) { return image.size(1) == 1 ? image.expand({-1, 3, -1, -1}) : image; }

std::pair<at::Tensor, at::Tensor> match_grey(at::Tensor a, at::Tensor b) {
  if (a.size(1) != b.size(1) && (a.size(1) == 1 || b.size(1) == 1)) return {as_rgb(a), as_rgb(b)};
  return {a, b};
}

std::pair<at::Tensor, at::Tensor> alpha_fix(at::Tensor destination, at::Tensor source) {
  std::tie(destination, source) = match_grey(destination, source);
  if (destination.size(1) < source.size(1)) {
    source = source.narrow(1, 0, destination.size(1));
  } else if (destination.size(1) > source.size(1)) {
    source = at::cat({source, at::ones_like(source.narrow(1, 0, 1))}, 1);
  }
  return {destination, source};
}

void preview(const at::Tensor& images, Context& ctx) {
  at::Tensor cpu = images.detach().to(at::kCPU);
  for (int64_t i = 0; i < cpu.size(0); ++i) {
    ctx.check_cancelled();
    at::Tensor one = cpu[i];
    auto file = write_numbered_file(ctx.temp_dir(), "preview_" + ctx.node_id(), ".png",
                                    [&](const std::filesystem::path& temp) { image_io::write_png(one, temp, 8); });
    ctx.add_file(file, "temp");
  }
}

}  // namespace cozy::comfy
