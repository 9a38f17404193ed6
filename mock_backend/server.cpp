#include "mock_backend/server.hpp"

// Two GCC 12 false positives inside Asio's templates, not in this file's code: it pairs
// the aligned_alloc-backed coroutine frame allocator with the wrong delete, and it sees a
// "null" io_context in any_io_executor's equality test.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#pragma GCC diagnostic ignored "-Wnull-dereference"

#include <algorithm>
#include <csignal>
#include <exception>
#include <optional>
#include <set>
#include <type_traits>
#include <utility>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <spdlog/spdlog.h>

#include "common/asio_await.hpp"

namespace proctor::mock {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

using BeastRequest = http::request<http::string_body>;
using BeastResponse = http::response<http::string_body>;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;

// One accepted connection's cancellable parts; lives in its coroutine's frame while
// registered with the server, so stop() can reach them.
struct Connection {
  beast::tcp_stream& transport;  // the TCP layer: cancelling it ends the TLS layer's operations too
  asio::steady_timer delay;      // slow-answer faults wait on this, so stop() can cut them short
};

// How a connection's request loop ended, which decides how politely it is closed.
enum class Ending {
  peer_gone,      // the peer closed, an I/O failed, the deadline passed or stop()
  said_close,     // an answer said "Connection: close": a TLS peer gets close_notify
  hang_up,        // a `close` or `cut` fault: drop the connection without a word
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
  Response response;
  response.status = status;
  response.headers.push_back({"Content-Type", "application/json"});
  response.body = nlohmann::json{{"error", message}}.dump();
  return response;
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
  // Serves one accepted connection, over TLS when the server has a certificate.
  asio::awaitable<void> serve(tcp::socket socket);
  // Handshakes when `Stream` is TLS, then serves its requests in order until the
  // connection closes, fails, times out or stop(); a failed handshake drops it.
  template <class Stream>
  asio::awaitable<void> session(Stream& stream);
  // Reads and answers requests until the connection should end; says how it ended.
  template <class Stream>
  asio::awaitable<Ending> request_loop(Stream& stream, Connection& connection);
  // Writes one answer under the I/O deadline; false when the write failed.
  template <class Stream>
  asio::awaitable<bool> send(Stream& stream, Connection& connection, const Response& response, unsigned version,
                             bool keep_alive);
  // A `cut` answer: the headers with the full Content-Length, then only
  // response.cut_body_after body bytes; the caller then hangs up.
  template <class Stream>
  asio::awaitable<void> send_cut(Stream& stream, Connection& connection, const Response& response, unsigned version,
                                 bool keep_alive);
  // Closes the acceptor and every connection; runs on the io_context's thread.
  void shutdown();

