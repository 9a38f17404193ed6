#pragma once
// ProcessRunner: the one way Proctor starts a service process. The real implementation
// runs it in its own session and process group with a clean environment, streams its
// output, enforces the timeout with SIGTERM-then-SIGKILL to the whole group and measures
// the tree. A recording fake lives in tests/. run() blocks: call it on a worker thread.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.hpp"

namespace proctor {

// The largest ProcessSpec::stdin_data: what any pipe buffer holds (POSIX PIPE_BUF).
constexpr std::size_t kMaxStdinBytes = 4096;

struct ProcessSpec {
  std::vector<std::string> argv;  // argv[0] is an absolute path or found on env's PATH
  std::filesystem::path working_dir;
  std::vector<std::pair<std::string, std::string>> env;  // the whole environment
  std::chrono::milliseconds timeout{0};                  // 0: no timeout
  std::chrono::milliseconds kill_grace{5000};            // SIGTERM to SIGKILL delay
  std::filesystem::path log_file;                        // output appended; empty: none
  std::size_t tail_bytes = 4096;                         // size of ProcessOutcome::output_tail
  // Given to the process on stdin, then end of file (a password for `svn
  // --password-from-stdin`); at most kMaxStdinBytes. Empty: stdin is /dev/null.
  std::string stdin_data;
  // Called once the process has been started (forked and exec'd), before its first
  // output line, on the runner's thread. Not called when it cannot start.
  std::function<void()> on_start;
  // Called with each complete output line (no newline), on the runner's thread.
  std::function<void(std::string_view line)> on_line;
  // Marks every process of the tree: passed as PROCTOR_TASK_COOKIE in the environment,
  // which descendants inherit, so one that leaves the session (setsid after a double
  // fork) is still found, stopped and reaped; and a restarted agent can find what a
  // killed one left running (kill_marked_processes). Empty: a fresh random one.
  std::string cookie;
};

// The environment variable that carries ProcessSpec::cookie.
inline constexpr const char* kCookieVariable = "PROCTOR_TASK_COOKIE";

struct ProcessOutcome {
  bool started = false;
  std::string start_error;          // why it did not start, when !started
  std::optional<int> exit_code;     // set when it exited normally
  std::optional<int> term_signal;   // set when a signal ended it
  bool timed_out = false;           // the timeout fired and the group was stopped
  bool cancelled = false;           // the stop token fired and the group was stopped
  std::chrono::milliseconds wall{0};
  double cpu_seconds = 0;           // user + system time of the tree that was waited for
  int64_t peak_rss_kib = 0;         // peak summed RSS of the process group, in KiB
  std::string output_tail;          // last tail_bytes of stdout+stderr, valid UTF-8
  int stragglers_killed = 0;        // group members still alive after the leader exited
};

class ProcessRunner {
 public:
  virtual ~ProcessRunner() = default;
  // Runs the process to its end (or timeout/cancel) and reports what happened. Never
  // throws for a process that cannot start: returns started=false with the reason.
  virtual ProcessOutcome run(const ProcessSpec& spec, std::stop_token cancel) = 0;
};

// The POSIX implementation (own session and group, stdin from /dev/null, no fd leaks).
class PosixProcessRunner final : public ProcessRunner {
 public:
  ProcessOutcome run(const ProcessSpec& spec, std::stop_token cancel) override;
};

// Makes this process a child subreaper (PR_SET_CHILD_SUBREAPER): descendants orphaned by
// a double fork are re-parented to the agent instead of init, so they stay ours to find,
// kill and reap. Call once at start-up, before any service runs.
Result<void> become_child_subreaper();

// Reaps zombie children of this process that no PosixProcessRunner::run is waiting for
// (orphans re-parented to the subreaper that ended on their own). Never blocks; returns
// how many it reaped.
int reap_adopted_zombies();

// Kills (SIGKILL) every process of this user whose environment carries `cookie`, or a
// cookie below it ("cookie.run-3": an orchestration's runs within a task), and waits up
// to `patience` for them to go; returns how many it signalled.
int kill_marked_processes(std::string_view cookie, std::chrono::milliseconds patience = std::chrono::seconds(5));

}  // namespace proctor
