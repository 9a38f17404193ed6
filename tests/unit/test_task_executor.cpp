#include <doctest/doctest.h>

#include <fstream>

#include <nlohmann/json.hpp>

#include "agent/task_executor.hpp"
#include "tests/unit/fakes.hpp"
#include "tests/unit/temp_dir.hpp"

using namespace proctor;
using test::RecordingFetcher;
using test::RecordingProcessRunner;
namespace fs = std::filesystem;

namespace {

constexpr const char* kReport = R"(<testsuite name="s" time="2.0">
  <testcase classname="tests.test_a" name="test_ok" time="1"/>
  <testcase classname="tests.test_a" name="test_bad" time="1"><failure message="boom">tb</failure></testcase>
</testsuite>)";

struct Fixture {
  Fixture() {
    fs::create_directories(dir / "service");
    std::ofstream(dir / "service" / "service.yaml") << service_yaml;
    std::ofstream(dir / "service" / "helper.py") << "print('hi')\n";
  }

  void write_service(const std::string& yaml) const { std::ofstream(dir / "service" / "service.yaml") << yaml; }

  ResultPayload run(const std::string& task_json, std::stop_token cancel = {}) {
    ExecutorSettings settings;
    settings.service_path = dir / "service";
    settings.results_dir = dir / "results";
    settings.allowed_schemes = allowed;
    settings.services_dir = services_dir;
    TaskExecutor executor({{"git", &fetcher}}, runner, settings);
    auto task = parse_task(task_json);
    REQUIRE(task.ok());
    return executor.run(*task, dir / "slot", cancel);
  }

  test::TempDir dir;
  std::string service_yaml = "cmd: pytest --junit-xml=${junit_xml} -k ${connected_tests}\ntimeout: 30\n";
  std::vector<std::string> allowed{"https", "file"};
  std::optional<fs::path> services_dir;
  RecordingFetcher fetcher;
  RecordingProcessRunner runner;
};

void write_report(const ProcessSpec& spec) {
  for (const auto& [key, value] : spec.env) {
    if (key == "OT_JUNIT_XML") std::ofstream(value) << kReport;
  }
}

constexpr const char* kTask = R"({"id":"t-1","repositoryUrl":"https://git.example.com/s.git","branch":"lab1",
  "connectedTests":["test a","test_b"],"laboratoryNumber":2})";

}  // namespace

