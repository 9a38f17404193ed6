// for_halves: each index handled exactly once, small work kept on one thread, failures
// from either half reaching the caller.

#include <atomic>
#include <stdexcept>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include "common/parallel.hpp"

using namespace proctor;

TEST_SUITE("parallel") {
  TEST_CASE("for_halves covers [0, count) exactly once") {
    for (const std::size_t count : {0U, 1U, 7U, 1000U, 1001U}) {
      std::vector<std::atomic<int>> hits(count);
      std::atomic<int> calls{0};
      for_halves(count, 2, [&](std::size_t first, std::size_t last) {
        ++calls;
        for (std::size_t i = first; i < last; ++i) ++hits[i];
      });
      CAPTURE(count);
      for (std::size_t i = 0; i < count; ++i) CHECK(hits[i] == 1);
      const bool split = count >= 2 && std::thread::hardware_concurrency() > 1;
      CHECK(calls == (split ? 2 : 1));
    }
  }

  TEST_CASE("for_halves keeps work below the threshold on the calling thread") {
    const auto caller = std::this_thread::get_id();
    std::vector<std::thread::id> seen;
    for_halves(99, 100, [&](std::size_t first, std::size_t last) {
      CHECK(first == 0);
      CHECK(last == 99);
      seen.push_back(std::this_thread::get_id());
    });
    CHECK(seen == std::vector<std::thread::id>{caller});
  }

  TEST_CASE("for_halves rethrows a failure from either half after both are done") {
    for (const std::size_t bad : {10U, 990U}) {
      std::atomic<bool> other_half_finished{false};
      CHECK_THROWS_WITH_AS(for_halves(1000, 2,
                                      [&](std::size_t first, std::size_t last) {
                                        if (first <= bad && bad < last) throw std::runtime_error("half failed");
                                        other_half_finished = true;
                                      }),
                           "half failed", std::runtime_error);
      // The half that did not throw ran to its end before the rethrow.
      if (std::thread::hardware_concurrency() > 1) CHECK(other_half_finished);
    }
  }
}
