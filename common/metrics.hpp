#pragma once
// What the agent counts about itself, and its rendering as Prometheus text (exposition
// format 0.0.4) for `--metrics-address`. Pure: the daemon updates an AgentCounters on its
// event loop and renders a MetricsSnapshot there; no locks, no I/O.

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace proctor {

// What a slot may be doing, as /metrics names it (the daemon's SlotState, in its order).
inline constexpr std::array<const char*, 5> kSlotStates = {"polling", "idle", "running", "delivering", "done"};
// How a finished task ended, as /metrics names it (task_result_label).
inline constexpr std::array<const char*, 3> kTaskResults = {"passed", "failed", "error"};

// A Prometheus histogram: counts by upper bound, plus the sum and count of observations.
class Histogram {
 public:
  // `bounds` ascending; +Inf is implied.
  explicit Histogram(std::vector<double> bounds);
  // Counts one observation.
  void observe(double value);
  [[nodiscard]] const std::vector<double>& bounds() const { return bounds_; }
  // Observations at or below each bound (cumulative, as Prometheus wants them).
  [[nodiscard]] std::vector<std::uint64_t> cumulative() const;
  [[nodiscard]] double sum() const { return sum_; }
  [[nodiscard]] std::uint64_t count() const { return count_; }

 private:
  std::vector<double> bounds_;
  std::vector<std::uint64_t> in_bucket_;  // by bound; the last is +Inf
  double sum_ = 0;
  std::uint64_t count_ = 0;
};

// The agent's counters since it started.
struct AgentCounters {
  std::uint64_t tasks_taken = 0;                        // tasks held (run or answered)
  std::map<std::string, std::uint64_t> tasks_finished;  // by result: passed, failed, error
  std::uint64_t duplicates_refused = 0;                 // tasks handed out again, not run
  std::uint64_t poll_errors = 0;                        // task requests without an answer or with an error
  std::uint64_t results_posted = 0;                     // payloads the backend accepted
  std::uint64_t results_rejected = 0;                   // payloads the backend refused for good
  std::uint64_t post_retries = 0;                       // result posts tried again
  // Wall time of a task, taken to answered: seconds up to 6 hours.
  Histogram task_duration{{1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600}};
};

// The event stream's clients now, and those dropped for falling behind since the start.
struct EventStreamFigures {
  std::uint64_t subscribers = 0;
  std::uint64_t dropped = 0;
};

// Everything /metrics shows at one instant.
struct MetricsSnapshot {
  std::string version;
  double start_time_seconds = 0;                  // Unix time the agent started
  int slots = 0;                                  // configured
  std::map<std::string, int> slots_by_state;      // polling, idle, running, delivering, done
  std::uint64_t spool_pending = 0;                // undelivered payloads
  std::uint64_t spool_pending_bytes = 0;
  std::uint64_t spool_max_bytes = 0;              // 0: no cap
  bool spool_full = false;
  bool stopping = false;                          // SIGTERM received
  std::optional<EventStreamFigures> event_stream;  // absent when the stream is off
  const AgentCounters* counters = nullptr;        // required
};

// The snapshot as Prometheus text: HELP and TYPE lines, then samples, ending in "\n".
std::string render_prometheus(const MetricsSnapshot& snapshot);

// The "result" label of a finished task: "error" when the agent could not run it or
// read its report, else "passed" or "failed".
const char* task_result_label(bool error, bool passed);

}  // namespace proctor
