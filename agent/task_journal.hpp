#pragma once
// TaskJournal: what this agent has taken from the backend, kept on disk so that neither
// a task handed out twice nor an agent killed in the middle of a task doubles or loses a
// result. Under its folder:
//   held/{slot}.json  the task a slot holds (identity, process cookie, when), written and
//                     synced before the task runs, removed once its payload is spooled;
//                     one left at start-up is a task the previous run never finished.
//   taken.log         the identities taken lately, one per line, so that a task handed
//                     out again (even after a restart) is recognised and not run twice.
// Thread-safe: the daemon calls it from its spool thread and its event loop.

#include <chrono>
#include <cstddef>
#include <deque>
#include <filesystem>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "agent/workspace.hpp"
#include "common/result.hpp"
#include "common/task.hpp"

namespace proctor {

// A task a slot held when the agent stopped without finishing it.
struct HeldTask {
  int slot = 0;
  TaskIdentity identity;
  std::string cookie;    // the cookie of its processes (ProcessSpec::cookie)
  std::string taken_at;  // UTC, ISO 8601
};

// The task a result payload answers (its top-level "id" or "attempt"), if it names one.
std::optional<TaskIdentity> payload_identity(std::string_view payload);

class TaskJournal {
 public:
  // A journal in `dir` (created on demand) that remembers the last `remember` identities.
  explicit TaskJournal(std::filesystem::path dir, std::size_t remember = 10000);
  ~TaskJournal();
  TaskJournal(const TaskJournal&) = delete;
  TaskJournal& operator=(const TaskJournal&) = delete;

  // Locks the journal for this process (flock on {dir}/lock, held until exit): two agents
  // on one work folder would take each other's running tasks for crashed ones. Waits up to
  // `patience` for a holder to let go: a killed agent's child between fork and exec holds
  // the lock until its exec, a moment after the agent is gone.
  Result<void> lock(std::chrono::milliseconds patience = std::chrono::seconds(5));
  // Reads taken.log and returns the tasks held when the previous run stopped; the records
  // stay until release() (a crash during recovery finds them again).
  std::vector<HeldTask> open();
  // Whether the task with identity `key` was taken before, by this run or a remembered one.
  [[nodiscard]] bool taken(const std::string& key) const;
  // Marks `key` taken in memory at once (hold() makes it durable); false when it already was.
  bool claim(const std::string& key);
  // Records that `slot` holds `identity` and marks it taken; synced before it returns.
  Result<void> hold(int slot, const TaskIdentity& identity, const std::string& cookie);
  // Forgets what `slot` held (its payload is in the spool now).
  void release(int slot);

 private:
  [[nodiscard]] std::filesystem::path held_file(int slot) const;
  void remember(const std::string& key);              // caller holds mutex_
  Result<void> append_taken(const std::string& key);  // caller holds log_mutex_, not mutex_

  std::filesystem::path dir_;
  std::size_t remember_;
  // Lock order: log_mutex_ before mutex_. mutex_ guards the identities in memory and is
  // never held across a disk write, so claim() on the event loop does not wait on a sync.
  std::mutex log_mutex_;  // taken.log and log_lines_
  mutable std::mutex mutex_;
  std::deque<std::string> order_;          // oldest first
  std::unordered_set<std::string> taken_;  // the same keys, for lookup
  std::size_t log_lines_ = 0;              // lines in taken.log, compacted when it doubles
  Fd lock_;                                // held while this process owns the journal
};

}  // namespace proctor
