#include "agent/event_server.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <deque>
#include <exception>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <spdlog/spdlog.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>

#include "common/asio_await.hpp"
#include "common/event_client.hpp"

namespace proctor {

namespace fs = std::filesystem;
using stream_protocol = asio::local::stream_protocol;

namespace {

// One write takes up to this much of a client's queue: fewer system calls when it lags.
constexpr std::size_t kMaxBatchLines = 256;
constexpr std::size_t kMaxBatchBytes = 256 * 1024;

using Line = std::shared_ptr<const std::string>;

enum class ClientState {
  active,   // receives events
  dropped,  // fell behind: gets the drop line, then is closed
  closing,  // the server stops: gets what is queued, then is closed
  gone,     // its socket failed or was closed
};

struct Client {
  explicit Client(stream_protocol::socket s)
      : socket(std::move(s)), wake(socket.get_executor()), deadline(socket.get_executor()) {}

  stream_protocol::socket socket;
  asio::steady_timer wake;      // the writer sleeps on it while the queue is empty
  asio::steady_timer deadline;  // closes the socket when the last writes take too long
  std::deque<Line> queue;
  std::size_t queued_events = 0;  // the queue and the batch being written
  std::size_t queued_bytes = 0;
  ClientState state = ClientState::active;
  std::string drop_reason;
};

// True when something accepts connections at `path`: then it is not stale.
bool socket_is_live(const std::string& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return false;
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
  // Non-blocking: a live listener with a full backlog answers EAGAIN instead of waiting.
  const int rc =
      ::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address));  // NOLINT
  const bool live = rc == 0 || errno == EAGAIN || errno == EINPROGRESS;
  ::close(fd);
  return live;
}

template <class Awaitable>
void spawn(const asio::strand<asio::any_io_executor>& strand, Awaitable&& work) {
  asio::co_spawn(strand, std::forward<Awaitable>(work), [](const std::exception_ptr& error) {
    if (!error) return;
    try {
      std::rethrow_exception(error);
    } catch (const std::exception& e) {
      spdlog::error("event stream: internal error: {}", e.what());
    }
  });
}

}  // namespace

struct EventServer::State {
  State(asio::strand<asio::any_io_executor> s, fs::path p, EventServerSettings config)
      : strand(std::move(s)), acceptor(strand), path(std::move(p)), settings(config) {}

  asio::strand<asio::any_io_executor> strand;  // the members below are used on it only,
                                               // but for the atomics and `pending`
  stream_protocol::acceptor acceptor;
  fs::path path;
  dev_t device = 0;  // of the socket file we made, so stop() removes only that one
  ino_t inode = 0;
  EventServerSettings settings;
  std::vector<std::shared_ptr<Client>> clients;
  bool stopping = false;
  std::atomic<bool> stopped{false};
  std::atomic<std::size_t> subscribers{0};
  std::atomic<std::uint64_t> dropped{0};
  // Lines published and not yet handed to the clients. One post drains them all, so a burst
  // costs the io thread one wake-up and the clients few writes, not one of each per event.
  std::mutex pending_mutex;
  std::vector<Line> pending;

  void deliver_pending() {
    std::vector<Line> lines;
    {
      const std::lock_guard lock(pending_mutex);
      lines.swap(pending);
    }
    for (const auto& line : lines) deliver(line);
  }

  void set_state(Client& client, ClientState next) {
    if (client.state == ClientState::active && next != ClientState::active) --subscribers;
    client.state = next;
  }

  // Appends `line` to every active client's queue; a client it would overflow is dropped.
  void deliver(const Line& line) {
    if (stopping) return;
    for (const auto& client : clients) {
      if (client->state != ClientState::active) continue;
      // A line bigger than max_queued_bytes still goes to a client that has caught up.
      if (client->queued_events + 1 > settings.max_queued_events ||
          (client->queued_events > 0 &&
           client->queued_bytes + line->size() > settings.max_queued_bytes)) {
        drop(*client);
        continue;
      }
      const bool was_idle = client->queue.empty();
      client->queue.push_back(line);
      ++client->queued_events;
      client->queued_bytes += line->size();
      if (was_idle) client->wake.cancel();
    }
  }

