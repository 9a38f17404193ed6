// PosixProcessRunner against real processes (/bin/sh and /usr/bin/python3). Tests
// synchronise on files and process state, never on sleeps of their own; a `sleep` inside
// a service only keeps that service alive.

#include <doctest/doctest.h>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "agent/process_runner.hpp"
#include "common/text.hpp"
#include "tests/unit/require_ok.hpp"
#include "tests/unit/temp_dir.hpp"

namespace proctor {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr const char* kPython = "/usr/bin/python3";

ProcessSpec make_spec(std::vector<std::string> argv, const test::TempDir& dir) {
  ProcessSpec spec;
  spec.argv = std::move(argv);
  spec.working_dir = dir.path();
  spec.env = {{"PATH", "/usr/bin:/bin"}};
  spec.log_file = dir / "log.txt";
  return spec;
}

ProcessSpec shell_spec(const std::string& script, const test::TempDir& dir) {
  return make_spec({"/bin/sh", "-c", script}, dir);
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

std::string join_lines(const std::vector<std::string>& lines) {
  std::string joined;
  for (const auto& line : lines) joined += line + " ";
  return joined;
}

// Runs `spec` and collects the lines given to on_line.
struct Run {
  ProcessOutcome outcome;
  std::vector<std::string> lines;
};

Run run_collecting(ProcessSpec spec, std::stop_token cancel = {}) {
  Run run;
  spec.on_line = [&run](std::string_view line) { run.lines.emplace_back(line); };
  PosixProcessRunner runner;
  run.outcome = runner.run(spec, std::move(cancel));
  return run;
}

// One process as /proc/PID/stat describes it.
struct Stat {
  pid_t ppid = 0;
  pid_t pgid = 0;
  pid_t sid = 0;
  char state = '?';
};

std::optional<Stat> stat_of(pid_t pid) {
  const std::string text = read_text("/proc/" + std::to_string(pid) + "/stat");
  const auto close = text.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream in(text.substr(close + 1));
  Stat stat;
  in >> stat.state >> stat.ppid >> stat.pgid >> stat.sid;
  if (!in) return std::nullopt;
  return stat;
}

std::vector<pid_t> all_pids() {
  std::vector<pid_t> pids;
  for (const auto& entry : fs::directory_iterator("/proc")) {
    const std::string name = entry.path().filename().string();
    if (!name.empty() && std::all_of(name.begin(), name.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      pids.push_back(static_cast<pid_t>(std::stoi(name)));
    }
  }
  return pids;
}

// Processes of session `sid` that still run (zombies are dead; init reaps orphans).
std::vector<pid_t> live_session_members(pid_t sid) {
  std::vector<pid_t> live;
  for (const pid_t pid : all_pids()) {
    const auto stat = stat_of(pid);
    if (stat && (stat->sid == sid || stat->pgid == sid) && stat->state != 'Z' && stat->state != 'X') {
      live.push_back(pid);
    }
  }
  return live;
}

bool is_alive(pid_t pid) {
  const auto stat = stat_of(pid);
  return stat && stat->state != 'Z' && stat->state != 'X';
}

// True when `pid` is a child of this process that nobody reaped.
bool is_my_zombie(pid_t pid) {
  const auto stat = stat_of(pid);
  return stat && stat->ppid == ::getpid() && stat->state == 'Z';
}

std::size_t open_fd_count() {
  std::size_t count = 0;
  for ([[maybe_unused]] const auto& entry : fs::directory_iterator("/proc/self/fd")) ++count;
  return count;
}

// Valid UTF-8 with no NUL (proctor::is_valid_utf8 allows NUL).
bool is_valid_utf8_text(std::string_view s) { return proctor::is_valid_utf8(s) && s.find('\0') == std::string_view::npos; }

pid_t first_line_pid(const Run& run) {
  REQUIRE_FALSE(run.lines.empty());
  return static_cast<pid_t>(std::stoi(run.lines.front()));
}

}  // namespace

TEST_SUITE("process_runner") {

TEST_CASE("reports the exit code of a process that exits normally") {
  test::TempDir dir;
  for (const int code : {0, 3}) {
    const auto run = run_collecting(shell_spec("exit " + std::to_string(code), dir));
    CHECK(run.outcome.started);
    REQUIRE(run.outcome.exit_code.has_value());
    CHECK(*run.outcome.exit_code == code);
    CHECK_FALSE(run.outcome.term_signal.has_value());
    CHECK_FALSE(run.outcome.timed_out);
    CHECK_FALSE(run.outcome.cancelled);
  }
}

TEST_CASE("stdin_data reaches the process, then end of file") {
  test::TempDir dir;
  auto spec = shell_spec("read -r line; echo \"got:$line\"; cat; echo done", dir);
  spec.stdin_data = "s3cret\nrest\n";
  auto run = run_collecting(spec);
  CHECK(run.outcome.exit_code == 0);
  CHECK(run.lines == std::vector<std::string>{"got:s3cret", "rest", "done"});
  spec.stdin_data = std::string(kMaxStdinBytes + 1, 'x');
  run = run_collecting(spec);
  CHECK_FALSE(run.outcome.started);
  CHECK(run.outcome.start_error.find("larger than " + std::to_string(kMaxStdinBytes) + " bytes") != std::string::npos);
}

TEST_CASE("reports the signal that ended the process") {
  test::TempDir dir;
  const auto run = run_collecting(shell_spec("kill -USR1 $$", dir));
  CHECK(run.outcome.started);
  CHECK_FALSE(run.outcome.exit_code.has_value());
  REQUIRE(run.outcome.term_signal.has_value());
  CHECK(*run.outcome.term_signal == SIGUSR1);
}

TEST_CASE("appends stdout and stderr lines to the log and on_line in arrival order") {
  test::TempDir dir;
  const fs::path log = dir / "log.txt";
  { std::ofstream(log) << "earlier run\n"; }
  // Each line is written only once the previous one is in the log, so the order of
  // arrival is known; the last line has no newline and must be flushed at the end.
  const std::string script = R"(
import os, sys
log = os.environ['LOG']
def emit(stream, text):
    stream.write(text); stream.flush()
    while text.rstrip('\n') not in open(log).read(): pass
emit(sys.stdout, 'out-1\n')
emit(sys.stderr, 'err-1\n')
emit(sys.stdout, 'out-2\n')
emit(sys.stderr, 'err-2\n')
sys.stdout.write('last-without-newline')
)";
  auto spec = make_spec({kPython, "-c", script}, dir);
  spec.env.emplace_back("LOG", log.string());
  const auto run = run_collecting(spec);
  CHECK(run.outcome.exit_code == 0);
  INFO("lines: " << join_lines(run.lines));
  const std::vector<std::string> expected{"out-1", "err-1", "out-2", "err-2", "last-without-newline"};
  CHECK(run.lines == expected);
  CHECK(read_text(log) == "earlier run\nout-1\nerr-1\nout-2\nerr-2\nlast-without-newline\n");
}

TEST_CASE("keeps a bounded, valid UTF-8 tail when the output holds NUL and invalid bytes") {
  test::TempDir dir;
  // Mostly 3-byte characters, so that cutting the output anywhere is likely to fall in
  // the middle of one; a few runs, because where the reads split it varies.
  const std::string script = R"(
import sys
out = sys.stdout.buffer
for i in range(5000):
    out.write(('line %d caf\u00e9 ' % i + '\u20ac' * 20 + '\n').encode())
out.write(b'bad \x00 nul \xff\xfe \xc3( \xe2\x82 end\n')
)";
  auto spec = make_spec({kPython, "-c", script}, dir);
  spec.tail_bytes = 1001;
  for (int attempt = 0; attempt < 4; ++attempt) {
    const auto run = run_collecting(spec);
    CHECK(run.outcome.exit_code == 0);
    CHECK(run.outcome.output_tail.size() <= 1001);
    CHECK(run.outcome.output_tail.size() > 900);
    CHECK(is_valid_utf8_text(run.outcome.output_tail));
    CHECK(run.outcome.output_tail.find("line 4999 caf\u00e9 \u20ac") != std::string::npos);
    CHECK(run.outcome.output_tail.find(" end\n") != std::string::npos);
    REQUIRE(run.lines.size() == 5001);
    CHECK(is_valid_utf8_text(run.lines.back()));
    CHECK(run.lines.back().find("\xEF\xBF\xBD") != std::string::npos);  // U+FFFD replaced them
  }
  CHECK(is_valid_utf8_text(read_text(dir / "log.txt")));
}

TEST_CASE("streams 10 MB of stdout and stderr without deadlock") {
  test::TempDir dir;
  // 100-byte lines, alternating between the streams in 64 KiB blocks.
  const std::string script = R"(
import sys
line = 'x' * 99 + '\n'
block = line * 655
for i in range(160):
    (sys.stdout if i % 2 == 0 else sys.stderr).write(block)
)";
  auto spec = make_spec({kPython, "-c", script}, dir);
  std::size_t lines = 0;
  std::size_t bytes = 0;
  spec.on_line = [&](std::string_view line) {
    ++lines;
    bytes += line.size() + 1;
  };
  const auto outcome = PosixProcessRunner{}.run(spec, {});
  CHECK(outcome.exit_code == 0);
  CHECK(lines == 160U * 655U);
  CHECK(bytes == 160U * 655U * 100U);
  CHECK(fs::file_size(dir / "log.txt") == 160U * 655U * 100U);
  CHECK(outcome.output_tail.size() <= spec.tail_bytes);
}

