#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/orchestration_run.hpp"
#include "agent/orchestrator.hpp"
#include "common/file_io.hpp"
#include "common/orchestration.hpp"
#include "tests/unit/fakes.hpp"
#include "tests/unit/require_ok.hpp"
#include "tests/unit/temp_dir.hpp"

using namespace proctor;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

// The seed's example, comments and all.
constexpr const char* kSeedExample = R"({
  "test_name": "my_orchestration_test",                 // Name of the test (no need to have a "test" prefix or suffix)
  "total_hours": 3,                                     // Total number of hours for the test to run
  "unref_setup_fixtures": ["device_with_collectd"],     // A list of setup fixtures that won't be references in actual test events
  "events": [                                           // A list of all "events" making up the test
    {
      "name": "start_playback",                         // Mandatory: The name of the event as it is implemented, see Events section below
      "interval_sec": 300,                              // Optional: The number of seconds between eache execution of this event.
      "at_startup": true,                               // Optional(Defaults to true)
      "at_teardown": false,                              // Optional(Defaults to false)
      "params":{                                        // Optional: Params is a dict of simple key: values
        "video_path": "/home/orch-tests/video-files/high_res_clip.mp4"
      }
    },
    {
      "name": "start_streamer",
      "at_startup": true
    },
    {
      "name": "collect_system_report",
      "at_startup": false,
      "at_teardown": true
    }
  ]
})";

bool has(const std::vector<std::string>& lines, const std::string& part) {
  return std::any_of(lines.begin(), lines.end(),
                     [&](const std::string& l) { return l.find(part) != std::string::npos; });
}

void write(const fs::path& file, const std::string& text) {
  fs::create_directories(file.parent_path());
  std::ofstream(file) << text;
}

// A services folder: name -> service.yaml.
void add_service(const fs::path& services, const std::string& name, const std::string& yaml) {
  write(services / name / "service.yaml", yaml);
}

OrchestrationDescription description(const std::string& json) {
  auto parsed = parse_orchestration(json, "");
  REQUIRE_OK(parsed);
  return *parsed;
}

// Records what the orchestrator tells, thread-safely.
class RecordingObserver final : public OrchestrationObserver {
 public:
  void run_started(const RunReport& run) override {
    std::lock_guard lock(mutex_);
    started.push_back(run.name());
  }
  void run_output(const RunReport& run, std::string_view line) override {
    std::lock_guard lock(mutex_);
    output.push_back(run.name() + ": " + std::string(line));
  }
  std::vector<std::string> output;
  void run_ended(const RunReport& run) override {
    std::lock_guard lock(mutex_);
    ended.push_back(run);
  }
  std::vector<std::string> started;
  std::vector<RunReport> ended;

 private:
  std::mutex mutex_;
};

}  // namespace

