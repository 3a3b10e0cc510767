#include "layers.hpp"

#include <ATen/Context.h>
#include <ATen/core/grad_mode.h>
#include <ATen/ops/conv2d.h>
#include <ATen/ops/conv_transpose2d.h>
#include <ATen/ops/convolution_backward.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/mm.h>
#include <torch/autograd.h>
#include <torch/version.h>

namespace cozy::layers {

namespace {

// y = conv_transpose(x, W) computed as the input gradient of the ordinary
// convolution y -> x with the same weight; its backward is that convolution
// (for x) and the convolution's weight gradient with y's gradient as input.
struct ConvTransposeByGradient : torch::autograd::Function<ConvTransposeByGradient> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, const at::Tensor& w,
                            int64_t stride, int64_t padding) {
    const std::vector<int64_t> shape = {x.size(0), w.size(1), (x.size(2) - 1) * stride - 2 * padding + w.size(2),
                                        (x.size(3) - 1) * stride - 2 * padding + w.size(3)};
    ctx->saved_data["stride"] = stride;
    ctx->saved_data["padding"] = padding;
    ctx->save_for_backward({x, w});
    // Only the sizes of the "input" argument are read.
    const at::Tensor like = at::empty(shape, x.options());
    return std::get<0>(at::convolution_backward(x, like, w, at::OptionalIntArrayRef{}, {stride, stride},
                                                {padding, padding}, {1, 1}, false, {0, 0}, 1, {true, false, false}));
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &x = saved[0], &w = saved[1];
    const int64_t stride = ctx->saved_data["stride"].toInt(), padding = ctx->saved_data["padding"].toInt();
    const at::Tensor grad = grads[0].contiguous();
    at::Tensor grad_x, grad_w;
    if (ctx->needs_input_grad(0)) grad_x = at::conv2d(grad, w, {}, {stride, stride}, {padding, padding});
    if (ctx->needs_input_grad(1))
      grad_w =
          std::get<1>(at::convolution_backward(x, grad, w, at::OptionalIntArrayRef{}, {stride, stride},
                                               {padding, padding}, {1, 1}, false, {0, 0}, 1, {false, true, false}));
    return {grad_x, grad_w, at::Tensor(), at::Tensor()};
  }
};

// The alternative a module option's variant holds, if it is T (the options
// are c10 variants before LibTorch 2, std ones after).
template <typename T, typename Variant>
const T* alternative(const Variant& v) {
#if TORCH_VERSION_MAJOR >= 2
  return std::get_if<T>(&v);
#else
  return c10::get_if<T>(&v);
#endif
}

}  // namespace

at::Tensor conv_transpose(const at::Tensor& x, const at::Tensor& w, const at::Tensor& bias, int64_t stride,
                          int64_t padding) {
  const bool cpu_float =
      x.device().is_cpu() && x.scalar_type() == at::kFloat && w.scalar_type() == at::kFloat && x.dim() == 4;
  const bool one_by_one = x.size(2) == 1 && x.size(3) == 1 && stride == 1 && padding == 0;
  const bool onednn = at::GradMode::is_enabled() && (x.requires_grad() || w.requires_grad()) &&
                      at::globalContext().userEnabledMkldnn() && at::hasMKLDNN();
  if (!cpu_float || !(one_by_one || onednn))
    return at::conv_transpose2d(x, w, bias, {stride, stride}, {padding, padding});
  const at::Tensor y = one_by_one
                           ? at::mm(x.flatten(1), w.flatten(1)).view({x.size(0), w.size(1), w.size(2), w.size(3)})
                           : ConvTransposeByGradient::apply(x.contiguous(), w, stride, padding);
  return bias.defined() ? y + bias.view({1, -1, 1, 1}) : y;
}

at::Tensor forward(torch::nn::ConvTranspose2dImpl& module, const at::Tensor& x) {
  const auto& o = module.options;
  const auto* padding = alternative<torch::ExpandingArray<2>>(o.padding());  // not "same" or "valid"
  const bool plain = padding && (**padding)[0] == (**padding)[1] && (*o.stride())[0] == (*o.stride())[1] &&
                     (*o.output_padding())[0] == 0 && (*o.output_padding())[1] == 0 && (*o.dilation())[0] == 1 &&
                     (*o.dilation())[1] == 1 && o.groups() == 1 &&
                     alternative<torch::enumtype::kZeros>(o.padding_mode()) != nullptr;
  if (!plain) return module.forward(x);
  return conv_transpose(x, module.weight, module.bias, (*o.stride())[0], (**padding)[0]);
}

at::Tensor forward(torch::nn::SequentialImpl& sequential, const at::Tensor& x) {
  at::Tensor y = x;
  for (auto& layer : sequential) {
    if (auto* conv = layer.ptr()->as<torch::nn::ConvTranspose2dImpl>())
      y = forward(*conv, y);
    else
      y = layer.forward(y);
  }
  return y;
}

}  // namespace cozy::layers
