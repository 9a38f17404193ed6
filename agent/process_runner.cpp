// PosixProcessRunner: starts a service with posix_spawn in its own session, reads
// its output on the calling thread with poll(2), and stops and measures the whole
// session, found by scanning /proc, because a member may leave the process group.
//
// The leader is reaped only at the very end (its exit is seen with waitid(WNOWAIT)), so
// its pid, which is also the group and session id, cannot be reused while we still
// send signals to that group.

#include "agent/process_runner.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <random>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "agent/fd.hpp"
#include "common/result.hpp"
#include "common/text.hpp"

namespace proctor {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// Longest poll wait, and the period of the /proc scan that samples memory and checks the
// stopping session (SPEC: <= 50 ms). Output, the leader's exit, a cancel and the
// deadlines wake the loop by themselves.
constexpr auto kTick = 50ms;
// The scan period once signals were sent, so that run() returns soon after the last
// member is gone.
constexpr auto kStopTick = 10ms;
constexpr std::size_t kReadChunk = 64 * 1024;
// A line without a newline is emitted in pieces of this size so memory stays bounded.
constexpr std::size_t kMaxPendingLine = 64 * 1024;
// Reads per pipe once the session is gone; bounds the drain when a process that left
// the session keeps the pipe open and writing.
constexpr int kMaxDrainReads = 256;
// How long SIGKILLed processes may take to disappear before we stop waiting for them.
constexpr auto kKillWait = 10s;
// The search path execvp uses when the environment has no PATH.
constexpr std::string_view kDefaultPath = "/bin:/usr/bin";

std::string errno_text(int err) { return std::system_category().message(err); }

// The child's stdin: /dev/null, or a pipe already holding `data` and closed behind it.
// The data is written before the child starts; it is small enough for the pipe's buffer
// (checked), so the write never blocks and the child reads it, then end of file.
Result<Fd> make_input(const std::string& data) {
  if (data.empty()) {
    Fd null_in(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    if (!null_in.valid()) return make_error("Cannot open /dev/null: " + errno_text(errno) + ".");
    return null_in;
  }
  if (data.size() > kMaxStdinBytes) {
    return make_error("The process input is larger than " + std::to_string(kMaxStdinBytes) + " bytes.");
  }
  int ends[2];
  if (::pipe2(ends, O_CLOEXEC) != 0) return make_error("Cannot create an input pipe: " + errno_text(errno) + ".");
  Fd read_end(ends[0]);
  const Fd write_end(ends[1]);
  std::size_t written = 0;
  while (written < data.size()) {
    const ssize_t n = ::write(write_end.get(), data.data() + written, data.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return make_error("Cannot write the process input: " + errno_text(errno) + ".");
    written += static_cast<std::size_t>(n);
  }
  return read_end;
}

// A pipe whose ends do not survive exec; the child gets the write end through dup2.
struct Pipe {
  Fd read;
  Fd write;
};

Result<Pipe> make_output_pipe() {
  int ends[2];
  if (::pipe2(ends, O_CLOEXEC) != 0) {
    return make_error("Cannot create an output pipe: " + errno_text(errno) + ".");
  }
  Pipe pipe{Fd(ends[0]), Fd(ends[1])};
  // Only our end is non-blocking: the child expects an ordinary blocking stdout.
  const int flags = ::fcntl(pipe.read.get(), F_GETFL);
  ::fcntl(pipe.read.get(), F_SETFL, flags | O_NONBLOCK);
  return pipe;
}

// --- Finding the program ---

bool is_executable_file(const fs::path& path) {
  struct stat info {};
  return ::stat(path.c_str(), &info) == 0 && S_ISREG(info.st_mode) &&
         ::access(path.c_str(), X_OK) == 0;
}

// Resolves argv[0] as execvp would, but with the PATH of the child's environment;
// relative names are taken from the child's working folder.
Result<fs::path> find_program(const ProcessSpec& spec, const fs::path& dir) {
  const std::string& name = spec.argv.front();
  if (name.empty()) return make_error("The command to run has an empty program name.");
  if (name.find('/') != std::string::npos) {
    const fs::path path = fs::path(name).is_absolute() ? fs::path(name) : dir / name;
    if (is_executable_file(path)) return path;
    std::error_code ec;
    if (!fs::exists(path, ec)) return make_error("Cannot start " + name + ": the file does not exist.");
    return make_error("Cannot start " + name + ": it is not an executable file.");
  }
  std::string_view search = kDefaultPath;
  for (const auto& [key, value] : spec.env) {
    if (key == "PATH") search = value;
  }
  std::string_view rest = search;
  while (true) {
    const auto colon = rest.find(':');
    const std::string_view entry = rest.substr(0, colon);
    fs::path candidate_dir = entry.empty() ? dir : fs::path(entry);
    if (candidate_dir.is_relative()) candidate_dir = dir / candidate_dir;
    const fs::path candidate = candidate_dir / name;
    if (is_executable_file(candidate)) return candidate;
    if (colon == std::string_view::npos) break;
    rest.remove_prefix(colon + 1);
  }
  return make_error("Cannot start " + name + ": no executable of that name on the PATH " +
                    std::string(search) + ".");
}

// A cookie no other run shares: 128 random bits in hex.
std::string random_cookie() {
  static thread_local std::mt19937_64 bits{std::random_device{}()};
  char text[40];
  std::snprintf(text, sizeof text, "%016llx%016llx", static_cast<unsigned long long>(bits()),
                static_cast<unsigned long long>(bits()));
  return text;
}

// The service leaders a run() is waiting for. reap_adopted_zombies must leave them alone
// (run() reads their exit status), and a leader can exit before launch() returns, so
// launch() spawns and registers under the lock the reaper takes. Process-wide, like the
// kernel's list of our children it mirrors.
struct LeaderRegistry {
  std::mutex mutex;
  std::unordered_set<pid_t> leaders;
};

LeaderRegistry& leader_registry() {
  static LeaderRegistry registry;
  return registry;
}

void forget_leader(pid_t pid) {
  auto& registry = leader_registry();
  const std::lock_guard lock(registry.mutex);
  registry.leaders.erase(pid);
}

// Starts the program with posix_spawn and returns its pid. The child is a new session
// (sid == pgid == pid, no controlling terminal) with every signal at its default and none
// blocked (ignored signals and the worker thread's mask would otherwise survive exec and
// make SIGTERM ineffective), `in`/`out`/`err` as 0/1/2 and no other descriptor.
// posix_spawn, not a fork launcher: glibc runs only async-signal-safe steps in the child
// (it shares our memory until exec, CLONE_VFORK) and reports a failed exec itself.
// Process v2 1.81's fork launcher allocates in the forked child (Asio's notify_fork copies
// its service list into a vector), which can hang there for good when another thread held
// the allocator's lock at the fork: seen under ASan, where a launch that never returned
// stalled every slot.
Result<pid_t> launch(const fs::path& program, const ProcessSpec& spec, const std::string& cookie_entry,
                     const fs::path& dir, int in, int out, int err) {
  std::vector<std::string> env;
  env.reserve(spec.env.size() + 1);
  for (const auto& [key, value] : spec.env) {
    if (key != kCookieVariable) env.push_back(key + "=" + value);
  }
  env.push_back(cookie_entry);
  std::vector<char*> envp;
  envp.reserve(env.size() + 1);
  for (auto& entry : env) envp.push_back(entry.data());
  envp.push_back(nullptr);
  std::vector<std::string> args = spec.argv;
  args.front() = program.native();  // argv[0] is the resolved path, as exec'd
  std::vector<char*> argv;
  argv.reserve(args.size() + 1);
  for (auto& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);

  const auto cannot_start = [&program](int error) {
    return make_error("Cannot start " + program.string() + ": " + errno_text(error) + ".");
  };
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attributes;
  if (const int error = ::posix_spawn_file_actions_init(&actions); error != 0) return cannot_start(error);
  if (const int error = ::posix_spawnattr_init(&attributes); error != 0) {
    ::posix_spawn_file_actions_destroy(&actions);
    return cannot_start(error);
  }
  sigset_t all;
  sigset_t none;
  sigfillset(&all);
  sigemptyset(&none);
  int failed = ::posix_spawnattr_setflags(
      &attributes, static_cast<short>(POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK));
  if (failed == 0) failed = ::posix_spawnattr_setsigdefault(&attributes, &all);
  if (failed == 0) failed = ::posix_spawnattr_setsigmask(&attributes, &none);
  if (failed == 0) failed = ::posix_spawn_file_actions_adddup2(&actions, in, STDIN_FILENO);
  if (failed == 0) failed = ::posix_spawn_file_actions_adddup2(&actions, out, STDOUT_FILENO);
  if (failed == 0) failed = ::posix_spawn_file_actions_adddup2(&actions, err, STDERR_FILENO);
  if (failed == 0) failed = ::posix_spawn_file_actions_addclosefrom_np(&actions, STDERR_FILENO + 1);
  if (failed == 0) failed = ::posix_spawn_file_actions_addchdir_np(&actions, dir.c_str());

  pid_t pid = -1;
  auto& registry = leader_registry();
  const std::lock_guard lock(registry.mutex);
  if (failed == 0) failed = ::posix_spawn(&pid, argv.front(), &actions, &attributes, argv.data(), envp.data());
  ::posix_spawnattr_destroy(&attributes);
  ::posix_spawn_file_actions_destroy(&actions);
  if (failed != 0) return cannot_start(failed);
  registry.leaders.insert(pid);
  return pid;
}

// --- The session, seen through /proc ---

struct ProcInfo {
  pid_t pid = 0;
  pid_t parent = 0;
  pid_t group = 0;
  pid_t session = 0;
  char state = '?';
  int64_t rss_pages = 0;
  uint64_t start_time = 0;  // in clock ticks since boot: tells a reused pid from the old one
};

std::optional<ProcInfo> read_proc_stat(pid_t pid) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/stat", static_cast<int>(pid));
  const Fd file(::open(path, O_RDONLY | O_CLOEXEC));
  if (!file.valid()) return std::nullopt;
  std::array<char, 1024> buffer{};
  const ssize_t size = ::read(file.get(), buffer.data(), buffer.size());
  if (size <= 0) return std::nullopt;
  const std::string_view text(buffer.data(), static_cast<std::size_t>(size));
  // The command name may hold spaces and parentheses; the fields follow the last ')'.
  const auto close = text.rfind(')');
  if (close == std::string_view::npos) return std::nullopt;
  std::string_view rest = text.substr(close + 1);
  std::array<std::string_view, 22> fields{};  // fields 3 (state) .. 24 (rss) of proc(5)
  std::size_t count = 0;
  while (count < fields.size()) {
    const auto start = rest.find_first_not_of(' ');
    if (start == std::string_view::npos) break;
    rest.remove_prefix(start);
    const auto end = rest.find(' ');
    fields[count++] = rest.substr(0, end);
    if (end == std::string_view::npos) break;
    rest.remove_prefix(end);
  }
  if (count < fields.size()) return std::nullopt;
  auto number = [](std::string_view field) { return std::strtoll(std::string(field).c_str(), nullptr, 10); };
  ProcInfo info;
  info.pid = pid;
  info.state = fields[0].empty() ? '?' : fields[0][0];
  info.parent = static_cast<pid_t>(number(fields[1]));
  info.group = static_cast<pid_t>(number(fields[2]));
  info.session = static_cast<pid_t>(number(fields[3]));
  info.start_time = static_cast<uint64_t>(number(fields[19]));
  info.rss_pages = number(fields[21]);
  return info;
}

bool is_dead(char state) { return state == 'Z' || state == 'X' || state == 'x'; }

// What reading a process's environment told.
enum class Carries { yes, no, unknown };

// Whether the environment of `pid` holds the entry `entry` exactly. A process of another
// user has no readable environment: no. An empty read is `unknown`: a process in the
// middle of execve shows an empty environment until the new image has set it up.
Carries carries_entry(pid_t pid, std::string_view entry, bool or_below = false) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/environ", static_cast<int>(pid));
  const Fd file(::open(path, O_RDONLY | O_CLOEXEC));
  if (!file.valid()) return Carries::no;
  // Environments are small; a bound keeps a hostile one from costing us memory.
  constexpr std::size_t kMaxEnvironBytes = 1 << 20;
  std::string text;
  std::array<char, 8192> buffer{};
  while (text.size() < kMaxEnvironBytes) {
    const ssize_t size = ::read(file.get(), buffer.data(), buffer.size());
    if (size < 0 && errno == EINTR) continue;
    if (size < 0) return Carries::no;
    if (size == 0) break;
    text.append(buffer.data(), static_cast<std::size_t>(size));
  }
  if (text.empty()) return Carries::unknown;
  std::string_view rest = text;
  while (!rest.empty()) {
    const auto end = rest.find('\0');
    const std::string_view variable = rest.substr(0, end);
    if (variable == entry) return Carries::yes;
    // A cookie "C.x" is one of C's own (an orchestration's run within its task).
    if (or_below && variable.size() > entry.size() && variable.substr(0, entry.size()) == entry &&
        variable[entry.size()] == '.') {
      return Carries::yes;
    }
    if (end == std::string_view::npos) break;
    rest.remove_prefix(end + 1);
  }
  return Carries::no;
}

// Kernel threads have no environment and are never anyone's descendants.
bool is_kernel_thread(const ProcInfo& info) { return info.pid == 2 || info.parent == 2; }

// Reaps `info` when it is a zombie child of ours that no run() waits for: an orphan of a
// service tree re-parented to us, the subreaper. True when it reaped it.
bool reap_if_adopted_zombie(const ProcInfo& info) {
  if (!is_dead(info.state) || info.parent != ::getpid()) return false;
  auto& registry = leader_registry();
  const std::lock_guard lock(registry.mutex);
  if (registry.leaders.contains(info.pid)) return false;
  return ::waitpid(info.pid, nullptr, WNOHANG) == info.pid;
}

// Calls `visit` with the stat of every process in /proc.
template <class Visit>
void for_each_process(Visit&& visit) {
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) return;
  while (const dirent* entry = ::readdir(proc)) {
    char* end = nullptr;
    const long number = std::strtol(entry->d_name, &end, 10);
    if (number <= 0 || end == nullptr || *end != '\0') continue;
    visit(static_cast<pid_t>(number));
  }
  ::closedir(proc);
}