TEST_CASE("emits a 2 MB line without newline in bounded pieces") {
  test::TempDir dir;
  const std::string script = R"(
import sys
sys.stdout.write('y' * (2 * 1024 * 1024))
sys.stdout.write('\nend\n')
)";
  const auto run = run_collecting(make_spec({kPython, "-c", script}, dir));
  CHECK(run.outcome.exit_code == 0);
  REQUIRE(run.lines.size() >= 2);
  CHECK(run.lines.back() == "end");
  std::size_t total = 0;
  std::size_t longest = 0;
  for (std::size_t i = 0; i + 1 < run.lines.size(); ++i) {
    CHECK(run.lines[i].find_first_not_of('y') == std::string::npos);
    total += run.lines[i].size();
    longest = std::max(longest, run.lines[i].size());
  }
  CHECK(total == 2U * 1024U * 1024U);
  CHECK(longest <= 64U * 1024U);
  CHECK(run.lines.size() > 2);
  CHECK(fs::file_size(dir / "log.txt") == 2U * 1024U * 1024U + (run.lines.size() - 1) + 4U);
}

TEST_CASE("gives the child exactly the given environment, plus the tree's cookie, and finds argv[0] on its PATH") {
  test::TempDir dir;
  fs::create_directories(dir / "bin");
  const fs::path tool = dir / "bin" / "proctor-show-env";
  { std::ofstream(tool) << "#!/bin/sh\nexec env\n"; }
  fs::permissions(tool, fs::perms::owner_all);
  auto spec = make_spec({"proctor-show-env"}, dir);
  // A cookie in the given environment is replaced by the spec's own.
  spec.env = {{"PATH", (dir / "bin").string() + ":/usr/bin:/bin"}, {"FOO", "bar baz"}, {kCookieVariable, "stale"}};
  spec.cookie = "c00k1e";
  const auto run = run_collecting(spec);
  CHECK(run.outcome.exit_code == 0);
  auto seen = run.lines;
  std::sort(seen.begin(), seen.end());
  // dash adds PWD when the environment lacks it; nothing of the agent's own appears.
  seen.erase(std::remove_if(seen.begin(), seen.end(),
                            [](const std::string& l) { return l.rfind("PWD=", 0) == 0; }),
             seen.end());
  INFO("environment: " << join_lines(seen));
  const std::vector<std::string> expected{"FOO=bar baz", "PATH=" + (dir / "bin").string() + ":/usr/bin:/bin",
                                          std::string(kCookieVariable) + "=c00k1e"};
  CHECK(seen == expected);
}

