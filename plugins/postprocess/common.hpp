// Shared by the post-process filters: argument checks, luma, and running
// OpenCV on the planes or images of a batch.
#pragma once

#include <cozy/sdk.hpp>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <opencv2/core.hpp>

#include <algorithm>
#include <cstdlib>
#include <functional>

namespace cozy::postprocess {

/// ITU-R BT.601 luma, as PIL's "L" and OpenCV's RGB2GRAY: [B, 1, H, W]. On
/// the CPU one fused pass (kernels::luma), elsewhere tensor operations.
at::Tensor luma(const at::Tensor& image);

/// Runs fn(k) for k in [0, count) on up to `threads` threads (the caller
/// and the pool's workers), each taking the next k as it finishes one. The
/// caller waits only for the k that others have taken: a worker that wakes
/// late (on a virtual machine an idle core can take milliseconds to come
/// back) finds the work done rather than holding the caller up, as OpenCV's
/// TBB does; OpenMP's parallel regions (at::parallel_for) wait for every
/// thread to arrive. Workers spin for 100 us after a job before they sleep.
/// Nested calls (from inside fn) run serially. fn must not throw. A count
/// above 2^31 runs in slices of 2^31 (a thread's run of k is packed in 32
/// bits a bound; parallel_for passes at most 8 a thread).
void run_parallel(int64_t count, int threads, const std::function<void(int64_t)>& fn);

/// OpenCV's thread pool (TBB) follows the run's thread count, up to the
/// machine's cores: TBB would not start more, and says so on stderr.
void use_threads(int threads);

/// at::parallel_for's contract on run_parallel: fn(b, e) over pieces of
/// [begin, end) of at least `grain` (but for the last), up to 8 a thread so
/// that threads that start late or run slow are evened out; at::get_num_threads()
/// threads.
template <class Fn>
void parallel_for(int64_t begin, int64_t end, int64_t grain, const Fn& fn) {
  const int64_t n = end - begin;
  if (n <= 0) return;
  const int threads = at::get_num_threads();
  const int64_t pieces =
      std::min<int64_t>((n + std::max<int64_t>(grain, 1) - 1) / std::max<int64_t>(grain, 1), int64_t{8} * threads);
  if (threads <= 1 || pieces <= 1) {
    fn(begin, end);
    return;
  }
  run_parallel(pieces, threads, [&](int64_t k) { fn(begin + k * n / pieces, begin + (k + 1) * n / pieces); });
}

/// True when every row of a [B, C, H, W] tensor is contiguous and rows do not
/// overlap: a contiguous tensor, or a view such as Crop's. Batches and
/// planes may lie anywhere (an expanded plane is read three times).
inline bool rows_contiguous(const at::Tensor& t) {
  return t.dim() == 4 && (t.size(3) <= 1 || t.stride(3) == 1) && (t.size(2) <= 1 || t.stride(2) >= t.size(3));
}

/// `t` itself when its rows are contiguous, else a contiguous copy: what the
/// CPU row loops and OpenCV (whose images have a row step) read, so that a
/// view is read in place rather than copied first.
inline at::Tensor row_major(const at::Tensor& t) { return rows_contiguous(t) ? t : t.contiguous(); }

/// `t` when contiguous; else, for a float32 CPU tensor with contiguous rows
/// (a channel or Crop's rectangle of an image, a plane expanded to three
/// channels), a contiguous copy made a row at a time on parallel_for's
/// threads (LibTorch's copy would wait for every OpenMP thread to wake);
/// else t.contiguous().
at::Tensor copy_rows(const at::Tensor& t);

/// The rows of a float32 CPU tensor with contiguous rows: its first
/// element and strides, read once (data_ptr and stride check their
/// arguments on every call, too slow to ask per row).
struct Rows {
  explicit Rows(const at::Tensor& t)
      : base(t.data_ptr<float>()), batch(t.stride(0)), plane(t.stride(1)), row(t.stride(2)) {}
  /// Row y of plane c of image b, to read (a node's inputs are not its to change).
  const float* operator()(int64_t b, int64_t c, int64_t y) const { return base + b * batch + c * plane + y * row; }
  const float* base;
  int64_t batch, plane, row;
};

/// A plane of a tensor with contiguous rows as runs of pixels that lie
/// together: one run of H x W when the tensor is contiguous, else H runs of
/// W (its rows). Run k of plane c of image b starts at Rows(t)(b, c, k).
struct Runs {
  explicit Runs(const at::Tensor& t)
      : whole(t.is_contiguous()), length(whole ? t.size(2) * t.size(3) : t.size(3)), count(whole ? 1 : t.size(2)) {}
  bool whole;
  int64_t length, count;
};

/// Asks the caches for a row that a loop will read soon. The hardware's
/// prefetchers keep up with a contiguous plane but not with a view's rows,
/// which lie apart: Crop then Brightness measured 0.84 x OpenCV without,
/// 1.0-1.16 with rows kPrefetchRows ahead (1 thread, bench_filters).
inline void prefetch_row(const float* row, int64_t n) {
  const char* p = reinterpret_cast<const char*>(row);
  for (int64_t byte = 0; byte < n * static_cast<int64_t>(sizeof(float)); byte += 64) __builtin_prefetch(p + byte);
}
inline constexpr int64_t kPrefetchRows = 2;

/// A [H, W] plane of a float32 CPU tensor with contiguous rows, as a cv::Mat
/// sharing its memory (no copy; the tensor's row stride is the Mat's step).
/// OpenCV has no read-only Mat: a plane of a node's input is only to be
/// passed where OpenCV takes a `const cv::Mat&`.
inline cv::Mat plane_view(const at::Tensor& t, int64_t b, int64_t c) {
  const auto step = static_cast<std::size_t>(t.size(2) > 1 ? t.stride(2) : t.size(3)) * sizeof(float);
  float* first = t.data_ptr<float>() + b * t.stride(0) + c * t.stride(1);
  return cv::Mat(static_cast<int>(t.size(2)), static_cast<int>(t.size(3)), CV_32FC1, first, step);
}

/// Runs `work(src, dst)` on CPU tensors, src with contiguous rows (read them
/// with plane_view or Rows: a view's rows lie apart), dst contiguous [B,
/// out_c, out_h, out_w]: the whole batch for a CPU image; for an image on another device (a
/// GPU), image by image through pinned host memory, so that copies overlap
/// the CPU's work. The result is on the image's device.
at::Tensor on_host(const at::Tensor& image, int64_t out_c, int64_t out_h, int64_t out_w,
                   const std::function<void(const at::Tensor&, at::Tensor&)>& work);

/// Runs `fn(src_plane, dst_plane)` on every channel plane of every image,
/// writing into a new [B, C, out_h, out_w] tensor. Contiguous CPU tensors are
/// wrapped without copies; a batch on a GPU goes through pinned host memory
/// image by image, its copies overlapping the CPU's work.
/// planes_in_parallel: planes spread over the run's threads, for an `fn`
/// that OpenCV does not spread itself (cv::pow); the others leave OpenCV to
/// spread each call's rows.
at::Tensor per_plane(const at::Tensor& image, int64_t out_h, int64_t out_w, int threads,
                     const std::function<void(const cv::Mat&, cv::Mat&)>& fn, bool planes_in_parallel = false);

/// Runs `fn(src, dst)` on each image as an interleaved H x W x C cv::Mat
/// (RGB order), for filters that look at all channels at once. A colour
/// image on another device is interleaved there and comes down (through
/// on_host) as OpenCV holds it.
at::Tensor per_image(const at::Tensor& image, int threads, const std::function<void(const cv::Mat&, cv::Mat&)>& fn);

/// per_image from a contiguous CPU batch into a CPU batch of the same
/// channels, whose planes may have another size.
void per_image_into(const at::Tensor& src, at::Tensor& dst, int threads,
                    const std::function<void(const cv::Mat&, cv::Mat&)>& fn);

/// True when a filter should take its CPU path: fused loops and OpenCV on
/// the tensor's memory. On other devices, filters run as tensor operations.
/// COZY_POSTPROCESS_TENSOR_OPS=1 forces tensor operations on the CPU too (the
/// tests run both paths).
inline bool cpu_kernels(const at::Tensor& t) {
  static const bool forced = std::getenv("COZY_POSTPROCESS_TENSOR_OPS") != nullptr;
  return t.is_cpu() && !forced;
}

/// One pass over the pixels of a CPU batch (contiguous, or a view with
/// contiguous rows, read in place), in parallel chunks:
/// `fn(in, out, count)` gets three input plane pointers (a grey image gives
/// its one plane three times) and `out_channels` output plane pointers (the
/// last repeated up to three), `count` pixels each. Loops written in `fn`
/// over plain floats vectorise, so one pass does what tensor expressions do
/// in several.
template <class Fn>
at::Tensor map_pixels(const at::Tensor& image, int64_t out_channels, const Fn& fn) {
  const at::Tensor src = row_major(image);
  const Rows rows(src);
  const int64_t batch = src.size(0), channels = src.size(1), h = src.size(2), w = src.size(3);
  at::Tensor dst = at::empty({batch, out_channels, h, w}, src.options());
  float* d = dst.data_ptr<float>();
  // A contiguous plane is cut into chunks of pixels; a view's rows are
  // taken a chunk of rows at a time.
  const Runs plane(src);
  const bool whole = plane.whole;
  const int64_t run = plane.length, runs = plane.count;
  constexpr int64_t kChunk = 1 << 15;
  const int64_t step = whole ? kChunk : std::max<int64_t>(1, kChunk / std::max<int64_t>(w, 1));
  const int64_t chunks = whole ? (h * w + kChunk - 1) / kChunk : (runs + step - 1) / step;
  parallel_for(0, batch * chunks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t k = begin; k < end; ++k) {
      const int64_t b = k / chunks, chunk = k % chunks;
      const float* in[3];
      float* out[3];
      if (whole) {
        const int64_t start = chunk * kChunk, count = std::min(kChunk, run - start);
        for (int64_t c = 0; c < 3; ++c) {
          in[c] = rows(b, std::min(c, channels - 1), 0) + start;
          out[c] = d + (b * out_channels + std::min(c, out_channels - 1)) * run + start;
        }
        fn(in, out, count);
        continue;
      }
      for (int64_t y = chunk * step; y < std::min(runs, (chunk + 1) * step); ++y) {
        if (y + kPrefetchRows < h)
          for (int64_t c = 0; c < channels; ++c) prefetch_row(rows(b, c, y + kPrefetchRows), w);
        for (int64_t c = 0; c < 3; ++c) {
          in[c] = rows(b, std::min(c, channels - 1), y);
          out[c] = d + ((b * out_channels + std::min(c, out_channels - 1)) * h + y) * w;
        }
        fn(in, out, w);
      }
    }
  });
  return dst;
}

inline float clamp01f(float v) { return std::min(1.f, std::max(0.f, v)); }

/// RGB [B, 3, H, W] in [0, 1] to HSV with H in [0, 360), S, V in [0, 1]
/// (OpenCV's float convention), and back.
at::Tensor rgb_to_hsv(const at::Tensor& rgb);
at::Tensor hsv_to_rgb(const at::Tensor& hsv);

void register_tone(Registrar& r);
void register_detail(Registrar& r);
void register_geometry(Registrar& r);

/// A NodeDef with the one IMAGE input most filters start with.
NodeDef filter(const char* type, const char* display, const char* category, const char* description);

}  // namespace cozy::postprocess
