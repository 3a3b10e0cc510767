// Post-process filters against OpenCV doing the same operation on the same
// data, in the same run: a batch of 16 RGB images of 512 x 512 (--size N for
// N x N; Resize and Crop then take N / 2, Crop from N / 8), CPU. Crop,
// a view on both sides, is timed with what follows it (copied out, or read
// by Brightness, Flip or GaussianBlur).
//
//   build/bench/bench_filters [repeats] [--system-malloc | --small-pages] [--device cuda] [--only PREFIX[,PREFIX...]]
//                             [--peer-reuses-output] [--size N] [--cold]   (BENCH_VERBOSE=1 prints every round)
//
// With --device cuda, Cozy's nodes run on the GPU (the batch already there;
// timed until the result is ready) against OpenCV on every CPU core; a last
// column gives the largest difference between the GPU's result and the CPU
// path's on the same batch.
// Cozy runs each node once on the [16, 3, 512, 512] batch; OpenCV runs its
// functions on 16 interleaved 512 x 512 x 3 float images (its own layout).
// Images per second are medians of the repeats; ratio = Cozy / OpenCV.
// --cold: 128 MiB written before each timed run of either side, so that
// neither finds its input in the caches from the round before (a filter in a
// graph reads what another node wrote, not the batch it read a moment ago).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cozy/host/executor.hpp>
#include <cozy/host/memory.hpp>
#include <cozy/host/registry.hpp>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <opencv2/core.hpp>
#include <opencv2/core/utility.hpp>
#include <opencv2/imgproc.hpp>
#include <thread>

#include "bench_nodes.hpp"

namespace {

using namespace cozy;
using Clock = std::chrono::steady_clock;

class BenchContext : public Context {
 public:
  BenchContext(int threads, c10::Device device) : threads_(threads), device_(device) {}
  c10::Device device() const override { return device_; }
  int threads() const override { return threads_; }
  void progress(std::int64_t, std::int64_t, std::string_view) override {}
  bool cancelled() const override { return false; }
  void log(LogLevel, std::string_view) override {}
  const std::filesystem::path& input_dir() const override { return dir_; }
  const std::filesystem::path& output_dir() const override { return dir_; }
  const std::filesystem::path& model_dir() const override { return dir_; }
  const std::filesystem::path& temp_dir() const override { return dir_; }
  void add_file(const std::filesystem::path&, std::string_view) override {}
  const std::string& node_id() const override { return id_; }
  void show_text(std::string_view) override {}

