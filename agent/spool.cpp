#include "agent/spool.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>

#include "agent/task_journal.hpp"
#include "agent/workspace.hpp"
#include "common/file_io.hpp"
#include "common/text.hpp"

namespace proctor {

namespace fs = std::filesystem;

Spool::Spool(fs::path dir, uint64_t max_bytes) : dir_(std::move(dir)), max_bytes_(max_bytes) {
  for (const auto& entry : pending()) {
    std::error_code ec;
    const auto size = fs::file_size(entry, ec);
    if (ec) continue;
    pending_bytes_ += size;
    ++pending_count_;
  }
}

void Spool::uncount(const fs::path& entry) const {
  std::error_code ec;
  const auto size = fs::file_size(entry, ec);
  if (ec) return;
  // Never below zero, even if the file changed size under us.
  uint64_t current = pending_bytes_.load();
  while (!pending_bytes_.compare_exchange_weak(current, current - std::min<uint64_t>(current, size))) {
  }
  uint64_t count = pending_count_.load();
  while (count > 0 && !pending_count_.compare_exchange_weak(count, count - 1)) {
  }
}

Result<fs::path> Spool::add(std::string_view identity, std::string_view body) const {
  static std::atomic<unsigned> sequence{0};
  std::error_code ec;
  fs::create_directories(dir_ / "pending", ec);
  if (ec) return make_error("cannot create the spool folder " + (dir_ / "pending").string() + ": " + ec.message());
  const auto now = std::chrono::duration_cast<std::chrono::microseconds>(
                       std::chrono::system_clock::now().time_since_epoch()).count();
  // Time first so that a sorted listing is oldest first.
  const auto name = std::to_string(now) + "-" + std::to_string(sequence++) + "-" +
                    safe_folder_name(identity).substr(0, 80) + ".json";
  const auto path = dir_ / "pending" / name;
  if (auto written = write_file_atomically(path, body); !written) return written.error();
  pending_bytes_ += body.size();
  ++pending_count_;
  return path;
}

void Spool::remove(const fs::path& entry) const {
  uncount(entry);
  std::error_code ec;
  fs::remove(entry, ec);
}

void Spool::reject(const fs::path& entry, int status, std::string_view answer) const {
  std::error_code ec;
  fs::create_directories(dir_ / "rejected", ec);
  const auto target = dir_ / "rejected" / entry.filename();
  uncount(entry);
  fs::rename(entry, target, ec);
  // The answer is for a person to read later; it need not survive a crash.
  (void)write_file_atomically(target.string() + ".answer",
                              "HTTP " + std::to_string(status) + "\n" + std::string(answer), Durability::volatile_ok);
}

std::vector<fs::path> Spool::pending() const {
  std::vector<fs::path> entries;
  std::error_code ec;
  for (auto it = fs::directory_iterator(dir_ / "pending", ec); !ec && it != fs::directory_iterator(); it.increment(ec)) {
    if (it->path().extension() == ".json") entries.push_back(it->path());
  }
  std::sort(entries.begin(), entries.end());
  return entries;
}

Result<std::string> Spool::read(const fs::path& entry) const {
  return read_whole_file(entry, "the spooled payload");
}

std::unordered_set<std::string> Spool::task_keys() const {
  std::unordered_set<std::string> keys;
  for (const char* folder : {"pending", "rejected"}) {
    std::error_code ec;
    for (auto it = fs::directory_iterator(dir_ / folder, ec); !ec && it != fs::directory_iterator(); it.increment(ec)) {
      if (it->path().extension() != ".json") continue;
      auto body = read(it->path());
      if (!body) continue;
      if (const auto identity = payload_identity(*body)) keys.insert(identity_key(*identity));
    }
  }
  return keys;
}

}  // namespace proctor
