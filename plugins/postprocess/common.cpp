#include "common.hpp"

#include <c10/core/Event.h>
#include <c10/core/impl/VirtualGuardImpl.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <opencv2/core/utility.hpp>
#include <thread>
#include <vector>

#include "kernels.hpp"

namespace cozy::postprocess {

namespace {

// The workers of run_parallel. A job is published under the mutex with a
// new generation; workers spin on the generation for a while after each job,
// then sleep on the condition variable. Each of the job's seats (the caller
// is seat 0, workers take the others as they arrive) owns a run of
// consecutive k, as a static schedule would give it, and takes them from the
// front: neighbouring pieces of work stay on one core, whose cache holds
// what they share (Rotate's interleaved rows: on 2 threads, pieces dealt
// out one at a time ran at 0.55 of OpenMP's static split). A seat that has
// run out takes from the back of another's run, so a seat whose worker is
// late or slow is emptied by the others. A job is shared: a worker that
// picks it up after the caller has returned holds it alive, finds every k
// taken and never calls fn (whose captures are gone by then).
class Pool {
 public:
  ~Pool() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    wake_.notify_all();
    for (std::thread& worker : workers_) worker.join();
  }

  void run(int64_t count, int threads, const std::function<void(int64_t)>& fn) {
    const std::shared_ptr<Job> job(new Job(fn, count, threads));  // aligned new: Job holds 64-byte-aligned members
    {
      std::lock_guard<std::mutex> lock(mutex_);
      while (static_cast<int>(workers_.size()) < threads - 1) workers_.emplace_back([this] { work(); });
      job_ = job;
      generation_.fetch_add(1, std::memory_order_release);
    }
    wake_.notify_all();
    take(*job, 0);
    // Only the k taken by workers can still be running.
    for (int spins = 0; job->done.load(std::memory_order_acquire) < count; ++spins) {
      if (spins < 4096)
        pause();
      else
        std::this_thread::yield();
    }
  }

  static thread_local bool inside;  // a worker, or a caller taking its share

 private:
  // A seat's run of k: [front, back) packed in one word, so that its owner
  // (from the front) and others (from the back) cannot take the same k.
  struct alignas(64) Run {
    std::atomic<uint64_t> bounds{0};
  };

  struct Job {
    Job(const std::function<void(int64_t)>& f, int64_t n, int threads)
        : fn(&f), count(n), seats(threads), runs(static_cast<std::size_t>(threads)) {
      for (int s = 0; s < threads; ++s)
        runs[static_cast<std::size_t>(s)].bounds.store(
            (static_cast<uint64_t>(s * n / threads) << 32) | static_cast<uint64_t>((s + 1) * n / threads),
            std::memory_order_relaxed);
    }
    const std::function<void(int64_t)>* fn;
    int64_t count;
    int seats;
    std::vector<Run> runs;
    alignas(64) std::atomic<int64_t> done{0};
    std::atomic<int> joined{1};  // seat 0 is the caller's
  };

  static void pause() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  }

  // The next k of a run, from its front (its owner) or its back; -1 when empty.
  static int64_t next(Run& run, bool front) {
    uint64_t bounds = run.bounds.load(std::memory_order_relaxed);
    for (;;) {
      const uint64_t first = bounds >> 32, end = bounds & 0xffffffffu;
      if (first >= end) return -1;
      const uint64_t taken = front ? ((first + 1) << 32) | end : (first << 32) | (end - 1);
      if (run.bounds.compare_exchange_weak(bounds, taken, std::memory_order_relaxed))
        return static_cast<int64_t>(front ? first : end - 1);
    }
  }

  static void take(Job& job, int seat) {
    const bool was_inside = inside;
    inside = true;
    auto run_k = [&](int64_t k) {
      (*job.fn)(k);
      job.done.fetch_add(1, std::memory_order_release);
    };
    for (int64_t k; (k = next(job.runs[static_cast<std::size_t>(seat)], true)) >= 0;) run_k(k);
    for (int other = 1; other < job.seats; ++other) {
      Run& run = job.runs[static_cast<std::size_t>((seat + other) % job.seats)];
      for (int64_t k; (k = next(run, false)) >= 0;) run_k(k);
    }
    inside = was_inside;
  }

