// Tone and colour: tensor operations on the run's device.
#include "common.hpp"
#include "kernels.hpp"

#include <opencv2/core.hpp>

#include <cmath>

namespace cozy::postprocess {
namespace {

// PIL's ImageEnhance: blend(degenerate, image, factor) = degenerate + factor (image - degenerate).
at::Tensor enhance(const at::Tensor& image, const at::Tensor& degenerate, double factor) {
  if (factor == 1.0) return image;  // exactly the input, not within rounding
  return (degenerate + factor * (image - degenerate)).clamp(0, 1);
}

InputSpec factor_input() {
  return InputSpec::Float("factor", 1.0).range(0, 10).with_step(0.01).help("1 leaves the image unchanged");
}

// Three channels for formulas that need colour; a grey image is repeated.
at::Tensor as_rgb(const at::Tensor& image) { return image.size(1) == 3 ? image : image.expand({-1, 3, -1, -1}); }

}  // namespace

void register_tone(Registrar& r) {
  {
    NodeDef d = filter("Brightness", "Brightness", "tone",
                       "PIL's ImageEnhance.Brightness: blends with black, out = factor x image, clamped to [0, 1].");
    d.spec.inputs.push_back(factor_input());
    d.run = [](const Inputs& in, Context&) -> Outputs {
      at::Tensor image = in.image("image");
      const float f = static_cast<float>(in.number("factor"));
      if (f == 1.f) return {image};
      if (cpu_kernels(image)) {
        const int64_t channels = image.size(1);
        return {map_pixels(image, channels, [&](const float* const* src, float* const* dst, int64_t n) {
          for (int64_t c = 0; c < channels; ++c) {
            const float* x = src[c];
            float* out = dst[c];
            for (int64_t i = 0; i < n; ++i) out[i] = clamp01f(x[i] * f);
          }
        })};
      }
      return {enhance(image, at::zeros_like(image), f)};
    };
    r.add(std::move(d));
  }
  {
    NodeDef d = filter("Contrast", "Contrast", "tone",
                       "PIL's ImageEnhance.Contrast: blends with the mean grey of each image (mean of the BT.601 "
                       "luma), out = m + factor (image - m), clamped.");
    d.spec.inputs.push_back(factor_input());
    d.run = [](const Inputs& in, Context&) -> Outputs {
      at::Tensor image = in.image("image");
      const double f = in.number("factor");
      if (f == 1.0) return {image};
      if (cpu_kernels(image)) {
        // The mean luma of each image, in double, then one blending pass;
        // a contiguous plane is one run of pixels, a view's one run per row.
        const at::Tensor src = row_major(image);
        const Rows rows(src);
        const Runs runs(src);
        const int64_t batch = src.size(0), channels = src.size(1), h = src.size(2), w = src.size(3);
        std::vector<double> means(static_cast<std::size_t>(batch));
        parallel_for(0, batch, 1, [&](int64_t begin, int64_t end) {
          for (int64_t b = begin; b < end; ++b) {
            // Eight float lanes per block (they vectorise), blocks summed in double.
            double sum = 0;
            const float wr = channels == 1 ? 1.f : 0.299f, wg = channels == 1 ? 0.f : 0.587f,
                        wb = channels == 1 ? 0.f : 0.114f;
            for (int64_t k = 0; k < runs.count; ++k) {
              const float* p = rows(b, 0, k);
              const float* q = rows(b, std::min<int64_t>(1, channels - 1), k);
              const float* r = rows(b, std::min<int64_t>(2, channels - 1), k);
              if (!runs.whole && k + kPrefetchRows < runs.count)  // a view's rows: asked for
                for (int64_t c = 0; c < channels; ++c) prefetch_row(rows(b, c, k + kPrefetchRows), w);
              constexpr int64_t kBlock = 4096;
              for (int64_t start = 0; start < runs.length; start += kBlock) {
                const int64_t stop = std::min(runs.length, start + kBlock);
                float lanes[8] = {0, 0, 0, 0, 0, 0, 0, 0};
                int64_t i = start;
                for (; i + 8 <= stop; i += 8)
                  for (int j = 0; j < 8; ++j) lanes[j] += wr * p[i + j] + wg * q[i + j] + wb * r[i + j];
                for (; i < stop; ++i) lanes[0] += wr * p[i] + wg * q[i] + wb * r[i];
                for (float lane : lanes) sum += lane;
              }
            }
            means[static_cast<std::size_t>(b)] = sum / static_cast<double>(h * w);
          }
        });
        at::Tensor out = at::empty({batch, channels, h, w}, src.options());
        float* const o = out.data_ptr<float>();
        parallel_for(0, batch * channels, 1, [&](int64_t begin, int64_t end) {
          for (int64_t plane = begin; plane < end; ++plane) {
            const float m = static_cast<float>(means[static_cast<std::size_t>(plane / channels)]);
            const float ff = static_cast<float>(f);
            for (int64_t k = 0; k < runs.count; ++k) {
              const float* p = rows(plane / channels, plane % channels, k);
              if (!runs.whole && k + kPrefetchRows < runs.count)
                prefetch_row(rows(plane / channels, plane % channels, k + kPrefetchRows), w);
              float* q = o + plane * h * w + k * runs.length;
              for (int64_t i = 0; i < runs.length; ++i) q[i] = clamp01f(m + ff * (p[i] - m));
            }
          }
        });
        return {out};
      }
      at::Tensor mean = luma(image).mean({1, 2, 3}, /*keepdim=*/true);
      return {enhance(image, mean.expand_as(image), f)};
    };
    r.add(std::move(d));
  }
  {
    NodeDef d = filter("Saturation", "Saturation", "tone",
                       "PIL's ImageEnhance.Color: blends with the greyscale image (BT.601 luma), out = L + factor "
                       "(image - L), clamped. A grey image is unchanged.");
    d.spec.inputs.push_back(factor_input());
    d.run = [](const Inputs& in, Context&) -> Outputs {
      at::Tensor image = in.image("image");
      const float f = static_cast<float>(in.number("factor"));
      if (image.size(1) == 1 || f == 1.f) return {image};
      if (cpu_kernels(image)) {
        return {map_pixels(image, 3, [&](const float* const* src, float* const* dst, int64_t n) {
          const float* r = src[0];
          const float* g = src[1];
          const float* b = src[2];
          for (int c = 0; c < 3; ++c) {  // one simple loop per channel: each vectorises
            const float* x = src[c];
            float* out = dst[c];
            for (int64_t i = 0; i < n; ++i) {
              const float l = 0.299f * r[i] + 0.587f * g[i] + 0.114f * b[i];
              out[i] = clamp01f(l + f * (x[i] - l));
            }
          }
        })};
      }
      return {enhance(image, luma(image).expand_as(image), f)};
    };
    r.add(std::move(d));
  }
  {
    NodeDef d = filter("Gamma", "Gamma", "tone",
                       "out = image ^ (1 / gamma): gamma above 1 brightens the mid-tones, as in GIMP's levels.");
    d.spec.inputs.push_back(InputSpec::Float("gamma", 1.0).range(0.01, 10).with_step(0.01));
    d.run = [](const Inputs& in, Context&) -> Outputs {
      at::Tensor image = in.image("image");
      double gamma = in.number("gamma");
      if (gamma == 1.0) return {image};
      if (cpu_kernels(image)) {  // its own vectorised pow (kernels::power), one pass
        const int64_t channels = image.size(1);
        const float p = static_cast<float>(1.0 / gamma);
        return {map_pixels(image, channels, [&](const float* const* src, float* const* dst, int64_t n) {
          for (int64_t c = 0; c < channels; ++c) kernels::power(src[c], dst[c], n, p);
        })};
      }
      return {image.clamp(0, 1).pow(1.0 / gamma)};
    };
    r.add(std::move(d));
  }
  {
    NodeDef d = filter("Levels", "Levels", "tone",
                       "out = clamp((image - black) / (white - black), 0, 1) ^ (1 / gamma). With auto, black and "
                       "white are the low and high percentiles of each image's luma.");
    d.spec.inputs.push_back(InputSpec::Float("black", 0.0).range(0, 1).with_step(0.01));
    d.spec.inputs.push_back(InputSpec::Float("white", 1.0).range(0, 1).with_step(0.01));
    d.spec.inputs.push_back(InputSpec::Float("gamma", 1.0).range(0.01, 10).with_step(0.01));
    d.spec.inputs.push_back(InputSpec::Boolean("auto", false).help("black and white from percentiles"));
    d.spec.inputs.push_back(InputSpec::Float("low_percentile", 1.0).range(0, 50).with_step(0.1));
    d.spec.inputs.push_back(InputSpec::Float("high_percentile", 99.0).range(50, 100).with_step(0.1));
    d.run = [](const Inputs& in, Context&) -> Outputs {
      at::Tensor image = in.image("image");
      const int64_t b = image.size(0);
      at::Tensor black, white;
      if (in.boolean("auto")) {
        at::Tensor flat = luma(image).reshape({b, -1});
        at::Tensor q = at::tensor({in.number("low_percentile") / 100.0, in.number("high_percentile") / 100.0},
                                  image.options());
        at::Tensor bounds = at::quantile(flat, q, /*dim=*/1);  // [2, B]
        black = bounds[0].view({b, 1, 1, 1});
        white = bounds[1].view({b, 1, 1, 1});
      } else {
        black = at::full({1, 1, 1, 1}, in.number("black"), image.options());
        white = at::full({1, 1, 1, 1}, in.number("white"), image.options());
      }
      double gamma = in.number("gamma");
      if (cpu_kernels(image)) {
        at::Tensor lo = black.expand({b, 1, 1, 1}).contiguous(), hi = white.expand({b, 1, 1, 1}).contiguous();
        const at::Tensor src = row_major(image);  // a view is read in place, row by row
        const Rows rows(src);
        const Runs runs(src);
        const int64_t channels = src.size(1), h = src.size(2), w = src.size(3), hw = h * w;
        at::Tensor out = at::empty({b, channels, h, w}, src.options());
        const float* const low = lo.data_ptr<float>();
        const float* const high = hi.data_ptr<float>();
        float* const o = out.data_ptr<float>();
        const float exponent = static_cast<float>(1.0 / gamma);
        parallel_for(0, b * channels, 1, [&](int64_t begin, int64_t end) {
          for (int64_t plane = begin; plane < end; ++plane) {
            const float l = low[plane / channels];
            const float scale = 1.f / std::max(1e-6f, high[plane / channels] - l);
            float* q = o + plane * hw;
            for (int64_t k = 0; k < runs.count; ++k) {
              const float* p = rows(plane / channels, plane % channels, k);
              if (!runs.whole && k + kPrefetchRows < runs.count)  // a view's rows: asked for
                prefetch_row(rows(plane / channels, plane % channels, k + kPrefetchRows), w);
              float* qk = q + k * runs.length;
              if (gamma == 1.0) {
                for (int64_t i = 0; i < runs.length; ++i) qk[i] = clamp01f((p[i] - l) * scale);
                continue;
              }
              // Stretched into a buffer in the cache, then raised into place.
              float stretched[1024];
              for (int64_t start = 0; start < runs.length; start += 1024) {
                const int64_t count = std::min<int64_t>(1024, runs.length - start);
                for (int64_t i = 0; i < count; ++i) stretched[i] = clamp01f((p[start + i] - l) * scale);
                kernels::power(stretched, qk + start, count, exponent);
              }
            }
          }
        });
        return {out};
      }
      at::Tensor span = (white - black).clamp_min(1e-6);
      at::Tensor out = ((image - black) / span).clamp(0, 1);
      if (gamma != 1.0) out = out.pow(1.0 / gamma);
      return {out};
    };
    r.add(std::move(d));
  }
  {
    NodeDef d = filter("HueShift", "Hue Shift", "colour",
                       "Rotates the hue (HSV, H in degrees, as OpenCV's float HSV) by `degrees`. A grey image is "
                       "unchanged.");
    d.spec.inputs.push_back(InputSpec::Float("degrees", 0.0).range(-360, 360).with_step(1));
    d.run = [](const Inputs& in, Context&) -> Outputs {
      at::Tensor image = in.image("image");
      double degrees = in.number("degrees");
      if (image.size(1) == 1 || degrees == 0) return {image};
      if (cpu_kernels(image)) {
        const float shift = static_cast<float>(std::fmod(std::fmod(degrees, 360.0) + 360.0, 360.0));
        return {map_pixels(image, 3, [shift](const float* const* src, float* const* dst, int64_t n) {
          kernels::hue_shift(src[0], src[1], src[2], dst[0], dst[1], dst[2], n, shift);
        })};
      }
      at::Tensor hsv = rgb_to_hsv(image.clamp(0, 1));
      at::Tensor h = at::remainder(hsv.select(1, 0) + degrees, 360.0);
      return {hsv_to_rgb(at::stack({h, hsv.select(1, 1), hsv.select(1, 2)}, 1)).clamp(0, 1)};
    };
    r.add(std::move(d));
  }
  {
    NodeDef d = filter("ColorBalance", "Color Balance", "colour",
                       "Per-channel gains: out = (r x red, g x green, b x blue), clamped. A grey image takes the mean "
                       "of the three gains.");
    for (const char* c : {"red", "green", "blue"})
      d.spec.inputs.push_back(InputSpec::Float(c, 1.0).range(0, 4).with_step(0.01));
    d.run = [](const Inputs& in, Context&) -> Outputs {
      at::Tensor image = in.image("image");
      double r = in.number("red"), g = in.number("green"), b = in.number("blue");
      if (cpu_kernels(image)) {
        const int64_t channels = image.size(1);
        const float gains[3] = {channels == 1 ? float((r + g + b) / 3) : float(r), float(g), float(b)};
        return {map_pixels(image, channels, [&](const float* const* src, float* const* dst, int64_t n) {
          for (int64_t c = 0; c < channels; ++c)
            for (int64_t i = 0; i < n; ++i) dst[c][i] = clamp01f(src[c][i] * gains[c]);
        })};
      }
      if (image.size(1) == 1) return {(image * ((r + g + b) / 3.0)).clamp(0, 1)};
      at::Tensor gains = at::tensor({float(r), float(g), float(b)}, image.options()).view({1, 3, 1, 1});
      return {(image * gains).clamp(0, 1)};
    };
    r.add(std::move(d));
  }
  {
    NodeDef d = filter("Invert", "Invert", "colour", "out = 1 - image.");
    d.run = [](const Inputs& in, Context&) -> Outputs {
      at::Tensor image = in.image("image");
      if (cpu_kernels(image)) {
        const int64_t channels = image.size(1);
        return {map_pixels(image, channels, [&](const float* const* src, float* const* dst, int64_t n) {
          for (int64_t c = 0; c < channels; ++c) {
            const float* x = src[c];
            float* out = dst[c];
            for (int64_t i = 0; i < n; ++i) out[i] = 1.f - x[i];
          }
        })};
      }
      return {1.0 - image};
    };
    r.add(std::move(d));
  }
  {
    NodeDef d = filter("Grayscale", "Grayscale", "colour",
                       "BT.601 luma, 0.299 R + 0.587 G + 0.114 B (OpenCV's RGB2GRAY, PIL's \"L\"). One channel, or "
                       "three equal ones with keep_channels.");
    d.spec.inputs.push_back(InputSpec::Boolean("keep_channels", false));
    d.run = [](const Inputs& in, Context&) -> Outputs {
      at::Tensor image = in.image("image");
      const bool keep = in.boolean("keep_channels");
      if (cpu_kernels(image) && image.size(1) == 3) {
        return {map_pixels(image, keep ? 3 : 1, [&](const float* const* src, float* const* dst, int64_t n) {
          kernels::luma(src[0], src[1], src[2], dst[0], n);
          if (keep) {
            std::copy(dst[0], dst[0] + n, dst[1]);
            std::copy(dst[0], dst[0] + n, dst[2]);
          }
        })};
      }
      at::Tensor grey = luma(image);
      if (keep) grey = grey.expand({-1, 3, -1, -1}).contiguous();
      return {grey};
    };
    r.add(std::move(d));
  }
  {
    NodeDef d = filter("Threshold", "Threshold", "tone",
                       "out = 1 where the value is above the threshold, else 0, per channel (OpenCV's "
                       "THRESH_BINARY); with luma, on the luma and one channel out.");
    d.spec.inputs.push_back(InputSpec::Float("threshold", 0.5).range(0, 1).with_step(0.01));
    d.spec.inputs.push_back(InputSpec::Boolean("luma", false));
    d.run = [](const Inputs& in, Context&) -> Outputs {
      at::Tensor image = in.image("image");
      const float t = static_cast<float>(in.number("threshold"));
      const bool on_luma = in.boolean("luma") && image.size(1) == 3;
      if (cpu_kernels(image)) {
        const int64_t channels = on_luma ? 1 : image.size(1);
        return {map_pixels(image, channels, [t, on_luma, channels](const float* const* src, float* const* dst, int64_t n) {
          if (on_luma) kernels::threshold_luma(src[0], src[1], src[2], dst[0], n, t);
          else
            for (int64_t c = 0; c < channels; ++c) kernels::threshold(src[c], dst[c], n, t);
        })};
      }
      if (on_luma) image = luma(image);
      return {image.gt(t).to(at::kFloat)};
    };
    r.add(std::move(d));
  }
  {
    NodeDef d = filter("Sepia", "Sepia", "colour",
                       "The classic sepia matrix (R' = .393 R + .769 G + .189 B, G' = .349 R + .686 G + .168 B, "
                       "B' = .272 R + .534 G + .131 B), blended with the image by strength, clamped. Always three "
                       "channels out.");
    d.spec.inputs.push_back(InputSpec::Float("strength", 1.0).range(0, 1).with_step(0.01));
    d.run = [](const Inputs& in, Context&) -> Outputs {
      at::Tensor original = in.image("image");
      const float s = static_cast<float>(in.number("strength"));
      static const float matrix[9] = {0.393f, 0.769f, 0.189f, 0.349f, 0.686f, 0.168f, 0.272f, 0.534f, 0.131f};
      if (cpu_kernels(original)) {
        return {map_pixels(original, 3, [&](const float* const* src, float* const* dst, int64_t n) {
          kernels::sepia(src[0], src[1], src[2], dst[0], dst[1], dst[2], n, matrix, s);
        })};
      }
      at::Tensor image = as_rgb(original);
      at::Tensor m = at::tensor(at::ArrayRef<float>(matrix, 9), image.options()).view({3, 3});
      at::Tensor sepia = at::einsum("oc,bchw->bohw", {m, image}).clamp(0, 1);
      return {(image + s * (sepia - image)).clamp(0, 1).contiguous()};
    };
    r.add(std::move(d));
  }
}

}  // namespace cozy::postprocess