TEST_CASE("runs the child in the given working folder") {
  test::TempDir dir;
  fs::create_directories(dir / "work");
  auto spec = make_spec({"pwd", "-P"}, dir);
  spec.working_dir = dir / "work";
  const auto run = run_collecting(spec);
  CHECK(run.outcome.exit_code == 0);
  REQUIRE(run.lines.size() == 1);
  CHECK(run.lines[0] == fs::canonical(dir / "work").string());
}

TEST_CASE("gives the child /dev/null as stdin so that cat ends at once") {
  test::TempDir dir;
  const auto cat = run_collecting(make_spec({"cat"}, dir));
  CHECK(cat.outcome.exit_code == 0);
  CHECK(cat.lines.empty());
  const auto link = run_collecting(shell_spec("readlink /proc/$$/fd/0", dir));
  CHECK(link.lines == std::vector<std::string>{"/dev/null"});
}

TEST_CASE("starts the child in its own session and process group") {
  test::TempDir dir;
  const auto run = run_collecting(
      make_spec({kPython, "-c", "import os; print(os.getpid(), os.getpgid(0), os.getsid(0))"}, dir));
  CHECK(run.outcome.exit_code == 0);
  REQUIRE(run.lines.size() == 1);
  std::istringstream in(run.lines[0]);
  pid_t pid = 0, pgid = 0, sid = 0;
  in >> pid >> pgid >> sid;
  CHECK(pid > 0);
  CHECK(pgid == pid);
  CHECK(sid == pid);
  CHECK(sid != ::getsid(0));
}

