#include "agent/event_stream_thread.hpp"

#include <thread>

#include <boost/asio/io_context.hpp>

#include "agent/event_server.hpp"

namespace proctor {

struct EventStreamThread::Impl {
  boost::asio::io_context io{1};
  std::unique_ptr<EventServer> server;
  std::thread thread;
};

EventStreamThread::EventStreamThread() : impl_(std::make_unique<Impl>()) {}

EventStreamThread::~EventStreamThread() { stop(); }

Result<void> EventStreamThread::start(const std::filesystem::path& socket) {
  auto server = EventServer::start(impl_->io.get_executor(), socket);
  if (!server) return server.error();
  impl_->server = std::move(server).value();
  impl_->thread = std::thread([this] { impl_->io.run(); });
  return {};
}

EventSink* EventStreamThread::sink() { return impl_->server.get(); }

void EventStreamThread::stop() {
  if (!impl_->server) return;
  impl_->server->stop();  // subscribers get every event, then the stream closes and the loop ends
  if (impl_->thread.joinable()) impl_->thread.join();
}

}  // namespace proctor