TEST_SUITE("task_executor") {
  TEST_CASE("the service command, environment and folder are built from the task") {
    Fixture f;
    f.runner.behaviour = [](const ProcessSpec& spec, ProcessOutcome&) { write_report(spec); };
    const auto payload = f.run(kTask);

    REQUIRE(f.fetcher.requests.size() == 1);
    CHECK(f.fetcher.requests[0].url == "https://git.example.com/s.git");
    CHECK(f.fetcher.requests[0].branch == "lab1");
    REQUIRE(f.runner.specs.size() == 1);
    const auto& spec = f.runner.specs[0];
    REQUIRE(spec.argv.size() == 3);
    CHECK(spec.argv[0] == "/bin/sh");
    CHECK(spec.argv[2] == "pytest --junit-xml='" + f.runner.env("OT_JUNIT_XML") + "' -k 'test a,test_b'");
    CHECK(spec.timeout == std::chrono::seconds(30));
    CHECK(fs::exists(spec.working_dir / "helper.py"));  // the service's code, copied per task
    CHECK(spec.working_dir != f.dir / "service");
    CHECK(f.runner.env("OT_BRANCH") == "lab1");
    CHECK(f.runner.env("OT_LABORATORY_NUMBER") == "2");
    CHECK(f.runner.env("OT_TASK_ID") == "t-1");
    CHECK(fs::exists(f.runner.env("OT_REPOSITORY_DIR")));
    CHECK(f.runner.env("OT_RESULTS_DIR") == (f.dir / "results" / "t-1").string());
    CHECK_FALSE(f.runner.env("TMPDIR").empty());
    for (const auto& [key, value] : spec.env) {
      const bool allowed = key.rfind("OT_", 0) == 0 || key == "TMPDIR" || key == "opereto_workspace" ||
                           key == "PATH" || key == "HOME" ||
                           key == "USER" || key == "LOGNAME" || key == "LANG" || key == "LANGUAGE" ||
                           key == "LC_ALL" || key == "LC_CTYPE" || key == "TZ" || key == "SHELL";
      CHECK_MESSAGE(allowed, "unexpected variable " << key);
    }
    const auto inputs = nlohmann::json::parse(std::ifstream(spec.working_dir / "input.json"));
    CHECK(inputs["connected_tests"] == "test a,test_b");
    // Opereto's built-ins, and the same inputs where pyopereto looks for them.
    CHECK(inputs["pid"] == "t-1");
    CHECK(inputs["opereto_workspace"] == spec.working_dir.string());
    CHECK(inputs["opereto_timeout"] == "30");
    CHECK(inputs["opereto_execution_mode"] == "production");
    CHECK(f.runner.env("opereto_workspace") == spec.working_dir.string());
    CHECK(nlohmann::json::parse(std::ifstream(spec.working_dir / "arguments.json")) == inputs);

    CHECK_FALSE(payload.error);
    CHECK_FALSE(payload.passed);
    REQUIRE(payload.cases.size() == 2);
    CHECK(payload.cases[0].memory_kib == 4321);  // the measured peak RSS
    CHECK(payload.seconds == doctest::Approx(2.0));
  }

  TEST_CASE("the task's timeout overrides the service's") {
    Fixture f;
    f.run(R"({"id":"t","repositoryUrl":"https://h/r.git","timeout":2.5})");
    CHECK(f.runner.specs[0].timeout == std::chrono::milliseconds(2500));
  }

  TEST_CASE("exit code 1 with a report means tests failed; other codes are errors") {
    Fixture f;
    f.runner.behaviour = [](const ProcessSpec& spec, ProcessOutcome& o) {
      write_report(spec);
      o.exit_code = 1;
    };
    CHECK_FALSE(f.run(kTask).error);
    f.runner.behaviour = [](const ProcessSpec& spec, ProcessOutcome& o) {
      write_report(spec);
      o.exit_code = 2;
      o.output_tail = "INTERNALERROR";
    };
    const auto p = f.run(kTask);
    CHECK(p.error);
    CHECK(p.error_details == "The service exited with code 2, which is not in valid_exit_codes [0].\n\nINTERNALERROR");
    CHECK(p.cases.size() == 2);  // what the report said is still reported
  }

  TEST_CASE("valid_exit_codes from the specification are honoured") {
    Fixture f;
    f.write_service("cmd: run\nvalid_exit_codes: [0, 5]\n");
    f.runner.behaviour = [](const ProcessSpec& spec, ProcessOutcome& o) {
      write_report(spec);
      o.exit_code = 5;
    };
    CHECK_FALSE(f.run(kTask).error);
  }

  TEST_CASE("timeout, cancel, signal, start failure, missing and unreadable report") {
    Fixture f;
    const auto details = [&](std::function<void(const ProcessSpec&, ProcessOutcome&)> b) {
      f.runner.behaviour = std::move(b);
      const auto p = f.run(kTask);
      CHECK(p.error);
      return p.error_details;
    };
    CHECK(details([](const ProcessSpec&, ProcessOutcome& o) { o.timed_out = true; o.exit_code.reset(); o.term_signal = 15; })
              .rfind("The service timed out after 30 s and was stopped.", 0) == 0);
    CHECK(details([](const ProcessSpec&, ProcessOutcome& o) { o.cancelled = true; })
              .find("agent shut down") != std::string::npos);
    CHECK(details([](const ProcessSpec&, ProcessOutcome& o) { o.exit_code.reset(); o.term_signal = 11; })
              .rfind("The service was killed by signal SIGSEGV.", 0) == 0);
    CHECK(details([](const ProcessSpec&, ProcessOutcome& o) { o.started = false; o.start_error = "no such file"; })
              .rfind("The service could not start: no such file.", 0) == 0);
    CHECK(details([](const ProcessSpec&, ProcessOutcome&) {}).rfind("The service wrote no report", 0) == 0);
    CHECK(details([](const ProcessSpec& spec, ProcessOutcome&) {
            std::ofstream(spec.working_dir.parent_path() / "reports" / "junit.xml") << "<html>";
          }).rfind("The service's report is unreadable", 0) == 0);
  }

  TEST_CASE("a shutdown that wins the race with the service's start is reported as a shutdown") {
    Fixture f;
    std::stop_source stop;
    f.runner.behaviour = [&stop](const ProcessSpec&, ProcessOutcome& o) {
      stop.request_stop();  // the signal lands just as the process would start
      o.started = false;
      o.start_error = "The run was cancelled before it started.";
    };
    const auto p = f.run(kTask, stop.get_token());
    CHECK(p.error_details == "The agent shut down before the service started.");
  }

  TEST_CASE("messages that bring their own full stop do not get a second one") {
    Fixture f;
    f.runner.behaviour = [](const ProcessSpec&, ProcessOutcome& o) {
      o.started = false;
      o.start_error = "no such file.";
    };
    CHECK(f.run(kTask).error_details == "The service could not start: no such file.");
  }

  TEST_CASE("report globs of the specification are read and merged") {
    Fixture f;
    f.write_service("cmd: run\nreports: [target/surefire-reports/*.xml]\n");
    f.runner.behaviour = [](const ProcessSpec& spec, ProcessOutcome&) {
      fs::create_directories(spec.working_dir / "target" / "surefire-reports");
      std::ofstream(spec.working_dir / "target" / "surefire-reports" / "TEST-a.xml") << kReport;
      std::ofstream(spec.working_dir / "target" / "surefire-reports" / "TEST-b.xml") << kReport;
      std::ofstream(spec.working_dir / "target" / "surefire-reports" / "notes.txt") << "x";
    };
    CHECK(f.run(kTask).cases.size() == 4);
  }

  TEST_CASE("refused before fetching: schemes not allowed, option-like URLs, ext::") {
    Fixture f;
    for (const char* url : {"file:///etc", "/srv/repo", "ext::sh -c evil", "--upload-pack=evil", "ssh://h/r"}) {
      f.allowed = {"https", "http"};
      const auto p = f.run(std::string(R"({"id":"t","repositoryUrl":")") + url + "\"}");
      CHECK(p.error);
      CHECK_MESSAGE(p.error_details.rfind("Fetching the submission failed", 0) == 0, p.error_details);
    }
    CHECK(f.fetcher.requests.empty());
    CHECK(f.runner.specs.empty());
  }

  TEST_CASE("fetch failures, unsupported kinds and command holes stop before the service runs") {
    Fixture f;
    f.fetcher.fail_with = "cannot clone https://h/r.git: not found";
    CHECK(f.run(kTask).error_details == "Fetching the submission failed: cannot clone https://h/r.git: not found.");
    f.fetcher.fail_with.clear();
    CHECK(f.run(R"({"id":"t","repositoryUrl":"https://h/a.zip"})").error_details.find("type 'http' are not supported") !=
          std::string::npos);
    f.write_service("cmd: run ${nothing}\n");
    CHECK(f.run(kTask).error_details.find("${nothing}") != std::string::npos);
    f.write_service("cmd: run\nitem_properties:\n- key: token\n  value:\n  mandatory: true\n");
    CHECK(f.run(kTask).error_details == "The service's mandatory input 'token' has no value.");
    CHECK(f.runner.specs.empty());
  }

  TEST_CASE("only inputs reach the service; outputs come back from output.json, checked") {
    Fixture f;
    f.write_service(R"(cmd: run ${mode}
timeout: 30
item_properties:
- key: mode
  type: text
  value: fast
- key: secret_default
  direction: output
  type: text
  value: never-sent
- key: count
  direction: output
  type: integer
  value:
- key: summary
  direction: both
  type: json
  value: "{}"
- key: words
  direction: output
  type: integer
  value:
)");
    f.runner.behaviour = [](const ProcessSpec& spec, ProcessOutcome&) {
      write_report(spec);
      std::ofstream(spec.working_dir / "output.json")
          << R"({"count": 7, "summary": {"ok": true}, "mode": "slow", "stranger": 1, "words": "many"})";
    };
    const auto payload = f.run(kTask);
    CHECK_FALSE(payload.error);
    REQUIRE(f.runner.specs.size() == 1);
    CHECK(f.runner.specs[0].argv[2] == "run 'fast'");
    CHECK(f.runner.env("OT_MODE") == "fast");
    CHECK(f.runner.env("OT_SUMMARY") == "{}");               // both: an input too
    CHECK(f.runner.env("OT_SECRET_DEFAULT").empty());        // outputs never reach the process
    const auto inputs = nlohmann::json::parse(std::ifstream(f.runner.specs[0].working_dir / "input.json"));
    CHECK_FALSE(inputs.contains("secret_default"));
    CHECK_FALSE(inputs.contains("count"));
    // Kept: the output properties with values of their type; not an input, a stranger or a bad value.
    const auto outputs = nlohmann::json::parse(std::ifstream(f.dir / "results" / "t-1" / "service" / "output.json"));
    CHECK(outputs == nlohmann::json::parse(R"({"count": 7, "summary": {"ok": true}})"));
  }

  TEST_CASE("a service that writes a broken output.json still gets its result; outputs are dropped") {
    Fixture f;
    f.write_service("cmd: run\ntimeout: 30\nitem_properties:\n- key: n\n  direction: output\n  value:\n");
    f.runner.behaviour = [](const ProcessSpec& spec, ProcessOutcome&) {
      write_report(spec);
      std::ofstream(spec.working_dir / "output.json") << "[not, json";
    };
    CHECK_FALSE(f.run(kTask).error);
    CHECK(nlohmann::json::parse(std::ifstream(f.dir / "results" / "t-1" / "service" / "output.json")) ==
          nlohmann::json::object());
  }

  TEST_CASE("input values are checked against their property's type before anything runs") {
    Fixture f;
    f.write_service("cmd: run\ntimeout: 30\nitem_properties:\n- key: laboratory_number\n  type: integer\n  value:\n");
    CHECK(f.run(R"({"id":"t","repositoryUrl":"https://h/r.git","laboratoryNumber":[1,2]})").error_details ==
          "The service's input 'laboratory_number' is invalid: '1,2' is not a whole number (the property is an integer).");
    CHECK(f.runner.specs.empty());
    f.run(R"({"id":"t","repositoryUrl":"https://h/r.git","laboratoryNumber":3})");
    CHECK(f.runner.specs.size() == 1);
  }

  TEST_CASE("cycle and container services are refused with a reason, before fetching") {
    Fixture f;
    for (const char* type : {"cycle", "container"}) {
      f.write_service(std::string("type: ") + type + "\n");
      const auto payload = f.run(kTask);
      CHECK(payload.error);
      CHECK(payload.error_details == std::string("The service is a ") + type +
                                         ", which Opereto's own cluster runs, not an agent: Proctor cannot run it.");
    }
    CHECK(f.fetcher.requests.empty());
    CHECK(f.runner.specs.empty());
  }

  TEST_CASE("a specification's repository block brings the service's code, from its ot_dir") {
    Fixture f;
    f.write_service(R"(cmd: python3 tool.py
timeout: 30
repository:
  repo_type: git
  url: https://git.example.com/services.git
  branch: stable
  ot_dir: tools/lab1
)");
    f.fetcher.populate = [](const SourceSpec& source, const fs::path& dir) {
      if (source.url != "https://git.example.com/services.git") return;
      fs::create_directories(dir / "tools/lab1");
      std::ofstream(dir / "tools/lab1/tool.py") << "print('from the repository')\n";
    };
    f.runner.behaviour = [](const ProcessSpec& spec, ProcessOutcome&) { write_report(spec); };
    const auto payload = f.run(kTask);
    CHECK_FALSE(payload.error);
    REQUIRE(f.fetcher.requests.size() == 2);  // the submission, then the service's code
    CHECK(f.fetcher.requests[1].url == "https://git.example.com/services.git");
    CHECK(f.fetcher.requests[1].branch == "stable");
    REQUIRE(f.runner.specs.size() == 1);
    const fs::path work = f.runner.specs[0].working_dir;
    CHECK(fs::exists(work / "tool.py"));           // the repository's ot_dir, copied for the task
    CHECK_FALSE(fs::exists(work / "helper.py"));   // not the local folder's code

    f.write_service("cmd: run\ntimeout: 30\nrepository:\n  repo_type: git\n  url: https://h/s.git\n  ot_dir: missing\n");
    CHECK(f.run(kTask).error_details ==
          "Fetching the service's code failed: the service repository has no folder 'missing' (ot_dir).");
    f.write_service("cmd: run\ntimeout: 30\nrepository:\n  repo_type: svn\n  url: ftp://h/s\n");
    CHECK(f.run(kTask).error_details.find("scheme 'ftp' is not allowed") != std::string::npos);
  }

  TEST_CASE("a task's service name is looked up in the services folder, never outside it") {
    Fixture f;
    fs::create_directories(f.dir / "services" / "lab2");
    std::ofstream(f.dir / "services" / "lab2" / "service.yaml") << "cmd: lab2-tests\n";
    f.services_dir = f.dir / "services";
    f.run(R"({"id":"t","repositoryUrl":"https://h/r.git","service":"lab2"})");
    REQUIRE(f.runner.specs.size() == 1);
    CHECK(f.runner.specs[0].argv[2] == "lab2-tests");
    CHECK(f.run(R"({"id":"t","repositoryUrl":"https://h/r.git","service":"../x"})").error_details.find(
              "not a plain name") != std::string::npos);
    CHECK(f.run(R"({"id":"t","repositoryUrl":"https://h/r.git","service":"lab9"})").error_details.find(
              "no service named 'lab9'") != std::string::npos);
  }

  TEST_CASE("repository kind from repositoryType or the URL") {
    const auto kind = [](const char* json) { return repository_kind(*parse_task(json)); };
    CHECK(kind(R"({"id":1,"repositoryUrl":"https://h/r.git"})") == "git");
    CHECK(kind(R"({"id":1,"repositoryUrl":"svn://h/r"})") == "svn");
    CHECK(kind(R"({"id":1,"repositoryUrl":"s3://b/k.zip"})") == "s3");
    CHECK(kind(R"({"id":1,"repositoryUrl":"https://h/a.tar.gz?dl=1"})") == "http");
    CHECK(kind(R"({"id":1,"repositoryUrl":"https://h/a.zip","repositoryType":"git"})") == "git");
  }

  TEST_CASE("reports written while the service runs are records before it ends; all end up in the layout") {
    Fixture f;
    f.service_yaml = "cmd: run\ntimeout: 30\nreports: [out/TEST-*.xml]\n";
    f.write_service(f.service_yaml);
    test::RecordingEventSink sink;
    bool seen_while_running = false;
    f.runner.behaviour = [&](const ProcessSpec& spec, ProcessOutcome&) {
      fs::create_directories(spec.working_dir / "out");
      std::ofstream(spec.working_dir / "out" / "TEST-a.xml")
          << R"(<testsuite name="a"><testcase classname="A" name="one"/></testsuite>)";
      // The service goes on only once its first report is a record.
      seen_while_running = sink.wait_for([](const Event& e) { return e.type == "testcase" && e.name == "A.one"; });
      std::ofstream(spec.working_dir / "out" / "TEST-b.xml")
          << R"(<testsuite name="b"><testcase classname="B" name="two"/></testsuite>)";
    };
    ExecutorSettings settings;
    settings.service_path = f.dir / "service";
    settings.results_dir = f.dir / "results";
    settings.allowed_schemes = f.allowed;
    TaskExecutor executor({{"git", &f.fetcher}}, f.runner, settings);
    auto task = parse_task(kTask);
    REQUIRE(task.ok());
    const auto payload = executor.run(*task, f.dir / "slot", {}, &sink);
    executor.wait_for_layouts();
    CHECK(seen_while_running);
    CHECK(payload.passed);
    CHECK(payload.cases.size() == 2);
    const auto tests = nlohmann::json::parse(std::ifstream(f.dir / "results" / "t-1" / "tests.json"));
    std::vector<std::string> names;
    for (const auto& record : tests["test_records"]) names.push_back(record["testname"]);
    CHECK(names == std::vector<std::string>{"fetch", "service", "a_one", "b_two"});
    CHECK(tests["test_suite"]["status"] == "success");
    std::size_t testcase_stops = 0;
    for (const auto& event : sink.events()) testcase_stops += event.type == "testcase" && event.event == "stop_section";
    CHECK(testcase_stops == 2);  // each case once, though seen by the watcher and the final read
  }

  TEST_CASE("a fetch that fails ends the fetch record with the reason; the task is errored") {
    Fixture f;
    f.fetcher.fail_with = "repository not found";
    const auto payload = f.run(kTask);
    CHECK(payload.error);
    const auto tests = nlohmann::json::parse(std::ifstream(f.dir / "results" / "t-1" / "tests.json"));
    REQUIRE(tests["test_records"].size() == 1);
    CHECK(tests["test_records"][0]["testname"] == "fetch");
    CHECK(tests["test_records"][0]["status"] == "error");
    CHECK(tests["test_records"][0]["test_input"]["repository"] == "https://git.example.com/s.git");
    CHECK(tests["test_suite"]["status"] == "error");
    std::ifstream summary(f.dir / "results" / "t-1" / "fetch" / "summary.txt");
    std::string line;
    std::getline(summary, line);
    CHECK(line == "Fetching the submission failed: repository not found.");
  }

  TEST_CASE("with the results layout off nothing is written there") {
    Fixture f;
    f.runner.behaviour = [](const ProcessSpec& spec, ProcessOutcome&) { write_report(spec); };
    ExecutorSettings settings;
    settings.service_path = f.dir / "service";
    settings.results_dir = f.dir / "results";
    settings.allowed_schemes = f.allowed;
    settings.results_layout = false;
    TaskExecutor executor({{"git", &f.fetcher}}, f.runner, settings);
    auto task = parse_task(kTask);
    REQUIRE(task.ok());
    CHECK_FALSE(executor.run(*task, f.dir / "slot", {}).error);
    executor.wait_for_layouts();
    CHECK_FALSE(fs::exists(f.dir / "results" / "t-1" / "tests.json"));
  }
}