  void work() {
    inside = true;
    uint64_t seen = 0;
    for (;;) {
      // Spin for a new job for about 100 us, then sleep.
      const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(100);
      for (int spins = 0; generation_.load(std::memory_order_acquire) == seen; ++spins) {
        pause();
        if (spins % 64 == 0 && std::chrono::steady_clock::now() > until) break;
      }
      std::shared_ptr<Job> job;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return stop_ || generation_.load(std::memory_order_relaxed) != seen; });
        if (stop_) return;
        seen = generation_.load(std::memory_order_relaxed);
        job = job_;
      }
      if (const int seat = job->joined.fetch_add(1, std::memory_order_relaxed); seat < job->seats) take(*job, seat);
    }
  }

  std::mutex mutex_;
  std::condition_variable wake_;
  std::shared_ptr<Job> job_;
  std::atomic<uint64_t> generation_{0};
  bool stop_ = false;
  std::vector<std::thread> workers_;
};

thread_local bool Pool::inside = false;

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

void use_threads(int threads) {
  static const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  threads = std::min(threads, cores);
  if (cv::getNumThreads() != threads) cv::setNumThreads(threads);
}

void run_parallel(int64_t count, int threads, const std::function<void(int64_t)>& fn) {
  if (count <= 0) return;
  if (threads <= 1 || count == 1 || Pool::inside || at::in_parallel_region()) {
    for (int64_t k = 0; k < count; ++k) fn(k);
    return;
  }
  static Pool pool;
  // A seat's run of k is packed in 32 bits a bound: a larger count goes in
  // slices (parallel_for passes at most 8 a thread).
  constexpr int64_t kSlice = int64_t{1} << 31;
  if (count <= kSlice) return pool.run(count, threads, fn);
  for (int64_t first = 0; first < count; first += kSlice)
    pool.run(std::min(kSlice, count - first), threads, [&](int64_t k) { fn(first + k); });
}

at::Tensor luma(const at::Tensor& image) {
  if (image.size(1) == 1) return image;
  if (cpu_kernels(image))
    return map_pixels(image, 1, [](const float* const* src, float* const* dst, int64_t n) {
      kernels::luma(src[0], src[1], src[2], dst[0], n);
    });
  return image.select(1, 0).unsqueeze(1) * 0.299 + image.select(1, 1).unsqueeze(1) * 0.587 +
         image.select(1, 2).unsqueeze(1) * 0.114;
}

at::Tensor copy_rows(const at::Tensor& t) {
  if (t.is_contiguous()) return t;
  if (!t.is_cpu() || t.scalar_type() != at::kFloat || !rows_contiguous(t)) return t.contiguous();
  const Rows rows(t);
  const int64_t channels = t.size(1), h = t.size(2), w = t.size(3), planes = t.size(0) * channels;
  at::Tensor dst = at::empty(t.sizes(), t.options());
  float* d = dst.data_ptr<float>();
  const bool stream = kernels::streams(static_cast<int64_t>(dst.nbytes()));
  parallel_for(0, planes * h, 64, [&](int64_t begin, int64_t end) {
    for (int64_t k = begin; k < end; ++k) {
      const int64_t plane = k / h, y = k % h;
      const float* row = rows(plane / channels, plane % channels, y);
      if (stream)
        kernels::stream_lines(row, d + k * w, w);
      else
        kernels::copy(row, d + k * w, w);
    }
    if (stream) kernels::stream_fence();
  });
  return dst;
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
      parallel_for(0, src.size(0) * channels, 1, run);
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
  if (image.is_cpu() || image.size(1) == 1)
    return on_host(image, image.size(1), image.size(2), image.size(3),
                   [&](const at::Tensor& src, at::Tensor& dst) { per_image_into(src, dst, threads, fn); });
  // On another device a colour image is interleaved there (H x W x 3,
  // OpenCV's layout) before it comes down, and its result is split back into
  // planes there: the CPU does OpenCV's work alone, where per_image_into
  // would interleave and split each image on it too. on_host takes any
  // four sizes: [B, H, W, 3] passes for [B, C, H, W].
  use_threads(threads);
  const int h = static_cast<int>(image.size(2)), w = static_cast<int>(image.size(3));
  const at::Tensor interleaved = image.permute({0, 2, 3, 1}).contiguous();
  const at::Tensor out = on_host(interleaved, h, w, 3, [&](const at::Tensor& src, at::Tensor& dst) {
    for (int64_t b = 0; b < src.size(0); ++b) {
      const cv::Mat in(h, w, CV_32FC3, src[b].data_ptr<float>());
      const cv::Mat result(h, w, CV_32FC3, dst[b].data_ptr<float>());
      cv::Mat made = result;  // OpenCV writes in place when sizes and types match
      fn(in, made);
      if (made.data != result.data) made.convertTo(result, CV_32F);
    }
  });
  return out.permute({0, 3, 1, 2}).contiguous();
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
