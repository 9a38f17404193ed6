#include "agent/task_recorder.hpp"

#include <algorithm>

#include <spdlog/spdlog.h>

#include "common/results_layout.hpp"

namespace proctor {

namespace fs = std::filesystem;

namespace {

double seconds_between(std::chrono::system_clock::time_point from, std::chrono::system_clock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

// A case's pyATS result: a pass that needed reruns is passx.
SectionResult case_result(const TestCase& test_case) {
  switch (test_case.status) {
    case CaseStatus::passed: return test_case.reruns.empty() ? SectionResult::passed : SectionResult::passx;
    case CaseStatus::failed: return SectionResult::failed;
    case CaseStatus::errored: return SectionResult::errored;
    case CaseStatus::skipped: return SectionResult::skipped;
  }
  return SectionResult::errored;
}

}  // namespace

const char* to_string(Phase phase) { return phase == Phase::fetch ? "fetch" : "service"; }

TaskRecorder::TaskRecorder(const Task& task, std::optional<fs::path> layout_dir, EventSink* events,
                           SequenceCounter& sequence, SerialWorker* layout_io)
    : task_id_(task.identity.text()), task_name_(task_id_), events_(events), sequence_(sequence) {
  if (layout_dir) {
    layout_ = LayoutWriter::open(std::move(*layout_dir), std::vector<std::string>{"fetch", "service"}, layout_io);
  }
  task_.seq = sequence_.take();
  Event init;
  init.event = "init_task";
  init.type = "task";
  init.seq_num = task_.seq;
  init.id = task_id_;
  init.name = task_id_;
  publish(init);
}

TaskRecorder::~TaskRecorder() {
  bool ended = false;
  {
    std::lock_guard lock(mutex_);
    ended = task_ended_;
  }
  if (!ended) end_task(RecordStatus::error);
}

Event TaskRecorder::stop_section_event(const char* type, const Section& section, const std::string& id,
                                       const std::string& name, SectionResult result) const {
  Event event = section_event("stop_section", type, section, id, name);
  const auto now = std::chrono::system_clock::now();
  event.starttime = format_event_time(section.start);
  event.stoptime = format_event_time(now);
  event.runtime = seconds_between(section.start, now);
  event.result = result;
  if (layout_) event.logfile = layout_->log_path(section.testname).string();
  return event;
}

Event TaskRecorder::open_section(Section& section, const char* type, NewRecord record) {
  section.seq = sequence_.take();
  section.start = std::chrono::system_clock::now();
  section.open = true;
  if (layout_) section.testname = layout_->add_record(std::move(record));
  Event event = section_event("start_section", type, section, section.name, section.name);
  event.starttime = format_event_time(section.start);
  if (layout_) event.logfile = layout_->log_path(section.testname).string();
  return event;
}

void TaskRecorder::append_section_log(Section& section, std::string_view line) {
  if (!layout_) return;
  std::string text(line);
  if (text.empty() || text.back() != '\n') text.push_back('\n');
  section.log_bytes += text.size();
  layout_->append_log(section.testname.empty() ? section.name : section.testname, text);
}

void TaskRecorder::publish(const Event& event) const {
  if (events_ == nullptr) return;
  // After the writes asked for so far: an event never names a file that is not there yet.
  if (layout_) layout_->then([events = events_, event] { events->publish(event); });
  else events_->publish(event);
}

Event TaskRecorder::section_event(const char* kind, const char* type, const Section& section, const std::string& id,
                                  const std::string& name) const {
  Event event;
  event.event = kind;
  event.type = type;
  event.seq_num = section.seq;
  if (section.seq != task_.seq) event.parent_seq_num = task_.seq;
  event.id = id;
  event.name = name;
  return event;
}

void TaskRecorder::start_task(const std::string& name) {
  std::lock_guard lock(mutex_);
  start_task_locked(name);
}

void TaskRecorder::start_task_locked(const std::string& name) {
  if (task_.open) return;
  task_name_ = name;
  task_.start = std::chrono::system_clock::now();
  task_.open = true;
  Event event = section_event("start_task", "task", task_, task_id_, task_name_);
  event.starttime = format_event_time(task_.start);
  if (layout_) event.logfile = (layout_->dir() / "tests.json").string();
  publish(event);
}

std::uint64_t TaskRecorder::step_parent() {
  const Section& service = phase_section(Phase::service);
  return service.seq != 0 ? service.seq : task_.seq;
}

TaskRecorder::Section& TaskRecorder::phase_section(Phase phase) {
  Section& section = phases_[phase];
  if (section.name.empty()) section.name = to_string(phase);
  return section;
}

void TaskRecorder::start_phase(Phase phase, std::optional<nlohmann::json> test_input, std::vector<LayoutLink> links) {
  std::lock_guard lock(mutex_);
  Section& section = phase_section(phase);
  section = Section{};
  section.name = to_string(phase);
  NewRecord record;
  record.name = section.name;
  record.phase = true;
  record.status = RecordStatus::in_process;
  record.test_input = std::move(test_input);
  record.links = std::move(links);
  record.summary = section.name + ": running\n";
  publish(open_section(section, "phase", std::move(record)));
}

void TaskRecorder::phase_log(Phase phase, std::string_view line) {
  std::lock_guard lock(mutex_);
  append_section_log(phase_section(phase), line);
}

std::optional<fs::path> TaskRecorder::phase_log_file(Phase phase) const {
  std::lock_guard lock(mutex_);
  if (!layout_) return std::nullopt;
  const auto it = phases_.find(phase);
  if (it == phases_.end() || it->second.testname.empty()) return std::nullopt;
  // Made now: waiting for the worker would hold the service back behind the layouts
  // still being written (the last task's cases, most often).
  return layout_->open_log(it->second.testname);
}

void TaskRecorder::end_phase(Phase phase, RecordStatus status, const std::string& summary,
                             const nlohmann::json& output) {
  std::lock_guard lock(mutex_);
  Section& section = phase_section(phase);
  if (!section.open) return;
  section.open = false;
  if (layout_) layout_->finish_record(section.testname, status, summary, output);
  std::vector<SectionResult> results = section.children;
  results.push_back(section_result_of(status).value_or(SectionResult::errored));
  const SectionResult result = roll_up(results);
  task_.children.push_back(result);

  Event event = stop_section_event("phase", section, to_string(phase), to_string(phase), result);
  if (layout_) {
    // The service's log is written by its process (done by now); the others only by us.
    const std::uint64_t size =
        phase == Phase::service ? std::max(layout_->log_size(section.testname), section.log_bytes) : section.log_bytes;
    event.logs = LogSpan{event.logfile, 0, size};
  }
  publish(event);
}

std::size_t TaskRecorder::add_cases(const fs::path& report_file, const Report& report) {
  std::lock_guard lock(mutex_);
  // One file reached by two spellings ("out/./a.xml", the watcher's and the glob's) is one file.
  const std::string file = report_file.lexically_normal().string();
  std::vector<NewRecord> records;
  std::vector<const TestCase*> cases;
  std::vector<Recorded*> keys;  // where each new case's testname goes
  std::vector<std::uint64_t> log_sizes;  // each new case's log.txt
  std::size_t position = 0;
  report.for_each_case([&](const TestSuite& suite, const TestCase& test_case) {
    const std::size_t at = position++;
    const auto [seen, added] = recorded_.try_emplace({file, at, test_case.classname + "\n" + test_case.name},
                                                     Recorded{std::string(), test_case.status});
    if (!added) {
      if (seen->second.status != test_case.status && layout_ && !seen->second.testname.empty()) {
        CaseRecordContent content = case_record(suite, test_case);
        layout_->finish_record(seen->second.testname, content.status, content.summary, content.output);
        seen->second.status = test_case.status;
      }
      return;
    }
    cases.push_back(&test_case);
    keys.push_back(&seen->second);
    if (!layout_) return;
    CaseRecordContent content = case_record(suite, test_case);
    NewRecord record;
    record.title = content.name;
    record.name = std::move(content.name);
    record.status = content.status;
    record.test_input = std::move(content.test_input);
    record.links = {{"file://" + file, "report"}};
    record.summary = std::move(content.summary);
    record.output = std::move(content.output);
    record.log = std::move(content.log);
    log_sizes.push_back(record.log.size());
    records.push_back(std::move(record));
  });
  if (cases.empty()) return 0;
  std::vector<std::string> testnames;
  if (layout_) {
    testnames = layout_->add_records(std::move(records));
    for (std::size_t i = 0; i < keys.size(); ++i) keys[i]->testname = testnames[i];
  }

  Section& service = phase_section(Phase::service);
  const std::uint64_t parent = step_parent();
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const TestCase& test_case = *cases[i];
    const std::string full_name = test_case.classname.empty() ? test_case.name : test_case.classname + "." + test_case.name;
    Section section;
    section.seq = sequence_.take();
    Event event;
    event.event = "start_section";
    event.type = "testcase";
    event.seq_num = section.seq;
    event.parent_seq_num = parent;
    event.id = layout_ ? testnames[i] : full_name;
    event.name = full_name;
    if (!test_case.file.empty()) {
      event.xref = test_case.file + (test_case.line ? ":" + std::to_string(*test_case.line) : std::string());
    }
    if (layout_) event.logfile = layout_->log_path(testnames[i]).string();
    publish(event);
    event.event = "stop_section";
    event.runtime = test_case.time;
    event.result = case_result(test_case);
    if (layout_) event.logs = LogSpan{event.logfile, 0, log_sizes[i]};
    publish(event);
    service.children.push_back(*event.result);
  }
  cases_ += cases.size();
  return cases.size();
}

std::size_t TaskRecorder::start_step(const std::string& name, std::optional<nlohmann::json> test_input) {
  std::lock_guard lock(mutex_);
  Section section;
  section.name = name;
  NewRecord record;
  record.name = name;
  record.title = name;
  record.status = RecordStatus::in_process;
  record.test_input = std::move(test_input);
  record.summary = name + ": running\n";
  Event event = open_section(section, "testcase", std::move(record));
  if (layout_) event.id = section.testname;  // unique, where two steps may share a name
  event.parent_seq_num = step_parent();
  publish(event);
  steps_.push_back(std::move(section));
  return steps_.size() - 1;
}

void TaskRecorder::step_log(std::size_t step, std::string_view line) {
  std::lock_guard lock(mutex_);
  if (step < steps_.size()) append_section_log(steps_[step], line);
}

void TaskRecorder::end_step(std::size_t step, RecordStatus status, const std::string& summary,
                            const nlohmann::json& output, SectionResult result) {
  std::lock_guard lock(mutex_);
  if (step >= steps_.size() || !steps_[step].open) return;
  Section& section = steps_[step];
  section.open = false;
  if (layout_) layout_->finish_record(section.testname, status, summary, output);
  phase_section(Phase::service).children.push_back(result);
  Event event =
      stop_section_event("testcase", section, layout_ ? section.testname : section.name, section.name, result);
  event.parent_seq_num = step_parent();
  if (layout_) {
    event.logs = LogSpan{event.logfile, 0, section.log_bytes};
  }
  publish(event);
}

void TaskRecorder::end_task(RecordStatus status, std::vector<LayoutLink> suite_links) {
  std::unique_lock lock(mutex_);
  if (task_ended_) return;
  // A phase left open (the task stopped half-way) ends with the task.
  std::vector<Phase> open;
  for (const auto& [phase, section] : phases_) {
    if (section.open) open.push_back(phase);
  }
  lock.unlock();
  for (const Phase phase : open) {
    end_phase(phase, is_final(status) ? status : RecordStatus::error,
              std::string(to_string(phase)) + ": ended with the task\n");
  }
  lock.lock();
  task_ended_ = true;
  start_task_locked(task_name_);  // a task stopped before it started still opens and closes
  if (layout_) layout_->finish(status, std::move(suite_links));
  std::vector<SectionResult> results = task_.children;
  results.push_back(section_result_of(status).value_or(SectionResult::errored));
  Event event = section_event("stop_task", "task", task_, task_id_, task_name_);
  const auto now = std::chrono::system_clock::now();
  event.starttime = format_event_time(task_.start);
  event.runtime = seconds_between(task_.start, now);
  event.stoptime = format_event_time(now);
  event.result = roll_up(results);
  if (layout_) event.logfile = (layout_->dir() / "tests.json").string();
  publish(event);
}

std::size_t TaskRecorder::case_count() const {
  std::lock_guard lock(mutex_);
  return cases_;
}

}  // namespace proctor