TEST_SUITE("orchestration description") {
  TEST_CASE("the seed's example reads unchanged, comments and defaults included") {
    auto check = check_orchestration(kSeedExample, "my_orchestration_test");
    REQUIRE(check.valid());
    CHECK(check.warnings.empty());
    const auto& d = check.description;
    CHECK(d.test_name == "my_orchestration_test");
    CHECK(d.total_hours == 3.0);
    CHECK(d.total() == 3h);
    CHECK(d.setup_services == std::vector<std::string>{"device_with_collectd"});
    REQUIRE(d.events.size() == 3);
    CHECK(d.events[0].name == "start_playback");
    CHECK(d.events[0].interval == std::chrono::milliseconds(300'000));
    CHECK(d.events[0].params.at("video_path") == "/home/orch-tests/video-files/high_res_clip.mp4");
    CHECK(d.events[1].at_startup);
    CHECK_FALSE(d.events[1].at_teardown);
    CHECK_FALSE(d.events[1].interval);
    CHECK_FALSE(d.events[2].at_startup);
    CHECK(d.events[2].at_teardown);
  }

  TEST_CASE("test_name must equal the file name") {
    auto check = check_orchestration(kSeedExample, "other_name");
    CHECK_FALSE(check.valid());
    CHECK(has(check.errors,
              "test_name: is 'my_orchestration_test' but the file is named 'other_name'"));
  }

  TEST_CASE(
      "fractional hours; interval_min and interval_hour add up with interval_sec; params keep "
      "their JSON") {
    auto d = description(R"({"test_name": "t", "total_hours": 0.25, "events": [
      {"name": "a", "interval_sec": 30, "interval_min": 1, "interval_hour": 0.5,
       "params": {"count": 3, "on": true, "list": [1, 2], "text": "x y"}}]})");
    CHECK(d.total() == 15min);
    CHECK(d.events[0].interval == std::chrono::milliseconds((30 + 60 + 1800) * 1000));
    CHECK(d.events[0].params.at("count") == "3");
    CHECK(d.events[0].params.at("on") == "true");
    CHECK(d.events[0].params.at("list") == "[1,2]");
    CHECK(d.events[0].params.at("text") == "x y");
  }

  TEST_CASE("every problem is reported with its path") {
    auto check =
        check_orchestration(R"({"test_name": "a/b", "total_hours": -1, "unref_setup_fixtures": "x",
      "events": [{"interval_sec": 0}, {"name": "n", "at_startup": "yes", "params": [1]},
                 {"name": "never", "at_startup": false}, 7]})",
                            "");
    CHECK(has(check.errors, "test_name: must be a plain name"));
    CHECK(has(check.errors, "total_hours: must be a number above 0, not -1"));
    CHECK(has(check.errors, "unref_setup_fixtures: must be a list of service names, not a string"));
    CHECK(has(check.errors, "events[0].name: missing"));
    CHECK(has(check.errors, "events[0].interval_sec: must be a number above 0, not 0"));
    CHECK(has(check.errors, "events[1].at_startup: must be true or false, not a string"));
    CHECK(has(check.errors, "events[1].params: must be an object of key: value, not a list"));
    CHECK(has(check.errors, "events[2]: never runs"));
    CHECK(has(check.errors, "events[3]: must be an object, not a number"));
    CHECK(check.errors.size() == 9);
  }

  TEST_CASE("missing parts, unknown keys and an event that cannot run before the end") {
    auto check = check_orchestration(R"({"test_name": "t"})", "t");
    CHECK(has(check.errors, "total_hours: missing"));
    CHECK(has(check.errors, "events: missing"));
    check = check_orchestration(R"({"test_name": "t", "total_hours": 1, "events": []})", "t");
    CHECK(has(check.errors, "events: is empty"));
    check = check_orchestration(R"({"test_name": "t", "total_hours": 1, "extra": 1,
      "events": [{"name": "a", "interval_hour": 2, "at_startup": false, "colour": "red"}]})",
                                "t");
    CHECK(check.valid());
    CHECK(has(check.warnings, "extra: not a description key"));
    CHECK(has(check.warnings, "events[0].colour: not an event key"));
    CHECK(has(check.warnings,
              "events[0]: its first run (after one interval) comes at or after total_hours"));
  }

  TEST_CASE("hostile text: not JSON, not UTF-8, too deep, too large, more than a year") {
    CHECK(has(check_orchestration("{\"test_name\": ", "").errors, "not JSON"));
    CHECK(has(check_orchestration(R"({"test_name": "t", "total_hours": 1e400})", "").errors,
              "not JSON"));
    CHECK(has(check_orchestration("{\"test_name\": \"\xff\"}", "").errors,
              "not valid UTF-8 (at byte 15)"));
    CHECK(has(check_orchestration(std::string(100, '[') + std::string(100, ']'), "").errors,
              "nests deeper"));
    CHECK(has(check_orchestration(std::string(kMaxDescriptionBytes + 1, ' '), "").errors,
              "larger than 1 MiB"));
    CHECK(has(check_orchestration(
                  R"({"test_name": "t", "total_hours": 1e9, "events": [{"name": "a"}]})", "")
                  .errors,
              "total_hours: is more than a year"));
    CHECK(has(check_orchestration("[1]", "").errors, "must be a JSON object, not a list"));
  }

  TEST_CASE("an event listed twice gets a label of its own") {
    auto d = description(
        R"({"test_name": "t", "total_hours": 1, "events": [{"name": "a"}, {"name": "b"}, {"name": "a"}]})");
    CHECK(d.event_labels() == std::vector<std::string>{"a", "b", "a[2]"});
  }
}