TEST_CASE("the child starts with no signal blocked or ignored, whatever the calling thread has") {
  test::TempDir dir;
  // The agent's workers block SIGINT/SIGTERM and the process ignores SIGPIPE: none of it
  // may reach a service, or SIGTERM would not stop it.
  sigset_t blocked;
  sigset_t previous_mask;
  sigemptyset(&blocked);
  sigaddset(&blocked, SIGTERM);
  sigaddset(&blocked, SIGINT);
  REQUIRE(::pthread_sigmask(SIG_BLOCK, &blocked, &previous_mask) == 0);
  struct sigaction ignore {};
  struct sigaction previous_action {};
  ignore.sa_handler = SIG_IGN;
  REQUIRE(::sigaction(SIGUSR2, &ignore, &previous_action) == 0);
  const auto run = run_collecting(shell_spec("grep -E '^Sig(Blk|Ign):' /proc/self/status", dir));
  ::sigaction(SIGUSR2, &previous_action, nullptr);
  ::pthread_sigmask(SIG_SETMASK, &previous_mask, nullptr);
  CHECK(run.outcome.exit_code == 0);
  INFO(join_lines(run.lines));
  REQUIRE(run.lines.size() == 2);
  CHECK(run.lines[0] == "SigBlk:\t0000000000000000");
  // Signals 32 and 33 are glibc's own (its threads' cancellation and set*id): posix_spawn
  // leaves them ignored, and the child's libc installs its handlers for them at start.
  REQUIRE(run.lines[1].rfind("SigIgn:\t", 0) == 0);
  const unsigned long long ignored = std::stoull(run.lines[1].substr(8), nullptr, 16);
  CHECK((ignored & ~((1ULL << 31) | (1ULL << 32))) == 0);
}

TEST_CASE("does not leak a descriptor of the parent into the child") {
  test::TempDir dir;
  // Deliberately inheritable: only the runner's closing in the child keeps it out.
  const int leaky = ::open("/dev/null", O_RDONLY);
  REQUIRE(leaky >= 0);
  const auto run = run_collecting(shell_spec("ls /proc/$$/fd", dir));
  ::close(leaky);
  CHECK(run.outcome.exit_code == 0);
  INFO("descriptors open in the child: " << join_lines(run.lines));
  CHECK(run.lines == std::vector<std::string>{"0", "1", "2"});
}

