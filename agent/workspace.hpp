#pragma once
// Workspace: the folders of one slot and the small file operations the agent needs.
// A slot owns {work-dir}/slots/{n}: `repos/` caches submission clones across tasks,
// `run/` is wiped at the start of every task and holds that task's files.

#include <chrono>
#include <filesystem>
#include <optional>
#include <string_view>

#include "agent/fd.hpp"
#include "common/result.hpp"
#include "common/task.hpp"

namespace proctor {

struct TaskFolders {
  std::filesystem::path root;         // run/
  std::filesystem::path service_dir;  // run/service: the service code, copied per task
  std::filesystem::path reports_dir;  // run/reports: where junit_xml points
  std::filesystem::path junit_xml;    // run/reports/junit.xml
  std::filesystem::path log_file;     // run/log.txt: the service's output
  std::filesystem::path tmp_dir;      // run/tmp: TMPDIR of the service
};

// The folders of one slot.
class SlotWorkspace {
 public:
  // A workspace rooted at `slot_dir` (created on demand).
  explicit SlotWorkspace(std::filesystem::path slot_dir);
  // Where submission clones are cached.
  [[nodiscard]] std::filesystem::path repos_dir() const { return root_ / "repos"; }
  // Empties run/ and creates the task's folders.
  Result<TaskFolders> start_task() const;

 private:
  std::filesystem::path root_;
};

// An exclusive flock on `path` (created when missing), held while the returned Fd lives.
// Waits up to `patience` while another process holds it, then gives nullopt; an error
// when the file cannot be opened or locked.
Result<std::optional<Fd>> lock_file(const std::filesystem::path& path, std::chrono::milliseconds patience = {});

// The cookie that marks the processes of `identity`'s run in the slot at `slot_dir`
// (ProcessSpec::cookie): derived, not random, so a restarted agent finds the same one.
std::string process_cookie(const std::filesystem::path& slot_dir, const TaskIdentity& identity);

// Copies the folder `from` into `to` (which must not exist), without `.git`.
Result<void> copy_tree(const std::filesystem::path& from, const std::filesystem::path& to);

// How durable a write must be.
enum class Durability { volatile_ok, synced };

// Writes `content` to `path` atomically (temporary file, rename), so a reader never
// sees half a file; `synced` also fsyncs it first so it survives a crash (the spool).
Result<void> write_file_atomically(const std::filesystem::path& path, std::string_view content,
                                   Durability durability = Durability::synced);

}  // namespace proctor
