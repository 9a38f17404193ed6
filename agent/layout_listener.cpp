#include "agent/layout_listener.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <ctime>
#include <map>
#include <utility>
#include <vector>

#include "agent/fd.hpp"

namespace proctor {

namespace {

// A file written within this time may be rewritten with the same size and time stamp
// (file times advance by a clock tick, a few ms): it is read again on the next scan.
constexpr std::int64_t kSettleNs = 100'000'000;

std::string refused(const std::string& path, const std::string& why) {
  return path + " in the results folder " + why + "; it is not read";
}

// Opens `path` (relative, '/'-separated) below `dir_fd` without following any symlink:
// nullopt when something on the way does not exist.
Result<std::optional<Fd>> open_below(int dir_fd, const std::string& path, struct stat& info) {
  std::vector<std::string> parts;
  for (std::size_t start = 0; start <= path.size();) {
    const std::size_t slash = std::min(path.find('/', start), path.size());
    parts.push_back(path.substr(start, slash - start));
    start = slash + 1;
  }
  for (const auto& part : parts) {
    if (part.empty() || part == "." || part == "..")
      return make_error(refused(path, "is not a plain relative path"));
  }
  Fd folder;
  int at = dir_fd;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    const bool last = i + 1 == parts.size();
    const int flags = O_RDONLY | O_CLOEXEC | O_NOFOLLOW | (last ? O_NONBLOCK : O_DIRECTORY);
    Fd next(::openat(at, parts[i].c_str(), flags));
    if (!next.valid()) {
      const int err = errno;
      if (err == ENOENT) return std::optional<Fd>();
      struct stat link {};
      if (::fstatat(at, parts[i].c_str(), &link, AT_SYMLINK_NOFOLLOW) == 0 &&
          S_ISLNK(link.st_mode)) {
        // Named by the link itself, so a linked record folder is one problem, not one per file.
        std::string linked = parts[0];
        for (std::size_t k = 1; k <= i; ++k) linked += "/" + parts[k];
        return make_error(refused(linked, "is a symlink (it could lead outside the folder)"));
      }
      if (err == ENOTDIR)
        return std::optional<Fd>();  // a file where a folder should be: not a record's
      return make_error(refused(path, std::string("cannot be opened: ") + std::strerror(err)));
    }
    if (last) {
      if (::fstat(next.get(), &info) != 0) {
        return make_error(
            refused(path, std::string("cannot be examined: ") + std::strerror(errno)));
      }
      if (!S_ISREG(info.st_mode)) return make_error(refused(path, "is not a regular file"));
      return std::optional<Fd>(std::move(next));
    }
    folder = std::move(next);
    at = folder.get();
  }
  return std::optional<Fd>();
}

// Up to `max` bytes of `fd` from `offset`.
Result<std::string> read_at(int fd, std::uint64_t offset, std::size_t max,
                            const std::string& path) {
  std::string data;
  std::array<char, 64 * 1024> buffer{};
  while (data.size() < max) {
    const std::size_t want = std::min(buffer.size(), max - data.size());
    const ssize_t n = ::pread(fd, buffer.data(), want, static_cast<off_t>(offset + data.size()));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0)
      return make_error(refused(path, std::string("cannot be read: ") + std::strerror(errno)));
    if (n == 0) break;
    data.append(buffer.data(), static_cast<std::size_t>(n));
  }
  return data;
}

}  // namespace

Result<std::unique_ptr<DirectoryReader>> DirectoryReader::open(const std::filesystem::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    return make_error("cannot open the results folder " + dir.string() + ": " +
                      std::strerror(errno));
  }
  return std::unique_ptr<DirectoryReader>(new DirectoryReader(fd));
}

DirectoryReader::~DirectoryReader() {
  ::close(dir_fd_);
}

Result<std::optional<FileStamp>> DirectoryReader::stamp(const std::string& relative_path) {
  struct stat info {};
  auto fd = open_below(dir_fd_, relative_path, info);
  if (!fd) return fd.error();
  if (!*fd) return std::optional<FileStamp>();
  timespec now{};
  ::clock_gettime(CLOCK_REALTIME, &now);
  const std::int64_t mtime_ns =
      static_cast<std::int64_t>(info.st_mtim.tv_sec) * 1'000'000'000 + info.st_mtim.tv_nsec;
  const std::int64_t now_ns = static_cast<std::int64_t>(now.tv_sec) * 1'000'000'000 + now.tv_nsec;
  return std::optional<FileStamp>(FileStamp{static_cast<std::uint64_t>(info.st_size), mtime_ns,
                                            static_cast<std::uint64_t>(info.st_ino),
                                            now_ns - mtime_ns > kSettleNs});
}

Result<std::optional<std::string>> DirectoryReader::read_small(const std::string& relative_path,
                                                               std::size_t limit) {
  return read_range(relative_path, 0, limit + 1);
}

Result<std::optional<std::string>> DirectoryReader::read_range(const std::string& relative_path,
                                                               std::uint64_t offset,
                                                               std::size_t max) {
  struct stat info {};
  auto fd = open_below(dir_fd_, relative_path, info);
  if (!fd) return fd.error();
  if (!*fd) return std::optional<std::string>();
  auto data = read_at((*fd)->get(), offset, max, relative_path);
  if (!data) return data.error();
  return std::optional<std::string>(std::move(*data));
}