  Backend backend;
  ServerOptions options;
  std::optional<asio::ssl::context> tls;  // set: every connection must speak TLS
  asio::io_context ioc{1};
  tcp::acceptor acceptor{ioc};
  asio::signal_set signals{ioc};
  unsigned short port = 0;
  std::set<Connection*> connections;
  bool stopping = false;
};

asio::awaitable<void> Server::Impl::accept_loop() {
  while (!stopping) {
    auto [ec, socket] = co_await acceptor.async_accept(use_tuple);
    if (ec) {
      if (stopping || !acceptor.is_open()) break;
      // Out of descriptors and the like: pause rather than spin.
      spdlog::warn("accepting a connection failed: {}", ec.message());
      asio::steady_timer pause(ioc, std::chrono::milliseconds(100));
      [[maybe_unused]] auto [pause_ec] = co_await pause.async_wait(use_tuple);
      continue;
    }
    asio::co_spawn(ioc, serve(std::move(socket)), log_exception);
  }
}

template <class Stream>
asio::awaitable<bool> Server::Impl::send(Stream& stream, Connection& connection, const Response& response,
                                         unsigned version, bool keep_alive) {
  BeastResponse out = to_beast(response, version, keep_alive);
  connection.transport.expires_after(options.io_timeout);
  auto [ec, written] = co_await http::async_write(stream, out, use_tuple);
  (void)written;
  co_return !ec;
}

template <class Stream>
asio::awaitable<void> Server::Impl::send_cut(Stream& stream, Connection& connection, const Response& response,
                                             unsigned version, bool keep_alive) {
  BeastResponse out = to_beast(response, version, keep_alive);
  http::response_serializer<http::string_body> serializer(out);
  connection.transport.expires_after(options.io_timeout);
  auto [header_ec, header_bytes] = co_await http::async_write_header(stream, serializer, use_tuple);
  (void)header_bytes;
  if (header_ec) co_return;
  const std::size_t part = std::min(response.cut_body_after.value_or(0), out.body().size());
  if (part == 0) co_return;
  auto [body_ec, body_bytes] = co_await asio::async_write(stream, asio::buffer(out.body().data(), part), use_tuple);
  (void)body_ec;
  (void)body_bytes;
}

asio::awaitable<void> Server::Impl::serve(tcp::socket socket) {
  if (tls) {
    TlsStream stream(std::move(socket), *tls);
    co_await session(stream);
  } else {
    beast::tcp_stream stream(std::move(socket));
    co_await session(stream);
  }
}

template <class Stream>
asio::awaitable<void> Server::Impl::session(Stream& stream) {
  constexpr bool is_tls = std::is_same_v<Stream, TlsStream>;
  Connection connection{beast::get_lowest_layer(stream), asio::steady_timer(ioc)};
  connections.insert(&connection);
  struct Unregister {
    std::set<Connection*>& set;
    Connection* item;
    ~Unregister() { set.erase(item); }
  } unregister{connections, &connection};

  Ending ending = Ending::peer_gone;
  bool handshaken = true;
  if constexpr (is_tls) {
    connection.transport.expires_after(options.io_timeout);
    auto [handshake_ec] = co_await stream.async_handshake(asio::ssl::stream_base::server, use_tuple);
    if (handshake_ec) {
      handshaken = false;
      beast::error_code ignored;
      const auto peer = connection.transport.socket().remote_endpoint(ignored);
      const std::string reason = handshake_ec == beast::error::timeout ? "timed out" : handshake_ec.message();
      spdlog::warn("TLS handshake with {}:{} failed ({}): connection dropped", peer.address().to_string(),
                   peer.port(), reason);
    }
  }
  if (handshaken) ending = co_await request_loop(stream, connection);
  if constexpr (is_tls) {
    // close_notify tells the client the answer was complete; Asio then waits for the
    // client's own close_notify or its hang-up, under the deadline.
    if (ending == Ending::said_close && !stopping) {
      connection.transport.expires_after(options.io_timeout);
      [[maybe_unused]] auto [shutdown_ec] = co_await stream.async_shutdown(use_tuple);
    }
  }
  beast::error_code ignored;
  connection.transport.socket().shutdown(tcp::socket::shutdown_both, ignored);
  connection.transport.close();
}

template <class Stream>
asio::awaitable<Ending> Server::Impl::request_loop(Stream& stream, Connection& connection) {
  beast::flat_buffer buffer;
  const auto& http_errors = http::make_error_code(http::error::end_of_stream).category();
  while (!stopping) {
    http::request_parser<http::string_body> parser;
    parser.body_limit(options.body_limit);
    connection.transport.expires_after(options.io_timeout);
    auto [read_ec, read] = co_await http::async_read(stream, buffer, parser, use_tuple);
    (void)read;
    if (read_ec == http::error::body_limit) {
      spdlog::info("request body over {} bytes: 413", options.body_limit);
      co_await send(stream, connection, server_error(413, "the request body is larger than the limit"), 11, false);
      co_return Ending::said_close;
    }
    if (read_ec && &read_ec.category() == &http_errors && read_ec != http::error::end_of_stream &&
        read_ec != http::error::partial_message) {
      spdlog::info("unreadable request ({}): 400", read_ec.message());
      co_await send(stream, connection, server_error(400, "the request is not valid HTTP/1.1"), 11, false);
      co_return Ending::said_close;
    }
    if (read_ec) co_return Ending::peer_gone;  // the peer closed, the deadline passed, or stop()

    const BeastRequest& message = parser.get();
    const Response response = backend.handle(to_request(message), std::chrono::system_clock::now());
    const std::string fault = response.fault.empty() ? "" : " (fault " + response.fault + ")";
    if (response.close_without_answer) {
      spdlog::info("{} {} -> closed{}", message.method_string(), message.target(), fault);
      co_return Ending::hang_up;
    }
    spdlog::info("{} {} -> {}{}", message.method_string(), message.target(), response.status, fault);
    if (response.delay.count() > 0) {
      connection.delay.expires_after(response.delay);
      auto [wait_ec] = co_await connection.delay.async_wait(use_tuple);
      if (wait_ec || stopping) co_return Ending::peer_gone;
    }
    if (response.cut_body_after) {
      co_await send_cut(stream, connection, response, message.version(), message.keep_alive());
      co_return Ending::hang_up;
    }
    if (!co_await send(stream, connection, response, message.version(), message.keep_alive())) {
      co_return Ending::peer_gone;
    }
    if (!message.keep_alive()) co_return Ending::said_close;
  }
  co_return Ending::peer_gone;
}

void Server::Impl::shutdown() {
  if (stopping) return;
  stopping = true;
  beast::error_code ignored;
  acceptor.close(ignored);
  signals.cancel(ignored);
  for (Connection* connection : connections) {
    connection->transport.cancel();
    connection->delay.cancel();
  }
}

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Server::Server(Server&&) noexcept = default;
Server& Server::operator=(Server&&) noexcept = default;
Server::~Server() = default;

Result<Server> Server::open(Backend backend, ServerOptions options) {
  auto impl = std::make_unique<Impl>(std::move(backend), std::move(options));
  beast::error_code ec;
  const std::string& cert = impl->options.tls_cert_file;
  const std::string& key = impl->options.tls_key_file;
  if (cert.empty() != key.empty()) return make_error("HTTPS needs both a certificate file and a key file.");
  if (!cert.empty()) {
    auto& context = impl->tls.emplace(asio::ssl::context::tls_server);
    context.set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                            asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                            asio::ssl::context::no_tlsv1_1,
                        ec);
    if (!ec) context.use_certificate_chain_file(cert, ec);
    if (ec) return make_error("cannot load the TLS certificate " + cert + ": " + ec.message() + ".");
    context.use_private_key_file(key, asio::ssl::context::pem, ec);
    if (ec) return make_error("cannot load the TLS key " + key + ": " + ec.message() + ".");
    if (::SSL_CTX_check_private_key(context.native_handle()) != 1) {
      return make_error("the TLS key " + key + " does not belong to the certificate " + cert + ".");
    }
  }
  const std::string& bind = impl->options.bind_address;
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

bool Server::tls() const { return impl_->tls.has_value(); }

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
