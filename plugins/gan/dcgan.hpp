// DCGAN generator and discriminator, optionally class-conditional.
//
// For 28 x 28 the layers are those of pytorch/examples' C++ DCGAN, so the two
// can be compared like for like:
//   G: ConvT(nz, 4w, 4, 1, 0) BN ReLU, ConvT(4w, 2w, 3, 2, 1) BN ReLU,
//      ConvT(2w, w, 4, 2, 1) BN ReLU, ConvT(w, C, 4, 2, 1) Tanh        (w = 64)
//   D: Conv(C, w, 4, 2, 1) LReLU(0.2), Conv(w, 2w, 4, 2, 1) BN LReLU,
//      Conv(2w, 4w, 4, 2, 1) BN LReLU, Conv(4w, 1, 3, 1, 0)
// 32 x 32 and 64 x 64 use the usual DCGAN stack (4 x 4 kernels throughout).
// A conditional model feeds a one-hot label to G beside z, and to D as K
// constant planes beside the image.
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

namespace cozy::gan {

struct DcganOptions {
  int64_t latent = 100;
  int64_t width = 64;
  int64_t channels = 1;
  int64_t image_size = 28;  // 28, 32 or 64
  int64_t classes = 0;      // 0: unconditional
};

struct GeneratorNetImpl : torch::nn::Module {
  explicit GeneratorNetImpl(const DcganOptions& options);
  /// Images in [-1, 1] from z [N, latent] (and labels [N] when conditional).
  torch::Tensor forward(const torch::Tensor& z, const torch::Tensor& labels);
  DcganOptions options;
  torch::nn::Sequential net{nullptr};
};
TORCH_MODULE(GeneratorNet);

struct DiscriminatorNetImpl : torch::nn::Module {
  explicit DiscriminatorNetImpl(const DcganOptions& options);
  /// One logit per image in [-1, 1] (and labels [N] when conditional).
  torch::Tensor forward(const torch::Tensor& images, const torch::Tensor& labels);
  DcganOptions options;
  torch::nn::Sequential net{nullptr};
};
TORCH_MODULE(DiscriminatorNet);

/// DCGAN's initialisation: conv weights N(0, 0.02), batch-norm N(1, 0.02).
void init_weights(torch::nn::Module& module, at::Generator& generator);

/// An exponential moving average of a network's weights (Yazici et al.
/// 2019): after training step t, average = d average + (1 - d) weights with
/// d = min(decay, (1 + t) / (10 + t)), so the first steps do not hold it at
/// the initial weights; buffers (BatchNorm's statistics) are copied.
void ema_update(torch::nn::Module& average, const torch::nn::Module& model, double decay, std::int64_t step);

/// The losses of a discriminator's logits on real and fake images, and of
/// the generator's on fakes: "bce" (the DCGAN's, real target `real_target`)
/// or "hinge" (Lim and Ye 2017; Miyato et al. 2018).
torch::Tensor discriminator_loss(const std::string& loss, const torch::Tensor& d_real, const torch::Tensor& d_fake,
                                 float real_target);
torch::Tensor generator_loss(const std::string& loss, const torch::Tensor& d_on_fake);

}  // namespace cozy::gan
