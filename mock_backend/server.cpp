#include "mock_backend/server.hpp"

// Two GCC 12 false positives inside Asio's templates, not in this file's code: it pairs
// the aligned_alloc-backed coroutine frame allocator with the wrong delete, and it sees a
// "null" io_context in any_io_executor's equality test.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#pragma GCC diagnostic ignored "-Wnull-dereference"

#include <csignal>
#include <exception>
#include <set>
#include <utility>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <spdlog/spdlog.h>

namespace proctor::mock {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

// I/O errors come back as error codes in a tuple, never as exceptions.
constexpr auto kAwait = asio::as_tuple(asio::use_awaitable);

using BeastRequest = http::request<http::string_body>;
using BeastResponse = http::response<http::string_body>;

// One accepted connection; lives in its coroutine's frame while registered with the server.
struct Connection {
  beast::tcp_stream stream;
  asio::steady_timer delay;  // slow-answer faults wait on this, so stop() can cut them short
};

Request to_request(const BeastRequest& message) {
  Request request;
  request.method = std::string(message.method_string());
  request.target = std::string(message.target());
  for (const auto& field : message) {
    request.headers.push_back({std::string(field.name_string()), std::string(field.value())});
  }
  request.body = message.body();
  return request;
}

BeastResponse to_beast(const Response& response, unsigned version, bool keep_alive) {
  BeastResponse out;
  out.version(version);
  out.result(static_cast<unsigned>(response.status));
  for (const Header& header : response.headers) out.insert(header.name, header.value);
  out.set(http::field::server, "proctor-mock-backend");
  out.keep_alive(keep_alive);
  const bool bodiless = response.status < 200 || response.status == 204 || response.status == 304;
  if (!bodiless) {
    out.body() = response.body;
    out.prepare_payload();
  }
  return out;
}

// An answer the server gives by itself when the request cannot reach the handler.
Response server_error(int status, const std::string& message) {
  return Response{status, {{"Content-Type", "application/json"}}, nlohmann::json{{"error", message}}.dump(), {},
                  false, {}};
}

void log_exception(const std::exception_ptr& error) {
  if (!error) return;
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    spdlog::error("connection handler failed: {}", e.what());
  }
}

}  // namespace

struct Server::Impl {
  Impl(Backend backend_in, ServerOptions options_in)
      : backend(std::move(backend_in)), options(std::move(options_in)) {}

  // Accepts connections until stopped, each served by its own coroutine.
  asio::awaitable<void> accept_loop();
  // Serves one connection's requests in order until it closes, fails, times out or stop().
  asio::awaitable<void> serve(tcp::socket socket);
  // Writes one answer under the I/O deadline; false when the write failed.
  asio::awaitable<bool> send(Connection& connection, const Response& response, unsigned version,
                             bool keep_alive);
  // Closes the acceptor and every connection; runs on the io_context's thread.
  void shutdown();

  Backend backend;
  ServerOptions options;
  asio::io_context ioc{1};
  tcp::acceptor acceptor{ioc};
  asio::signal_set signals{ioc};
  unsigned short port = 0;
  std::set<Connection*> connections;
  bool stopping = false;
};

asio::awaitable<void> Server::Impl::accept_loop() {
  while (!stopping) {
    auto [ec, socket] = co_await acceptor.async_accept(kAwait);
    if (ec) {
      if (stopping || !acceptor.is_open()) break;
      // Out of descriptors and the like: pause rather than spin.
      spdlog::warn("accepting a connection failed: {}", ec.message());
      asio::steady_timer pause(ioc, std::chrono::milliseconds(100));
      [[maybe_unused]] auto [pause_ec] = co_await pause.async_wait(kAwait);
      continue;
    }
    asio::co_spawn(ioc, serve(std::move(socket)), log_exception);
  }
}

asio::awaitable<bool> Server::Impl::send(Connection& connection, const Response& response, unsigned version,
                                         bool keep_alive) {
  BeastResponse out = to_beast(response, version, keep_alive);
  connection.stream.expires_after(options.io_timeout);
  auto [ec, written] = co_await http::async_write(connection.stream, out, kAwait);
  (void)written;
  co_return !ec;
}

