#pragma once
// What `runner listen` publishes on the event stream (SPEC §3, §7): the layout it follows
// is a task section named after its folder, each record a testcase section under it
// (start_section when it appears, stop_section with its result when its status turns
// final — for a record final from the start, after the log lines read with it), a log
// delta a "log" event with its byte span, and the end stop_task with the roll-up of the
// records and test_suite.status; records still open at the end stop as aborted.
// Pure: changes in, events out.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/events.hpp"

namespace proctor {

class LayoutEventMapper {
 public:
  // Events for the layout in `layout_dir`; section numbers start at `first_seq`.
  explicit LayoutEventMapper(std::string layout_dir, std::uint64_t first_seq = 1);

  // The events `change` (a line of `runner listen`) stands for; init_task and start_task
  // come before the first change's own.
  std::vector<Event> events_for(const nlohmann::ordered_json& change);

 private:
  struct Record {
    std::uint64_t seq = 0;
    std::string title;
    bool stopped = false;
    std::string pending_stop;  // a final status to stop with once its first files are read
  };
  Event event(const char* kind, const char* type, std::uint64_t seq) const;
  void stop_record(const std::string& testname, Record& record, const std::string& status, std::vector<Event>& out);
  // Stops the records waiting to, except `keep` while its own first files still come.
  void flush_pending(const std::string& keep, std::vector<Event>& out);

  std::string dir_;
  std::string name_;
  std::uint64_t task_seq_;
  std::uint64_t next_seq_;
  bool started_ = false;
  bool ended_ = false;
  std::string started_at_;
  std::map<std::string, Record> records_;
  std::vector<SectionResult> results_;
  std::optional<SectionResult> suite_result_;
};

}  // namespace proctor
