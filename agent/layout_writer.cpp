#include "agent/layout_writer.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <spdlog/spdlog.h>

#include "agent/workspace.hpp"

namespace proctor {

namespace fs = std::filesystem;

namespace {

// Writes `bytes` to `path` opened with `flags` (created when missing, never through a
// link); a sentence when that fails.
std::optional<std::string> write_to_file(const fs::path& path, std::string_view bytes, int flags) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC | flags, 0644);
  if (fd < 0) return "cannot open " + path.string() + ": " + std::strerror(errno);
  std::optional<std::string> problem;
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      problem = "cannot write " + path.string() + ": " + std::strerror(errno);
      break;
    }
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  ::close(fd);
  return problem;
}

// Makes `folder` unless it is there; a sentence when that fails.
std::optional<std::string> make_folder(const fs::path& folder) {
  if (::mkdir(folder.c_str(), 0755) == 0 || errno == EEXIST) return std::nullopt;
  const int error = errno;  // before any allocation below
  return "cannot create " + folder.string() + ": " + std::strerror(error);
}

}  // namespace

LayoutWriter::LayoutWriter(fs::path task_dir, SerialWorker* io) : dir_(std::move(task_dir)), io_(io) {}

std::shared_ptr<LayoutWriter> LayoutWriter::open(fs::path task_dir, const std::vector<std::string>& reserved,
                                                 SerialWorker* io) {
  // A folder that is there may be an earlier run's, whose writes can still be queued:
  // they go first, or they would land in this run's folder after it was emptied.
  std::error_code exists_ec;
  if (io != nullptr && fs::exists(task_dir, exists_ec)) io->drain();
  std::shared_ptr<LayoutWriter> writer(new LayoutWriter(std::move(task_dir), io));
  std::lock_guard lock(writer->mutex_);
  for (const auto& name : reserved) writer->reserved_.push_back(writer->names_.fresh_testname(name));
  // Here, not on the worker: once open() returns the folder is there and stays, so
  // open_log() can make a record's log without waiting for the writes queued before it
  // (other tasks' layouts among them). Emptied, not replaced: a listener already
  // following the folder keeps following it.
  std::error_code ec;
  for (auto it = fs::directory_iterator(writer->dir_, ec); !ec && it != fs::directory_iterator(); it.increment(ec)) {
    std::error_code remove_ec;
    fs::remove_all(it->path(), remove_ec);
    if (remove_ec) writer->warn_once("cannot empty " + writer->dir_.string() + ": " + remove_ec.message());
  }
  ec.clear();
  fs::create_directories(writer->dir_, ec);
  if (ec) writer->warn_once("cannot create " + writer->dir_.string() + ": " + ec.message());
  writer->submit_tests_json();
  return writer;
}

void LayoutWriter::submit(std::function<void()> job) {
  if (io_ == nullptr) {
    job();
    return;
  }
  ++pending_;
  // The job holds the writer: it lives until its last write is done.
  io_->post([self = shared_from_this(), job = std::move(job)] {
    job();
    std::lock_guard lock(self->mutex_);
    if (--self->pending_ == 0) self->flushed_.notify_all();
  });
}

void LayoutWriter::submit_tests_json() {
  if (io_ == nullptr) {
    write_json_atomically(dir_ / "tests.json", to_tests_json(tests_));
    return;
  }
  // On the worker, the text is made from a copy of the layout as it is now (copying is
  // cheap, formatting is not), and only by the last tests.json job queued: a job that
  // is not the last is skipped, unless an event was queued after it (then() sets the
  // barrier), since that event may name a record only this tests.json lists, or it lists
  // a new record that is not final yet (add_records() sets it). So a burst of changes
  // costs the caller a copy and the worker one write.
  const std::uint64_t generation = ++tests_json_generation_;
  submit([this, generation, snapshot = tests_] {
    {
      std::lock_guard lock(mutex_);
      if (generation != tests_json_generation_ && tests_json_barrier_ < generation) return;
    }
    write_json_atomically(dir_ / "tests.json", to_tests_json(snapshot));
  });
}

void LayoutWriter::then(std::function<void()> job) {
  std::lock_guard lock(mutex_);
  tests_json_barrier_ = tests_json_generation_;  // the tests.json queued so far is written before `job`
  submit(std::move(job));
}

void LayoutWriter::flush() {
  std::unique_lock lock(mutex_);
  flushed_.wait(lock, [this] { return pending_ == 0; });
}

void LayoutWriter::warn_once(const std::string& what) {
  if (warned_.exchange(true)) return;
  spdlog::warn("results layout {}: {} (further layout problems of this task are not logged)", dir_.string(), what);
}

void LayoutWriter::write_json_atomically(const fs::path& path, const std::string& text) {
  if (auto written = write_file_atomically(path, text, Durability::volatile_ok); !written) {
    warn_once(written.error().message);
  }
}

