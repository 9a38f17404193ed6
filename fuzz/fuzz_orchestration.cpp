// libFuzzer target: the orchestration description reader on any JSON text, and the
// schedule of what it reads driven through a whole run on a fake clock.

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "common/orchestration.hpp"
#include "common/schedule.hpp"
#include "fuzz/fuzz_check.hpp"

using proctor::fuzz::check;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto checked = proctor::check_orchestration(text, "t");
  const auto parsed = proctor::parse_orchestration(text, "t");
  // The whole check and the first-error reader agree on whether the text is valid.
  check(parsed.ok() == checked.valid());
  if (!parsed) return 0;
  (void)parsed->event_labels();
  std::vector<proctor::ScheduledEvent> events;
  for (const auto& event : parsed->events) {
    proctor::ScheduledEvent scheduled;
    if (event.interval)
      scheduled.interval = std::chrono::duration_cast<proctor::ScheduleDuration>(*event.interval);
    scheduled.at_startup = event.at_startup;
    scheduled.at_teardown = event.at_teardown;
    events.push_back(scheduled);
  }
  // A whole run on a fake clock: every run ends at once, time jumps to each wake-up.
  const proctor::ScheduleTime start{};
  proctor::Schedule schedule(events, start, parsed->total());
  proctor::ScheduleTime now = start;
  for (int step = 0; step < 10000 && schedule.phase() != proctor::SchedulePhase::done; ++step) {
    const auto due = schedule.advance(now);
    for (const auto& run : due.start) {
      check(run.planned <= now);
      schedule.finished(run.event, now);
    }
    const auto wake = schedule.next_wakeup();
    if (!wake) break;
    check(*wake >= now || schedule.phase() != proctor::SchedulePhase::running);
    // Big jumps: a description may ask for a tick a millisecond apart over a year.
    now = std::max(now, *wake) + std::chrono::minutes(7);
  }
  return 0;
}