TEST_CASE("kills every process of the session when the timeout fires") {
  test::TempDir dir;
  // Children, and an orphaned grandchild of a subshell; each prints its pid.
  auto spec = shell_spec(
      "echo $$; sleep 300 & echo $!; sleep 300 & echo $!; (sleep 300 & echo $!); echo started; wait", dir);
  spec.timeout = 1000ms;
  spec.kill_grace = 5000ms;
  const auto run = run_collecting(spec);
  CHECK(run.outcome.started);
  CHECK(run.outcome.timed_out);
  CHECK_FALSE(run.outcome.cancelled);
  CHECK(run.outcome.term_signal == SIGTERM);
  CHECK(run.outcome.wall >= 1000ms);
  CHECK(run.outcome.wall < 4000ms);  // SIGTERM sufficed: no wait for the grace
  REQUIRE(run.lines.size() == 5);
  CHECK(run.lines.back() == "started");
  const pid_t sid = first_line_pid(run);
  for (std::size_t i = 1; i < 4; ++i) CHECK_FALSE(is_alive(std::stoi(run.lines[i])));
  CHECK(live_session_members(sid).empty());
  CHECK_FALSE(is_my_zombie(sid));
}

TEST_CASE("sends SIGKILL after the grace to a service that ignores SIGTERM") {
  test::TempDir dir;
  auto spec = shell_spec("trap '' TERM; echo $$; while :; do sleep 1; done", dir);
  spec.timeout = 300ms;
  spec.kill_grace = 400ms;
  const auto run = run_collecting(spec);
  CHECK(run.outcome.timed_out);
  CHECK(run.outcome.term_signal == SIGKILL);
  CHECK(run.outcome.wall >= 700ms);
  CHECK(live_session_members(first_line_pid(run)).empty());
}

TEST_CASE("stops the whole session, even a member that left the group, when cancelled") {
  test::TempDir dir;
  // The grandchild leaves the process group but stays in the session, then reports on
  // stdout; the test cancels the moment that line arrives.
  const std::string grandchild =
      "import os, time; os.setpgid(0, 0); "
      "print('marker %d %d %d' % (os.getpid(), os.getpgid(0), os.getsid(0)), flush=True); time.sleep(300)";
  auto spec = shell_spec("echo $$; /usr/bin/python3 -c \"" + grandchild + "\" & wait", dir);
  std::stop_source stop;
  Run run;
  spec.on_line = [&](std::string_view line) {
    run.lines.emplace_back(line);
    if (line.rfind("marker ", 0) == 0) stop.request_stop();
  };
  PosixProcessRunner runner;
  run.outcome = runner.run(spec, stop.get_token());
  REQUIRE(run.lines.size() == 2);
  CHECK(run.outcome.cancelled);
  CHECK_FALSE(run.outcome.timed_out);
  const pid_t sid = first_line_pid(run);
  std::istringstream in(run.lines[1].substr(std::string("marker ").size()));
  pid_t pid = 0, pgid = 0, its_sid = 0;
  in >> pid >> pgid >> its_sid;
  CHECK(pgid == pid);   // it had left the group...
  CHECK(its_sid == sid);  // ...but not the session
  CHECK_FALSE(is_alive(pid));
  CHECK(live_session_members(sid).empty());
  CHECK_FALSE(is_my_zombie(sid));
}

TEST_CASE("as a subreaper, kills and reaps a descendant that double-forked into a session of its own") {
  REQUIRE_OK(become_child_subreaper());
  test::TempDir dir;
  // `setsid -f` forks and starts a new session: the escapee is in neither the service's
  // group nor its session, and its parent (setsid) is gone at once, so it is re-parented.
  // The leader waits for the escapee's pid file, then reports it and exits 0.
  auto spec = shell_spec(
      "setsid -f /bin/sh -c 'echo $$ > escapee.tmp; mv escapee.tmp escapee; exec sleep 1000'; "
      "while [ ! -s escapee ]; do sleep 0.01; done; cat escapee",
      dir);
  spec.kill_grace = 5000ms;
  const auto run = run_collecting(spec);
  CHECK(run.outcome.exit_code == 0);
  REQUIRE(run.lines.size() == 1);
  const auto escapee = static_cast<pid_t>(std::stoi(run.lines[0]));
  CHECK(run.outcome.stragglers_killed == 1);
  CHECK_FALSE(is_alive(escapee));
  CHECK_FALSE(is_my_zombie(escapee));  // reaped by the runner, not left for init
}

