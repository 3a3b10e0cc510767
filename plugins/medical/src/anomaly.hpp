// The anomaly maps' pieces, apart from their nodes (the tests call them).
#pragma once

#include <cozy/sdk.hpp>

#include <ATen/ATen.h>

#include <utility>

namespace cozy::medical {

/// A {0, 1} mask [N, 1, H, W] with its holes filled: what a flood from the
/// border through the zeros does not reach becomes 1.
at::Tensor fill_holes(const at::Tensor& mask);
/// The body of images [N, C, H, W]: the channel mean above `threshold`,
/// holes filled, eroded by a square of side 2 erode_by + 1; [N, 1, H, W].
at::Tensor body_mask(const at::Tensor& images, double threshold, int64_t erode_by);
/// A Gaussian blur of [N, C, H, W] (reflected edges), radius 3 sigma.
at::Tensor gaussian_blur(const at::Tensor& x, double sigma);
/// The area under the ROC curve of double scores [P] against bool truth [P]
/// (Mann-Whitney, ties counting half).
double auroc(const at::Tensor& scores, const at::Tensor& truth);
/// The best Dice over every threshold and that threshold (the pixels that
/// score at least it are the prediction).
std::pair<double, double> best_dice(const at::Tensor& scores, const at::Tensor& truth);

void register_anomaly_nodes(Registrar& r);

}  // namespace cozy::medical
