// The results layout's rules: the eight statuses and testnames mapped from any test name.

#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "common/junit.hpp"
#include "common/results_layout.hpp"
#include "require_ok.hpp"

using namespace proctor;

TEST_SUITE("results_layout") {
  TEST_CASE("the seed's eight statuses, spelt as tests.json spells them; only they parse") {
    const std::vector<std::string> names = {"success", "failure", "warning", "error",
                                            "timeout", "terminated", "in_process", "registered"};
    for (const auto& name : names) {
      const auto status = parse_record_status(name);
      REQUIRE(status.has_value());
      CHECK(std::string(to_string(*status)) == name);
    }
    CHECK_FALSE(parse_record_status("passed").has_value());
    CHECK_FALSE(parse_record_status("Success").has_value());
    CHECK_FALSE(parse_record_status("").has_value());
    CHECK_FALSE(is_final(RecordStatus::in_process));
    CHECK_FALSE(is_final(RecordStatus::registered));
    CHECK(is_final(RecordStatus::terminated));
    CHECK(is_final(RecordStatus::success));
  }

  TEST_CASE("the testname rule: lower-case start, then letters, digits, _ and -") {
    CHECK(is_valid_testname("test_1"));
    CHECK(is_valid_testname("a-B_9"));
    CHECK_FALSE(is_valid_testname(""));
    CHECK_FALSE(is_valid_testname("Test_1"));
    CHECK_FALSE(is_valid_testname("1test"));
    CHECK_FALSE(is_valid_testname("_test"));
    CHECK_FALSE(is_valid_testname("test.name"));
    CHECK_FALSE(is_valid_testname("../etc"));
    CHECK_FALSE(is_valid_testname("t\xC3\xA9st"));
  }

  TEST_CASE("test names map into valid, readable testnames") {
    TestnameMap map;
    CHECK(map.testname_for("test_build::test_make") == "test_build_test_make");
    CHECK(map.testname_for("tests.Calc::test add[1-2]") == "tests_Calc_test_add_1-2");
    CHECK(map.testname_for("TestSuite/Case.Works") == "testSuite_Case_Works");
    CHECK(map.testname_for("42 is the answer") == "t_42_is_the_answer");
    CHECK(map.testname_for("../../etc/passwd") == "t_etc_passwd");
    CHECK(map.testname_for("") == "t");
    CHECK(map.testname_for("テスト") == "t-2");  // nothing usable left: "t", taken, so made unique
  }

  TEST_CASE("testnames are unique, stable for the same name, and bounded in length") {
    TestnameMap map;
    const std::string first = map.testname_for("a.b");
    const std::string second = map.testname_for("a b");
    const std::string third = map.testname_for("a/b");
    CHECK(first == "a_b");
    CHECK(second == "a_b-2");
    CHECK(third == "a_b-3");
    CHECK(map.testname_for("a b") == "a_b-2");  // stable
    CHECK(map.size() == 3);
    const std::string long_name(500, 'x');
    const std::string& long_testname = map.testname_for(long_name);
    CHECK(long_testname.size() == kMaxTestnameBytes);
    const std::string& long_other = map.testname_for(long_name + "y");
    CHECK(long_other.size() == kMaxTestnameBytes);
    CHECK(long_other != long_testname);
    // Whatever goes in, what comes out follows the rule.
    for (const std::string name : {"", "_", "-", "9", "\xFF\xFE", "a\nb", "Z", "::", "t", "t-2"}) {
      CHECK_MESSAGE(is_valid_testname(map.testname_for(name)), name);
    }
  }

  TEST_CASE("tests.json written and read back is the same, with the seed's shape") {
    TestsJson tests;
    tests.suite_links = {{"https://ci/task/7", "task"}};
    LayoutRecord fetch;
    fetch.testname = "fetch";
    fetch.status = RecordStatus::success;
    fetch.test_input = nlohmann::json{{"repository", "https://git/x.git"}};
    LayoutRecord test;
    test.testname = "tests_test_calc_test_add";
    test.title = "tests.test_calc::test_add \xC3\xA9";
    test.status = RecordStatus::in_process;
    test.links = {{"file:///r/junit.xml", "report"}};
    tests.records = {fetch, test};
    const std::string text = to_tests_json(tests);
    const auto raw = nlohmann::json::parse(text);
    CHECK(raw["test_suite"]["status"] == "");  // not set yet
    CHECK(raw["test_records"][1]["status"] == "in_process");
    CHECK(raw["test_records"][0]["links"].is_array());
    auto parsed = parse_tests_json(text);
    REQUIRE_OK(parsed);
    CHECK(parsed->problems.empty());
    CHECK(parsed->tests == tests);
    tests.suite_status = RecordStatus::failure;
    parsed = parse_tests_json(to_tests_json(tests));
    REQUIRE_OK(parsed);
    CHECK(parsed->tests.suite_status == RecordStatus::failure);
  }

  TEST_CASE("bad records are left out and described; the rest is read") {
    const auto parsed = parse_tests_json(R"({
      "test_suite": {"status": "in_process", "links": "x"},
      "test_records": [
        {"testname": "good", "status": "success"},
        {"testname": "Bad", "status": "success"},
        {"testname": "../evil", "status": "success"},
        {"testname": "nostatus"},
        {"testname": "wrongstatus", "status": "passed"},
        {"status": "success"},
        7,
        {"testname": "good", "status": "failure"},
        {"testname": "odd_fields", "status": "registered", "title": 3, "links": [{"name": "no url"}], "test_input": [1, 2]}
      ]})");
    REQUIRE_OK(parsed);
    REQUIRE(parsed->tests.records.size() == 2);
    CHECK(parsed->tests.records[0].testname == "good");
    CHECK(parsed->tests.records[0].status == RecordStatus::success);
    CHECK(parsed->tests.records[1].testname == "odd_fields");
    CHECK(parsed->tests.records[1].test_input == nlohmann::json::array({1, 2}));
    CHECK_FALSE(parsed->tests.records[1].title.has_value());
    CHECK_FALSE(parsed->tests.suite_status.has_value());  // in_process is not an end
    const auto mentions = [&](const std::string& what) {
      for (const auto& problem : parsed->problems) {
        if (problem.find(what) != std::string::npos) return true;
      }
      return false;
    };
    CHECK(mentions("'Bad': the testname must start with a lower-case letter"));
    CHECK(mentions("'../evil'"));
    CHECK(mentions("'nostatus' has no status"));
    CHECK(mentions("the status 'passed' is not one of"));
    CHECK(mentions("test_records[5] has no testname"));
    CHECK(mentions("test_records[6] is not an object"));
    CHECK(mentions("'good' repeats a testname"));
    CHECK(mentions("title is not a string"));
    CHECK(mentions("a link is not an object with a string url"));
    CHECK(mentions("test_suite: links is not a list"));
    CHECK(mentions("test_suite.status 'in_process' is not a final status"));
    CHECK(parsed->problems.size() == 11);
  }

  TEST_CASE("tests.json that is not (yet) a JSON object is an error, not a crash") {
    for (const std::string text : {"", "{\"test_suite\": {\"sta", "[]", "null", "\xFF", "{\"test_records\": {}}"}) {
      CHECK_FALSE_MESSAGE(parse_tests_json(text).ok(), text);
    }
    const auto empty = parse_tests_json("{}");
    REQUIRE_OK(empty);
    CHECK(empty->tests.records.empty());
  }

  TEST_CASE("fresh testnames never repeat, and share the sequence with testname_for") {
    TestnameMap map;
    CHECK(map.testname_for("a.b") == "a_b");
    CHECK(map.fresh_testname("a.b") == "a_b-2");
    CHECK(map.fresh_testname("a.b") == "a_b-3");
    CHECK(map.fresh_testname("a b") == "a_b-4");
    CHECK(map.testname_for("a.b") == "a_b");  // the map itself is unchanged
    CHECK(map.testname_for("a/b") == "a_b-5");
  }

  TEST_CASE("a case's record: status, one-line summary, facts, log and properties as input") {
    auto report = parse_junit(R"(<testsuite name="calc">
      <testcase classname="tests.test_calc" name="test_div" time="0.25" file="t.py" line="9">
        <failure type="ZeroDivisionError" message="division by zero&#10;second line">Traceback...</failure>
        <properties><property name="level" value="3"/></properties>
        <system-out>printed</system-out>
      </testcase>
      <testcase name="test_skip"><skipped message="not today"/></testcase>
      <testcase name="test_ok" time="1"/>
    </testsuite>)");
    REQUIRE_OK(report);
    const auto& suite = report->suites[0];
    const auto failed = case_record(suite, suite.cases[0]);
    CHECK(failed.name == "tests.test_calc.test_div");
    CHECK(failed.status == RecordStatus::failure);
    CHECK(failed.summary == "failed in 0.250 s: ZeroDivisionError: division by zero\n");
    CHECK(failed.output["file"] == "t.py");
    CHECK(failed.output["line"] == 9);
    CHECK(failed.output["suite"] == "calc");
    CHECK(failed.output["outcomes"][0]["kind"] == "failure");
    CHECK(failed.log.find("== failure (ZeroDivisionError): division by zero") == 0);
    CHECK(failed.log.find("Traceback...\n") != std::string::npos);
    CHECK(failed.log.find("== system-out\nprinted\n") != std::string::npos);
    CHECK(failed.test_input == nlohmann::json{{"level", "3"}});
    const auto skipped = case_record(suite, suite.cases[1]);
    CHECK(skipped.name == "test_skip");
    CHECK(skipped.status == RecordStatus::warning);
    CHECK(skipped.summary == "skipped in 0.000 s: not today\n");
    const auto passed = case_record(suite, suite.cases[2]);
    CHECK(passed.status == RecordStatus::success);
    CHECK(passed.summary == "passed in 1.000 s\n");
    CHECK(passed.log.empty());
    CHECK_FALSE(passed.test_input.has_value());
  }

  TEST_CASE("tests.json nested past the bound is refused whole, not followed down") {
    const auto nested = [](int depth) {
      return R"({"test_records": [{"testname": "a", "status": "success", "test_input": )" + std::string(depth, '[') +
             std::string(depth, ']') + "}]}";
    };
    REQUIRE_OK(parse_tests_json(nested(50)));
    const auto deep = parse_tests_json(nested(100000));
    REQUIRE_FALSE(deep.ok());
    CHECK(deep.error().message.find("levels deep") != std::string::npos);
  }
}
