#pragma once
// The neutral test-report model: what every JUnit XML dialect is read into, and what
// payloads, the results layout and `runner convert --format report` are made from.
// All strings are valid UTF-8.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace proctor {

// A case's result. Declared from best to worst for the "keep the worst" rule is not
// this order: use worse_status() instead of comparing.
enum class CaseStatus { passed, skipped, failed, errored };

// Name used in JSON and logs: "passed", "skipped", "failed", "errored".
const char* to_string(CaseStatus status);

// The worse of two results by error > failure > passed > skipped.
CaseStatus worse_status(CaseStatus a, CaseStatus b);

// One <failure>/<error>/<skipped> element, or a Surefire flaky*/rerun* element.
struct CaseOutcome {
  std::string kind;     // element name: failure, error, skipped, flakyFailure, rerunError, ...
  std::string type;     // its type attribute
  std::string message;  // its message attribute
  std::string text;     // its text (a traceback, usually)

  friend bool operator==(const CaseOutcome&, const CaseOutcome&) = default;
};

// The result an outcome element of this kind stands for: failure, error and skipped do;
// flaky*/rerun* kinds (nullopt) do not.
std::optional<CaseStatus> outcome_status(std::string_view kind);

// The result a failure/error/skipped outcome stands for; nullopt for flaky*/rerun* kinds.
std::optional<CaseStatus> outcome_status(const CaseOutcome& outcome);

// A <property name= value=> pair (value may also be the element's text).
using Property = std::pair<std::string, std::string>;

struct TestCase {
  std::string name;
  std::string classname;
  std::string file;             // file attribute, when given
  std::optional<int64_t> line;  // line attribute, when given and numeric
  double time = 0;              // seconds; 0 when missing or unreadable
  CaseStatus status = CaseStatus::passed;
  std::vector<CaseOutcome> outcomes;  // the failure/error/skipped elements, in order
  std::vector<CaseOutcome> reruns;    // flakyFailure/flakyError/rerunFailure/rerunError
  std::string system_out;
  std::string system_err;
  std::vector<Property> properties;

  friend bool operator==(const TestCase&, const TestCase&) = default;
};

struct TestSuite {
  std::string name;
  std::optional<double> time;  // its time attribute, when readable
  std::string timestamp;
  std::string hostname;
  std::string file;
  std::vector<Property> properties;
  std::vector<TestCase> cases;
  std::vector<TestSuite> suites;  // nested suites
  std::string system_out;
  std::string system_err;
};

// The first outcome that gives the case its status (what a description shows); null for
// a passed case, and for a skip stated only by attributes (gtest notrun, ctest disabled).
const CaseOutcome* worst_outcome(const TestCase& test_case);

// Counts recomputed from the cases (never trusted from suite attributes).
struct ReportCounts {
  std::size_t total = 0;
  std::size_t passed = 0;
  std::size_t failed = 0;
  std::size_t errored = 0;
  std::size_t skipped = 0;

  friend bool operator==(const ReportCounts&, const ReportCounts&) = default;
};

// What a payload's verdict needs from a report, without its cases' text: the counts,
// the total time the report states, and the sum of its cases' times.
struct ReportSummary {
  ReportCounts counts;
  std::optional<double> time;  // as Report::time
  double case_seconds = 0;     // sum of every case's time
  bool has_suites = false;     // false for the empty start of a merge

  friend bool operator==(const ReportSummary&, const ReportSummary&) = default;
};

struct Report {
  std::string name;            // <testsuites name=>, when given
  std::optional<double> time;  // the report's total time when it states one
  std::vector<TestSuite> suites;

  // Counts over every case of every (nested) suite.
  [[nodiscard]] ReportCounts counts() const;
  // Counts, stated time and summed case time.
  [[nodiscard]] ReportSummary summary() const;
  // Calls f(suite, case) for every case, depth first, in document order.
  template <class F>
  void for_each_case(F&& f) const {
    for (const auto& s : suites) visit(s, f);
  }

 private:
  template <class F>
  static void visit(const TestSuite& suite, F& f) {
    for (const auto& c : suite.cases) f(suite, c);
    for (const auto& child : suite.suites) visit(child, f);
  }
};

// Appends the suites of `other` to `into` and sums the times (for several report files).
void merge_reports(Report& into, Report other);

// The summary of merge_reports(into, other) given the summaries of both.
void merge_summaries(ReportSummary& into, const ReportSummary& other);

// Adds one case's result to `counts`.
void count_case(ReportCounts& counts, CaseStatus status);

// A report's total time: `stated` when given, else the sum of its top-level suites' times
// when every one states a time (none when there are no suites).
std::optional<double> report_time(std::optional<double> stated, const std::vector<std::optional<double>>& suite_times);

}  // namespace proctor
