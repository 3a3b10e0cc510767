// The models' transposed convolution (plugins/common/layers.cpp) against
// LibTorch's at::conv_transpose2d and its modules: the same values and the
// same gradients, in the DCGAN and in a decoder with biases.
#include <gtest/gtest.h>

#include "dcgan.hpp"
#include "layers.hpp"

namespace cozy::gan {
namespace {

using layers::conv_transpose;

// Largest difference relative to the reference's largest magnitude.
double relative_error(const torch::Tensor& got, const torch::Tensor& want) {
  return ((got - want).abs().max() / want.abs().max().clamp_min(1e-12)).item<double>();
}

// The gradients of `params` through two computations of the same output,
// for one random upstream gradient.
void expect_same_parameter_gradients(const torch::Tensor& got, const torch::Tensor& want,
                                     const std::vector<torch::Tensor>& params) {
  torch::Tensor upstream = torch::randn_like(want);
  auto got_grads = torch::autograd::grad({got}, params, {upstream});
  auto want_grads = torch::autograd::grad({want}, params, {upstream});
  for (std::size_t i = 0; i < params.size(); ++i)
    EXPECT_LT(relative_error(got_grads[i], want_grads[i]), 1e-4) << "parameter " << i;
}

struct Geometry {
  int64_t in, out, kernel, stride, padding, size;
};

TEST(ConvTranspose, MatchesLibTorchInValueAndGradients) {
  torch::manual_seed(3);
  // Every geometry the DCGAN uses: the 1 x 1 latent (a matrix product), the
  // 28 x 28 stack's 3 x 3 one, and the 4 x 4 stride-2 ones, down to 1 channel.
  for (const Geometry& g :
       {Geometry{100, 256, 4, 1, 0, 1}, Geometry{110, 256, 4, 1, 0, 1}, Geometry{256, 128, 3, 2, 1, 4},
        Geometry{128, 64, 4, 2, 1, 7}, Geometry{64, 1, 4, 2, 1, 14}, Geometry{16, 3, 4, 2, 1, 16}}) {
    SCOPED_TRACE(std::to_string(g.in) + "->" + std::to_string(g.out) + " k" + std::to_string(g.kernel) + " s" +
                 std::to_string(g.stride) + " on " + std::to_string(g.size));
    torch::Tensor x = torch::randn({5, g.in, g.size, g.size}).requires_grad_();
    torch::Tensor w = (torch::randn({g.in, g.out, g.kernel, g.kernel}) * 0.05).requires_grad_();
    // Odd geometries with a bias, even ones without.
    torch::Tensor bias = g.size % 2 ? torch::randn({g.out}).requires_grad_() : torch::Tensor();
    torch::Tensor want = at::conv_transpose2d(x, w, bias, g.stride, g.padding);
    torch::Tensor got = conv_transpose(x, w, bias, g.stride, g.padding);
    ASSERT_EQ(got.sizes(), want.sizes());
    EXPECT_LT(relative_error(got, want), 1e-5);
    torch::Tensor upstream = torch::randn_like(want);
    std::vector<torch::Tensor> inputs = {x, w};
    if (bias.defined()) inputs.push_back(bias);
    auto want_grads = torch::autograd::grad({want}, inputs, {upstream});
    auto got_grads = torch::autograd::grad({got}, inputs, {upstream});
    EXPECT_LT(relative_error(got_grads[0], want_grads[0]), 1e-5) << "input gradient";
    EXPECT_LT(relative_error(got_grads[1], want_grads[1]), 1e-5) << "weight gradient";
    if (bias.defined()) {
      EXPECT_LT(relative_error(got_grads[2], want_grads[2]), 1e-5) << "bias gradient";
    }
    // Without gradients (sampling) the same values.
    torch::NoGradGuard no_grad;
    EXPECT_LT(relative_error(conv_transpose(x, w, bias, g.stride, g.padding), want), 1e-5);
  }
}

TEST(ConvTranspose, DcganGeneratorEqualsItsLayersRunByLibTorch) {
  for (int64_t size : {28, 32, 64}) {
    for (int64_t classes : {0, 10}) {
      SCOPED_TRACE("size " + std::to_string(size) + ", classes " + std::to_string(classes));
      torch::manual_seed(size + classes);
      DcganOptions o;
      o.image_size = size, o.classes = classes, o.width = 16, o.channels = size == 28 ? 1 : 3;
      GeneratorNet g(o);
      torch::Tensor z = torch::randn({4, o.latent});
      torch::Tensor labels = torch::arange(4) % std::max<int64_t>(classes, 1);
      torch::Tensor input = classes ? torch::cat({z, torch::one_hot(labels, classes).to(torch::kFloat)}, 1) : z;
      for (bool training : {true, false}) {
        g->train(training);
        torch::Tensor got = g->forward(z, labels);
        // The Sequential's own forward: LibTorch's ConvTranspose2d modules.
        torch::Tensor want = g->net->forward(input.view({4, input.size(1), 1, 1}));
        ASSERT_EQ(got.sizes(), (std::vector<int64_t>{4, o.channels, size, size}));
        EXPECT_LT(relative_error(got, want), 1e-5) << (training ? "training" : "eval");
        if (training) {
          expect_same_parameter_gradients(got, want, g->parameters());
        }
      }
    }
  }
}

TEST(ConvTranspose, ASequentialWithBiasesAsLibTorchRunsIt) {
  namespace nn = torch::nn;
  torch::manual_seed(9);
  // The VAE's decoder, then a U-Net step (GroupNorm).
  nn::Sequential decoder(
      nn::Linear(8, 16 * 7 * 7), nn::ReLU(), nn::Unflatten(nn::UnflattenOptions(1, {16, 7, 7})),
      nn::ConvTranspose2d(nn::ConvTranspose2dOptions(16, 8, 4).stride(2).padding(1)), nn::ReLU(),
      nn::ConvTranspose2d(nn::ConvTranspose2dOptions(8, 4, 4).stride(2).padding(1)),
      nn::GroupNorm(nn::GroupNormOptions(2, 4)),
      // Options conv_transpose does not take (output padding): LibTorch's own forward.
      nn::ConvTranspose2d(nn::ConvTranspose2dOptions(4, 2, 3).stride(2).padding(1).output_padding(1)));
  torch::Tensor z = torch::randn({3, 8});
  torch::Tensor got = layers::forward(*decoder, z), want = decoder->forward(z);
  ASSERT_EQ(got.sizes(), (std::vector<int64_t>{3, 2, 56, 56}));
  EXPECT_LT(relative_error(got, want), 1e-5);
  expect_same_parameter_gradients(got, want, decoder->parameters());
}

}  // namespace
}  // namespace cozy::gan