  void drop(Client& client) {
    // The unsent events and the one that did not fit.
    client.drop_reason = "fell behind by " + std::to_string(client.queued_events + 1) + " events";
    spdlog::warn("event stream: a subscriber {}; it is dropped", client.drop_reason);
    set_state(client, ClientState::dropped);
    ++dropped;
    client.queue.clear();
    // A stuck write is abandoned here; the writer completes its partial line before the drop line.
    boost::system::error_code ignored;
    client.socket.cancel(ignored);
    client.wake.cancel();
  }

  void shutdown() {
    stopping = true;
    boost::system::error_code ignored;
    acceptor.close(ignored);
    for (const auto& client : clients) {
      if (client->state != ClientState::active) continue;
      set_state(*client, ClientState::closing);
      arm_deadline(client);
      client->wake.cancel();
    }
  }

  // Closes the client's socket unless the deadline is cancelled within flush_timeout.
  void arm_deadline(const std::shared_ptr<Client>& client) const {
    client->deadline.expires_after(settings.flush_timeout);
    client->deadline.async_wait([client](const boost::system::error_code& ec) {
      if (ec) return;
      boost::system::error_code ignored;
      client->socket.close(ignored);
    });
  }

  void forget(const std::shared_ptr<Client>& client) {
    set_state(*client, ClientState::gone);
    boost::system::error_code ignored;
    client->socket.close(ignored);
    client->wake.cancel();
    client->deadline.cancel();
    std::erase(clients, client);
  }

  static asio::awaitable<void> accept_loop(std::shared_ptr<State> self) {
    asio::steady_timer pause(self->strand);
    for (;;) {
      auto [ec, socket] = co_await self->acceptor.async_accept(use_tuple);
      if (self->stopping || ec == asio::error::operation_aborted) co_return;
      if (ec) {
        // Out of file descriptors, most likely: wait a little instead of spinning on it.
        spdlog::warn("event stream: cannot accept a subscriber: {}", ec.message());
        pause.expires_after(std::chrono::milliseconds(100));
        co_await pause.async_wait(use_tuple);
        continue;
      }
      auto client = std::make_shared<Client>(std::move(socket));
      // The first line says "from here on, every event": a subscriber that must not miss
      // one waits for it before it sets anything going.
      static const Line hello = std::make_shared<const std::string>(kSubscribedLine);
      client->queue.push_back(hello);
      client->queued_events = 1;
      client->queued_bytes = hello->size();
      self->clients.push_back(client);
      ++self->subscribers;
      spawn(self->strand, write_loop(self, client));
      spawn(self->strand, read_loop(self, client));
    }
  }

  // Drains the client's queue, several lines per write, until it is dropped, closed or gone.
  static asio::awaitable<void> write_loop(std::shared_ptr<State> self,
                                          std::shared_ptr<Client> client) {
    std::vector<Line> batch;
    std::vector<asio::const_buffer> buffers;
    std::size_t written = 0;  // of the last batch
    bool failed = false;
    for (;;) {
      if (client->state == ClientState::dropped || client->state == ClientState::gone) break;
      if (client->queue.empty()) {
        if (client->state == ClientState::closing) break;
        client->wake.expires_at(asio::steady_timer::time_point::max());
        co_await client->wake.async_wait(use_tuple);
        continue;
      }
      batch.clear();
      buffers.clear();
      std::size_t bytes = 0;
      while (!client->queue.empty() && batch.size() < kMaxBatchLines && bytes < kMaxBatchBytes) {
        bytes += client->queue.front()->size();
        buffers.emplace_back(asio::buffer(*client->queue.front()));
        batch.push_back(std::move(client->queue.front()));
        client->queue.pop_front();
      }
      const auto [ec, n] = co_await asio::async_write(client->socket, buffers, use_tuple);
      written = n;
      client->queued_events -= batch.size();
      client->queued_bytes -= bytes;
      if (client->state == ClientState::dropped) {
        failed = ec && ec != asio::error::operation_aborted;
        break;
      }
      if (ec) {
        failed = true;
        break;
      }
      batch.clear();
    }

    if (client->state == ClientState::dropped && !failed) {
      // The rest of a line cut by the drop, so the client's stream stays whole, then the drop line.
      std::vector<asio::const_buffer> last;
      std::size_t offset = 0;
      for (const auto& line : batch) {
        if (written > offset && written < offset + line->size()) {
          last.emplace_back(asio::buffer(*line) + (written - offset));
        }
        offset += line->size();
      }
      Event dropped;
      dropped.event = "dropped";
      dropped.type = "event";
      dropped.name = client->drop_reason;
      const std::string drop_line = to_json_line(dropped);
      last.emplace_back(asio::buffer(drop_line));
      self->arm_deadline(client);
      co_await asio::async_write(client->socket, last, use_tuple);
    }
    self->forget(client);
  }

