// The comfy plugin: ComfyUI's model-free image and mask nodes under their own
// names, declared as ComfyUI declares them and computing what ComfyUI
// computes. ComfyUI holds an IMAGE as [B, H, W, C] and a MASK as [B, H, W];
// here they are [B, C, H, W] and [B, 1, H, W] as everywhere in Cozy, and
// ComfyUI's formulas are written for that layout (its dimension 1 is our 2,
// its 2 our 3, its -1 our 1).
#pragma once

#include <cozy/sdk.hpp>

#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

namespace cozy::comfy {

/// ComfyUI's MAX_RESOLUTION.
inline constexpr double kMaxResolution = 16384;

/// An INT of pixels, as ComfyUI declares sizes and positions: from `lo` to
/// MAX_RESOLUTION, step 1.
inline InputSpec pixels_input(const char* name, int64_t def, double lo) {
  return InputSpec::Int(name, def).range(lo, kMaxResolution).with_step(1);
}

/// Python's round() of a float to an int: halves to even.
int64_t py_round(double x);

/// The methods ComfyUI's image scaling nodes offer, in its order.
const std::vector<std::string>& upscale_methods();

/// comfy.utils.common_upscale on [B, C, H, W]: an optional centre crop to
/// the target's aspect ratio, then torch's interpolate ("nearest-exact",
/// "bilinear", "bicubic", "area") or PIL's Lanczos on 8-bit pixels
/// ("lanczos", see lanczos()). Bicubic may overshoot [0, 1], as in ComfyUI.
at::Tensor common_upscale(const at::Tensor& bchw, int64_t width, int64_t height, const std::string& method,
                          const std::string& crop);

/// common_upscale for a node's IMAGE output: bicubic's overshoot clamped to
/// [0, 1], Cozy's IMAGE range (ComfyUI clamps it when it saves the image).
at::Tensor scale_image(const at::Tensor& bchw, int64_t width, int64_t height, const std::string& method,
                       const std::string& crop);

/// ComfyUI's "lanczos": each image to 8 bits (255 x, clipped, truncated), as
/// PIL resizes it with Image.LANCZOS (its two passes, 22-bit fixed-point
/// weights, 8-bit pixels between the passes, RGBA premultiplied), then / 255.
/// C = 1 (mode L), 3 (RGB) or 4 (RGBA).
at::Tensor lanczos(const at::Tensor& bchw, int64_t width, int64_t height);

/// comfy.utils.repeat_to_batch_size along dimension 0.
at::Tensor repeat_to_batch(const at::Tensor& t, int64_t batch);

/// Python's t[..., start:start + length] along `dim`: clipped to the tensor.
at::Tensor py_slice(const at::Tensor& t, int64_t dim, int64_t start, int64_t length);

/// A grey image as ComfyUI sees it: LoadImage gives ComfyUI three equal
/// channels where Cozy keeps one. Colour and RGBA images are returned as they are.
at::Tensor as_rgb(const at::Tensor& image);

/// Two images with one channel and more: the grey one as three equal ones.
std::pair<at::Tensor, at::Tensor> match_grey(at::Tensor a, at::Tensor b);

/// node_helpers.image_alpha_fix: the source's channels made the
/// destination's (the alpha dropped, or an opaque alpha added).
std::pair<at::Tensor, at::Tensor> alpha_fix(at::Tensor destination, at::Tensor source);

/// Writes a batch [B, C, H, W] as 8-bit PNGs to the run's temporary folder
/// and reports them (a preview), named after the node.
void preview(const at::Tensor& images, Context& ctx);

void register_image_nodes(Registrar& r);
void register_mask_nodes(Registrar& r);
void register_quantize_node(Registrar& r);

}  // namespace cozy::comfy