TEST_CASE("kill_marked_processes kills what carries the cookie (or one below it) and nothing else") {
  const std::string cookie = "test-cookie-" + std::to_string(::getpid());
  auto spawn_sleep = [](std::vector<std::string> env_entries) {
    std::vector<char*> argv{const_cast<char*>("/bin/sleep"), const_cast<char*>("1000"), nullptr};
    std::vector<char*> envp;
    for (auto& entry : env_entries) envp.push_back(entry.data());
    envp.push_back(nullptr);
    pid_t pid = 0;
    REQUIRE(::posix_spawn(&pid, "/bin/sleep", nullptr, nullptr, argv.data(), envp.data()) == 0);
    return pid;
  };
  std::vector<std::string> marked_env{std::string(kCookieVariable) + "=" + cookie};
  std::vector<std::string> other_env{std::string(kCookieVariable) + "=" + cookie + "-other"};
  // An orchestration's run within the task: a cookie below the task's.
  std::vector<std::string> below_env{std::string(kCookieVariable) + "=" + cookie + ".3-1"};
  const pid_t marked = spawn_sleep(marked_env);
  const pid_t other = spawn_sleep(other_env);
  const pid_t below = spawn_sleep(below_env);
  // The environment is readable once exec is done: wait for the new image, not a time.
  // Until the child runs /bin/sleep (its environment is the exec'd one then); bounded.
  auto wait_exec = [](pid_t pid) {
    const auto give_up_at = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (read_text("/proc/" + std::to_string(pid) + "/cmdline").rfind("/bin/sleep", 0) != 0) {
      REQUIRE(std::chrono::steady_clock::now() < give_up_at);
      std::this_thread::yield();
    }
  };
  wait_exec(marked);
  wait_exec(other);
  wait_exec(below);
  CHECK(kill_marked_processes(cookie) == 2);
  CHECK_FALSE(is_alive(marked));
  CHECK_FALSE(is_alive(below));
  CHECK_FALSE(is_my_zombie(marked));  // reaped as an adopted zombie
  CHECK(is_alive(other));
  ::kill(other, SIGKILL);
  int status = 0;
  CHECK(::waitpid(other, &status, 0) == other);
}

TEST_CASE("reap_adopted_zombies reaps a finished child no run waits for") {
  pid_t pid = 0;
  std::vector<char*> argv{const_cast<char*>("/bin/true"), nullptr};
  std::vector<char*> envp{nullptr};
  REQUIRE(::posix_spawn(&pid, "/bin/true", nullptr, nullptr, argv.data(), envp.data()) == 0);
  siginfo_t info{};
  // Wait until it is a zombie, without reaping it.
  REQUIRE(::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOWAIT) == 0);
  CHECK(is_my_zombie(pid));
  CHECK(reap_adopted_zombies() >= 1);
  CHECK_FALSE(is_my_zombie(pid));
}

TEST_CASE("does not start when cancelled before the start") {
  test::TempDir dir;
  std::stop_source stop;
  stop.request_stop();
  const auto run = run_collecting(shell_spec("touch started", dir), stop.get_token());
  CHECK_FALSE(run.outcome.started);
  CHECK(run.outcome.cancelled);
  CHECK_FALSE(fs::exists(dir / "started"));
}

TEST_CASE("kills stragglers left by a leader that exited and returns promptly") {
  test::TempDir dir;
  auto spec = shell_spec("echo $$; sleep 1000 & echo $!; echo hi", dir);
  spec.kill_grace = 10000ms;
  const auto run = run_collecting(spec);
  CHECK(run.outcome.exit_code == 0);
  CHECK(run.outcome.stragglers_killed == 1);
  CHECK_FALSE(run.outcome.timed_out);
  CHECK(run.outcome.wall < 5000ms);  // neither the straggler's pipe nor the grace held it
  REQUIRE(run.lines.size() == 3);
  CHECK(run.lines[2] == "hi");
  CHECK_FALSE(is_alive(std::stoi(run.lines[1])));
  CHECK(live_session_members(first_line_pid(run)).empty());
  CHECK_FALSE(is_my_zombie(first_line_pid(run)));
}

