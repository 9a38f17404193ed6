#pragma once
// TaskExecutor: one task from start to payload — check the URL, fetch the submission,
// find and prepare the service, run it, read its report, build the payload. The same
// code serves the daemon and `runner exec`. Blocking: run it on a worker thread.

#include <chrono>
#include <filesystem>
#include <map>
#include <optional>
#include <stop_token>
#include <string>
#include <vector>

#include "agent/fetcher.hpp"
#include "agent/orchestrator.hpp"
#include "agent/process_runner.hpp"
#include "agent/serial_worker.hpp"
#include "agent/task_recorder.hpp"
#include "common/events.hpp"
#include "common/payload.hpp"
#include "common/service_spec.hpp"
#include "common/task.hpp"

namespace proctor {

struct ExecutorSettings {
  std::optional<std::filesystem::path> service_path;  // --service: folder or YAML file
  std::optional<std::filesystem::path> services_dir;  // --services: named services
  std::filesystem::path results_dir;                  // {results-dir}; the task's is below
  bool results_layout = true;                         // write the task's results layout there
  std::chrono::milliseconds default_timeout{std::chrono::minutes(10)};
  std::vector<std::string> allowed_schemes{"https", "http", "ssh", "git", "svn", "s3"};
  LaunchSettings launch;  // env_allow and kill_grace; tail_bytes follows payload.details_tail
  PayloadOptions payload;
  std::optional<std::filesystem::path> descriptions_dir;  // --descriptions: orchestrations by name
  bool strict_orchestrations = false;                     // --strict: a skipped run fails an orchestration
  std::optional<std::chrono::milliseconds> orchestration_runtime;  // --runtime: replaces total_hours
};

class TaskExecutor {
 public:
  // `fetchers` maps a repository kind ("git") to its Fetcher; all must outlive this.
  TaskExecutor(std::map<std::string, Fetcher*> fetchers, ProcessRunner& runner, ExecutorSettings settings);

  // Runs `task` in the slot folder `slot_dir` and returns its payload; every failure
  // (bad URL, fetch, service, report, cancel) becomes an error payload, never a throw.
  // The task's progress goes to its results layout and, when given, to `events`.
  ResultPayload run(const Task& task, const std::filesystem::path& slot_dir, std::stop_token cancel,
                    EventSink* events = nullptr) const;

  // Runs an orchestration on its own (`runner orchestrate`): its folders in
  // `work_dir`/orchestrations/{test_name} (one run of a name at a time), its layout in
  // {results-dir}/{test_name}, its events to `events`. `end_early` (a first signal) ends
  // the schedule and runs the teardown; `abort` (a second) stops everything. The error is
  // an input problem found before anything started (an unknown service, a bad param).
  Result<ResultPayload> orchestrate(OrchestrationDescription description, const std::filesystem::path& work_dir,
                                    std::stop_token end_early, std::stop_token abort, EventSink* events = nullptr) const;

  [[nodiscard]] const ExecutorSettings& settings() const { return settings_; }

  // Waits until the results layouts of the tasks run so far are written (run() returns
  // before its last layout files are, so that they never hold up a task's result).
  void wait_for_layouts() const { layout_io_.drain(); }

 private:
  // run() with its progress told to `recorder`; `outcome` is the service's end, when it ran.
  ResultPayload run_recorded(const Task& task, const std::filesystem::path& slot_dir, std::stop_token cancel,
                             TaskRecorder& recorder, ProcessOutcome& outcome) const;
  // The orchestration a task named, run after its submission was fetched into
  // `repository_dir`; its folders go in `run_dir`.
  ResultPayload run_orchestration(const Task& task, const std::filesystem::path& slot_dir,
                                  const std::filesystem::path& run_dir, const std::filesystem::path& repository_dir,
                                  OrchestrationDescription description, std::stop_token cancel,
                                  TaskRecorder& recorder) const;
  // What orchestrations get from these settings.
  [[nodiscard]] OrchestrationSettings orchestration_settings() const;
  // What every service launch gets from these settings.
  [[nodiscard]] LaunchSettings launch_settings() const;
  // {results-dir}/{task}.
  std::filesystem::path results_dir_of(const Task& task) const;
  Result<ServiceDefinition> find_service(const Task& task) const;
  Result<Checkout> fetch_submission(const Task& task, const std::filesystem::path& cache_root,
                                    std::stop_token cancel) const;
  // The folder of a service's code fetched from its specification's repository block
  // (cached per slot by URL): the checkout's ot_dir.
  Result<std::filesystem::path> fetch_service_code(const RepositorySpec& repository,
                                                   const std::filesystem::path& cache_root,
                                                   std::stop_token cancel) const;
  // Refuses URLs whose scheme --allow-schemes does not allow, and option-like URLs.
  Result<void> check_url(const std::string& url) const;
  // The fetcher of a repository kind, or an error naming the kind.
  Result<Fetcher*> fetcher_for(const std::string& kind) const;

  std::map<std::string, Fetcher*> fetchers_;
  ProcessRunner& runner_;
  ExecutorSettings settings_;
  mutable SequenceCounter sequence_;  // section numbers of every task this executor runs
  mutable SerialWorker layout_io_;    // writes every task's results layout, in order
};

// The repository kind of a task: its repositoryType, else guessed from the URL.
std::string repository_kind(const Task& task);

}  // namespace proctor
