#pragma once
// TaskRecorder: what one task tells the world while it runs, in the executor's words —
// phases, test cases read from reports, the end — written to the results layout
// (LayoutWriter) and published on the event stream (EventSink). Either may be off.
// Sections nest task -> phase -> testcase; a parent's result is its children's roll-up.
// Thread-safe: the report watcher adds cases while the executor runs the service.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/layout_writer.hpp"
#include "common/events.hpp"
#include "common/report.hpp"
#include "common/task.hpp"

namespace proctor {

// The parts of a task, each a record of the layout and a section of the stream.
enum class Phase { fetch, service };

// "fetch", "service".
const char* to_string(Phase phase);

// Section numbers, unique across every task of one agent.
class SequenceCounter {
 public:
  // The next number (from 1).
  std::uint64_t take() { return next_.fetch_add(1, std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> next_{1};
};

class TaskRecorder {
 public:
  // Records `task`: its layout in `layout_dir` when given (its files written on
  // `layout_io` when given, else at once), its events to `events` when not null —
  // after the files they name. Publishes init_task.
  TaskRecorder(const Task& task, std::optional<std::filesystem::path> layout_dir, EventSink* events,
               SequenceCounter& sequence, SerialWorker* layout_io = nullptr);
  // Ends a task that was not ended (as errored), so that every section is closed.
  ~TaskRecorder();
  TaskRecorder(const TaskRecorder&) = delete;
  TaskRecorder& operator=(const TaskRecorder&) = delete;

  // start_task; `name` is what the task runs (the service).
  void start_task(const std::string& name);

  // A phase's record (in_process) and start_section.
  void start_phase(Phase phase, std::optional<nlohmann::json> test_input = std::nullopt,
                   std::vector<LayoutLink> links = {});
  // Appends a line to the phase's log.txt.
  void phase_log(Phase phase, std::string_view line);
  // The phase's log.txt, for a process to append to (its folder made by then); nullopt
  // when the layout is off.
  [[nodiscard]] std::optional<std::filesystem::path> phase_log_file(Phase phase) const;
  // The phase's summary, output and final status, and stop_section with its result
  // rolled up with its children's.
  void end_phase(Phase phase, RecordStatus status, const std::string& summary,
                 const nlohmann::json& output = nlohmann::json::object());

  // The cases of one report file as records and testcase sections under the service
  // phase; cases already recorded from the same file (by position and name) are not
  // recorded again, but a record whose case changed result (the file was rewritten) is
  // updated, since the last read is the authority. Returns how many were new.
  std::size_t add_cases(const std::filesystem::path& report_file, const Report& report);

  // A record and a testcase section under the service phase for one step the service
  // takes (an orchestration's run), in_process until end_step. Returns the step's handle.
  std::size_t start_step(const std::string& name, std::optional<nlohmann::json> test_input = std::nullopt);
  // Appends a line to the step's log.txt.
  void step_log(std::size_t step, std::string_view line);
  // The step's summary, output and final status, and its stop_section with `result`.
  void end_step(std::size_t step, RecordStatus status, const std::string& summary, const nlohmann::json& output,
                SectionResult result);

  // test_suite.status (with `suite_links`) and stop_task (result: the phases' roll-up,
  // or `status`'s when worse).
  void end_task(RecordStatus status, std::vector<LayoutLink> suite_links = {});

  // Cases recorded so far.
  [[nodiscard]] std::size_t case_count() const;

 private:
  struct Section {
    std::uint64_t seq = 0;
    std::string name;      // the phase's or step's name
    std::string testname;  // its record's, when the layout is on
    std::chrono::system_clock::time_point start;
    std::vector<SectionResult> children;
    std::uint64_t log_bytes = 0;  // what phase_log appended
    bool open = false;
  };
  Event section_event(const char* kind, const char* type, const Section& section, const std::string& id,
                      const std::string& name) const;
  // A stop_section of `section` now, with its times, result and (layout on) log file.
  Event stop_section_event(const char* type, const Section& section, const std::string& id, const std::string& name,
                           SectionResult result) const;
  // Opens `section` now: its sequence number, start time and, layout on, `record`; returns
  // its start_section event of `type` (id and name: the section's name; parent: the task).
  Event open_section(Section& section, const char* type, NewRecord record);
  // Appends `line` (with a newline when it has none) to the section's log.txt.
  void append_section_log(Section& section, std::string_view line);
  void publish(const Event& event) const;
  Section& phase_section(Phase phase);
  // The parent of a test case or step: the service phase once it started, else the task.
  std::uint64_t step_parent();
  void start_task_locked(const std::string& name);

  std::string task_id_;
  std::string task_name_;  // what start_task named (the service); the id until then
  std::shared_ptr<LayoutWriter> layout_;
  EventSink* events_;
  SequenceCounter& sequence_;
  mutable std::mutex mutex_;
  Section task_;
  std::map<Phase, Section> phases_;
  std::vector<Section> steps_;  // by step handle
  struct Recorded {
    std::string testname;  // empty when the layout is off
    CaseStatus status;
  };
  // By file, position and name: what each recorded case became.
  std::map<std::tuple<std::string, std::size_t, std::string>, Recorded> recorded_;
  std::size_t cases_ = 0;
  bool task_ended_ = false;
};

}  // namespace proctor
