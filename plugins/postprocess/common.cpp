#include "common.hpp"

#include <opencv2/core/utility.hpp>

namespace cozy::postprocess {

namespace {
// OpenCV's own thread pool follows the run's thread count.
void use_threads(int threads) {
  if (cv::getNumThreads() != threads) cv::setNumThreads(threads);
}
}  // namespace

at::Tensor per_plane(const at::Tensor& image, int64_t out_h, int64_t out_w, int threads,
                     const std::function<void(const cv::Mat&, cv::Mat&)>& fn) {
  use_threads(threads);
  at::Tensor src = image.to(at::kCPU).contiguous();
  at::Tensor dst = at::empty({src.size(0), src.size(1), out_h, out_w}, src.options());
  for (int64_t b = 0; b < src.size(0); ++b) {
    for (int64_t c = 0; c < src.size(1); ++c) {
      cv::Mat in = plane_view(src, b, c);
      cv::Mat out = plane_view(dst, b, c);
      cv::Mat result = out;  // OpenCV writes in place when sizes and types match
      fn(in, result);
      if (result.data != out.data) result.convertTo(out, CV_32F);
    }
  }
  return dst.to(image.device());
}

void per_image_into(const at::Tensor& src, at::Tensor& dst, int threads,
                    const std::function<void(const cv::Mat&, cv::Mat&)>& fn) {
  use_threads(threads);
  const int channels = static_cast<int>(src.size(1));
  const int out_h = static_cast<int>(dst.size(2)), out_w = static_cast<int>(dst.size(3));
  // Each image is interleaved into one buffer and its result split back into
  // the output's planes: copies of one image, which stay in the cache, where
  // a copy of the whole batch each way would go through memory.
  cv::Mat interleaved;
  cv::Mat result(out_h, out_w, CV_32FC(channels));
  std::vector<cv::Mat> in_planes(channels), out_planes(channels);
  for (int64_t b = 0; b < src.size(0); ++b) {
    for (int c = 0; c < channels; ++c) {
      in_planes[c] = plane_view(src, b, c);
      out_planes[c] = plane_view(dst, b, c);
    }
    if (channels == 1) {
      cv::Mat out = out_planes[0];
      fn(in_planes[0], out);
      if (out.data != out_planes[0].data) out.convertTo(out_planes[0], CV_32F);
      continue;
    }
    cv::merge(in_planes, interleaved);
    fn(interleaved, result);
    if (result.depth() != CV_32F) result.convertTo(result, CV_32F);
    cv::split(result, out_planes.data());  // into the output's planes: create() keeps them
  }
}

at::Tensor per_image(const at::Tensor& image, int threads, const std::function<void(const cv::Mat&, cv::Mat&)>& fn) {
  at::Tensor src = image.to(at::kCPU).contiguous();
  at::Tensor dst = at::empty_like(src);
  per_image_into(src, dst, threads, fn);
  return dst.to(image.device());
}

at::Tensor rgb_to_hsv(const at::Tensor& rgb) {
  at::Tensor r = rgb.select(1, 0), g = rgb.select(1, 1), b = rgb.select(1, 2);
  at::Tensor v = std::get<0>(rgb.max(1));
  at::Tensor minimum = std::get<0>(rgb.min(1));
  at::Tensor delta = v - minimum;
  at::Tensor s = at::where(v > 0, delta / v.clamp_min(1e-12), at::zeros_like(v));
  at::Tensor safe = delta.clamp_min(1e-12);
  at::Tensor h = at::where(v == r, 60.0 * (g - b) / safe,
                           at::where(v == g, 120.0 + 60.0 * (b - r) / safe, 240.0 + 60.0 * (r - g) / safe));
  h = at::where(delta > 0, h, at::zeros_like(h));
  h = at::where(h < 0, h + 360.0, h);
  return at::stack({h, s, v}, 1);
}

at::Tensor hsv_to_rgb(const at::Tensor& hsv) {
  at::Tensor h = hsv.select(1, 0), s = hsv.select(1, 1), v = hsv.select(1, 2);
  // f(n) = v - v s max(0, min(k, 4 - k, 1)), k = (n + h / 60) mod 6
  auto channel = [&](double n) {
    at::Tensor k = at::fmod(n + h / 60.0, 6.0);
    return v - v * s * at::clamp(at::minimum(k, 4.0 - k), 0.0, 1.0);
  };
  return at::stack({channel(5), channel(3), channel(1)}, 1);
}

NodeDef filter(const char* type, const char* display, const char* category, const char* description) {
  NodeDef def;
  def.spec.class_type = type;
  def.spec.display_name = display;
  def.spec.category = std::string("image/postprocess/") + category;
  def.spec.description = description;
  def.spec.inputs = {InputSpec::Link("image", types::IMAGE)};
  def.spec.outputs = {{"IMAGE", types::IMAGE}};
  return def;
}

}  // namespace cozy::postprocess

namespace {
void register_nodes(cozy::Registrar& r) {
  cozy::postprocess::register_tone(r);
  cozy::postprocess::register_detail(r);
  cozy::postprocess::register_geometry(r);
}
}  // namespace

COZY_PLUGIN("postprocess", "0.1.0", register_nodes)
