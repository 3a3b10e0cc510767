// Detail: blur (its own kernel on the CPU) and sharpen as tensor ops on the
// device; median and bilateral with OpenCV on the CPU and as tensor ops
// elsewhere; CLAHE and Canny with OpenCV on the CPU.
#include "common.hpp"
#include "kernels.hpp"

#include <opencv2/imgproc.hpp>

#include <cmath>

namespace cozy::postprocess {
namespace {

// OpenCV's kernel size for a float image and a sigma (cv::GaussianBlur with
// ksize (0, 0)): round(8 sigma + 1), made odd.
int gaussian_ksize(double sigma) { return (static_cast<int>(std::lround(sigma * 8 + 1))) | 1; }

// Separable Gaussian blur with OpenCV's kernel and its default border,
// BORDER_REFLECT_101 (torch's "reflect" padding).
at::Tensor gaussian_blur(const at::Tensor& image, double sigma, int threads) {
  if (sigma <= 0) return image;
  const int ksize = gaussian_ksize(sigma);
  const int64_t radius = ksize / 2;
  const int64_t h = image.size(2), w = image.size(3);
  if (cpu_kernels(image) && radius < h && radius < w) {
    // Its own separable filter (kernels::symmetric_filter) with OpenCV's
    // kernel, plane by plane in the cache; planes (and, for fewer planes than
    // threads, bands of rows) over the run's threads.
    const cv::Mat weights = cv::getGaussianKernel(ksize, sigma, CV_32F);
    const float* k = weights.ptr<float>() + radius;  // the centre, then one side
    const at::Tensor src = row_major(image);
    const Rows rows(src);
    const int64_t channels = src.size(1), planes = src.size(0) * channels;
    at::Tensor dst = at::empty({src.size(0), channels, h, w}, src.options());
    float* d = dst.data_ptr<float>();
    const int64_t bands = std::min<int64_t>(std::max<int64_t>(1, (2 * at::get_num_threads() + planes - 1) / planes),
                                            std::max<int64_t>(1, h / 64));
    parallel_for(0, planes * bands, 1, [&](int64_t begin, int64_t end) {
      for (int64_t task = begin; task < end; ++task) {
        const int64_t plane = task / bands, band = task % bands;
        kernels::symmetric_filter(rows(plane / channels, plane % channels, 0), rows.row, d + plane * h * w, w, h, w, k,
                                  static_cast<int>(radius), band * h / bands, (band + 1) * h / bands);
      }
    });
    return dst;
  }
  if (cpu_kernels(image) || radius >= h || radius >= w) {
    // A reflection wider than the image: OpenCV folds it again (through host
    // memory for an image on another device).
    return per_plane(image, h, w, threads, [&](const cv::Mat& in, cv::Mat& out) {
      cv::GaussianBlur(in, out, cv::Size(ksize, ksize), sigma, sigma, cv::BORDER_REFLECT_101);
    });
  }
  at::Tensor x = at::arange(ksize, image.options()) - static_cast<double>(radius);
  at::Tensor kernel = at::exp(-(x * x) / (2 * sigma * sigma));
  kernel = kernel / kernel.sum();
  const int64_t b = image.size(0), c = image.size(1);
  at::Tensor planes = image.reshape({b * c, 1, h, w});
  planes = at::reflection_pad2d(planes, {radius, radius, radius, radius});
  planes = at::conv2d(planes, kernel.view({1, 1, 1, ksize}));
  planes = at::conv2d(planes, kernel.view({1, 1, ksize, 1}));
  return planes.reshape({b, c, h, w});
}

// OpenCV's medianBlur as tensor operations (an image on the GPU): the
// size x size windows of the replicated border (medianBlur's), unfolded and
// their medians taken, a few planes at a time so that the windows (size^2
// copies of a plane) stay within 256 MiB.
at::Tensor median_filter(const at::Tensor& image, int64_t size) {
  constexpr int64_t kWindowBytes = int64_t{256} << 20;
  const int64_t planes = image.size(0) * image.size(1), h = image.size(2), w = image.size(3), r = size / 2;
  const at::Tensor src = image.reshape({planes, 1, h, w});
  at::Tensor out = at::empty({planes, h, w}, image.options());
  const int64_t chunk = std::max<int64_t>(1, kWindowBytes / (h * w * size * size * int64_t{sizeof(float)}));
  for (int64_t p = 0; p < planes; p += chunk) {
    const int64_t n = std::min(chunk, planes - p);
    const at::Tensor windows =
        at::replication_pad2d(src.narrow(0, p, n), {r, r, r, r}).squeeze(1).unfold(1, size, 1).unfold(2, size, 1);
    out.narrow(0, p, n).copy_(std::get<0>(windows.reshape({n, h, w, size * size}).median(-1)));
  }
  return out.view(image.sizes());
}

// OpenCV's bilateralFilter on float images as tensor operations (an image on
// the GPU): radius max(diameter / 2, 1), the neighbours within that distance
// (reflect-101 border), each weighted by exp(-r^2 / (2 sigma_space^2)) and
// by exp(-d^2 / (2 sigma_color^2)), d the colour difference summed over
// channels (OpenCV's L1 distance; it reads these weights from a table with
// 4096 steps a channel, here they are computed). Images whose border would
// fold twice (radius >= a side) return an undefined tensor.
at::Tensor bilateral_filter(const at::Tensor& image, int diameter, double sigma_color, double sigma_space) {
  const int64_t radius = std::max(diameter / 2, 1), h = image.size(2), w = image.size(3);
  if (radius >= h || radius >= w) return {};
  const double color = -0.5 / (sigma_color * sigma_color), space = -0.5 / (sigma_space * sigma_space);
  const at::Tensor padded = at::reflection_pad2d(image, {radius, radius, radius, radius});
  at::Tensor sum = at::zeros_like(image), weights = at::zeros({image.size(0), 1, h, w}, image.options());
  for (int64_t i = -radius; i <= radius; ++i) {
    for (int64_t j = -radius; j <= radius; ++j) {
      const double distance = std::sqrt(static_cast<double>(i * i + j * j));
      if (distance > static_cast<double>(radius)) continue;
      const at::Tensor neighbour = padded.slice(2, radius + i, radius + i + h).slice(3, radius + j, radius + j + w);
      at::Tensor difference = (neighbour - image).abs_();
      if (image.size(1) > 1) difference = difference.sum(1, /*keepdim=*/true);
      const at::Tensor weight = difference.square_().mul_(color).exp_().mul_(std::exp(distance * distance * space));
      sum.addcmul_(neighbour, weight);
      weights.add_(weight);
    }
  }
  return sum.div_(weights).clamp_(0, 1);
}

}  // namespace

// Also used by Sharpen's reference test through the node.
void register_detail(Registrar& r) {
  {
    NodeDef d = filter("GaussianBlur", "Gaussian Blur", "detail",
                       "Separable Gaussian blur with OpenCV's kernel (size round(8 sigma + 1), odd) and border "
                       "(reflect-101): on the CPU its own separable filter, rows in the cache; on other devices tensor "
                       "operations. sigma 0 returns the input.");
    d.spec.inputs.push_back(InputSpec::Float("sigma", 1.0).range(0, 64).with_step(0.1));
    d.run = [](const Inputs& in, Context& ctx) -> Outputs {
      return {gaussian_blur(image_input(in, "image"), in.number("sigma"), ctx.threads())};
    };
    r.add(std::move(d));
  }
  {
    NodeDef d = filter("Sharpen", "Sharpen (Unsharp Mask)", "detail",
                       "Unsharp mask: d = image - GaussianBlur(image, radius); out = image + amount d where |d| >= "
                       "threshold, clamped. amount 0 returns the input.");
    d.spec.inputs.push_back(InputSpec::Float("amount", 1.0).range(0, 10).with_step(0.05));
    d.spec.inputs.push_back(InputSpec::Float("radius", 1.0).range(0.1, 32).with_step(0.1).help("sigma of the blur"));
    d.spec.inputs.push_back(InputSpec::Float("threshold", 0.0).range(0, 1).with_step(0.005));
    d.run = [](const Inputs& in, Context& ctx) -> Outputs {
      at::Tensor image = image_input(in, "image");
      double amount = in.number("amount");
      if (amount == 0) return {image};
      double threshold = in.number("threshold");
      if (cpu_kernels(image)) {
        const double radius = in.number("radius");
        const float a = static_cast<float>(amount), t = static_cast<float>(threshold);
        return {per_plane(image, image.size(2), image.size(3), ctx.threads(), [&](const cv::Mat& src, cv::Mat& dst) {
          thread_local cv::Mat blurred;  // one plane, reused
          cv::GaussianBlur(src, blurred, cv::Size(gaussian_ksize(radius), gaussian_ksize(radius)), radius, radius,
                           cv::BORDER_REFLECT_101);
          if (src.isContinuous()) {
            kernels::unsharp(src.ptr<float>(), blurred.ptr<float>(), dst.ptr<float>(),
                             static_cast<int64_t>(src.total()), a, t);
            return;
          }
          for (int y = 0; y < src.rows; ++y)  // a view's plane: its rows lie apart
            kernels::unsharp(src.ptr<float>(y), blurred.ptr<float>(y), dst.ptr<float>(y), src.cols, a, t);
        })};
      }
      at::Tensor detail = image - gaussian_blur(image, in.number("radius"), ctx.threads());
      if (threshold > 0) detail = detail * detail.abs().ge(threshold);
      return {(image + amount * detail).clamp(0, 1)};
    };
    r.add(std::move(d));
  }
  {
    NodeDef d = filter("MedianDenoise", "Median Denoise", "detail",
                       "OpenCV's medianBlur on each channel (replicated border): on the CPU OpenCV itself (planes "
                       "of a CPU tensor are used in place, without copies), on other devices the same medians as "
                       "tensor operations. Float images allow sizes 3 and 5.");
    d.spec.inputs.push_back(InputSpec::Choice("size", {"3", "5"}));
    d.run = [](const Inputs& in, Context& ctx) -> Outputs {
      at::Tensor image = image_input(in, "image");
      int size = std::stoi(in.string("size"));
      if (!cpu_kernels(image)) return {median_filter(image, size)};
      return {per_plane(image, image.size(2), image.size(3), ctx.threads(),
                        [&](const cv::Mat& src, cv::Mat& dst) { cv::medianBlur(src, dst, size); })};
    };
    r.add(std::move(d));
  }
  {
    NodeDef d = filter("BilateralDenoise", "Bilateral Denoise", "detail",
                       "OpenCV's bilateralFilter (edge-preserving smoothing: neighbours within diameter / 2, "
                       "reflect-101 border, colour distance summed over channels): on the CPU OpenCV itself, on other "
                       "devices the same sums as tensor operations. sigma_color is in units of the [0, 1] value "
                       "range.");
    d.spec.inputs.push_back(InputSpec::Int("diameter", 5).range(1, 25));
    d.spec.inputs.push_back(InputSpec::Float("sigma_color", 0.1).range(0.001, 1).with_step(0.005));
    d.spec.inputs.push_back(InputSpec::Float("sigma_space", 3.0).range(0.1, 50).with_step(0.1));
    d.run = [](const Inputs& in, Context& ctx) -> Outputs {
      int diameter = static_cast<int>(in.integer("diameter"));
      double sc = in.number("sigma_color"), ss = in.number("sigma_space");
      const at::Tensor image = image_input(in, "image");
      if (!cpu_kernels(image))
        if (at::Tensor out = bilateral_filter(image, diameter, sc, ss); out.defined()) return {out};
      return {per_image(image, ctx.threads(),
                        [&](const cv::Mat& src, cv::Mat& dst) { cv::bilateralFilter(src, dst, diameter, sc, ss); })};
    };
    r.add(std::move(d));
  }
  {
    NodeDef d = filter("CLAHE", "CLAHE", "detail",
                       "Contrast-limited adaptive histogram equalisation (OpenCV) on the CPU: on the L channel of "
                       "CIE Lab for colour images, on the image itself for grey ones, at 16 bits.");
    d.spec.inputs.push_back(InputSpec::Float("clip_limit", 2.0).range(0.1, 40).with_step(0.1));
    d.spec.inputs.push_back(InputSpec::Int("tiles", 8).range(1, 64).help("tiles per side"));
    d.run = [](const Inputs& in, Context& ctx) -> Outputs {
      auto clahe = cv::createCLAHE(in.number("clip_limit"),
                                   cv::Size(static_cast<int>(in.integer("tiles")), static_cast<int>(in.integer("tiles"))));
      return {per_image(image_input(in, "image"), ctx.threads(), [&](const cv::Mat& src, cv::Mat& dst) {
        if (src.channels() == 1) {
          cv::Mat deep, equalised;
          src.convertTo(deep, CV_16U, 65535.0);
          clahe->apply(deep, equalised);
          equalised.convertTo(dst, CV_32F, 1.0 / 65535.0);
          return;
        }
        cv::Mat lab, lightness, deep, equalised, clipped;
        cv::min(cv::max(src, 0.0), 1.0, clipped);
        cv::cvtColor(clipped, lab, cv::COLOR_RGB2Lab);
        cv::extractChannel(lab, lightness, 0);  // L only: a and b stay where they are
        lightness.convertTo(deep, CV_16U, 65535.0 / 100.0);
        clahe->apply(deep, equalised);
        equalised.convertTo(lightness, CV_32F, 100.0 / 65535.0);
        cv::insertChannel(lightness, lab, 0);
        cv::Mat rgb;
        cv::cvtColor(lab, rgb, cv::COLOR_Lab2RGB);
        cv::min(cv::max(rgb, 0.0), 1.0, dst);
      })};
    };
    r.add(std::move(d));
  }
  {
    NodeDef d = filter("EdgeDetect", "Edge Detect", "detail",
                       "Edges of the luma, one channel out. sobel: |(Sobel x, Sobel y)| / 4 (a unit step gives 1), "
                       "3x3, reflect-101 border, as tensor operations on the device. canny: OpenCV's Canny on the "
                       "8-bit luma on the CPU, thresholds in [0, 1], edges 1.");
    d.spec.inputs.push_back(InputSpec::Choice("method", {"sobel", "canny"}));
    d.spec.inputs.push_back(InputSpec::Float("low", 0.1).range(0, 1).with_step(0.01).help("canny only"));
    d.spec.inputs.push_back(InputSpec::Float("high", 0.3).range(0, 1).with_step(0.01).help("canny only"));
    d.run = [](const Inputs& in, Context& ctx) -> Outputs {
      at::Tensor image = image_input(in, "image");
      const double low = in.number("low") * 255, high = in.number("high") * 255;
      auto canny = [&](const cv::Mat& grey, cv::Mat& dst) {
        cv::Mat bytes, edges;
        grey.convertTo(bytes, CV_8U, 255.0);
        cv::Canny(bytes, edges, low, high, 3, false);
        edges.convertTo(dst, CV_32F, 1.0 / 255.0);
      };
      if (in.string("method") == "canny" && cpu_kernels(image) && image.size(1) == 3) {
        // Image by image, the luma made in the cache just before Canny reads
        // it (a batch of luma first went through memory: 0.87 of OpenCV at
        // 2 threads), its rows on OpenCV's threads, as Canny's.
        use_threads(ctx.threads());
        return {on_host(image, 1, image.size(2), image.size(3), [&](const at::Tensor& src, at::Tensor& dst) {
          const int h = static_cast<int>(src.size(2)), w = static_cast<int>(src.size(3));
          cv::Mat grey(h, w, CV_32F);
          for (int64_t b = 0; b < src.size(0); ++b) {
            const cv::Mat r = plane_view(src, b, 0), g = plane_view(src, b, 1), bl = plane_view(src, b, 2);
            cv::parallel_for_(cv::Range(0, h), [&](const cv::Range& rows) {
              for (int y = rows.start; y < rows.end; ++y)
                kernels::luma(r.ptr<float>(y), g.ptr<float>(y), bl.ptr<float>(y), grey.ptr<float>(y), w);
            });
            cv::Mat edges = plane_view(dst, b, 0);
            canny(grey, edges);
          }
        })};
      }
      at::Tensor grey = luma(image);
      if (in.string("method") == "canny") {
        return {per_plane(grey, grey.size(2), grey.size(3), ctx.threads(), canny)};
      }
      if (grey.size(2) < 2 || grey.size(3) < 2) throw Error("EdgeDetect needs an image of at least 2 x 2 pixels");
      if (cpu_kernels(grey)) {
        return {per_plane(grey, grey.size(2), grey.size(3), ctx.threads(), [&](const cv::Mat& src, cv::Mat& dst) {
          cv::Mat dx, dy;
          cv::Sobel(src, dx, CV_32F, 1, 0, 3);
          cv::Sobel(src, dy, CV_32F, 0, 1, 3);
          cv::magnitude(dx, dy, dst);
          dst *= 0.25;
          cv::min(dst, 1.0, dst);
        })};
      }
      at::Tensor kx = at::tensor({-1.f, 0.f, 1.f, -2.f, 0.f, 2.f, -1.f, 0.f, 1.f}, grey.options()).view({1, 1, 3, 3});
      at::Tensor ky = kx.transpose(2, 3).contiguous();
      at::Tensor padded = at::reflection_pad2d(grey, {1, 1, 1, 1});
      // conv2d is a correlation, as cv::Sobel's filter is.
      at::Tensor dx = at::conv2d(padded, kx), dy = at::conv2d(padded, ky);
      return {(at::sqrt(dx * dx + dy * dy) / 4.0).clamp(0, 1)};
    };
    r.add(std::move(d));
  }
}

}  // namespace cozy::postprocess
