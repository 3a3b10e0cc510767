#include "measures.hpp"

#include <cozy/error.hpp>

#include <ATen/ATen.h>

#include <algorithm>

namespace cozy::metrics {

namespace {
constexpr std::int64_t kChunk = 512;

std::pair<at::Tensor, at::Tensor> gaussian(const at::Tensor& features) {
  at::Tensor f = features.to(at::kCPU, at::kDouble).flatten(1);
  if (f.size(0) < 2) throw Error("FID needs at least 2 images in each set");
  at::Tensor mean = f.mean(0);
  at::Tensor centred = f - mean;
  return {mean, centred.t().mm(centred) / double(f.size(0) - 1)};
}
}  // namespace

double frechet_distance(const at::Tensor& a, const at::Tensor& b) {
  auto [m1, s1] = gaussian(a);
  auto [m2, s2] = gaussian(b);
  if (m1.size(0) != m2.size(0)) throw Error("FID: the two sets have features of different sizes");
  // tr(sqrt(S1 S2)) = sum of sqrt(eigenvalues of sqrt(S1) S2 sqrt(S1)), a symmetric matrix.
  auto [e1, v1] = at::linalg_eigh(s1);
  at::Tensor root1 = v1.mm(at::diag(e1.clamp_min(0).sqrt())).mm(v1.t());
  at::Tensor m = root1.mm(s2).mm(root1);
  at::Tensor trace_root = at::linalg_eigvalsh((m + m.t()) / 2).clamp_min(0).sqrt().sum();
  double d = ((m1 - m2).pow(2).sum() + s1.trace() + s2.trace() - 2 * trace_root).item<double>();
  return std::max(d, 0.0);
}

at::Tensor knn_radii(const at::Tensor& features, std::int64_t k) {
  at::Tensor f = features.to(at::kFloat).flatten(1);
  if (f.size(0) <= k) throw Error("k-nearest neighbours: need more than k = " + std::to_string(k) + " images");
  std::vector<at::Tensor> parts;
  for (std::int64_t i = 0; i < f.size(0); i += kChunk) {
    at::Tensor d = at::cdist(f.narrow(0, i, std::min(kChunk, f.size(0) - i)), f);
    // The nearest is the row itself (distance 0): the k-th other row is at index k.
    parts.push_back(std::get<0>(d.topk(k + 1, 1, /*largest=*/false)).select(1, k));
  }
  return at::cat(parts);
}

double manifold_coverage(const at::Tensor& query, const at::Tensor& reference, const at::Tensor& radii) {
  at::Tensor q = query.to(at::kFloat).flatten(1), r = reference.to(at::kFloat).flatten(1);
  at::Tensor rad = radii.to(r.device(), at::kFloat).unsqueeze(0);
  std::int64_t inside = 0;
  for (std::int64_t i = 0; i < q.size(0); i += kChunk) {
    at::Tensor d = at::cdist(q.narrow(0, i, std::min(kChunk, q.size(0) - i)), r);
    inside += (d <= rad).any(1).sum().item<std::int64_t>();
  }
  return double(inside) / double(std::max<std::int64_t>(q.size(0), 1));
}

at::Tensor nearest_distance(const at::Tensor& query, const at::Tensor& pool) {
  at::Tensor q = query.to(at::kFloat).flatten(1), p = pool.to(at::kFloat).flatten(1);
  std::vector<at::Tensor> parts;
  for (std::int64_t i = 0; i < q.size(0); i += kChunk)
    parts.push_back(std::get<0>(at::cdist(q.narrow(0, i, std::min(kChunk, q.size(0) - i)), p).min(1)));
  return at::cat(parts);
}

}  // namespace cozy::metrics
