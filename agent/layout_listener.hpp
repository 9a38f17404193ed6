#pragma once
// The file-system side of `runner listen DIR`: DirectoryReader reads a results folder
// without ever leaving it (no symlink is followed below DIR), and listen_layout() runs
// the follow loop: one poll() over inotify (DIR and each record's folder), a stop fd (a
// signalfd for SIGTERM/SIGINT) and the wrapper's pidfd, with a slow rescan in case an
// event was missed. The rules of what is published are common/layout_follower's.

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <sys/types.h>

#include "common/layout_follower.hpp"
#include "common/result.hpp"

namespace proctor {

// The real LayoutReader: relative paths below one folder, opened component by component
// with O_NOFOLLOW, so a symlinked record folder or file (which could lead outside DIR),
// a "..", a FIFO or a device is refused rather than read.
class DirectoryReader : public LayoutReader {
 public:
  // Opens `dir`; an error when it is not a readable folder.
  static Result<std::unique_ptr<DirectoryReader>> open(const std::filesystem::path& dir);
  ~DirectoryReader() override;
  DirectoryReader(const DirectoryReader&) = delete;
  DirectoryReader& operator=(const DirectoryReader&) = delete;

  Result<std::optional<FileStamp>> stamp(const std::string& relative_path) override;
  Result<std::optional<std::string>> read_small(const std::string& relative_path,
                                                std::size_t limit) override;
  Result<std::optional<std::string>> read_range(const std::string& relative_path,
                                                std::uint64_t offset, std::size_t max) override;

 private:
  explicit DirectoryReader(int dir_fd) : dir_fd_(dir_fd) {}
  int dir_fd_;
};

// Why a listen loop ended.
enum class ListenEnd { suite_finished, wrapper_ended, signal };

// The end line's reason: "suite finished", "wrapper ended" or "signal".
const char* end_reason(ListenEnd end);

struct ListenLoopOptions {
  std::filesystem::path dir;               // the results folder; it must exist
  std::optional<pid_t> wrapper_pid;        // stop after a last look when it ends
  int stop_fd = -1;                        // stop after a last look when readable; -1: none
  std::chrono::milliseconds rescan{1000};  // a scan at least this often, events or not
};

// Follows the layout until test_suite.status is set and every record is final, the
// wrapper ends or stop_fd becomes readable; then scans a last time. Every change goes to
// `emit` in order, the {"change":"end","reason":...} line last. An error when DIR cannot
// be opened or watched.
Result<ListenEnd> listen_layout(const ListenLoopOptions& options,
                                const std::function<void(const nlohmann::ordered_json&)>& emit);

}  // namespace proctor
