#pragma once
// Spool: payloads on disk until the backend has them. A payload is written (fsync'd,
// atomic rename) to pending/ before its first POST and removed only after a 2xx; a
// final 4xx moves it to rejected/ with the answer. Pending payloads survive restarts.
// The cap bounds pending/: a full spool still takes every payload (a result the agent
// took is never dropped), but tells the daemon to stop taking tasks until it drains.

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "common/result.hpp"

namespace proctor {

class Spool {
 public:
  // A spool in `dir` (pending/ and rejected/ are created on demand) whose pending/ should
  // stay under `max_bytes` (0: no cap); counts what a previous run left there.
  explicit Spool(std::filesystem::path dir, uint64_t max_bytes = 0);

  // Stores `body` for the task `identity`; returns the file that holds it.
  Result<std::filesystem::path> add(std::string_view identity, std::string_view body) const;
  // Forgets a delivered payload.
  void remove(const std::filesystem::path& entry) const;
  // Moves a payload the backend refused for good to rejected/, with its answer beside it.
  void reject(const std::filesystem::path& entry, int status, std::string_view answer) const;
  // The payloads still to deliver, oldest first.
  [[nodiscard]] std::vector<std::filesystem::path> pending() const;
  // Reads a spooled payload.
  [[nodiscard]] Result<std::string> read(const std::filesystem::path& entry) const;
  // The identity_key() of every task with a payload pending or rejected (each file read once).
  [[nodiscard]] std::unordered_set<std::string> task_keys() const;
  // Payloads in pending/.
  [[nodiscard]] uint64_t pending_count() const { return pending_count_.load(); }
  // Bytes of the payloads in pending/.
  [[nodiscard]] uint64_t pending_bytes() const { return pending_bytes_.load(); }
  // True when pending/ has reached the cap.
  [[nodiscard]] bool full() const { return max_bytes_ > 0 && pending_bytes_.load() >= max_bytes_; }
  [[nodiscard]] uint64_t max_bytes() const { return max_bytes_; }

  [[nodiscard]] const std::filesystem::path& dir() const { return dir_; }

 private:
  // Takes `entry` out of the pending count.
  void uncount(const std::filesystem::path& entry) const;

  std::filesystem::path dir_;
  uint64_t max_bytes_;
  mutable std::atomic<uint64_t> pending_bytes_{0};
  mutable std::atomic<uint64_t> pending_count_{0};
};

}  // namespace proctor
