// A Gaussian mixture fitted to a VAE's latents (ex-post density estimation,
// Ghosh et al. 2020, "From variational to deterministic autoencoders"): a
// VAE's decoder was trained on the posteriors of the training images, which
// the prior N(0, I) covers badly when the KL term does not pull them onto
// it; sampling from a density fitted to where the training images' latents
// lie gives the decoder what it learnt to decode.
#pragma once

#include <cozy/value.hpp>

#include <ATen/ATen.h>

#include <functional>
#include <string>

namespace cozy::vae {

class LatentMixture : public Object {
 public:
  std::string type_name() const override { return "LATENT_MIXTURE"; }

  at::Tensor weights;    ///< [K], double, summing to 1
  at::Tensor means;      ///< [K, D], double
  at::Tensor cholesky;   ///< [K, D, D], double: lower factors of the covariances
  bool diagonal = false;  ///< the covariances are diagonal
  double log_likelihood = 0;  ///< mean log-density of the fitted latents
  int iterations = 0;          ///< EM iterations run

  /// `n` latents float32 [n, D] on the CPU, drawn with `gen`.
  at::Tensor sample(std::int64_t n, at::Generator& gen) const;
  /// The log-density of each latent [N, D] (double [N]).
  at::Tensor log_density(const at::Tensor& z) const;
};

/// Fits K Gaussians (full or diagonal covariances) to `z` [N, D] by
/// expectation-maximisation, started from k-means++ centres drawn with
/// `gen`; stops when the mean log-likelihood gains less than `tolerance`
/// (relative) or after `iterations`. `progress(iteration, log_likelihood)`
/// is called after each one.
LatentMixture fit_mixture(const at::Tensor& z, std::int64_t components, bool diagonal, int iterations,
                          at::Generator& gen, double tolerance = 1e-6,
                          const std::function<void(int, double)>& progress = {});

}  // namespace cozy::vae
