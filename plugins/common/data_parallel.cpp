#include "data_parallel.hpp"

#include <cozy/error.hpp>
#include <cozy/random.hpp>

#include <torch/nn/module.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <iterator>
#include <regex>

namespace cozy::training {

namespace {

constexpr std::int64_t kBucketBytes = 25 << 20;

class Timer {
 public:
  explicit Timer(double& total) : total_(total), start_(std::chrono::steady_clock::now()) {}
  ~Timer() { total_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count(); }

 private:
  double& total_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace

void DataParallel::broadcast(torch::nn::Module& module) {
  if (!active()) return;
  Timer timer(seconds_);
  torch::NoGradGuard no_grad;
  std::vector<at::Tensor> tensors;
  for (auto& p : module.parameters()) tensors.push_back(p.data());
  for (auto& b : module.buffers()) tensors.push_back(b);
  c_->broadcast(tensors, 0);
}

void DataParallel::broadcast_buffers(torch::nn::Module& module) {
  if (!active()) return;
  std::vector<at::Tensor> tensors;
  for (auto& b : module.buffers()) tensors.push_back(b);
  if (tensors.empty()) return;
  Timer timer(seconds_);
  c_->broadcast(tensors, 0);
}

void DataParallel::average_gradients(torch::nn::Module& module) {
  if (!active()) return;
  Timer timer(seconds_);
  torch::NoGradGuard no_grad;
  std::vector<at::Tensor> grads;
  for (auto& p : module.parameters())
    if (p.grad().defined()) grads.push_back(p.grad());
  // Buckets of whole gradients, flattened into one tensor each.
  std::vector<std::vector<at::Tensor>> buckets(1);
  std::int64_t bytes = 0;
  for (const auto& g : grads) {
    const std::int64_t size = g.numel() * static_cast<std::int64_t>(g.element_size());
    if (bytes > 0 && bytes + size > kBucketBytes) buckets.emplace_back(), bytes = 0;
    buckets.back().push_back(g);
    bytes += size;
  }
  std::vector<at::Tensor> flat;
  for (const auto& bucket : buckets) {
    std::vector<at::Tensor> pieces;
    for (const auto& g : bucket) pieces.push_back(g.reshape({-1}));
    if (!pieces.empty()) flat.push_back(at::cat(pieces));
  }
  c_->all_reduce_sum(flat);
  const double scale = 1.0 / world();
  for (std::size_t b = 0; b < flat.size(); ++b) {
    std::int64_t offset = 0;
    for (auto& g : buckets[b]) {
      g.copy_(flat[b].narrow(0, offset, g.numel()).view_as(g).mul_(scale));
      offset += g.numel();
    }
  }
}

double DataParallel::sum(double value) {
  if (!active()) return value;
  Timer timer(seconds_);
  std::vector<at::Tensor> one = {at::tensor({value}, at::kDouble)};
  c_->all_reduce_sum(one);
  return one[0].item<double>();
}

at::Tensor DataParallel::average(at::Tensor value) {
  if (!active()) return value;
  Timer timer(seconds_);
  std::vector<at::Tensor> one = {value.contiguous()};
  c_->all_reduce_sum(one);
  return one[0].div_(world());
}

at::Tensor DataParallel::shard(const at::Tensor& order, std::int64_t step, std::int64_t batch) const {
  return order.narrow(0, (step * world() + rank()) * batch, batch);
}

std::filesystem::path DataParallel::share_file(const std::filesystem::path& file, const std::filesystem::path& folder) {
  if (!active()) return file;
  std::vector<char> bytes;
  if (rank() == 0 && !file.empty()) {
    std::ifstream in(file, std::ios::binary);
    if (!in) throw Error("cannot read " + file.string());
    bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  Timer timer(seconds_);
  std::vector<at::Tensor> size = {at::tensor({rank() == 0 && !file.empty() ? static_cast<std::int64_t>(bytes.size()) : -1}, at::kLong)};
  c_->broadcast(size, 0);
  const std::int64_t n = size[0].item<std::int64_t>();
  if (n < 0) return {};
  std::vector<at::Tensor> content = {at::empty({n}, at::kByte)};
  if (rank() == 0) std::memcpy(content[0].data_ptr(), bytes.data(), static_cast<std::size_t>(n));
  c_->broadcast(content, 0);
  if (rank() == 0) return file;
  std::filesystem::create_directories(folder);
  const std::filesystem::path copy = folder / ("from_rank0_" + std::to_string(rank()) + ".pt");
  std::ofstream out(copy, std::ios::binary | std::ios::trunc);
  out.write(static_cast<const char*>(content[0].data_ptr()), static_cast<std::streamsize>(n));
  if (!out) throw Error("cannot write " + copy.string());
  return copy;
}

std::filesystem::path latest_checkpoint(const std::filesystem::path& folder, const std::string& prefix) {
  std::error_code ec;
  if (!std::filesystem::is_directory(folder, ec)) return {};
  std::filesystem::path best;
  std::pair<long long, long long> best_key{-1, -1};
  for (const auto& entry : std::filesystem::directory_iterator(folder, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind(prefix, 0) != 0 || entry.path().extension() != ".pt") continue;
    static const std::regex tail(R"(^(\d+)_(\d+)\.pt$)");
    std::smatch m;
    const std::string rest = name.substr(prefix.size());
    if (!std::regex_match(rest, m, tail)) continue;
    const std::pair<long long, long long> key{std::stoll(m[1]), std::stoll(m[2])};
    if (key > best_key) best_key = key, best = entry.path();
  }
  return best;
}

at::Generator DataParallel::noise(std::int64_t seed, std::int64_t epoch) const {
  // A splitmix of (seed, rank, epoch): distinct streams for distinct ranks.
  std::uint64_t z = static_cast<std::uint64_t>(seed) * 0x9E3779B97F4A7C15ull + static_cast<std::uint64_t>(rank()) * 0xBF58476D1CE4E5B9ull +
                    static_cast<std::uint64_t>(epoch) * 0x94D049BB133111EBull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return seeded_generator(static_cast<std::int64_t>((z ^ (z >> 31)) >> 1));
}

}  // namespace cozy::training
