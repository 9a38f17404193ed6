#include "agent/metrics_server.hpp"

// GCC 12 false positives inside Asio's coroutine templates (see mock_backend/server.cpp).
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#pragma GCC diagnostic ignored "-Wnull-dereference"

#include <charconv>
#include <exception>
#include <set>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <spdlog/spdlog.h>

#include "common/asio_await.hpp"

namespace proctor {

namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

EndpointReply text_reply(int status, std::string body) {
  return EndpointReply{status, "text/plain; charset=utf-8", std::move(body), {}};
}

// "HOST:PORT" with an IP literal (IPv6 in brackets) or "localhost".
Result<tcp::endpoint> parse_address(const std::string& address) {
  const auto bad = [&address](const std::string& why) {
    return make_error("--metrics-address '" + address + "': " + why +
                      " (give HOST:PORT, e.g. 127.0.0.1:9310, [::1]:9310 or 0.0.0.0:9310)");
  };
  const auto colon = address.rfind(':');
  if (colon == std::string::npos) return bad("no port");
  std::string host = address.substr(0, colon);
  const std::string port_text = address.substr(colon + 1);
  unsigned port = 0;
  const auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (port_text.empty() || ec != std::errc() || end != port_text.data() + port_text.size() || port > 65535) {
    return bad("the port is not a number from 0 to 65535");
  }
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (host == "localhost") host = "127.0.0.1";
  boost::system::error_code parse_ec;
  const auto ip = asio::ip::make_address(host, parse_ec);
  if (parse_ec) return bad("the host is not an IP address");
  return tcp::endpoint(ip, static_cast<unsigned short>(port));
}

}  // namespace

EndpointReply endpoint_reply(std::string_view method, std::string_view target, const EndpointContent& content) {
  const std::string_view path = target.substr(0, target.find('?'));
  const bool head = method == "HEAD";
  if (path != "/metrics" && path != "/healthz") {
    return text_reply(404, "not found: this endpoint serves /metrics and /healthz\n");
  }
  if (method != "GET" && !head) {
    auto reply = text_reply(405, "method not allowed: use GET\n");
    reply.allow = "GET, HEAD";
    return reply;
  }
  EndpointReply reply;
  if (path == "/metrics") {
    reply = EndpointReply{200, "text/plain; version=0.0.4; charset=utf-8", content.metrics(), {}};
  } else {
    reply = EndpointReply{content.healthy() ? 200 : 503, "application/json", content.status(), {}};
  }
  return reply;
}

struct MetricsServer::State : std::enable_shared_from_this<MetricsServer::State> {
  State(asio::any_io_executor ex, EndpointContent content_in, MetricsServerLimits limits_in)
      : executor(ex), acceptor(ex), slots_free(ex), content(std::move(content_in)), limits(limits_in) {}

  asio::awaitable<void> accept_loop();
  asio::awaitable<void> serve(tcp::socket socket);

  asio::any_io_executor executor;
  tcp::acceptor acceptor;
  asio::steady_timer slots_free;  // cancelled when a connection ends: the accept loop may go on
  EndpointContent content;
  MetricsServerLimits limits;
  std::set<beast::tcp_stream*> connections;
  unsigned short port = 0;
  bool stopped = false;
};

asio::awaitable<void> MetricsServer::State::accept_loop() {
  const auto self = shared_from_this();
  while (!stopped) {
    if (connections.size() >= limits.max_connections) {
      // At the limit: further connections wait in the listen backlog until one ends.
      slots_free.expires_at(asio::steady_timer::time_point::max());
      [[maybe_unused]] auto [ec] = co_await slots_free.async_wait(use_tuple);
      continue;
    }
    auto [ec, socket] = co_await acceptor.async_accept(use_tuple);
    if (stopped) break;  // an accept that completed as stop() ran: its socket closes here
    if (ec) {
      if (stopped || !acceptor.is_open()) break;
      spdlog::warn("metrics endpoint: accepting a connection failed: {}", ec.message());
      asio::steady_timer pause(executor, std::chrono::milliseconds(100));  // out of descriptors: no spin
      [[maybe_unused]] auto [pause_ec] = co_await pause.async_wait(use_tuple);
      continue;
    }
    asio::co_spawn(executor, serve(std::move(socket)), [](const std::exception_ptr& error) {
      if (!error) return;
      try {
        std::rethrow_exception(error);
      } catch (const std::exception& e) {
        spdlog::error("metrics endpoint: a connection failed: {}", e.what());
      }
    });
  }
}

