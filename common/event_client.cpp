#include "common/event_client.hpp"

#include <algorithm>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/asio_await.hpp"

namespace proctor {

using stream_protocol = asio::local::stream_protocol;

namespace {

// The first read size; the buffer grows only for a line longer than this.
constexpr std::size_t kInitialBuffer = 64 * 1024;

}  // namespace

Result<void> check_socket_path(const std::filesystem::path& path) {
  const std::string text = path.string();
  if (text.size() <= kMaxUnixSocketPathBytes) return {};
  return make_error("the events socket path " + text + " is " + std::to_string(text.size()) +
                    " bytes long; a Unix socket allows " +
                    std::to_string(kMaxUnixSocketPathBytes) + ": use a shorter work folder");
}

EventClient::EventClient(asio::any_io_executor executor, std::filesystem::path socket_path)
    : socket_path_(std::move(socket_path)), socket_(std::move(executor)) {}

void EventClient::cancel() {
  cancelled_ = true;
  boost::system::error_code ignored;
  socket_.close(ignored);
}

asio::awaitable<Result<void>> EventClient::subscribe(Callback callback) {
  const std::string path = socket_path_.string();
  if (auto fits = check_socket_path(socket_path_); !fits.ok()) co_return std::move(fits);
  if (cancelled_) co_return Result<void>{};
  if (auto [ec] = co_await socket_.async_connect(stream_protocol::endpoint(path), use_tuple); ec) {
    if (cancelled_) co_return Result<void>{};
    co_return make_error("cannot connect to the events socket " + path + " (" + ec.message() +
                         "); is the agent running with this work folder?");
  }

  // Lines are cut out of one buffer in place; the partial line left at the end of a read is
  // moved to the front once per read, not once per line.
  std::vector<char> buffer(kInitialBuffer);
  std::size_t begin = 0;
  std::size_t end = 0;
  for (;;) {
    while (begin < end) {
      const void* newline = std::memchr(buffer.data() + begin, '\n', end - begin);
      if (newline == nullptr) break;
      const auto stop = static_cast<std::size_t>(static_cast<const char*>(newline) - buffer.data());
      const std::string_view line(buffer.data() + begin, stop - begin);
      begin = stop + 1;
      if (line.size() > kMaxEventLineBytes) {
        co_return make_error("the agent sent an event line longer than " +
                             std::to_string(kMaxEventLineBytes) + " bytes; is " + path +
                             " an agent's events socket?");
      }
      auto event = parse_event(line);
      if (!event) {
        co_return make_error("the agent sent a line that is not an event (" +
                             event.error().message + "); is " + path +
                             " an agent's events socket?");
      }
      if (event->event == "dropped" && event->type == "event") {
        co_return make_error("the agent dropped this subscriber: " + event->name);
      }
      if (event->event == "subscribed" && event->type == "event") continue;  // the greeting
      co_await callback(*event);
      if (cancelled_) co_return Result<void>{};
    }
    if (end - begin > kMaxEventLineBytes) {
      co_return make_error("the agent sent an event line longer than " +
                           std::to_string(kMaxEventLineBytes) + " bytes; is " + path +
                           " an agent's events socket?");
    }
    if (begin > 0) {
      std::memmove(buffer.data(), buffer.data() + begin, end - begin);
      end -= begin;
      begin = 0;
    }
    if (end == buffer.size()) buffer.resize(std::min(buffer.size() * 2, kMaxEventLineBytes + 1));

    auto [ec, n] = co_await socket_.async_read_some(
        asio::buffer(buffer.data() + end, buffer.size() - end), use_tuple);
    end += n;
    if (cancelled_) co_return Result<void>{};
    if (ec == asio::error::eof && n == 0) {
      if (end == begin) co_return Result<void>{};
      co_return make_error("the agent closed the event stream in the middle of an event");
    }
    if (ec && n == 0)
      co_return make_error("reading events from " + path + " failed: " + ec.message());
  }
}

}  // namespace proctor