 private:
  int threads_;
  c10::Device device_;
  std::filesystem::path dir_ = "/tmp";
  std::string id_ = "bench";
};

cv::Mat clamp01(const cv::Mat& m) {
  cv::Mat out;
  cv::min(m, 1.0, out);
  cv::max(out, 0.0, out);
  return out;
}

struct Case {
  std::string label;
  const char* type;
  std::map<std::string, Value> params;
  std::function<cv::Mat(const cv::Mat&)> opencv;
  // Nodes run after the first on its output (a chain in a graph), and
  // whether the result is then made contiguous (what a node that needs
  // contiguous memory pays for a view).
  std::vector<std::pair<const char*, std::map<std::string, Value>>> then = {};
  bool copy_out = false;
};

// Minor page faults of the process so far: fresh pages a run touched.
long page_faults() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_minflt;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  int repeats = 3;
  bool system_malloc = false, small_pages = false;
  std::string only;
  bool peer_reuses_output = false;
  bool cold = false;
  int64_t size = 512;
  constexpr int kWarmup = 4;
  static constexpr int kSettleMs = 50;
  c10::Device device(c10::kCPU);
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--system-malloc") system_malloc = true;
    else if (arg == "--small-pages")
      small_pages = true;
    else if (arg == "--device" && i + 1 < argc) device = c10::Device(argv[++i]);
    else if (arg == "--only" && i + 1 < argc) only = argv[++i];
    else if (arg == "--peer-reuses-output") peer_reuses_output = true;
    else if (arg == "--cold")
      cold = true;
    else if (arg == "--size" && i + 1 < argc)
      size = std::atoll(argv[++i]);
    else repeats = std::atoi(argv[i]);
  }
  // As `cozy` does (`cozy run --no-large-pages` as --small-pages).
  if (!system_malloc) host::keep_freed_memory(/*large_pages=*/!small_pages);
  host::Registry registry;
  registry.load_folder(COZY_PLUGIN_DIR);
  const int64_t batch = 16;
  at::manual_seed(0);
  at::Tensor images = at::rand({batch, 3, size, size});
  at::Tensor layer = images.flip({3}).contiguous();
  std::vector<cv::Mat> mats;
  at::Tensor hwc = images.permute({0, 2, 3, 1}).contiguous();
  for (int64_t b = 0; b < batch; ++b)
    mats.emplace_back(cv::Mat(size, size, CV_32FC3, hwc[b].data_ptr<float>()).clone());

  const cv::Matx33f sepia(0.393f, 0.769f, 0.189f, 0.349f, 0.686f, 0.168f, 0.272f, 0.534f, 0.131f);
  std::vector<Case> cases = {
      {"Brightness 1.5", "Brightness", {{"factor", 1.5}}, [](const cv::Mat& m) { return clamp01(m * 1.5); }},
      {"Contrast 1.5", "Contrast", {{"factor", 1.5}},
       [](const cv::Mat& m) {
         cv::Mat grey;
         cv::cvtColor(m, grey, cv::COLOR_RGB2GRAY);
         double mean = cv::mean(grey)[0];
         cv::Mat out;
         m.convertTo(out, -1, 1.5, -0.5 * mean);
         return clamp01(out);
       }},
      {"Saturation 1.5", "Saturation", {{"factor", 1.5}},
       [](const cv::Mat& m) {
         cv::Mat grey, grey3, out;
         cv::cvtColor(m, grey, cv::COLOR_RGB2GRAY);
         cv::cvtColor(grey, grey3, cv::COLOR_GRAY2RGB);
         cv::addWeighted(m, 1.5, grey3, -0.5, 0, out);
         return clamp01(out);
       }},
      {"Gamma 2.2", "Gamma", {{"gamma", 2.2}},
       [](const cv::Mat& m) {
         cv::Mat out;
         cv::pow(m, 1 / 2.2, out);
         return out;
       }},
      {"Levels .1 .9 1.2", "Levels", {{"black", 0.1}, {"white", 0.9}, {"gamma", 1.2}},
       [](const cv::Mat& m) {
         cv::Mat out;
         m.convertTo(out, -1, 1 / 0.8, -0.1 / 0.8);
         out = clamp01(out);
         cv::pow(out, 1 / 1.2, out);
         return out;
       }},
      {"HueShift 90", "HueShift", {{"degrees", 90.0}},
       [](const cv::Mat& m) {
         cv::Mat hsv, out;
         cv::cvtColor(m, hsv, cv::COLOR_RGB2HSV);
         for (int y = 0; y < hsv.rows; ++y) {
           auto* p = hsv.ptr<cv::Vec3f>(y);
           for (int x = 0; x < hsv.cols; ++x) p[x][0] = std::fmod(p[x][0] + 90.f, 360.f);
         }
         cv::cvtColor(hsv, out, cv::COLOR_HSV2RGB);
         return out;
       }},
      {"ColorBalance", "ColorBalance", {{"red", 1.2}, {"green", 0.9}, {"blue", 1.1}},
       [](const cv::Mat& m) { return clamp01(m.mul(cv::Scalar(1.2, 0.9, 1.1))); }},
      {"Invert", "Invert", {}, [](const cv::Mat& m) { return cv::Mat(cv::Scalar::all(1.0) - m); }},
      {"Grayscale", "Grayscale", {},
       [](const cv::Mat& m) {
         cv::Mat out;
         cv::cvtColor(m, out, cv::COLOR_RGB2GRAY);
         return out;
       }},
      {"Threshold .5", "Threshold", {{"threshold", 0.5}},
       [](const cv::Mat& m) {
         cv::Mat out;
         cv::threshold(m, out, 0.5, 1.0, cv::THRESH_BINARY);
         return out;
       }},
      {"Sepia", "Sepia", {{"strength", 1.0}},
       [&](const cv::Mat& m) {
         cv::Mat out;
         cv::transform(m, out, sepia);
         return clamp01(out);
       }},
      {"GaussianBlur 2", "GaussianBlur", {{"sigma", 2.0}},
       [](const cv::Mat& m) {
         cv::Mat out;
         cv::GaussianBlur(m, out, cv::Size(0, 0), 2.0);
         return out;
       }},
      {"Sharpen 1 r2", "Sharpen", {{"amount", 1.0}, {"radius", 2.0}},
       [](const cv::Mat& m) {
         cv::Mat blurred, out;
         cv::GaussianBlur(m, blurred, cv::Size(0, 0), 2.0);
         cv::addWeighted(m, 2.0, blurred, -1.0, 0, out);
         return clamp01(out);
       }},
      {"MedianDenoise 5", "MedianDenoise", {{"size", std::string("5")}},
       [](const cv::Mat& m) {
         cv::Mat out;
         cv::medianBlur(m, out, 5);
         return out;
       }},
      {"BilateralDenoise 5", "BilateralDenoise", {{"diameter", 5}, {"sigma_color", 0.1}, {"sigma_space", 3.0}},
       [](const cv::Mat& m) {
         cv::Mat out;
         cv::bilateralFilter(m, out, 5, 0.1, 3.0);
         return out;
       }},
      {"CLAHE", "CLAHE", {{"clip_limit", 2.0}, {"tiles", 8}},
       [](const cv::Mat& m) {
         auto clahe = cv::createCLAHE(2.0, cv::Size(8, 8));
         cv::Mat lab, deep, equalised, out;
         cv::cvtColor(clamp01(m), lab, cv::COLOR_RGB2Lab);
         std::vector<cv::Mat> parts;
         cv::split(lab, parts);
         parts[0].convertTo(deep, CV_16U, 65535.0 / 100);
         clahe->apply(deep, equalised);
         equalised.convertTo(parts[0], CV_32F, 100 / 65535.0);
         cv::merge(parts, lab);
         cv::cvtColor(lab, out, cv::COLOR_Lab2RGB);
         return clamp01(out);
       }},
      {"EdgeDetect sobel", "EdgeDetect", {{"method", std::string("sobel")}},
       [](const cv::Mat& m) {
         cv::Mat grey, dx, dy, out;
         cv::cvtColor(m, grey, cv::COLOR_RGB2GRAY);
         cv::Sobel(grey, dx, CV_32F, 1, 0, 3);
         cv::Sobel(grey, dy, CV_32F, 0, 1, 3);
         cv::magnitude(dx, dy, out);
         return clamp01(out * 0.25);
       }},
      {"EdgeDetect canny", "EdgeDetect", {{"method", std::string("canny")}},
       [](const cv::Mat& m) {
         cv::Mat grey, bytes, edges, out;
         cv::cvtColor(m, grey, cv::COLOR_RGB2GRAY);
         grey.convertTo(bytes, CV_8U, 255);
         cv::Canny(bytes, edges, 0.1 * 255, 0.3 * 255);
         edges.convertTo(out, CV_32F, 1 / 255.0);
         return out;
       }},
  };
  const int64_t half = size / 2, eighth = size / 8;
  for (auto [method, interpolation] : {std::pair{"nearest", cv::INTER_NEAREST}, std::pair{"bilinear", cv::INTER_LINEAR},
                                       std::pair{"bicubic", cv::INTER_CUBIC}, std::pair{"area", cv::INTER_AREA},
                                       std::pair{"lanczos", cv::INTER_LANCZOS4}}) {
    int inter = interpolation;
    cases.push_back({"Resize " + std::to_string(half) + " " + method,
                     "Resize",
                     {{"width", half}, {"height", half}, {"method", std::string(method)}},
                     [inter, half](const cv::Mat& m) {
                       cv::Mat out;
                       cv::resize(m, out, cv::Size(int(half), int(half)), 0, 0, inter);
                       return inter == cv::INTER_CUBIC || inter == cv::INTER_LANCZOS4 ? clamp01(out) : out;
                     }});
  }
  // Crop is a view on both sides (a cv::Mat region of interest, O(1)): what
  // it costs shows in what comes after it. Copied out (a node that needs
  // contiguous memory), and read in place by three kinds of filter.
  const std::map<std::string, Value> crop = {{"x", eighth}, {"y", eighth}, {"width", half}, {"height", half}};
  const cv::Rect rect{static_cast<int>(eighth), static_cast<int>(eighth), static_cast<int>(half),
                      static_cast<int>(half)};
  const std::string crop_label = "Crop " + std::to_string(half);
  cases.push_back({crop_label + " > copy", "Crop", crop, [=](const cv::Mat& m) { return m(rect).clone(); }, {}, true});
  cases.push_back({crop_label + " > Bright",
                   "Crop",
                   crop,
                   [=](const cv::Mat& m) { return clamp01(m(rect) * 1.5); },
                   {{"Brightness", {{"factor", 1.5}}}}});
  cases.push_back({crop_label + " > Flip",
                   "Crop",
                   crop,
                   [=](const cv::Mat& m) {
                     cv::Mat out;
                     cv::flip(m(rect), out, 1);
                     return out;
                   },
                   {{"Flip", {{"direction", std::string("horizontal")}}}}});
  cases.push_back({crop_label + " > Contrast",
                   "Crop",
                   crop,
                   [=](const cv::Mat& m) {
                     cv::Mat grey, out;
                     cv::cvtColor(m(rect), grey, cv::COLOR_RGB2GRAY);
                     m(rect).convertTo(out, -1, 1.5, -0.5 * cv::mean(grey)[0]);
                     return clamp01(out);
                   },
                   {{"Contrast", {{"factor", 1.5}}}}});
  cases.push_back({crop_label + " > Levels",
                   "Crop",
                   crop,
                   [=](const cv::Mat& m) {
                     cv::Mat out;
                     m(rect).convertTo(out, -1, 1 / 0.8, -0.1 / 0.8);
                     out = clamp01(out);
                     cv::pow(out, 1 / 1.2, out);
                     return out;
                   },
                   {{"Levels", {{"black", 0.1}, {"white", 0.9}, {"gamma", 1.2}}}}});
  cases.push_back({crop_label + " > Blur",
                   "Crop",
                   crop,
                   [=](const cv::Mat& m) {
                     cv::Mat out;
                     cv::GaussianBlur(m(rect), out, cv::Size(0, 0), 2.0);
                     return out;
                   },
                   {{"GaussianBlur", {{"sigma", 2.0}}}}});
  cases.push_back({"Pad 16 reflect", "Pad", {{"left", 16}, {"top", 16}, {"right", 16}, {"bottom", 16}, {"mode", std::string("reflect")}},
                   [](const cv::Mat& m) {
                     cv::Mat out;
                     cv::copyMakeBorder(m, out, 16, 16, 16, 16, cv::BORDER_REFLECT_101);
                     return out;
                   }});
  cases.push_back({"Rotate 30", "Rotate", {{"degrees", 30.0}}, [](const cv::Mat& m) {
                     const float centre = (m.cols - 1) / 2.f;
                     cv::Mat out, matrix = cv::getRotationMatrix2D(cv::Point2f(centre, centre), 30, 1);
                     cv::warpAffine(m, out, matrix, m.size(), cv::INTER_LINEAR, cv::BORDER_CONSTANT);
                     return out;
                   }});
  cases.push_back({"Flip horizontal", "Flip", {{"direction", std::string("horizontal")}},
                   [](const cv::Mat& m) {
                     cv::Mat out;
                     cv::flip(m, out, 1);
                     return out;
                   }});
  cases.push_back({"Flip vertical", "Flip", {{"direction", std::string("vertical")}}, [](const cv::Mat& m) {
                     cv::Mat out;
                     cv::flip(m, out, 0);
                     return out;
                   }});
  cases.push_back({"Flip both", "Flip", {{"direction", std::string("both")}}, [](const cv::Mat& m) {
                     cv::Mat out;
                     cv::flip(m, out, -1);
                     return out;
                   }});
  cases.push_back({"ChannelToMask red", "ChannelToMask", {{"channel", std::string("red")}},
                   [](const cv::Mat& m) {
                     cv::Mat out;
                     cv::extractChannel(m, out, 0);
                     return out;
                   }});

  const bool gpu = !device.is_cpu();
  const at::Tensor host_images = images;
  images = images.to(device);
  layer = layer.to(device);
  // Waits for the device: a one-element read, after which every queued kernel has run.
  auto ready = [&](const Outputs& out) {
    if (gpu && !out.empty() && out[0].is_tensor()) (void)out[0].as_tensor().reshape(-1)[0].item<float>();
  };
  // The process's heap grows to its steady state over the first few 48 MiB
  // batches: a few untimed rounds of the first filter before any timing.
  if (const host::RegisteredNode* first = registry.find(cases.front().type); first && !gpu) {
    BenchContext context(1, device);
    std::map<std::string, Value> given = cases.front().params;
    given["image"] = images;
    const std::vector<Value> values = bench::node_inputs(first->def.spec, given);
    for (int r = 0; r < 8; ++r) (void)first->def.run(Inputs(first->def.spec, values), context);
  }
  std::printf("batch of %lld RGB images %lldx%lld, float32, Cozy on %s; images/s, median of %d\n", (long long)batch,
              (long long)size, (long long)size, device.str().c_str(), repeats);
  std::printf("%-22s %3s | %10s %10s | %6s%s\n", "filter", "thr", "cozy", "opencv", "ratio",
              gpu ? " | max |cuda - cpu|" : "");
  // --only A,B: the cases whose label starts with A or with B.
  auto selected = [&](const std::string& label) {
    if (only.empty()) return true;
    std::size_t start = 0;
    while (start <= only.size()) {
      const std::size_t end = std::min(only.find(',', start), only.size());
      if (label.compare(0, end - start, only, start, end - start) == 0) return true;
      start = end + 1;
    }
    return false;
  };
  std::vector<int> thread_counts = {1, 2};
  if (gpu) thread_counts = {static_cast<int>(std::thread::hardware_concurrency())};
  for (int threads : thread_counts) {
    at::set_num_threads(threads);
    cv::setNumThreads(threads);
    BenchContext context(threads, device);
    for (const Case& c : cases) {
      if (!selected(c.label)) continue;
      const host::RegisteredNode* node = registry.find(c.type);
      if (!node) {
        std::printf("%-22s missing node %s\n", c.label.c_str(), c.type);
        continue;
      }
      // The inputs of `n`: the image, the case's parameters, else defaults.
      auto values_for = [](const host::RegisteredNode& n, std::map<std::string, Value> params, const Value& image) {
        params["image"] = image;
        return bench::node_inputs(n.def.spec, params);
      };
      std::vector<const host::RegisteredNode*> chain;
      for (const auto& step : c.then) chain.push_back(registry.find(step.first));
      if (std::find(chain.begin(), chain.end(), nullptr) != chain.end()) {
        std::printf("%-22s missing a node of its chain\n", c.label.c_str());
        continue;
      }
      const std::vector<Value> values = values_for(*node, c.params, Value(images));
      auto run_on = [&](const std::vector<Value>& inputs, Context& ctx) {
        Outputs out = node->def.run(Inputs(node->def.spec, inputs), ctx);
        for (std::size_t k = 0; k < chain.size(); ++k) {
          const std::vector<Value> next = values_for(*chain[k], c.then[k].second, out[0]);
          out = chain[k]->def.run(Inputs(chain[k]->def.spec, next), ctx);
        }
        if (c.copy_out) out[0] = Value(out[0].as_tensor().contiguous());
        return out;
      };
      auto run_cozy = [&] { return run_on(values, context); };
      std::vector<double> ours, theirs;
      std::vector<long> our_faults, their_faults;
      // Both thread pools spin for a while after a parallel region (OpenMP's
      // and OpenCV's); on a machine with as many cores as threads, one side's
      // spinning workers would take the cores the other side's timed run
      // needs. A pause after each side lets them go to sleep first.
      std::vector<char> scratch(cold ? std::size_t{128} << 20 : 0);
      auto settle = [&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(kSettleMs));
        if (cold) std::memset(scratch.data(), static_cast<int>(scratch[0]) + 1, scratch.size());
      };
      // Both sides produce the whole batch: OpenCV's 16 results stay alive
      // until the round ends, as the node's [16, C, H, W] output does (with
      // --peer-reuses-output each result is dropped before the next image, so
      // OpenCV writes into one buffer that stays in the cache).
      auto run_opencv = [&] {
        std::vector<cv::Mat> results(mats.size());
        for (std::size_t i = 0; i < mats.size(); ++i) {
          results[i] = c.opencv(mats[i]);
          if (peer_reuses_output) results[i].release();
        }
      };
      // Untimed rounds first: page faults, lazy set-up and the heap's growth
      // to its steady state (the first few 48 MiB outputs of a process are
      // fresh pages) are not the filter.
      for (int r = 0; r < kWarmup; ++r) {
        ready(run_cozy());
        run_opencv();
      }
      settle();
      for (int r = 0; r < repeats; ++r) {
        long faults = page_faults();
        auto start = Clock::now();
        Outputs out = run_cozy();
        ready(out);
        ours.push_back(std::chrono::duration<double>(Clock::now() - start).count());
        our_faults.push_back(page_faults() - faults);
        out.clear();
        settle();
        faults = page_faults();
        start = Clock::now();
        run_opencv();
        theirs.push_back(std::chrono::duration<double>(Clock::now() - start).count());
        their_faults.push_back(page_faults() - faults);
        settle();
      }
      if (std::getenv("BENCH_VERBOSE"))
        for (std::size_t r = 0; r < ours.size(); ++r)
          std::printf("  run %zu: cozy %.2f ms (%ld page faults), opencv %.2f ms (%ld)\n", r, 1e3 * ours[r],
                      our_faults[r], 1e3 * theirs[r], their_faults[r]);
      double cozy_rate = batch / median(ours), cv_rate = batch / median(theirs);
      std::printf("%-22s %3d | %10.1f %10.1f | %6.2f", c.label.c_str(), threads, cozy_rate, cv_rate,
                  cozy_rate / cv_rate);
      if (gpu) {
        // The device's result against the CPU path's on the same batch: the
        // largest difference of any pixel.
        BenchContext cpu_context(threads, c10::Device(c10::kCPU));
        const at::Tensor on_device = run_cozy()[0].as_tensor().cpu();
        const at::Tensor on_cpu = run_on(values_for(*node, c.params, Value(host_images)), cpu_context)[0].as_tensor();
        std::printf(" | %8.1e", (on_device - on_cpu).abs().max().item<double>());
      }
      std::printf("\n");
      std::fflush(stdout);
    }
  }
  // The cost of the layout alone: the rows of Crop 256 copied with memcpy
  // from planar [16, 3, 512, 512] (three 1 KiB rows per image row, as every
  // Cozy geometry filter must) against interleaved 512 x 512 x 3 (one 3 KiB
  // row, as OpenCV's). Copy-only filters cannot beat this ratio.
  if (!gpu && selected("memcpy")) {
    const int64_t h = half, w = half, x = eighth, y = eighth;
    at::Tensor planar_out = at::empty({batch, 3, h, w});
    std::vector<double> planar, interleaved;
    for (int r = 0; r < repeats + kWarmup; ++r) {
      auto start = Clock::now();
      const float* s = images.data_ptr<float>();
      float* d = planar_out.data_ptr<float>();
      for (int64_t p = 0; p < batch * 3; ++p)
        for (int64_t row = 0; row < h; ++row)
          std::memcpy(d + (p * h + row) * w, s + (p * size + y + row) * size + x, w * sizeof(float));
      if (r >= kWarmup) planar.push_back(std::chrono::duration<double>(Clock::now() - start).count());
      start = Clock::now();
      std::vector<cv::Mat> results(mats.size());
      for (std::size_t i = 0; i < mats.size(); ++i) {
        results[i].create(int(h), int(w), CV_32FC3);
        for (int64_t row = 0; row < h; ++row)
          std::memcpy(results[i].ptr<float>(int(row)), mats[i].ptr<float>(int(y + row)) + x * 3, w * 3 * sizeof(float));
      }
      if (r >= kWarmup) interleaved.push_back(std::chrono::duration<double>(Clock::now() - start).count());
    }
    // The same interleaved rows from one [16, 512, 512, 3] buffer into one
    // [16, 256, 256, 3]: where the batch lives, apart from the plane order.
    std::vector<double> one_buffer;
    at::Tensor hwc_out = at::empty({batch, h, w, 3});
    for (int r = 0; r < repeats + kWarmup; ++r) {
      auto start = Clock::now();
      const float* s = hwc.data_ptr<float>();
      float* d = hwc_out.data_ptr<float>();
      for (int64_t i = 0; i < batch; ++i)
        for (int64_t row = 0; row < h; ++row)
          std::memcpy(d + (i * h + row) * w * 3, s + ((i * size + y + row) * size + x) * 3, w * 3 * sizeof(float));
      if (r >= kWarmup) one_buffer.push_back(std::chrono::duration<double>(Clock::now() - start).count());
    }
    const double a = batch / median(planar), b = batch / median(interleaved), c = batch / median(one_buffer);
    std::printf("%-22s %3d | %10.1f %10.1f | %6.2f   (planar vs interleaved rows: the layout's cost)\n",
                "memcpy crop rows", 1, a, b, a / b);
    std::printf("%-22s %3d | %10.1f %10.1f | %6.2f   (interleaved rows, one batch buffer vs 16 images)\n",
                "memcpy crop rows", 1, c, b, c / b);
  }
  // The floor of a one-pass filter: the batch read once and written once
  // into a new batch (a fresh tensor each round, as a node's output), by
  // memcpy in 128 KiB pieces (plain stores: glibc streams a single copy
  // larger than about the last-level cache), against OpenCV's clone() of
  // its 16 images. A pointwise filter such as Threshold or Invert cannot
  // run faster than this line's Cozy figure with plain stores.
  if (!gpu && selected("memcpy")) {
    std::vector<double> ours, theirs;
    const std::size_t bytes = images.nbytes(), piece = std::size_t{128} << 10;
    for (int r = 0; r < repeats + kWarmup; ++r) {
      auto start = Clock::now();
      {
        at::Tensor out = at::empty_like(images);
        const char* s = static_cast<const char*>(images.data_ptr());
        char* d = static_cast<char*>(out.data_ptr());
        for (std::size_t at = 0; at < bytes; at += piece) std::memcpy(d + at, s + at, std::min(piece, bytes - at));
      }
      if (r >= kWarmup) ours.push_back(std::chrono::duration<double>(Clock::now() - start).count());
      start = Clock::now();
      {
        std::vector<cv::Mat> results(mats.size());
        for (std::size_t i = 0; i < mats.size(); ++i) results[i] = mats[i].clone();
      }
      if (r >= kWarmup) theirs.push_back(std::chrono::duration<double>(Clock::now() - start).count());
    }
    const double a = batch / median(ours), b = batch / median(theirs);
    std::printf("%-22s %3d | %10.1f %10.1f | %6.2f   (the batch copied once: a one-pass filter's floor)\n",
                "memcpy batch", 1, a, b, a / b);
  }
  return 0;
}
