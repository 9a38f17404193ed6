#include "agent/task_executor.hpp"

#include <fnmatch.h>


#include <algorithm>
#include <cmath>
#include <cstdlib>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "agent/orchestration_run.hpp"
#include "agent/report_watcher.hpp"
#include "agent/service_launch.hpp"
#include "agent/url.hpp"
#include "agent/workspace.hpp"
#include "common/file_io.hpp"
#include "common/json_bounded.hpp"
#include "common/junit.hpp"
#include "common/text.hpp"

namespace proctor {

namespace fs = std::filesystem;

namespace {

// Report files: `junit_xml` when written, then each `reports` glob (wildcards in the
// file-name part only) relative to the service folder.
std::vector<fs::path> find_reports(const fs::path& junit_xml, const std::vector<std::string>& globs,
                                   const fs::path& service_dir) {
  std::vector<fs::path> found;
  std::error_code ec;
  if (fs::is_regular_file(junit_xml, ec)) found.push_back(junit_xml);
  for (const auto& pattern : globs) {
    const fs::path full = fs::path(pattern).is_absolute() ? fs::path(pattern) : service_dir / pattern;
    std::vector<fs::path> matches;
    for (auto it = fs::directory_iterator(full.parent_path(), ec); !ec && it != fs::directory_iterator(); it.increment(ec)) {
      if (it->is_regular_file(ec) && ::fnmatch(full.filename().c_str(), it->path().filename().c_str(), 0) == 0) {
        matches.push_back(it->path());
      }
    }
    std::sort(matches.begin(), matches.end());
    for (auto& m : matches) {
      if (std::find(found.begin(), found.end(), m) == found.end()) found.push_back(std::move(m));
    }
  }
  return found;
}

// `text` ending with exactly one full stop (messages from below may bring their own).
std::string sentence(std::string text) {
  if (!text.empty() && text.front() >= 'a' && text.front() <= 'z') text.front() = static_cast<char>(text.front() - 'a' + 'A');
  while (!text.empty() && (text.back() == '.' || text.back() == ' ')) text.pop_back();
  return text + ".";
}

// Why a service run broke, in one sentence, or nothing when its report stands: the
// process's end is judged first (start, shutdown, timeout, signal, exit code), then the report.
std::optional<std::string> run_failure(const ProcessOutcome& outcome, bool shutting_down,
                                       const std::vector<int>& valid_exit_codes, bool have_report,
                                       const std::string& report_problem, std::chrono::milliseconds timeout,
                                       const fs::path& junit_xml) {
  if (!outcome.started && shutting_down) return "The agent shut down before the service started.";
  if (!outcome.started) return sentence("The service could not start: " + outcome.start_error);
  if (outcome.cancelled) return "The agent shut down while the service was running; the service was stopped.";
  if (outcome.timed_out) return "The service timed out after " + seconds_text(timeout) + " s and was stopped.";
  if (outcome.term_signal) return "The service was killed by signal " + signal_name(*outcome.term_signal) + ".";
  const auto& valid = valid_exit_codes;
  // Exit 1 with a readable report is how test runners say "tests failed".
  if (outcome.exit_code && std::find(valid.begin(), valid.end(), *outcome.exit_code) == valid.end() &&
      !(*outcome.exit_code == 1 && have_report)) {
    return "The service exited with code " + std::to_string(*outcome.exit_code) +
           ", which is not in valid_exit_codes " + exit_code_list(valid) + ".";
  }
  if (!report_problem.empty()) return sentence("The service's report is unreadable: " + report_problem);
  if (!have_report) return "The service wrote no report (expected " + junit_xml.string() + ").";
  return std::nullopt;
}

// The record status of a task that ended with `payload`: how it broke, else its verdict.
RecordStatus task_status(const ResultPayload& payload, const ProcessOutcome* outcome) {
  if (outcome != nullptr && outcome->cancelled) return RecordStatus::terminated;
  if (outcome != nullptr && outcome->timed_out) return RecordStatus::timeout;
  if (payload.error) return RecordStatus::error;
  return payload.passed ? RecordStatus::success : RecordStatus::failure;
}

// The service record's summary: how the process ended and what its report held.
std::string service_summary(const ProcessOutcome& outcome, const std::optional<ReportCounts>& counts,
                            const std::optional<std::string>& failure) {
  std::string text = describe_end(outcome);
  if (counts) {
    text += "; " + std::to_string(counts->total) + " tests: " + std::to_string(counts->passed) + " passed, " +
            std::to_string(counts->failed) + " failed, " + std::to_string(counts->errored) + " errored, " +
            std::to_string(counts->skipped) + " skipped";
  }
  if (failure) text += "\n" + *failure;
  return text + "\n";
}

}  // namespace

std::string repository_kind(const Task& task) {
  if (task.repository_type) return *task.repository_type;
  const auto scheme = repository_scheme(task.repository_url);
  if (scheme == "svn" || scheme == "svn+ssh") return "svn";
  if (scheme == "s3") return "s3";
  if (scheme == "http" || scheme == "https") {
    const std::string_view url = task.repository_url;
    const auto path = url.substr(0, url.find_first_of("?#"));
    for (std::string_view ext : {".zip", ".tar.gz", ".tgz", ".tar.xz", ".tar"}) {
      if (path.size() >= ext.size() && path.substr(path.size() - ext.size()) == ext) return "http";
    }
  }
  return "git";
}

TaskExecutor::TaskExecutor(std::map<std::string, Fetcher*> fetchers, ProcessRunner& runner, ExecutorSettings settings)
    : fetchers_(std::move(fetchers)), runner_(runner), settings_(std::move(settings)) {}

Result<ServiceDefinition> TaskExecutor::find_service(const Task& task) const {
  if (task.service) {
    const auto& name = *task.service;
    if (!settings_.services_dir) {
      return make_error("the task asks for the service '" + name + "' but the agent has no --services folder");
    }
    return load_named_service(*settings_.services_dir, name);
  }
  if (settings_.service_path) return load_service(*settings_.service_path);
  return make_error("the agent has no service to run: give --service, or --services with a task 'service' field");
}

Result<void> TaskExecutor::check_url(const std::string& url) const {
  if (!url.empty() && url.front() == '-') {
    return make_error("the repository URL '" + redact_url(url) + "' looks like a command-line option");
  }
  const auto scheme = repository_scheme(url);
  const auto& allowed = settings_.allowed_schemes;
  if (std::find(allowed.begin(), allowed.end(), scheme) == allowed.end()) {
    return make_error("the repository URL scheme '" + scheme + "' is not allowed (allowed: " + join(allowed, ",") +
                      "; see --allow-schemes)");
  }
  return {};
}

Result<Fetcher*> TaskExecutor::fetcher_for(const std::string& kind) const {
  const auto it = fetchers_.find(kind);
  if (it == fetchers_.end() || it->second == nullptr) {
    return make_error("repositories of type '" + kind + "' are not supported by this agent");
  }
  return it->second;
}

Result<Checkout> TaskExecutor::fetch_submission(const Task& task, const fs::path& cache_root,
                                                std::stop_token cancel) const {
  if (auto allowed = check_url(task.repository_url); !allowed) return allowed.error();
  const auto kind = repository_kind(task);
  auto fetcher = fetcher_for(kind);
  if (!fetcher) return fetcher.error();
  return (*fetcher)->fetch(SourceSpec{task.repository_url, task.branch, task.revision}, cache_root / kind,
                           std::move(cancel));
}

Result<fs::path> TaskExecutor::fetch_service_code(const RepositorySpec& repository, const fs::path& cache_root,
                                                  std::stop_token cancel) const {
  SourceSpec source;
  source.url = repository.repo_type == "s3" ? "s3://" + repository.bucket : repository.url;
  if (!repository.branch.empty()) source.branch = repository.branch;
  if (!repository.revision.empty()) source.revision = repository.revision;
  source.username = repository.username;
  source.password = repository.password;
  source.access_key = repository.access_key;
  source.secret_key = repository.secret_key;
  source.region = repository.region;
  source.endpoint = repository.endpoint;
  if (auto allowed = check_url(source.url); !allowed) return allowed.error();
  auto fetcher = fetcher_for(repository.repo_type);
  if (!fetcher) return fetcher.error();
  auto checkout = (*fetcher)->fetch(source, cache_root / repository.repo_type, std::move(cancel));
  if (!checkout) return checkout.error();
  // ot_dir was checked to stay inside when the specification was read; a link in the
  // repository could still lead out, so the real paths are compared too.
  const fs::path dir = repository.ot_dir.empty() ? checkout->dir : checkout->dir / repository.ot_dir;
  std::error_code ec;
  const fs::path real_dir = fs::canonical(dir, ec);
  if (ec || !fs::is_directory(real_dir, ec)) {
    return make_error("the service repository has no folder '" + repository.ot_dir + "' (ot_dir)");
  }
  if (!is_within(fs::canonical(checkout->dir, ec), real_dir)) {
    return make_error("the service repository's ot_dir '" + repository.ot_dir + "' leads outside the repository");
  }
  return real_dir;
}

fs::path TaskExecutor::results_dir_of(const Task& task) const {
  return settings_.results_dir / safe_folder_name(task.identity.text());
}

ResultPayload TaskExecutor::run(const Task& task, const fs::path& slot_dir, std::stop_token cancel,
                                EventSink* events) const {
  const fs::path task_results = results_dir_of(task);
  TaskRecorder recorder(task, settings_.results_layout ? std::optional(task_results) : std::nullopt, events,
                        sequence_, &layout_io_);
  ProcessOutcome outcome;
  auto payload = run_recorded(task, slot_dir, cancel, recorder, outcome);
  recorder.end_task(task_status(payload, &outcome), {{redact_url(task.repository_url), "submission"}});
  return payload;
}

ResultPayload TaskExecutor::run_recorded(const Task& task, const fs::path& slot_dir, std::stop_token cancel,
                                         TaskRecorder& recorder, ProcessOutcome& outcome) const {
  // A failure ends the phase it happened in with its reason; the task ends after.
  const auto fail = [&](const std::string& why) {
    auto payload = error_payload(sentence(why), settings_.payload);
    spdlog::warn("task {}: {}", task.identity.text(), payload.error_details);
    const RecordStatus status = cancel.stop_requested() ? RecordStatus::terminated : RecordStatus::error;
    recorder.end_phase(Phase::fetch, status, payload.error_details + "\n");
    recorder.end_phase(Phase::service, status, payload.error_details + "\n");
    return payload;
  };

  recorder.start_task(task.service.value_or(settings_.service_path ? settings_.service_path->filename().string()
                                                                   : std::string("service")));
  nlohmann::json fetch_input = {{"repository", redact_url(task.repository_url)}};
  if (task.branch) fetch_input["branch"] = *task.branch;
  if (task.revision) fetch_input["revision"] = *task.revision;
  recorder.start_phase(Phase::fetch, fetch_input);

  SlotWorkspace workspace(slot_dir);
  auto folders = workspace.start_task();
  if (!folders) return fail("The agent could not prepare its workspace: " + folders.error().message);

  // A task may name an orchestration (a description in --descriptions) instead of a service.
  std::optional<OrchestrationDescription> orchestration;
  if (task.service && settings_.descriptions_dir) {
    if (auto file = find_description(*settings_.descriptions_dir, *task.service)) {
      auto loaded = load_orchestration(*file);
      if (!loaded) return fail("The orchestration could not be loaded: " + loaded.error().message);
      orchestration = std::move(*loaded);
      recorder.phase_log(Phase::fetch, "orchestration: " + file->string());
    }
  }
  auto service = orchestration ? Result<ServiceDefinition>(ServiceDefinition{}) : find_service(task);
  if (!service) return fail("The service could not be loaded: " + service.error().message);
  if (!orchestration && !service->spec.runs_on_agent()) {
    return fail("The service is a " + service->spec.type +
                ", which Opereto's own cluster runs, not an agent: Proctor cannot run it");
  }
  if (!orchestration) recorder.phase_log(Phase::fetch, "service: " + service->spec_file.string());

  if (cancel.stop_requested()) return fail("The agent shut down before the task ran.");
  recorder.phase_log(Phase::fetch, "fetching " + repository_kind(task) + " " + redact_url(task.repository_url));
  auto checkout = fetch_submission(task, workspace.repos_dir(), cancel);
  if (!checkout) {
    if (cancel.stop_requested()) return fail("The agent shut down while fetching the submission.");
    return fail("Fetching the submission failed: " + checkout.error().message);
  }
  spdlog::info("task {}: submission at {} ({}{})", task.identity.text(), checkout->commit.substr(0, 12),
               checkout->dir.string(), checkout->reused ? ", reused" : "");
  recorder.phase_log(Phase::fetch, "submission at " + checkout->commit + (checkout->reused ? " (cached clone reused)" : ""));

  if (orchestration) {
    recorder.end_phase(Phase::fetch, RecordStatus::success,
                       "fetched " + checkout->commit.substr(0, 12) + (checkout->reused ? " (cached clone reused)" : "") + "\n",
                       {{"commit", checkout->commit}, {"reused", checkout->reused}});
    return run_orchestration(task, slot_dir, folders->root, checkout->dir, std::move(*orchestration), cancel, recorder);
  }

  // The service's code: its own folder, or what its repository block points to.
  fs::path code_dir = service->dir;
  if (service->spec.repository) {
    auto fetched = fetch_service_code(*service->spec.repository, workspace.repos_dir() / "services", cancel);
    if (!fetched) {
      if (cancel.stop_requested()) return fail("The agent shut down while fetching the service's code.");
      return fail("Fetching the service's code failed: " + fetched.error().message);
    }
    code_dir = *fetched;
  }
  if (auto copied = copy_tree(code_dir, folders->service_dir); !copied) {
    return fail("The service could not be copied into the workspace: " + copied.error().message);
  }
  std::error_code ec;
  // Outputs are what this run writes: an output.json shipped with the code is not one.
  fs::remove(folders->service_dir / "output.json", ec);
  const fs::path task_results = results_dir_of(task);
  fs::create_directories(task_results, ec);
  nlohmann::json fetch_output = {{"commit", checkout->commit}, {"reused", checkout->reused}};
  recorder.end_phase(Phase::fetch, RecordStatus::success,
                     "fetched " + checkout->commit.substr(0, 12) + (checkout->reused ? " (cached clone reused)" : "") + "\n",
                     fetch_output);

  const double timeout_s = task.timeout_seconds.value_or(
      service->spec.timeout_seconds.value_or(static_cast<double>(settings_.default_timeout.count()) / 1000.0));

  // Inputs: the service's defaults, then the task's fields, the agent's paths and
  // Opereto's built-ins; only input properties (never outputs) reach the service.
  ServiceInputs inputs = default_inputs(service->spec);
  for (auto& [key, value] : task_inputs(task)) inputs[key] = std::move(value);
  inputs["repository_dir"] = checkout->dir.string();
  inputs["results_dir"] = task_results.string();
  add_builtin_inputs(inputs, task.identity.text(), folders->service_dir, timeout_s, folders->junit_xml);
  recorder.start_phase(Phase::service, input_properties_json(service->spec, inputs),
                       {{"file://" + task_results.string(), "results"}});
  if (auto checked = check_inputs(service->spec, inputs); !checked) return fail(checked.error().message);

  auto process = service_process(service->spec, inputs, folders->service_dir, folders->tmp_dir,
                                 std::chrono::milliseconds(static_cast<int64_t>(std::ceil(timeout_s * 1000.0))),
                                 launch_settings());
  if (!process) return fail(process.error().message);
  ProcessSpec& spec = *process;
  // What a restarted agent looks for when it was killed while this task ran.
  spec.cookie = process_cookie(slot_dir, task.identity);
  // The service's output goes straight into its record's log.txt, which only grows.
  spec.log_file = recorder.phase_log_file(Phase::service).value_or(folders->log_file);

  spdlog::info("task {}: running service {} (timeout {} s)", task.identity.text(), service->spec_file.string(),
               timeout_s);
  {
    // Reports written while the service runs become records at once.
    std::vector<fs::path> patterns{folders->junit_xml};
    for (const auto& glob : service->spec.reports) {
      patterns.push_back(fs::path(glob).is_absolute() ? fs::path(glob) : folders->service_dir / glob);
    }
    ReportWatcher watcher(patterns, folders->root, [&recorder](const fs::path& file) {
      if (auto parsed = parse_junit_file(file)) recorder.add_cases(file, *parsed);  // else not complete yet
    });
    outcome = runner_.run(spec, cancel);
  }

  RunFacts facts;
  facts.output_tail = outcome.output_tail;
  facts.wall_seconds = static_cast<double>(outcome.wall.count()) / 1000.0;
  if (outcome.started) facts.peak_rss_kib = outcome.peak_rss_kib;

  std::optional<Report> report;
  std::string report_problem;
  for (const auto& file : find_reports(folders->junit_xml, service->spec.reports, folders->service_dir)) {
    auto parsed = parse_junit_file(file);
    if (!parsed) {
      report_problem = parsed.error().message;
      report.reset();
      break;
    }
    recorder.add_cases(file, *parsed);
    if (!report) report = std::move(parsed).value();
    else merge_reports(*report, std::move(parsed).value());
  }

  facts.failure = run_failure(outcome, cancel.stop_requested(), service->spec.valid_exit_codes, report.has_value(),
                              report_problem, spec.timeout, folders->junit_xml);
  const nlohmann::json outputs =
      outcome.started ? read_service_outputs(service->spec, folders->service_dir / "output.json", "task " + task.identity.text())
                      : nlohmann::json::object();
  auto payload = build_payload(report ? &*report : nullptr, facts, settings_.payload);
  recorder.end_phase(Phase::service, task_status(payload, &outcome),
                     service_summary(outcome, report ? std::optional(report->counts()) : std::nullopt, facts.failure),
                     outputs);
  spdlog::info("task {}: {} ({} cases, {:.3f} s, peak {} KiB){}", task.identity.text(),
               payload.error ? "error" : (payload.passed ? "passed" : "failed"), payload.cases.size(),
               facts.wall_seconds, outcome.peak_rss_kib, facts.failure ? ": " + *facts.failure : "");
  return payload;
}

ResultPayload TaskExecutor::run_orchestration(const Task& task, const fs::path& slot_dir, const fs::path& run_dir,
                                              const fs::path& repository_dir, OrchestrationDescription description,
                                              std::stop_token cancel, TaskRecorder& recorder) const {
  const fs::path task_results = results_dir_of(task);
  std::error_code ec;
  fs::create_directories(task_results, ec);
  ServiceInputs agent_inputs;
  for (auto& [key, value] : task_inputs(task)) agent_inputs[key] = std::move(value);
  agent_inputs["repository_dir"] = repository_dir.string();
  agent_inputs["results_dir"] = task_results.string();
  const OrchestrationSettings settings = orchestration_settings();
  auto plan = plan_orchestration(std::move(description), settings, agent_inputs);
  if (!plan) {
    recorder.start_phase(Phase::service);
    auto payload = error_payload(sentence("The orchestration cannot run: " + plan.error().message), settings_.payload);
    spdlog::warn("task {}: {}", task.identity.text(), payload.error_details);
    recorder.end_phase(Phase::service, RecordStatus::error, payload.error_details + "\n");
    return payload;
  }
  spdlog::info("task {}: running orchestration {} ({} events, {} s)", task.identity.text(), plan->description.test_name,
               plan->events.size(), std::chrono::duration<double>(plan->total).count());
  // The cancel token (the agent shutting down) ends the schedule early; the teardown
  // events still run, each bounded by its service's timeout.
  Orchestrator orchestrator(*plan, runner_, run_dir / "orchestration", settings, process_cookie(slot_dir, task.identity));
  const auto result = run_orchestration_recorded(orchestrator, recorder, cancel, std::stop_token(),
                                                 {{"file://" + task_results.string(), "results"}});
  return orchestration_payload(result, *plan, settings.strict, settings_.payload);
}

Result<ResultPayload> TaskExecutor::orchestrate(OrchestrationDescription description, const fs::path& work_dir,
                                                std::stop_token end_early, std::stop_token abort,
                                                EventSink* events) const {
  const std::string test_name = description.test_name;
  const fs::path results = settings_.results_dir / safe_folder_name(test_name);
  const OrchestrationSettings settings = orchestration_settings();
  auto plan = plan_orchestration(std::move(description), settings, {{"results_dir", results.string()}});
  if (!plan) return plan.error();

  // One run of a name per work folder: a second would empty the first one's folders.
  const fs::path folder = work_dir / "orchestrations" / safe_folder_name(test_name);
  std::error_code ec;
  fs::create_directories(folder.parent_path(), ec);
  fs::create_directories(results, ec);
  const fs::path lock_path = folder.string() + ".lock";
  auto lock = lock_file(lock_path);
  if (!lock) return lock.error();
  if (!lock->has_value()) {
    return make_error("the orchestration '" + test_name + "' is already running with the work folder " +
                      work_dir.string() + " (" + lock_path.string() + " is locked)");
  }

  Task task;
  task.identity.value = test_name;
  task.service = test_name;
  TaskRecorder recorder(task, settings_.results_layout ? std::optional(results) : std::nullopt, events, sequence_,
                        &layout_io_);
  recorder.start_task(test_name);
  Orchestrator orchestrator(*plan, runner_, folder, settings);
  const auto result = run_orchestration_recorded(orchestrator, recorder, std::move(end_early), std::move(abort),
                                                 {{"file://" + results.string(), "results"}});
  recorder.end_task(orchestration_status(result));
  return orchestration_payload(result, *plan, settings.strict, settings_.payload);
}

OrchestrationSettings TaskExecutor::orchestration_settings() const {
  OrchestrationSettings settings;
  settings.services_dir = settings_.services_dir;
  settings.default_timeout = settings_.default_timeout;
  settings.launch = launch_settings();
  settings.strict = settings_.strict_orchestrations;
  settings.runtime = settings_.orchestration_runtime;
  return settings;
}

LaunchSettings TaskExecutor::launch_settings() const {
  LaunchSettings launch = settings_.launch;
  launch.tail_bytes = settings_.payload.details_tail;
  return launch;
}

}  // namespace proctor
