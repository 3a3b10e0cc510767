#include "layout_io.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cozy/error.hpp>
#include <cstdio>
#include <map>
#include <set>

namespace cozy::interaction {

namespace {
const std::set<std::string> kKinds = {"rectangle", "ellipse", "triangle"};
const std::set<std::string> kTextures = {"solid", "stripes", "checker", "dots", "noise"};

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

template <class T>
T get(const nlohmann::json& j, const char* key, T fallback, const std::string& where) {
  if (!j.contains(key)) return fallback;
  try {
    return j.at(key).get<T>();
  } catch (const nlohmann::json::exception&) {
    throw Error(where + ": '" + key + "' has the wrong type (" + j.at(key).dump() + ")");
  }
}

std::pair<double, double> pair_of(const nlohmann::json& j, const char* key, std::pair<double, double> fallback,
                                  const std::string& where) {
  if (!j.contains(key)) return fallback;
  const auto& v = j.at(key);
  if (!v.is_array() || v.size() != 2 || !v[0].is_number() || !v[1].is_number())
    throw Error(where + ": '" + key + "' must be [x, y] numbers, not " + v.dump());
  return {v[0].get<double>(), v[1].get<double>()};
}
}  // namespace

std::array<double, 3> parse_color(const std::string& text) {
  static const std::map<std::string, std::array<int, 3>> names = {
      {"black", {0, 0, 0}},      {"white", {255, 255, 255}}, {"red", {220, 40, 30}},     {"green", {40, 160, 60}},
      {"blue", {40, 80, 210}},   {"yellow", {240, 210, 40}}, {"orange", {240, 140, 30}}, {"purple", {140, 60, 180}},
      {"pink", {240, 130, 180}}, {"brown", {130, 80, 40}},   {"gray", {128, 128, 128}},  {"grey", {128, 128, 128}},
      {"cyan", {40, 200, 220}},  {"magenta", {210, 50, 200}}};
  const std::string t = lower(text);
  auto bad = [&] { return Error("colour '" + text + "' does not parse: use #rrggbb, #rgb, rgb(r, g, b) or a name"); };
  std::array<int, 3> c{};
  if (auto it = names.find(t); it != names.end()) {
    c = it->second;
  } else if (!t.empty() && t[0] == '#' && (t.size() == 7 || t.size() == 4)) {
    for (std::size_t i = 1; i < t.size(); ++i)
      if (!std::isxdigit(static_cast<unsigned char>(t[i]))) throw bad();
    for (int k = 0; k < 3; ++k) {
      if (t.size() == 7)
        c[k] = std::stoi(t.substr(1 + 2 * k, 2), nullptr, 16);
      else
        c[k] = 17 * std::stoi(t.substr(1 + k, 1), nullptr, 16);
    }
  } else {
    int r = 0, g = 0, b = 0;
    char close = 0;
    if (std::sscanf(t.c_str(), "rgb(%d ,%d ,%d %c", &r, &g, &b, &close) != 4 || close != ')') throw bad();
    c = {r, g, b};
    for (int v : c)
      if (v < 0 || v > 255) throw bad();
  }
  return {c[0] / 255.0, c[1] / 255.0, c[2] / 255.0};
}

std::string color_text(const std::array<double, 3>& rgb) {
  char out[8];
  std::snprintf(out, sizeof out, "#%02x%02x%02x", int(std::lround(rgb[0] * 255)), int(std::lround(rgb[1] * 255)),
                int(std::lround(rgb[2] * 255)));
  return out;
}

void check_shape(const LayoutShape& s) {
  const std::string name = "shape '" + s.id + "'";
  if (s.id.empty()) throw Error("a shape needs an id");
  if (!kKinds.count(s.kind)) throw Error(name + ": unknown shape '" + s.kind + "' (rectangle, ellipse or triangle)");
  if (!kTextures.count(s.texture.kind))
    throw Error(name + ": unknown texture '" + s.texture.kind + "' (solid, stripes, checker, dots or noise)");
  if (!(s.width > 0) || !(s.height > 0))
    throw Error(name + ": width and height must be positive, not " + std::to_string(s.width) + " x " +
                std::to_string(s.height));
  if (!(s.texture.scale > 0)) throw Error(name + ": texture scale must be positive");
  for (double v : {s.cx, s.cy, s.width, s.height, s.rotation, s.texture.angle})
    if (!std::isfinite(v)) throw Error(name + ": a number is not finite");
}

LayoutShape shape_from_json(const nlohmann::json& j, const std::string& where) {
  if (!j.is_object()) throw Error(where + ": a shape is a JSON object, not " + j.dump());
  LayoutShape s;
  s.id = get<std::string>(j, "id", "", where);
  const std::string named = where + (s.id.empty() ? "" : " ('" + s.id + "')");
  s.kind = get<std::string>(j, "shape", s.kind, named);
  std::tie(s.cx, s.cy) = pair_of(j, "center", {s.cx, s.cy}, named);
  std::tie(s.width, s.height) = pair_of(j, "size", {s.width, s.height}, named);
  s.rotation = get<double>(j, "rotation", 0.0, named);
  if (j.contains("color")) {
    try {
      s.color = parse_color(get<std::string>(j, "color", "", named));
    } catch (const Error& e) {
      throw Error(named + ": " + e.what());
    }
  }
  if (j.contains("texture")) {
    const auto& t = j.at("texture");
    if (t.is_string()) {
      s.texture.kind = t.get<std::string>();
    } else {
      s.texture.kind = get<std::string>(t, "kind", "solid", named);
      s.texture.scale = get<double>(t, "scale", s.texture.scale, named);
      s.texture.angle = get<double>(t, "angle", 0.0, named);
    }
  }
  s.object_class = get<std::string>(j, "class", "", named);
  s.z = get<std::int64_t>(j, "z", 0, named);
  check_shape(s);
  return s;
}

nlohmann::json shape_to_json(const LayoutShape& s) {
  nlohmann::json j = {{"id", s.id},
                      {"shape", s.kind},
                      {"center", {s.cx, s.cy}},
                      {"size", {s.width, s.height}},
                      {"rotation", s.rotation},
                      {"color", color_text(s.color)},
                      {"texture", {{"kind", s.texture.kind}, {"scale", s.texture.scale}, {"angle", s.texture.angle}}},
                      {"z", s.z}};
  if (!s.object_class.empty()) j["class"] = s.object_class;
  return j;
}

Layout layout_from_json(const nlohmann::json& j) {
  if (!j.is_object() || j.value("format", "") != "cozy-layout")
    throw Error("not a Cozy layout: a JSON object with \"format\": \"cozy-layout\" is expected");
  Layout layout;
  if (j.contains("background")) layout.background = parse_color(get<std::string>(j, "background", "", "layout"));
  if (!j.contains("shapes") || !j.at("shapes").is_array()) throw Error("layout: 'shapes' must be an array");
  std::set<std::string> ids;
  for (std::size_t i = 0; i < j.at("shapes").size(); ++i) {
    LayoutShape s = shape_from_json(j.at("shapes")[i], "shape " + std::to_string(i));
    if (!ids.insert(s.id).second) throw Error("layout: two shapes have the id '" + s.id + "'");
    layout.shapes.push_back(std::move(s));
  }
  return layout;
}

nlohmann::json layout_to_json(const Layout& layout) {
  nlohmann::json shapes = nlohmann::json::array();
  for (const auto& s : layout.shapes) shapes.push_back(shape_to_json(s));
  return {{"format", "cozy-layout"}, {"version", 1}, {"background", color_text(layout.background)}, {"shapes", shapes}};
}

void replay(Layout& layout, const nlohmann::json& log) {
  const nlohmann::json* ops = &log;
  if (log.is_object()) {
    if (log.value("format", "") != "cozy-interaction-log" || !log.contains("operations"))
      throw Error("not a Cozy interaction log: {\"format\": \"cozy-interaction-log\", \"operations\": [...]} expected");
    ops = &log.at("operations");
  }
  if (!ops->is_array()) throw Error("an interaction log's operations must be an array");
  for (std::size_t i = 0; i < ops->size(); ++i) {
    const nlohmann::json& op = (*ops)[i];
    const std::string kind = op.is_object() ? op.value("op", "") : "";
    const std::string where = "operation " + std::to_string(i) + " (" + (kind.empty() ? "?" : kind) + ")";
    if (kind == "add") {
      if (!op.contains("shape")) throw Error(where + ": no 'shape'");
      LayoutShape s = shape_from_json(op.at("shape"), where);
      if (layout.find(s.id)) throw Error(where + ": a shape '" + s.id + "' is already in the layout");
      layout.shapes.push_back(std::move(s));
      continue;
    }
    const std::string id = op.is_object() ? op.value("id", "") : "";
    auto it = std::find_if(layout.shapes.begin(), layout.shapes.end(), [&](const auto& s) { return s.id == id; });
    if (kind != "drag" && kind != "scale" && kind != "rotate" && kind != "recolor" && kind != "retexture" &&
        kind != "reclass" && kind != "delete" && kind != "reorder" && kind != "move")
      throw Error(where +
                  ": unknown operation (add, drag, move, scale, rotate, recolor, retexture, reclass, delete, reorder)");
    if (it == layout.shapes.end()) throw Error(where + ": no shape '" + id + "' in the layout");
    LayoutShape& s = *it;
    if (kind == "drag") {
      s.cx += get<double>(op, "dx", 0.0, where);
      s.cy += get<double>(op, "dy", 0.0, where);
    } else if (kind == "move") {
      std::tie(s.cx, s.cy) = pair_of(op, "center", {s.cx, s.cy}, where);
    } else if (kind == "scale") {
      const double f = get<double>(op, "factor", 1.0, where);
      const double fx = get<double>(op, "fx", f, where), fy = get<double>(op, "fy", f, where);
      if (!(fx > 0) || !(fy > 0)) throw Error(where + ": scale factors must be positive");
      s.width *= fx;
      s.height *= fy;
    } else if (kind == "rotate") {
      s.rotation = std::fmod(s.rotation + get<double>(op, "degrees", 0.0, where), 360.0);
    } else if (kind == "recolor") {
      try {
        s.color = parse_color(get<std::string>(op, "color", "", where));
      } catch (const Error& e) {
        throw Error(where + ": " + e.what());
      }
    } else if (kind == "retexture") {
      LayoutShape probe = s;
      nlohmann::json holder = {{"id", s.id}, {"texture", op.value("texture", nlohmann::json("solid"))}};
      probe.texture = shape_from_json(holder, where).texture;
      s.texture = probe.texture;
    } else if (kind == "reclass") {
      s.object_class = get<std::string>(op, "class", "", where);
    } else if (kind == "reorder") {
      s.z = get<std::int64_t>(op, "z", s.z, where);
    } else if (kind == "delete") {
      layout.shapes.erase(it);
      continue;
    }
    check_shape(s);
  }
}

}  // namespace cozy::interaction
