#include "common.hpp"

#include <c10/core/Event.h>
#include <c10/core/impl/VirtualGuardImpl.h>

#include <opencv2/core/utility.hpp>
#include <thread>
#include <vector>

namespace cozy::postprocess {

namespace {
// OpenCV's own thread pool follows the run's thread count.
void use_threads(int threads) {
  if (cv::getNumThreads() != threads) cv::setNumThreads(threads);
}
}  // namespace

// Runs `work(src, dst)` on CPU tensors, src with contiguous rows (a view is
// read in place), dst contiguous: the whole batch for a CPU image; for an
// image on another device (a GPU), image by image through pinned host
// memory, so that copies overlap the CPU's work. Every image's
// copy to the host is queued at once, each followed by an event; the CPU
// takes an image as soon as its event has passed, and its result is queued
// back at once. Only the first image's copy down and the last one's copy up
// are not hidden behind OpenCV's work. The result on the device is ready in
// the device's current stream, as a tensor operation's would be.
at::Tensor on_host(const at::Tensor& image, int64_t out_c, int64_t out_h, int64_t out_w,
                   const std::function<void(const at::Tensor&, at::Tensor&)>& work) {
  const int64_t batch = image.size(0);
  if (image.is_cpu()) {
    at::Tensor src = row_major(image);  // a view with contiguous rows is read in place
    at::Tensor dst = at::empty({batch, out_c, out_h, out_w}, src.options());
    work(src, dst);
    return dst;
  }
  const c10::Device device = image.device();
  const c10::impl::VirtualGuardImpl guard(device.type());
  const c10::Stream stream = guard.getStream(device);
  const auto host = image.options().device(at::kCPU).pinned_memory(true);
  at::Tensor src = at::empty(image.sizes(), host);
  at::Tensor dst = at::empty({batch, out_c, out_h, out_w}, host);
  at::Tensor result = at::empty({batch, out_c, out_h, out_w}, image.options());
  std::vector<c10::Event> landed;
  landed.reserve(static_cast<std::size_t>(batch));
  for (int64_t b = 0; b < batch; ++b) {
    src[b].copy_(image[b], /*non_blocking=*/true);
    landed.emplace_back(device.type());
    landed.back().record(stream);
  }
  for (int64_t b = 0; b < batch; ++b) {
    // LibTorch 1.13's Event has no synchronize(): wait by polling.
    while (!landed[static_cast<std::size_t>(b)].query()) std::this_thread::yield();
    at::Tensor out = dst.narrow(0, b, 1);
    work(src.narrow(0, b, 1), out);
    // Pinned memory stays reserved until the copy has run (PyTorch's host
    // allocator records the copy on the stream), whatever happens to `dst`.
    result[b].copy_(dst[b], /*non_blocking=*/true);
  }
  return result;
}

at::Tensor per_plane(const at::Tensor& image, int64_t out_h, int64_t out_w, int threads,
                     const std::function<void(const cv::Mat&, cv::Mat&)>& fn, bool planes_in_parallel) {
  use_threads(threads);
  return on_host(image, image.size(1), out_h, out_w, [&](const at::Tensor& src, at::Tensor& dst) {
    const int64_t channels = src.size(1);
    auto run = [&](int64_t begin, int64_t end) {
      for (int64_t plane = begin; plane < end; ++plane) {
        cv::Mat in = plane_view(src, plane / channels, plane % channels);
        cv::Mat out = plane_view(dst, plane / channels, plane % channels);
        cv::Mat result = out;  // OpenCV writes in place when sizes and types match
        fn(in, result);
        if (result.data != out.data) result.convertTo(out, CV_32F);
      }
    };
    if (planes_in_parallel)
      at::parallel_for(0, src.size(0) * channels, 1, run);
    else
      run(0, src.size(0) * channels);
  });
}

void per_image_into(const at::Tensor& src, at::Tensor& dst, int threads,
                    const std::function<void(const cv::Mat&, cv::Mat&)>& fn) {
  use_threads(threads);
  const int channels = static_cast<int>(src.size(1));
  const int in_h = static_cast<int>(src.size(2)), in_w = static_cast<int>(src.size(3));
  const int out_h = static_cast<int>(dst.size(2)), out_w = static_cast<int>(dst.size(3));
  // Each image is interleaved into one buffer and its result split back into
  // the output's planes: copies of one image, which stay in the cache, where
  // a copy of the whole batch each way would go through memory. Both copies
  // run in bands of rows on OpenCV's threads, as the filters themselves do
  // (on 16 cores, single-threaded copies cost CLAHE a tenth of its time).
  cv::Mat interleaved(in_h, in_w, CV_32FC(channels));
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
    cv::parallel_for_(cv::Range(0, in_h), [&](const cv::Range& rows) {
      std::vector<cv::Mat> parts;
      for (const cv::Mat& plane : in_planes) parts.push_back(plane.rowRange(rows.start, rows.end));
      cv::Mat band = interleaved.rowRange(rows.start, rows.end);
      cv::merge(parts, band);  // into the band: create() keeps it
    });
    fn(interleaved, result);
    if (result.depth() != CV_32F) result.convertTo(result, CV_32F);
    cv::parallel_for_(cv::Range(0, out_h), [&](const cv::Range& rows) {
      std::vector<cv::Mat> parts;
      for (const cv::Mat& plane : out_planes) parts.push_back(plane.rowRange(rows.start, rows.end));
      cv::split(result.rowRange(rows.start, rows.end), parts.data());  // into the output's planes
    });
  }
}

at::Tensor per_image(const at::Tensor& image, int threads, const std::function<void(const cv::Mat&, cv::Mat&)>& fn) {
  return on_host(image, image.size(1), image.size(2), image.size(3),
                 [&](const at::Tensor& src, at::Tensor& dst) { per_image_into(src, dst, threads, fn); });
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