asio::awaitable<void> Server::Impl::serve(tcp::socket socket) {
  Connection connection{beast::tcp_stream(std::move(socket)), asio::steady_timer(ioc)};
  connections.insert(&connection);
  struct Unregister {
    std::set<Connection*>& set;
    Connection* item;
    ~Unregister() { set.erase(item); }
  } unregister{connections, &connection};

  beast::flat_buffer buffer;
  const auto& http_errors = http::make_error_code(http::error::end_of_stream).category();
  while (!stopping) {
    http::request_parser<http::string_body> parser;
    parser.body_limit(options.body_limit);
    connection.stream.expires_after(options.io_timeout);
    auto [read_ec, read] = co_await http::async_read(connection.stream, buffer, parser, kAwait);
    (void)read;
    if (read_ec == http::error::body_limit) {
      spdlog::info("request body over {} bytes: 413", options.body_limit);
      co_await send(connection, server_error(413, "the request body is larger than the limit"), 11, false);
      break;
    }
    if (read_ec && &read_ec.category() == &http_errors && read_ec != http::error::end_of_stream &&
        read_ec != http::error::partial_message) {
      spdlog::info("unreadable request ({}): 400", read_ec.message());
      co_await send(connection, server_error(400, "the request is not valid HTTP/1.1"), 11, false);
      break;
    }
    if (read_ec) break;  // the peer closed, the deadline passed, or stop()

    const BeastRequest& message = parser.get();
    const Response response = backend.handle(to_request(message), std::chrono::system_clock::now());
    const std::string fault = response.fault.empty() ? "" : " (fault " + response.fault + ")";
    if (response.close_without_answer) {
      spdlog::info("{} {} -> closed{}", message.method_string(), message.target(), fault);
      break;
    }
    spdlog::info("{} {} -> {}{}", message.method_string(), message.target(), response.status, fault);
    if (response.delay.count() > 0) {
      connection.delay.expires_after(response.delay);
      auto [wait_ec] = co_await connection.delay.async_wait(kAwait);
      if (wait_ec || stopping) break;
    }
    if (!co_await send(connection, response, message.version(), message.keep_alive())) break;
    if (!message.keep_alive()) break;
  }
  beast::error_code ignored;
  connection.stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
  connection.stream.close();
}

void Server::Impl::shutdown() {
  if (stopping) return;
  stopping = true;
  beast::error_code ignored;
  acceptor.close(ignored);
  signals.cancel(ignored);
  for (Connection* connection : connections) {
    connection->stream.cancel();
    connection->delay.cancel();
  }
}

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Server::Server(Server&&) noexcept = default;
Server& Server::operator=(Server&&) noexcept = default;
Server::~Server() = default;

Result<Server> Server::open(Backend backend, ServerOptions options) {
  auto impl = std::make_unique<Impl>(std::move(backend), std::move(options));
  const std::string& bind = impl->options.bind_address;
  beast::error_code ec;
  const auto address = asio::ip::make_address(bind, ec);
  if (ec) return make_error("the bind address '" + bind + "' is not an IP address.");
  const tcp::endpoint endpoint(address, impl->options.port);
  impl->acceptor.open(endpoint.protocol(), ec);
  if (!ec) impl->acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) impl->acceptor.bind(endpoint, ec);
  if (!ec) impl->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (!ec) impl->port = impl->acceptor.local_endpoint(ec).port();
  if (ec) {
    return make_error("could not listen on " + bind + ":" + std::to_string(impl->options.port) + ": " +
                      ec.message() + ".");
  }
  return Server(std::move(impl));
}

unsigned short Server::port() const { return impl_->port; }

const std::string& Server::address() const { return impl_->options.bind_address; }

void Server::stop_on_signals() {
  impl_->signals.add(SIGINT);
  impl_->signals.add(SIGTERM);
  impl_->signals.async_wait([impl = impl_.get()](const beast::error_code& ec, int signal) {
    if (ec) return;
    spdlog::info("signal {}: stopping", signal);
    impl->shutdown();
  });
}

void Server::run() {
  asio::co_spawn(impl_->ioc, impl_->accept_loop(), log_exception);
  impl_->ioc.run();
}

void Server::stop() {
  asio::post(impl_->ioc, [impl = impl_.get()] { impl->shutdown(); });
}

}  // namespace proctor::mock
