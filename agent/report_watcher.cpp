#include "agent/report_watcher.hpp"

#include <fnmatch.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>

#include <spdlog/spdlog.h>

#include "common/file_io.hpp"

namespace proctor {

namespace fs = std::filesystem;

namespace {

// IN_MASK_ADD: a folder can be both a target and another target's ancestor; a second
// inotify_add_watch on it must add to its mask, not replace it.
constexpr uint32_t kFileEvents = IN_MASK_ADD | IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR;
constexpr uint32_t kAncestorEvents = IN_MASK_ADD | IN_CREATE | IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR;

}  // namespace

ReportWatcher::ReportWatcher(std::vector<fs::path> patterns, fs::path root, std::function<void(const fs::path&)> on_file)
    : root_(std::move(root)), on_file_(std::move(on_file)) {
  for (const auto& pattern : patterns) {
    targets_[pattern.parent_path().lexically_normal()].push_back(pattern.filename().string());
  }
  std::error_code ec;
  for (const auto& [dir, globs] : targets_) {
    if (fs::is_directory(dir, ec)) initial_targets_.insert(dir);
  }
  inotify_fd_ = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  stop_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (inotify_fd_ < 0 || stop_fd_ < 0) {
    spdlog::warn("reports cannot be watched while the service runs ({}): they are read when it ends",
                 std::strerror(errno));
    if (inotify_fd_ >= 0) ::close(inotify_fd_);
    inotify_fd_ = -1;
    return;
  }
  do {
    rearm_needed_ = false;
    arm();
  } while (rearm_needed_);
  thread_ = std::thread([this] { run(); });
}

ReportWatcher::~ReportWatcher() {
  stop();
  if (inotify_fd_ >= 0) ::close(inotify_fd_);
  if (stop_fd_ >= 0) ::close(stop_fd_);
}

void ReportWatcher::stop() {
  if (!thread_.joinable()) return;
  const uint64_t one = 1;
  [[maybe_unused]] const auto written = ::write(stop_fd_, &one, sizeof one);
  thread_.join();
}

bool ReportWatcher::matches(const fs::path& dir, const std::string& file_name) const {
  const auto it = targets_.find(dir);
  if (it == targets_.end()) return false;
  for (const auto& glob : it->second) {
    if (::fnmatch(glob.c_str(), file_name.c_str(), 0) == 0) return true;
  }
  return false;
}

void ReportWatcher::scan(const fs::path& dir) {
  std::error_code ec;
  for (auto it = fs::directory_iterator(dir, ec); !ec && it != fs::directory_iterator(); it.increment(ec)) {
    if (it->is_regular_file(ec) && matches(dir, it->path().filename().string())) on_file_(it->path());
  }
}

void ReportWatcher::arm() {
  std::error_code ec;
  for (const auto& [dir, globs] : targets_) {
    if (armed_targets_.count(dir) != 0) continue;
    if (fs::is_directory(dir, ec)) {
      const int wd = ::inotify_add_watch(inotify_fd_, dir.c_str(), kFileEvents);
      if (wd < 0) continue;
      watched_[wd] = dir;
      armed_targets_.insert(dir);
      // A folder made while the service runs may already hold reports written before
      // the watch was in place.
      if (initial_targets_.count(dir) == 0) scan(dir);
      continue;
    }
    // Wait for the folder from its nearest existing ancestor (inside root).
    for (fs::path ancestor = dir.parent_path(); !ancestor.empty() && is_within(root_, ancestor);
         ancestor = ancestor.parent_path()) {
      if (!fs::is_directory(ancestor, ec)) continue;
      const int wd = ::inotify_add_watch(inotify_fd_, ancestor.c_str(), kAncestorEvents);
      if (wd >= 0) watched_[wd] = ancestor;
      break;
    }
    // Made between the look and the watch: nothing would tell, so look again.
    if (fs::is_directory(dir, ec)) rearm_needed_ = true;
  }
}

void ReportWatcher::run() {
  alignas(inotify_event) std::array<char, 64 * 1024> buffer{};
  std::array<pollfd, 2> fds{pollfd{inotify_fd_, POLLIN, 0}, pollfd{stop_fd_, POLLIN, 0}};
  for (;;) {
    if (::poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if ((fds[1].revents & POLLIN) != 0) return;
    const ssize_t n = ::read(inotify_fd_, buffer.data(), buffer.size());
    if (n <= 0) continue;
    bool rearm = false;
    for (ssize_t at = 0; at < n;) {
      const auto* event = reinterpret_cast<const inotify_event*>(buffer.data() + at);
      at += static_cast<ssize_t>(sizeof(inotify_event) + event->len);
      if ((event->mask & IN_Q_OVERFLOW) != 0) {
        // Events were lost: look at every target folder again.
        for (const auto& dir : armed_targets_) scan(dir);
        rearm = true;
        continue;
      }
      const auto where = watched_.find(event->wd);
      if (where == watched_.end()) continue;
      if ((event->mask & IN_IGNORED) != 0) {
        // The folder went away (a build tool wiped its reports): wait for it again; when
        // it comes back it is a new folder, whose files are looked at when it is found.
        armed_targets_.erase(where->second);
        initial_targets_.erase(where->second);
        watched_.erase(where);
        rearm = true;
        continue;
      }
      if (event->len == 0) continue;
      const std::string name = event->name;
      if ((event->mask & IN_ISDIR) != 0) {
        rearm = true;
      } else if ((event->mask & (IN_CLOSE_WRITE | IN_MOVED_TO)) != 0 && matches(where->second, name)) {
        on_file_(where->second / name);
      }
    }
    while (rearm || rearm_needed_) {
      rearm_needed_ = false;
      rearm = false;
      arm();
    }
  }
}

}  // namespace proctor
