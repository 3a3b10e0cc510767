// The measurements behind the metrics nodes, on feature or pixel tensors.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace cozy::metrics {

/// Fréchet distance between Gaussians fitted to features a [N, F] and b [M, F]
/// (N, M >= 2), computed in float64. 0 for a set against itself.
double frechet_distance(const at::Tensor& a, const at::Tensor& b);

/// Distance from each row of f [N, F] to its k-th nearest other row.
at::Tensor knn_radii(const at::Tensor& f, std::int64_t k);

/// Fraction of the rows of `query` that lie within radius[j] of some row j
/// of `reference` (Kynkäänniemi et al. 2019's improved precision/recall).
double manifold_coverage(const at::Tensor& query, const at::Tensor& reference, const at::Tensor& radii);

/// For each row of `query` [N, D], the distance to its nearest row of `pool` [M, D].
at::Tensor nearest_distance(const at::Tensor& query, const at::Tensor& pool);

}  // namespace cozy::metrics