TEST_CASE("kills and reaps the service when the on_line callback throws") {
  test::TempDir dir;
  auto spec = shell_spec("echo $$; exec sleep 300", dir);
  pid_t pid = 0;
  spec.on_line = [&pid](std::string_view line) {
    pid = static_cast<pid_t>(std::stoi(std::string(line)));
    throw std::runtime_error("consumer failed");
  };
  CHECK_THROWS_AS(PosixProcessRunner{}.run(spec, {}), std::runtime_error);
  REQUIRE(pid > 0);
  CHECK(live_session_members(pid).empty());
  CHECK_FALSE(is_my_zombie(pid));
}

TEST_CASE("measures the peak memory of a python child that allocates 80 MB") {
  test::TempDir dir;
  const auto run = run_collecting(
      make_spec({kPython, "-c", "b = b'x' * (80 * 1024 * 1024); print(len(b))"}, dir));
  CHECK(run.outcome.exit_code == 0);
  CHECK(run.outcome.peak_rss_kib >= 60 * 1024);
}

TEST_CASE("sums the memory of session members that run at the same time") {
  test::TempDir dir;
  // Two children of 40 MB each; both hold it until the other has it too, then a little
  // longer so the sampler sees them together. No single process ever reaches 60 MB.
  const std::string child =
      "import os, sys, time; b = b'x' * (40 * 1024 * 1024); open(sys.argv[1], 'w').close(); "
      "[time.sleep(0.01) for _ in iter(lambda: os.path.exists('a') and os.path.exists('b'), True)]; "
      "time.sleep(0.3)";
  auto spec = shell_spec("/usr/bin/python3 -c \"" + child + "\" a & /usr/bin/python3 -c \"" + child +
                             "\" b; wait",
                         dir);
  const auto run = run_collecting(spec);
  CHECK(run.outcome.exit_code == 0);
  CHECK(run.outcome.peak_rss_kib >= 80 * 1024);
}

TEST_CASE("measures the cpu time of a busy child") {
  test::TempDir dir;
  const auto run = run_collecting(make_spec(
      {kPython, "-c", "import time\nwhile time.process_time() < 0.3: pass"}, dir));
  CHECK(run.outcome.exit_code == 0);
  CHECK(run.outcome.cpu_seconds >= 0.25);
  CHECK(run.outcome.wall.count() >= 250);
}

TEST_CASE("reports a missing executable without starting") {
  test::TempDir dir;
  const auto absolute = run_collecting(make_spec({"/nonexistent/proctor-tool"}, dir));
  CHECK_FALSE(absolute.outcome.started);
  CHECK(absolute.outcome.start_error.find("/nonexistent/proctor-tool") != std::string::npos);
  const auto on_path = run_collecting(make_spec({"proctor-no-such-tool"}, dir));
  CHECK_FALSE(on_path.outcome.started);
  CHECK(on_path.outcome.start_error.find("proctor-no-such-tool") != std::string::npos);
  CHECK_FALSE(on_path.outcome.exit_code.has_value());
}

TEST_CASE("reports a program the system cannot execute and reaps the forked child") {
  test::TempDir dir;
  const fs::path bogus = dir / "bogus";
  { std::ofstream(bogus) << "\x7f" "ELF not really"; }
  fs::permissions(bogus, fs::perms::owner_all);
  const std::size_t fds_before = open_fd_count();
  const auto run = run_collecting(make_spec({bogus.string()}, dir));
  CHECK_FALSE(run.outcome.started);
  INFO("start error: " << run.outcome.start_error);
  CHECK(run.outcome.start_error.find("bogus") != std::string::npos);
  CHECK(run.outcome.start_error.find("format") != std::string::npos);  // ENOEXEC's text
  CHECK(open_fd_count() == fds_before);
  std::vector<pid_t> zombies;
  for (const pid_t pid : all_pids()) {
    if (is_my_zombie(pid)) zombies.push_back(pid);
  }
  CHECK(zombies.empty());
}

