// cozy/check.hpp — the checks the host makes of what a plugin declares and
// returns, for the host and for a plugin's own tests (cozy/testing.hpp).
//
//   spec_problems(def)          every mistake in a node's declaration
//   output_problem(spec, value) why a returned value does not fit its output
//
// The host refuses a plugin with any spec problem (`cozy plugins` lists each
// one) and fails a node whose output does not fit, naming node and output.
#pragma once

#include <cozy/node.hpp>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

namespace cozy {

namespace detail {
inline std::string number_text(double v) {
  if (std::floor(v) == v && std::fabs(v) < 1e15) return std::to_string(static_cast<long long>(v));
  std::string text = std::to_string(v);
  while (!text.empty() && text.back() == '0') text.pop_back();
  return text;
}

// A class_type a graph file can name and a person can type: printable, no
// quotes or backslashes, no surrounding blanks.
inline std::string class_type_problem(const std::string& type) {
  if (type.empty()) return "has an empty class_type";
  for (unsigned char c : type)
    if (c < 0x20 || c == 0x7f || c == '"' || c == '\\')
      return "has class_type '" + type + "' with a control character, quote or backslash";
  if (type.front() == ' ' || type.back() == ' ') return "has class_type '" + type + "' with blanks around it";
  return {};
}
}  // namespace detail

/// Every mistake in a node's declaration, each a sentence naming the node
/// and, where it is about one, the input or output. Empty when it is sound.
inline std::vector<std::string> spec_problems(const NodeDef& def) {
  const NodeSpec& spec = def.spec;
  std::vector<std::string> problems;
  const std::string node = "node " + (spec.class_type.empty() ? std::string("(no class_type)") : spec.class_type);
  if (std::string p = detail::class_type_problem(spec.class_type); !p.empty()) problems.push_back(node + " " + p);
  if (!def.run) problems.push_back(node + " has no run function");
  for (std::size_t i = 0; i < spec.inputs.size(); ++i) {
    const InputSpec& in = spec.inputs[i];
    const std::string where = node + ", input '" + in.name + "'";
    if (in.name.empty()) problems.push_back(node + ": input " + std::to_string(i) + " has no name");
    if (in.type.empty()) problems.push_back(where + " has no type");
    for (std::size_t j = 0; j < i; ++j)
      if (spec.inputs[j].name == in.name && !in.name.empty()) {
        problems.push_back(where + " is declared twice (inputs " + std::to_string(j) + " and " + std::to_string(i) + ")");
        break;
      }
    if (in.is_choice && in.choices.empty()) problems.push_back(where + " is a choice without options");
    if (in.min && in.max && *in.min > *in.max)
      problems.push_back(where + " has min " + detail::number_text(*in.min) + " above max " + detail::number_text(*in.max));
    if (const auto* number = std::get_if<std::int64_t>(&in.default_value)) {
      const double v = static_cast<double>(*number);
      if ((in.min && v < *in.min) || (in.max && v > *in.max))
        problems.push_back(where + " has default " + std::to_string(*number) + " outside its range [" +
                           (in.min ? detail::number_text(*in.min) : "-inf") + ", " +
                           (in.max ? detail::number_text(*in.max) : "inf") + "]");
    } else if (const auto* real = std::get_if<double>(&in.default_value)) {
      if ((in.min && *real < *in.min) || (in.max && *real > *in.max))
        problems.push_back(where + " has default " + detail::number_text(*real) + " outside its range [" +
                           (in.min ? detail::number_text(*in.min) : "-inf") + ", " +
                           (in.max ? detail::number_text(*in.max) : "inf") + "]");
    } else if (const auto* text = std::get_if<std::string>(&in.default_value)) {
      if (!in.choices.empty() && std::find(in.choices.begin(), in.choices.end(), *text) == in.choices.end())
        problems.push_back(where + " has default '" + *text + "', which is not among its choices");
    }
  }
  for (std::size_t i = 0; i < spec.outputs.size(); ++i) {
    const OutputSpec& out = spec.outputs[i];
    if (out.type.empty()) problems.push_back(node + ", output " + std::to_string(i) + " has no type");
    for (std::size_t j = 0; j < i; ++j)
      if (spec.outputs[j].name == out.name) {
        problems.push_back(node + ", output '" + out.name + "' is declared twice (outputs " + std::to_string(j) +
                           " and " + std::to_string(i) + ")");
        break;
      }
  }
  return problems;
}

/// Why `value` does not fit `output` ("" when it does): a tensor of the
/// convention for IMAGE, MASK and LATENT, the scalar for INT, FLOAT, STRING
/// and BOOLEAN, four INTs for BOUNDING_BOX, an object whose type_name() is
/// the declared type for any other name. An output of type `*` takes
/// anything. For an output with `is_list`, the host checks each element.
inline std::string output_problem(const OutputSpec& output, const Value& value) {
  const std::string& type = output.type;
  if (type == types::ANY) return {};
  auto got = [&]() -> std::string {
    if (value.is_tensor()) return "a tensor " + Inputs::describe(value.as_tensor());
    if (value.is_object()) return value.as_object() ? "an object of type " + value.as_object()->type_name() : "a null object";
    return "a value of type " + value.kind();
  };
  auto wrong = [&](const std::string& wanted) { return "is declared " + type + " (" + wanted + ") but is " + got(); };
  if (type == types::INT) return value.is_int() ? "" : wrong("an integer");
  if (type == types::FLOAT) return value.is_float() || value.is_int() ? "" : wrong("a number");
  if (type == types::STRING) return value.is_string() ? "" : wrong("a string");
  if (type == types::BOOLEAN) return value.is_bool() ? "" : wrong("true or false");
  if (type == types::IMAGE || type == types::MASK || type == types::LATENT) {
    if (!value.is_tensor() || !value.as_tensor().defined()) return wrong("a tensor");
    const at::Tensor& t = value.as_tensor();
    // C = 4: RGBA, which only the nodes that take it read (Inputs::image_or_rgba).
    if (type == types::IMAGE &&
        (t.dim() != 4 || (t.size(1) != 1 && t.size(1) != 3 && t.size(1) != 4) || t.scalar_type() != at::kFloat))
      return wrong("float32 [B, C, H, W] with C = 1, 3 or 4");
    if (type == types::MASK && (t.dim() != 4 || t.size(1) != 1 || t.scalar_type() != at::kFloat))
      return wrong("float32 [B, 1, H, W]");
    if (type == types::LATENT && ((t.dim() != 2 && t.dim() != 4) || !t.is_floating_point()))
      return wrong("float [B, D] or [B, C, H, W]");
    return {};
  }
  if (type == types::BOUNDING_BOX) {
    bool box = value.is_list() && value.as_list().size() == 4;
    for (std::size_t i = 0; box && i < 4; ++i) box = value.as_list()[i].is_int();
    return box ? "" : wrong("a list of four INTs: x, y, width, height");
  }
  if (!value.is_object() || !value.as_object()) return wrong("an object");
  if (value.as_object()->type_name() != type) return wrong("an object of that type");
  return {};
}

}  // namespace cozy
