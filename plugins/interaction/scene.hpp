// Scenes from layouts and how well an image follows its layout: shared by
// ComposeScene, the fidelity metrics and the learned layout-to-image model.
#pragma once

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include <algorithm>
#include <cozy/layout.hpp>
#include <cozy/models.hpp>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace cozy::interaction {

/// A random layout of 1 to max_shapes shapes side by side on a dark
/// background, each with a class drawn from `classes`.
Layout random_layout(at::Generator& gen, std::int64_t max_shapes, const std::vector<std::string>& classes);

struct Scene {
  at::Tensor image;      ///< [1, 3, H, W]
  at::Tensor instances;  ///< [S, H, W]: object pixels of each shape, visible part
};

/// ComposeScene: each shape's object drawn by the class-conditional
/// generator, placed in its box, tinted and textured, in z order. Of
/// `candidates` draws per shape it uses, with a critic, the one that covers
/// the shape best of those the critic gives the shape's class with
/// probability kCriticConfidence or more (read as `read_box` reads them), or
/// the one it believes most if none; without a critic, the least stretched.
Scene compose(const Layout& layout, const Generator& g, std::int64_t width, std::int64_t height, std::int64_t seed,
              c10::Device device, double texture_strength, bool clip, std::int64_t candidates = 1,
              const Classifier* critic = nullptr);

/// How sure a critic must be of a candidate's class before ComposeScene
/// looks at how well it covers the shape (0.5 to 0.9 measured in
/// docs/benchmarks.md#scenes).
inline constexpr double kCriticConfidence = 0.8;

/// How much wider than a shape's box the classifier's view of it is:
/// objects span about 22 of 28 pixels in Fashion-MNIST.
inline constexpr double kReadMargin = 1.3;

/// What a classifier taking `image_shape` ({C, H, W}) reads of a shape from
/// grey levels [N, 1, H, W] on the canvas: the square around its box, upright
/// (its rotation undone), scaled so that the brightest pixel is 1.
at::Tensor read_box(const LayoutShape& s, const at::Tensor& grey, const std::vector<std::int64_t>& image_shape);

struct ShapeScore {
  std::string id;
  bool class_ok = false;
  std::string predicted;
  double color_error = 0, iou = 0;
  bool texture_ok = false;
  std::string texture_predicted;
};

/// The texture kind an image shows on a shape's object pixels (`mine`, bool
/// [H, W]), by matched filtering: the correlation of the pixels' luminance
/// with each patterned kind's template at the shape's own scale, angle and
/// place (what the layout asks), the best if it reaches `min_correlation`,
/// else "solid".
std::string judge_texture(const LayoutShape& shape, const at::Tensor& image, const at::Tensor& mine,
                          double min_correlation = 0.2);

/// The texture strength ComposeScene uses by default, and the fidelity
/// measure assumes when it reads an object's shading.
inline constexpr double kTextureStrength = 0.6;

/// What the classifier reads on a shape's box: `shading`, the object's grey
/// levels (the image divided by the colour and texture the layout asks for,
/// on the object's pixels, 0 elsewhere); `distance`, how far each pixel is
/// from the background (the object's silhouette, saturating on bright colours).
enum class Reading { shading, distance };

/// For each shape of `layout` in `image` [1, 3, H, W]: the classifier's
/// class on its box, the colour error of its object pixels (`instances`
/// [S, H, W]), their IoU with the shape's visible part, and its texture.
std::vector<ShapeScore> fidelity(const Layout& layout, const at::Tensor& image, const at::Tensor& instances,
                                 const Classifier& classifier, Reading reading = Reading::shading);

/// Object pixels of each shape when the image-maker gives none (a learned
/// generator): pixels farther than 0.1 from the background colour, within the
/// shape's visible part widened by 2 pixels. [S, H, W].
at::Tensor estimated_instances(const Layout& layout, const at::Tensor& image);

struct Summary {
  double class_agreement = 0, color_error = 0, iou = 0, texture_agreement = 0;
  std::int64_t shapes = 0;
  void add(const std::vector<ShapeScore>& scores) {
    for (const auto& s : scores) {
      class_agreement += s.class_ok, color_error += s.color_error, iou += s.iou;
      texture_agreement += s.texture_ok, ++shapes;
    }
  }
  nlohmann::json json() const {
    const double n = double(std::max<std::int64_t>(shapes, 1));
    return {{"class_agreement", class_agreement / n},
            {"color_error", color_error / n},
            {"iou", iou / n},
            {"texture_agreement", texture_agreement / n},
            {"shapes", shapes}};
  }
};

}  // namespace cozy::interaction
