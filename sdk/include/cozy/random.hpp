// cozy/random.hpp — random numbers a graph can reproduce.
#pragma once

#include <ATen/CPUGeneratorImpl.h>

#include <cstdint>

namespace cozy {

/// A CPU random generator seeded with `seed`: the same numbers on every
/// machine and device (draw on the CPU, then move the tensor). Nodes with a
/// seed input draw from one of these, never from LibTorch's global one.
inline at::Generator seeded_generator(std::int64_t seed) {
  return at::make_generator<at::CPUGeneratorImpl>(static_cast<std::uint64_t>(seed));
}

}  // namespace cozy