// Finds the live members of one service tree: its session (the leader included while it
// lives) and, through the cookie in their environment, the descendants that left it
// (setsid after a double fork). Dead members that are our children (orphans re-parented
// to the subreaper) are reaped on the way. A sampling scan skips pids it already saw
// outside the tree; a full scan reads every pid (used before deciding to kill, where a
// pid reused between two scans must not hide a member), but reads the environment of an
// outsider again only when its pid was reused (another start time).
class TreeScanner {
 public:
  TreeScanner(pid_t sid, std::string cookie_entry) : sid_(sid), cookie_entry_(std::move(cookie_entry)) {}

  std::vector<ProcInfo> scan(bool full) {
    std::vector<ProcInfo> members;
    std::unordered_map<pid_t, uint64_t> outsiders;
    undecided_ = false;
    for_each_process([&](pid_t pid) {
      const auto seen_outside = outsiders_.find(pid);
      if (!full && seen_outside != outsiders_.end()) {
        outsiders.emplace(pid, seen_outside->second);
        return;
      }
      const auto info = read_proc_stat(pid);
      if (!info) return;
      const bool in_session = info->session == sid_ || info->group == sid_;
      bool ours = in_session;
      if (!ours) {
        // A zombie's environment is unreadable: an escaped member is remembered by pid and
        // start time once found.
        const auto known = escaped_.find(pid);
        if (known != escaped_.end() && known->second == info->start_time) {
          ours = true;
        } else if (seen_outside == outsiders_.end() || seen_outside->second != info->start_time) {
          ours = is_marked(*info);
          if (!ours && undecided(*info)) return;  // not an outsider yet: read again next scan
        }
      }
      if (!ours) {
        outsiders.emplace(pid, info->start_time);
        return;
      }
      if (!in_session) escaped_[pid] = info->start_time;
      if (is_dead(info->state)) {
        if (pid != sid_) reap_if_adopted_zombie(*info);
        return;
      }
      members.push_back(*info);
    });
    outsiders_ = std::move(outsiders);
    return members;
  }

