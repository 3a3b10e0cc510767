// cozy/literal.hpp — the values a graph file can write inline.
//
// Torch-free on purpose: node specs, graph parsing and validation use only
// this header, so tools such as the validator fuzzer build without LibTorch.
#pragma once

#include <cstdint>
#include <string>
#include <variant>

namespace cozy {

/// A literal from the graph file or a spec default. `std::monostate` means
/// "no value" (an input without a default).
using Literal = std::variant<std::monostate, bool, std::int64_t, double, std::string>;

inline bool has_value(const Literal& literal) {
  return !std::holds_alternative<std::monostate>(literal);
}

}  // namespace cozy
