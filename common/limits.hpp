#pragma once
// Bounds shared by the parsers of untrusted input.

namespace proctor {

// The longest timeout a task or a service may ask for: a week, so that no deadline
// computed from it overflows.
constexpr double kMaxTimeoutSeconds = 7 * 24 * 3600;

}  // namespace proctor
