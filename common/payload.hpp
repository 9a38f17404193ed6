#pragma once
// The result payload (SPEC §2.2): built from a Report and the facts of the run, then
// written in the task's dialect.

#include <cstddef>
#include <cstdint>
#include <functional>
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

// Writes the payload as wire JSON in `dialect`, echoing `identity` when given (null for
// `runner convert`). Streams case by case, so a 100,000-case payload needs no JSON tree.
void write_payload(std::ostream& out, const ResultPayload& payload, Dialect dialect,
                   const TaskIdentity* identity);

// Called once per case of a report; the case may be overwritten after the call.
using CaseVisitor = std::function<void(const TestCase&)>;

// A report read case by case (a JunitDocument, for one): how many cases it has, and
// read(first, last, visit) that calls visit for the cases numbered [first, last) in
// report order. read must be safe to call from two threads at once.
struct CaseSource {
  std::size_t count = 0;
  std::function<void(std::size_t first, std::size_t last, const CaseVisitor& visit)> read;
};

// Writes the payload of a report that is read case by case, exactly as write_payload
// would write build_payload's result, without building it: `summary` gives the verdict,
// `cases` the cases. A large report is written by two threads, the second one's half
// held in memory until the first half is out (`runner convert` on a 100,000-case report).
void write_streamed_payload(std::ostream& out, const ReportSummary& summary, const CaseSource& cases,
                            const RunFacts& facts, const PayloadOptions& options, Dialect dialect,
                            const TaskIdentity* identity);

// The payload as the task's wire JSON: the body that is POSTed.
std::string serialize_payload(const ResultPayload& payload, const TaskIdentity& identity);

}  // namespace proctor