const char* end_reason(ListenEnd end) {
  switch (end) {
    case ListenEnd::suite_finished:
      return "suite finished";
    case ListenEnd::wrapper_ended:
      return "wrapper ended";
    case ListenEnd::signal:
      return "signal";
  }
  return "signal";
}

Result<ListenEnd> listen_layout(const ListenLoopOptions& options,
                                const std::function<void(const nlohmann::ordered_json&)>& emit) {
  auto reader = DirectoryReader::open(options.dir);
  if (!reader) return reader.error();
  Fd inotify(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
  if (!inotify.valid())
    return make_error(std::string("cannot watch the results folder: ") + std::strerror(errno));
  constexpr std::uint32_t kMask = IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_CLOSE_WRITE |
                                  IN_MODIFY | IN_DELETE | IN_DELETE_SELF | IN_MOVE_SELF |
                                  IN_ATTRIB | IN_ONLYDIR;
  if (::inotify_add_watch(inotify.get(), options.dir.c_str(), kMask) < 0) {
    return make_error("cannot watch the results folder " + options.dir.string() + ": " +
                      std::strerror(errno));
  }
  std::map<int, std::string> watch_names;  // record folders watched, by watch descriptor
  std::map<std::string, int> watches;

  Fd wrapper;
  bool wrapper_gone = false;
  if (options.wrapper_pid) {
    wrapper = Fd(static_cast<int>(::syscall(SYS_pidfd_open, *options.wrapper_pid, 0)));
    if (!wrapper.valid() && errno == ESRCH) wrapper_gone = true;
    // Otherwise (no pidfd in this kernel) the pid is checked with kill(pid, 0) each turn.
  }
  const auto wrapper_alive = [&] {
    if (wrapper_gone) return false;
    if (wrapper.valid() || !options.wrapper_pid) return true;
    return !(::kill(*options.wrapper_pid, 0) != 0 && errno == ESRCH);
  };

  LayoutFollower follower(**reader);
  const auto publish = [&](const LayoutChanges& changes) {
    for (const auto& change : changes) emit(change);
  };
  const auto finish = [&](ListenEnd end) {
    publish(follower.final_scan());
    emit(nlohmann::ordered_json{{"change", "end"}, {"reason", end_reason(end)}});
    return end;
  };
  // Watches the folders of records new since the last call; true when one was added.
  const auto watch_records = [&] {
    bool added = false;
    for (const auto& name : follower.testnames()) {
      if (watches.count(name) != 0) continue;
      // IN_DONT_FOLLOW: a symlinked record folder is not watched (nor read).
      const int wd =
          ::inotify_add_watch(inotify.get(), (options.dir / name).c_str(), kMask | IN_DONT_FOLLOW);
      if (wd < 0) continue;  // not there yet: DIR's IN_CREATE brings a new scan
      watches[name] = wd;
      watch_names[wd] = name;
      added = true;
    }
    return added;
  };

  bool dirty = true;
  std::vector<char> events(64 * 1024);
  while (true) {
    if (dirty || follower.behind()) {
      dirty = false;
      publish(follower.scan());
      // Files written before a folder's watch existed have no event: look once more.
      if (watch_records()) dirty = true;
    }
    if (follower.finished()) return finish(ListenEnd::suite_finished);
    if (!wrapper_alive()) return finish(ListenEnd::wrapper_ended);

    std::array<pollfd, 3> fds{};
    nfds_t count = 0;
    fds[count++] = {inotify.get(), POLLIN, 0};
    const nfds_t stop_index = count;
    if (options.stop_fd >= 0) fds[count++] = {options.stop_fd, POLLIN, 0};
    const nfds_t wrapper_index = count;
    if (wrapper.valid()) fds[count++] = {wrapper.get(), POLLIN, 0};
    const int timeout = dirty || follower.behind() ? 0 : static_cast<int>(options.rescan.count());
    const int ready = ::poll(fds.data(), count, timeout);
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0)
      return make_error(std::string("cannot wait for changes: ") + std::strerror(errno));
    if (ready == 0) {
      dirty = true;  // the slow rescan: an event may have been missed
      continue;
    }
    if (options.stop_fd >= 0 && (fds[stop_index].revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
      return finish(ListenEnd::signal);
    }
    if (wrapper.valid() && (fds[wrapper_index].revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
      return finish(ListenEnd::wrapper_ended);
    }
    if ((fds[0].revents & POLLIN) != 0) {
      // Any event (an overflow included) means "scan"; only removed watches need care.
      while (true) {
        const ssize_t n = ::read(inotify.get(), events.data(), events.size());
        if (n <= 0) break;
        for (ssize_t at = 0; at < n;) {
          inotify_event event{};
          std::memcpy(&event, events.data() + at, sizeof event);
          if ((event.mask & IN_IGNORED) != 0) {
            if (const auto it = watch_names.find(event.wd); it != watch_names.end()) {
              watches.erase(it->second);
              watch_names.erase(it);
            }
          }
          at += static_cast<ssize_t>(sizeof(inotify_event) + event.len);
        }
      }
      dirty = true;
    }
  }
}

}  // namespace proctor