  // True when the last scan met a process whose environment could not be read yet (it
  // was in execve): it may still turn out to be a member, so the tree is not known empty.
  [[nodiscard]] bool undecided() const { return undecided_; }

 private:
  bool is_marked(const ProcInfo& info) {
    if (cookie_entry_.empty() || is_dead(info.state) || is_kernel_thread(info)) return false;
    const Carries carries = carries_entry(info.pid, cookie_entry_);
    if (carries != Carries::unknown) {
      empty_reads_.erase(info.pid);
      return carries == Carries::yes;
    }
    ++empty_reads_[info.pid];
    return false;
  }

  // A process whose environment read empty is looked at again for a few scans (an exec
  // ends within them); one that stays empty (started with an empty environment) is an
  // outsider after that.
  bool undecided(const ProcInfo& info) {
    // A process that died is decided: it will never exec. (Another run's leader read
    // empty while in execve and is a zombie now: waiting on it held both runs until their
    // kill wait ran out, each waiting for the other's zombie.)
    if (is_dead(info.state)) return false;
    const auto reads = empty_reads_.find(info.pid);
    if (reads == empty_reads_.end() || reads->second > kEmptyEnvironReads) return false;
    undecided_ = true;
    return true;
  }

  static constexpr int kEmptyEnvironReads = 20;