void LayoutWriter::write_files(const std::string& testname, const NewRecord& record) {
  const fs::path folder = dir_ / testname;
  if (auto problem = make_folder(folder)) {
    warn_once(*problem);
    return;
  }
  // A new record's files are written in place: no reader looks for them before
  // tests.json lists the record, which happens after. Later changes replace them atomically.
  const std::string output = record.output.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  for (const auto& [name, text] : {std::pair{"output.json", std::string_view(output)},
                                   std::pair{"summary.txt", std::string_view(record.summary)}}) {
    if (auto problem = write_to_file(folder / name, text, O_TRUNC)) warn_once(*problem);
  }
  // log.txt is created (and only ever appended to), even when there is nothing to say yet.
  if (auto problem = write_to_file(folder / "log.txt", record.log, O_APPEND)) warn_once(*problem);
}

std::vector<std::string> LayoutWriter::add_records(std::vector<NewRecord> records) {
  // Records come in bulk (a report's cases): when the disk falls behind, the caller (of
  // add_record too) waits here rather than the queue growing without end; what it queues
  // after (events, logs) does not wait, so the bound is kMaxQueuedJobs plus one report.
  // Never with mutex_ held: the worker's jobs take it.
  if (io_ != nullptr) io_->wait_for_room(kMaxQueuedJobs);
  std::vector<std::string> testnames;
  testnames.reserve(records.size());
  std::lock_guard lock(mutex_);
  std::vector<std::pair<std::string, NewRecord>> to_write;
  to_write.reserve(records.size());
  bool transient = false;  // a record not final yet (a phase running)
  for (auto& record : records) {
    transient = transient || !is_final(record.status);
    const auto reserved = std::find(reserved_.begin(), reserved_.end(), record.name);
    std::string testname;
    if (record.phase && reserved != reserved_.end()) {
      testname = *reserved;  // taken from the start
    } else {
      testname = names_.fresh_testname(record.name);
    }
    LayoutRecord entry;
    entry.testname = testname;
    entry.title = record.title;
    entry.status = record.status;
    entry.test_input = record.test_input;
    entry.links = record.links;
    tests_.records.push_back(std::move(entry));
    appended_[testname] = record.log.size();
    testnames.push_back(testname);
    to_write.emplace_back(testname, std::move(record));
  }
  if (to_write.empty()) return testnames;
  submit([this, to_write = std::move(to_write)] {
    for (const auto& [testname, record] : to_write) write_files(testname, record);
  });
  submit_tests_json();  // after the files: a record's files are there before it is listed
  // A state that a later change replaces (in_process) is written even when that change
  // is queued before the worker gets here: a reader gets to see every phase running.
  if (transient) tests_json_barrier_ = tests_json_generation_;
  return testnames;
}

std::string LayoutWriter::add_record(NewRecord record) {
  std::vector<NewRecord> one;
  one.push_back(std::move(record));
  return add_records(std::move(one)).front();
}

fs::path LayoutWriter::log_path(const std::string& testname) const { return dir_ / testname / "log.txt"; }

fs::path LayoutWriter::open_log(const std::string& testname) {
  const fs::path path = log_path(testname);
  // The record's own job makes the same folder and appends to the same file later:
  // both are fine with what is already there.
  if (auto folder_problem = make_folder(dir_ / testname)) {
    warn_once(*folder_problem);
  } else if (auto file_problem = write_to_file(path, {}, O_APPEND)) {
    warn_once(*file_problem);
  }
  return path;
}

std::uint64_t LayoutWriter::log_size(const std::string& testname) const {
  std::error_code ec;
  const auto size = fs::file_size(log_path(testname), ec);
  return ec ? 0 : size;
}

std::uint64_t LayoutWriter::append_log(const std::string& testname, std::string_view bytes) {
  std::lock_guard lock(mutex_);
  std::uint64_t& appended = appended_[testname];
  const std::uint64_t offset = appended;
  appended += bytes.size();
  submit([this, path = log_path(testname), text = std::string(bytes)] {
    if (auto problem = write_to_file(path, text, O_APPEND)) warn_once(*problem);
  });
  return offset;
}

void LayoutWriter::finish_record(const std::string& testname, RecordStatus status, std::string_view summary,
                                 const nlohmann::json& output) {
  std::lock_guard lock(mutex_);
  submit([this, folder = dir_ / testname, summary = std::string(summary),
          output = output.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n"] {
    write_json_atomically(folder / "output.json", output);
    write_json_atomically(folder / "summary.txt", summary);
  });
  for (auto& record : tests_.records) {
    if (record.testname == testname) record.status = status;
  }
  submit_tests_json();
}

void LayoutWriter::finish(RecordStatus suite_status, std::vector<LayoutLink> suite_links) {
  std::lock_guard lock(mutex_);
  tests_.suite_status = suite_status;
  tests_.suite_links = std::move(suite_links);
  submit_tests_json();
}

}  // namespace proctor
