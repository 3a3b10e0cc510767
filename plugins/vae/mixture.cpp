#include "mixture.hpp"

#include <cozy/error.hpp>

#include <cmath>

namespace cozy::vae {

namespace {

// log N(z | mean, L L^T) for every row of z and every component: [N, K].
at::Tensor component_log_densities(const at::Tensor& z, const at::Tensor& means, const at::Tensor& cholesky) {
  const int64_t n = z.size(0), d = z.size(1), k = means.size(0);
  at::Tensor out = at::empty({n, k}, z.options());
  const double log_2pi = std::log(2 * M_PI);
  for (int64_t c = 0; c < k; ++c) {
    const at::Tensor l = cholesky[c];
    at::Tensor diff = (z - means[c]).t();                                        // [D, N]
    at::Tensor y = at::linalg_solve_triangular(l, diff, /*upper=*/false);        // L y = diff
    at::Tensor mahalanobis = y.pow(2).sum(0);                                    // [N]
    const double log_det = 2 * at::log(at::diagonal(l)).sum().item<double>();
    out.select(1, c).copy_(-0.5 * (mahalanobis + (double(d) * log_2pi + log_det)));
  }
  return out;
}

}  // namespace

at::Tensor LatentMixture::log_density(const at::Tensor& z) const {
  at::Tensor x = z.to(at::kCPU, at::kDouble);
  return at::logsumexp(component_log_densities(x, means, cholesky) + weights.log(), 1);
}

at::Tensor LatentMixture::sample(std::int64_t n, at::Generator& gen) const {
  at::Tensor which = at::multinomial(weights, n, /*replacement=*/true, gen);  // [n]
  at::Tensor eps = at::randn({n, means.size(1), 1}, gen, at::kDouble);
  at::Tensor z = means.index_select(0, which) + at::matmul(cholesky.index_select(0, which), eps).squeeze(-1);
  return z.to(at::kFloat);
}

LatentMixture fit_mixture(const at::Tensor& latents, std::int64_t k, bool diagonal, int iterations, at::Generator& gen,
                          double tolerance, const std::function<void(int, double)>& progress) {
  if (latents.dim() != 2) throw Error("a mixture is fitted to latents [N, D], not " + c10::str(latents.sizes()));
  at::Tensor z = latents.to(at::kCPU, at::kDouble).contiguous();
  const int64_t n = z.size(0), d = z.size(1);
  if (k < 1 || n < k) throw Error("a mixture of " + std::to_string(k) + " components needs at least as many latents, not " +
                                  std::to_string(n));
  // Covariances are kept positive definite: a floor of a millionth of the
  // data's mean variance on the diagonal.
  const double floor = 1e-6 * std::max(z.var(0).mean().item<double>(), 1e-12);
  const at::Tensor eye = at::eye(d, z.options());

  // k-means++ centres.
  at::Tensor means = at::empty({k, d}, z.options());
  means[0].copy_(z[at::randint(n, {1}, gen, at::kLong).item<int64_t>()]);
  at::Tensor nearest = (z - means[0]).pow(2).sum(1);
  for (int64_t c = 1; c < k; ++c) {
    const int64_t pick = at::multinomial(nearest + 1e-300, 1, false, gen).item<int64_t>();
    means[c].copy_(z[pick]);
    nearest = at::minimum(nearest, (z - means[c]).pow(2).sum(1));
  }
  at::Tensor data_cov = at::cov(z.t()) + floor * eye;
  if (diagonal) data_cov = at::diag(at::diagonal(data_cov));
  at::Tensor cholesky = at::linalg_cholesky(data_cov).unsqueeze(0).repeat({k, 1, 1});
  at::Tensor weights = at::full({k}, 1.0 / double(k), z.options());

  LatentMixture mixture;
  double previous = -INFINITY;
  int it = 0;
  for (it = 1; it <= iterations; ++it) {
    // E: responsibilities.
    at::Tensor log_p = component_log_densities(z, means, cholesky) + weights.log();
    at::Tensor log_total = at::logsumexp(log_p, 1, /*keepdim=*/true);
    const double ll = log_total.mean().item<double>();
    at::Tensor r = (log_p - log_total).exp();  // [N, K]
    // M: weights, means, covariances.
    at::Tensor nk = r.sum(0) + 1e-12;
    weights = nk / double(n);
    means = at::matmul(r.t(), z) / nk.unsqueeze(1);
    for (int64_t c = 0; c < k; ++c) {
      at::Tensor diff = z - means[c];
      at::Tensor cov = at::matmul((diff * r.select(1, c).unsqueeze(1)).t(), diff) / nk[c] + floor * eye;
      if (diagonal) cov = at::diag(at::diagonal(cov));
      cholesky[c].copy_(at::linalg_cholesky(cov));
    }
    if (progress) progress(it, ll);
    mixture.log_likelihood = ll;
    if (std::abs(ll - previous) <= tolerance * std::abs(ll)) break;
    previous = ll;
  }
  mixture.weights = weights;
  mixture.means = means;
  mixture.cholesky = cholesky;
  mixture.diagonal = diagonal;
  mixture.iterations = std::min(it, iterations);
  // The likelihood under the parameters returned (the loop's was under the last E step's).
  mixture.log_likelihood = mixture.log_density(z).mean().item<double>();
  return mixture;
}

}  // namespace cozy::vae
