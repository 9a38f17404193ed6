#include "agent/workspace.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <thread>

#include "common/text.hpp"

namespace proctor {

namespace fs = std::filesystem;

SlotWorkspace::SlotWorkspace(fs::path slot_dir) : root_(std::move(slot_dir)) {}

Result<TaskFolders> SlotWorkspace::start_task() const {
  TaskFolders folders;
  folders.root = root_ / "run";
  folders.service_dir = folders.root / "service";
  folders.reports_dir = folders.root / "reports";
  folders.junit_xml = folders.reports_dir / "junit.xml";
  folders.log_file = folders.root / "log.txt";
  folders.tmp_dir = folders.root / "tmp";
  std::error_code ec;
  fs::remove_all(folders.root, ec);
  if (ec) return make_error("cannot empty the task folder " + folders.root.string() + ": " + ec.message());
  for (const auto& dir : {folders.reports_dir, folders.tmp_dir, repos_dir()}) {
    fs::create_directories(dir, ec);
    if (ec) return make_error("cannot create " + dir.string() + ": " + ec.message());
  }
  return folders;
}

Result<void> copy_tree(const fs::path& from, const fs::path& to) {
  std::error_code ec;
  fs::create_directories(to, ec);
  if (ec) return make_error("cannot create " + to.string() + ": " + ec.message());
  for (auto it = fs::directory_iterator(from, ec); !ec && it != fs::directory_iterator(); it.increment(ec)) {
    if (it->path().filename() == ".git") continue;
    fs::copy(it->path(), to / it->path().filename(),
             fs::copy_options::recursive | fs::copy_options::copy_symlinks, ec);
    if (ec) return make_error("cannot copy " + it->path().string() + " to " + to.string() + ": " + ec.message());
  }
  if (ec) return make_error("cannot read the folder " + from.string() + ": " + ec.message());
  return {};
}

Result<std::optional<Fd>> lock_file(const fs::path& path, std::chrono::milliseconds patience) {
  // Private to the agent's user: a runner under another user cannot share the folder.
  Fd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!fd.valid()) return make_error("cannot open " + path.string() + ": " + std::strerror(errno));
  const auto give_up_at = std::chrono::steady_clock::now() + patience;
  // Sleeps only when patience > 0, which its callers ask for off any event loop.
  while (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno != EWOULDBLOCK) return make_error("cannot lock " + path.string() + ": " + std::strerror(errno));
    if (std::chrono::steady_clock::now() >= give_up_at) return std::optional<Fd>();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return std::optional<Fd>(std::move(fd));
}

std::string process_cookie(const fs::path& slot_dir, const TaskIdentity& identity) {
  std::string folder = slot_dir.lexically_normal().string();
  while (folder.size() > 1 && folder.back() == '/') folder.pop_back();
  return fnv1a_hex(folder) + fnv1a_hex(identity_key(identity));
}

Result<void> write_file_atomically(const fs::path& path, std::string_view content, Durability durability) {
  const fs::path tmp = path.string() + ".tmp";
  // A fresh file, never an existing one or a link: the folder may hold code from an
  // archive or a repository, and a planted link must not redirect the write.
  ::unlink(tmp.c_str());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd < 0) return make_error("cannot write " + tmp.string() + ": " + std::strerror(errno));
  std::size_t written = 0;
  while (written < content.size()) {
    const auto n = ::write(fd, content.data() + written, content.size() - written);
    if (n < 0) {
      if (errno == EINTR) continue;
      const std::string why = std::strerror(errno);
      ::close(fd);
      return make_error("cannot write " + tmp.string() + ": " + why);
    }
    written += static_cast<std::size_t>(n);
  }
  const bool synced = durability == Durability::volatile_ok || ::fsync(fd) == 0;
  if (::close(fd) != 0 || !synced) return make_error("cannot flush " + tmp.string() + ": " + std::strerror(errno));
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    return make_error("cannot rename " + tmp.string() + " to " + path.string() + ": " + std::strerror(errno));
  }
  if (durability == Durability::synced) {
    // The rename itself is only durable once the folder's entry is on disk.
    const fs::path folder = path.has_parent_path() ? path.parent_path() : fs::path(".");
    const int dir_fd = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd < 0) return make_error("cannot open the folder " + folder.string() + ": " + std::strerror(errno));
    const bool dir_synced = ::fsync(dir_fd) == 0;
    ::close(dir_fd);
    if (!dir_synced) return make_error("cannot flush the folder " + folder.string() + ": " + std::strerror(errno));
  }
  return {};
}

}  // namespace proctor