  // True once the peer has closed both sides of `socket` (or it failed); false when the
  // wait was cancelled. Only for a socket whose input has ended.
  static asio::awaitable<bool> hung_up(stream_protocol::socket& socket) {
    for (;;) {
      // Looked at first: a hang-up before the wait is then not left to the reactor.
      pollfd state{socket.native_handle(), POLLOUT, 0};
      if (::poll(&state, 1, 0) < 0 || (state.revents & (POLLHUP | POLLERR)) != 0) co_return true;
      // epoll reports a hang-up to every kind of wait; wait_error is the one that asks
      // for nothing else, so it does not wake for input that has already ended.
      const auto [ec] = co_await socket.async_wait(stream_protocol::socket::wait_error, use_tuple);
      if (ec) co_return ec != asio::error::operation_aborted;
    }
  }

  // Reads and ignores what a client sends (a subscriber has nothing to say), so that a
  // chatty client cannot fill its socket; notices a client whose connection broke.
  static asio::awaitable<void> read_loop(std::shared_ptr<State> self,
                                         std::shared_ptr<Client> client) {
    std::array<char, 4096> sink{};
    for (;;) {
      const auto [ec, n] = co_await client->socket.async_read_some(asio::buffer(sink), use_tuple);
      if (!ec) continue;
      if (ec == asio::error::operation_aborted) co_return;
      if (ec == asio::error::eof) {
        // End of input is not the end of the subscription: `nc -U` closes its side at once.
        // A client that closed both sides, though, is gone now, not at the next event.
        if (!co_await hung_up(client->socket)) co_return;
      }
      if (client->state != ClientState::active) co_return;
      self->set_state(*client, ClientState::gone);
      boost::system::error_code ignored;
      client->socket.cancel(ignored);
      client->wake.cancel();
      co_return;
    }
  }
};

EventServer::EventServer(std::shared_ptr<State> state) : state_(std::move(state)) {}

EventServer::~EventServer() {
  stop();
}

