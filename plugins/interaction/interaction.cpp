// The interaction plugin: layouts of shapes that a user places, drags,
// scales, rotates, colours and textures (Shape, LoadLayout, SaveLayout,
// ReplayInteractions, RandomLayout), drawn as conditioning tensors
// (RenderLayout), turned into scenes by the class-conditional GAN
// (ComposeScene) and judged (LayoutFidelity, SceneFidelity); feedback on
// results steers the next batch (Feedback, EvolveLatents, SaveLatents,
// LoadLatents).
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <cozy/sdk.hpp>
#include <fstream>
#include <sstream>

#include "layout_io.hpp"
#include "layout_model.hpp"
#include "render.hpp"
#include "scene.hpp"

namespace cozy::interaction {
namespace {

namespace fs = std::filesystem;

fs::path under(const fs::path& folder, const std::string& name) {
  fs::path p(name);
  return p.is_relative() ? folder / p : p;
}

nlohmann::json read_json(const fs::path& file, const std::string& what) {
  std::ifstream in(file);
  if (!in) throw Error(what + " not found: " + file.string());
  nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) throw Error(what + " is not valid JSON: " + file.string());
  return j;
}

std::vector<std::string> split(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream list(text);
  for (std::string item; std::getline(list, item, ',');) {
    item.erase(0, item.find_first_not_of(" \t"));
    item.erase(item.find_last_not_of(" \t") + 1);
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

const std::vector<std::string>& fashion_classes() {
  static const std::vector<std::string> names = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                                 "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
  return names;
}

NodeDef node(const char* type, const char* display, const char* category, const char* description) {
  return NodeDef::named(type, display, category, description);
}

std::shared_ptr<Layout> copy_of(const Inputs& in, const char* name) {
  if (in.has(name)) return std::make_shared<Layout>(*in.object<Layout>(name));
  return std::make_shared<Layout>();
}

// ------------------------------------------------------------------ layouts

NodeDef shape_node() {
  NodeDef d = node("Shape", "Shape", "interaction",
                   "Adds a shape to a layout (or starts one): rectangle, ellipse or triangle, centre and size in "
                   "fractions of the canvas, rotation in degrees (clockwise), colour (#rrggbb, rgb(r, g, b) or a "
                   "name), texture (solid, stripes, checker, dots, noise) with its period and angle, the object class "
                   "to draw there, and z (larger is on top). Chain Shape nodes to build a scene.");
  d.spec.inputs = {InputSpec::Link("layout", types::LAYOUT).optional(),
                   InputSpec::String("id", "shape1").help("unique in the layout"),
                   InputSpec::Choice("shape", {"rectangle", "ellipse", "triangle"}),
                   InputSpec::Float("center_x", 0.5).range(-1, 2).with_step(0.01),
                   InputSpec::Float("center_y", 0.5).range(-1, 2).with_step(0.01),
                   InputSpec::Float("width", 0.3).range(0.001, 4).with_step(0.01),
                   InputSpec::Float("height", 0.3).range(0.001, 4).with_step(0.01),
                   InputSpec::Float("rotation", 0.0).range(-360, 360).with_step(1),
                   InputSpec::String("color", "#808080"),
                   InputSpec::Choice("texture", {"solid", "stripes", "checker", "dots", "noise"}),
                   InputSpec::Float("texture_scale", 0.05).range(0.005, 1).with_step(0.005),
                   InputSpec::Float("texture_angle", 0.0).range(-360, 360).with_step(1),
                   InputSpec::String("object_class", "").help("e.g. Sneaker; empty: none"),
                   InputSpec::Int("z", 0).range(-1000000, 1000000)};
  d.spec.outputs = {{"LAYOUT", types::LAYOUT}};
  d.run = [](const Inputs& in, Context&) -> Outputs {
    auto layout = copy_of(in, "layout");
    LayoutShape s;
    s.id = in.string("id");
    s.kind = in.string("shape");
    s.cx = in.number("center_x"), s.cy = in.number("center_y");
    s.width = in.number("width"), s.height = in.number("height");
    s.rotation = in.number("rotation");
    try {
      s.color = parse_color(in.string("color"));
    } catch (const Error& e) {
      throw Error("shape '" + s.id + "': " + e.what());
    }
    s.texture = {in.string("texture"), in.number("texture_scale"), in.number("texture_angle")};
    s.object_class = in.string("object_class");
    s.z = in.integer("z");
    check_shape(s);
    if (layout->find(s.id)) throw Error("the layout already has a shape '" + s.id + "'");
    layout->shapes.push_back(std::move(s));
    return {std::static_pointer_cast<Object>(layout)};
  };
  return d;
}

NodeDef combine() {
  NodeDef d = node("CombineLayouts", "Combine Layouts", "interaction",
                   "The shapes of b added to those of a (ids must differ); a's background.");
  d.spec.inputs = {InputSpec::Link("a", types::LAYOUT), InputSpec::Link("b", types::LAYOUT)};
  d.spec.outputs = {{"LAYOUT", types::LAYOUT}};
  d.run = [](const Inputs& in, Context&) -> Outputs {
    auto layout = copy_of(in, "a");
    for (const auto& s : in.object<Layout>("b")->shapes) {
      if (layout->find(s.id)) throw Error("both layouts have a shape '" + s.id + "'");
      layout->shapes.push_back(s);
    }
    return {std::static_pointer_cast<Object>(layout)};
  };
  return d;
}

NodeDef background() {
  NodeDef d = node("LayoutBackground", "Layout Background", "interaction", "Sets a layout's background colour.");
  d.spec.inputs = {InputSpec::Link("layout", types::LAYOUT), InputSpec::String("color", "#ffffff")};
  d.spec.outputs = {{"LAYOUT", types::LAYOUT}};
  d.run = [](const Inputs& in, Context&) -> Outputs {
    auto layout = copy_of(in, "layout");
    layout->background = parse_color(in.string("color"));
    return {std::static_pointer_cast<Object>(layout)};
  };
  return d;
}

NodeDef load_layout() {
  NodeDef d = node("LoadLayout", "Load Layout", "interaction",
                   "A layout from a JSON file in the input folder (format in docs/interaction.md).");
  d.spec.inputs = {InputSpec::String("file", "layout.json").files_in("input", {".json"})};
  d.spec.outputs = {{"LAYOUT", types::LAYOUT}};
  d.spec.pure = false;  // the file can change
  d.run = [](const Inputs& in, Context& ctx) -> Outputs {
    const fs::path file = under(ctx.input_dir(), in.string("file"));
    const nlohmann::json j = read_json(file, "layout");  // its errors name the file
    try {
      return {std::static_pointer_cast<Object>(std::make_shared<Layout>(layout_from_json(j)))};
    } catch (const Error& e) {
      throw Error(file.string() + ": " + e.what());
    }
  };
  return d;
}

NodeDef save_layout() {
  NodeDef d = node("SaveLayout", "Save Layout", "interaction",
                   "Writes a layout as <prefix>_<counter>.json under the output folder; LoadLayout reads it back.");
  d.spec.inputs = {InputSpec::Link("layout", types::LAYOUT), InputSpec::String("filename_prefix", "layout")};
  d.spec.output_node = true;
  d.run = [](const Inputs& in, Context& ctx) -> Outputs {
    const std::string text = layout_to_json(*in.object<Layout>("layout")).dump(2) + "\n";
    fs::path target = path_inside(ctx.output_dir(), in.string("filename_prefix"), "filename_prefix");
    ctx.add_file(write_numbered_file(target.parent_path(), target.filename().string(), ".json",
                                     [&](const fs::path& temp) { std::ofstream(temp) << text; }),
                 "output");
    return {};
  };
  return d;
}

// The node behind the web editor's layout canvas (web/cozy/layout_canvas.js):
// the widget writes the layout JSON into `layout`; a graph file may too.
NodeDef layout_canvas_node() {
  NodeDef d = node("LayoutCanvas", "Layout Canvas", "interaction",
                   "A layout drawn with the mouse in the web editor (add, drag, scale, rotate, colour, class, "
                   "texture), or written as layout JSON (docs/interaction.md). The editor keeps every edit as an "
                   "interaction log in the node's properties, which ReplayInteractions replays headless.");
  d.spec.inputs = {InputSpec::String("layout", R"({"format": "cozy-layout", "version": 1, "background": "#f4f1ea", "shapes": []})")
                       .multiline_text()
                       .help("the layout as JSON (format cozy-layout)")};
  d.spec.outputs = {{"LAYOUT", types::LAYOUT}};
  d.run = [](const Inputs& in, Context&) -> Outputs {
    const nlohmann::json j = nlohmann::json::parse(in.string("layout"), nullptr, false);
    if (j.is_discarded()) throw Error("layout is not valid JSON");
    return {std::static_pointer_cast<Object>(std::make_shared<Layout>(layout_from_json(j)))};
  };
  return d;
}

NodeDef replay_node() {
  NodeDef d = node("ReplayInteractions", "Replay Interactions", "interaction",
                   "Applies a recorded editing session to a layout: a JSON list of operations (add, drag, move, "
                   "scale, rotate, recolor, retexture, reclass, delete, reorder), from a file in the input folder or written "
                   "inline. The same log gives the same layout, so a session re-runs headless.");
  d.spec.inputs = {InputSpec::Link("layout", types::LAYOUT).optional(),
                   InputSpec::String("log_file", "").help("a file in the input folder; empty: use log"),
                   InputSpec::String("log", "").multiline_text().help("the operations as JSON")};
  d.spec.outputs = {{"LAYOUT", types::LAYOUT}};
  d.spec.pure = false;  // the file can change
  d.run = [](const Inputs& in, Context& ctx) -> Outputs {
    auto layout = copy_of(in, "layout");
    nlohmann::json log;
    if (!in.string("log_file").empty()) {
      log = read_json(under(ctx.input_dir(), in.string("log_file")), "interaction log");
    } else {
      log = nlohmann::json::parse(in.string("log"), nullptr, false);
      if (log.is_discarded()) throw Error("log is not valid JSON");
    }
    replay(*layout, log);
    return {std::static_pointer_cast<Object>(layout)};
  };
  return d;
}

}  // namespace

// A random layout of 1 to max_shapes non-overlapping-ish shapes.
Layout random_layout(at::Generator& gen, std::int64_t max_shapes, const std::vector<std::string>& classes) {
  auto uniform = [&](double lo, double hi) { return lo + (hi - lo) * at::rand({1}, gen).item<double>(); };
  auto pick = [&](std::int64_t n) {
    return at::randint(n, {1}, gen, at::TensorOptions(at::kLong)).item<std::int64_t>();
  };
  static const char* kinds[] = {"rectangle", "ellipse", "triangle"};
  static const char* textures[] = {"solid", "stripes", "checker", "dots", "noise"};
  Layout layout;
  layout.background = {0.08, 0.08, 0.1};
  const std::int64_t n = 1 + pick(max_shapes);
  for (std::int64_t i = 0; i < n; ++i) {
    LayoutShape s;
    s.id = "s" + std::to_string(i + 1);
    s.kind = kinds[pick(3)];
    // Slots across the canvas, so that shapes overlap little.
    const double slot = (double(i) + 0.5) / double(n);
    s.cx = n == 1 ? uniform(0.35, 0.65) : slot + uniform(-0.05, 0.05);
    s.cy = uniform(0.35, 0.65);
    const double side = n == 1 ? uniform(0.35, 0.6) : uniform(0.6, 0.9) / double(n);
    s.width = side * uniform(0.85, 1.15);
    s.height = side * uniform(0.85, 1.15) * (n == 1 ? 1.0 : 1.3);
    s.rotation = uniform(-30, 30);
    s.color = {uniform(0.25, 1), uniform(0.25, 1), uniform(0.25, 1)};
    s.texture = {textures[pick(5)], uniform(0.03, 0.07), uniform(0, 180)};
    s.object_class = classes.at(static_cast<std::size_t>(pick(static_cast<std::int64_t>(classes.size()))));
    s.z = i;
    layout.shapes.push_back(s);
  }
  return layout;
}

namespace {

NodeDef random_layout_node() {
  NodeDef d = node("RandomLayout", "Random Layout", "interaction",
                   "A random layout of 1 to max_shapes shapes (kinds, places, sizes, rotations, colours, textures "
                   "and classes drawn from a seed), side by side on a dark background.");
  d.spec.inputs = {InputSpec::Int("seed", 0).range(0, 2147483647), InputSpec::Int("max_shapes", 3).range(1, 8),
                   InputSpec::String("classes", "").help("comma-separated; empty: the 10 Fashion-MNIST classes")};
  d.spec.outputs = {{"LAYOUT", types::LAYOUT}};
  d.run = [](const Inputs& in, Context&) -> Outputs {
    std::vector<std::string> classes = split(in.string("classes"));
    if (classes.empty()) classes = fashion_classes();
    at::Generator gen = seeded_generator(in.integer("seed"));
    return {std::static_pointer_cast<Object>(
        std::make_shared<Layout>(random_layout(gen, in.integer("max_shapes"), classes)))};
  };
  return d;
}

NodeDef render_node() {
  NodeDef d = node("RenderLayout", "Render Layout", "interaction",
                   "A layout drawn on the run's device: a preview IMAGE (colour times texture over the background), "
                   "one MASK per shape (its visible part, in layout order: [shapes, 1, H, W]), a class map (a MASK "
                   "[1, 1, H, W] holding labels, not values in [0, 1]: 1 + the index of each pixel's class in "
                   "classes, 0 for none), a colour map (IMAGE of flat colours) and a texture map (a MASK of labels: "
                   "1 solid, 2 stripes, 3 checker, 4 dots, 5 noise, 0 none).");
  d.spec.inputs = {InputSpec::Link("layout", types::LAYOUT), InputSpec::Int("width", 256).range(8, 8192),
                   InputSpec::Int("height", 256).range(8, 8192),
                   InputSpec::String("classes", "").help("comma-separated; empty: the 10 Fashion-MNIST classes")};
  d.spec.outputs = {{"preview", types::IMAGE},
                    {"instances", types::MASK},
                    {"class_map", types::MASK},
                    {"color_map", types::IMAGE},
                    {"texture_map", types::MASK}};
  d.run = [](const Inputs& in, Context& ctx) -> Outputs {
    std::vector<std::string> classes = split(in.string("classes"));
    if (classes.empty()) classes = fashion_classes();
    Rendered r = render(*in.object<Layout>("layout"), in.integer("width"), in.integer("height"), ctx.device(), classes);
    // The MASK convention, [B, 1, H, W]: one mask a shape; the maps as one
    // mask each, holding labels rather than values in [0, 1].
    return {r.preview, r.instances.unsqueeze(1), r.class_map.unsqueeze(1), r.color_map, r.texture_map.unsqueeze(1)};
  };
  return d;
}

// ------------------------------------------------------------------ scenes

}  // namespace

// Each shape's object drawn by the generator, cut to its silhouette, placed
// in the shape's box (affine: place, size, rotation), tinted with its colour
// and patterned with its texture, painted in z order over the background.
Scene compose(const Layout& layout, const Generator& g, std::int64_t width, std::int64_t height, std::int64_t seed,
              c10::Device device, double texture_strength, bool clip, std::int64_t candidates,
              const Classifier* critic) {
  const at::TensorOptions o = at::TensorOptions().dtype(at::kFloat).device(device);
  const std::int64_t n = static_cast<std::int64_t>(layout.shapes.size());
  Scene scene;
  at::Tensor bg = at::tensor({layout.background[0], layout.background[1], layout.background[2]}, o).view({3, 1, 1});
  at::Tensor image = bg.expand({3, height, width}).clone();
  at::Tensor owner = at::full({height, width}, -1, o.dtype(at::kLong));
  scene.instances = at::zeros({n, height, width}, o);
  if (n == 0) {
    scene.image = image.unsqueeze(0);
    return scene;
  }
  std::vector<std::int64_t> labels;
  for (const auto& s : layout.shapes) {
    if (g.num_classes() == 0) {
      labels.push_back(0);
      continue;
    }
    if (s.object_class.empty())
      throw Error("shape '" + s.id + "' has no object class: ComposeScene draws one per shape");
    const std::int64_t k = class_index(g.class_names(), s.object_class);
    if (k < 0) {
      std::string names;
      for (const auto& c : g.class_names()) names += (names.empty() ? "" : ", ") + c;
      throw Error("shape '" + s.id + "': class '" + s.object_class + "' is not one of the generator's: " + names);
    }
    labels.push_back(k);
  }
  std::vector<std::int64_t> critic_labels;
  if (critic) {
    for (const auto& s : layout.shapes) {
      critic_labels.push_back(class_index(critic->class_names(), s.object_class));
      if (critic_labels.back() < 0)
        throw Error("shape '" + s.id + "': class '" + s.object_class + "' is not one of the critic's");
    }
  }
  // `candidates` objects per shape (candidates = 1: one draw, as before).
  const std::int64_t k_count = std::max<std::int64_t>(1, candidates);
  std::vector<std::int64_t> drawn_labels;
  for (std::int64_t label : labels)
    for (std::int64_t k = 0; k < k_count; ++k) drawn_labels.push_back(label);
  at::Generator gen = seeded_generator(seed);
  at::Tensor z = at::randn({n * k_count, g.latent_size()}, gen, at::kFloat);
  at::Tensor objects = g.generate(z, g.num_classes() ? at::tensor(drawn_labels, at::kLong) : at::Tensor()).to(device);
  if (objects.size(1) == 3)  // a colour generator: its luminance is the shading
    objects = (objects * at::tensor({0.299f, 0.587f, 0.114f}, o).view({1, 3, 1, 1})).sum(1, true);
  else
    objects = objects.narrow(1, 0, 1);
  // An object's grey levels placed in the shape's box on a w x h canvas: its
  // bounding box stretched to fill the shape's box, but by no more than 1.5
  // times in one direction than the other (the box is widened instead), so
  // that objects keep their look. [H, W]; f is the shape's frame on the canvas.
  auto place = [&](const at::Tensor& object, const LayoutShape& shape, const Frame& f) {
    const std::int64_t w = width, h = height;
    const double side_y = double(object.size(2)), side_x = double(object.size(3));
    double x0 = 0, x1 = side_x, y0 = 0, y1 = side_y;
    at::Tensor on = (object[0][0] > 0.1).nonzero();
    if (on.size(0) > 0) {
      at::Tensor lo = std::get<0>(on.min(0)).cpu(), hi = std::get<0>(on.max(0)).cpu();
      y0 = double(lo[0].item<std::int64_t>()), x0 = double(lo[1].item<std::int64_t>());
      y1 = double(hi[0].item<std::int64_t>() + 1), x1 = double(hi[1].item<std::int64_t>() + 1);
    }
    const double box_aspect = (shape.width * double(w)) / (shape.height * double(h));
    const double crop_aspect = (x1 - x0) / (y1 - y0), limit = 1.5;
    if (box_aspect / crop_aspect > limit) {  // box much wider than the object: widen the crop
      const double grow = ((y1 - y0) * box_aspect / limit - (x1 - x0)) / 2;
      x0 -= grow, x1 += grow;
    } else if (crop_aspect / box_aspect > limit) {  // box much taller: heighten the crop
      const double grow = ((x1 - x0) / (box_aspect * limit) - (y1 - y0)) / 2;
      y0 -= grow, y1 += grow;
    }
    // Shape frame [-1, 1] -> crop rectangle -> the object's normalised coordinates.
    at::Tensor gx = ((x0 + (f.lx + 1) / 2 * (x1 - x0)) / side_x) * 2 - 1;
    at::Tensor gy = ((y0 + (f.ly + 1) / 2 * (y1 - y0)) / side_y) * 2 - 1;
    at::Tensor grid = at::stack({gx, gy}, -1).unsqueeze(0);
    return at::grid_sampler(object, grid, /*bilinear*/ 0, /*zeros*/ 0, false)[0][0];
  };
  // A candidate object placed for a shape: its coverage (alpha), its solid
  // pixels and its shading (grey levels with mean 1 over the object).
  struct Placed {
    at::Tensor alpha, solid, shade;
  };
  auto prepare = [&](std::int64_t j, const LayoutShape& s, const Frame& f, const at::Tensor& mask) {
    at::Tensor placed = place(objects[j].unsqueeze(0), s, f);
    Placed p;
    p.alpha = ((placed - 0.05) / 0.15).clamp(0, 1) * (clip ? mask.to(at::kFloat) : at::ones_like(placed));
    p.solid = p.alpha > 0.5;
    // Shading with mean 1 over the object, so that the object's mean colour is the colour asked for.
    at::Tensor mean = placed.masked_select(p.solid).mean();
    p.shade = p.solid.any().item<bool>() ? (placed / mean.clamp_min(1e-3)).clamp(0.4, 1.6) : at::ones_like(placed);
    return p;
  };
  for (const LayoutShape* s : layout.drawing_order()) {
    const std::int64_t i = s - layout.shapes.data();
    const Frame frame = local_frame(*s, width, height, o);
    const at::Tensor shape_mask = inside(*s, frame);
    std::int64_t best = 0;
    Placed chosen;
    if (k_count > 1 && critic) {
      // Of the candidates the critic recognises as the shape's class (with
      // probability kCriticConfidence or more, read as the fidelity measure
      // reads them: shading on the solid pixels, upright, in the shape's
      // box), the one that covers the shape best (IoU); if it recognises
      // none, the one it believes most.
      const std::int64_t critic_label = critic_labels[static_cast<std::size_t>(i)];
      std::vector<Placed> placed;
      std::vector<at::Tensor> greys, solids;
      for (std::int64_t k = 0; k < k_count; ++k) {
        placed.push_back(prepare(i * k_count + k, *s, frame, shape_mask));
        greys.push_back(placed.back().shade * placed.back().solid);
        solids.push_back(placed.back().solid);
      }
      at::Tensor crops = read_box(*s, at::stack(greys).unsqueeze(1), critic->image_shape());
      at::Tensor belief =
          at::softmax(critic->logits(crops.to(critic->device())), 1).select(1, critic_label).to(o.device());
      at::Tensor solid = at::stack(solids);
      at::Tensor iou = (solid & shape_mask).sum({1, 2}).to(at::kFloat) / (solid | shape_mask).sum({1, 2}).clamp_min(1);
      best = at::where(belief >= kCriticConfidence, 2 + iou, belief).argmax().item<std::int64_t>();
      chosen = placed[static_cast<std::size_t>(best)];
    } else {
      if (k_count > 1) {
        // Of the candidates, the one whose proportions are closest to the
        // shape's box: the least stretched when placed. (Measured against the
        // alternatives in docs/benchmarks.md#scenes: the best IoU with the
        // shape, or the least cut away, raise the IoU but lower the class
        // agreement.)
        const double box_aspect = (s->width * double(width)) / (s->height * double(height));
        double best_score = -1e300;
        for (std::int64_t k = 0; k < k_count; ++k) {
          at::Tensor on = (objects[i * k_count + k][0] > 0.1).nonzero();
          if (on.size(0) == 0) continue;
          at::Tensor lo = std::get<0>(on.min(0)).cpu(), hi = std::get<0>(on.max(0)).cpu();
          const double oh = double(hi[0].item<std::int64_t>() - lo[0].item<std::int64_t>() + 1);
          const double ow = double(hi[1].item<std::int64_t>() - lo[1].item<std::int64_t>() + 1);
          const double score = -std::abs(std::log((ow / oh) / box_aspect));
          if (score > best_score) best_score = score, best = k;
        }
      }
      chosen = prepare(i * k_count + best, *s, frame, shape_mask);
    }
    const at::Tensor &alpha = chosen.alpha, &solid = chosen.solid, &shade = chosen.shade;
    at::Tensor colour = at::tensor({s->color[0], s->color[1], s->color[2]}, o).view({3, 1, 1});
    at::Tensor paint = (colour * shade * modulation(*s, width, height, o, texture_strength)).clamp(0, 1);
    image = image * (1 - alpha) + paint * alpha;
    owner.masked_fill_(solid, i);
  }
  for (std::int64_t i = 0; i < n; ++i) scene.instances[i] = (owner == i).to(at::kFloat);
  scene.image = image.unsqueeze(0);
  return scene;
}

namespace {

InputSpec candidates_input() {
  return InputSpec::Int("candidates", 8)
      .range(1, 64)
      .help(
          "objects drawn per shape; the one the critic finds most like its class, or without one the least "
          "stretched, is used (1: the first draw)");
}
InputSpec critic_input() {
  return InputSpec::Link("critic", types::CLASSIFIER)
      .optional()
      .help("a classifier that picks, of the candidates, the object most like the shape's class");
}

NodeDef compose_node() {
  NodeDef d = node("ComposeScene", "Compose Scene", "interaction",
                   "A scene from a layout: each shape's object drawn by a class-conditional generator (its class), "
                   "cut to its silhouette, placed in the shape's box with its place, size and rotation (an affine "
                   "resampling, on the run's device), tinted with its colour and patterned with its texture, over the "
                   "layout's background, in z order. Of `candidates` objects drawn for each shape it uses, given a "
                   "critic (a classifier), the one covering the shape best of those the critic gives the shape's "
                   "class with probability 0.8 or more (else the one it believes most); without one, the one whose "
                   "proportions are closest to the shape's box (the least stretched). Also one MASK per shape: the "
                   "object's visible pixels.");
  d.spec.inputs = {InputSpec::Link("layout", types::LAYOUT),
                   InputSpec::Link("generator", types::GENERATOR),
                   InputSpec::Int("width", 256).range(8, 8192),
                   InputSpec::Int("height", 256).range(8, 8192),
                   InputSpec::Int("seed", 0).range(0, 2147483647),
                   InputSpec::Float("texture_strength", kTextureStrength).range(0, 1).with_step(0.05),
                   InputSpec::Choice("fit", {"clip", "box"})
                       .help("clip: the object is cut to the shape; box: it fills the shape's box, uncut"),
                   candidates_input(),
                   critic_input()};
  d.spec.outputs = {{"IMAGE", types::IMAGE}, {"instances", types::MASK}};
  d.run = [](const Inputs& in, Context& ctx) -> Outputs {
    Scene s = compose(*in.object<Layout>("layout"), *in.object<Generator>("generator"), in.integer("width"),
                      in.integer("height"), in.integer("seed"), ctx.device(), in.number("texture_strength"),
                      in.string("fit") == "clip", in.integer("candidates"),
                      in.has("critic") ? in.object<Classifier>("critic").get() : nullptr);
    return {s.image, s.instances.unsqueeze(1)};  // MASK: one [1, H, W] a shape
  };
  return d;
}

// ------------------------------------------------------------------ fidelity

}  // namespace

at::Tensor read_box(const LayoutShape& s, const at::Tensor& grey, const std::vector<std::int64_t>& image_shape) {
  const std::int64_t n = grey.size(0), height = grey.size(2), width = grey.size(3);
  at::Tensor grid = box_grid(s, width, height, image_shape.at(1), kReadMargin, grey.options());
  at::Tensor crop = at::grid_sampler(grey, grid.expand({n, -1, -1, -1}), 0, 0, false);
  crop = crop / crop.amax({1, 2, 3}, true).clamp_min(1e-6);
  return image_shape.at(0) == 3 ? crop.expand({n, 3, -1, -1}) : crop;
}

// For each shape: the classifier's class on its box (read upright, the object
// bright on black as in the classifier's data), the mean colour of its
// object pixels against the colour asked, and the IoU of its object pixels
// with the visible part of the shape.
std::vector<ShapeScore> fidelity(const Layout& layout, const at::Tensor& image, const at::Tensor& instances,
                                 const Classifier& classifier, Reading reading) {
  const std::int64_t height = image.size(2), width = image.size(3);
  const at::TensorOptions o = at::TensorOptions().dtype(at::kFloat).device(image.device());
  Rendered drawn = render(layout, width, height, image.device(), {});
  at::Tensor bg = at::tensor({layout.background[0], layout.background[1], layout.background[2]}, o).view({1, 3, 1, 1});
  at::Tensor distance = (image - bg).abs().amax(1, true);  // [1, 1, H, W]: how far from the background
  const auto shape = classifier.image_shape();
  std::vector<ShapeScore> scores;
  for (std::size_t i = 0; i < layout.shapes.size(); ++i) {
    const LayoutShape& s = layout.shapes[i];
    ShapeScore score;
    score.id = s.id;
    at::Tensor mine = instances[static_cast<std::int64_t>(i)] > 0.5;
    at::Tensor crop;
    if (reading == Reading::shading) {
      // The object's own grey levels: the image over the tint the layout asks
      // for (colour x texture, least squares over R, G, B) on its pixels.
      at::Tensor tint = at::tensor({s.color[0], s.color[1], s.color[2]}, o).view({3, 1, 1}) *
                        modulation(s, width, height, o, kTextureStrength);
      at::Tensor grey = (image[0] * tint).sum(0) / (tint * tint).sum(0).clamp_min(1e-4) * mine.to(at::kFloat);
      crop = read_box(s, grey.view({1, 1, height, width}), shape);
    } else {
      at::Tensor grid = box_grid(s, width, height, shape[1], kReadMargin, o);
      crop = at::grid_sampler(distance, grid, 0, 0, false);
      crop = at::avg_pool2d(crop, 3, 1, 1, false, false);  // the texture is finer than the object's shape
      crop = crop / crop.amax().clamp_min(1e-6);
      if (shape[0] == 3) crop = crop.expand({1, 3, shape[1], shape[2]});
    }
    const std::int64_t k = classifier.logits(crop).argmax(1).item<std::int64_t>();
    score.predicted = classifier.class_names().at(static_cast<std::size_t>(k));
    score.class_ok = class_index({score.predicted}, s.object_class) == 0;
    if (mine.any().item<bool>()) {
      at::Tensor mean = image[0].masked_select(mine.unsqueeze(0).expand({3, height, width})).view({3, -1}).mean(1);
      at::Tensor want = at::tensor({s.color[0], s.color[1], s.color[2]}, o);
      score.color_error = (mean - want).abs().mean().item<double>();
    } else {
      score.color_error = 1;
    }
    at::Tensor visible = drawn.instances[static_cast<std::int64_t>(i)] > 0.5;
    const double inter = (mine & visible).sum().item<double>(), uni = (mine | visible).sum().item<double>();
    score.iou = uni > 0 ? inter / uni : 0;
    score.texture_predicted = judge_texture(s, image, mine);
    score.texture_ok = score.texture_predicted == s.texture.kind;
    scores.push_back(score);
  }
  return scores;
}

std::string judge_texture(const LayoutShape& shape, const at::Tensor& image, const at::Tensor& mine,
                          double min_correlation) {
  const std::int64_t height = image.size(2), width = image.size(3);
  if (mine.sum().item<std::int64_t>() < 16) return "solid";  // too few pixels to see a pattern
  const at::TensorOptions o = at::TensorOptions().dtype(at::kFloat).device(image.device());
  at::Tensor luma = (image[0] * at::tensor({0.299f, 0.587f, 0.114f}, o).view({3, 1, 1})).sum(0);
  at::Tensor seen = luma.masked_select(mine);
  seen = seen - seen.mean();
  const double seen_norm = seen.norm().item<double>();
  if (seen_norm < 1e-6) return "solid";
  std::string best = "solid";
  double best_correlation = min_correlation;
  for (const char* kind : {"stripes", "checker", "dots", "noise"}) {
    LayoutShape asked = shape;
    asked.texture.kind = kind;
    at::Tensor t = pattern(asked, width, height, o).masked_select(mine);
    t = t - t.mean();
    const double t_norm = t.norm().item<double>();
    if (t_norm < 1e-6) continue;
    const double correlation = (seen * t).sum().item<double>() / (seen_norm * t_norm);
    if (correlation > best_correlation) best_correlation = correlation, best = kind;
  }
  return best;
}

at::Tensor estimated_instances(const Layout& layout, const at::Tensor& image) {
  const std::int64_t height = image.size(2), width = image.size(3);
  const at::TensorOptions o = at::TensorOptions().dtype(at::kFloat).device(image.device());
  Rendered drawn = render(layout, width, height, image.device(), {});
  at::Tensor bg = at::tensor({layout.background[0], layout.background[1], layout.background[2]}, o).view({1, 3, 1, 1});
  at::Tensor far = (image - bg).abs().amax(1)[0] > 0.1;  // [H, W]
  at::Tensor widened = at::max_pool2d(drawn.instances.unsqueeze(1), {5, 5}, {1, 1}, {2, 2}).squeeze(1);
  return ((widened > 0.5) & far.unsqueeze(0))
      .to(at::kFloat)
      .narrow(0, 0, static_cast<std::int64_t>(layout.shapes.size()));
}

namespace {

InputSpec reading_input() {
  return InputSpec::Choice("reading", {"shading", "distance"})
      .help(
          "what the classifier reads on a shape's box: shading, the object's grey levels (the image over the "
          "colour and texture asked); distance, how far each pixel is from the background");
}
Reading reading_of(const Inputs& in) {
  return in.string("reading") == "distance" ? Reading::distance : Reading::shading;
}

NodeDef fidelity_node() {
  NodeDef d = node("LayoutFidelity", "Layout Fidelity", "metrics",
                   "Does an image follow its layout? For each shape: does the classifier give its class on its box, "
                   "how far is the mean colour of its object pixels from the colour asked (mean absolute difference "
                   "over R, G, B, on [0, 1]), and the IoU of its object pixels (instances, from ComposeScene) with "
                   "the visible part of the shape; and whether its texture is the one asked (the luminance of its "
                   "object pixels correlated with each texture's template at the shape's scale and angle: the best "
                   "at 0.2 or more, else solid). Without instances (an image from LayoutToImage), a shape's object "
                   "pixels are those farther than 0.1 from the background within its visible part widened by 2 "
                   "pixels.");
  d.spec.inputs = {InputSpec::Link("layout", types::LAYOUT), InputSpec::Link("image", types::IMAGE),
                   InputSpec::Link("instances", types::MASK).optional(),
                   InputSpec::Link("classifier", types::CLASSIFIER), reading_input()};
  d.spec.outputs = {{"class_agreement", types::FLOAT},
                    {"color_error", types::FLOAT},
                    {"iou", types::FLOAT},
                    {"report", types::STRING},
                    {"texture_agreement", types::FLOAT}};
  d.spec.output_node = true;
  d.run = [](const Inputs& in, Context& ctx) -> Outputs {
    auto layout = in.object<Layout>("layout");
    const at::Tensor& image = in.image("image");
    if (image.dim() != 4 || image.size(0) != 1 || image.size(1) != 3)
      throw Error("LayoutFidelity judges one RGB image [1, 3, H, W], not " + c10::str(image.sizes()));
    const at::Tensor instances =
        in.has("instances") ? in.mask("instances").squeeze(1) : estimated_instances(*layout, image.to(at::kFloat));
    if (instances.size(0) != static_cast<std::int64_t>(layout->shapes.size()))
      throw Error("instances has " + std::to_string(instances.size(0)) + " masks for " +
                  std::to_string(layout->shapes.size()) + " shapes");
    auto scores = fidelity(*layout, image.to(at::kFloat), instances.to(image.device()),
                           *in.object<Classifier>("classifier"), reading_of(in));
    Summary sum;
    sum.add(scores);
    nlohmann::json j = sum.json();
    j["metric"] = "layout_fidelity";
    for (const auto& s : scores)
      j["per_shape"][s.id] = {{"class_ok", s.class_ok},       {"predicted", s.predicted},
                              {"color_error", s.color_error}, {"iou", s.iou},
                              {"texture_ok", s.texture_ok},   {"texture_predicted", s.texture_predicted}};
    ctx.log(LogLevel::info, j.dump());
    return {j["class_agreement"].get<double>(), j["color_error"].get<double>(), j["iou"].get<double>(), j.dump(),
            j["texture_agreement"].get<double>()};
  };
  return d;
}

NodeDef scene_fidelity_node() {
  NodeDef d = node("SceneFidelity", "Scene Fidelity (random layouts)", "metrics",
                   "How well images follow their layouts, on count random layouts of 1 to max_shapes shapes "
                   "(RandomLayout from seed, seed + 1, ...): the share of shapes whose class the classifier agrees "
                   "with, the mean colour error, the mean IoU, the share whose texture is the one asked (as "
                   "LayoutFidelity judges them); and images/s. The images come from ComposeScene with "
                   "the generator (size x size), or, given a layout_model, from LayoutToImage (at the model's size; "
                   "object pixels are then those far from the background within each shape, widened by 2 pixels).");
  d.spec.inputs = {InputSpec::Link("generator", types::GENERATOR).optional(),
                   InputSpec::Link("classifier", types::CLASSIFIER),
                   InputSpec::Int("count", 200).range(1, 100000),
                   InputSpec::Int("max_shapes", 3).range(1, 8),
                   InputSpec::Int("size", 128).range(16, 4096),
                   InputSpec::Int("seed", 0).range(0, 2147483647),
                   InputSpec::Choice("fit", {"clip", "box"}),
                   InputSpec::Link("layout_model", "LAYOUT_MODEL").optional(),
                   reading_input(),
                   candidates_input(),
                   critic_input()};
  d.spec.outputs = {{"class_agreement", types::FLOAT},
                    {"color_error", types::FLOAT},
                    {"iou", types::FLOAT},
                    {"report", types::STRING},
                    {"texture_agreement", types::FLOAT}};
  d.spec.output_node = true;
  d.run = [](const Inputs& in, Context& ctx) -> Outputs {
    std::shared_ptr<Generator> g = in.has("generator") ? in.object<Generator>("generator") : nullptr;
    std::shared_ptr<LayoutModel> learned = in.has("layout_model") ? in.object<LayoutModel>("layout_model") : nullptr;
    if (!g && !learned) throw Error("SceneFidelity needs a generator (ComposeScene) or a layout_model (LayoutToImage)");
    const bool clip = in.string("fit") == "clip";
    auto c = in.object<Classifier>("classifier");
    std::shared_ptr<Classifier> critic = in.has("critic") ? in.object<Classifier>("critic") : nullptr;
    const std::int64_t count = in.integer("count"), seed = in.integer("seed");
    const std::int64_t size = learned ? learned->size() : in.integer("size");
    const std::vector<std::string>& classes = learned ? learned->class_names() : g->class_names();
    Summary sum;
    const auto start = std::chrono::steady_clock::now();
    for (std::int64_t i = 0; i < count; ++i) {
      ctx.check_cancelled();
      at::Generator gen = seeded_generator(seed + i);
      Layout layout = random_layout(gen, in.integer("max_shapes"), classes);
      if (learned) {
        at::Tensor image = learned->generate(layout, ctx.device());
        sum.add(fidelity(layout, image, estimated_instances(layout, image), *c, reading_of(in)));
      } else {
        Scene scene = compose(layout, *g, size, size, seed + i, ctx.device(), kTextureStrength, clip,
                              in.integer("candidates"), critic.get());
        sum.add(fidelity(layout, scene.image, scene.instances, *c, reading_of(in)));
      }
      ctx.progress(i + 1, count);
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    nlohmann::json j = sum.json();
    j.update({{"metric", "scene_fidelity"},
              {"maker", learned ? "LayoutToImage" : "ComposeScene"},
              {"layouts", count},
              {"size", size},
              {"reading", in.string("reading")},
              {"seconds", seconds},
              {"made_and_judged_per_s", double(count) / seconds}});
    if (!learned) {
      j["fit"] = in.string("fit");
      j["candidates"] = in.integer("candidates");
      j["critic"] = critic != nullptr;
    }
    ctx.log(LogLevel::info, j.dump());
    return {j["class_agreement"].get<double>(), j["color_error"].get<double>(), j["iou"].get<double>(), j.dump(),
            j["texture_agreement"].get<double>()};
  };
  return d;
}

}  // namespace

void register_feedback_nodes(Registrar& r);
void register_layout_gan_nodes(Registrar& r);

void register_nodes(Registrar& r) {
  r.add(shape_node());
  r.add(combine());
  r.add(background());
  r.add(load_layout());
  r.add(save_layout());
  r.add(replay_node());
  r.add(layout_canvas_node());
  r.add(random_layout_node());
  r.add(render_node());
  r.add(compose_node());
  r.add(fidelity_node());
  r.add(scene_fidelity_node());
  register_feedback_nodes(r);
  register_layout_gan_nodes(r);
}

}  // namespace cozy::interaction

COZY_PLUGIN("interaction", "0.1.0", cozy::interaction::register_nodes)
