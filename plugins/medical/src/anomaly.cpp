// Anomaly maps from a VAE trained on healthy slices: synthetic lesions of
// known place to find, the reconstruction residual as the map, and the
// pixel-level AUROC and Dice that say how well it finds them.
#include "anomaly.hpp"

#include <cozy/models.hpp>
#include <cozy/random.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iomanip>
#include <numeric>
#include <sstream>

namespace cozy::medical {

namespace {

const char* kCategory = "medical";

std::string number(double v) {
  std::ostringstream s;
  s << std::setprecision(6) << v;
  return s.str();
}

// A JSON string.
std::string quoted(const std::string& text) {
  std::string out = "\"";
  for (const char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) < 0x20) {
      char escape[8];
      std::snprintf(escape, sizeof escape, "\\u%04x", c);
      out += escape;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

// Erosion and dilation of a {0, 1} float mask [N, 1, H, W] by a square of
// side 2 r + 1 (outside the image counts as background for erosion).
at::Tensor dilate(const at::Tensor& m, int64_t r) {
  return r <= 0 ? m : at::max_pool2d(m, {2 * r + 1, 2 * r + 1}, {1, 1}, {r, r});
}
at::Tensor erode(const at::Tensor& m, int64_t r) { return r <= 0 ? m : 1 - dilate(1 - m, r); }

// The scores and truth of the pixels inside `region` (all without it), flat.
std::pair<at::Tensor, at::Tensor> selected(const Inputs& in) {
  at::Tensor scores = in.mask("scores").to(at::kCPU, at::kDouble).contiguous();
  at::Tensor truth = in.mask("truth").to(at::kCPU, at::kDouble).contiguous();
  if (!scores.sizes().equals(truth.sizes()))
    throw Error("scores " + c10::str(scores.sizes()) + " and truth " + c10::str(truth.sizes()) + " differ in size");
  at::Tensor keep = at::ones_like(scores, at::kBool);
  if (in.has("region")) {
    const at::Tensor region = in.mask("region").to(at::kCPU);
    if (!region.sizes().equals(scores.sizes())) throw Error("region " + c10::str(region.sizes()) + " is not the scores' size");
    keep = region > 0.5;
  }
  return {scores.masked_select(keep), truth.masked_select(keep) > 0.5};
}

std::string region_note(const Inputs& in) { return in.has("region") ? "inside the region" : "every pixel"; }

}  // namespace

at::Tensor fill_holes(const at::Tensor& mask) {
  // The background is what a flood from the border reaches through zeros.
  const at::Tensor inside = mask > 0.5;
  at::Tensor border = at::zeros_like(inside);
  border.select(2, 0).fill_(true), border.select(2, -1).fill_(true);
  border.select(3, 0).fill_(true), border.select(3, -1).fill_(true);
  at::Tensor outside = (border & ~inside).to(at::kFloat);
  const at::Tensor open = (~inside).to(at::kFloat);
  for (int64_t i = 0; i < mask.size(2) * mask.size(3); ++i) {
    at::Tensor grown = dilate(outside, 1) * open;
    if (at::equal(grown, outside)) break;
    outside = grown;
  }
  return 1 - outside;
}

at::Tensor body_mask(const at::Tensor& images, double threshold, int64_t erode_by) {
  const at::Tensor grey = images.to(at::kCPU, at::kFloat).mean(1, /*keepdim=*/true);
  return erode(fill_holes((grey > threshold).to(at::kFloat)), erode_by);
}

at::Tensor gaussian_blur(const at::Tensor& x, double sigma) {
  if (sigma <= 0) return x;
  const int64_t r = static_cast<int64_t>(std::ceil(3 * sigma));
  at::Tensor k = at::arange(-r, r + 1, at::kFloat);
  k = at::exp(-k * k / (2 * sigma * sigma));
  k = k / k.sum();
  const int64_t c = x.size(1);
  at::Tensor y = at::reflection_pad2d(x, {r, r, r, r});
  y = at::conv2d(y, k.view({1, 1, 1, 2 * r + 1}).repeat({c, 1, 1, 1}), c10::nullopt, at::IntArrayRef{1}, at::IntArrayRef{0}, at::IntArrayRef{1}, c);
  return at::conv2d(y, k.view({1, 1, 2 * r + 1, 1}).repeat({c, 1, 1, 1}), c10::nullopt, at::IntArrayRef{1}, at::IntArrayRef{0}, at::IntArrayRef{1}, c);
}

double auroc(const at::Tensor& scores, const at::Tensor& truth) {
  const int64_t n = scores.numel();
  const int64_t positives = truth.sum().item<int64_t>(), negatives = n - positives;
  if (positives == 0 || negatives == 0) throw Error("AUROC needs positive and negative pixels (" + std::to_string(positives) +
                                                    " positive, " + std::to_string(negatives) + " negative)");
  // Mann-Whitney: the positives' ranks (ties share their mean rank).
  const at::Tensor order = std::get<1>(scores.sort());
  const at::Tensor s = scores.index_select(0, order).contiguous(), t = truth.index_select(0, order).contiguous();
  const double* sv = s.data_ptr<double>();
  const bool* tv = t.data_ptr<bool>();
  double rank_sum = 0;
  for (int64_t i = 0; i < n;) {
    int64_t j = i;
    int64_t hits = 0;
    while (j < n && sv[j] == sv[i]) hits += tv[j++];
    rank_sum += static_cast<double>(hits) * (static_cast<double>(i + 1 + j) / 2.0);
    i = j;
  }
  const double p = static_cast<double>(positives), q = static_cast<double>(negatives);
  return (rank_sum - p * (p + 1) / 2) / (p * q);
}

std::pair<double, double> best_dice(const at::Tensor& scores, const at::Tensor& truth) {
  const int64_t n = scores.numel();
  const double positives = truth.sum().item<double>();
  const at::Tensor order = std::get<1>(scores.sort(0, /*descending=*/true));
  const at::Tensor s = scores.index_select(0, order).contiguous(), t = truth.index_select(0, order).contiguous();
  const double* sv = s.data_ptr<double>();
  const bool* tv = t.data_ptr<bool>();
  double best = positives == 0 ? 1.0 : 0.0, threshold = n ? sv[0] + 1 : 0;  // nothing predicted
  double hits = 0;
  for (int64_t i = 0; i < n;) {
    int64_t j = i;
    while (j < n && sv[j] == sv[i]) hits += tv[j++];
    const double dice = 2 * hits / (static_cast<double>(j) + positives);  // predicted: score >= sv[i]
    if (dice > best) best = dice, threshold = sv[i];
    i = j;
  }
  return {best, threshold};
}

namespace {

NodeDef synthetic_lesions() {
  NodeDef d = NodeDef::named(
      "SyntheticLesions", "Synthetic Lesions", kCategory,
      "Inserts `count` discs of the given radius (pixels) into each image, each wholly inside the body (pixels above "
      "body_threshold, holes filled) and apart from the others, adding `contrast` to the pixels under it (clipped to "
      "[0, 1]): the images and a MASK of where the lesions are, for AnomalyMap, AUROC and Dice.");
  d.spec.inputs = {InputSpec::Link("images", types::IMAGE), InputSpec::Int("count", 1).range(1, 64),
                   InputSpec::Float("radius", 3).range(0.5, 512).with_step(0.5),
                   InputSpec::Float("contrast", 0.4).range(-1, 1).with_step(0.05),
                   InputSpec::Float("body_threshold", 0.05).range(0, 1).with_step(0.01),
                   InputSpec::Int("seed", 0).range(0, 2147483647)};
  d.spec.outputs = {{"IMAGE", types::IMAGE}, {"lesions", types::MASK}};
  d.run = [](const Inputs& in, Context& ctx) -> Outputs {
    const at::Tensor images = in.image("images").to(at::kCPU);
    const int64_t n = images.size(0), h = images.size(2), w = images.size(3), count = in.integer("count");
    const double radius = in.number("radius"), contrast = in.number("contrast");
    const int64_t reach = static_cast<int64_t>(std::ceil(radius));
    const at::Tensor body = body_mask(images, in.number("body_threshold"), 0);
    at::Tensor out = images.clone(), truth = at::zeros({n, 1, h, w}, at::kFloat);
    const at::Tensor yy = at::arange(h, at::kFloat).view({h, 1}), xx = at::arange(w, at::kFloat).view({1, w});
    at::Generator gen = seeded_generator(in.integer("seed"));
    for (int64_t i = 0; i < n; ++i) {
      // Centres whose disc lies in the body, away from the edge of the image.
      at::Tensor room = erode(body.narrow(0, i, 1), reach)[0][0];
      room.narrow(0, 0, std::min(reach, h)).zero_(), room.narrow(0, std::max<int64_t>(h - reach, 0), std::min(reach, h)).zero_();
      room.narrow(1, 0, std::min(reach, w)).zero_(), room.narrow(1, std::max<int64_t>(w - reach, 0), std::min(reach, w)).zero_();
      for (int64_t k = 0; k < count; ++k) {
        const at::Tensor places = (room > 0.5).flatten().nonzero().flatten();
        if (places.numel() == 0)
          throw Error("image " + std::to_string(i) + " has no room for lesion " + std::to_string(k + 1) + " of radius " +
                      number(radius) + " inside its body");
        const int64_t pick = places[at::randint(places.numel(), {1}, gen, at::kLong).item<int64_t>()].item<int64_t>();
        const float cy = static_cast<float>(pick / w), cx = static_cast<float>(pick % w);
        const at::Tensor distance2 = (yy - cy).pow(2) + (xx - cx).pow(2);
        const at::Tensor disc = distance2 <= radius * radius;
        out[i] = at::where(disc, (out[i] + contrast).clamp(0, 1), out[i]);
        truth[i][0].masked_fill_(disc, 1);
        room.masked_fill_(distance2 <= 4 * radius * radius + 1, 0);  // the next one apart from this one
      }
    }
    ctx.log(LogLevel::info, std::to_string(n * count) + " lesions of radius " + number(radius) + " px, contrast " + number(contrast));
    return {out.to(ctx.device()), truth.to(ctx.device())};
  };
  return d;
}

NodeDef anomaly_map() {
  NodeDef d = NodeDef::named(
      "AnomalyMap", "Anomaly Map", kCategory,
      "Where images differ from what a VAE trained on healthy ones makes of them: |image - reconstruction| (the "
      "posterior mean decoded), averaged over the channels, smoothed by a Gaussian of `sigma` pixels and set to 0 "
      "outside the body (pixels above body_threshold, holes filled, eroded by `erode` pixels). Outputs the map "
      "(MASK), the body (MASK), the reconstructions and a heat map over the image (red: the highest score).");
  d.spec.inputs = {InputSpec::Link("vae", types::VAE), InputSpec::Link("images", types::IMAGE),
                   InputSpec::Float("sigma", 1.0).range(0, 64).with_step(0.25),
                   InputSpec::Float("body_threshold", 0.05).range(0, 1).with_step(0.01),
                   InputSpec::Int("erode", 1).range(0, 64)};
  d.spec.outputs = {{"anomaly", types::MASK}, {"body", types::MASK}, {"reconstruction", types::IMAGE},
                    {"heatmap", types::IMAGE}};
  d.run = [](const Inputs& in, Context& ctx) -> Outputs {
    auto vae = in.object<Vae>("vae");
    const at::Tensor images = in.image("images").to(at::kCPU);
    const auto shape = vae->image_shape();
    if (images.size(1) != shape[0] || images.size(2) != shape[1] || images.size(3) != shape[2])
      throw Error("the VAE takes images of " + std::to_string(shape[0]) + " x " + std::to_string(shape[1]) + " x " +
                  std::to_string(shape[2]) + " (channels x height x width), not " + c10::str(images.sizes().slice(1)));
    std::vector<at::Tensor> parts;
    for (int64_t start = 0; start < images.size(0); start += 64) {
      ctx.check_cancelled();
      const at::Tensor batch = images.narrow(0, start, std::min<int64_t>(64, images.size(0) - start));
      parts.push_back(vae->decode(vae->encode(batch).first).to(at::kCPU, at::kFloat));
    }
    const at::Tensor reconstruction = at::cat(parts);
    const at::Tensor body = body_mask(images, in.number("body_threshold"), in.integer("erode"));
    const at::Tensor residual = (images - reconstruction).abs().mean(1, /*keepdim=*/true);
    const at::Tensor score = gaussian_blur(residual, in.number("sigma")) * body;
    const double top = std::max(score.max().item<double>(), 1e-12);
    const at::Tensor heat = (score / top).clamp(0, 1);
    const at::Tensor grey = images.mean(1, /*keepdim=*/true).expand({-1, 3, -1, -1});
    const at::Tensor red = at::cat({at::ones_like(heat), at::zeros_like(heat), at::zeros_like(heat)}, 1);
    const at::Tensor overlay = grey * (1 - heat) + red * heat;
    const c10::Device device = ctx.device();
    return {score.to(device), body.to(device), reconstruction.to(device), overlay.contiguous().to(device)};
  };
  return d;
}

NodeDef auroc_node() {
  NodeDef d = NodeDef::named(
      "AUROC", "AUROC (pixels)", kCategory,
      "The area under the ROC curve of per-pixel scores against a truth MASK (above 0.5: positive), over the pixels "
      "inside `region` (every pixel without it): the chance that a positive pixel scores above a negative one, ties "
      "counting half (Mann-Whitney). Outputs it and a JSON report for SaveMetrics.");
  d.spec.inputs = {InputSpec::Link("scores", types::MASK), InputSpec::Link("truth", types::MASK),
                   InputSpec::Link("region", types::MASK).optional(),
                   InputSpec::String("name", "auroc").help("the report's metric name (SaveMetrics' key)")};
  d.spec.outputs = {{"auroc", types::FLOAT}, {"report", types::STRING}};
  d.spec.output_node = true;
  d.run = [](const Inputs& in, Context& ctx) -> Outputs {
    auto [scores, truth] = selected(in);
    const double value = auroc(scores, truth);
    const std::string report = "{\"metric\": " + quoted(in.string("name")) + ", \"auroc\": " + number(value) + ", \"pixels\": " +
                               std::to_string(scores.numel()) + ", \"positives\": " +
                               std::to_string(truth.sum().item<int64_t>()) + ", \"over\": \"" + region_note(in) + "\"}";
    ctx.log(LogLevel::info, report);
    ctx.show_text("AUROC " + number(value));
    return {value, report};
  };
  return d;
}

NodeDef dice_node() {
  NodeDef d = NodeDef::named(
      "Dice", "Dice", kCategory,
      "The Dice overlap 2|P and T| / (|P| + |T|) of the pixels scoring at least `threshold` (P) with a truth MASK (T), "
      "inside `region`; `best` tries every threshold and gives the best Dice and its threshold (an upper bound, as "
      "anomaly-detection papers report it). 1 when both are empty.");
  d.spec.inputs = {InputSpec::Link("scores", types::MASK), InputSpec::Link("truth", types::MASK),
                   InputSpec::Choice("mode", {"threshold", "best"}), InputSpec::Float("threshold", 0.5).with_step(0.01),
                   InputSpec::Link("region", types::MASK).optional(),
                   InputSpec::String("name", "dice").help("the report's metric name (SaveMetrics' key)")};
  d.spec.outputs = {{"dice", types::FLOAT}, {"threshold", types::FLOAT}, {"report", types::STRING}};
  d.spec.output_node = true;
  d.run = [](const Inputs& in, Context& ctx) -> Outputs {
    auto [scores, truth] = selected(in);
    double dice = 0, threshold = in.number("threshold");
    if (in.string("mode") == "best") {
      std::tie(dice, threshold) = best_dice(scores, truth);
    } else {
      const at::Tensor predicted = scores >= threshold;
      const double both = (predicted & truth).sum().item<double>();
      const double sizes = predicted.sum().item<double>() + truth.sum().item<double>();
      dice = sizes == 0 ? 1.0 : 2 * both / sizes;
    }
    const std::string report = "{\"metric\": " + quoted(in.string("name")) + ", \"dice\": " + number(dice) + ", \"threshold\": " + number(threshold) +
                               ", \"mode\": \"" + in.string("mode") + "\", \"over\": \"" + region_note(in) + "\"}";
    ctx.log(LogLevel::info, report);
    ctx.show_text("Dice " + number(dice) + " at " + number(threshold));
    return {dice, threshold, report};
  };
  return d;
}

}  // namespace

void register_anomaly_nodes(Registrar& r) {
  r.add(synthetic_lesions());
  r.add(anomaly_map());
  r.add(auroc_node());
  r.add(dice_node());
}

}  // namespace cozy::medical
