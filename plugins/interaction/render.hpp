// Layouts drawn as tensors on any device: shape masks, texture patterns,
// and the affine frames that place objects in shapes.
#pragma once

#include <ATen/core/Tensor.h>

#include <cozy/layout.hpp>
#include <string>
#include <vector>

namespace cozy::interaction {

/// Each pixel's coordinates in a shape's own frame, in half-sizes: the
/// shape's box is [-1, 1]^2 whatever its place, size and rotation. [H, W].
struct Frame {
  at::Tensor lx, ly;
};
Frame local_frame(const LayoutShape& s, std::int64_t width, std::int64_t height, const at::TensorOptions& options);

/// Pixels inside the shape (bool [H, W]).
at::Tensor inside(const LayoutShape& s, const Frame& f);

/// The shape's texture pattern, in [0, 1], [H, W]; it moves and turns with
/// the shape. `kind_mean` is its mean over a large area.
at::Tensor pattern(const LayoutShape& s, std::int64_t width, std::int64_t height, const at::TensorOptions& options);
double pattern_mean(const std::string& kind);
/// 1 + strength * (pattern - mean): multiplies the colour, keeping its mean.
at::Tensor modulation(const LayoutShape& s, std::int64_t width, std::int64_t height, const at::TensorOptions& options,
                      double strength = 0.6);

/// Texture kinds by number, for texture maps: 0 is no shape.
int texture_id(const std::string& kind);

struct Rendered {
  at::Tensor preview;      ///< IMAGE [1, 3, H, W]: flat colour times texture over the background
  at::Tensor instances;    ///< MASK [S, H, W]: the visible part of each shape, in layout order
  at::Tensor class_map;    ///< MASK [1, H, W]: 1 + index of the shape's class in `classes`; 0 none
  at::Tensor color_map;    ///< IMAGE [1, 3, H, W]: flat colours, background elsewhere
  at::Tensor texture_map;  ///< MASK [1, H, W]: texture_id of the visible shape; 0 none
};
Rendered render(const Layout& layout, std::int64_t width, std::int64_t height, c10::Device device,
                const std::vector<std::string>& classes);

/// A grid for at::grid_sampler that reads, upright, the square of the canvas
/// (width x height pixels) centred on the shape, turned with it, whose side
/// is margin times the shape's longer side: [1, out, out, 2].
at::Tensor box_grid(const LayoutShape& s, std::int64_t width, std::int64_t height, std::int64_t out, double margin,
                    const at::TensorOptions& options);

/// Index of `name` in `classes`, ignoring case; -1 if absent.
std::int64_t class_index(const std::vector<std::string>& classes, const std::string& name);

}  // namespace cozy::interaction