// The average of a generator's weights: d = min(decay, (1 + t) / (10 + t)).
TEST(Ema, AveragesParametersAndCopiesBuffers) {
  torch::manual_seed(1);
  cozy::gan::DcganOptions o;
  o.width = 4, o.latent = 8;
  cozy::gan::GeneratorNet average(o), model(o);
  std::vector<at::Tensor> before;
  for (const auto& p : average->parameters()) before.push_back(p.detach().clone());
  for (auto& b : model->buffers()) b.fill_(3);
  cozy::gan::ema_update(*average, *model, 0.9, 100);  // min(0.9, 101 / 110) = 0.9
  const auto after = average->parameters(), weights = model->parameters();
  for (std::size_t i = 0; i < after.size(); ++i)
    EXPECT_TRUE(at::allclose(after[i], 0.9 * before[i] + 0.1 * weights[i], 1e-6, 1e-7)) << i;
  for (const auto& b : average->buffers()) EXPECT_TRUE(at::equal(b, at::full_like(b, 3)));
  std::vector<at::Tensor> middle;
  for (const auto& p : after) middle.push_back(p.detach().clone());
  cozy::gan::ema_update(*average, *model, 0.999, 0);  // the first step: min(0.999, 1 / 10) = 0.1
  const auto first = average->parameters();
  for (std::size_t i = 0; i < first.size(); ++i)
    EXPECT_TRUE(at::allclose(first[i], 0.1 * middle[i] + 0.9 * weights[i], 1e-6, 1e-6)) << i;
}

TEST(GanLoss, HingeAndBinaryCrossEntropyOnKnownLogits) {
  const at::Tensor real = at::tensor({2.0f, 0.5f}), fake = at::tensor({-2.0f, 0.0f});
  // hinge: mean(max(0, 1 - real)) + mean(max(0, 1 + fake)) = (0 + 0.5) / 2 + (0 + 1) / 2.
  EXPECT_FLOAT_EQ(cozy::gan::discriminator_loss("hinge", real, fake, 1.0f).item<float>(), 0.75f);
  EXPECT_FLOAT_EQ(cozy::gan::generator_loss("hinge", fake).item<float>(), 1.0f);
  const float bce = (std::log1p(std::exp(-2.0f)) + std::log1p(std::exp(-0.5f))) / 2 +
                    (std::log1p(std::exp(-2.0f)) + std::log(2.0f)) / 2;
  EXPECT_NEAR(cozy::gan::discriminator_loss("bce", real, fake, 1.0f).item<float>(), bce, 1e-6);
  EXPECT_NEAR(cozy::gan::generator_loss("bce", fake).item<float>(), (std::log1p(std::exp(2.0f)) + std::log(2.0f)) / 2, 1e-6);
}
