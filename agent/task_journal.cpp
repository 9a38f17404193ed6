#include "agent/task_journal.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>

#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "agent/workspace.hpp"
#include "common/file_io.hpp"
#include "common/json_bounded.hpp"

namespace proctor {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string utc_now() {
  const std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm parts{};
  gmtime_r(&now, &parts);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &parts);
  return text;
}

std::optional<HeldTask> read_held(const fs::path& file, int slot) {
  auto text = read_whole_file(file, "the held-task record");
  if (!text) {
    spdlog::error("{}", text.error().message);
    return std::nullopt;
  }
  const json document = parse_json_bounded(*text);
  const json* record = &document;
  if (!record->is_object() || !record->contains("identity") || !record->contains("dialect") ||
      !(*record)["dialect"].is_string()) {
    spdlog::error("the held-task record {} is unreadable; the task it held cannot be reported",
                  file.string());
    return std::nullopt;
  }
  HeldTask held;
  held.slot = slot;
  held.identity.dialect = (*record)["dialect"] == "nested" ? Dialect::nested : Dialect::flat;
  held.identity.value = (*record)["identity"];
  if (auto it = record->find("cookie"); it != record->end() && it->is_string()) held.cookie = *it;
  if (auto it = record->find("taken_at"); it != record->end() && it->is_string())
    held.taken_at = *it;
  return held;
}

}  // namespace

std::optional<TaskIdentity> payload_identity(std::string_view payload) {
  const json document = parse_json_bounded(payload);
  if (!document.is_object()) return std::nullopt;
  if (auto it = document.find("id"); it != document.end()) return TaskIdentity{Dialect::flat, *it};
  if (auto it = document.find("attempt"); it != document.end()) return TaskIdentity{Dialect::nested, *it};
  return std::nullopt;
}

TaskJournal::TaskJournal(fs::path dir, std::size_t remember)
    : dir_(std::move(dir)), remember_(remember) {}

TaskJournal::~TaskJournal() = default;

Result<void> TaskJournal::lock(std::chrono::milliseconds patience) {
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec)
    return make_error("cannot create the journal folder " + dir_.string() + ": " + ec.message());
  auto locked = lock_file(dir_ / "lock", patience);
  if (!locked) return locked.error();
  if (!locked->has_value()) {
    return make_error("another runner is using the work folder " + dir_.parent_path().string() +
                      "; give each agent a --work-dir of its own");
  }
  lock_ = std::move(**locked);
  return {};
}

fs::path TaskJournal::held_file(int slot) const {
  return dir_ / "held" / (std::to_string(slot) + ".json");
}

std::vector<HeldTask> TaskJournal::open() {
  std::vector<HeldTask> held;
  std::vector<std::string> newly_taken;  // held, yet not in taken.log: appended below
  const std::lock_guard log_lock(log_mutex_);
  {
    const std::lock_guard lock(mutex_);
    std::ifstream log(dir_ / "taken.log");
    for (std::string line; std::getline(log, line);) {
      ++log_lines_;
      if (!line.empty()) remember(line);
    }
    std::error_code ec;
    for (auto it = fs::directory_iterator(dir_ / "held", ec); !ec && it != fs::directory_iterator();
         it.increment(ec)) {
      const auto name = it->path().filename().string();
      if (it->path().extension() != ".json") continue;
      int slot = 0;
      if (std::sscanf(name.c_str(), "%d.json", &slot) != 1) continue;
      if (auto record = read_held(it->path(), slot)) {
        // Reported at start-up, so never run again, even after more restarts.
        const auto key = identity_key(record->identity);
        if (!taken_.contains(key)) {
          remember(key);
          newly_taken.push_back(key);
        }
        held.push_back(std::move(*record));
      }
    }
  }
  for (const auto& key : newly_taken) {
    if (auto appended = append_taken(key); !appended) spdlog::warn("{}", appended.error().message);
  }
  return held;
}

bool TaskJournal::taken(const std::string& key) const {
  const std::lock_guard lock(mutex_);
  return taken_.contains(key);
}

bool TaskJournal::claim(const std::string& key) {
  const std::lock_guard lock(mutex_);
  if (taken_.contains(key)) return false;
  remember(key);
  return true;
}

void TaskJournal::remember(const std::string& key) {
  if (!taken_.insert(key).second) return;
  order_.push_back(key);
  while (order_.size() > remember_) {
    taken_.erase(order_.front());
    order_.pop_front();
  }
}

Result<void> TaskJournal::hold(int slot, const TaskIdentity& identity, const std::string& cookie) {
  const auto key = identity_key(identity);
  {
    const std::lock_guard lock(mutex_);
    remember(key);
  }
  // The writes and their syncs hold no lock claim() needs: the event loop never waits on a
  // disk. The held record is the slot's own file; taken.log appends are serialised below.
  std::error_code ec;
  fs::create_directories(dir_ / "held", ec);
  if (ec)
    return make_error("cannot create the journal folder " + (dir_ / "held").string() + ": " +
                      ec.message());
  // The held record first: killed between the two writes, the next start reports the task
  // (and then knows it as taken); the other order would remember it taken and never report it.
  const json record{{"dialect", identity.dialect == Dialect::nested ? "nested" : "flat"},
                    {"identity", identity.value},
                    {"cookie", cookie},
                    {"taken_at", utc_now()}};
  if (auto written = write_file_atomically(held_file(slot), record.dump() + "\n"); !written)
    return written.error();
  const std::lock_guard log_lock(log_mutex_);
  return append_taken(key);
}

Result<void> TaskJournal::append_taken(const std::string& key) {
  // The log only grows by appends; once it holds twice what is remembered it is rewritten.
  if (log_lines_ >= 2 * remember_) {
    std::string kept;
    std::size_t lines = 0;
    {
      const std::lock_guard lock(mutex_);
      for (const auto& line : order_) kept += line + "\n";
      lines = order_.size();
    }
    if (auto written = write_file_atomically(dir_ / "taken.log", kept); !written)
      return written.error();
    log_lines_ = lines;
    return {};
  }
  const auto path = dir_ / "taken.log";
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return make_error("cannot write " + path.string() + ": " + std::strerror(errno));
  const std::string line = key + "\n";
  const bool written = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
  const bool synced = ::fdatasync(fd) == 0;
  ::close(fd);
  if (!written || !synced)
    return make_error("cannot write " + path.string() + ": " + std::strerror(errno));
  ++log_lines_;
  return {};
}

void TaskJournal::release(int slot) {
  std::error_code ec;  // the slot's own file: no lock needed
  fs::remove(held_file(slot), ec);
  if (ec) spdlog::warn("cannot remove {}: {}", held_file(slot).string(), ec.message());
}

}  // namespace proctor
