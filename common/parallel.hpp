#pragma once
// Splitting a large, evenly spread piece of work over two cores. The machines Proctor
// runs on have at least two; `runner convert` is the one place where a single call is
// big enough for a second thread to pay for itself.

#include <cstddef>
#include <exception>
#include <thread>

namespace proctor {

// Calls f(first, last) for the two halves of [0, count) at once, one on this thread and
// one on a helper, when count >= min_count and the machine has more than one core;
// otherwise calls f(0, count) here. Returns when both halves are done; an exception from
// either half is rethrown here (the helper's when both throw).
template <class F>
void for_halves(std::size_t count, std::size_t min_count, const F& f) {
  if (count < min_count || std::thread::hardware_concurrency() < 2) {
    f(std::size_t{0}, count);
    return;
  }
  const std::size_t middle = count / 2;
  std::exception_ptr helper_failure;
  std::exception_ptr own_failure;
  {
    const std::jthread helper([&] {
      try {
        f(middle, count);
      } catch (...) {
        helper_failure = std::current_exception();
      }
    });
    try {
      f(std::size_t{0}, middle);
    } catch (...) {
      own_failure = std::current_exception();
    }
  }  // joins the helper
  if (helper_failure) std::rethrow_exception(helper_failure);
  if (own_failure) std::rethrow_exception(own_failure);
}

}  // namespace proctor
