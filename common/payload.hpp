#pragma once
// The result payload (SPEC §2.2): built from a Report and the facts of the run, then
// written in the task's dialect.

#include <cstddef>
#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include "common/report.hpp"
#include "common/task.hpp"

namespace proctor {

struct PayloadOptions {
  std::string strip_prefix = "tests.";        // removed from the start of a classname
  std::size_t description_limit = 64 * 1024;  // bytes kept of a case's description
  std::size_t details_tail = 4 * 1024;        // bytes of output appended to errorDetails
  bool skips_pass = false;                    // let skipped cases count as passing the run
};

// What the agent knows about the run besides the report.
struct RunFacts {
  std::optional<std::string> failure;   // why the run broke, one plain sentence
  std::string output_tail;              // last bytes of the service's stdout/stderr
  double wall_seconds = 0;              // wall time of the service run
  std::optional<int64_t> peak_rss_kib;  // measured peak RSS of the service's tree
};

struct CaseResult {
  std::string name;
  bool passed = false;
  std::string description;
  double seconds = 0;
  std::optional<int64_t> memory_kib;  // absent when neither reported nor measured
};

struct ResultPayload {
  bool passed = false;
  bool error = false;
  std::string error_details;
  double seconds = 0;
  std::vector<CaseResult> cases;
};

// The payload name of a case: classname minus `strip_prefix`, "::", name.
std::string case_display_name(const TestCase& test_case, const std::string& strip_prefix);

// Builds the payload; `report` is null when the run produced no readable report.
ResultPayload build_payload(const Report* report, const RunFacts& facts,
                            const PayloadOptions& options);

// The payload of a run that broke before or without a report: isError, with `failure`
// (one plain sentence) as errorDetails.
ResultPayload error_payload(std::string failure, const PayloadOptions& options);

// The same from a report that is no longer needed: each case's memory is released as
// soon as its result is built, so the payload reuses it (`runner convert` on huge reports).
ResultPayload build_payload(Report&& report, const RunFacts& facts, const PayloadOptions& options);

// Writes the payload as wire JSON in `dialect`, echoing `identity` when given (null for
// `runner convert`). Streams case by case, so a 100,000-case payload needs no JSON tree.
void write_payload(std::ostream& out, const ResultPayload& payload, Dialect dialect,
                   const TaskIdentity* identity);

// The payload as the task's wire JSON: the body that is POSTed.
std::string serialize_payload(const ResultPayload& payload, const TaskIdentity& identity);

}  // namespace proctor
