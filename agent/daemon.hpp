#pragma once
// Daemon: the polling agent. N slots poll the backend, run tasks through the
// TaskExecutor on worker threads and deliver the payloads through the Spool. All
// network I/O runs as coroutines on one Asio thread; blocking work never does.
// SIGTERM/SIGINT: stop taking tasks, let running ones finish within the shutdown grace,
// then stop them (posted as errored); a second signal stops at once.
// Every task taken is recorded in a TaskJournal before it runs: a task handed out twice
// runs once, and one that a killed agent never finished is reported as errored (and its
// leftover processes killed) when the agent starts again.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>

#include <boost/asio/any_io_executor.hpp>

#include "agent/backend_client.hpp"
#include "agent/task_executor.hpp"

namespace proctor {

struct DaemonSettings {
  int concurrent = 1;                                   // slots
  std::chrono::milliseconds check_interval{5000};       // idle poll interval (jittered)
  std::chrono::milliseconds error_backoff{1000};        // first wait after a failure, doubled per failure
  std::chrono::milliseconds max_error_backoff{60000};   // ceiling of the error back-off
  std::chrono::milliseconds shutdown_grace{30000};      // how long running tasks may finish
  std::filesystem::path work_dir;                       // slots/ lives here
  std::filesystem::path spool_dir;                      // pending and rejected payloads
  uint64_t spool_max_bytes = 1ULL << 30;                // full: stop taking tasks (0: no cap)
  std::filesystem::path events_socket;                  // the event stream; empty: none
  bool once = false;                                    // take one task, run it, exit
  std::string backend_origin;                           // shown in the start-up line
  std::string metrics_address;                          // /metrics and /healthz; empty: none
};

// Makes the backend client of one slot (slot -1: the spool flusher).
using BackendClientFactory = std::function<std::unique_ptr<BackendClient>(boost::asio::any_io_executor, int slot)>;

// Exit codes of SPEC §3.
enum ExitCode : int { exit_ok = 0, exit_tests_failed = 1, exit_usage = 2, exit_infrastructure = 3 };

// The exit code a finished task's payload stands for.
int exit_code_for(const ResultPayload& payload);

class Daemon {
 public:
  Daemon(DaemonSettings settings, const TaskExecutor& executor, BackendClientFactory make_client);
  // Polls and runs tasks until shut down (or, with once, until one task is done);
  // returns the process exit code.
  int run();

 private:
  DaemonSettings settings_;
  const TaskExecutor& executor_;
  BackendClientFactory make_client_;
};

}  // namespace proctor
