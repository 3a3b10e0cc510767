// cozy/node.hpp — a node type: its spec and the function that runs it.
//
//     cozy::NodeDef def;
//     def.spec.class_type = "Scale";
//     def.spec.inputs = {cozy::InputSpec::Link("image", cozy::types::IMAGE),
//                        cozy::InputSpec::Float("factor", 1.0).range(0, 10)};
//     def.spec.outputs = {{"IMAGE", cozy::types::IMAGE}};
//     def.run = [](const cozy::Inputs& in, cozy::Context&) -> cozy::Outputs {
//       return {in.tensor("image") * in.number("factor")};
//     };
//
// The host calls `run` only with inputs that passed validation: every required
// input is present with the declared type, literals are in range and among
// the choices. Optional inputs that were not given are empty Values.
#pragma once

#include <cozy/context.hpp>
#include <cozy/spec.hpp>
#include <cozy/value.hpp>

#include <functional>
#include <string_view>
#include <vector>

namespace cozy {

/// The inputs of one call, in the order of the spec's inputs. A view: it is
/// valid during the call only (copy the Values you want to keep).
class Inputs {
 public:
  Inputs(const NodeSpec& spec, const Value* values, std::size_t count) : spec_(&spec), values_(values), size_(count) {}
  explicit Inputs(const NodeSpec& spec, const std::vector<Value>& values) : Inputs(spec, values.data(), values.size()) {}

  const Value& operator[](std::string_view name) const { return values_[index(name)]; }
  const Value& at(std::size_t i) const {
    if (i >= size_) throw Error("input index out of range");
    return values_[i];
  }
  std::size_t size() const { return size_; }
  /// False for an optional input that was not given.
  bool has(std::string_view name) const { return !values_[index(name)].empty(); }

  std::int64_t integer(std::string_view name) const { return (*this)[name].as_int(); }
  double number(std::string_view name) const { return (*this)[name].as_float(); }
  bool boolean(std::string_view name) const { return (*this)[name].as_bool(); }
  const std::string& string(std::string_view name) const { return (*this)[name].as_string(); }
  const at::Tensor& tensor(std::string_view name) const { return (*this)[name].as_tensor(); }
  template <class T>
  std::shared_ptr<T> object(std::string_view name) const { return (*this)[name].template as<T>(); }

  /// An IMAGE input, checked against the convention: float32 [B, C, H, W]
  /// with C = 1 or 3. Throws cozy::Error naming the input otherwise (an RGBA
  /// image too, with a hint: see image_or_rgba).
  const at::Tensor& image(std::string_view name) const {
    const at::Tensor& t = tensor(name);
    if (!t.defined() || t.dim() != 4 || (t.size(1) != 1 && t.size(1) != 3) || t.scalar_type() != at::kFloat)
      throw Error("input '" + std::string(name) + "' is not an IMAGE: expected float32 [B, C, H, W] with C = 1 or 3, got " +
                  describe(t) + (t.defined() && t.dim() == 4 && t.size(1) == 4
                                     ? " (an RGBA image: SplitImageWithAlpha takes the alpha off)"
                                     : ""));
    return t;
  }
  /// An IMAGE input that may carry alpha: as image(), or C = 4 (RGBA, straight
  /// alpha, as ComfyUI's JoinImageWithAlpha makes). For nodes that handle the
  /// fourth channel; image() refuses it, so no other node reads alpha as colour.
  const at::Tensor& image_or_rgba(std::string_view name) const {
    const at::Tensor& t = tensor(name);
    if (!t.defined() || t.dim() != 4 || (t.size(1) != 1 && t.size(1) != 3 && t.size(1) != 4) ||
        t.scalar_type() != at::kFloat)
      throw Error("input '" + std::string(name) +
                  "' is not an IMAGE: expected float32 [B, C, H, W] with C = 1, 3 or 4, got " + describe(t));
    return t;
  }
  /// A MASK input, checked: float32 [B, 1, H, W].
  const at::Tensor& mask(std::string_view name) const {
    const at::Tensor& t = tensor(name);
    if (!t.defined() || t.dim() != 4 || t.size(1) != 1 || t.scalar_type() != at::kFloat)
      throw Error("input '" + std::string(name) + "' is not a MASK: expected float32 [B, 1, H, W], got " + describe(t));
    return t;
  }

  /// "float32 [2, 3, 64, 64]", for messages.
  static std::string describe(const at::Tensor& t) {
    if (!t.defined()) return "an undefined tensor";
    std::string text = std::string(c10::toString(t.scalar_type())) + " [";
    for (int64_t d = 0; d < t.dim(); ++d) text += (d ? ", " : "") + std::to_string(t.size(d));
    return text + "]";
  }

 private:
  std::size_t index(std::string_view name) const {
    for (std::size_t i = 0; i < spec_->inputs.size() && i < size_; ++i)
      if (spec_->inputs[i].name == name) return i;
    throw Error("node " + spec_->class_type + " has no input '" + std::string(name) + "'");
  }

  const NodeSpec* spec_;
  const Value* values_;
  std::size_t size_;
};

/// One value per declared output, in order.
using Outputs = std::vector<Value>;

using RunFunction = std::function<Outputs(const Inputs&, Context&)>;

/// A node type as a plugin registers it.
struct NodeDef {
  NodeSpec spec;
  RunFunction run;

  /// A definition with its names filled in; the plugin adds the inputs,
  /// outputs and run function:
  ///   `NodeDef d = NodeDef::named("Invert", "Invert", "image/postprocess", "out = 1 - image.");`
  static NodeDef named(std::string class_type, std::string display_name, std::string category,
                       std::string description) {
    NodeDef d;
    d.spec.class_type = std::move(class_type);
    d.spec.display_name = std::move(display_name);
    d.spec.category = std::move(category);
    d.spec.description = std::move(description);
    return d;
  }
};

}  // namespace cozy
