// The event stream's model: pyATS results and their roll-up, events as JSON lines and back.

#include <chrono>
#include <limits>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "common/events.hpp"
#include "common/text.hpp"
#include "require_ok.hpp"

using namespace proctor;

namespace {

Event full_event() {
  Event event;
  event.event = "stop_section";
  event.type = "testcase";
  event.seq_num = 7;
  event.parent_seq_num = 3;
  event.id = "tests/test_calc.py::test_add";
  event.name = "test_add";
  event.starttime = "2026-11-24T10:00:00.123Z";
  event.stoptime = "2026-11-24T10:00:01.623Z";
  event.runtime = 1.5;
  event.result = SectionResult::failed;
  event.logfile = "TaskLog.task-1";
  event.logs = LogSpan{"TaskLog.task-1", 1024, 512};
  event.xref = "tests/test_calc.py:12";
  return event;
}

}  // namespace

TEST_SUITE("events") {
  TEST_CASE(
      "an event with every field goes to one JSON line and back unchanged, in the seed's field "
      "order") {
    const Event event = full_event();
    const std::string line = to_json_line(event);
    CHECK(
        line ==
        R"({"event":"stop_section","type":"testcase","seq_num":7,"parent_seq_num":3,)"
        R"("id":"tests/test_calc.py::test_add","name":"test_add","starttime":"2026-11-24T10:00:00.123Z",)"
        R"("stoptime":"2026-11-24T10:00:01.623Z","runtime":1.5,"result":"failed","logfile":"TaskLog.task-1",)"
        R"("logs":{"file":"TaskLog.task-1","begin":1024,"size":512},"xref":"tests/test_calc.py:12"})"
        "\n");
    auto parsed = parse_event(line);
    REQUIRE_OK(parsed);
    CHECK(*parsed == event);
    // Without its '\n' too.
    auto bare = parse_event(std::string_view(line).substr(0, line.size() - 1));
    REQUIRE_OK(bare);
    CHECK(*bare == event);
  }

  TEST_CASE("fields a section does not have are left out; event, type and seq_num always stay") {
    Event event;
    event.event = "start_task";
    event.type = "task";
    CHECK(to_json_line(event) == "{\"event\":\"start_task\",\"type\":\"task\",\"seq_num\":0}\n");
    event.seq_num = 4;
    event.name = "task-1";
    event.result = SectionResult::passed;
    CHECK(to_json_line(event) ==
          "{\"event\":\"start_task\",\"type\":\"task\",\"seq_num\":4,\"name\":\"task-1\","
          "\"result\":\"passed\"}\n");
    auto parsed = parse_event(to_json_line(event));
    REQUIRE_OK(parsed);
    CHECK(*parsed == event);
    CHECK_FALSE(parsed->parent_seq_num.has_value());
    CHECK_FALSE(parsed->runtime.has_value());
    CHECK_FALSE(parsed->logs.has_value());
  }

  TEST_CASE("a runtime JSON cannot hold (NaN, infinity) is left out rather than written as null") {
    Event event = full_event();
    event.runtime = std::numeric_limits<double>::quiet_NaN();
    const std::string line = to_json_line(event);
    CHECK(line.find("runtime") == std::string::npos);
    REQUIRE_OK(parse_event(line));
  }

  TEST_CASE("the results' names; only they parse") {
    const std::vector<std::string> names = {"passed",  "passx",   "failed", "errored",
                                            "skipped", "blocked", "aborted"};
    for (const auto& name : names) {
      const auto result = parse_section_result(name);
      REQUIRE(result.has_value());
      CHECK(std::string(to_string(*result)) == name);
    }
    CHECK_FALSE(parse_section_result("success").has_value());
    CHECK_FALSE(parse_section_result("Passed").has_value());
    CHECK_FALSE(parse_section_result("").has_value());
  }

  TEST_CASE("the roll-up follows aborted > errored > failed > blocked > passx > passed > skipped") {
    const std::vector<SectionResult> order = {SectionResult::aborted, SectionResult::errored,
                                              SectionResult::failed,  SectionResult::blocked,
                                              SectionResult::passx,   SectionResult::passed,
                                              SectionResult::skipped};
    for (std::size_t i = 0; i < order.size(); ++i) {
      CHECK(roll_up(order[i], order[i]) == order[i]);
      for (std::size_t j = i + 1; j < order.size(); ++j) {
        CHECK(roll_up(order[i], order[j]) == order[i]);
        CHECK(roll_up(order[j], order[i]) == order[i]);
      }
    }
    CHECK(roll_up(std::vector<SectionResult>{}) == SectionResult::passed);
    CHECK(roll_up(std::vector{SectionResult::skipped}) == SectionResult::skipped);
    CHECK(roll_up(std::vector{SectionResult::passed, SectionResult::skipped,
                              SectionResult::passx}) == SectionResult::passx);
    CHECK(roll_up(std::vector{SectionResult::passed, SectionResult::blocked, SectionResult::failed,
                              SectionResult::passx}) == SectionResult::failed);
    CHECK(roll_up(std::vector{SectionResult::errored, SectionResult::aborted,
                              SectionResult::failed}) == SectionResult::aborted);
  }

  TEST_CASE("every record status stands for its result; in_process and registered for none") {
    CHECK(section_result_of(RecordStatus::success) == SectionResult::passed);
    CHECK(section_result_of(RecordStatus::failure) == SectionResult::failed);
    CHECK(section_result_of(RecordStatus::error) == SectionResult::errored);
    CHECK(section_result_of(RecordStatus::warning) == SectionResult::passx);
    CHECK(section_result_of(RecordStatus::timeout) == SectionResult::aborted);
    CHECK(section_result_of(RecordStatus::terminated) == SectionResult::aborted);
    CHECK_FALSE(section_result_of(RecordStatus::in_process).has_value());
    CHECK_FALSE(section_result_of(RecordStatus::registered).has_value());
  }

  TEST_CASE("a malformed line is an error naming what is wrong, never an exception") {
    const auto error_of = [](std::string_view line) {
      auto parsed = parse_event(line);
      REQUIRE_FALSE(parsed.ok());
      return parsed.error().message;
    };
    CHECK(error_of("").find("not valid JSON") != std::string::npos);
    CHECK(error_of("not json").find("not valid JSON") != std::string::npos);
    CHECK(error_of(R"({"event":"start_task","type":"task","seq_num":1)").find("not valid JSON") !=
          std::string::npos);
    CHECK(error_of("[1,2]").find("object") != std::string::npos);
    CHECK(error_of("\"event\"").find("object") != std::string::npos);
    CHECK(error_of(R"({"type":"task","seq_num":1})").find("\"event\"") != std::string::npos);
    CHECK(error_of(R"({"event":"start_task","seq_num":1})").find("\"type\"") != std::string::npos);
    CHECK(error_of(R"({"event":"start_task","type":"task"})").find("\"seq_num\"") !=
          std::string::npos);
    CHECK(error_of(R"({"event":1,"type":"task","seq_num":1})").find("\"event\"") !=
          std::string::npos);
    CHECK(error_of(R"({"event":"start_task","type":null,"seq_num":1})").find("\"type\"") !=
          std::string::npos);
    CHECK(error_of(R"({"event":"start_task","type":"task","seq_num":"1"})").find("\"seq_num\"") !=
          std::string::npos);
    CHECK(error_of(R"({"event":"start_task","type":"task","seq_num":-1})").find("\"seq_num\"") !=
          std::string::npos);
    CHECK(error_of(R"({"event":"start_task","type":"task","seq_num":1.5})").find("\"seq_num\"") !=
          std::string::npos);
    CHECK(error_of(R"({"event":"e","type":"t","seq_num":1,"parent_seq_num":true})")
              .find("parent_seq_num") != std::string::npos);
    CHECK(error_of(R"({"event":"e","type":"t","seq_num":1,"name":5})").find("\"name\"") !=
          std::string::npos);
    CHECK(error_of(R"({"event":"e","type":"t","seq_num":1,"runtime":"2s"})").find("runtime") !=
          std::string::npos);
    CHECK(error_of(R"({"event":"e","type":"t","seq_num":1,"result":"success"})").find("result") !=
          std::string::npos);
    CHECK(error_of(R"({"event":"e","type":"t","seq_num":1,"result":3})").find("result") !=
          std::string::npos);
    CHECK(error_of(R"({"event":"e","type":"t","seq_num":1,"logs":"x.log"})").find("logs") !=
          std::string::npos);
    CHECK(error_of(R"({"event":"e","type":"t","seq_num":1,"logs":{"file":"x","begin":-4}})")
              .find("logs.begin") != std::string::npos);
    CHECK(error_of(R"({"event":"e","type":"t","seq_num":[1]})").find("\"seq_num\"") !=
          std::string::npos);
    CHECK(error_of(R"({"event":{"a":1},"type":"t","seq_num":1})").find("\"event\"") !=
          std::string::npos);
    CHECK(
        error_of(R"({"event":"e","type":"t","seq_num":1,"logs":{"file":{}}})").find("logs.file") !=
        std::string::npos);
    CHECK(error_of(R"({"event":"e","type":"t","seq_num":1} trailing)").find("not valid JSON") !=
          std::string::npos);
    CHECK(error_of("null").find("object") != std::string::npos);
    CHECK(error_of(std::string(100000, '[')).find("object") != std::string::npos);
    CHECK(error_of(R"({"event":"e","type":"t","seq_num":1,"extra":)" + std::string(100000, '['))
              .find("not valid JSON") != std::string::npos);
  }

  TEST_CASE("fields the model does not know are ignored, however deep") {
    auto deep =
        parse_event(R"({"event":"e","type":"t","seq_num":1,"extra":)" + std::string(100000, '[') +
                    std::string(100000, ']') + R"(,"name":"after"})");
    REQUIRE_OK(deep);
    CHECK(deep->name == "after");
    auto parsed = parse_event(
        R"({"event":"start_section","type":"phase","extra":{"a":[1,{"name":"inner"}]},"seq_num":2,"parent_seq_num":1,)"
        R"("logs":{"other":[{"file":3}],"file":"x.log"}})");
    REQUIRE_OK(parsed);
    CHECK(parsed->event == "start_section");
    CHECK(parsed->type == "phase");
    CHECK(parsed->seq_num == 2);
    CHECK(parsed->parent_seq_num == 1U);
    CHECK(parsed->name.empty());
    REQUIRE(parsed->logs.has_value());
    CHECK(parsed->logs->file == "x.log");
  }

  TEST_CASE("invalid UTF-8 is made valid, on the way out and on the way in") {
    Event event;
    event.event = "start_section";
    event.type = "testcase";
    event.name = "bad \xFF name";
    event.logs = LogSpan{"log\xC3", 0, 0};
    const std::string line = to_json_line(event);
    CHECK(is_valid_utf8(line));
    auto parsed = parse_event(line);
    REQUIRE_OK(parsed);
    CHECK(parsed->name == "bad \xEF\xBF\xBD name");
    CHECK(parsed->logs->file == "log\xEF\xBF\xBD");

    auto raw = parse_event(
        "{\"event\":\"e\",\"type\":\"t\",\"seq_num\":1,\"name\":\"a\xFE"
        "b\"}");
    REQUIRE_OK(raw);
    CHECK(raw->name ==
          "a\xEF\xBF\xBD"
          "b");
  }

  TEST_CASE("event times are ISO 8601 in UTC with milliseconds") {
    using namespace std::chrono;
    const sys_time<milliseconds> time = sys_days{year{2026} / 11 / 24} + 10h + 5min + 7s + 123ms;
    CHECK(format_event_time(time) == "2026-11-24T10:05:07.123Z");
    CHECK(format_event_time(time + microseconds(999)) ==
          "2026-11-24T10:05:07.123Z");  // cut, not rounded
    CHECK(format_event_time(system_clock::time_point{}) == "1970-01-01T00:00:00.000Z");
    CHECK(format_event_time(sys_days{year{2024} / 2 / 29} + 23h + 59min + 59s + 999ms) ==
          "2024-02-29T23:59:59.999Z");
    const std::string now = format_event_time(system_clock::now());
    CHECK(now.size() == 24);
    CHECK(now.back() == 'Z');
  }
}
