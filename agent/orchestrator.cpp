#include "agent/orchestrator.hpp"

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <thread>

#include <spdlog/spdlog.h>

#include "agent/workspace.hpp"
#include "common/file_io.hpp"
#include "common/text.hpp"

namespace proctor {

namespace fs = std::filesystem;
using std::chrono::milliseconds;

namespace {

double to_seconds(std::chrono::nanoseconds d) {
  return std::chrono::duration<double>(d).count();
}
double to_ms(std::chrono::nanoseconds d) {
  return std::chrono::duration<double, std::milli>(d).count();
}

// The last non-empty line of a process's output, shortened for a one-line summary.
std::string last_line(std::string_view tail) {
  while (!tail.empty() && (tail.back() == '\n' || tail.back() == '\r' || tail.back() == ' '))
    tail.remove_suffix(1);
  const auto newline = tail.find_last_of('\n');
  std::string line(newline == std::string_view::npos ? tail : tail.substr(newline + 1));
  if (line.size() > 200) line = line.substr(0, 197) + "...";
  return make_valid_utf8(line);
}

// The agent's built-in inputs of one run (SPEC §5.2), over the prepared inputs.
ServiceInputs run_inputs(const PreparedService& prepared, const std::string& pid,
                         const fs::path& service_dir, const fs::path& junit_xml) {
  ServiceInputs inputs = prepared.inputs;
  add_builtin_inputs(inputs, pid, service_dir, static_cast<double>(prepared.timeout.count()) / 1000.0, junit_xml);
  return inputs;
}

// The folders of one event (or setup): its own copy of the service, its TMPDIR.
struct EventFolders {
  fs::path root;
  fs::path service_dir() const { return root / "service"; }
  fs::path tmp_dir() const { return root / "tmp"; }
  fs::path junit_xml() const { return root / "reports" / "junit.xml"; }
};

Result<EventFolders> make_event_folders(const fs::path& work_dir, const std::string& prefix,
                                        const PreparedService& prepared) {
  // The index keeps two labels apart that safe_folder_name would make one ("x[2]", "x_2_").
  EventFolders folders{work_dir / (prefix + "-" + safe_folder_name(prepared.label))};
  std::error_code ec;
  fs::remove_all(folders.root, ec);
  if (ec) return make_error("cannot empty " + folders.root.string() + ": " + ec.message());
  if (auto copied = copy_tree(prepared.service.dir, folders.service_dir()); !copied)
    return copied.error();
  fs::create_directories(folders.tmp_dir(), ec);
  if (!ec) fs::create_directories(folders.junit_xml().parent_path(), ec);
  if (ec)
    return make_error("cannot create the folders of " + prepared.label + " in " +
                      folders.root.string() + ": " + ec.message());
  return folders;
}

// Where a run ended: how the process went, judged against the service's exit codes.
void judge(RunReport& run, const ServiceSpec& spec) {
  const ProcessOutcome& outcome = run.outcome;
  const auto& valid = spec.valid_exit_codes;
  const bool valid_exit =
      outcome.exit_code && std::find(valid.begin(), valid.end(), *outcome.exit_code) != valid.end();
  std::string text;
  if (!outcome.started) {
    run.status = RecordStatus::error;
    text = "could not start: " + outcome.start_error;
  } else if (outcome.timed_out) {
    run.status = RecordStatus::timeout;
    text = "timed out after " + three_decimals(to_seconds(outcome.wall)) + " s and was stopped";
  } else if (run.stopped_at_end) {
    // The kill switch stopped it: the end of the orchestration, not a failure of the run,
    // unless it answered the switch with an exit code its service calls invalid.
    const bool broke = outcome.exit_code && !valid_exit && !outcome.cancelled;
    run.status = valid_exit ? RecordStatus::success
                            : (broke ? RecordStatus::failure : RecordStatus::terminated);
    text = "stopped by the kill switch; " + describe_end(outcome);
    if (broke) text += ", not in valid_exit_codes " + exit_code_list(valid);
  } else if (valid_exit) {
    run.status = RecordStatus::success;
    text = describe_end(outcome);
  } else {
    run.status = RecordStatus::failure;
    text = describe_end(outcome);
    if (outcome.exit_code) text += ", not in valid_exit_codes " + exit_code_list(valid);
  }
  if (run.start_delay) {  // scheduled runs only: a setup has none
    text += "; started " + three_decimals(to_ms(*run.start_delay)) + " ms after its planned time " +
            three_decimals(to_seconds(run.planned)) + " s";
  }
  if (const auto line = last_line(outcome.output_tail); !line.empty())
    text += "; last output: " + line;
  run.summary = text;
}

void judge_skip(RunReport& run, std::chrono::nanoseconds interval) {
  run.status = RecordStatus::warning;
  std::string when = "planned at " + three_decimals(to_seconds(run.planned)) + " s";
  if (run.count > 1) {
    when = std::to_string(run.count) + " runs planned from " + three_decimals(to_seconds(run.planned)) +
           " s every " + three_decimals(to_seconds(interval)) + " s";
  }
  switch (*run.skipped) {
    case SkipReason::overlap:
      run.summary = "skipped (" + when + "): the previous run was still going";
      break;
    case SkipReason::missed:
      run.summary = "skipped (" + when + "): the orchestrator was late and a later run was due";
      break;
    case SkipReason::stopped:
      run.summary = "skipped (" + when + "): the orchestration was stopped";
      break;
  }
}

// The Schedule's view of the plan's events.
std::vector<ScheduledEvent> scheduled_events(const OrchestrationPlan& plan) {
  std::vector<ScheduledEvent> events;
  for (const auto& event : plan.description.events) {
    ScheduledEvent scheduled;
    if (event.interval)
      scheduled.interval = std::chrono::duration_cast<ScheduleDuration>(*event.interval);
    scheduled.at_startup = event.at_startup;
    scheduled.at_teardown = event.at_teardown;
    events.push_back(scheduled);
  }
  return events;
}

}  // namespace

std::string RunReport::name() const {
  if (setup) return label;
  std::string text = label + " #" + std::to_string(number);
  if (count > 1) text += "-#" + std::to_string(number + count - 1);
  return text;
}

bool RunReport::failed(bool strict) const {
  if (skipped) return strict && *skipped != SkipReason::stopped;
  return status == RecordStatus::failure || status == RecordStatus::error ||
         status == RecordStatus::timeout;
}

std::string OrchestrationResult::summary() const {
  std::string text = std::to_string(started) + " runs: " + std::to_string(succeeded) +
                     " succeeded, " + std::to_string(failed) + " failed, " +
                     std::to_string(stopped) + " stopped by the kill switch";
  if (skipped > 0) text += "; " + std::to_string(skipped) + " skipped";
  if (delays.runs > 0) {
    text += "; start delay p50 " + three_decimals(delays.p50_ms) + " ms, p99 " + three_decimals(delays.p99_ms) +
            " ms, max " + three_decimals(delays.max_ms) + " ms";
  }
  if (stopped_early) text += "; ended early by a signal";
  if (error) text += "; " + *error;
  return text;
}

nlohmann::json OrchestrationResult::facts() const {
  nlohmann::json skipped_by = nlohmann::json::object();
  for (const auto& run : runs) {
    if (run.skipped) {
      auto& slot = skipped_by[to_string(*run.skipped)];
      slot = slot.is_null() ? run.count : slot.get<std::uint64_t>() + run.count;
    }
  }
  nlohmann::json facts = {{"runs", started},
                          {"succeeded", succeeded},
                          {"failed", failed},
                          {"stopped", stopped},
                          {"skipped", skipped},
                          {"skipped_by_reason", skipped_by},
                          {"stopped_early", stopped_early},
                          {"passed", passed},
                          {"start_delay_ms",
                           {{"runs", delays.runs},
                            {"p50", delays.p50_ms},
                            {"p99", delays.p99_ms},
                            {"max", delays.max_ms}}}};
  if (error) facts["error"] = *error;
  return facts;
}

Result<DescriptionCheck> read_orchestration_file(const fs::path& file) {
  std::error_code ec;
  if (fs::file_size(file, ec) > kMaxDescriptionBytes && !ec) {
    return make_error("the orchestration description " + file.string() + " is larger than 1 MiB");
  }
  auto text = read_whole_file(file, "the orchestration description");
  if (!text) return text.error();
  return check_orchestration(*text, file.stem().string());
}

Result<OrchestrationDescription> load_orchestration(const fs::path& file) {
  auto check = read_orchestration_file(file);
  if (!check) return check.error();
  for (const auto& warning : check->warnings) spdlog::warn("{}: {}", file.string(), warning);
  if (!check->valid()) return make_error(file.string() + ": " + join(check->errors, "; "));
  return std::move(check->description);
}

std::optional<fs::path> find_description(const fs::path& dir, const std::string& name) {
  if (!is_plain_name(name)) return std::nullopt;
  std::error_code ec;
  const fs::path file = dir / (name + ".json");
  if (fs::is_regular_file(file, ec)) return file;
  return std::nullopt;
}

Result<OrchestrationPlan> plan_orchestration(OrchestrationDescription description,
                                             const OrchestrationSettings& settings,
                                             const ServiceInputs& agent_inputs) {
  std::vector<std::string> problems;
  OrchestrationPlan plan;
  plan.total = settings.runtime.value_or(description.total());
  if (plan.total < milliseconds(1)) {
    return make_error(
        "the orchestration would last under a millisecond (total_hours, or --runtime)");
  }
  if (description.events.size() + description.setup_services.size() > kMaxOrchestrationEvents) {
    return make_error("the orchestration has " + std::to_string(description.events.size()) +
                      " events and " + std::to_string(description.setup_services.size()) +
                      " setup services; at most " + std::to_string(kMaxOrchestrationEvents) +
                      " in all, each a process that may run at once");
  }
  if (!settings.services_dir) {
    return make_error(
        "the orchestration's events are services, found by name in --services DIR, and none was "
        "given");
  }
  const auto prepare =
      [&](const std::string& where, const std::string& label, const std::string& name,
          const std::map<std::string, std::string>& params) -> std::optional<PreparedService> {
    auto service = load_named_service(*settings.services_dir, name);
    if (!service) {
      problems.push_back(where + ": " + service.error().message);
      return std::nullopt;
    }
    if (!service->spec.runs_on_agent()) {
      problems.push_back(where + ": the service '" + name + "' is a " + service->spec.type +
                         ", which an agent cannot run");
      return std::nullopt;
    }
    if (service->spec.repository) {
      problems.push_back(where + ": the service '" + name +
                         "' takes its code from a repository block, which orchestrations do not "
                         "fetch: keep its code "
                         "in its folder");
      return std::nullopt;
    }
    PreparedService prepared{label, std::move(*service), {}, milliseconds(0), false};
    const ServiceSpec& spec = prepared.service.spec;
    prepared.inputs = default_inputs(spec);
    for (const auto& [key, value] : agent_inputs) prepared.inputs[key] = value;
    bool ok = true;
    for (const auto& [key, value] : params) {
      if (is_agent_set_input(key)) {
        problems.push_back(where + ": params '" + make_valid_utf8(key) +
                           "' is set by the agent for every run");
        ok = false;
        continue;
      }
      const ServiceProperty* property = spec.property(key);
      if (property == nullptr || !property->is_input()) {
        std::vector<std::string> inputs;
        for (const auto& p : spec.properties) {
          if (p.is_input()) inputs.push_back(p.key);
        }
        problems.push_back(where + ": params '" + make_valid_utf8(key) +
                           "' is not an input property of the service '" + name +
                           "' (its inputs: " + (inputs.empty() ? "none" : join(inputs, ", ")) +
                           ")");
        ok = false;
        continue;
      }
      prepared.inputs[key] = value;
    }
    if (!ok) return std::nullopt;
    const double timeout_s = spec.timeout_seconds.value_or(
        static_cast<double>(settings.default_timeout.count()) / 1000.0);
    prepared.timeout = milliseconds(static_cast<std::int64_t>(std::ceil(timeout_s * 1000.0)));
    prepared.own_timeout = spec.timeout_seconds.has_value();
    // The values a run will have, so the check sees what the service will get.
    const ServiceInputs probe =
        run_inputs(prepared, "check", fs::path("/check/service"), fs::path("/check/junit.xml"));
    if (auto checked = check_inputs(spec, probe); !checked) {
      problems.push_back(where + ": " + checked.error().message);
      return std::nullopt;
    }
    if (auto command = expand_command(spec.cmd, probe); !command) {
      problems.push_back(where + ": the command of the service '" + name +
                         "' cannot be built: " + command.error().message);
      return std::nullopt;
    }
    return prepared;
  };

  for (std::size_t i = 0; i < description.setup_services.size(); ++i) {
    const auto& name = description.setup_services[i];
    if (auto prepared =
            prepare("unref_setup_fixtures[" + std::to_string(i) + "]", "setup-" + name, name, {})) {
      plan.setups.push_back(std::move(*prepared));
    }
  }
  const auto labels = description.event_labels();
  for (std::size_t i = 0; i < description.events.size(); ++i) {
    const auto& event = description.events[i];
    if (auto prepared = prepare("events[" + std::to_string(i) + "] (" + event.name + ")", labels[i],
                                event.name, event.params)) {
      plan.events.push_back(std::move(*prepared));
    }
  }
  if (!problems.empty()) return make_error(join(problems, "; "));
  plan.description = std::move(description);
  return plan;
}

Orchestrator::Orchestrator(const OrchestrationPlan& plan, ProcessRunner& runner, fs::path work_dir,
                           OrchestrationSettings settings, std::string cookie)
    : plan_(plan),
      runner_(runner),
      work_dir_(std::move(work_dir)),
      settings_(std::move(settings)),
      cookie_(std::move(cookie)) {}

namespace {

// What the run threads hand back to the orchestrator's loop.
struct Completion {
  std::size_t key = 0;  // the active run's key
  ProcessOutcome outcome;
  std::optional<ScheduleTime> started;  // when the process started (its on_start ran)
  nlohmann::json outputs = nlohmann::json::object();
};

// The loop's mailbox: completions from the run threads, signals from the stop tokens.
struct Mailbox {
  std::mutex mutex;
  std::condition_variable wake;
  std::deque<Completion> done;
  bool end_requested = false;
  bool abort_requested = false;
};

struct ActiveRun {
  RunReport report;
  const PreparedService* prepared = nullptr;
  std::stop_source kill;  // the kill switch
  std::jthread thread;
  ActiveRun() = default;
  ActiveRun(const ActiveRun&) = delete;
  ActiveRun& operator=(const ActiveRun&) = delete;
  // Left with its run going (run() unwinding): the run is stopped before it is joined.
  ~ActiveRun() { kill.request_stop(); }
  // Kills the run at the end of its time (the schedule's end, or a signal's).
  void stop_at_end() {
    report.stopped_at_end = true;
    kill.request_stop();
  }
};

}  // namespace

OrchestrationResult Orchestrator::run(OrchestrationObserver& observer, std::stop_token end_early,
                                      std::stop_token abort) {
  OrchestrationResult result;
  const std::string& test_name = plan_.description.test_name;

  // Each event's (and setup's) folders and the process every run of it starts from.
  struct EventLaunch {
    EventFolders folders;
    ProcessSpec process;
  };
  std::map<const PreparedService*, EventLaunch> launches;
  for (const auto* group : {&plan_.setups, &plan_.events}) {
    for (std::size_t index = 0; index < group->size(); ++index) {
      const PreparedService& prepared = (*group)[index];
      auto made = make_event_folders(
          work_dir_, (group == &plan_.setups ? "s" : "e") + std::to_string(index), prepared);
      if (!made) {
        result.error =
            "The orchestration's workspace could not be prepared: " + made.error().message;
        return result;
      }
      // The process of every run of this event: its inputs are the same each run, so
      // input.json and arguments.json are written once, here, not before each planned start.
      auto process =
          service_process(prepared.service.spec,
                          run_inputs(prepared, test_name + "." + prepared.label,
                                     made->service_dir(), made->junit_xml()),
                          made->service_dir(), made->tmp_dir(), prepared.timeout, settings_.launch);
      if (!process) {
        result.error =
            "The orchestration's workspace could not be prepared: " + process.error().message;
        return result;
      }
      std::error_code ec;
      fs::remove(made->service_dir() / "output.json", ec);  // outputs are what a run writes
      launches.emplace(&prepared, EventLaunch{*made, std::move(*process)});
    }
  }

  Mailbox mailbox;
  const auto on_end = [&mailbox] {
    std::lock_guard lock(mailbox.mutex);
    mailbox.end_requested = true;
    mailbox.wake.notify_all();
  };
  const auto on_abort = [&mailbox] {
    std::lock_guard lock(mailbox.mutex);
    mailbox.end_requested = true;
    mailbox.abort_requested = true;
    mailbox.wake.notify_all();
  };
  std::stop_callback end_callback(end_early, on_end);
  std::stop_callback abort_callback(abort, on_abort);

  std::map<std::size_t, ActiveRun> active;  // by key: event index, or setups after the events
  const std::size_t setup_base = plan_.events.size();

  // Starts a run on a thread of its own, so the loop never waits on a process. What
  // happens between the planned instant and the process's start is only this: a thread,
  // a copy of the prepared process, the observer's record.
  const auto launch = [&](std::size_t key, const PreparedService& prepared, RunReport report) {
    ActiveRun& run = active[key];
    run.report = std::move(report);
    run.prepared = &prepared;
    const auto& event_launch = launches.at(&prepared);
    const EventFolders& where = event_launch.folders;
    const ProcessSpec& prepared_process = event_launch.process;
    try {
      run.thread =
          std::jthread([this, key, &prepared, &prepared_process, where, &test_name, &observer,
                        &mailbox, report = run.report, kill = run.kill.get_token()] {
            Completion completion;
            completion.key = key;
            try {
              ProcessSpec process = prepared_process;
              // A cookie of the run's own below the task's: the process scan of one run
              // must not take another run's processes for its own leftovers, and a
              // restarted agent still finds them all under the task's cookie.
              if (!cookie_.empty())
                process.cookie =
                    cookie_ + "." + std::to_string(key) + "-" + std::to_string(report.number);
              // Which run this is, for a service that wants to know (its inputs stay the event's).
              process.env.emplace_back("PROCTOR_RUN", report.name());
              process.env.emplace_back("PROCTOR_RUN_KIND", to_string(report.kind));
              // A scheduled run of a service without a timeout of its own runs until the
              // kill switch at the end; setups and teardowns keep the default timeout.
              if (!prepared.own_timeout && !report.setup && report.kind != RunKind::teardown) {
                process.timeout = milliseconds(0);
              }
              // The output goes to the observer line by line: no file to create, and wait
              // for, before the start. The run's record is made once its process runs, so
              // the record's cost is not in the start's delay.
              process.on_start = [&observer, &report, &completion] {
                completion.started = ScheduleClock::now();
                observer.run_started(report);
              };
              process.on_line = [&observer, &report](std::string_view line) {
                observer.run_output(report, line);
              };
              completion.outcome = runner_.run(process, kill);
              if (completion.outcome.started) {
                completion.outputs =
                    read_service_outputs(prepared.service.spec, where.service_dir() / "output.json",
                                         "orchestration " + test_name + ", " + report.name());
                std::error_code ec;
                fs::remove(where.service_dir() / "output.json",
                           ec);  // the next run's outputs are its own
              }
            } catch (const std::exception& e) {
              // The runner has stopped the run's processes on its way out; the run is
              // reported as broken, never lost, and the agent goes on.
              completion.outcome = ProcessOutcome{};
              completion.outcome.start_error =
                  std::string("the agent failed while running it: ") + e.what();
            }
            std::lock_guard lock(mailbox.mutex);
            mailbox.done.push_back(std::move(completion));
            mailbox.wake.notify_all();
          });
    } catch (const std::exception& e) {
      Completion completion;
      completion.key = key;
      completion.outcome.start_error = std::string("no thread for the run: ") + e.what();
      std::lock_guard lock(mailbox.mutex);
      mailbox.done.push_back(std::move(completion));
    }
  };

  const auto tally = [&](const RunReport& run) {
    if (run.skipped) {
      result.skipped += run.count;
    } else {
      ++result.started;
      if (run.status == RecordStatus::success)
        ++result.succeeded;
      else if (run.status == RecordStatus::terminated)
        ++result.stopped;
      else
        ++result.failed;
    }
  };

  // Takes what the run threads finished; returns the runs that ended.
  ScheduleTime schedule_start{};
  const auto collect = [&](std::deque<Completion>& done) {
    std::vector<RunReport> ended;
    for (auto& completion : done) {
      auto it = active.find(completion.key);
      if (it == active.end()) continue;
      ActiveRun& run = it->second;
      if (run.thread.joinable()) run.thread.join();
      RunReport report = std::move(run.report);
      report.outcome = std::move(completion.outcome);
      report.outputs = std::move(completion.outputs);
      if (completion.started && !report.setup)
        report.start_delay = *completion.started - (schedule_start + report.planned);
      judge(report, run.prepared->service.spec);
      active.erase(it);
      ended.push_back(std::move(report));
    }
    done.clear();
    return ended;
  };
  const auto finish = [&](RunReport report) {
    tally(report);
    observer.run_ended(report);
    spdlog::info("orchestration {}: {} ({}): {}", test_name, report.name(), to_string(report.kind),
                 report.summary);
    result.runs.push_back(std::move(report));
  };

  // The setup services, one after the other; any failure stops the orchestration.
  for (std::size_t i = 0; i < plan_.setups.size() && !result.error; ++i) {
    const PreparedService& setup = plan_.setups[i];
    {
      std::lock_guard lock(mailbox.mutex);
      if (mailbox.end_requested) {
        result.error = "The orchestration was stopped before its setup services ran.";
        result.stopped_early = true;
        break;
      }
    }
    RunReport report;
    report.event = i;
    report.setup = true;
    report.label = setup.label;
    report.number = 1;
    const std::size_t key = setup_base + i;
    launch(key, setup, report);
    std::deque<Completion> done;
    {
      std::unique_lock lock(mailbox.mutex);
      bool killed = false;
      mailbox.wake.wait(lock, [&] {
        if (mailbox.end_requested && !killed && active.count(key) != 0) {
          active[key].stop_at_end();
          killed = true;
          result.stopped_early = true;
        }
        return !mailbox.done.empty();
      });
      done.swap(mailbox.done);
    }
    for (auto& ended : collect(done)) {
      const bool ok = ended.status == RecordStatus::success;
      const std::string why = ended.summary;
      finish(std::move(ended));
      const std::string& name = plan_.description.setup_services[i];
      if (!ok && result.stopped_early) {
        result.error =
            "The orchestration was stopped by a signal while its setup service '" + name + "' ran.";
      } else if (!ok) {
        result.error = "The setup service '" + name + "' did not succeed: " + why + ".";
      }
    }
  }

  if (!result.error) {
    Schedule schedule(scheduled_events(plan_), ScheduleClock::now(), plan_.total);
    schedule_start = schedule.start();
    bool end_applied = false;
    bool abort_applied = false;
    spdlog::info("orchestration {}: {} event(s) for {} s", test_name, plan_.events.size(),
                 three_decimals(to_seconds(plan_.total)));
    for (;;) {
      std::deque<Completion> done;
      bool end_now = false;
      bool abort_now = false;
      {
        std::unique_lock lock(mailbox.mutex);
        const auto ready = [&] {
          return !mailbox.done.empty() || (mailbox.end_requested && !end_applied) ||
                 (mailbox.abort_requested && !abort_applied);
        };
        if (!ready()) {
          if (auto wake = schedule.next_wakeup())
            mailbox.wake.wait_until(lock, *wake, ready);
          else if (!(schedule.phase() == SchedulePhase::done && active.empty()))
            mailbox.wake.wait(lock, ready);
        }
        done.swap(mailbox.done);
        end_now = mailbox.end_requested && !end_applied;
        abort_now = mailbox.abort_requested && !abort_applied;
      }
      const ScheduleTime now = ScheduleClock::now();
      // Recorded only after the runs due now were launched: a record's files are written
      // here, and must not add to their start delay.
      auto ended = collect(done);
      for (const auto& run : ended) schedule.finished(run.event, now);
      if (end_now) {
        end_applied = true;
        if (schedule.phase() == SchedulePhase::running && now < schedule.end()) {
          result.stopped_early = true;
          spdlog::warn(
              "orchestration {}: signal received: ending now ({} s early); teardown events still "
              "run",
              test_name, three_decimals(to_seconds(schedule.end() - now)));
        }
        schedule.end_early(now);
      }
      if (abort_now) {
        abort_applied = true;
        if (schedule.phase() != SchedulePhase::done) result.stopped_early = true;
        spdlog::warn("orchestration {}: second signal: stopping every run, no teardown", test_name);
        schedule.abandon_teardown();
        for (auto& [key, run] : active) run.stop_at_end();
      }
      // A planned run as a report, with what the schedule knows of it.
      const auto report_of = [&](const PlannedRun& planned) {
        RunReport report;
        report.event = planned.event;
        report.label = plan_.events[planned.event].label;
        report.kind = planned.kind;
        report.number = planned.number;
        report.count = planned.count;
        report.planned = planned.planned - schedule_start;
        report.skipped = planned.skipped;
        return report;
      };
      auto step = schedule.advance(now);
      for (const std::size_t event : step.stop) {
        if (auto it = active.find(event); it != active.end()) it->second.stop_at_end();
      }
      for (const auto& planned : step.start)
        launch(planned.event, plan_.events[planned.event], report_of(planned));
      for (auto& run : ended) finish(std::move(run));
      for (const auto& planned : step.skipped) {
        RunReport report = report_of(planned);
        const auto interval =
            plan_.description.events[planned.event].interval.value_or(milliseconds(0));
        judge_skip(report, interval);
        finish(std::move(report));
      }
      if (schedule.phase() == SchedulePhase::done && active.empty()) break;
    }
  }

  // Start delays of the scheduled runs.
  std::vector<double> delays;
  for (const auto& run : result.runs) {
    if (run.start_delay) delays.push_back(to_ms(*run.start_delay));
  }
  if (!delays.empty()) {
    std::sort(delays.begin(), delays.end());
    const auto at = [&](double q) {
      const auto index =
          static_cast<std::size_t>(std::ceil(q * static_cast<double>(delays.size()))) - 1;
      return delays[std::min(index, delays.size() - 1)];
    };
    result.delays = StartDelays{delays.size(), at(0.50), at(0.99), delays.back()};
  }
  if (result.stopped_early && !result.error) {
    result.error =
        "The orchestration was stopped by a signal before its end (its teardown events ran).";
  }
  result.passed = !result.error &&
                  std::none_of(result.runs.begin(), result.runs.end(),
                               [&](const RunReport& run) { return run.failed(settings_.strict); });
  spdlog::info("orchestration {}: {}: {}", test_name, result.passed ? "passed" : "failed",
               result.summary());
  return result;
}

ResultPayload orchestration_payload(const OrchestrationResult& result,
                                    const OrchestrationPlan& plan, bool strict,
                                    const PayloadOptions& options) {
  Report report;
  TestSuite suite;
  suite.name = plan.description.test_name;
  double total = 0;
  for (const auto& run : result.runs) {
    TestCase test_case;
    test_case.classname = plan.description.test_name;
    test_case.name = run.name();
    test_case.time = to_seconds(run.outcome.wall);
    total += test_case.time;
    CaseOutcome outcome;
    outcome.message = run.summary;
    if (run.skipped) {
      const bool fails = run.failed(strict);  // the same verdict as the orchestration's
      test_case.status = fails ? CaseStatus::failed : CaseStatus::skipped;
      outcome.kind = fails ? "failure" : "skipped";
      outcome.type = std::string("skipped-") + to_string(*run.skipped);
    } else if (run.status == RecordStatus::success || run.status == RecordStatus::terminated) {
      test_case.status = CaseStatus::passed;
    } else {
      test_case.status =
          run.status == RecordStatus::failure ? CaseStatus::failed : CaseStatus::errored;
      outcome.kind = run.status == RecordStatus::failure ? "failure" : "error";
      outcome.type = to_string(run.status);
      outcome.text = run.outcome.output_tail;
    }
    if (!outcome.kind.empty()) test_case.outcomes.push_back(std::move(outcome));
    test_case.properties.emplace_back("kind", to_string(run.kind));
    if (run.start_delay)
      test_case.properties.emplace_back("start_delay_ms", three_decimals(to_ms(*run.start_delay)));
    suite.cases.push_back(std::move(test_case));
  }
  suite.time = total;
  report.suites.push_back(std::move(suite));
  RunFacts facts;
  facts.failure = result.error;
  double wall = 0;
  for (const auto& run : result.runs)
    wall = std::max(wall, to_seconds(run.planned + run.outcome.wall));
  facts.wall_seconds = wall;
  // A run skipped for overlap is reported, and fails the orchestration only under --strict.
  PayloadOptions payload_options = options;
  payload_options.skips_pass = true;
  return build_payload(&report, facts, payload_options);
}

}  // namespace proctor
