#include <doctest/doctest.h>

#include <string>

#include "common/limits.hpp"
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
// The poll answer for `body`, which must be refused.
MalformedTask malformed(const std::string& body) {
  auto answer = classify_poll_answer(200, body);
  REQUIRE(std::holds_alternative<MalformedTask>(answer));
  return std::get<MalformedTask>(std::move(answer));
}
bool contains(const std::string& text, std::string_view part) { return text.find(part) != std::string::npos; }
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
    CHECK(parse_error("not json").rfind("the task is not valid JSON: ", 0) == 0);
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

  TEST_CASE("hostile: a task over the size limit is refused with its size, its identity still read") {
    const std::string body = R"({"id":"big","repositoryUrl":"u","pad":")" + std::string(kMaxTaskBytes, 'x') + R"("})";
    const auto why = parse_error(body);
    CHECK(contains(why, std::to_string(body.size()) + " bytes"));
    CHECK(contains(why, "limit of " + std::to_string(kMaxTaskBytes) + " bytes"));
    const auto bad = malformed(body);
    CHECK(bad.reason == why);
    REQUIRE(bad.identity.has_value());
    CHECK(bad.identity->text() == "big");
    CHECK(bad.identity->dialect == Dialect::flat);
  }

  TEST_CASE("hostile: an identity past the size limit, or cut by it, is not guessed") {
    // Only the first kMaxTaskBytes are read: an attempt number the cut runs through could
    // be the start of a longer one, so it is dropped rather than echoed wrong.
    const std::string head = R"({"repositoryUrl":"u","pad":")";
    const std::string tail = R"(","attempt":)";
    const std::string pad(kMaxTaskBytes - head.size() - tail.size() - 3, 'x');
    const std::string body = head + pad + tail + "123456}";
    REQUIRE(body.size() > kMaxTaskBytes);
    REQUIRE(body.substr(0, kMaxTaskBytes).ends_with(":123"));
    CHECK_FALSE(recover_task_identity(body).has_value());
    CHECK_FALSE(malformed(body).identity.has_value());
    const std::string beyond = head + std::string(kMaxTaskBytes, 'x') + tail + "5}";
    CHECK_FALSE(recover_task_identity(beyond).has_value());
  }

  TEST_CASE("hostile: 10,000-deep nesting is refused without a crash, the identity read around it") {
    const std::string deep = std::string(10000, '[') + std::string(10000, ']');
    const auto before = R"({"id":"deep","repositoryUrl":"u","x":)" + deep + "}";
    const auto why = parse_error(before);
    CHECK(contains(why, "more than 64 levels deep"));
    auto bad = malformed(before);
    CHECK(bad.reason == why);
    REQUIRE(bad.identity.has_value());
    CHECK(bad.identity->text() == "deep");
    // Read on past the deep part, holding only a counter.
    bad = malformed(R"({"x":)" + deep + R"(,"attempt":7})");
    CHECK(contains(bad.reason, "levels deep"));
    REQUIRE(bad.identity.has_value());
    CHECK(bad.identity->text() == "7");
    // Never closed, and nothing but nesting.
    CHECK(contains(parse_error(std::string(10000, '{')), "not valid JSON"));
    CHECK(contains(parse_error(std::string(10000, '[')), "levels deep"));
    CHECK_FALSE(malformed(std::string(10000, '[')).identity.has_value());
  }

  TEST_CASE("hostile: nesting up to the bound is read, one more is refused") {
    // The root object is one level: a value inside 64 containers is the deepest read.
    const auto nested = [](int arrays) {
      return R"({"id":"a","repositoryUrl":"u","x":)" + std::string(arrays, '[') + "1" + std::string(arrays, ']') + "}";
    };
    CHECK(parse_task(nested(63)).ok());
    CHECK(contains(parse_error(nested(64)), "more than 64 levels deep"));
  }

  TEST_CASE("hostile: invalid UTF-8 is said plainly, with its byte offset") {
    const std::string body = "{\"id\":\"u8\",\"repositoryUrl\":\"https://h/\xff.git\"}";
    const auto why = parse_error(body);
    CHECK(why == "the task is not valid UTF-8 (at byte offset " + std::to_string(body.find('\xff')) + ")");
    const auto bad = malformed(body);
    REQUIRE(bad.identity.has_value());
    CHECK(bad.identity->text() == "u8");
    // Overlong forms and surrogates are not UTF-8 either; nor is a bad byte between tokens.
    CHECK(contains(parse_error("{\"id\":\"a\",\"branch\":\"\xc0\xaf\"}"), "UTF-8 (at byte offset 20)"));
    CHECK(contains(parse_error("{\"id\":\"a\",\"branch\":\"\xed\xa0\x80\"}"), "UTF-8 (at byte offset 20)"));
    CHECK(contains(parse_error("{\"id\":\"a\"}\xfe"), "UTF-8 (at byte offset 10)"));
    // Valid UTF-8 where JSON has no place for it is a JSON error, not a UTF-8 one.
    const auto misplaced = parse_error("{\"id\":\"a\",\xc3\xa9}");
    CHECK(contains(misplaced, "not valid JSON"));
    CHECK_FALSE(contains(misplaced, "UTF-8"));
    // Valid multi-byte text is read as is.
    CHECK(parse_ok("{\"id\":\"a\",\"repositoryUrl\":\"u\",\"branch\":\"caf\xc3\xa9-\xf0\x9f\x8c\xb2\"}").branch ==
          "caf\xc3\xa9-\xf0\x9f\x8c\xb2");
  }

  TEST_CASE("hostile: JSON broken after the identity keeps the identity") {
    const auto bad = malformed(R"({"attempt":3,"repositoryUrl":"u",)");
    CHECK(contains(bad.reason, "not valid JSON"));
    REQUIRE(bad.identity.has_value());
    CHECK(bad.identity->dialect == Dialect::nested);
    CHECK(bad.identity->text() == "3");
    CHECK_FALSE(malformed(R"({"repositoryUrl":"u","id":)").identity.has_value());
    CHECK_FALSE(malformed(R"([{"id":"inner"}])").identity.has_value());
    CHECK_FALSE(malformed(R"({"x":{"id":"inner"},)").identity.has_value());
  }

  TEST_CASE("hostile: each wrongly typed field is named") {
    const auto id_object = malformed(R"({"id":{"uuid":"x"},"repositoryUrl":"u"})");
    CHECK(contains(id_object.reason, "\"id\" must be a non-empty string or an integer, not object"));
    CHECK_FALSE(id_object.identity.has_value());
    const auto attempt_string = malformed(R"({"attempt":"21","repositoryUrl":"u"})");
    CHECK(contains(attempt_string.reason, "\"attempt\" must be an integer, not string"));
    CHECK_FALSE(attempt_string.identity.has_value());

    const auto url_number = malformed(R"({"id":"a","repositoryUrl":42})");
    CHECK(contains(url_number.reason, "\"repositoryUrl\" must be a string, not number"));
    const auto labs_strings = malformed(R"({"id":"a","repositoryUrl":"u","laboratoryNumber":["1","2"]})");
    CHECK(contains(labs_strings.reason, "\"laboratoryNumber\" must hold integers, not string"));
    const auto tests_number = malformed(R"({"attempt":4,"repositoryUrl":"u","connectedTests":5})");
    CHECK(contains(tests_number.reason, "\"connectedTests\" must be a list of strings, not number"));
    for (const auto* bad : {&url_number, &labs_strings, &tests_number}) {
      CHECK(bad->identity.has_value());  // a typed field gone wrong still gets an error payload
    }
    CHECK(tests_number.identity->text() == "4");
  }
}
