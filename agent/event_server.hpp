#pragma once
// EventServer: the agent's event stream (SPEC §7). A Unix socket (mode 0600) that sends
// every published event to every connected client as one line of JSON. A slow or stuck
// client never slows the agent: each client has a bounded queue and is dropped when it
// would overflow, after one last line
//   {"event":"dropped","type":"event","seq_num":0,"name":"fell behind by N events"}
// (written within EventServerSettings::flush_timeout if the socket takes it), then closed.
// A client's first line is kSubscribedLine: every event published after it is sent.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>

#include <boost/asio/any_io_executor.hpp>

#include "common/events.hpp"
#include "common/result.hpp"

namespace proctor {

struct EventServerSettings {
  std::size_t max_queued_events = 10000;            // per client, not yet written
  std::size_t max_queued_bytes = 16 * 1024 * 1024;  // per client, not yet written
  std::chrono::milliseconds flush_timeout{1000};    // for the drop line and for stop()'s flush
};

class EventServer final : public EventSink {
 public:
  // Listens on `socket_path` (mode 0600 from the start) and serves clients on `executor`
  // (through a strand of it). A stale socket there is replaced; an error when the path is
  // something else, is served by a live agent, is too long for a Unix socket, or its
  // folder is missing. The executor's context must outlive the server.
  static Result<std::unique_ptr<EventServer>> start(boost::asio::any_io_executor executor,
                                                    std::filesystem::path socket_path,
                                                    EventServerSettings settings = {});

  ~EventServer() override;
  EventServer(const EventServer&) = delete;
  EventServer& operator=(const EventServer&) = delete;

  // Queues `event` for every client, from any thread, without waiting: it is serialized
  // once here and handed to the executor. A no-op after stop().
  void publish(const Event& event) override;

  // Stops accepting, sends each client what is queued for it (within flush_timeout), closes
  // them and removes the socket file. From any thread; idempotent; the destructor calls it.
  void stop();

  // The clients currently subscribed (dropped and closed ones not counted); any thread.
  std::size_t subscriber_count() const;
  // The clients dropped for falling behind since the server started; any thread.
  std::uint64_t dropped_count() const;

 private:
  struct State;  // shared with the coroutines, which may outlive this object

  explicit EventServer(std::shared_ptr<State> state);

  std::shared_ptr<State> state_;
};

}  // namespace proctor
