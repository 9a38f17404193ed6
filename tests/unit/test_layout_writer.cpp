// The results layout writer and the task recorder: the files of the seed's layout, in
// the order a listener may rely on, and the event stream's nested sections.

#include <chrono>
#include <fstream>
#include <future>
#include <sstream>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "agent/layout_writer.hpp"
#include "agent/task_recorder.hpp"
#include "common/junit.hpp"
#include "require_ok.hpp"
#include "tests/unit/fakes.hpp"
#include "tests/unit/temp_dir.hpp"

using namespace proctor;
namespace fs = std::filesystem;

namespace {

std::string slurp(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

NewRecord named(std::string name) {
  NewRecord record;
  record.name = std::move(name);
  return record;
}

TestsJson tests_json(const fs::path& task_dir) {
  auto parsed = parse_tests_json(slurp(task_dir / "tests.json"));
  REQUIRE_OK(parsed);
  CHECK(parsed->problems.empty());
  return parsed->tests;
}

Task task_named(const std::string& id) {
  auto task = parse_task(R"({"id":")" + id + R"(","repositoryUrl":"https://h/r.git"})");
  REQUIRE_OK(task);
  return *task;
}

Report report_of(const std::string& xml) {
  auto report = parse_junit(xml);
  REQUIRE_OK(report);
  return *report;
}

constexpr const char* kTwoCases = R"(<testsuite name="calc">
  <testcase classname="tests.test_calc" name="test_add" time="0.5" file="tests/test_calc.py" line="3"/>
  <testcase classname="tests.test_calc" name="test_div" time="0.25"><failure message="ZeroDivisionError">tb</failure><system-out>out</system-out></testcase>
</testsuite>)";

}  // namespace

TEST_SUITE("layout_writer") {
  TEST_CASE("records get folders with output.json, log.txt and summary.txt, listed in tests.json") {
    test::TempDir dir;
    auto writer_ptr = LayoutWriter::open(dir / "t-1", {"fetch", "service"});
    LayoutWriter& writer = *writer_ptr;
    CHECK(tests_json(dir / "t-1").records.empty());  // there from the start, empty

    NewRecord record;
    record.name = "fetch";  // reserved: the phase keeps its own name
    record.phase = true;
    record.summary = "fetch: running\n";
    record.test_input = nlohmann::json{{"repository", "https://h/r.git"}};
    const std::string fetch = writer.add_record(record);
    CHECK(fetch == "fetch");
    NewRecord test;
    test.name = "fetch";  // a test called like a phase gets another testname
    test.status = RecordStatus::success;
    test.output = nlohmann::json{{"time", 1}};
    test.log = "first\n";
    const std::string other = writer.add_record(test);
    CHECK(other == "fetch-2");

    auto tests = tests_json(dir / "t-1");
    REQUIRE(tests.records.size() == 2);
    CHECK(tests.records[0].status == RecordStatus::in_process);
    CHECK(tests.records[0].test_input == record.test_input);
    CHECK(tests.records[1].status == RecordStatus::success);
    CHECK(slurp(dir / "t-1" / "fetch" / "summary.txt") == "fetch: running\n");
    CHECK(slurp(dir / "t-1" / "fetch" / "log.txt").empty());
    CHECK(nlohmann::json::parse(slurp(dir / "t-1" / "fetch-2" / "output.json")) == test.output);
    CHECK(slurp(dir / "t-1" / "fetch-2" / "log.txt") == "first\n");
    CHECK_FALSE(tests.suite_status.has_value());

    // log.txt only grows; the offsets say where each piece went.
    CHECK(writer.append_log(fetch, "one\n") == 0);
    CHECK(writer.append_log(fetch, "two\n") == 4);
    CHECK(slurp(writer.log_path(fetch)) == "one\ntwo\n");
    CHECK(writer.log_size(fetch) == 8);

    writer.finish_record(fetch, RecordStatus::error, "fetch failed\n", nlohmann::json{{"why", "x"}});
    CHECK(slurp(dir / "t-1" / "fetch" / "summary.txt") == "fetch failed\n");
    CHECK(tests_json(dir / "t-1").records[0].status == RecordStatus::error);
    CHECK(slurp(writer.log_path(fetch)) == "one\ntwo\n");  // never rewritten

    writer.finish(RecordStatus::error, {{"https://ci/7", "task"}});
    tests = tests_json(dir / "t-1");
    CHECK(tests.suite_status == RecordStatus::error);
    CHECK(tests.suite_links.size() == 1);
    // Atomic replacement leaves no temporary files behind.
    std::size_t entries = 0;
    for ([[maybe_unused]] const auto& entry : fs::directory_iterator(dir / "t-1")) ++entries;
    CHECK(entries == 3);  // tests.json, fetch/, fetch-2/
  }

  TEST_CASE("on a worker, the files come in the order asked for, and an event after them") {
    test::TempDir dir;
    SerialWorker io;
    const auto writer = LayoutWriter::open(dir / "t", {}, &io);
    NewRecord record;
    record.name = "case";
    record.status = RecordStatus::success;
    record.log = "text\n";
    const std::string testname = writer->add_record(record);
    bool files_there_first = false;
    writer->then([&] { files_there_first = fs::exists(dir / "t" / testname / "log.txt"); });
    CHECK(writer->append_log(testname, "more\n") == 5);  // counted at once
    writer->finish(RecordStatus::success);
    writer->flush();
    CHECK(files_there_first);
    CHECK(slurp(dir / "t" / testname / "log.txt") == "text\nmore\n");
    CHECK(tests_json(dir / "t").suite_status == RecordStatus::success);
  }

  TEST_CASE("on a worker, tests.json writes are coalesced, but an event always finds its record listed") {
    test::TempDir dir;
    SerialWorker io;
    // Hold the worker so that everything below is queued before anything runs.
    std::promise<void> release;
    io.post([held = release.get_future().share()] { held.wait(); });
    auto writer = LayoutWriter::open(dir / "task", {}, &io);
    writer->add_record(named("first"));
    std::string at_event;  // tests.json as the event finds it (checked here, not on the worker)
    writer->then([&] { at_event = slurp(dir / "task" / "tests.json"); });
    for (int i = 0; i < 20; ++i) writer->add_record(named("more"));
    release.set_value();
    writer->flush();
    auto listed = parse_tests_json(at_event);  // the tests.json before the event was written, not skipped
    REQUIRE_OK(listed);
    CHECK(listed->tests.records.size() == 1);
    CHECK(tests_json(dir / "task").records.size() == 21);
  }

  TEST_CASE("on a worker and with no event stream, a phase is listed running before it is listed ended") {
    test::TempDir dir;
    SerialWorker io;
    // Hold the worker (another task's layout, say) until the phase has ended: only the
    // layout's own rule can keep its running state from being coalesced away.
    std::promise<void> release;
    io.post([held = release.get_future().share()] { held.wait(); });
    SequenceCounter sequence;
    std::string while_running;  // tests.json once the worker has done the phase's start
    {
      TaskRecorder recorder(task_named("t-1"), dir / "t-1", nullptr, sequence, &io);
      recorder.start_phase(Phase::fetch);
      io.post([&] { while_running = slurp(dir / "t-1" / "tests.json"); });
      recorder.end_phase(Phase::fetch, RecordStatus::success, "fetched\n");
      release.set_value();
      recorder.end_task(RecordStatus::success);
    }
    io.drain();
    auto listed = parse_tests_json(while_running);
    REQUIRE_OK(listed);
    REQUIRE(listed->tests.records.size() == 1);
    CHECK(listed->tests.records[0].testname == "fetch");
    CHECK(listed->tests.records[0].status == RecordStatus::in_process);
    const TestsJson last = tests_json(dir / "t-1");
    REQUIRE(last.records.size() == 1);
    CHECK(last.records[0].status == RecordStatus::success);
    CHECK(last.suite_status == RecordStatus::success);
  }

  TEST_CASE("a process's log is there at once, however far the worker is behind") {
    test::TempDir dir;
    SerialWorker io;
    std::promise<void> release;
    io.post([held = release.get_future().share()] { held.wait(); });  // another task's layout, say
    const auto writer = LayoutWriter::open(dir / "t", {"service"}, &io);
    NewRecord record;
    record.name = "service";
    record.phase = true;
    const std::string testname = writer->add_record(record);
    const fs::path log = writer->open_log(testname);
    CHECK(log == writer->log_path(testname));
    CHECK(fs::is_regular_file(log));  // the worker is still held
    std::ofstream(log, std::ios::app) << "from the service\n";
    writer->append_log(testname, "from the agent\n");
    release.set_value();
    writer->flush();
    // The record's own job found the folder and the log there and kept them.
    CHECK(slurp(log) == "from the service\nfrom the agent\n");
    CHECK(fs::exists(dir / "t" / testname / "output.json"));
    CHECK(tests_json(dir / "t").records.size() == 1);
  }

  TEST_CASE("a new run of the same task replaces the previous layout") {
    test::TempDir dir;
    {
      auto first_ptr = LayoutWriter::open(dir / "t", {});
      LayoutWriter& first = *first_ptr;
      NewRecord record;
      record.name = "old";
      first.add_record(record);
      first.finish(RecordStatus::success);
    }
    const auto second = LayoutWriter::open(dir / "t", {});
    CHECK_FALSE(fs::exists(dir / "t" / "old"));
    const auto tests = tests_json(dir / "t");
    CHECK(tests.records.empty());
    CHECK_FALSE(tests.suite_status.has_value());
  }

  TEST_CASE("a new run of a task replaces the previous one only after its queued writes") {
    test::TempDir dir;
    SerialWorker io;
    std::promise<void> release;
    io.post([held = release.get_future().share()] { held.wait(); });
    const auto first = LayoutWriter::open(dir / "t", {}, &io);
    first->add_record(named("old"));  // queued behind the held job
    first->finish(RecordStatus::success);
    auto second = std::async(std::launch::async, [&] { return LayoutWriter::open(dir / "t", {}, &io); });
    // The new run waits for the old one's writes: without that wait it would be open by
    // now, and those writes would land in its folder once released.
    CHECK(second.wait_for(std::chrono::milliseconds(50)) == std::future_status::timeout);
    release.set_value();
    const auto writer = second.get();
    writer->flush();
    CHECK_FALSE(fs::exists(dir / "t" / "old"));
    const auto tests = tests_json(dir / "t");
    CHECK(tests.records.empty());
    CHECK_FALSE(tests.suite_status.has_value());
  }

  TEST_CASE("a layout that cannot be written does not stop the caller") {
    test::TempDir dir;
    std::ofstream(dir / "file") << "not a folder";
    const auto writer = LayoutWriter::open(dir / "file" / "t", {});
    NewRecord record;
    record.name = "x";
    CHECK(writer->add_record(record) == "x");
    writer->append_log("x", "line\n");
    writer->finish(RecordStatus::success);
  }
}

TEST_SUITE("task_recorder") {
  TEST_CASE("a task's sections nest task > phase > testcase with parent numbers, results rolled up") {
    test::TempDir dir;
    test::RecordingEventSink sink;
    SequenceCounter sequence;
    {
      TaskRecorder recorder(task_named("t-9"), dir / "t-9", &sink, sequence);
      recorder.start_task("pytest");
      recorder.start_phase(Phase::fetch);
      recorder.phase_log(Phase::fetch, "cloning");
      recorder.end_phase(Phase::fetch, RecordStatus::success, "fetched\n");
      recorder.start_phase(Phase::service);
      const Report report = report_of(kTwoCases);
      CHECK(recorder.add_cases("/r/a.xml", report) == 2);
      CHECK(recorder.add_cases("/r/a.xml", report) == 0);  // seen already
      CHECK(recorder.add_cases("/r/./a.xml", report) == 0);  // the same file, spelt otherwise
      CHECK(recorder.add_cases("/r/b.xml", report) == 2);  // another file: other cases
      recorder.end_phase(Phase::service, RecordStatus::failure, "1 failed\n");
      recorder.end_task(RecordStatus::failure);
    }
    const auto events = sink.events();
    std::vector<std::string> kinds;
    for (const auto& event : events) kinds.push_back(event.event + ":" + event.type);
    const std::vector<std::string> expected = {
        "init_task:task",         "start_task:task",        "start_section:phase",    "stop_section:phase",
        "start_section:phase",    "start_section:testcase", "stop_section:testcase",  "start_section:testcase",
        "stop_section:testcase",  "start_section:testcase", "stop_section:testcase",  "start_section:testcase",
        "stop_section:testcase",  "stop_section:phase",     "stop_task:task"};
    CHECK(kinds == expected);
    const auto task_seq = events[0].seq_num;
    CHECK(events[1].seq_num == task_seq);
    CHECK_FALSE(events[0].parent_seq_num.has_value());
    CHECK(events[2].parent_seq_num == task_seq);
    const auto service_seq = events[4].seq_num;
    CHECK(events[5].parent_seq_num == service_seq);
    CHECK(events[5].seq_num == events[6].seq_num);
    CHECK(events[5].seq_num != events[7].seq_num);
    // Results: a case's own, the phase's with its children, the task's with its phases.
    CHECK(events[3].result == SectionResult::passed);
    CHECK(events[6].result == SectionResult::passed);
    CHECK(events[8].result == SectionResult::failed);
    CHECK(events[6].runtime == 0.5);
    CHECK(events[6].xref == "tests/test_calc.py:3");
    CHECK(events[13].result == SectionResult::failed);
    CHECK(events[14].result == SectionResult::failed);
    CHECK_FALSE(events[14].starttime.empty());
    CHECK_FALSE(events[14].stoptime.empty());
    // logs point at the section's part of its log.txt.
    REQUIRE(events[3].logs.has_value());
    CHECK(events[3].logs->file == (dir / "t-9" / "fetch" / "log.txt").string());
    CHECK(events[3].logs->size == std::string("cloning\n").size());
    REQUIRE(events[8].logs.has_value());
    CHECK(slurp(events[8].logs->file).find("ZeroDivisionError") != std::string::npos);

    // The layout holds the same story.
    const auto tests = tests_json(dir / "t-9");
    REQUIRE(tests.records.size() == 6);
    CHECK(tests.records[0].testname == "fetch");
    CHECK(tests.records[1].testname == "service");
    CHECK(tests.records[2].testname == "tests_test_calc_test_add");
    CHECK(tests.records[2].title == "tests.test_calc.test_add");
    CHECK(tests.records[3].status == RecordStatus::failure);
    CHECK(tests.records[4].testname == "tests_test_calc_test_add-2");
    CHECK(tests.suite_status == RecordStatus::failure);
    CHECK(slurp(dir / "t-9" / "tests_test_calc_test_div" / "summary.txt") ==
          "failed in 0.250 s: ZeroDivisionError\n");
  }

  TEST_CASE("a report rewritten with another result updates its record: the last read is the authority") {
    test::TempDir dir;
    SequenceCounter sequence;
    TaskRecorder recorder(task_named("t"), dir / "t", nullptr, sequence);
    recorder.start_task("svc");
    recorder.start_phase(Phase::service);
    CHECK(recorder.add_cases("/r/a.xml", report_of(R"(<testsuite><testcase name="a"/></testsuite>)")) == 1);
    CHECK(recorder.add_cases("/r/a.xml", report_of(
                                             R"(<testsuite><testcase name="a"><failure message="late"/></testcase></testsuite>)")) == 0);
    const auto tests = tests_json(dir / "t");
    REQUIRE(tests.records.size() == 2);
    CHECK(tests.records[1].status == RecordStatus::failure);
    CHECK(slurp(dir / "t" / "a" / "summary.txt") == "failed in 0.000 s: late\n");
  }

  TEST_CASE("a task stopped half-way still closes every section it opened") {
    test::RecordingEventSink sink;
    SequenceCounter sequence;
    {
      TaskRecorder recorder(task_named("t"), std::nullopt, &sink, sequence);
      recorder.start_task("svc");
      recorder.start_phase(Phase::fetch);
    }  // destroyed without end_task
    const auto events = sink.events();
    REQUIRE(events.size() == 5);
    CHECK(events[3].event == "stop_section");
    CHECK(events[3].result == SectionResult::errored);
    CHECK(events[4].event == "stop_task");
    CHECK(events[4].result == SectionResult::errored);
    CHECK_FALSE(events[3].logs.has_value());  // no layout, no log files
  }

  TEST_CASE("a timed-out service aborts its phase and task whatever its cases said") {
    test::RecordingEventSink sink;
    SequenceCounter sequence;
    TaskRecorder recorder(task_named("t"), std::nullopt, &sink, sequence);
    recorder.start_task("svc");
    recorder.start_phase(Phase::service);
    recorder.add_cases("/r.xml", report_of(R"(<testsuite><testcase name="a"/></testsuite>)"));
    recorder.end_phase(Phase::service, RecordStatus::timeout, "timed out\n");
    recorder.end_task(RecordStatus::timeout);
    const auto events = sink.events();
    CHECK(events[events.size() - 2].result == SectionResult::aborted);
    CHECK(events.back().result == SectionResult::aborted);
  }
}
