#pragma once
// An orchestration description (seed pytest-orchestration.md, SPEC §8): a long test made
// of events, each a service run at startup, every interval and/or at teardown. Reading
// takes the seed's JSON unchanged and reports every problem, each with the JSON path it
// is at; nothing here throws.

#include <chrono>
#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"

namespace proctor {

// The largest description file read (a description is a page of JSON).
constexpr std::size_t kMaxDescriptionBytes = 1024 * 1024;

// The longest total_hours (or --runtime) accepted: a year. Longer is a typo.
constexpr double kMaxTotalHours = 24.0 * 366;

// One event: a service run on a schedule.
struct OrchestrationEvent {
  std::string name;  // the service's name (SPEC §5.1)
  // interval_sec + 60 x interval_min + 3600 x interval_hour; none: only at startup and/or teardown.
  std::optional<std::chrono::milliseconds> interval;
  bool at_startup = true;
  bool at_teardown = false;
  // The service's input properties: strings as written, other values as their JSON text.
  std::map<std::string, std::string> params;
};

struct OrchestrationDescription {
  std::string test_name;
  double total_hours = 0;
  std::vector<std::string>
      setup_services;  // unref_setup_fixtures: run once, in order, before the events
  std::vector<OrchestrationEvent> events;

  // total_hours as a duration (rounded to the millisecond).
  [[nodiscard]] std::chrono::milliseconds total() const;
  // A label per event, unique in this description: its name, or "name[2]" for the second
  // event of that name (an event may be listed twice with other params).
  [[nodiscard]] std::vector<std::string> event_labels() const;
};

// The description as read, with every problem found (errors) and every doubt (warnings).
struct DescriptionCheck {
  OrchestrationDescription description;
  std::vector<std::string> errors;    // "events[1].interval_sec: must be a number above 0"
  std::vector<std::string> warnings;  // unknown keys, events that cannot run before the end

  [[nodiscard]] bool valid() const { return errors.empty(); }
};

// Reads and checks a description from JSON text. `file_stem` is its file's name without
// the extension, which test_name must equal (seed rule); empty skips that check.
DescriptionCheck check_orchestration(std::string_view json_text, std::string_view file_stem);

// The description when it is valid; else every error, in one message.
Result<OrchestrationDescription> parse_orchestration(std::string_view json_text,
                                                     std::string_view file_stem);

}  // namespace proctor
