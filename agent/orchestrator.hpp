#pragma once
// Orchestrator: runs an orchestration (SPEC §8): its setup services once, then its
// events on the Schedule (common/schedule.hpp) — each run a service process on a thread
// of its own, stopped by the kill switch (SIGTERM to its group, SIGKILL after the grace)
// at the end — then the teardown runs. What each run did is collected as it ends and
// told to an observer (the results layout and the event stream). run() blocks; the
// schedule loop never waits on a process, only on a condition variable.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <stop_token>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/process_runner.hpp"
#include "agent/service_launch.hpp"
#include "common/orchestration.hpp"
#include "common/payload.hpp"
#include "common/results_layout.hpp"
#include "common/schedule.hpp"
#include "common/service_spec.hpp"

namespace proctor {

// The most events and setup services one orchestration may have: each may be a process
// running at once.
constexpr std::size_t kMaxOrchestrationEvents = 256;

struct OrchestrationSettings {
  std::optional<std::filesystem::path> services_dir;  // --services: where event names are looked up
  std::optional<std::chrono::milliseconds> runtime;   // --runtime: replaces total_hours
  std::chrono::milliseconds default_timeout{
      std::chrono::minutes(10)};  // a run's, unless its service says
  LaunchSettings launch;
  bool strict = false;  // --strict: a run skipped for overlap (or missed) fails the orchestration
};

// A service ready to run as an event or a setup: found, checked, its inputs settled.
struct PreparedService {
  std::string label;  // the event's label, or "setup-<name>"
  ServiceDefinition service;
  ServiceInputs inputs;                  // defaults, the agent's inputs, then the event's params
  std::chrono::milliseconds timeout{0};  // the service's timeout, else the default
  bool own_timeout = false;              // the service states a timeout (else a scheduled
                                         // run lasts until the kill switch at the end)
};

// An orchestration whose every part was checked before anything starts.
struct OrchestrationPlan {
  OrchestrationDescription description;
  std::chrono::milliseconds total{0};  // total_hours, or --runtime
  std::vector<PreparedService> setups;
  std::vector<PreparedService> events;  // in the description's order
};

// Finds every service the description names in the services folder, checks each
// event's params against its service's item_properties (an unknown key, a bad value, a
// mandatory input without one, a ${key} its command cannot fill) and returns the plan;
// or every problem found, in one message. `agent_inputs` are what the agent gives every
// service (a task's fields, results_dir); params come after them.
Result<OrchestrationPlan> plan_orchestration(OrchestrationDescription description,
                                             const OrchestrationSettings& settings,
                                             const ServiceInputs& agent_inputs);

// What one planned run became.
struct RunReport {
  std::size_t event = 0;  // index into the plan's events; for a setup, into its setups
  bool setup = false;     // a setup service's run (not scheduled)
  std::string label;      // the event's label
  RunKind kind = RunKind::startup;
  std::uint64_t number = 0;             // 1-based per event
  std::uint64_t count = 1;              // runs a skipped entry stands for
  std::chrono::nanoseconds planned{0};  // planned start, from the schedule's start
  std::optional<std::chrono::nanoseconds>
      start_delay;  // actual start minus planned, for a run that started
  std::optional<SkipReason> skipped;
  bool stopped_at_end = false;  // the kill switch stopped it (the end, or a signal)
  ProcessOutcome outcome;
  RecordStatus status =
      RecordStatus::in_process;  // success, failure, error, timeout, terminated; warning: skipped
  std::string summary;           // one line
  nlohmann::json outputs = nlohmann::json::object();  // the service's output properties

  // "start_playback #3", "start_playback #3-#7" (several skipped), "setup-device".
  [[nodiscard]] std::string name() const;
  // True for a run that counts against the orchestration (failed, timed out, broke; a
  // skip under --strict).
  [[nodiscard]] bool failed(bool strict) const;
};

// Where the orchestrator tells what happens: from the orchestrator's thread and from each
// run's own thread at once, so implementations are thread-safe. run_started comes once
// the run's process is running, before its first output line.
class OrchestrationObserver {
 public:
  virtual ~OrchestrationObserver() = default;
  // A run starts (its report holds what is known at the start).
  virtual void run_started(const RunReport& run) = 0;
  // A line of a started run's output (stdout and stderr, as they come).
  virtual void run_output(const RunReport& run, std::string_view line) = 0;
  // A run ended, or was skipped (run_started was not called for a skipped one).
  virtual void run_ended(const RunReport& run) = 0;
};

// Start delays (actual start minus planned) of the runs that started on the schedule
// (setups aside), in milliseconds.
struct StartDelays {
  std::size_t runs = 0;
  double p50_ms = 0;
  double p99_ms = 0;
  double max_ms = 0;
};

// What the orchestration came to.
struct OrchestrationResult {
  std::vector<RunReport> runs;       // every run and skipped entry, in the order they ended
  std::optional<std::string> error;  // why it could not go on (a setup failed, no workspace)
  bool stopped_early = false;        // a signal ended it before total time
  bool passed = false;
  std::size_t started = 0, succeeded = 0, failed = 0, stopped = 0,
              skipped = 0;  // skipped counts runs
  StartDelays delays;

  // "14 runs: 12 succeeded, 1 failed, 1 stopped at the end; 2 skipped for overlap".
  [[nodiscard]] std::string summary() const;
  // The counts and start delays as JSON (the orchestration record's output.json).
  [[nodiscard]] nlohmann::json facts() const;
};

class Orchestrator {
 public:
  // Runs `plan` with `runner`; each event's service is copied once into `work_dir`/<label>
  // (emptied first). `cookie`, when given, marks every run's processes (a restarted agent
  // finds them); else each run gets a fresh one.
  Orchestrator(const OrchestrationPlan& plan, ProcessRunner& runner, std::filesystem::path work_dir,
               OrchestrationSettings settings, std::string cookie = {});

  // The plan it runs.
  [[nodiscard]] const OrchestrationPlan& plan() const { return plan_; }

  // Setups, the schedule, teardown. `end_early` (a first signal) ends the schedule now
  // and still runs the teardown; `abort` (a second) also stops every run and gives up
  // teardown runs not started.
  OrchestrationResult run(OrchestrationObserver& observer, std::stop_token end_early,
                          std::stop_token abort);

 private:
  const OrchestrationPlan& plan_;
  ProcessRunner& runner_;
  std::filesystem::path work_dir_;
  OrchestrationSettings settings_;
  std::string cookie_;
};

// The payload of an orchestration: a case per run (classname the test name), skipped
// entries as skipped cases (failed ones under --strict), the error when it broke.
ResultPayload orchestration_payload(const OrchestrationResult& result,
                                    const OrchestrationPlan& plan, bool strict,
                                    const PayloadOptions& options);

// Reads a description file (at most 1 MiB) and checks it: test_name must equal its name
// without .json. Fails only when the file cannot be read.
Result<DescriptionCheck> read_orchestration_file(const std::filesystem::path& file);

// The description of a valid file (its warnings logged); else every error, in one message.
Result<OrchestrationDescription> load_orchestration(const std::filesystem::path& file);

// The description file of `name` in `dir` (dir/name.json), when there is one.
std::optional<std::filesystem::path> find_description(const std::filesystem::path& dir,
                                                      const std::string& name);

}  // namespace proctor