asio::awaitable<void> MetricsServer::State::serve(tcp::socket socket) {
  const auto self = shared_from_this();
  beast::tcp_stream stream(std::move(socket));
  if (stopped) co_return;
  connections.insert(&stream);
  // Forgotten however serve() ends (a throwing content function too): stop() must never
  // reach a stream that is gone, and the accept loop must hear that a place is free.
  struct Forget {
    State& state;
    beast::tcp_stream* stream;
    ~Forget() {
      state.connections.erase(stream);
      state.slots_free.cancel();
    }
  } forget{*this, &stream};
  // The whole exchange under one deadline: a client that trickles bytes is cut off.
  stream.expires_after(limits.request_timeout);
  beast::flat_buffer buffer(limits.max_request_bytes);
  http::request_parser<http::string_body> parser;
  parser.header_limit(static_cast<std::uint32_t>(limits.max_request_bytes));
  parser.body_limit(limits.max_request_bytes);
  auto [read_ec, read_bytes] = co_await http::async_read(stream, buffer, parser, use_tuple);
  (void)read_bytes;
  if (!read_ec || read_ec == http::error::body_limit || read_ec == http::error::header_limit ||
      read_ec == http::error::buffer_overflow) {
    EndpointReply reply;
    unsigned version = 11;
    std::string method;
    if (read_ec) {
      reply = text_reply(413, "request too large\n");
    } else {
      const auto& request = parser.get();
      version = request.version();
      method = std::string(request.method_string());
      reply = endpoint_reply(method, request.target(), content);
    }
    http::response<http::string_body> response(static_cast<http::status>(reply.status), version);
    response.set(http::field::server, "proctor-runner");
    response.set(http::field::content_type, reply.content_type);
    if (!reply.allow.empty()) response.set(http::field::allow, reply.allow);
    response.keep_alive(false);
    response.body() = std::move(reply.body);
    response.prepare_payload();
    if (method == "HEAD") response.body().clear();  // Content-Length stays the GET's
    auto [write_ec, written] = co_await http::async_write(stream, response, use_tuple);
    (void)written;
    (void)write_ec;  // the client went away: nothing to tell it
  }
  boost::system::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
  stream.close();
}

MetricsServer::MetricsServer(std::shared_ptr<State> state) : state_(std::move(state)) {}

MetricsServer::~MetricsServer() { stop(); }

Result<std::unique_ptr<MetricsServer>> MetricsServer::start(asio::any_io_executor executor,
                                                            const std::string& address, EndpointContent content,
                                                            MetricsServerLimits limits) {
  auto endpoint = parse_address(address);
  if (!endpoint) return endpoint.error();
  auto state = std::make_shared<State>(executor, std::move(content), limits);
  boost::system::error_code ec;
  state->acceptor.open(endpoint->protocol(), ec);
  if (!ec) state->acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) state->acceptor.bind(*endpoint, ec);
  if (!ec) state->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return make_error("--metrics-address " + address + ": cannot listen there: " + ec.message());
  state->port = state->acceptor.local_endpoint(ec).port();
  asio::co_spawn(executor, state->accept_loop(), [](const std::exception_ptr&) {});
  return std::unique_ptr<MetricsServer>(new MetricsServer(std::move(state)));
}

unsigned short MetricsServer::port() const { return state_->port; }

void MetricsServer::stop() {
  if (state_->stopped) return;
  state_->stopped = true;
  boost::system::error_code ignored;
  state_->acceptor.close(ignored);
  state_->slots_free.cancel();
  for (auto* stream : state_->connections) stream->cancel();
}

}  // namespace proctor
