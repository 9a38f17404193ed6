#pragma once
// ReportWatcher: notices a service's report files as they are written (inotify), so that
// their cases become records while the service still runs — Surefire, for one, writes a
// file per test class as it goes. The end-of-run read stays the authority; this only
// makes results appear early.

#include <filesystem>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace proctor {

class ReportWatcher {
 public:
  // Watches the folders of `patterns` (absolute paths whose file-name part may hold
  // wildcards). A folder that does not exist yet is waited for from its nearest existing
  // ancestor, but never above `root`. Calls `on_file` on the watcher's own thread each
  // time a matching file is closed after writing or moved into place, and for the
  // matching files already in a folder that appears later.
  ReportWatcher(std::vector<std::filesystem::path> patterns, std::filesystem::path root,
                std::function<void(const std::filesystem::path&)> on_file);
  // stop().
  ~ReportWatcher();
  ReportWatcher(const ReportWatcher&) = delete;
  ReportWatcher& operator=(const ReportWatcher&) = delete;

  // Stops watching; on_file is not called after this returns.
  void stop();
  // False when inotify could not be used (then only the end-of-run read finds reports).
  [[nodiscard]] bool watching() const { return inotify_fd_ >= 0; }

 private:
  void run();
  // Watches every target folder that exists and, for the others, their nearest ancestor.
  void arm();
  // Calls on_file for every file of `dir` matching its patterns.
  void scan(const std::filesystem::path& dir);
  [[nodiscard]] bool matches(const std::filesystem::path& dir, const std::string& file_name) const;

  std::map<std::filesystem::path, std::vector<std::string>> targets_;  // folder -> file-name globs
  std::filesystem::path root_;
  std::function<void(const std::filesystem::path&)> on_file_;
  std::map<int, std::filesystem::path> watched_;  // watch descriptor -> folder
  std::set<std::filesystem::path> armed_targets_;
  std::set<std::filesystem::path> initial_targets_;  // targets that existed at the start
  bool rearm_needed_ = false;  // a target appeared while arm() was putting watches in place
  int inotify_fd_ = -1;
  int stop_fd_ = -1;
  std::thread thread_;
};

}  // namespace proctor