Result<std::unique_ptr<EventServer>> EventServer::start(asio::any_io_executor executor,
                                                        fs::path socket_path,
                                                        EventServerSettings settings) {
  const std::string path = socket_path.string();
  if (path.empty()) return make_error("the events socket needs a path");
  if (auto fits = check_socket_path(socket_path); !fits.ok()) return fits.error();
  const fs::path folder = socket_path.has_parent_path() ? socket_path.parent_path() : fs::path(".");
  std::error_code fs_error;
  if (!fs::is_directory(folder, fs_error)) {
    return make_error("the folder " + folder.string() +
                      " for the events socket does not exist; create it first");
  }
  struct stat info {};
  if (::lstat(path.c_str(), &info) == 0) {
    if (!S_ISSOCK(info.st_mode)) {
      return make_error(
          path + " exists and is not a socket; refusing to replace it with the events socket");
    }
    if (socket_is_live(path))
      return make_error("another process is already serving events on " + path);
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
      return make_error("cannot remove the stale events socket " + path + ": " +
                        std::strerror(errno));
    }
  }

  // The socket is made under a temporary name and renamed into place once it listens, so
  // whoever finds it at `path` (a subscriber, another agent probing for a stale socket) finds
  // a listening socket, never a refusing one. The name is this process's own, in the same
  // folder (rename stays on one file system); the shorter one when the long one does not fit.
  const std::string pid = std::to_string(::getpid());
  std::string temporary = path + "." + pid + ".tmp";
  if (temporary.size() > kMaxUnixSocketPathBytes) temporary = (folder / ("." + pid)).string();
  if (temporary.size() > kMaxUnixSocketPathBytes) {
    return make_error("the events socket path " + path +
                      " leaves no room for a temporary name while it is made; use a shorter "
                      "work folder");
  }
  // Left by an earlier process with our pid: nobody else uses this name.
  if (::lstat(temporary.c_str(), &info) == 0 && S_ISSOCK(info.st_mode)) {
    ::unlink(temporary.c_str());
  }

  auto state =
      std::make_shared<State>(asio::make_strand(std::move(executor)), socket_path, settings);
  boost::system::error_code ec;
  auto& acceptor = state->acceptor;
  const auto fail = [&](const std::string& message) {
    boost::system::error_code ignored;
    acceptor.close(ignored);
    ::unlink(temporary.c_str());
    return make_error(message);
  };
  if (acceptor.open(stream_protocol(), ec); ec) {
    return make_error("cannot create the events socket " + path + ": " + ec.message());
  }
  if (acceptor.bind(stream_protocol::endpoint(temporary), ec); ec) {
    acceptor.close(ec);
    return make_error("cannot create the events socket " + path + ": " + ec.message());
  }
  // The file may be wider than 0600 between bind and chmod, but nobody can connect before
  // listen(), and it gets its public name only after both: there is no window.
  if (::chmod(temporary.c_str(), S_IRUSR | S_IWUSR) != 0 ||
      ::lstat(temporary.c_str(), &info) != 0) {
    return fail("cannot make the events socket " + path + " private: " + std::strerror(errno));
  }
  state->device = info.st_dev;  // rename keeps the inode: stop() recognizes the file by it
  state->inode = info.st_ino;
  if (acceptor.listen(stream_protocol::acceptor::max_listen_connections, ec); ec) {
    return fail("cannot listen on the events socket " + path + ": " + ec.message());
  }
  // RENAME_NOREPLACE: an agent that started on the same path since our check keeps it.
  if (::renameat2(AT_FDCWD, temporary.c_str(), AT_FDCWD, path.c_str(), RENAME_NOREPLACE) != 0) {
    if (errno == EEXIST) return fail("another process is already serving events on " + path);
    // A file system without RENAME_NOREPLACE: the plain rename, which replaces.
    if (errno != EINVAL || ::rename(temporary.c_str(), path.c_str()) != 0) {
      return fail("cannot create the events socket " + path + ": " + std::strerror(errno));
    }
  }
  spawn(state->strand, State::accept_loop(state));
  return std::unique_ptr<EventServer>(new EventServer(std::move(state)));
}

void EventServer::publish(const Event& event) {
  if (state_->stopped.load(std::memory_order_relaxed)) return;
  // Serialized once, on the caller's thread; every client's queue shares the same line.
  auto line = std::make_shared<const std::string>(to_json_line(event));
  bool first = false;
  {
    // Held only to append: a reader never holds it.
    const std::lock_guard lock(state_->pending_mutex);
    first = state_->pending.empty();
    state_->pending.push_back(std::move(line));
  }
  if (first) asio::post(state_->strand, [state = state_] { state->deliver_pending(); });
}

void EventServer::stop() {
  if (state_->stopped.exchange(true)) return;
  asio::post(state_->strand, [state = state_] { state->shutdown(); });
  // Here rather than on the strand, so that the file is gone when stop() returns. Only our
  // own socket: another agent may have replaced it since.
  const std::string path = state_->path.string();
  struct stat info {};
  if (::lstat(path.c_str(), &info) == 0 && S_ISSOCK(info.st_mode) &&
      info.st_dev == state_->device && info.st_ino == state_->inode) {
    ::unlink(path.c_str());
  }
}

std::size_t EventServer::subscriber_count() const {
  return state_->subscribers.load();
}

std::uint64_t EventServer::dropped_count() const { return state_->dropped.load(); }

}  // namespace proctor
