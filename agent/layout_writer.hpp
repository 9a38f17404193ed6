#pragma once
// LayoutWriter: one task's results layout on disk (seed opereto-test-listener.md, SPEC
// §6), written as the task goes. tests.json and every output.json/summary.txt are
// replaced atomically; log.txt is only appended to; a record's files are complete
// before tests.json shows it with a final status; test_suite.status is written last.
// Thread-safe: the executor and the report watcher add records at the same time.
// Writing is best effort: a failure is logged once and never fails the task.

#include <cstdint>
#include <filesystem>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

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

class LayoutWriter {
 public:
  // The layout of one task in `task_dir`, which is created or emptied (a previous run
  // of the same task is replaced; the folder itself stays), with an empty tests.json. `reserved` testnames (the
  // phases') are kept for records marked `phase`, so a test cannot take them; every
  // other record gets a testname of its own, even when names repeat.
  LayoutWriter(std::filesystem::path task_dir, const std::vector<std::string>& reserved);

  // Adds records (files first, then one tests.json write); returns their testnames.
  std::vector<std::string> add_records(std::vector<NewRecord> records);
  // Adds one record; returns its testname.
  std::string add_record(NewRecord record);

  // Appends to a record's log.txt; returns the offset the bytes were written at.
  std::uint64_t append_log(const std::string& testname, std::string_view bytes);
  // A record's log.txt (a process may append to it directly).
  [[nodiscard]] std::filesystem::path log_path(const std::string& testname) const;
  // The size of a record's log.txt now.
  [[nodiscard]] std::uint64_t log_size(const std::string& testname) const;

  // Replaces a record's summary.txt and output.json, then sets its status in tests.json.
  void finish_record(const std::string& testname, RecordStatus status, std::string_view summary,
                     const nlohmann::json& output);
  // Sets test_suite.status (and links): the layout's last write.
  void finish(RecordStatus suite_status, std::vector<LayoutLink> suite_links = {});

  // The task's folder.
  [[nodiscard]] const std::filesystem::path& dir() const { return dir_; }

 private:
  void write_files(const std::string& testname, const NewRecord& record);
  void write_json_atomically(const std::filesystem::path& path, const std::string& text);
  void write_tests_json();
  void warn_once(const std::string& what);

  std::filesystem::path dir_;
  mutable std::mutex mutex_;
  TestnameMap names_;
  std::vector<std::string> reserved_;
  TestsJson tests_;
  bool warned_ = false;
};

}  // namespace proctor