  pid_t sid_;
  std::string cookie_entry_;
  std::unordered_map<pid_t, uint64_t> outsiders_;  // pid -> start time
  std::unordered_map<pid_t, uint64_t> escaped_;    // members outside the session: pid -> start time
  std::unordered_map<pid_t, int> empty_reads_;     // pid -> environment reads that came back empty
  bool undecided_ = false;
};

// Signals the process group, then each member that moved to another group.
void signal_session(pid_t sid, const std::vector<ProcInfo>& members, int sig) {
  ::kill(-sid, sig);
  for (const auto& member : members) {
    if (member.group != sid) ::kill(member.pid, sig);
  }
}

// Kills and reaps the session if run() is left early (a throwing on_line callback), so
// that no exception leaves a service or a zombie behind.
class SessionGuard {
 public:
  SessionGuard(pid_t pid, std::string cookie_entry) : pid_(pid), cookie_entry_(std::move(cookie_entry)) {}
  SessionGuard(const SessionGuard&) = delete;
  SessionGuard& operator=(const SessionGuard&) = delete;
  ~SessionGuard() {
    if (released_) return;
    signal_session(pid_, TreeScanner(pid_, cookie_entry_).scan(true), SIGKILL);
    while (::waitpid(pid_, nullptr, 0) == -1 && errno == EINTR) {
    }
    forget_leader(pid_);
  }
  void release() { released_ = true; }

