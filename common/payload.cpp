#include "common/payload.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <ostream>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <type_traits>

#include <nlohmann/json.hpp>

#include "common/parallel.hpp"
#include "common/text.hpp"

namespace proctor {

namespace {

// Appends label + "message\n\ntext" (empty parts left out) after a blank line; nothing
// when all three are empty.
void append_outcome(std::string& out, const CaseOutcome& outcome, std::string_view label) {
  const auto message = trim(outcome.message);
  const auto text = trim(outcome.text);
  if (label.empty() && message.empty() && text.empty()) return;
  if (!out.empty()) out += "\n\n";
  out += label;
  out += message;
  if (!message.empty() && !text.empty()) out += "\n\n";
  out += text;
}

// The description of a case into `out` (its memory reused): the failure/error/skipped
// outcomes of a case that did not pass, then every flaky/rerun attempt, at most `limit` bytes.
void describe_case(const TestCase& test_case, std::size_t limit, std::string& out) {
  out.clear();
  if (test_case.status != CaseStatus::passed) {
    for (const auto& outcome : test_case.outcomes) append_outcome(out, outcome, {});
  }
  // Flaky and rerun attempts never change the result, but the user should see them.
  std::string label;
  for (const auto& rerun : test_case.reruns) {
    label = "[" + rerun.kind + "] ";
    append_outcome(out, rerun, label);
  }
  if (out.size() > limit) out = utf8_truncate(out, limit);
}

std::optional<int64_t> reported_memory(const TestCase& test_case) {
  for (const auto& [name, value] : test_case.properties) {
    if (name != "memoryUsed") continue;
    if (auto number = parse_decimal(value); number && *number >= 0) return std::llround(*number);
  }
  return std::nullopt;
}

int64_t to_millis(double seconds) { return std::llround(seconds * 1000.0); }

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
      buffer_ += three_decimals(seconds);
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
  // What was written and not yet handed to the stream.
  [[nodiscard]] std::string_view data() const { return buffer_; }
  // Forgets it, keeping the memory.
  void clear() { buffer_.clear(); }

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

// `"key":<identity>,` exactly as the backend sent the identity; nothing without one.
void write_identity(WireWriter& out, std::string_view key, const TaskIdentity* identity) {
  if (identity == nullptr) return;
  out.string(key);
  out.raw(":");
  out.raw(identity->value.dump());
  out.raw(",");
}

// The payload's wire JSON around its cases; write_cases() writes the cases' array.
template <class WriteCases>
void write_wire(WireWriter& out, const ResultPayload& head, Dialect dialect, const TaskIdentity* identity,
                const WriteCases& write_cases) {
  out.raw("{");
  if (dialect == Dialect::flat) {
    write_identity(out, "id", identity);
    write_summary_fields(out, head, dialect);
    out.raw(",\"testResults\":");
    write_cases();
  } else {
    write_identity(out, "attempt", identity);
    out.raw("\"testResults\":{");
    write_summary_fields(out, head, dialect);
    out.raw(",\"testCases\":");
    write_cases();
    out.raw("}");
  }
  out.raw("}");
}

// Writes cases as elements of a JSON array, each after a comma unless `first`;
// each_case(f) calls f(case result) for every case.
template <class EachCase>
void write_case_elements(WireWriter& out, Dialect dialect, bool first, const EachCase& each_case) {
  each_case([&](const CaseResult& result) {
    if (!first) out.raw(",");
    first = false;
    write_case(out, result, dialect);
    out.flush(/*force=*/false);
  });
}

// The payload's cases as a JSON array.
template <class EachCase>
void write_case_array(WireWriter& out, Dialect dialect, const EachCase& each_case) {
  out.raw("[");
  write_case_elements(out, dialect, /*first=*/true, each_case);
  out.raw("]");
}

void write_wire(WireWriter& out, const ResultPayload& payload, Dialect dialect, const TaskIdentity* identity) {
  write_wire(out, payload, dialect, identity, [&] {
    write_case_array(out, dialect, [&](const auto& f) {
      for (const auto& result : payload.cases) f(result);
    });
  });
}

// The payload name of a case into `out` (its memory reused).
void assign_display_name(std::string& out, const TestCase& test_case, const std::string& strip_prefix) {
  std::string_view classname = test_case.classname;
  if (!strip_prefix.empty() && classname.substr(0, strip_prefix.size()) == strip_prefix) {
    classname.remove_prefix(strip_prefix.size());
  }
  out.assign(classname);
  if (!out.empty()) out += "::";
  out += test_case.name;
}

// The payload entry of one case into `result`, reusing its memory.
void fill_case_result(const TestCase& test_case, const RunFacts& facts, const PayloadOptions& options,
                      CaseResult& result) {
  assign_display_name(result.name, test_case, options.strip_prefix);
  result.passed = test_case.status == CaseStatus::passed;
  describe_case(test_case, options.description_limit, result.description);
  result.seconds = test_case.time;
  result.memory_kib = reported_memory(test_case);
  if (!result.memory_kib) result.memory_kib = facts.peak_rss_kib;
}

// Everything of a payload but its cases: the verdict, errorDetails and the duration.
// `summary` is null when the run produced no readable report.
ResultPayload payload_head(const ReportSummary* summary, const RunFacts& facts, const PayloadOptions& options) {
  ResultPayload payload;
  const ReportCounts counts = summary != nullptr ? summary->counts : ReportCounts{};
  std::optional<std::string> failure = facts.failure;
  if (!failure && summary == nullptr) failure = "The service produced no readable report.";
  if (!failure && counts.errored > 0) {
    failure = "The report has " + std::to_string(counts.errored) + " errored test case" +
              (counts.errored == 1 ? "" : "s") + ".";
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
  payload.passed = !payload.error && counts.total > 0 && counts.failed == 0 && counts.errored == 0 &&
                   (options.skips_pass || counts.skipped == 0);
  if (summary != nullptr && summary->time) payload.seconds = *summary->time;
  else if (facts.wall_seconds > 0) payload.seconds = facts.wall_seconds;
  else if (summary != nullptr) payload.seconds = summary->case_seconds;
  return payload;
}

}  // namespace

std::string case_display_name(const TestCase& test_case, const std::string& strip_prefix) {
  std::string name;
  assign_display_name(name, test_case, strip_prefix);
  return name;
}

ResultPayload build_payload(const Report* report, const RunFacts& facts, const PayloadOptions& options) {
  if (report == nullptr) return payload_head(nullptr, facts, options);
  const ReportSummary summary = report->summary();
  ResultPayload payload = payload_head(&summary, facts, options);
  payload.cases.reserve(summary.counts.total);
  report->for_each_case([&](const TestSuite&, const TestCase& test_case) {
    fill_case_result(test_case, facts, options, payload.cases.emplace_back());
  });
  return payload;
}

ResultPayload error_payload(std::string failure, const PayloadOptions& options) {
  RunFacts facts;
  facts.failure = std::move(failure);
  return payload_head(nullptr, facts, options);
}

void write_streamed_payload(std::ostream& out, const ReportSummary& summary, const CaseSource& cases,
                            const RunFacts& facts, const PayloadOptions& options, Dialect dialect,
                            const TaskIdentity* identity) {
  // Cases [first, last) as array elements into `writer`, one reused entry for all.
  const auto write_range = [&](WireWriter& writer, std::size_t first, std::size_t last) {
    write_case_elements(writer, dialect, first == 0, [&](const auto& f) {
      CaseResult scratch;
      cases.read(first, last, [&](const TestCase& test_case) {
        fill_case_result(test_case, facts, options, scratch);
        f(scratch);
      });
    });
  };
  // Cases are formatted in blocks; with two lanes, the helper thread formats the odd
  // blocks while this one formats the even ones, and each block is written in its turn.
  // Each lane reuses one block's buffer, so the memory stays flat.
  constexpr std::size_t kBlock = 1024;
  const std::size_t blocks = (cases.count + kBlock - 1) / kBlock;
  // Two lanes exactly when for_halves below splits [0, 2) over two threads: one lane
  // alone would wait forever for the other's blocks.
  const std::size_t lanes = blocks >= 4 && std::thread::hardware_concurrency() > 1 ? 2 : 1;
  std::mutex mutex;
  std::condition_variable turn_changed;
  std::size_t turn = 0;    // the block to write next
  bool abandoned = false;  // a lane failed: the other stops
  const auto run_lane = [&](std::size_t lane) {
    WireWriter buffer(nullptr);
    for (std::size_t block = lane; block < blocks; block += lanes) {
      buffer.clear();
      write_range(buffer, block * kBlock, std::min(cases.count, (block + 1) * kBlock));
      std::unique_lock lock(mutex);
      turn_changed.wait(lock, [&] { return turn == block || abandoned; });
      if (abandoned) return;
      out.write(buffer.data().data(), static_cast<std::streamsize>(buffer.data().size()));
      ++turn;
      turn_changed.notify_all();
    }
  };
  const auto abandon = [&] {
    const std::lock_guard lock(mutex);
    abandoned = true;
    turn_changed.notify_all();
  };

  WireWriter writer(&out);
  const ResultPayload head = payload_head(&summary, facts, options);
  write_wire(writer, head, dialect, identity, [&] {
    writer.raw("[");
    writer.flush();
    // Lane 0 here, lane 1 (if any) on for_halves' helper; a failing lane stops the other.
    for_halves(lanes, 2, [&](std::size_t lane, std::size_t /*last*/) {
      try {
        run_lane(lane);
      } catch (...) {
        abandon();
        throw;
      }
    });
    writer.raw("]");
  });
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
