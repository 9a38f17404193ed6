// The results layout's rules: the eight statuses and testnames mapped from any test name.

#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "common/results_layout.hpp"

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
}
