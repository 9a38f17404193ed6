#pragma once
// The event stream's model (SPEC §7, seed pyats-reporter-subscribe.md): pyATS's section
// results and their roll-up, one event as a JSON line and back, and the sink events are
// published to. Pure logic: the server and the client are elsewhere.

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "common/result.hpp"
#include "common/results_layout.hpp"

namespace proctor {

// pyATS's results.
enum class SectionResult { passed, passx, failed, errored, skipped, blocked, aborted };

// "passed", "passx", ...
const char* to_string(SectionResult result);

// The result named `text`, or nullopt.
std::optional<SectionResult> parse_section_result(std::string_view text);

// The one of `a` and `b` that wins the roll-up: aborted > errored > failed > blocked >
// passx > passed > skipped.
SectionResult roll_up(SectionResult a, SectionResult b);

// The roll-up of a section's children: passed when there are none.
SectionResult roll_up(std::span<const SectionResult> children);

// The result a final record status stands for (success -> passed, failure -> failed,
// error -> errored, warning -> passx, timeout/terminated -> aborted); nullopt for
// in_process and registered.
std::optional<SectionResult> section_result_of(RecordStatus status);

// `logs`: the section's part of its log file, in bytes.
struct LogSpan {
  std::string file;
  std::uint64_t begin = 0;
  std::uint64_t size = 0;

  friend bool operator==(const LogSpan&, const LogSpan&) = default;
};

// One event. Only the fields a section has are sent: empty strings and nullopts are left
// out of its JSON (event, type and seq_num are always there).
struct Event {
  std::string event;  // init_task, start_task, stop_task, start_section, stop_section, ...
  std::string type;   // task, phase, testcase, event
  std::uint64_t seq_num = 0;
  std::optional<std::uint64_t> parent_seq_num;
  std::string id;
  std::string name;
  std::string starttime;  // format_event_time
  std::string stoptime;
  std::optional<double> runtime;  // seconds
  std::optional<SectionResult> result;
  std::string logfile;
  std::optional<LogSpan> logs;
  std::string xref;  // where the section is in the script: "path/file.py:12"

  friend bool operator==(const Event&, const Event&) = default;
};

// The event as one line of JSON, with the final '\n'; strings made valid UTF-8.
std::string to_json_line(const Event& event);

// An event from one line (with or without its '\n'); an error naming the field that is
// missing or of the wrong type. Fields it does not know are ignored.
Result<Event> parse_event(std::string_view line);

// A time as events carry it: ISO 8601 in UTC with milliseconds, "2026-11-24T10:00:00.123Z".
std::string format_event_time(std::chrono::system_clock::time_point time);

// Where events go. publish() is safe from any thread and never blocks on a reader.
class EventSink {
 public:
  virtual ~EventSink() = default;
  // Hands `event` to every subscriber (or to none).
  virtual void publish(const Event& event) = 0;
};

}  // namespace proctor