TEST_SUITE("orchestration plan") {
  TEST_CASE(
      "params become inputs after the defaults and the agent's; every problem found before "
      "anything starts") {
    test::TempDir dir;
    const fs::path services = dir / "services";
    add_service(services, "play", R"(cmd: play ${video_path} ${speed}
item_properties:
- key: video_path
  type: text
  mandatory: true
  value:
- key: speed
  type: integer
  value: 1
- key: result
  direction: output
  type: text
  value:
)");
    add_service(services, "needs", "cmd: run ${missing_key}\n");
    add_service(services, "cycle", "type: cycle\ncmd: x\n");
    OrchestrationSettings settings;
    settings.services_dir = services;

    auto good = plan_orchestration(
        description(
            R"({"test_name": "t", "total_hours": 1, "events": [{"name": "play", "params": {"video_path": "/v.mp4"}}]})"),
        settings, {{"results_dir", "/r"}, {"speed", "2"}});
    REQUIRE_OK(good);
    CHECK(good->events[0].inputs.at("video_path") == "/v.mp4");
    CHECK(good->events[0].inputs.at("speed") == "2");  // the agent's value over the default
    CHECK(good->events[0].inputs.at("results_dir") == "/r");
    CHECK(good->total == 1h);

    auto bad = plan_orchestration(
        description(R"({"test_name": "t", "total_hours": 1, "unref_setup_fixtures": ["nope"],
      "events": [{"name": "play", "params": {"speed": "fast", "video_path": "/v"}},
                 {"name": "play", "params": {"result": "x", "colour": "red"}},
                 {"name": "play"}, {"name": "needs"}, {"name": "cycle"}, {"name": "absent"}]})"),
        settings, {});
    REQUIRE_FALSE(bad.ok());
    const std::string& message = bad.error().message;
    CHECK(message.find("unref_setup_fixtures[0]: no service named 'nope'") != std::string::npos);
    CHECK(message.find("events[0] (play): the service's input 'speed' is invalid") !=
          std::string::npos);
    CHECK(message.find("events[1] (play): params 'result' is not an input property of the service "
                       "'play' (its inputs: "
                       "video_path, speed)") != std::string::npos);
    CHECK(message.find("params 'colour' is not an input property") != std::string::npos);
    CHECK(
        message.find("events[2] (play): the service's mandatory input 'video_path' has no value") !=
        std::string::npos);
    CHECK(message.find("events[3] (needs): the service 'needs' cannot be loaded") !=
          std::string::npos);
    CHECK(message.find("cmd uses ${missing_key}") != std::string::npos);
    CHECK(message.find("events[4] (cycle): the service 'cycle' is a cycle") != std::string::npos);
    CHECK(message.find("events[5] (absent): no service named 'absent'") != std::string::npos);
  }

  TEST_CASE("params the agent sets, too many events and a run under a millisecond are refused") {
    test::TempDir dir;
    add_service(dir / "services", "a",
                "cmd: true\nitem_properties:\n- key: pid\n  type: text\n  value:\n");
    OrchestrationSettings settings;
    settings.services_dir = dir / "services";
    auto plan = plan_orchestration(
        description(
            R"({"test_name": "t", "total_hours": 1, "events": [{"name": "a", "params": {"pid": "1"}}]})"),
        settings, {});
    REQUIRE_FALSE(plan.ok());
    CHECK(plan.error().message.find("params 'pid' is set by the agent for every run") !=
          std::string::npos);
    std::string events;
    for (int i = 0; i < 300; ++i) events += std::string(i == 0 ? "" : ",") + R"({"name": "a"})";
    plan = plan_orchestration(
        description(R"({"test_name": "t", "total_hours": 1, "events": [)" + events + "]}"),
        settings, {});
    REQUIRE_FALSE(plan.ok());
    CHECK(plan.error().message.find("at most 256") != std::string::npos);
    settings.runtime = 0ms;
    plan = plan_orchestration(
        description(R"({"test_name": "t", "total_hours": 1, "events": [{"name": "a"}]})"), settings,
        {});
    REQUIRE_FALSE(plan.ok());
    CHECK(plan.error().message.find("under a millisecond") != std::string::npos);
  }

  TEST_CASE("no --services folder is an error that says so") {
    auto plan = plan_orchestration(
        description(R"({"test_name": "t", "total_hours": 1, "events": [{"name": "a"}]})"),
        OrchestrationSettings{}, {});
    REQUIRE_FALSE(plan.ok());
    CHECK(plan.error().message.find("--services") != std::string::npos);
  }

  TEST_CASE("--runtime replaces total_hours") {
    test::TempDir dir;
    add_service(dir / "services", "a", "cmd: true\n");
    OrchestrationSettings settings;
    settings.services_dir = dir / "services";
    settings.runtime = 90s;
    auto plan = plan_orchestration(
        description(R"({"test_name": "t", "total_hours": 5, "events": [{"name": "a"}]})"), settings,
        {});
    REQUIRE_OK(plan);
    CHECK(plan->total == 90s);
  }
}