 private:
  pid_t pid_;
  std::string cookie_entry_;
  bool released_ = false;
};

// --- Output ---

bool is_continuation(char c) { return (static_cast<unsigned char>(c) & 0xC0U) == 0x80U; }

// Splits both streams into lines, appends them to the log (before on_line sees them, so
// a reader told about a line finds it in the file) and keeps the bounded tail.
class OutputSink {
 public:
  OutputSink(const ProcessSpec& spec, Fd log) : spec_(spec), log_(std::move(log)) {}

  // Takes a chunk read from `stream` (0: stdout, 1: stderr).
  void feed(int stream, std::string_view data) {
    std::string& pending = pending_[static_cast<std::size_t>(stream)];
    while (!data.empty()) {
      const auto newline = data.find('\n');
      if (newline == std::string_view::npos) {
        pending.append(data);
        break;
      }
      if (pending.empty()) {
        collect(data.substr(0, newline));
      } else {
        pending.append(data.substr(0, newline));
        collect(pending);
        pending.clear();
      }
      data.remove_prefix(newline + 1);
    }
    while (pending.size() >= kMaxPendingLine) {
      std::size_t cut = kMaxPendingLine;
      // Cut on a character boundary when the last bytes start a multi-byte character.
      while (cut > kMaxPendingLine - 4 && is_continuation(pending[cut])) --cut;
      if (is_continuation(pending[cut])) cut = kMaxPendingLine;
      collect(std::string_view(pending).substr(0, cut));
      pending.erase(0, cut);
    }
    deliver();
  }

