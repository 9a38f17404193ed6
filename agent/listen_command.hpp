#pragma once
// `runner listen DIR`: follows a results layout that any wrapper writes and prints each
// change (new record, status change, log delta, summary and output rewrites, problems)
// as one JSON line on stdout — and, with an events socket, publishes them on the event
// stream as sections (LayoutEventMapper) — until test_suite.status is set and every
// record is final, the wrapper process ends, or SIGTERM/SIGINT.

#include <filesystem>
#include <optional>

#include <sys/types.h>

namespace proctor {

struct ListenOptions {
  std::filesystem::path dir;          // the results folder: tests.json and a folder per record
  std::optional<pid_t> wrapper_pid;   // stop (after a last look) when this process ends
  std::filesystem::path events_socket;  // the event stream to serve; empty: stdout only
};

// Follows the layout; 0 when it ended with test_suite.status set, 1 when it stopped
// for another reason (wrapper gone, signal), 2 when DIR is not a folder or the events
// socket cannot be served.
int run_listen(const ListenOptions& options);

}  // namespace proctor
