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

    // A record that is final when first seen starts and stops at once.
    events = mapper.events_for(ordered_json{{"change", "record"}, {"testname", "logout"}, {"status", "success"}});
    REQUIRE(events.size() == 2);
    CHECK(events[0].seq_num == 102);
    CHECK(events[0].name == "logout");  // no title: the testname
    CHECK(events[1].result == SectionResult::passed);

    events = mapper.events_for(ordered_json{{"change", "end"}, {"reason", "suite finished"}});
    REQUIRE(events.size() == 1);
    CHECK(events[0].event == "stop_task");
    CHECK(events[0].seq_num == 100);
    CHECK(events[0].result == SectionResult::failed);
    CHECK(mapper.events_for(ordered_json{{"change", "record"}, {"testname", "late"}, {"status", "success"}}).empty());
  }

  TEST_CASE("an end before any record still opens and closes the task") {
    LayoutEventMapper mapper("/r/empty");
    const auto events = mapper.events_for(ordered_json{{"change", "end"}, {"reason", "signal"}});
    REQUIRE(events.size() == 3);
    CHECK(events[2].event == "stop_task");
    CHECK(events[2].result == SectionResult::passed);  // nothing failed
  }
}
