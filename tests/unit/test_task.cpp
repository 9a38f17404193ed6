#include <doctest/doctest.h>

#include "common/task.hpp"
#include "tests/unit/require_ok.hpp"

using namespace proctor;

namespace {
Task parse_ok(std::string_view json) {
  auto task = parse_task(json);
  REQUIRE_OK(task);
  return std::move(task).value();
}
std::string parse_error(std::string_view json) {
  auto task = parse_task(json);
  REQUIRE_FALSE(task.ok());
  return task.error().message;
}
}  // namespace

TEST_SUITE("task") {
  TEST_CASE("flat dialect: UUID id, every field") {
    const auto task = parse_ok(R"({"id":"3fa85f64-5717-4562-b3fc-2c963f66afa6","status":"AVAILABLE",
      "repositoryUrl":"https://github.com/os-nsu/proxy-grisha.git","branch":"main","laboratoryNumber":1,
      "connectedTests":["test1","test2"],"somethingNew":{"ignored":true}})");
    CHECK(task.identity.dialect == Dialect::flat);
    CHECK(task.identity.text() == "3fa85f64-5717-4562-b3fc-2c963f66afa6");
    CHECK(task.repository_url == "https://github.com/os-nsu/proxy-grisha.git");
    CHECK(task.branch == "main");
    CHECK(task.laboratory_numbers == std::vector<int64_t>{1});
    CHECK_FALSE(task.laboratory_number_is_list);
    CHECK(task.connected_tests == std::vector<std::string>{"test1", "test2"});
  }

  TEST_CASE("flat dialect: integer id is echoed as an integer") {
    const auto task = parse_ok(R"({"id":42,"repositoryUrl":"u"})");
    CHECK(task.identity.value.is_number_integer());
    CHECK(task.identity.text() == "42");
  }

  TEST_CASE("nested dialect: attempt, list of laboratory numbers, absent fields") {
    const auto task = parse_ok(R"({"attempt":21,"repositoryUrl":"u","laboratoryNumber":[1,2]})");
    CHECK(task.identity.dialect == Dialect::nested);
    CHECK(task.identity.text() == "21");
    CHECK(task.laboratory_numbers == std::vector<int64_t>{1, 2});
    CHECK(task.laboratory_number_is_list);
    CHECK_FALSE(task.branch.has_value());
    CHECK(task.connected_tests.empty());
  }

  TEST_CASE("null and empty optional fields mean absent") {
    const auto task = parse_ok(R"({"id":"a","repositoryUrl":"u","branch":null,"laboratoryNumber":null,
      "connectedTests":[],"revision":"","service":null})");
    CHECK_FALSE(task.branch.has_value());
    CHECK(task.laboratory_numbers.empty());
    CHECK(task.connected_tests.empty());
    CHECK_FALSE(task.revision.has_value());
    CHECK_FALSE(task.service.has_value());
  }

  TEST_CASE("extension fields") {
    const auto task = parse_ok(R"({"id":"a","repositoryUrl":"svn://h/r","repositoryType":"svn","revision":"r12",
      "timeout":90,"service":"lab1"})");
    CHECK(task.repository_type == "svn");
    CHECK(task.revision == "r12");
    CHECK(task.timeout_seconds == doctest::Approx(90));
    CHECK(task.service == "lab1");
  }

  TEST_CASE("malformed tasks are refused with the field named") {
    CHECK(parse_error("not json") == "the task is not valid JSON");
    CHECK(parse_error("[1,2]").find("JSON object") != std::string::npos);
    CHECK(parse_error(R"({"repositoryUrl":"u"})").find("no identity") != std::string::npos);
    CHECK(parse_error(R"({"id":"","repositoryUrl":"u"})").find("\"id\"") != std::string::npos);
    CHECK(parse_error(R"({"id":1.5,"repositoryUrl":"u"})").find("\"id\"") != std::string::npos);
    CHECK(parse_error(R"({"attempt":"21","repositoryUrl":"u"})").find("\"attempt\" must be an integer") !=
          std::string::npos);
    CHECK(parse_error(R"({"id":"a"})").find("repositoryUrl") != std::string::npos);
    CHECK(parse_error(R"({"id":"a","repositoryUrl":"  "})").find("empty") != std::string::npos);
    CHECK(parse_error(R"({"id":"a","repositoryUrl":5})").find("repositoryUrl") != std::string::npos);
    CHECK(parse_error(R"({"id":"a","repositoryUrl":"u","laboratoryNumber":"1"})").find("laboratoryNumber") !=
          std::string::npos);
    CHECK(parse_error(R"({"id":"a","repositoryUrl":"u","laboratoryNumber":[1,"x"]})").find("laboratoryNumber") !=
          std::string::npos);
    CHECK(parse_error(R"({"id":"a","repositoryUrl":"u","connectedTests":"t"})").find("connectedTests") !=
          std::string::npos);
    CHECK(parse_error(R"({"id":"a","repositoryUrl":"u","connectedTests":[1]})").find("connectedTests") !=
          std::string::npos);
    CHECK(parse_error(R"({"id":"a","repositoryUrl":"u","branch":7})").find("branch") != std::string::npos);
    CHECK(parse_error(R"({"id":"a","repositoryUrl":"u","repositoryType":"cvs"})").find("repositoryType") !=
          std::string::npos);
    CHECK(parse_error(R"({"id":"a","repositoryUrl":"u","timeout":-1})").find("timeout") != std::string::npos);
    CHECK(parse_error(R"({"id":"a","repositoryUrl":"u","timeout":1e12})").find("at most a week") != std::string::npos);
  }

  TEST_CASE("every 'no task' answer of the backend") {
    CHECK(std::holds_alternative<NoTask>(classify_poll_answer(204, "")));
    CHECK(std::holds_alternative<NoTask>(classify_poll_answer(404, "{\"error\":\"none\"}")));
    CHECK(std::holds_alternative<NoTask>(classify_poll_answer(200, "")));
    CHECK(std::holds_alternative<NoTask>(classify_poll_answer(200, "  \n")));
    CHECK(std::holds_alternative<NoTask>(classify_poll_answer(200, R"({"status":"UNAVAILABLE"})")));
  }

  TEST_CASE("a task answer, and malformed answers with and without identity") {
    CHECK(std::holds_alternative<Task>(classify_poll_answer(200, R"({"attempt":1,"repositoryUrl":"u"})")));
    const auto no_json = classify_poll_answer(200, "<html>");
    REQUIRE(std::holds_alternative<MalformedTask>(no_json));
    CHECK_FALSE(std::get<MalformedTask>(no_json).identity.has_value());
    const auto no_url = classify_poll_answer(200, R"({"attempt":9})");
    REQUIRE(std::holds_alternative<MalformedTask>(no_url));
    REQUIRE(std::get<MalformedTask>(no_url).identity.has_value());
    CHECK(std::get<MalformedTask>(no_url).identity->text() == "9");
    CHECK(std::get<MalformedTask>(no_url).reason.find("repositoryUrl") != std::string::npos);
  }

  TEST_CASE("task_inputs: comma-delimited lists, empty when absent") {
    const auto task = parse_ok(R"({"id":"x","repositoryUrl":"u","branch":"b","laboratoryNumber":[3,4],
      "connectedTests":["a","b"]})");
    const auto inputs = task_inputs(task);
    const auto get = [&](const std::string& key) {
      for (const auto& [k, v] : inputs) {
        if (k == key) return v;
      }
      FAIL("missing input " << key);
      return std::string();
    };
    CHECK(get("task_id") == "x");
    CHECK(get("branch") == "b");
    CHECK(get("laboratory_number") == "3,4");
    CHECK(get("connected_tests") == "a,b");
    const auto bare = task_inputs(parse_ok(R"({"attempt":1,"repositoryUrl":"u"})"));
    CHECK(bare[2].second.empty());
  }
}
