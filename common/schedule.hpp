#pragma once
// Schedule: when an orchestration's events run (SPEC §8), as pure logic over time points
// the caller passes in, so every rule is tested on a fake clock without waiting.
//
// Rules. Time is a monotonic clock; every planned time is start + k x interval, so
// nothing drifts however late a run starts. An event runs at startup when asked, then at
// each tick before the end. A tick that comes while the event's previous run is still
// going is skipped (never two runs of one event at once) and reported; a tick the caller
// was too late for (a later one already due) is skipped as missed; skipped ticks of one
// event seen at once are reported as one entry. At the end (total
// time, or end_early) every running run must be stopped; once none runs, the teardown
// events run one last time; then the schedule is done.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

namespace proctor {

// The clock of schedules: monotonic, so a wall-clock change moves nothing.
using ScheduleClock = std::chrono::steady_clock;
using ScheduleTime = ScheduleClock::time_point;
using ScheduleDuration = ScheduleClock::duration;

// What the schedule needs of an event.
struct ScheduledEvent {
  std::optional<ScheduleDuration> interval;  // none: startup and/or teardown only
  bool at_startup = true;
  bool at_teardown = false;
};

enum class RunKind { startup, interval, teardown };

// "startup", "interval", "teardown".
const char* to_string(RunKind kind);

// Why a planned run did not start.
enum class SkipReason {
  overlap,  // the event's previous run was still going
  missed,   // a later tick of the event was already due when this one was looked at
  stopped,  // the orchestration was stopped for good before the run could start
};

// "overlap", "missed", "stopped".
const char* to_string(SkipReason reason);

// One planned run of an event.
struct PlannedRun {
  std::size_t event = 0;  // index into the events
  RunKind kind = RunKind::startup;
  std::uint64_t number = 0;           // 1-based, per event, counting skipped runs too
  ScheduleTime planned;               // of the first run it stands for
  std::optional<SkipReason> skipped;  // set for a run that does not start
  // Runs this entry stands for: 1, or more for skipped ticks of one event seen at once
  // (numbers number..number+count-1, one interval apart), so a long stall is one entry.
  std::uint64_t count = 1;
};

enum class SchedulePhase {
  running,   // startup and interval runs
  stopping,  // the end has come; waiting for running runs to stop
  teardown,  // the teardown runs
  done,
};

class Schedule {
 public:
  // A schedule starting at `start` and ending `total` later.
  Schedule(std::vector<ScheduledEvent> events, ScheduleTime start, ScheduleDuration total);

  // What to do at `now`.
  struct Step {
    std::vector<PlannedRun> start;    // start these now (their events are marked running)
    std::vector<PlannedRun> skipped;  // report these as not run
    std::vector<std::size_t> stop;    // stop the running run of these events (the end came)
  };
  // Moves the schedule to `now` (which never goes back) and says what is due.
  Step advance(ScheduleTime now);

  // The running run of `event` ended at `now`.
  void finished(std::size_t event, ScheduleTime now);

  // Ends the schedule at `now` if it has not ended yet (SIGTERM): the same end as at
  // total time, just sooner. Before the first advance() it ends at the start, so no
  // startup run starts only to be stopped.
  void end_early(ScheduleTime now);
  // Gives up the teardown runs that have not started (a second SIGTERM): they are
  // reported as skipped (stopped) by the next advance().
  void abandon_teardown();

  // The next time advance() has something to do; nullopt when only a finished() call can
  // move the schedule on (or it is done).
  [[nodiscard]] std::optional<ScheduleTime> next_wakeup() const;
  [[nodiscard]] SchedulePhase phase() const { return phase_; }
  [[nodiscard]] bool running(std::size_t event) const { return state_.at(event).running; }
  [[nodiscard]] ScheduleTime start() const { return start_; }
  [[nodiscard]] ScheduleTime end() const { return end_; }

 private:
  struct EventState {
    ScheduledEvent event;
    bool running = false;
    bool startup_done = false;
    std::uint64_t next_tick = 1;  // k of the next interval tick to look at
    std::uint64_t numbered = 0;   // runs numbered so far
  };
  [[nodiscard]] ScheduleTime tick_time(const EventState& state, std::uint64_t k) const;
  [[nodiscard]] bool any_running() const;
  // With nothing running: stopping becomes teardown (due now), a started teardown done.
  void settle(ScheduleTime now);
  PlannedRun plan(std::size_t event, RunKind kind, ScheduleTime planned, std::uint64_t count = 1);

  std::vector<EventState> state_;
  ScheduleTime start_;
  ScheduleTime end_;
  SchedulePhase phase_ = SchedulePhase::running;
  std::optional<ScheduleTime> teardown_at_;  // when the teardown runs are due (set once none runs)
  bool teardown_started_ = false;
  bool teardown_abandoned_ = false;
  bool advanced_ = false;  // advance() was called
};

}  // namespace proctor