  // The stream ended: its unterminated last line becomes a line.
  void finish(int stream) {
    std::string& pending = pending_[static_cast<std::size_t>(stream)];
    if (!pending.empty()) collect(pending);
    pending.clear();
    deliver();
  }

  // The last tail_bytes of the output, valid UTF-8.
  [[nodiscard]] std::string tail() const { return utf8_tail(tail_, spec_.tail_bytes); }

 private:
  void collect(std::string_view raw) {
    ready_.push_back(make_valid_utf8(raw));
  }

  void deliver() {
    if (ready_.empty()) return;
    // The new lines go to the tail, and the same bytes to the log in one write.
    const std::size_t fresh = tail_.size();
    for (const auto& line : ready_) {
      tail_ += line;
      tail_ += '\n';
    }
    write_log(std::string_view(tail_).substr(fresh));
    if (tail_.size() > 2 * spec_.tail_bytes + kReadChunk) {
      // Trimmed on a character boundary: utf8_tail leaves a short enough text as it is.
      std::size_t start = tail_.size() - spec_.tail_bytes;
      while (start < tail_.size() && is_continuation(tail_[start])) ++start;
      tail_.erase(0, start);
    }
    // Cleared before the callbacks so that a throwing callback leaves a consistent sink.
    auto lines = std::move(ready_);
    ready_.clear();
    if (spec_.on_line) {
      for (const auto& line : lines) spec_.on_line(line);
    }
  }

  void write_log(std::string_view rest) {
    while (log_.valid() && !rest.empty()) {
      const ssize_t written = ::write(log_.get(), rest.data(), rest.size());
      if (written < 0 && errno == EINTR) continue;
      if (written <= 0) break;  // a full disk loses log lines, never the run
      rest.remove_prefix(static_cast<std::size_t>(written));
    }
  }

  const ProcessSpec& spec_;
  Fd log_;
  std::array<std::string, 2> pending_;
  std::vector<std::string> ready_;
  std::string tail_;
};

// Reads one chunk from an open stream; closes it (after flushing its last line) at EOF.
// Returns false when nothing was read.
bool read_stream(Fd& stream, int index, OutputSink& sink, std::vector<char>& buffer) {
  if (!stream.valid()) return false;
  const ssize_t size = ::read(stream.get(), buffer.data(), buffer.size());
  if (size > 0) {
    sink.feed(index, std::string_view(buffer.data(), static_cast<std::size_t>(size)));
    return true;
  }
  if (size < 0 && (errno == EAGAIN || errno == EINTR)) return false;
  sink.finish(index);
  stream.reset();
  return false;
}

double seconds(const timeval& t) {
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
}

}  // namespace

