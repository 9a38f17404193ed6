#include "agent/orchestration_run.hpp"

#include <map>
#include <mutex>
#include <tuple>

namespace proctor {

namespace {

// The pyATS result of a run: a skip's, else its record status's (timeout and a stop by
// the kill switch are aborted, as for a task's phases).
SectionResult run_result(const RunReport& run) {
  if (run.skipped) return SectionResult::skipped;
  return section_result_of(run.status).value_or(SectionResult::errored);
}

// Which run this is: its record's input.
nlohmann::json run_test_input(const RunReport& run) {
  return {{"event", run.label}, {"kind", to_string(run.kind)}, {"number", run.number}};
}

// The run's facts: its record's output.json.
nlohmann::json run_facts_json(const RunReport& run) {
  nlohmann::json output = run_test_input(run);
  output["planned_s"] = std::chrono::duration<double>(run.planned).count();
  if (run.count > 1) output["count"] = run.count;
  if (run.skipped) {
    output["skipped"] = to_string(*run.skipped);
    return output;
  }
  if (run.start_delay)
    output["start_delay_ms"] = std::chrono::duration<double, std::milli>(*run.start_delay).count();
  if (run.outcome.exit_code) output["exit_code"] = *run.outcome.exit_code;
  if (run.outcome.term_signal) output["signal"] = signal_name(*run.outcome.term_signal);
  output["duration_s"] = std::chrono::duration<double>(run.outcome.wall).count();
  output["cpu_s"] = run.outcome.cpu_seconds;
  output["peak_rss_kib"] = run.outcome.peak_rss_kib;
  output["timed_out"] = run.outcome.timed_out;
  output["stopped_by_kill_switch"] = run.stopped_at_end;
  output["output_tail"] = run.outcome.output_tail;
  output["outputs"] = run.outputs;
  return output;
}

// Tells a TaskRecorder what the orchestrator does. Runs start on their own threads, so
// the step handles are kept under a lock.
class RecorderObserver final : public OrchestrationObserver {
 public:
  explicit RecorderObserver(TaskRecorder& recorder) : recorder_(recorder) {}

  void run_started(const RunReport& run) override {
    const std::size_t step = recorder_.start_step(run.name(), run_test_input(run));
    std::lock_guard lock(mutex_);
    steps_[key(run)] = step;
  }

  void run_output(const RunReport& run, std::string_view line) override {
    std::optional<std::size_t> step;
    {
      std::lock_guard lock(mutex_);
      if (auto it = steps_.find(key(run)); it != steps_.end()) step = it->second;
    }
    if (step) recorder_.step_log(*step, line);
  }

  void run_ended(const RunReport& run) override {
    std::optional<std::size_t> step;
    {
      std::lock_guard lock(mutex_);
      if (auto it = steps_.find(key(run)); it != steps_.end()) {
        step = it->second;
        steps_.erase(it);
      }
    }
    // A skipped run (or one that never got as far as starting) is recorded whole now.
    if (!step) step = recorder_.start_step(run.name(), run_test_input(run));
    recorder_.end_step(*step, run.status, run.name() + ": " + run.summary + "\n",
                       run_facts_json(run), run_result(run));
  }

 private:
  static std::tuple<bool, std::size_t, std::uint64_t> key(const RunReport& run) {
    return {run.setup, run.event, run.number};
  }

  TaskRecorder& recorder_;
  std::mutex mutex_;
  std::map<std::tuple<bool, std::size_t, std::uint64_t>, std::size_t> steps_;
};

nlohmann::json description_json(const OrchestrationPlan& plan) {
  const auto& description = plan.description;
  nlohmann::json events = nlohmann::json::array();
  for (std::size_t i = 0; i < description.events.size(); ++i) {
    const auto& event = description.events[i];
    nlohmann::json item = {{"name", plan.events[i].label},  // a valid plan prepared every event
                           {"at_startup", event.at_startup},
                           {"at_teardown", event.at_teardown},
                           {"params", event.params}};
    if (event.interval)
      item["interval_sec"] = std::chrono::duration<double>(*event.interval).count();
    events.push_back(std::move(item));
  }
  return {{"test_name", description.test_name},
          {"total_hours", std::chrono::duration<double>(plan.total).count() / 3600.0},
          {"unref_setup_fixtures", description.setup_services},
          {"events", std::move(events)}};
}

}  // namespace

RecordStatus orchestration_status(const OrchestrationResult& result) {
  if (result.stopped_early) return RecordStatus::terminated;
  if (result.error) return RecordStatus::error;
  return result.passed ? RecordStatus::success : RecordStatus::failure;
}

OrchestrationResult run_orchestration_recorded(Orchestrator& orchestrator, TaskRecorder& recorder,
                                               std::stop_token end_early, std::stop_token abort,
                                               std::vector<LayoutLink> links) {
  const OrchestrationPlan& plan = orchestrator.plan();
  recorder.start_phase(Phase::service, description_json(plan), std::move(links));
  RecorderObserver observer(recorder);
  auto result = orchestrator.run(observer, std::move(end_early), std::move(abort));
  recorder.end_phase(Phase::service, orchestration_status(result),
                     "orchestration " + plan.description.test_name + ": " + result.summary() + "\n",
                     result.facts());
  return result;
}

}  // namespace proctor
