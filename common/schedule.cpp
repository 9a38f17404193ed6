#include "common/schedule.hpp"

#include <algorithm>

namespace proctor {

const char* to_string(RunKind kind) {
  switch (kind) {
    case RunKind::startup:
      return "startup";
    case RunKind::interval:
      return "interval";
    case RunKind::teardown:
      return "teardown";
  }
  return "startup";
}

const char* to_string(SkipReason reason) {
  switch (reason) {
    case SkipReason::overlap:
      return "overlap";
    case SkipReason::missed:
      return "missed";
    case SkipReason::stopped:
      return "stopped";
  }
  return "overlap";
}

Schedule::Schedule(std::vector<ScheduledEvent> events, ScheduleTime start, ScheduleDuration total)
    : start_(start), end_(start + std::max(total, ScheduleDuration::zero())) {
  state_.reserve(events.size());
  for (auto& event : events) {
    // A zero or negative interval would tick forever at one instant: no interval.
    if (event.interval && *event.interval <= ScheduleDuration::zero()) event.interval.reset();
    state_.push_back(EventState{event});
  }
}

ScheduleTime Schedule::tick_time(const EventState& state, std::uint64_t k) const {
  return start_ + *state.event.interval * static_cast<std::int64_t>(k);
}

bool Schedule::any_running() const {
  return std::any_of(state_.begin(), state_.end(), [](const EventState& s) { return s.running; });
}

PlannedRun Schedule::plan(std::size_t event, RunKind kind, ScheduleTime planned,
                          std::uint64_t count) {
  EventState& state = state_[event];
  PlannedRun run;
  run.event = event;
  run.kind = kind;
  run.number = state.numbered + 1;
  run.count = count;
  run.planned = planned;
  state.numbered += count;
  return run;
}

Schedule::Step Schedule::advance(ScheduleTime now) {
  Step step;
  advanced_ = true;
  if (phase_ == SchedulePhase::running) {
    for (std::size_t i = 0; i < state_.size(); ++i) {
      EventState& state = state_[i];
      if (state.event.at_startup && !state.startup_done && now >= start_) {
        state.startup_done = true;
        PlannedRun run = plan(i, RunKind::startup, start_);
        if (start_ >= end_) {
          run.skipped = SkipReason::stopped;
          step.skipped.push_back(run);
        } else {
          state.running = true;
          step.start.push_back(run);
        }
      }
      if (!state.event.interval || now < start_ || end_ <= start_) continue;
      // The last tick due: at or before now, and before the end.
      const auto interval = *state.event.interval;
      const auto by_now = static_cast<std::uint64_t>((now - start_) / interval);
      const auto by_end =
          static_cast<std::uint64_t>((end_ - start_ - ScheduleDuration(1)) / interval);
      const std::uint64_t last = std::min(by_now, by_end);
      if (last < state.next_tick) continue;
      const std::uint64_t first = state.next_tick;
      state.next_tick = last + 1;
      if (state.running) {
        // Every tick since the last look came while the run went on.
        step.skipped.push_back(
            plan(i, RunKind::interval, tick_time(state, first), last - first + 1));
        step.skipped.back().skipped = SkipReason::overlap;
        continue;
      }
      if (last > first) {
        step.skipped.push_back(plan(i, RunKind::interval, tick_time(state, first), last - first));
        step.skipped.back().skipped = SkipReason::missed;
      }
      state.running = true;
      step.start.push_back(plan(i, RunKind::interval, tick_time(state, last)));
    }
    if (now >= end_) {
      phase_ = SchedulePhase::stopping;
      for (std::size_t i = 0; i < state_.size(); ++i) {
        if (state_[i].running) step.stop.push_back(i);
      }
    }
  }
  settle(now);
  if (phase_ == SchedulePhase::teardown && !teardown_started_ && teardown_at_ &&
      now >= *teardown_at_) {
    teardown_started_ = true;
    for (std::size_t i = 0; i < state_.size(); ++i) {
      if (!state_[i].event.at_teardown) continue;
      PlannedRun run = plan(i, RunKind::teardown, *teardown_at_);
      if (teardown_abandoned_) {
        run.skipped = SkipReason::stopped;
        step.skipped.push_back(run);
      } else {
        state_[i].running = true;
        step.start.push_back(run);
      }
    }
  }
  settle(now);
  return step;
}

void Schedule::finished(std::size_t event, ScheduleTime now) {
  state_.at(event).running = false;
  settle(now);
}

void Schedule::settle(ScheduleTime now) {
  if (any_running()) return;
  if (phase_ == SchedulePhase::stopping) {
    phase_ = SchedulePhase::teardown;
    teardown_at_ = now;
  } else if (phase_ == SchedulePhase::teardown && teardown_started_) {
    phase_ = SchedulePhase::done;
  }
}

void Schedule::end_early(ScheduleTime now) {
  if (phase_ != SchedulePhase::running) return;
  // Before the first look nothing has started: the end is the start, whatever the clock says.
  end_ = advanced_ ? std::clamp(now, start_, end_) : start_;
}

void Schedule::abandon_teardown() {
  teardown_abandoned_ = true;
}

std::optional<ScheduleTime> Schedule::next_wakeup() const {
  switch (phase_) {
    case SchedulePhase::running: {
      ScheduleTime next = end_;
      for (const auto& state : state_) {
        if (state.event.at_startup && !state.startup_done) next = std::min(next, start_);
        if (state.event.interval) {
          const ScheduleTime tick = tick_time(state, state.next_tick);
          if (tick < end_) next = std::min(next, tick);
        }
      }
      return next;
    }
    case SchedulePhase::stopping:
      return std::nullopt;
    case SchedulePhase::teardown:
      if (!teardown_started_) return teardown_at_;
      return std::nullopt;
    case SchedulePhase::done:
      return std::nullopt;
  }
  return std::nullopt;
}

}  // namespace proctor