ProcessOutcome PosixProcessRunner::run(const ProcessSpec& spec, std::stop_token cancel) {
  ProcessOutcome outcome;
  const auto started_at = Clock::now();
  auto not_started = [&](std::string why) {
    outcome.start_error = std::move(why);
    outcome.wall = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started_at);
    return outcome;
  };
  if (spec.argv.empty()) return not_started("There is no command to run.");
  if (cancel.stop_requested()) {
    outcome.cancelled = true;
    return not_started("The run was cancelled before it started.");
  }

  std::error_code ec;
  fs::path dir = spec.working_dir;
  if (dir.empty()) {
    dir = fs::current_path(ec);
    if (ec) return not_started("Cannot read the current folder: " + ec.message() + ".");
  } else if (!fs::is_directory(dir, ec)) {
    return not_started("The working folder " + dir.string() + " does not exist.");
  }
  auto program = find_program(spec, dir);
  if (!program) return not_started(program.error().message);

  Fd log;
  if (!spec.log_file.empty()) {
    log = Fd(::open(spec.log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
    if (!log.valid()) {
      return not_started("Cannot open the log file " + spec.log_file.string() + ": " +
                         errno_text(errno) + ".");
    }
  }
  auto out_pipe = make_output_pipe();
  if (!out_pipe) return not_started(out_pipe.error().message);
  auto err_pipe = make_output_pipe();
  if (!err_pipe) return not_started(err_pipe.error().message);
  auto input = make_input(spec.stdin_data);
  if (!input) return not_started(input.error().message);
  Fd stdin_fd = std::move(input).value();

  const std::string cookie_entry = std::string(kCookieVariable) + "=" + (spec.cookie.empty() ? random_cookie() : spec.cookie);
  const auto launched = launch(*program, spec, cookie_entry, dir, stdin_fd.get(), out_pipe->write.get(),
                               err_pipe->write.get());
  stdin_fd.reset();
  out_pipe->write.reset();
  err_pipe->write.reset();
  if (!launched) return not_started(launched.error().message);
  const pid_t pid = *launched;
  outcome.started = true;
  SessionGuard guard(pid, cookie_entry);
  if (spec.on_start) spec.on_start();  // the process runs; before any of its output

  OutputSink sink(spec, std::move(log));
  std::array<Fd, 2> streams{std::move(out_pipe->read), std::move(err_pipe->read)};
  Fd exit_fd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));  // readable once it exits
  Fd wake_fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  std::stop_callback on_cancel(cancel, [&wake_fd] {
    const uint64_t one = 1;
    const ssize_t written = ::write(wake_fd.get(), &one, sizeof one);
    (void)written;
  });
  std::vector<char> buffer(kReadChunk);

  const auto deadline =
      spec.timeout.count() > 0 ? started_at + spec.timeout : Clock::time_point::max();
  const int64_t page_kib = std::max<int64_t>(::sysconf(_SC_PAGESIZE) / 1024, 1);
  int64_t peak_pages = 0;
  bool leader_gone = false;
  bool stopping = false;  // SIGTERM was sent (timeout, cancel or stragglers)
  bool kill_sent = false;
  Clock::time_point term_at;
  Clock::time_point kill_at;
  auto next_scan = Clock::now();
  TreeScanner scanner(pid, cookie_entry);

  while (true) {
    // Sleep until output, the leader's exit, a cancel, or the next scan or deadline.
    auto wake_at = next_scan;
    if (!stopping) wake_at = std::min(wake_at, deadline);
    if (stopping && !kill_sent) wake_at = std::min(wake_at, term_at + spec.kill_grace);
    const auto wait = std::clamp(std::chrono::ceil<std::chrono::milliseconds>(wake_at - Clock::now()),
                                 std::chrono::milliseconds(0), std::chrono::milliseconds(kTick));
    std::array<pollfd, 4> fds{};
    nfds_t count = 0;
    for (const auto& stream : streams) {
      if (stream.valid()) fds[count++] = pollfd{stream.get(), POLLIN, 0};
    }
    if (!leader_gone && exit_fd.valid()) fds[count++] = pollfd{exit_fd.get(), POLLIN, 0};
    if (wake_fd.valid() && !stopping) fds[count++] = pollfd{wake_fd.get(), POLLIN, 0};
    ::poll(fds.data(), count, static_cast<int>(wait.count()));

    for (std::size_t i = 0; i < streams.size(); ++i) {
      read_stream(streams[i], static_cast<int>(i), sink, buffer);
    }

    bool leader_just_exited = false;
    if (!leader_gone) {
      siginfo_t info{};
      const int waited = ::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT);
      // ECHILD: someone else reaped it (SIGCHLD ignored in the agent); it is gone too.
      if ((waited == 0 && info.si_pid == pid) || (waited == -1 && errno == ECHILD)) {
        leader_gone = leader_just_exited = true;
      }
    }

    const auto now = Clock::now();
    const bool stop_due = !stopping && (cancel.stop_requested() || now >= deadline);
    if (now < next_scan && !leader_just_exited && !stop_due) continue;

    const auto members = scanner.scan(leader_gone || stopping || stop_due);
    int64_t pages = 0;
    for (const auto& member : members) pages += member.rss_pages;
    peak_pages = std::max(peak_pages, pages);
    if (leader_gone && members.empty() && !scanner.undecided()) break;

    if (stopping) {
      next_scan = now + kStopTick;
      if (!kill_sent && now >= term_at + spec.kill_grace) {
        signal_session(pid, members, SIGKILL);
        kill_sent = true;
        kill_at = now;
      } else if (kill_sent) {
        // Members forked after the last signal get theirs now.
        signal_session(pid, members, SIGKILL);
        if (now - kill_at > kKillWait && leader_gone) break;
      }
      continue;
    }
    next_scan = now + kTick;
    if (cancel.stop_requested()) {
      outcome.cancelled = true;
    } else if (now >= deadline) {
      outcome.timed_out = true;
    } else if (leader_gone) {
      outcome.stragglers_killed = static_cast<int>(members.size());
    } else {
      continue;
    }
    signal_session(pid, members, SIGTERM);
    stopping = true;
    term_at = now;
    next_scan = now + kStopTick;
  }

  // Every writer in the session is gone: what is in the pipes now is all there is,
  // unless a process that left the session holds them, which we do not wait for.
  for (std::size_t i = 0; i < streams.size(); ++i) {
    for (int reads = 0; reads < kMaxDrainReads; ++reads) {
      if (!read_stream(streams[i], static_cast<int>(i), sink, buffer)) break;
    }
    if (streams[i].valid()) {
      sink.finish(static_cast<int>(i));
      streams[i].reset();
    }
  }

  int status = 0;
  rusage usage{};
  pid_t reaped = -1;
  {
    // Reaped and forgotten in one step: were the pid reused by another slot's new leader
    // between the two, forgetting would hand that leader's exit status to the reaper.
    // The leader has exited (every way out of the loop above sees it gone): no wait here.
    auto& registry = leader_registry();
    const std::lock_guard lock(registry.mutex);
    do {
      reaped = ::wait4(pid, &status, 0, &usage);
    } while (reaped == -1 && errno == EINTR);
    registry.leaders.erase(pid);
  }
  guard.release();
  if (reaped == pid) {
    if (WIFEXITED(status)) outcome.exit_code = WEXITSTATUS(status);
    if (WIFSIGNALED(status)) outcome.term_signal = WTERMSIG(status);
    outcome.cpu_seconds = seconds(usage.ru_utime) + seconds(usage.ru_stime);
  }
  outcome.peak_rss_kib = std::max<int64_t>(peak_pages * page_kib, usage.ru_maxrss);
  outcome.output_tail = sink.tail();
  outcome.wall = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started_at);
  return outcome;
}

