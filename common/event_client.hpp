#pragma once
// EventClient: a subscriber to an agent's event stream (SPEC §7), the C++ counterpart of
// pyATS's ReportClient.subscribe(callback). The one part of common/ that does I/O, so the
// one common/ header that includes Asio.

#include <cstddef>
#include <filesystem>
#include <functional>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/local/stream_protocol.hpp>

#include "common/events.hpp"
#include "common/result.hpp"

namespace proctor {

// The longest event line a subscriber accepts (without its '\n').
inline constexpr std::size_t kMaxEventLineBytes = 1024 * 1024;

// The server's first line to a subscriber: from here on, it gets every event. The
// client takes it in and does not pass it to the callback.
inline constexpr const char* kSubscribedLine = "{\"event\":\"subscribed\",\"type\":\"event\",\"seq_num\":0}\n";

// The longest path a Unix socket address holds: sun_path's 108 bytes less the final NUL.
inline constexpr std::size_t kMaxUnixSocketPathBytes = 107;

// Ok when `path` fits a Unix socket address (kMaxUnixSocketPathBytes); else an error that
// asks for a shorter path. The agent's server and its subscribers share it.
Result<void> check_socket_path(const std::filesystem::path& path);

// One subscription to the events socket at a path. Not thread-safe: use it from its
// executor's thread.
class EventClient {
 public:
  // Called with each event, in the order the agent sent them; the next line is read when
  // it returns.
  using Callback = std::function<boost::asio::awaitable<void>(const Event&)>;

  // A client for the socket at `socket_path`; nothing is connected before subscribe().
  EventClient(boost::asio::any_io_executor executor, std::filesystem::path socket_path);

  // Connects and calls `callback` with every event until the agent closes the stream or
  // cancel() is called (ok). An error when the socket cannot be reached, when the agent
  // dropped this subscriber (the error carries the agent's reason), when a line is not an
  // event or longer than kMaxEventLineBytes (the stream stops there: skipping would hide
  // lost events), or when the stream ends in the middle of a line. Call it once.
  boost::asio::awaitable<Result<void>> subscribe(Callback callback);

  // Ends a running subscribe() (from the callback too), which then returns ok.
  void cancel();

 private:
  std::filesystem::path socket_path_;
  boost::asio::local::stream_protocol::socket socket_;
  bool cancelled_ = false;
};

}  // namespace proctor
