#pragma once
// LayoutWriter: one task's results layout on disk (seed opereto-test-listener.md, SPEC
// §6), written as the task goes. tests.json and every output.json/summary.txt are
// replaced atomically; log.txt is only appended to; a record's files are complete
// before tests.json shows it with a final status; test_suite.status is written last.
// Thread-safe: the executor and the report watcher add records at the same time.
// The file work can go to a SerialWorker (in order, without the caller waiting for the
// disk: creating a folder and three files a record is most of the layout's cost, and on
// some filesystems it varies tenfold); what the layout says is decided at once, in the
// caller's order. Only opening the task's folder and a log a process writes to are done
// at once. Writing is best effort: a
// failure is logged once and never fails the task.

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/serial_worker.hpp"
#include "common/results_layout.hpp"

namespace proctor {

// A record to add: its test name (mapped to a testname), what tests.json says of it and
// its files' first content.
struct NewRecord {
  std::string name;                     // any text; mapped uniquely into the testname rule
  bool phase = false;                   // a phase: its name is one of the reserved testnames
  std::optional<std::string> title;     // shown instead of the testname
  RecordStatus status = RecordStatus::in_process;
  std::optional<nlohmann::json> test_input;
  std::vector<LayoutLink> links;
  std::string summary;                  // summary.txt
  nlohmann::json output = nlohmann::json::object();  // output.json
  std::string log;                      // log.txt's first bytes
};

class LayoutWriter : public std::enable_shared_from_this<LayoutWriter> {
 public:
  // The layout of one task in `task_dir`, created or emptied at once (a previous run of
  // the same task is replaced, after its queued writes; the folder itself stays), with an
  // empty tests.json. `reserved` testnames (the phases') are kept for records marked
  // `phase`, so a test cannot take them; every other record gets a testname of its own,
  // even when names repeat. Later file work runs on `io` when given (the writer lives
  // until it is done), else at once.
  static std::shared_ptr<LayoutWriter> open(std::filesystem::path task_dir, const std::vector<std::string>& reserved,
                                            SerialWorker* io = nullptr);

  // Adds records (files first, then one tests.json write, never skipped when a record is
  // not final yet); returns their testnames.
  std::vector<std::string> add_records(std::vector<NewRecord> records);
  // Adds one record; returns its testname.
  std::string add_record(NewRecord record);

  // Appends to a record's log.txt; returns the offset the bytes go to (counting only
  // what this writer appended).
  std::uint64_t append_log(const std::string& testname, std::string_view bytes);
  // A record's log.txt (a process may append to it once open_log() has made it).
  [[nodiscard]] std::filesystem::path log_path(const std::string& testname) const;
  // Makes a record's folder and log.txt now, without waiting for the writes queued so
  // far, and returns the log's path: a process can append to it at once.
  std::filesystem::path open_log(const std::string& testname);
  // The size of a record's log.txt on disk now (after flush() for what this writer wrote).
  [[nodiscard]] std::uint64_t log_size(const std::string& testname) const;

  // Replaces a record's summary.txt and output.json, then sets its status in tests.json.
  void finish_record(const std::string& testname, RecordStatus status, std::string_view summary,
                     const nlohmann::json& output);
  // Sets test_suite.status (and links): the layout's last write.
  void finish(RecordStatus suite_status, std::vector<LayoutLink> suite_links = {});

  // Runs `job` once every write asked for so far is done (an event naming these files).
  void then(std::function<void()> job);
  // Waits until every write asked for so far is done.
  void flush();

  // The task's folder.
  [[nodiscard]] const std::filesystem::path& dir() const { return dir_; }

  // Jobs the worker may have queued (every task's) before add_records() waits for it
  // to catch up: what the layout lags behind the task, and the memory that lag takes.
  static constexpr std::size_t kMaxQueuedJobs = 20000;

 private:
  LayoutWriter(std::filesystem::path task_dir, SerialWorker* io);
  // Runs `job` on io_ in order, or at once without one. Called with mutex_ held.
  void submit(std::function<void()> job);
  // Queues tests.json as the layout says now. Called with mutex_ held.
  void submit_tests_json();
  void write_files(const std::string& testname, const NewRecord& record);
  void write_json_atomically(const std::filesystem::path& path, const std::string& text);
  void warn_once(const std::string& what);

  const std::filesystem::path dir_;
  SerialWorker* io_;
  mutable std::mutex mutex_;
  std::condition_variable flushed_;
  std::size_t pending_ = 0;  // jobs submitted to io_ and not yet done
  TestnameMap names_;
  std::vector<std::string> reserved_;
  TestsJson tests_;
  std::uint64_t tests_json_generation_ = 0;  // tests.json jobs queued; only the last one writes
  std::uint64_t tests_json_barrier_ = 0;     // ... and every one an event was queued after or
                                             // that lists a record not final yet
  std::map<std::string, std::uint64_t> appended_;  // bytes this writer put in each log.txt
  std::atomic<bool> warned_{false};
};

}  // namespace proctor
