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

void add_counts(const TestSuite& suite, ReportCounts& counts) {
  for (const auto& test_case : suite.cases) {
    ++counts.total;
    switch (test_case.status) {
      case CaseStatus::passed: ++counts.passed; break;
      case CaseStatus::skipped: ++counts.skipped; break;
      case CaseStatus::failed: ++counts.failed; break;
      case CaseStatus::errored: ++counts.errored; break;
    }
  }
  for (const auto& child : suite.suites) add_counts(child, counts);
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

std::optional<CaseStatus> outcome_status(const CaseOutcome& outcome) {
  if (outcome.kind == "error") return CaseStatus::errored;
  if (outcome.kind == "failure") return CaseStatus::failed;
  if (outcome.kind == "skipped") return CaseStatus::skipped;
  return std::nullopt;
}

const CaseOutcome* worst_outcome(const TestCase& test_case) {
  for (const auto& outcome : test_case.outcomes) {
    if (outcome_status(outcome) == test_case.status) return &outcome;
  }
  return nullptr;
}

ReportCounts Report::counts() const {
  ReportCounts counts;
  for (const auto& suite : suites) add_counts(suite, counts);
  return counts;
}

void merge_reports(Report& into, Report other) {
  // A default-constructed Report is the empty start of a merge: it takes the other's time.
  const auto is_empty = [](const Report& r) { return r.suites.empty() && !r.time; };
  if (is_empty(into)) {
    into.time = other.time;
  } else if (is_empty(other)) {
    // nothing to add
  } else if (into.time && other.time) {
    *into.time += *other.time;
  } else {
    into.time.reset();  // a total is only known when every part states one
  }
  if (into.name.empty()) into.name = std::move(other.name);
  into.suites.reserve(into.suites.size() + other.suites.size());
  into.suites.insert(into.suites.end(), std::make_move_iterator(other.suites.begin()),
                     std::make_move_iterator(other.suites.end()));
}

}  // namespace proctor
