#include "common/metrics.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <stdexcept>

namespace proctor {

namespace {

// A sample value as Prometheus reads it: the shortest exact decimal, "+Inf", "NaN".
std::string number(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  char buffer[64];
  const auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, value);
  return ec == std::errc() ? std::string(buffer, end) : "NaN";
}

// Writes the families of one snapshot; each family's HELP and TYPE once, before its samples.
class Exposition {
 public:
  void family(const char* name, const char* type, const char* help) {
    out_ += "# HELP ";
    out_ += name;
    out_ += ' ';
    out_ += help;
    out_ += "\n# TYPE ";
    out_ += name;
    out_ += ' ';
    out_ += type;
    out_ += '\n';
  }
  // A sample; `labels` already formatted ("result=\"passed\""), or empty.
  void sample(const std::string& name, const std::string& labels, const std::string& value) {
    out_ += name;
    if (!labels.empty()) out_ += "{" + labels + "}";
    out_ += ' ';
    out_ += value;
    out_ += '\n';
  }
  void sample(const std::string& name, const std::string& labels, std::uint64_t value) {
    sample(name, labels, std::to_string(value));
  }
  // A family of one unlabelled sample.
  void single(const char* name, const char* type, const char* help, std::uint64_t value) {
    family(name, type, help);
    sample(name, "", value);
  }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

// A label value escaped as the text format wants (backslash, quote, newline).
std::string label_value(const std::string& value) {
  std::string out;
  for (const char c : value) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

}  // namespace

Histogram::Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), in_bucket_(bounds_.size() + 1, 0) {
  if (!std::is_sorted(bounds_.begin(), bounds_.end())) throw std::invalid_argument("histogram bounds must ascend");
}

void Histogram::observe(double value) {
  const auto bucket = std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin();
  ++in_bucket_[static_cast<std::size_t>(bucket)];
  sum_ += value;
  ++count_;
}

std::vector<std::uint64_t> Histogram::cumulative() const {
  std::vector<std::uint64_t> out(in_bucket_.size());
  std::uint64_t total = 0;
  for (std::size_t i = 0; i < in_bucket_.size(); ++i) out[i] = total += in_bucket_[i];
  return out;
}

const char* task_result_label(bool error, bool passed) {
  if (error) return kTaskResults[2];
  return passed ? kTaskResults[0] : kTaskResults[1];
}

std::string render_prometheus(const MetricsSnapshot& snapshot) {
  if (snapshot.counters == nullptr) throw std::invalid_argument("a metrics snapshot needs its counters");
  const AgentCounters& counters = *snapshot.counters;
  Exposition out;

  out.family("proctor_build_info", "gauge", "The runner's version, as a label; always 1.");
  out.sample("proctor_build_info", "version=\"" + label_value(snapshot.version) + "\"", 1);
  out.family("proctor_start_time_seconds", "gauge", "When the agent started, in Unix seconds.");
  out.sample("proctor_start_time_seconds", "", number(snapshot.start_time_seconds));
  out.single("proctor_stopping", "gauge", "1 once the agent was told to stop (it takes no new tasks).",
             snapshot.stopping ? 1 : 0);

  out.single("proctor_slots", "gauge", "Task slots configured (--concurrent).", static_cast<std::uint64_t>(snapshot.slots));
  out.family("proctor_slots_in_state", "gauge", "Slots by what they are doing now.");
  for (const char* state : kSlotStates) {
    const auto it = snapshot.slots_by_state.find(state);
    const int count = it == snapshot.slots_by_state.end() ? 0 : it->second;
    out.sample("proctor_slots_in_state", std::string("state=\"") + state + "\"", static_cast<std::uint64_t>(count));
  }

  out.single("proctor_tasks_taken_total", "counter", "Tasks taken from the backend (each is answered).",
             counters.tasks_taken);
  out.family("proctor_tasks_finished_total", "counter", "Tasks finished, by result: passed, failed or error.");
  for (const char* result : kTaskResults) {
    const auto it = counters.tasks_finished.find(result);
    out.sample("proctor_tasks_finished_total", std::string("result=\"") + result + "\"",
               it == counters.tasks_finished.end() ? 0 : it->second);
  }
  out.single("proctor_duplicate_tasks_total", "counter", "Tasks handed out again that this agent had taken: not run twice.",
             counters.duplicates_refused);
  out.single("proctor_poll_errors_total", "counter", "Task requests that failed (no answer, or an HTTP error).",
             counters.poll_errors);
  out.single("proctor_results_posted_total", "counter", "Result payloads the backend accepted.", counters.results_posted);
  out.single("proctor_results_rejected_total", "counter", "Result payloads the backend refused for good (kept in the spool's rejected/).",
             counters.results_rejected);
  out.single("proctor_result_post_retries_total", "counter", "Result posts tried again after a failure.",
             counters.post_retries);

  out.single("proctor_spool_pending_results", "gauge", "Undelivered result payloads in the spool.", snapshot.spool_pending);
  out.single("proctor_spool_pending_bytes", "gauge", "Bytes of undelivered result payloads in the spool.",
             snapshot.spool_pending_bytes);
  out.single("proctor_spool_max_bytes", "gauge", "The spool's cap (--spool-max-mb); 0: none.", snapshot.spool_max_bytes);
  out.single("proctor_spool_full", "gauge", "1 while the spool is at its cap and the agent takes no tasks.",
             snapshot.spool_full ? 1 : 0);

  if (snapshot.event_stream) {
    out.single("proctor_event_subscribers", "gauge", "Clients connected to the event stream (--events-socket).",
               snapshot.event_stream->subscribers);
    out.single("proctor_event_subscribers_dropped_total", "counter",
               "Event stream clients dropped for falling behind (their queue was full).",
               snapshot.event_stream->dropped);
  }

  const Histogram& durations = counters.task_duration;
  out.family("proctor_task_duration_seconds", "histogram", "Wall time of a task, from taken to answered.");
  const auto cumulative = durations.cumulative();
  for (std::size_t i = 0; i < durations.bounds().size(); ++i) {
    out.sample("proctor_task_duration_seconds_bucket", "le=\"" + number(durations.bounds()[i]) + "\"", cumulative[i]);
  }
  out.sample("proctor_task_duration_seconds_bucket", "le=\"+Inf\"", cumulative.back());
  out.sample("proctor_task_duration_seconds_sum", "", number(durations.sum()));
  out.sample("proctor_task_duration_seconds_count", "", durations.count());
  return out.take();
}

}  // namespace proctor
