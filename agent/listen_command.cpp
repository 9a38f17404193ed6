#include "agent/listen_command.hpp"

#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include "agent/event_stream_thread.hpp"
#include "agent/layout_listener.hpp"
#include "common/layout_events.hpp"

namespace proctor {

int run_listen(const ListenOptions& options) {
  std::error_code ec;
  if (!std::filesystem::is_directory(options.dir, ec) ||
      ::access(options.dir.c_str(), R_OK | X_OK) != 0) {
    std::fprintf(
        stderr,
        "runner listen: %s is not a readable folder; create the results folder before starting the "
        "listener (tests.json may come later)\n",
        options.dir.c_str());
    return 2;
  }
  // SIGTERM/SIGINT become a readable fd, so the loop waits on one poll() and still takes
  // its last look before it ends.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  if (::sigprocmask(SIG_BLOCK, &stop_signals, nullptr) != 0) {
    std::fprintf(stderr, "runner listen: cannot block SIGTERM: %s\n", std::strerror(errno));
    return 3;
  }
  const int stop_fd = ::signalfd(-1, &stop_signals, SFD_CLOEXEC);
  if (stop_fd < 0) {
    std::fprintf(stderr, "runner listen: cannot receive signals: %s\n", std::strerror(errno));
    return 3;
  }
  // The event stream, when asked for: served from a thread of its own.
  EventStreamThread events;
  if (!options.events_socket.empty()) {
    if (auto started = events.start(options.events_socket); !started) {
      std::fprintf(stderr, "runner listen: %s\n", started.error().message.c_str());
      ::close(stop_fd);
      return 2;
    }
  }
  LayoutEventMapper mapper(std::filesystem::absolute(options.dir).lexically_normal().string());

  ListenLoopOptions loop;
  loop.dir = options.dir;
  loop.wrapper_pid = options.wrapper_pid;
  loop.stop_fd = stop_fd;
  const auto ended = listen_layout(loop, [&](const nlohmann::ordered_json& change) {
    std::string line = to_change_line(change);
    line += '\n';
    std::fwrite(line.data(), 1, line.size(), stdout);
    std::fflush(stdout);  // a reader acts on each change as it comes
    if (EventSink* sink = events.sink()) {
      for (const auto& event : mapper.events_for(change)) sink->publish(event);
    }
  });
  ::close(stop_fd);
  if (!ended) {
    std::fprintf(stderr, "runner listen: %s\n", ended.error().message.c_str());
    return 3;
  }
  return *ended == ListenEnd::suite_finished ? 0 : 1;
}

}  // namespace proctor
