#include "common/report.hpp"

#include <iterator>

namespace proctor {

namespace {

// Rank for "keep the worst": error > failure > passed > skipped.
int severity(CaseStatus status) {
  switch (status) {
    case CaseStatus::skipped: return 0;
    case CaseStatus::passed: return 1;
    case CaseStatus::failed: return 2;
    case CaseStatus::errored: return 3;
  }
  return 3;  // unreachable for valid enumerators; an unknown value is treated as the worst
}


// The time of a merge: a default-constructed (empty) start takes the other's time; a
// total is only known when every part states one.
std::optional<double> merged_time(bool into_empty, std::optional<double> into, bool other_empty,
                                  std::optional<double> other) {
  if (into_empty) return other;
  if (other_empty) return into;
  if (into && other) return *into + *other;
  return std::nullopt;
}

}  // namespace

const char* to_string(CaseStatus status) {
  switch (status) {
    case CaseStatus::passed: return "passed";
    case CaseStatus::skipped: return "skipped";
    case CaseStatus::failed: return "failed";
    case CaseStatus::errored: return "errored";
  }
  return "errored";
}

CaseStatus worse_status(CaseStatus a, CaseStatus b) { return severity(b) > severity(a) ? b : a; }

std::optional<CaseStatus> outcome_status(std::string_view kind) {
  if (kind == "error") return CaseStatus::errored;
  if (kind == "failure") return CaseStatus::failed;
  if (kind == "skipped") return CaseStatus::skipped;
  return std::nullopt;
}

std::optional<CaseStatus> outcome_status(const CaseOutcome& outcome) { return outcome_status(outcome.kind); }

const CaseOutcome* worst_outcome(const TestCase& test_case) {
  for (const auto& outcome : test_case.outcomes) {
    if (outcome_status(outcome) == test_case.status) return &outcome;
  }
  return nullptr;
}

void count_case(ReportCounts& counts, CaseStatus status) {
  ++counts.total;
  switch (status) {
    case CaseStatus::passed: ++counts.passed; break;
    case CaseStatus::skipped: ++counts.skipped; break;
    case CaseStatus::failed: ++counts.failed; break;
    case CaseStatus::errored: ++counts.errored; break;
  }
}

ReportCounts Report::counts() const {
  ReportCounts counts;
  for_each_case([&counts](const TestSuite&, const TestCase& test_case) { count_case(counts, test_case.status); });
  return counts;
}

ReportSummary Report::summary() const {
  ReportSummary summary;
  summary.time = time;
  summary.has_suites = !suites.empty();
  for_each_case([&summary](const TestSuite&, const TestCase& test_case) {
    count_case(summary.counts, test_case.status);
    summary.case_seconds += test_case.time;
  });
  return summary;
}

std::optional<double> report_time(std::optional<double> stated, const std::vector<std::optional<double>>& suite_times) {
  if (stated || suite_times.empty()) return stated;
  double total = 0;
  for (const auto& time : suite_times) {
    if (!time) return std::nullopt;
    total += *time;
  }
  return total;
}

void merge_summaries(ReportSummary& into, const ReportSummary& other) {
  const auto is_empty = [](const ReportSummary& s) { return !s.has_suites && !s.time; };
  into.time = merged_time(is_empty(into), into.time, is_empty(other), other.time);
  into.counts.total += other.counts.total;
  into.counts.passed += other.counts.passed;
  into.counts.failed += other.counts.failed;
  into.counts.errored += other.counts.errored;
  into.counts.skipped += other.counts.skipped;
  into.case_seconds += other.case_seconds;
  into.has_suites = into.has_suites || other.has_suites;
}

void merge_reports(Report& into, Report other) {
  const auto is_empty = [](const Report& r) { return r.suites.empty() && !r.time; };
  into.time = merged_time(is_empty(into), into.time, is_empty(other), other.time);
  if (into.name.empty()) into.name = std::move(other.name);
  into.suites.reserve(into.suites.size() + other.suites.size());
  into.suites.insert(into.suites.end(), std::make_move_iterator(other.suites.begin()),
                     std::make_move_iterator(other.suites.end()));
}

}  // namespace proctor