TEST_CASE("returns when a process that left the session and dropped its environment keeps the output pipe open") {
  test::TempDir dir;
  // env -i drops the cookie, then setsid(1) puts sleep in a session of its own (in that
  // order: never outside the session with the cookie, even for an instant): out of the
  // runner's reach, but it holds the pipe; run() must not wait for an end of file that
  // would never come. The leader waits until the escaped process has its new session.
  const auto run = run_collecting(shell_spec(
      "env -i /usr/bin/setsid /bin/sh -c 'echo $$ > escaped.tmp; mv escaped.tmp escaped; exec sleep 300' & "
      "while [ ! -e escaped ]; do sleep 0.01; done; cat escaped; echo bye",
      dir));
  REQUIRE(run.lines.size() == 2);
  const pid_t escaped = static_cast<pid_t>(std::stoi(run.lines[0]));
  const bool was_alive = is_alive(escaped);
  ::kill(escaped, SIGKILL);  // the test's own cleanup
  CHECK(run.outcome.exit_code == 0);
  CHECK(run.lines[1] == "bye");
  CHECK(run.outcome.wall < 5000ms);
  CHECK(was_alive);
  CHECK(run.outcome.stragglers_killed == 0);
}

TEST_CASE("reports a missing working folder without starting") {
  test::TempDir dir;
  auto spec = shell_spec("exit 0", dir);
  spec.working_dir = dir / "missing";
  const auto run = run_collecting(spec);
  CHECK_FALSE(run.outcome.started);
  CHECK(run.outcome.start_error.find("missing") != std::string::npos);
}

TEST_CASE("runs several services at once on different threads") {
  test::TempDir dir;
  constexpr int kRuns = 4;
  std::vector<Run> runs(kRuns);
  std::vector<std::thread> threads;
  for (int i = 0; i < kRuns; ++i) {
    auto spec = shell_spec("echo $$; sleep 100 & i=0; while [ $i -lt 2000 ]; do echo run-" +
                               std::to_string(i) + "-$i; i=$((i+1)); done",
                           dir);
    spec.log_file = dir / ("log-" + std::to_string(i) + ".txt");
    threads.emplace_back([&runs, i, spec] { runs[static_cast<std::size_t>(i)] = run_collecting(spec); });
  }
  for (auto& thread : threads) thread.join();
  for (int i = 0; i < kRuns; ++i) {
    const auto& run = runs[static_cast<std::size_t>(i)];
    CHECK(run.outcome.exit_code == 0);
    CHECK(run.outcome.stragglers_killed == 1);
    REQUIRE(run.lines.size() == 2001);
    CHECK(run.lines.back() == "run-" + std::to_string(i) + "-1999");
    CHECK(lines_of(read_text(dir / ("log-" + std::to_string(i) + ".txt"))) == run.lines);
    CHECK(live_session_members(first_line_pid(run)).empty());
    CHECK_FALSE(is_my_zombie(first_line_pid(run)));
  }
}

TEST_CASE("leaves no zombie and no open descriptor after 50 runs") {
  test::TempDir dir;
  const std::size_t fds_before = open_fd_count();
  std::vector<pid_t> pids;
  for (int i = 0; i < 50; ++i) {
    // Every other run leaves a straggler behind.
    const auto run = run_collecting(shell_spec(i % 2 == 0 ? "echo $$" : "echo $$; sleep 100 &", dir));
    REQUIRE(run.outcome.exit_code == 0);
    pids.push_back(first_line_pid(run));
  }
  CHECK(open_fd_count() == fds_before);
  for (const pid_t pid : pids) {
    CHECK_FALSE(is_my_zombie(pid));
    CHECK(live_session_members(pid).empty());
  }
  CHECK(lines_of(read_text(dir / "log.txt")).size() == 50);
}

}  // TEST_SUITE

}  // namespace proctor
