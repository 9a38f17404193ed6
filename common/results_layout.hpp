#pragma once
// The Opereto results layout's rules (seed opereto-test-listener.md, SPEC §6), as pure
// logic shared by the layout writer and `runner listen`: the eight record statuses and
// the testname rule, with test names mapped into it uniquely.

#include <cstddef>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/report.hpp"
#include "common/result.hpp"

namespace proctor {

// A test record's status: exactly the seed's eight.
enum class RecordStatus { success, failure, warning, error, timeout, terminated, in_process, registered };

// The status as tests.json spells it ("in_process", ...).
const char* to_string(RecordStatus status);

// The status named `text`, or nullopt when it is not one of the eight.
std::optional<RecordStatus> parse_record_status(std::string_view text);

// True for the statuses a record ends with (all but in_process and registered).
bool is_final(RecordStatus status);

// True when `name` matches ^[a-z][a-zA-Z0-9_-]*$, the seed's testname rule.
bool is_valid_testname(std::string_view name);

// Gives every test name of one task a testname: valid, unique within the map, stable
// (the same name always gets the same testname) and as close to the name as the rule
// allows ("tests.test_calc::test_add" -> "tests_test_calc_test_add").
class TestnameMap {
 public:
  // The testname of `name`, made on first sight.
  const std::string& testname_for(std::string_view name);

  // A testname for one more record named `name`: never given before, by either call
  // (the first record of a name gets what testname_for would give, a repeat gets -2, ...).
  std::string fresh_testname(std::string_view name);

  // How many names have a testname.
  [[nodiscard]] std::size_t size() const { return by_name_.size(); }

 private:
  std::map<std::string, std::string, std::less<>> by_name_;
  std::set<std::string, std::less<>> taken_;
};

// A link of a record or of the suite: a URL and its display name.
struct LayoutLink {
  std::string url;
  std::string name;

  friend bool operator==(const LayoutLink&, const LayoutLink&) = default;
};

// One entry of tests.json's test_records.
struct LayoutRecord {
  std::string testname;               // valid by is_valid_testname; also its folder's name
  std::optional<std::string> title;   // display name; absent: the testname is shown
  RecordStatus status = RecordStatus::registered;
  std::optional<nlohmann::json> test_input;  // any JSON
  std::vector<LayoutLink> links;

  friend bool operator==(const LayoutRecord&, const LayoutRecord&) = default;
};

// tests.json as a whole.
struct TestsJson {
  std::optional<RecordStatus> suite_status;  // test_suite.status; absent is written ""
  std::vector<LayoutLink> suite_links;       // test_suite.links
  std::vector<LayoutRecord> records;         // test_records, in order

  friend bool operator==(const TestsJson&, const TestsJson&) = default;
};

// tests.json's text (indented, valid UTF-8, fields in the seed's order).
std::string to_tests_json(const TestsJson& tests);

// What parse_tests_json read: the valid records, and one sentence per thing it had to
// leave out (a record with a bad testname or status, a duplicate, a bad link, ...).
struct ParsedTestsJson {
  TestsJson tests;
  std::vector<std::string> problems;
};

// Reads tests.json against the seed's constraints. Bad records are left out and
// described in `problems`, never fatal; an error only when the text is not a JSON object
// (as when a writer is half-way through it) or test_records is not a list.
Result<ParsedTestsJson> parse_tests_json(std::string_view text);

// What the layout says of one test case read from a report.
struct CaseRecordContent {
  std::string name;     // "classname.name" (or the name alone): mapped to the testname, shown as title
  RecordStatus status;  // passed -> success, failed -> failure, errored -> error, skipped -> warning
  std::string summary;  // summary.txt: one line, "failed in 0.012 s: AssertionError: message"
  nlohmann::json output;                     // output.json: the case's facts
  std::string log;                           // log.txt: outcome texts, reruns, system-out/err
  std::optional<nlohmann::json> test_input;  // the case's properties, when it has some
};

// The record of `test_case` of `suite`.
CaseRecordContent case_record(const TestSuite& suite, const TestCase& test_case);

// The longest testname made (a folder name; the rest of a long test name is cut).
constexpr std::size_t kMaxTestnameBytes = 120;

}  // namespace proctor
