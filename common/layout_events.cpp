#include "common/layout_events.hpp"

#include <chrono>
#include <filesystem>
#include <utility>

namespace proctor {

LayoutEventMapper::LayoutEventMapper(std::string layout_dir, std::uint64_t first_seq)
    : dir_(std::move(layout_dir)),
      name_(std::filesystem::path(dir_).lexically_normal().filename().string()),
      task_seq_(first_seq),
      next_seq_(first_seq + 1) {
  if (name_.empty()) name_ = std::filesystem::path(dir_).lexically_normal().parent_path().filename().string();
}

Event LayoutEventMapper::event(const char* kind, const char* type, std::uint64_t seq) const {
  Event e;
  e.event = kind;
  e.type = type;
  e.seq_num = seq;
  if (seq != task_seq_) e.parent_seq_num = task_seq_;
  return e;
}

void LayoutEventMapper::stop_record(const std::string& testname, Record& record, const std::string& status,
                                    std::vector<Event>& out) {
  const auto parsed = parse_record_status(status);
  if (record.stopped || !parsed || !is_final(*parsed)) return;
  record.stopped = true;
  Event e = event("stop_section", "testcase", record.seq);
  e.id = testname;
  e.name = record.title;
  e.stoptime = format_event_time(std::chrono::system_clock::now());
  e.result = section_result_of(*parsed);
  e.logfile = (std::filesystem::path(dir_) / testname / "log.txt").string();
  results_.push_back(*e.result);
  out.push_back(std::move(e));
}

void LayoutEventMapper::flush_pending(const std::string& keep, std::vector<Event>& out) {
  for (auto& [testname, record] : records_) {
    if (record.pending_stop.empty() || testname == keep) continue;
    const std::string status = std::exchange(record.pending_stop, std::string());
    stop_record(testname, record, status, out);
  }
}

std::vector<Event> LayoutEventMapper::events_for(const nlohmann::ordered_json& change) {
  std::vector<Event> out;
  if (ended_ || !change.is_object()) return out;
  const std::string kind = change.value("change", "");
  const std::string testname = change.value("testname", "");
  // A record's first files follow its "record" line; anything else ends them.
  const bool own_file = kind == "log" || kind == "summary" || kind == "output";
  flush_pending(own_file ? testname : std::string(), out);
  if (!started_) {
    started_ = true;
    started_at_ = format_event_time(std::chrono::system_clock::now());
    Event init = event("init_task", "task", task_seq_);
    init.id = dir_;
    init.name = name_;
    out.push_back(init);
    Event start = event("start_task", "task", task_seq_);
    start.id = dir_;
    start.name = name_;
    start.starttime = started_at_;
    start.logfile = (std::filesystem::path(dir_) / "tests.json").string();
    out.push_back(std::move(start));
  }
  if (kind == "record") {
    Record& record = records_[testname];
    record.seq = next_seq_++;
    record.title = change.contains("title") && change["title"].is_string() ? change["title"].get<std::string>() : testname;
    Event e = event("start_section", "testcase", record.seq);
    e.id = testname;
    e.name = record.title;
    e.starttime = format_event_time(std::chrono::system_clock::now());
    e.logfile = (std::filesystem::path(dir_) / testname / "log.txt").string();
    out.push_back(std::move(e));
    record.pending_stop = change.value("status", "");
  } else if (kind == "status") {
    if (const auto it = records_.find(testname); it != records_.end()) {
      stop_record(testname, it->second, change.value("to", ""), out);
    }
  } else if (kind == "log") {
    const auto it = records_.find(testname);
    if (it == records_.end()) return out;
    Event e = event("log", "testcase", it->second.seq);
    e.id = testname;
    e.name = it->second.title;
    e.logfile = (std::filesystem::path(dir_) / testname / "log.txt").string();
    const std::string text = change.value("text", "");
    // "bytes": the piece's size in the file (its text was made valid UTF-8, which can differ).
    e.logs = LogSpan{e.logfile, change.value("offset", std::uint64_t{0}), change.value("bytes", std::uint64_t{text.size()})};
    out.push_back(std::move(e));
  } else if (kind == "suite") {
    if (const auto status = parse_record_status(change.value("status", ""))) suite_result_ = section_result_of(*status);
  } else if (kind == "end") {
    ended_ = true;
    // Records that never ended end with the layout.
    for (auto& [name, record] : records_) stop_record(name, record, "terminated", out);
    if (suite_result_) results_.push_back(*suite_result_);
    Event e = event("stop_task", "task", task_seq_);
    e.id = dir_;
    e.name = name_;
    e.starttime = started_at_;
    e.stoptime = format_event_time(std::chrono::system_clock::now());
    e.result = roll_up(results_);
    out.push_back(std::move(e));
  }
  return out;
}

}  // namespace proctor
