#pragma once
// check(): what a fuzz target asserts about its input's outcome.

#include <cstdlib>

namespace proctor::fuzz {

// Stops the run as a crash would, so that libFuzzer keeps the input.
inline void check(bool holds) {
  if (!holds) std::abort();
}

}  // namespace proctor::fuzz
