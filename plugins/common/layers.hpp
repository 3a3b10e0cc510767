// Layers the model plugins share, where LibTorch's own CPU path is slow.
//
// A transposed convolution on the CPU: LibTorch 1.13 runs it, and its
// backward, as an im2col and a GEMM per image (slow_conv_transpose2d), while
// it hands ordinary convolutions and their gradients to oneDNN. A transposed
// convolution is the data gradient of the ordinary convolution with the same
// weight, so when a gradient will be taken it runs as that, and its backward
// as the ordinary convolution and its weight gradient: measured here (batch
// 16 and 64, the DCGAN's and the U-Net's shapes) forward + backward 1.1 to
// 2.5 times faster. Without gradients (sampling) the forward alone is not
// reliably faster (0.66 to 2.1 times; slower at batch 1), so LibTorch's path
// runs. A 1 x 1 input with stride 1 (a DCGAN's first layer) is one matrix
// product either way (15 ms -> under 1 ms at batch 64). Same values within
// float rounding (tests/test_layers.cpp). Other devices and dtypes use
// at::conv_transpose2d.
#pragma once

#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>

namespace cozy::layers {

/// conv_transpose2d(x, weight) + bias (bias may be undefined), for square
/// stride and padding, no output padding, dilation 1, one group.
at::Tensor conv_transpose(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, int64_t stride,
                          int64_t padding);

/// The module's forward, through conv_transpose when its options allow.
at::Tensor forward(torch::nn::ConvTranspose2dImpl& module, const at::Tensor& x);

/// The Sequential's layers in order, its ConvTranspose2d layers through the
/// function above.
at::Tensor forward(torch::nn::SequentialImpl& sequential, const at::Tensor& x);

}  // namespace cozy::layers
