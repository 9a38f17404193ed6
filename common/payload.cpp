#include "common/payload.hpp"

#include <charconv>
#include <cmath>
#include <ostream>
#include <type_traits>

#include <nlohmann/json.hpp>

#include "common/text.hpp"

namespace proctor {

namespace {

// "message\n\ntext" with empty parts left out.
std::string describe(const CaseOutcome& outcome) {
  const auto message = trim(outcome.message);
  const auto text = trim(outcome.text);
  std::string out(message);
  if (!message.empty() && !text.empty()) out += "\n\n";
  out += text;
  return out;
}

std::string case_description(const TestCase& test_case, std::size_t limit) {
  std::string out;
  const auto append = [&out](std::string part) {
    if (part.empty()) return;
    if (!out.empty()) out += "\n\n";
    out += part;
  };
  if (test_case.status != CaseStatus::passed) {
    for (const auto& outcome : test_case.outcomes) append(describe(outcome));
  }
  // Flaky and rerun attempts never change the result, but the user should see them.
  for (const auto& rerun : test_case.reruns) {
    append("[" + rerun.kind + "] " + describe(rerun));
  }
  return utf8_truncate(out, limit);
}

std::optional<int64_t> reported_memory(const TestCase& test_case) {
  for (const auto& [name, value] : test_case.properties) {
    if (name != "memoryUsed") continue;
    if (auto number = parse_decimal(value); number && *number >= 0) return std::llround(*number);
  }
  return std::nullopt;
}

int64_t to_millis(double seconds) { return std::llround(seconds * 1000.0); }

// Seconds with three decimals, locale independent ("15.866").
std::string seconds_text(double seconds) {
  char buffer[64];
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, seconds, std::chars_format::fixed, 3);
  if (ec != std::errc()) return "0.000";
  return std::string(buffer, end);
}

// The wire JSON is built in a string buffer that is handed to the stream in large
// chunks: per-field stream insertion was a third of `runner convert`'s time.
class WireWriter {
 public:
  explicit WireWriter(std::ostream* sink) : sink_(sink) { buffer_.reserve(kChunk + 4096); }
  ~WireWriter() { flush(); }
  WireWriter(const WireWriter&) = delete;
  WireWriter& operator=(const WireWriter&) = delete;

  void raw(std::string_view text) { buffer_ += text; }
  void string(std::string_view text) { append_json_string(buffer_, text); }
  void integer(int64_t value) { buffer_ += std::to_string(value); }
  void boolean(bool value) { buffer_ += value ? "true" : "false"; }
  void duration(double seconds, Dialect dialect) {
    if (dialect == Dialect::flat) {
      integer(to_millis(seconds));
    } else {
      buffer_.push_back('"');
      buffer_ += seconds_text(seconds);
      buffer_.push_back('"');
    }
  }
  // Hands the buffer to the stream once it is large (or always, with force).
  void flush(bool force = true) {
    if (sink_ != nullptr && (force || buffer_.size() >= kChunk)) {
      sink_->write(buffer_.data(), static_cast<std::streamsize>(buffer_.size()));
      buffer_.clear();
    }
  }
  std::string take() { return std::move(buffer_); }

 private:
  static constexpr std::size_t kChunk = 1 << 20;
  std::ostream* sink_;
  std::string buffer_;
};

void write_case(WireWriter& out, const CaseResult& c, Dialect dialect) {
  out.raw("{\"name\":");
  out.string(c.name);
  out.raw(",\"isPassed\":");
  out.boolean(c.passed);
  out.raw(",\"description\":");
  out.string(c.description);
  out.raw(",\"duration\":");
  out.duration(c.seconds, dialect);
  if (c.memory_kib) {
    out.raw(",\"memoryUsed\":");
    out.integer(*c.memory_kib);
  }
  out.raw("}");
}

void write_summary_fields(WireWriter& out, const ResultPayload& payload, Dialect dialect) {
  out.raw("\"isPassed\":");
  out.boolean(payload.passed);
  out.raw(",\"isError\":");
  out.boolean(payload.error);
  out.raw(",\"errorDetails\":");
  out.string(payload.error_details);
  out.raw(",\"duration\":");
  out.duration(payload.seconds, dialect);
}

void write_cases(WireWriter& out, const ResultPayload& payload, Dialect dialect) {
  out.raw("[");
  for (std::size_t i = 0; i < payload.cases.size(); ++i) {
    if (i != 0) out.raw(",");
    write_case(out, payload.cases[i], dialect);
    out.flush(/*force=*/false);
  }
  out.raw("]");
}

// `"key":<identity>,` exactly as the backend sent the identity; nothing without one.
void write_identity(WireWriter& out, std::string_view key, const TaskIdentity* identity) {
  if (identity == nullptr) return;
  out.string(key);
  out.raw(":");
  out.raw(identity->value.dump());
  out.raw(",");
}

void write_wire(WireWriter& out, const ResultPayload& payload, Dialect dialect, const TaskIdentity* identity) {
  out.raw("{");
  if (dialect == Dialect::flat) {
    write_identity(out, "id", identity);
    write_summary_fields(out, payload, dialect);
    out.raw(",\"testResults\":");
    write_cases(out, payload, dialect);
  } else {
    write_identity(out, "attempt", identity);
    out.raw("\"testResults\":{");
    write_summary_fields(out, payload, dialect);
    out.raw(",\"testCases\":");
    write_cases(out, payload, dialect);
    out.raw("}");
  }
  out.raw("}");
}

}  // namespace

