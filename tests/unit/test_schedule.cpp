#include <doctest/doctest.h>

#include <chrono>
#include <string>
#include <vector>

#include "common/schedule.hpp"

using namespace proctor;
using namespace std::chrono_literals;

namespace {

// A fake clock: time is whatever the test says; nothing waits.
struct FakeTime {
  ScheduleTime now{std::chrono::hours(1000)};
  ScheduleTime at(ScheduleDuration offset) const { return start + offset; }
  ScheduleTime start = now;
};

ScheduledEvent every(ScheduleDuration interval, bool at_startup = true, bool at_teardown = false) {
  return ScheduledEvent{interval, at_startup, at_teardown};
}

ScheduledEvent once(bool at_startup, bool at_teardown) {
  return ScheduledEvent{std::nullopt, at_startup, at_teardown};
}

// "event/kind/number@offset_ms" per run, for compact comparisons.
std::vector<std::string> describe(const std::vector<PlannedRun>& runs, ScheduleTime start) {
  std::vector<std::string> out;
  for (const auto& run : runs) {
    std::string text =
        std::to_string(run.event) + "/" + to_string(run.kind) + "/" + std::to_string(run.number) +
        "@" +
        std::to_string(
            std::chrono::duration_cast<std::chrono::milliseconds>(run.planned - start).count());
    if (run.skipped) text += std::string(":") + to_string(*run.skipped);
    if (run.count != 1) text += "x" + std::to_string(run.count);
    out.push_back(text);
  }
  return out;
}

using Strings = std::vector<std::string>;

}  // namespace

