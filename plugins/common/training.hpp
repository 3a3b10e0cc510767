// What the trainers share: loss logs written as CSV and
// as a plot, sample grids, batched inference and progress text.
#pragma once

#include <cozy/context.hpp>
#include <cozy/random.hpp>

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace cozy::training {


/// n standard-normal latent vectors of length d drawn from gen; with
/// truncation t > 0, entries beyond +-t are redrawn (up to 100 times), then
/// clamped (the truncation trick).
at::Tensor latent_noise(std::int64_t n, std::int64_t d, at::Generator& gen, double truncation);

/// Named series of numbers, one row per step or epoch.
class LossLog {
 public:
  LossLog(std::string x_name, std::vector<std::string> names) : x_name_(std::move(x_name)), names_(std::move(names)) {}
  void add(std::int64_t x, std::vector<double> values);
  bool empty() const { return rows_.empty(); }
  const std::vector<double>& last() const { return rows_.back().second; }
  std::string csv() const;
  /// A line plot, one colour per series, with a legend, as a PNG.
  void plot(const std::filesystem::path& file) const;
  /// Writes <stem>.csv and <stem>.png (numbered, never replacing a file)
  /// under `folder` and tells the user.
  void write(Context& ctx, const std::filesystem::path& folder, const std::string& stem) const;

 private:
  std::string x_name_;
  std::vector<std::string> names_;
  std::vector<std::pair<std::int64_t, std::vector<double>>> rows_;
};

/// Images [N, C, H, W] in [0, 1] as one PNG grid of `columns` columns.
void write_grid(const at::Tensor& images, std::int64_t columns, const std::filesystem::path& file);

/// Applies `fn` to `images` in batches of `batch` (on `device`) and
/// concatenates the results on the CPU: inference over many images without
/// holding every activation at once.
at::Tensor batched(const at::Tensor& images, std::int64_t batch, c10::Device device,
                   const std::function<at::Tensor(const at::Tensor&)>& fn);

/// Images/s and ETA for progress lines.
class Clock {
 public:
  Clock() : start_(std::chrono::steady_clock::now()) {}
  double seconds() const;
  /// " 160 img/s ETA 30 s" after `done` of `total` items.
  std::string rate(std::int64_t done, std::int64_t total) const;

 private:
  std::chrono::steady_clock::time_point start_;
};

}  // namespace cozy::training
