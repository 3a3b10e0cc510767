// cozy/layout.hpp — shapes a user places on a canvas (the LAYOUT type).
//
// A LAYOUT edge carries a `cozy::Layout`: shapes with a place, size,
// rotation, colour, texture and object class. The interaction plugin makes
// and edits them (Shape, LoadLayout, ReplayInteractions), renders them and
// composes scenes from them; a UI will produce the same data. Coordinates
// are fractions of the canvas: x of its width, y of its height (y down).
// Rotation is in degrees, clockwise on screen, about the shape's centre.
#pragma once

#include <cozy/value.hpp>

#include <algorithm>
#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace cozy {

struct Texture {
  std::string kind = "solid";  ///< solid, stripes, checker, dots, noise
  double scale = 0.05;         ///< period of the pattern, in canvas widths
  double angle = 0;            ///< degrees, relative to the shape
};

struct LayoutShape {
  std::string id;                         ///< unique in its layout
  std::string kind = "rectangle";         ///< rectangle, ellipse, triangle
  double cx = 0.5, cy = 0.5;              ///< centre
  double width = 0.3, height = 0.3;       ///< before rotation
  double rotation = 0;                    ///< degrees
  std::array<double, 3> color{0.5, 0.5, 0.5};  ///< RGB in [0, 1]
  Texture texture;
  std::string object_class;               ///< e.g. "Sneaker"; empty: none
  std::int64_t z = 0;                     ///< larger z is drawn on top
};

class COZY_INTERFACE Layout : public Object {
 public:
  std::string type_name() const override { return "LAYOUT"; }
  std::vector<LayoutShape> shapes;
  std::array<double, 3> background{1.0, 1.0, 1.0};

  /// The shapes in drawing order: by z, then by position in `shapes`.
  std::vector<const LayoutShape*> drawing_order() const {
    std::vector<const LayoutShape*> order;
    for (const auto& s : shapes) order.push_back(&s);
    std::stable_sort(order.begin(), order.end(), [](auto a, auto b) { return a->z < b->z; });
    return order;
  }
  const LayoutShape* find(const std::string& id) const {
    for (const auto& s : shapes)
      if (s.id == id) return &s;
    return nullptr;
  }
};

/// A user's judgement of the images of a batch: one score per image
/// (liked > 0, disliked < 0, no opinion 0).
class COZY_INTERFACE Feedback : public Object {
 public:
  std::string type_name() const override { return "FEEDBACK"; }
  std::vector<double> scores;
};

}  // namespace cozy