std::string case_display_name(const TestCase& test_case, const std::string& strip_prefix) {
  std::string_view classname = test_case.classname;
  if (!strip_prefix.empty() && classname.substr(0, strip_prefix.size()) == strip_prefix) {
    classname.remove_prefix(strip_prefix.size());
  }
  if (classname.empty()) return test_case.name;
  std::string name(classname);
  name += "::";
  name += test_case.name;
  return name;
}

namespace {

// Calls f(case) for every case of `suite` and its nested suites, in document order;
// works on const and mutable reports alike.
template <class Suite, class F>
void visit_cases(Suite& suite, F& f) {
  for (auto& test_case : suite.cases) f(test_case);
  for (auto& child : suite.suites) visit_cases(child, f);
}

// The payload rules, once for both overloads; with a mutable report every case is
// emptied right after use so that its memory is reused for the payload.
template <class ReportT>
ResultPayload build(ReportT* report, const RunFacts& facts, const PayloadOptions& options) {
  ResultPayload payload;
  std::size_t errored = 0;
  std::size_t failed = 0;
  std::size_t skipped = 0;
  double case_seconds = 0;
  if (report != nullptr) {
    auto add_case = [&](auto& test_case) {
      CaseResult result;
      result.name = case_display_name(test_case, options.strip_prefix);
      result.passed = test_case.status == CaseStatus::passed;
      result.description = case_description(test_case, options.description_limit);
      result.seconds = test_case.time;
      result.memory_kib = reported_memory(test_case);
      if (!result.memory_kib) result.memory_kib = facts.peak_rss_kib;
      case_seconds += test_case.time;
      switch (test_case.status) {
        case CaseStatus::errored: ++errored; break;
        case CaseStatus::failed: ++failed; break;
        case CaseStatus::skipped: ++skipped; break;
        case CaseStatus::passed: break;
      }
      payload.cases.push_back(std::move(result));
      if constexpr (!std::is_const_v<ReportT>) test_case = TestCase{};
    };
    for (auto& suite : report->suites) visit_cases(suite, add_case);
  }

  std::optional<std::string> failure = facts.failure;
  if (!failure && report == nullptr) failure = "The service produced no readable report.";
  if (!failure && errored > 0) {
    failure = "The report has " + std::to_string(errored) + " errored test case" + (errored == 1 ? "" : "s") + ".";
  }
  payload.error = failure.has_value();
  if (failure) {
    payload.error_details = *failure;
    const auto tail = trim(facts.output_tail);
    if (!tail.empty()) {
      payload.error_details += "\n\n";
      payload.error_details += utf8_tail(tail, options.details_tail);
    }
  }
  payload.passed = !payload.error && !payload.cases.empty() && failed == 0 && errored == 0 &&
                   (options.skips_pass || skipped == 0);
  if (report != nullptr && report->time) payload.seconds = *report->time;
  else if (facts.wall_seconds > 0) payload.seconds = facts.wall_seconds;
  else payload.seconds = case_seconds;
  return payload;
}

}  // namespace

ResultPayload build_payload(const Report* report, const RunFacts& facts, const PayloadOptions& options) {
  return build(report, facts, options);
}

ResultPayload error_payload(std::string failure, const PayloadOptions& options) {
  RunFacts facts;
  facts.failure = std::move(failure);
  return build(static_cast<const Report*>(nullptr), facts, options);
}

ResultPayload build_payload(Report&& report, const RunFacts& facts, const PayloadOptions& options) {
  Report consumed = std::move(report);
  return build(&consumed, facts, options);
}

void write_payload(std::ostream& out, const ResultPayload& payload, Dialect dialect, const TaskIdentity* identity) {
  WireWriter writer(&out);
  write_wire(writer, payload, dialect, identity);
}

std::string serialize_payload(const ResultPayload& payload, const TaskIdentity& identity) {
  WireWriter writer(nullptr);
  write_wire(writer, payload, identity.dialect, &identity);
  return writer.take();
}

}  // namespace proctor