TEST_SUITE("orchestrator") {
  // Runs that end at once (a fake runner) on a schedule of a few milliseconds: what is
  // checked is what the orchestrator does with runs, not when.
  struct Fixture {
    test::TempDir dir;
    test::RecordingProcessRunner runner;
    RecordingObserver observer;
    OrchestrationSettings settings;
    Fixture() {
      add_service(dir / "services", "tick",
                  "cmd: tick ${label} ${pid}\nitem_properties:\n- key: label\n  type: text\n  "
                  "value: none\n");
      add_service(dir / "services", "report", "cmd: report\nvalid_exit_codes: [0, 5]\n");
      add_service(dir / "services", "prepare", "cmd: prepare\n");
      settings.services_dir = dir / "services";
    }
    OrchestrationPlan plan(const std::string& json) {
      auto planned = plan_orchestration(description(json), settings, {{"results_dir", "/results"}});
      REQUIRE_OK(planned);
      return std::move(planned).value();
    }
    OrchestrationResult run(const OrchestrationPlan& plan, std::stop_token end = {},
                            std::stop_token abort = {}) {
      Orchestrator orchestrator(plan, runner, dir / "work", settings);
      return orchestrator.run(observer, end, abort);
    }
  };

  TEST_CASE(
      "setups, then startup runs, then teardown runs: each run's service gets its params and "
      "built-ins") {
    Fixture f;
    f.runner.lines = {"hello"};
    const auto plan =
        f.plan(R"({"test_name": "t", "total_hours": 0.000001, "unref_setup_fixtures": ["prepare"],
      "events": [{"name": "tick", "params": {"label": "first"}}, {"name": "report", "at_startup": false, "at_teardown": true}]})");
    const auto result = f.run(plan);
    REQUIRE(result.runs.size() == 3);
    CHECK(result.runs[0].name() == "setup-prepare");
    CHECK(result.runs[1].name() == "tick #1");
    CHECK(result.runs[1].kind == RunKind::startup);
    CHECK(result.runs[2].name() == "report #1");
    CHECK(result.runs[2].kind == RunKind::teardown);
    CHECK(result.passed);
    CHECK(result.started == 3);
    CHECK(result.succeeded + result.stopped == 3);
    REQUIRE(f.runner.specs.size() == 3);
    const ProcessSpec* tick = nullptr;
    for (const auto& spec : f.runner.specs) {
      if (spec.argv.back().rfind("tick", 0) == 0) tick = &spec;
    }
    REQUIRE(tick != nullptr);
    CHECK(tick->argv.back() == "tick 'first' 't.tick'");
    CHECK(test::env_of(*tick, "PROCTOR_RUN") == "tick #1");
    CHECK(test::env_of(*tick, "PROCTOR_RUN_KIND") == "startup");
    CHECK(test::env_of(*tick, "OT_LABEL") == "first");
    CHECK(test::env_of(*tick, "OT_RESULTS_DIR") == "/results");
    CHECK(tick->working_dir == f.dir / "work" / "e0-tick" / "service");
    auto input = read_whole_file(tick->working_dir / "input.json", "input");
    REQUIRE_OK(input);
    CHECK(nlohmann::json::parse(*input).at("label") == "first");
    CHECK(f.observer.started.size() == 3);
    CHECK(std::count(f.observer.output.begin(), f.observer.output.end(), "tick #1: hello") == 1);
    CHECK(f.observer.ended.size() == 3);
  }

  TEST_CASE(
      "in a task, each run gets a cookie of its own below the task's; a service without a timeout "
      "runs to the end") {
    Fixture f;
    add_service(f.dir / "services", "timed", "cmd: timed\ntimeout: 5\n");
    const auto plan = f.plan(R"({"test_name": "t", "total_hours": 0.0001,
      "events": [{"name": "tick"}, {"name": "timed"}, {"name": "report", "at_startup": false, "at_teardown": true}]})");
    Orchestrator orchestrator(plan, f.runner, f.dir / "work", f.settings, "task-cookie");
    const auto result = orchestrator.run(f.observer, {}, {});
    CHECK(result.passed);
    REQUIRE(f.runner.specs.size() == 3);
    std::map<std::string, const ProcessSpec*> by_command;
    for (const auto& spec : f.runner.specs)
      by_command[spec.argv.back().substr(0, spec.argv.back().find(' '))] = &spec;
    CHECK(by_command.at("tick")->cookie == "task-cookie.0-1");
    CHECK(by_command.at("timed")->cookie == "task-cookie.1-1");
    CHECK(by_command.at("report")->cookie == "task-cookie.2-1");
    CHECK(by_command.at("tick")->timeout == 0ms);         // until the kill switch
    CHECK(by_command.at("timed")->timeout == 5000ms);     // its own
    CHECK(by_command.at("report")->timeout == 600000ms);  // a teardown: the default
  }

  TEST_CASE("two labels that make one folder name get folders of their own") {
    Fixture f;
    const auto plan = f.plan(
        R"({"test_name": "t", "total_hours": 0.0001, "events": [{"name": "tick"}, {"name": "tick"}]})");
    f.run(plan);
    REQUIRE(f.runner.specs.size() == 2);
    CHECK(f.runner.specs[0].working_dir != f.runner.specs[1].working_dir);
  }

  TEST_CASE(
      "a run that exits outside valid_exit_codes fails the orchestration; one inside does not") {
    Fixture f;
    f.runner.behaviour = [](const ProcessSpec& spec, ProcessOutcome& outcome) {
      if (spec.argv.back().rfind("tick", 0) == 0) outcome.exit_code = 3;
      if (spec.argv.back() == "report") outcome.exit_code = 5;
    };
    // 0.36 s: the fake's runs end long before the kill switch.
    const auto plan = f.plan(R"({"test_name": "t", "total_hours": 0.0001,
      "events": [{"name": "tick"}, {"name": "report", "at_startup": false, "at_teardown": true}]})");
    const auto result = f.run(plan);
    REQUIRE(result.runs.size() == 2);
    CHECK(result.runs[0].status == RecordStatus::failure);
    CHECK(result.runs[0].summary.find("exited with code 3") != std::string::npos);
    CHECK(result.runs[0].summary.find("not in valid_exit_codes [0]") != std::string::npos);
    CHECK(result.runs[1].status == RecordStatus::success);
    CHECK_FALSE(result.passed);
    CHECK(result.failed == 1);
    const auto payload = orchestration_payload(result, plan, false, PayloadOptions{});
    CHECK_FALSE(payload.passed);
    CHECK_FALSE(payload.error);
    REQUIRE(payload.cases.size() == 2);
    CHECK_FALSE(payload.cases[0].passed);
    CHECK(payload.cases[1].passed);
  }

  TEST_CASE("a failed setup stops the orchestration before any event") {
    Fixture f;
    f.runner.behaviour = [](const ProcessSpec& spec, ProcessOutcome& outcome) {
      if (spec.argv.back() == "prepare") outcome.exit_code = 1;
    };
    const auto plan =
        f.plan(R"({"test_name": "t", "total_hours": 1, "unref_setup_fixtures": ["prepare"],
      "events": [{"name": "tick", "interval_sec": 1, "at_teardown": true}]})");
    const auto result = f.run(plan);
    REQUIRE(result.runs.size() == 1);
    CHECK(f.runner.specs.size() == 1);
    REQUIRE(result.error);
    CHECK(result.error->find("The setup service 'prepare' did not succeed: exited with code 1") !=
          std::string::npos);
    CHECK_FALSE(result.passed);
    const auto payload = orchestration_payload(result, plan, false, PayloadOptions{});
    CHECK(payload.error);
  }

  TEST_CASE(
      "a signal before the start: no setup, no startup run, the teardown still runs; the result "
      "says so") {
    Fixture f;
    std::stop_source end;
    end.request_stop();
    const auto plan = f.plan(R"({"test_name": "t", "total_hours": 1,
      "events": [{"name": "tick", "interval_sec": 1}, {"name": "report", "at_startup": false, "at_teardown": true}]})");
    const auto result = f.run(plan, end.get_token());
    REQUIRE(result.runs.size() == 2);
    CHECK(result.runs[0].name() == "tick #1");
    CHECK(result.runs[0].skipped == SkipReason::stopped);
    CHECK(result.runs[1].name() == "report #1");
    CHECK(result.runs[1].status == RecordStatus::success);
    CHECK(result.stopped_early);
    CHECK_FALSE(result.passed);
    REQUIRE(result.error);
    CHECK(result.error->find("stopped by a signal") != std::string::npos);
  }

  TEST_CASE("--strict: a skipped run fails it; without, it is reported and passes") {
    RunReport skipped;
    skipped.skipped = SkipReason::overlap;
    skipped.status = RecordStatus::warning;
    CHECK(skipped.failed(true));
    CHECK_FALSE(skipped.failed(false));
    skipped.skipped = SkipReason::stopped;  // a signal's doing, not the event's
    CHECK_FALSE(skipped.failed(true));
  }

  TEST_CASE(
      "recorded: the orchestration is the service phase, each run a record and a testcase section "
      "under it") {
    Fixture f;
    const auto plan = f.plan(R"({"test_name": "t", "total_hours": 0.000001,
      "events": [{"name": "tick"}, {"name": "report", "at_startup": false, "at_teardown": true}]})");
    test::RecordingEventSink sink;
    SequenceCounter sequence;
    Task task;
    task.identity.value = "t";
    const fs::path layout = f.dir / "results" / "t";
    {
      TaskRecorder recorder(task, layout, &sink, sequence);
      recorder.start_task("t");
      Orchestrator orchestrator(plan, f.runner, f.dir / "work", f.settings);
      const auto result = run_orchestration_recorded(orchestrator, recorder, {}, {});
      recorder.end_task(orchestration_status(result));
    }
    auto tests = read_whole_file(layout / "tests.json", "tests.json");
    REQUIRE_OK(tests);
    const auto json = nlohmann::json::parse(*tests);
    CHECK(json["test_suite"]["status"] == "success");
    std::vector<std::string> titles;
    for (const auto& record : json["test_records"])
      titles.push_back(record.value("title", record["testname"].get<std::string>()));
    CHECK(titles == std::vector<std::string>{"service", "tick #1", "report #1"});
    CHECK(json["test_records"][1]["status"] == "success");
    std::uint64_t service_seq = 0;
    int testcases = 0;
    for (const auto& event : sink.events()) {
      if (event.event == "start_section" && event.type == "phase" && event.id == "service")
        service_seq = event.seq_num;
      if (event.event == "stop_section" && event.type == "testcase") {
        ++testcases;
        CHECK(event.parent_seq_num == service_seq);
        CHECK(event.result == SectionResult::passed);
      }
    }
    CHECK(testcases == 2);
    const auto summary = read_whole_file(layout / "service" / "output.json", "output");
    REQUIRE_OK(summary);
    CHECK(nlohmann::json::parse(*summary)["runs"] == 2);
  }
}
