// Latent vectors (LATENT: float32 [N, D]) for generators and VAEs:
// LatentNoise draws them, LatentInterpolate walks between two sets.
#include "training.hpp"

#include <cozy/sdk.hpp>

#include <ATen/ATen.h>

namespace cozy::gan {
namespace {

NodeDef latent_noise() {
  NodeDef d;
  d.spec.class_type = "LatentNoise";
  d.spec.display_name = "Latent Noise";
  d.spec.category = "latent";
  d.spec.description = "batch standard-normal latent vectors of length size, from a seed (the same on every "
                       "machine). truncation > 0 redraws entries beyond that magnitude.";
  d.spec.inputs = {InputSpec::Int("size", 100).range(1, 65536).help("the generator's or VAE's latent size"),
                   InputSpec::Int("batch", 1).range(1, 100000), InputSpec::Int("seed", 0).range(0, 2147483647),
                   InputSpec::Float("truncation", 0.0).range(0, 10).with_step(0.1)};
  d.spec.outputs = {{"LATENT", types::LATENT}};
  d.run = [](const Inputs& in, Context& ctx) -> Outputs {
    at::Generator gen = seeded_generator(in.integer("seed"));
    return {training::latent_noise(in.integer("batch"), in.integer("size"), gen, in.number("truncation"))
                .to(ctx.device())};
  };
  return d;
}

// Spherical interpolation between the rows of a and b at t (Shoemake), linear
// where the two are (anti)parallel.
at::Tensor slerp(const at::Tensor& a, const at::Tensor& b, double t) {
  at::Tensor na = a / a.norm(2, 1, true).clamp_min(1e-12), nb = b / b.norm(2, 1, true).clamp_min(1e-12);
  at::Tensor omega = (na * nb).sum(1, true).clamp(-1, 1).acos();
  at::Tensor so = omega.sin();
  at::Tensor lerp = a * (1 - t) + b * t;
  at::Tensor s = (a * ((1 - t) * omega).sin() + b * (t * omega).sin()) / so.clamp_min(1e-12);
  return at::where(so.abs() < 1e-6, lerp, s);
}

NodeDef latent_interpolate() {
  NodeDef d;
  d.spec.class_type = "LatentInterpolate";
  d.spec.display_name = "Latent Interpolate";
  d.spec.category = "latent";
  d.spec.description = "steps latents from each row of a to the same row of b (both ends included), linear or "
                       "spherical (slerp: keeps the norm that Gaussian latents have). Output rows: for each pair, "
                       "its steps in order.";
  d.spec.inputs = {InputSpec::Link("a", types::LATENT), InputSpec::Link("b", types::LATENT),
                   InputSpec::Int("steps", 8).range(2, 10000), InputSpec::Choice("method", {"slerp", "linear"})};
  d.spec.outputs = {{"LATENT", types::LATENT}};
  d.run = [](const Inputs& in, Context& ctx) -> Outputs {
    at::Tensor a = in.tensor("a").to(at::kFloat), b = in.tensor("b").to(a.device(), at::kFloat);
    if (a.dim() != 2 || a.sizes() != b.sizes())
      throw Error("a and b must be latents of the same shape [N, D], not " + c10::str(a.sizes()) + " and " +
                  c10::str(b.sizes()));
    const int64_t steps = in.integer("steps");
    const bool spherical = in.string("method") == "slerp";
    std::vector<at::Tensor> points;
    for (int64_t i = 0; i < steps; ++i) {
      const double t = double(i) / double(steps - 1);
      points.push_back(spherical ? slerp(a, b, t) : a * (1 - t) + b * t);
    }
    // [steps, N, D] -> [N, steps, D] -> [N * steps, D]
    return {at::stack(points).transpose(0, 1).reshape({-1, a.size(1)}).contiguous().to(ctx.device())};
  };
  return d;
}

}  // namespace

void register_latent_nodes(Registrar& r) {
  r.add(latent_noise());
  r.add(latent_interpolate());
}

}  // namespace cozy::gan
