#include "training.hpp"

#include "image_io.hpp"

#include <cozy/files.hpp>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

namespace cozy::training {

namespace fs = std::filesystem;

at::Tensor latent_noise(std::int64_t n, std::int64_t d, at::Generator& gen, double truncation) {
  at::Tensor z = at::randn({n, d}, gen, at::kFloat);
  for (int round = 0; truncation > 0 && round < 100; ++round) {
    at::Tensor outside = z.abs() > truncation;
    if (!outside.any().item<bool>()) break;
    z = at::where(outside, at::randn(z.sizes(), gen, at::kFloat), z);
  }
  return truncation > 0 ? z.clamp(-truncation, truncation) : z;
}

void LossLog::add(std::int64_t x, std::vector<double> values) {
  if (values.size() != names_.size()) throw Error("LossLog: wrong number of values");
  rows_.emplace_back(x, std::move(values));
}

std::string LossLog::csv() const {
  std::ostringstream out;
  out.precision(6);
  out << x_name_;
  for (const auto& n : names_) out << "," << n;
  out << "\n";
  for (const auto& [x, values] : rows_) {
    out << x;
    for (double v : values) out << "," << v;
    out << "\n";
  }
  return out.str();
}

void LossLog::plot(const fs::path& file) const {
  const int w = 640, h = 320, margin = 30;
  cv::Mat canvas(h, w, CV_8UC3, cv::Scalar(255, 255, 255));
  double low = 0, high = 0.1;
  for (const auto& row : rows_)
    for (double v : row.second)
      if (std::isfinite(v)) low = std::min(low, v), high = std::max(high, v);
  const std::size_t n = rows_.size();
  auto point = [&](std::size_t i, double v) {
    double x = margin + (w - 2 * margin) * (n > 1 ? double(i) / double(n - 1) : 0.0);
    return cv::Point(int(x), int(h - margin - (h - 2 * margin) * (v - low) / (high - low)));
  };
  static const cv::Scalar colours[] = {{200, 80, 0}, {0, 80, 200}, {0, 150, 0}, {150, 0, 150}, {0, 150, 150}};
  cv::rectangle(canvas, {margin, margin}, {w - margin, h - margin}, cv::Scalar(200, 200, 200));
  for (std::size_t s = 0; s < names_.size(); ++s) {
    const cv::Scalar colour = colours[s % 5];
    for (std::size_t i = 1; i < n; ++i)
      cv::line(canvas, point(i - 1, rows_[i - 1].second[s]), point(i, rows_[i].second[s]), colour, 1);
    cv::putText(canvas, names_[s], {margin + 5 + 110 * int(s), margin + 15}, cv::FONT_HERSHEY_SIMPLEX, 0.45, colour);
  }
  at::Tensor t = at::from_blob(canvas.data, {h, w, 3}, at::kByte).permute({2, 0, 1}).flip({0}).to(at::kFloat) / 255;
  image_io::write_png(t, file);
}

void LossLog::write(Context& ctx, const fs::path& folder, const std::string& stem) const {
  const std::string text = csv();
  ctx.add_file(write_numbered_file(folder, stem, ".csv", [&](const fs::path& temp) { std::ofstream(temp) << text; }),
               "output");
  ctx.add_file(write_numbered_file(folder, stem, ".png", [&](const fs::path& temp) { plot(temp); }), "output");
}

void write_grid(const at::Tensor& images, std::int64_t columns, const fs::path& file) {
  at::Tensor x = images.detach().to(at::kCPU, at::kFloat);
  const std::int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3), pad = 2;
  columns = std::max<std::int64_t>(1, std::min(columns, n));
  const std::int64_t rows = (n + columns - 1) / columns;
  at::Tensor grid = at::ones({c, rows * (h + pad) + pad, columns * (w + pad) + pad});
  for (std::int64_t i = 0; i < n; ++i) {
    const std::int64_t r = i / columns, col = i % columns;
    grid.narrow(1, pad + r * (h + pad), h).narrow(2, pad + col * (w + pad), w).copy_(x[i]);
  }
  image_io::write_png(grid.clamp(0, 1), file);
}

at::Tensor batched(const at::Tensor& images, std::int64_t batch, c10::Device device,
                   const std::function<at::Tensor(const at::Tensor&)>& fn) {
  std::vector<at::Tensor> parts;
  for (std::int64_t i = 0; i < images.size(0); i += batch)
    parts.push_back(fn(images.narrow(0, i, std::min(batch, images.size(0) - i)).to(device)).to(at::kCPU));
  if (parts.empty()) throw Error("no images");
  return at::cat(parts);
}

double Clock::seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

std::string Clock::rate(std::int64_t done, std::int64_t total) const {
  const double r = double(done) / std::max(seconds(), 1e-9);
  std::ostringstream out;
  out << " " << static_cast<long long>(r) << " img/s ETA "
      << static_cast<long long>(double(total - done) / std::max(r, 1e-9)) << " s";
  return out.str();
}

}  // namespace cozy::training
