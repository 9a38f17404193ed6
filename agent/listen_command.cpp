#include "agent/listen_command.hpp"

#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include <thread>

#include <boost/asio/io_context.hpp>

#include "agent/event_server.hpp"
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
  boost::asio::io_context events_io(1);
  std::unique_ptr<EventServer> events;
  std::thread events_thread;
  if (!options.events_socket.empty()) {
    auto server = EventServer::start(events_io.get_executor(), options.events_socket);
    if (!server) {
      std::fprintf(stderr, "runner listen: %s\n", server.error().message.c_str());
      ::close(stop_fd);
      return 2;
    }
    events = std::move(server).value();
    events_thread = std::thread([&events_io] { events_io.run(); });
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
    if (events) {
      for (const auto& event : mapper.events_for(change)) events->publish(event);
    }
  });
  ::close(stop_fd);
  if (events) {
    events->stop();  // subscribers get every event, then the stream closes and the loop ends
    events_thread.join();
  }
  if (!ended) {
    std::fprintf(stderr, "runner listen: %s\n", ended.error().message.c_str());
    return 3;
  }
  return *ended == ListenEnd::suite_finished ? 0 : 1;
}

}  // namespace proctor
