#include "common/payload.hpp"

#include <charconv>
#include <cmath>
#include <ostream>
#include <sstream>

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

void write_string(std::ostream& out, const std::string& text) {
  out << nlohmann::json(text).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void write_duration(std::ostream& out, double seconds, Dialect dialect) {
  if (dialect == Dialect::flat) out << to_millis(seconds);
  else out << '"' << seconds_text(seconds) << '"';
}

void write_case(std::ostream& out, const CaseResult& c, Dialect dialect) {
  out << "{\"name\":";
  write_string(out, c.name);
  out << ",\"isPassed\":" << (c.passed ? "true" : "false") << ",\"description\":";
  write_string(out, c.description);
  out << ",\"duration\":";
  write_duration(out, c.seconds, dialect);
  if (c.memory_kib) out << ",\"memoryUsed\":" << *c.memory_kib;
  out << '}';
}

void write_summary_fields(std::ostream& out, const ResultPayload& payload, Dialect dialect) {
  out << "\"isPassed\":" << (payload.passed ? "true" : "false")
      << ",\"isError\":" << (payload.error ? "true" : "false") << ",\"errorDetails\":";
  write_string(out, payload.error_details);
  out << ",\"duration\":";
  write_duration(out, payload.seconds, dialect);
}

void write_cases(std::ostream& out, const ResultPayload& payload, Dialect dialect) {
  out << '[';
  for (std::size_t i = 0; i < payload.cases.size(); ++i) {
    if (i != 0) out << ',';
    write_case(out, payload.cases[i], dialect);
  }
  out << ']';
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

ResultPayload build_payload(const Report* report, const RunFacts& facts, const PayloadOptions& options) {
  ResultPayload payload;
  std::size_t errored = 0;
  std::size_t failed = 0;
  std::size_t skipped = 0;
  double case_seconds = 0;
  if (report != nullptr) {
    report->for_each_case([&](const TestSuite& /*suite*/, const TestCase& test_case) {
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
    });
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

void write_payload(std::ostream& out, const ResultPayload& payload, Dialect dialect, const TaskIdentity* identity) {
  out << '{';
  if (dialect == Dialect::flat) {
    if (identity != nullptr) out << "\"id\":" << identity->value.dump() << ',';
    write_summary_fields(out, payload, dialect);
    out << ",\"testResults\":";
    write_cases(out, payload, dialect);
  } else {
    if (identity != nullptr) out << "\"attempt\":" << identity->value.dump() << ',';
    out << "\"testResults\":{";
    write_summary_fields(out, payload, dialect);
    out << ",\"testCases\":";
    write_cases(out, payload, dialect);
    out << '}';
  }
  out << '}';
}

std::string serialize_payload(const ResultPayload& payload, const TaskIdentity& identity) {
  std::ostringstream out;
  write_payload(out, payload, identity.dialect, &identity);
  return out.str();
}

}  // namespace proctor
