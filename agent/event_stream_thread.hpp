#pragma once
// EventStreamThread: an EventServer on an event loop of its own thread, for the commands
// that have no loop of their own (`runner exec`, `runner listen`). However the command
// ends — even by an exception — subscribers get what is queued, then the thread is joined.

#include <filesystem>
#include <memory>

#include "common/events.hpp"
#include "common/result.hpp"

namespace proctor {

class EventStreamThread {
 public:
  EventStreamThread();
  // stop().
  ~EventStreamThread();
  EventStreamThread(const EventStreamThread&) = delete;
  EventStreamThread& operator=(const EventStreamThread&) = delete;

  // Serves the event stream on `socket` from a new thread.
  Result<void> start(const std::filesystem::path& socket);
  // Where to publish; null when not started.
  [[nodiscard]] EventSink* sink();
  // Flushes subscribers, closes the stream, joins the thread. Idempotent.
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace proctor