TEST_SUITE("schedule") {
  TEST_CASE("startup runs come at the start; an event without at_startup waits one interval") {
    FakeTime t;
    Schedule schedule({every(1s), every(1s, false), once(true, false)}, t.start, 10s);
    CHECK(schedule.next_wakeup() == t.start);
    auto step = schedule.advance(t.start);
    CHECK(describe(step.start, t.start) == Strings{"0/startup/1@0", "2/startup/1@0"});
    CHECK(step.skipped.empty());
    CHECK(schedule.running(0));
    CHECK_FALSE(schedule.running(1));
    CHECK(schedule.next_wakeup() == t.at(1s));
    schedule.finished(0, t.at(200ms));
    schedule.finished(2, t.at(300ms));
    step = schedule.advance(t.at(1s));
    CHECK(describe(step.start, t.start) == Strings{"0/interval/2@1000", "1/interval/1@1000"});
  }

  TEST_CASE("planned times stay on the grid however late the runs start and end (no drift)") {
    FakeTime t;
    Schedule schedule({every(100ms)}, t.start, 1h);
    schedule.advance(t.start);
    std::vector<ScheduleTime> planned;
    for (int k = 1; k <= 50; ++k) {
      // Each run starts 7 ms late and lasts 60 ms: the next stays k x 100 ms from the start.
      const ScheduleTime due = *schedule.next_wakeup();
      schedule.finished(0, due - 40ms);
      auto step = schedule.advance(due + 7ms);
      REQUIRE(step.start.size() == 1);
      planned.push_back(step.start[0].planned);
    }
    for (int k = 1; k <= 50; ++k) CHECK(planned[k - 1] == t.at(100ms * k));
  }

  TEST_CASE("a tick while the previous run still goes is skipped for overlap, one entry per tick") {
    FakeTime t;
    Schedule schedule({every(1s)}, t.start, 10s);
    schedule.advance(t.start);  // run 1 starts and goes on for 2.5 s
    auto step = schedule.advance(t.at(1s));
    CHECK(step.start.empty());
    CHECK(describe(step.skipped, t.start) == Strings{"0/interval/2@1000:overlap"});
    step = schedule.advance(t.at(2s));
    CHECK(describe(step.skipped, t.start) == Strings{"0/interval/3@2000:overlap"});
    schedule.finished(0, t.at(2500ms));
    CHECK(schedule.next_wakeup() == t.at(3s));
    step = schedule.advance(t.at(3s));
    CHECK(describe(step.start, t.start) == Strings{"0/interval/4@3000"});
    CHECK(step.skipped.empty());
  }

  TEST_CASE("ticks the caller was late for are one missed entry; the latest due one runs") {
    FakeTime t;
    Schedule schedule({every(100ms)}, t.start, 1h);
    schedule.advance(t.start);
    schedule.finished(0, t.at(10ms));
    auto step = schedule.advance(t.at(550ms));  // ticks 1..5 passed; 5 is the latest
    CHECK(describe(step.skipped, t.start) == Strings{"0/interval/2@100:missedx4"});
    CHECK(describe(step.start, t.start) == Strings{"0/interval/6@500"});
    CHECK(schedule.next_wakeup() == t.at(600ms));
  }

  TEST_CASE("a stall while a run goes on is one overlap entry, however long") {
    FakeTime t;
    Schedule schedule({every(1ms)}, t.start, 24h);
    schedule.advance(t.start);
    auto step = schedule.advance(t.at(1h));
    REQUIRE(step.skipped.size() == 1);
    CHECK(step.skipped[0].count == 3'600'000);
    CHECK(*step.skipped[0].skipped == SkipReason::overlap);
  }

  TEST_CASE("at the end every running run is stopped, then teardown events run once, then done") {
    FakeTime t;
    Schedule schedule({every(1s), once(true, false), once(false, true), every(3s, true, true)},
                      t.start, 5s);
    schedule.advance(t.start);
    schedule.finished(0, t.at(100ms));
    schedule.finished(3, t.at(100ms));
    // Event 1 runs on past the end; event 0's tick at 4 s also runs past it.
    auto late = schedule.advance(t.at(4s));
    CHECK(describe(late.skipped, t.start) == Strings{"0/interval/2@1000:missedx3"});
    CHECK(describe(late.start, t.start) == Strings{"0/interval/5@4000", "3/interval/2@3000"});
    schedule.finished(3, t.at(4s));
    CHECK(schedule.running(0));
    CHECK(schedule.next_wakeup() == t.at(5s));  // the end, not the tick at 5 s (not before the end)
    auto step = schedule.advance(t.at(5s));
    CHECK(step.start.empty());  // no tick at the end itself
    CHECK(step.stop == std::vector<std::size_t>{0, 1});
    CHECK(schedule.phase() == SchedulePhase::stopping);
    CHECK_FALSE(schedule.next_wakeup().has_value());  // waits for the runs to stop
    schedule.finished(1, t.at(5100ms));
    CHECK(schedule.phase() == SchedulePhase::stopping);
    schedule.finished(0, t.at(5200ms));
    CHECK(schedule.phase() == SchedulePhase::teardown);
    CHECK(schedule.next_wakeup() == t.at(5200ms));
    step = schedule.advance(t.at(5200ms));
    CHECK(describe(step.start, t.start) == Strings{"2/teardown/1@5200", "3/teardown/3@5200"});
    CHECK_FALSE(schedule.next_wakeup().has_value());
    schedule.finished(2, t.at(6s));
    CHECK(schedule.phase() == SchedulePhase::teardown);
    schedule.finished(3, t.at(6500ms));
    CHECK(schedule.phase() == SchedulePhase::done);
    CHECK(schedule.advance(t.at(7s)).start.empty());
  }

  TEST_CASE("nothing running at the end: the teardown runs come at once") {
    FakeTime t;
    Schedule schedule({once(true, true)}, t.start, 2s);
    schedule.advance(t.start);
    schedule.finished(0, t.at(1s));
    auto step = schedule.advance(t.at(2s));
    CHECK(step.stop.empty());
    CHECK(describe(step.start, t.start) == Strings{"0/teardown/2@2000"});
  }

  TEST_CASE("no teardown events: done as soon as the last run stops") {
    FakeTime t;
    Schedule schedule({every(1s)}, t.start, 2s);
    schedule.advance(t.start);
    auto step = schedule.advance(t.at(2s));
    CHECK(describe(step.skipped, t.start) == Strings{"0/interval/2@1000:overlap"});
    CHECK(step.stop == std::vector<std::size_t>{0});
    schedule.finished(0, t.at(2100ms));
    CHECK(schedule.phase() == SchedulePhase::teardown);
    schedule.advance(t.at(2100ms));
    CHECK(schedule.phase() == SchedulePhase::done);
  }

  TEST_CASE("end_early (SIGTERM) ends at once and leads to the same teardown") {
    FakeTime t;
    Schedule schedule({every(1s), once(false, true)}, t.start, 1h);
    schedule.advance(t.start);
    schedule.end_early(t.at(1500ms));
    CHECK(schedule.end() == t.at(1500ms));
    CHECK(schedule.next_wakeup() == t.at(1s));  // the tick before the new end still stands
    auto step = schedule.advance(t.at(1500ms));
    CHECK(describe(step.skipped, t.start) == Strings{"0/interval/2@1000:overlap"});
    CHECK(step.stop == std::vector<std::size_t>{0});
    schedule.finished(0, t.at(1600ms));
    step = schedule.advance(t.at(1600ms));
    CHECK(describe(step.start, t.start) == Strings{"1/teardown/1@1600"});
    schedule.end_early(t.at(1700ms));  // no effect once ended
    CHECK(schedule.end() == t.at(1500ms));
  }

  TEST_CASE("a second SIGTERM gives up the teardown runs not yet started") {
    FakeTime t;
    Schedule schedule({every(1s), once(false, true)}, t.start, 1h);
    schedule.advance(t.start);
    schedule.end_early(t.at(100ms));
    auto step = schedule.advance(t.at(100ms));
    CHECK(step.stop == std::vector<std::size_t>{0});
    schedule.abandon_teardown();
    schedule.finished(0, t.at(200ms));
    step = schedule.advance(t.at(200ms));
    CHECK(step.start.empty());
    CHECK(describe(step.skipped, t.start) == Strings{"1/teardown/1@200:stopped"});
    CHECK(schedule.phase() == SchedulePhase::done);
  }

  TEST_CASE("SIGTERM before the first look: startup runs are skipped, teardown still runs") {
    FakeTime t;
    Schedule schedule({every(1s), once(false, true)}, t.start, 1h);
    schedule.end_early(t.start);
    auto step = schedule.advance(t.start);
    CHECK(describe(step.skipped, t.start) == Strings{"0/startup/1@0:stopped"});
    CHECK(describe(step.start, t.start) == Strings{"1/teardown/1@0"});
  }

  TEST_CASE(
      "the end cuts the ticks: none at or after it, an interval longer than the run never ticks") {
    FakeTime t;
    Schedule schedule({every(10s, false), every(1s, false)}, t.start, 3s);
    std::vector<std::string> all;
    for (auto at : {1s, 2s, 3s, 4s}) {
      auto step = schedule.advance(t.at(at));
      for (auto& text : describe(step.start, t.start)) all.push_back(text);
      for (std::size_t i = 0; i < 2; ++i) {
        if (schedule.running(i)) schedule.finished(i, t.at(at));
      }
    }
    CHECK(all == Strings{"1/interval/1@1000", "1/interval/2@2000"});
    CHECK(schedule.phase() == SchedulePhase::done);
  }

  TEST_CASE("advance before the start does nothing; a zero interval is no interval") {
    FakeTime t;
    Schedule schedule({ScheduledEvent{0s, true, false}}, t.start, 5s);
    CHECK(schedule.advance(t.start - 1s).start.empty());
    auto step = schedule.advance(t.at(3s));
    CHECK(describe(step.start, t.start) == Strings{"0/startup/1@0"});
    schedule.finished(0, t.at(3s));
    CHECK(schedule.next_wakeup() == t.at(5s));
  }
}