Result<void> become_child_subreaper() {
  if (::prctl(PR_SET_CHILD_SUBREAPER, 1UL, 0UL, 0UL, 0UL) != 0) {
    return make_error("Cannot become a child subreaper (prctl PR_SET_CHILD_SUBREAPER): " + errno_text(errno) +
                      "; a service process that double-forks away may outlive its task.");
  }
  return {};
}

int reap_adopted_zombies() {
  // No child of ours has ended (the usual case, between tasks): no /proc scan. WNOWAIT
  // leaves the zombie, which may be a leader a run() reaps itself, where it is.
  siginfo_t ended{};
  if (::waitid(P_ALL, 0, &ended, WEXITED | WNOHANG | WNOWAIT) != 0 || ended.si_pid == 0) return 0;
  int reaped = 0;
  for_each_process([&](pid_t pid) {
    const auto info = read_proc_stat(pid);
    if (info && reap_if_adopted_zombie(*info)) ++reaped;
  });
  return reaped;
}

int kill_marked_processes(std::string_view cookie, std::chrono::milliseconds patience) {
  if (cookie.empty()) return 0;
  const std::string entry = std::string(kCookieVariable) + "=" + std::string(cookie);
  const auto give_up_at = Clock::now() + patience;
  std::unordered_set<pid_t> signalled;
  while (true) {
    int alive = 0;
    for_each_process([&](pid_t pid) {
      if (pid == ::getpid() || carries_entry(pid, entry, /*or_below=*/true) != Carries::yes) return;
      ++alive;
      signalled.insert(pid);
      ::kill(pid, SIGKILL);
    });
    reap_adopted_zombies();
    if (alive == 0 || Clock::now() >= give_up_at) break;
    // SIGKILL takes effect when the process is next scheduled; look again shortly.
    std::this_thread::sleep_for(kStopTick);
  }
  return static_cast<int>(signalled.size());
}

}  // namespace proctor
