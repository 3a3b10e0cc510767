#include "render.hpp"

#include <ATen/ATen.h>

#include <cctype>
#include <cmath>

namespace cozy::interaction {

namespace {
constexpr double kPi = 3.14159265358979323846;

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Pixel centres, [H, W] each.
std::pair<at::Tensor, at::Tensor> pixel_grid(std::int64_t width, std::int64_t height, const at::TensorOptions& o) {
  at::Tensor x = at::arange(width, o).add_(0.5), y = at::arange(height, o).add_(0.5);
  auto grids = at::meshgrid({y, x}, "ij");
  return {grids[1], grids[0]};
}
}  // namespace

Frame local_frame(const LayoutShape& s, std::int64_t width, std::int64_t height, const at::TensorOptions& o) {
  auto [x, y] = pixel_grid(width, height, o);
  const double t = s.rotation * kPi / 180, c = std::cos(t), sn = std::sin(t);
  at::Tensor dx = x - s.cx * double(width), dy = y - s.cy * double(height);
  const double hw = s.width * double(width) / 2, hh = s.height * double(height) / 2;
  return {(dx * c + dy * sn) / hw, (dy * c - dx * sn) / hh};
}

at::Tensor inside(const LayoutShape& s, const Frame& f) {
  if (s.kind == "ellipse") return f.lx * f.lx + f.ly * f.ly <= 1;
  if (s.kind == "triangle") return (f.ly <= 1) & (f.lx.abs() <= (f.ly + 1) / 2);  // apex up
  return (f.lx.abs() <= 1) & (f.ly.abs() <= 1);
}

double pattern_mean(const std::string& kind) {
  if (kind == "dots") return kPi * 0.3 * 0.3;
  if (kind == "solid") return 1.0;
  return 0.5;
}

int texture_id(const std::string& kind) {
  static const char* kinds[] = {"solid", "stripes", "checker", "dots", "noise"};
  for (int i = 0; i < 5; ++i)
    if (kind == kinds[i]) return i + 1;
  return 0;
}

at::Tensor pattern(const LayoutShape& s, std::int64_t width, std::int64_t height, const at::TensorOptions& o) {
  if (s.texture.kind == "solid") return at::ones({height, width}, o);
  auto [x, y] = pixel_grid(width, height, o);
  // Texture coordinates: canvas widths from the centre, turned with the shape and the texture angle.
  const double t = (s.rotation + s.texture.angle) * kPi / 180, c = std::cos(t), sn = std::sin(t);
  at::Tensor dx = (x - s.cx * double(width)) / double(width), dy = (y - s.cy * double(height)) / double(width);
  at::Tensor u = (dx * c + dy * sn) / s.texture.scale, v = (dy * c - dx * sn) / s.texture.scale;
  if (s.texture.kind == "stripes") return (u - u.floor() < 0.5).to(o.dtype());
  if (s.texture.kind == "checker") return ((u.floor() + v.floor()).remainder(2) < 0.5).to(o.dtype());
  if (s.texture.kind == "dots") {
    at::Tensor fu = u - u.floor() - 0.5, fv = v - v.floor() - 0.5;
    return (fu * fu + fv * fv < 0.09).to(o.dtype());
  }
  // noise: a random grey per cell, from a hash of the cell and the shape's id
  std::uint64_t seed = 1469598103934665603ull;
  for (char ch : s.id) seed = (seed ^ static_cast<unsigned char>(ch)) * 1099511628211ull;
  at::Tensor iu = u.floor().to(at::kLong), iv = v.floor().to(at::kLong);
  at::Tensor h = (iu * 73856093) ^ (iv * 19349663) ^ static_cast<std::int64_t>(seed & 0x7fffffff);
  h = (h * static_cast<std::int64_t>(2654435761LL)).remainder(static_cast<std::int64_t>(4294967296LL));
  h = (h ^ (h.floor_divide(65536))).remainder(65536);
  return h.to(o.dtype()) / 65535.0;
}

at::Tensor modulation(const LayoutShape& s, std::int64_t width, std::int64_t height, const at::TensorOptions& o,
                      double strength) {
  if (s.texture.kind == "solid") return at::ones({height, width}, o);
  return 1 + strength * (pattern(s, width, height, o) - pattern_mean(s.texture.kind));
}

std::int64_t class_index(const std::vector<std::string>& classes, const std::string& name) {
  for (std::size_t i = 0; i < classes.size(); ++i)
    if (lower(classes[i]) == lower(name)) return static_cast<std::int64_t>(i);
  return -1;
}

Rendered render(const Layout& layout, std::int64_t width, std::int64_t height, c10::Device device,
                const std::vector<std::string>& classes) {
  const at::TensorOptions o = at::TensorOptions().dtype(at::kFloat).device(device);
  Rendered r;
  at::Tensor bg = at::tensor({layout.background[0], layout.background[1], layout.background[2]}, o).view({3, 1, 1});
  r.preview = bg.expand({3, height, width}).clone();
  r.color_map = r.preview.clone();
  r.class_map = at::zeros({height, width}, o);
  r.texture_map = at::zeros({height, width}, o);
  const std::int64_t n = static_cast<std::int64_t>(layout.shapes.size());
  r.instances = at::zeros({std::max<std::int64_t>(n, 1), height, width}, o);
  at::Tensor owner = at::full({height, width}, -1, o.dtype(at::kLong));
  for (const LayoutShape* s : layout.drawing_order()) {
    const std::int64_t index = s - layout.shapes.data();
    at::Tensor mask = inside(*s, local_frame(*s, width, height, o));
    at::Tensor colour = at::tensor({s->color[0], s->color[1], s->color[2]}, o).view({3, 1, 1});
    at::Tensor textured = (colour * modulation(*s, width, height, o)).clamp(0, 1);
    r.preview = at::where(mask, textured, r.preview);
    r.color_map = at::where(mask, colour.expand({3, height, width}), r.color_map);
    r.class_map.masked_fill_(mask, double(class_index(classes, s->object_class) + 1));
    r.texture_map.masked_fill_(mask, double(texture_id(s->texture.kind)));
    owner.masked_fill_(mask, index);
  }
  for (std::int64_t i = 0; i < n; ++i) r.instances[i] = (owner == i).to(at::kFloat);
  if (n == 0) r.instances = r.instances.narrow(0, 0, 0);
  r.preview = r.preview.unsqueeze(0);
  r.color_map = r.color_map.unsqueeze(0);
  r.class_map = r.class_map.unsqueeze(0);
  r.texture_map = r.texture_map.unsqueeze(0);
  return r;
}

at::Tensor box_grid(const LayoutShape& s, std::int64_t width, std::int64_t height, std::int64_t out, double margin,
                    const at::TensorOptions& o) {
  at::Tensor t = (at::arange(out, o).add_(0.5) / double(out) * 2 - 1) * margin;
  auto grids = at::meshgrid({t, t}, "ij");
  at::Tensor lx = grids[1], ly = grids[0];
  const double a = s.rotation * kPi / 180, c = std::cos(a), sn = std::sin(a);
  // A square of the canvas (in pixels) around the box, so that objects keep their proportions.
  const double half = std::max(s.width * double(width), s.height * double(height)) / 2, hw = half, hh = half;
  at::Tensor px = s.cx * double(width) + lx * hw * c - ly * hh * sn;
  at::Tensor py = s.cy * double(height) + lx * hw * sn + ly * hh * c;
  return at::stack({px / double(width) * 2 - 1, py / double(height) * 2 - 1}, -1).unsqueeze(0);
}

}  // namespace cozy::interaction
