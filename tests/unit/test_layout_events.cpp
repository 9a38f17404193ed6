// What `runner listen` publishes on the event stream: the layout as a task section and
// its records as testcase sections, from the listener's change lines.

#include <doctest/doctest.h>

#include "common/layout_events.hpp"

using namespace proctor;
using nlohmann::ordered_json;

TEST_SUITE("layout_events") {
  TEST_CASE("records become testcase sections under the layout's task; the end rolls them up") {
    LayoutEventMapper mapper("/r/run-7", 100);
    auto events = mapper.events_for(ordered_json{{"change", "record"}, {"testname", "login"}, {"status", "in_process"},
                                                 {"title", "Login works"}});
    REQUIRE(events.size() == 3);
    CHECK(events[0].event == "init_task");
    CHECK(events[0].seq_num == 100);
    CHECK(events[0].name == "run-7");
    CHECK(events[1].event == "start_task");
    CHECK(events[2].event == "start_section");
    CHECK(events[2].type == "testcase");
    CHECK(events[2].seq_num == 101);
    CHECK(events[2].parent_seq_num == 100);
    CHECK(events[2].id == "login");
    CHECK(events[2].name == "Login works");
    CHECK(events[2].logfile == "/r/run-7/login/log.txt");

    events = mapper.events_for(ordered_json{{"change", "log"}, {"testname", "login"}, {"offset", 6}, {"text", "two\n"}});
    REQUIRE(events.size() == 1);
    CHECK(events[0].event == "log");
    CHECK(events[0].seq_num == 101);
    REQUIRE(events[0].logs.has_value());
    CHECK(*events[0].logs == LogSpan{"/r/run-7/login/log.txt", 6, 4});

    CHECK(mapper.events_for(ordered_json{{"change", "summary"}, {"testname", "login"}, {"text", "x"}}).empty());
    CHECK(mapper.events_for(ordered_json{{"change", "log"}, {"testname", "unknown"}, {"offset", 0}, {"text", "x"}}).empty());
    events = mapper.events_for(ordered_json{{"change", "status"}, {"testname", "login"}, {"from", "in_process"}, {"to", "failure"}});
    REQUIRE(events.size() == 1);
    CHECK(events[0].event == "stop_section");
    CHECK(events[0].result == SectionResult::failed);
    // Already final: a second final status is no second stop.
    CHECK(mapper.events_for(ordered_json{{"change", "status"}, {"testname", "login"}, {"from", "failure"}, {"to", "success"}}).empty());

    // A record that is final when first seen stops after the files read with it.
    events = mapper.events_for(ordered_json{{"change", "record"}, {"testname", "logout"}, {"status", "success"}});
    REQUIRE(events.size() == 1);
    CHECK(events[0].seq_num == 102);
    CHECK(events[0].name == "logout");  // no title: the testname
    events = mapper.events_for(
        ordered_json{{"change", "log"}, {"testname", "logout"}, {"offset", 0}, {"text", "bye\n"}, {"bytes", 4}});
    REQUIRE(events.size() == 1);
    CHECK(events[0].event == "log");
    events = mapper.events_for(ordered_json{{"change", "record"}, {"testname", "open"}, {"status", "in_process"}});
    REQUIRE(events.size() == 2);
    CHECK(events[0].event == "stop_section");
    CHECK(events[0].id == "logout");
    CHECK(events[0].result == SectionResult::passed);
    CHECK(events[1].event == "start_section");

    CHECK(mapper.events_for(ordered_json{{"change", "suite"}, {"status", "error"}, {"links", ordered_json::array()}}).empty());
    events = mapper.events_for(ordered_json{{"change", "end"}, {"reason", "signal"}});
    REQUIRE(events.size() == 2);
    CHECK(events[0].event == "stop_section");  // "open" never ended: it ends with the layout
    CHECK(events[0].result == SectionResult::aborted);
    CHECK(events[1].event == "stop_task");
    CHECK(events[1].seq_num == 100);
    CHECK(events[1].result == SectionResult::aborted);
    CHECK(mapper.events_for(ordered_json{{"change", "record"}, {"testname", "late"}, {"status", "success"}}).empty());
  }

  TEST_CASE("an end before any record still opens and closes the task") {
    LayoutEventMapper mapper("/r/empty");
    const auto events = mapper.events_for(ordered_json{{"change", "end"}, {"reason", "signal"}});
    REQUIRE(events.size() == 3);
    CHECK(events[2].event == "stop_task");
    CHECK(events[2].result == SectionResult::passed);  // nothing failed

    LayoutEventMapper suite_only("/r/suite");
    suite_only.events_for(ordered_json{{"change", "suite"}, {"status", "failure"}, {"links", ordered_json::array()}});
    CHECK(suite_only.events_for(ordered_json{{"change", "end"}, {"reason", "suite finished"}}).back().result ==
          SectionResult::failed);
  }
}
