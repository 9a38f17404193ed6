#pragma once
// Bounds shared by the parsers of untrusted input.

#include <cstddef>

namespace proctor {

// The longest timeout a task or a service may ask for: a week, so that no deadline
// computed from it overflows.
constexpr double kMaxTimeoutSeconds = 7 * 24 * 3600;

// The largest task text read (SPEC §2.1): a real task is a few hundred bytes.
constexpr std::size_t kMaxTaskBytes = 1024 * 1024;

// The largest JUnit XML report read: real ones stay under a few hundred MB even for
// 100,000 cases; past this a report is refused rather than allowed to exhaust memory.
constexpr std::size_t kMaxReportBytes = std::size_t{1} << 30;

}  // namespace proctor
