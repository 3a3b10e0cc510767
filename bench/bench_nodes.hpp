// Calling a registered node directly, without a graph: what the benchmarks
// time when they measure a node and not the executor around it.
#pragma once

#include <cozy/host/registry.hpp>
#include <map>
#include <string>
#include <type_traits>
#include <variant>
#include <vector>

namespace cozy::bench {

/// The values of `spec`'s inputs in order: those `given` by name, the
/// declared default for the others (an empty Value where there is none).
inline std::vector<Value> node_inputs(const NodeSpec& spec, const std::map<std::string, Value>& given) {
  std::vector<Value> values(spec.inputs.size());
  for (std::size_t i = 0; i < spec.inputs.size(); ++i) {
    if (auto it = given.find(spec.inputs[i].name); it != given.end())
      values[i] = it->second;
    else
      values[i] = std::visit(
          [](const auto& v) -> Value {
            using T = std::decay_t<decltype(v)>;
            if constexpr (std::is_same_v<T, std::monostate>)
              return Value();
            else
              return Value(v);
          },
          spec.inputs[i].default_value);
  }
  return values;
}

}  // namespace cozy::bench
