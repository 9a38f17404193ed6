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

  // How many names have a testname.
  [[nodiscard]] std::size_t size() const { return by_name_.size(); }

 private:
  std::map<std::string, std::string, std::less<>> by_name_;
  std::set<std::string, std::less<>> taken_;
};

// The longest testname made (a folder name; the rest of a long test name is cut).
constexpr std::size_t kMaxTestnameBytes = 120;

}  // namespace proctor
