#include "agent/http_client.hpp"

#include <strings.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include "common/asio_await.hpp"

namespace proctor {

namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

bool is_stale_connection_error(const boost::system::error_code& ec) {
  return ec == http::error::end_of_stream || ec == asio::error::eof || ec == asio::error::connection_reset ||
         ec == asio::error::broken_pipe || ec == asio::ssl::error::stream_truncated;
}
}  // namespace

std::optional<std::string> HttpResponse::header(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (key.size() == name.size() && ::strncasecmp(key.data(), name.data(), name.size()) == 0) return value;
  }
  return std::nullopt;
}

struct HttpClient::Impl {
  Impl(asio::any_io_executor ex, Url url, TlsOptions tls_options, HttpLimits lim)
      : executor(std::move(ex)), base(std::move(url)), tls(std::move(tls_options)), limits(lim), resolver(executor) {
    // Only https builds a TLS context: OpenSSL's initialisation costs megabytes of RSS
    // that a plain-http agent should not pay.
    if (base.scheme == "https") {
      ssl_context.emplace(asio::ssl::context::tls_client);
      boost::system::error_code ec;
      ssl_context->set_default_verify_paths(ec);
      if (!tls.ca_file.empty()) {
        ssl_context->load_verify_file(tls.ca_file, ec);
        if (ec) load_error = "cannot load the CA file " + tls.ca_file + ": " + ec.message();
      }
      ssl_context->set_verify_mode(tls.insecure ? asio::ssl::verify_none : asio::ssl::verify_peer);
    }
  }

  bool is_tls() const { return base.scheme == "https"; }
  beast::tcp_stream& lowest() { return is_tls() ? beast::get_lowest_layer(*tls_stream) : *plain_stream; }

  void reset_connection() {
    boost::system::error_code ignored;
    if (plain_stream) plain_stream->socket().close(ignored);
    if (tls_stream) beast::get_lowest_layer(*tls_stream).socket().close(ignored);
    plain_stream.reset();
    tls_stream.reset();
    connected = false;
  }

  asio::awaitable<Result<void>> connect() {
    reset_connection();
    if (!load_error.empty()) co_return make_error(load_error);
    resolver.cancel();
    // The resolver has no deadline of its own: race it against a timer.
    asio::steady_timer deadline(executor, limits.connect_timeout);
    bool timed_out = false;
    deadline.async_wait([&](const boost::system::error_code& ec) {
      if (!ec) {
        timed_out = true;
        resolver.cancel();
      }
    });
    auto [rec, endpoints] = co_await resolver.async_resolve(base.host, base.port, use_tuple);
    deadline.cancel();
    if (rec) {
      co_return make_error("cannot resolve " + base.host + ": " + (timed_out ? std::string("timed out") : rec.message()));
    }
    if (is_tls()) {
      tls_stream.emplace(executor, *ssl_context);
      boost::system::error_code not_ip;
      (void)asio::ip::make_address(base.host, not_ip);
      const bool is_ip = !not_ip;
      // RFC 6066 §3: a literal IP address is never sent as the server name.
      // SSL_set_tlsext_host_name is a macro with a C cast; this is its expansion.
      if (!is_ip && ::SSL_ctrl(tls_stream->native_handle(), SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
                               const_cast<char*>(base.host.c_str())) != 1) {
        co_return make_error("cannot set the TLS server name for " + base.host);
      }
      if (!tls.insecure) {
        // OpenSSL's own name check: a mismatch gets its own verify result (reported
        // below) and a bad_certificate alert, where a refusing callback gives neither.
        X509_VERIFY_PARAM* param = ::SSL_get0_param(tls_stream->native_handle());
        const int set = is_ip ? ::X509_VERIFY_PARAM_set1_ip_asc(param, base.host.c_str())
                              : ::X509_VERIFY_PARAM_set1_host(param, base.host.c_str(), base.host.size());
        if (set != 1) co_return make_error("cannot set the TLS host name check for " + base.host);
      }
    } else {
      plain_stream.emplace(executor);
    }
    lowest().expires_after(limits.connect_timeout);
    auto [cec, endpoint] = co_await lowest().async_connect(endpoints, use_tuple);
    if (cec) co_return make_error("cannot connect to " + base.origin() + ": " + describe(cec));
    if (is_tls()) {
      auto [hec] = co_await tls_stream->async_handshake(asio::ssl::stream_base::client, use_tuple);
      if (hec) {
        std::string why = describe(hec);
        const long verify = ::SSL_get_verify_result(tls_stream->native_handle());
        if (verify != X509_V_OK) why += " (" + std::string(::X509_verify_cert_error_string(verify)) + ")";
        co_return make_error("TLS handshake with " + base.origin() + " failed: " + why);
      }
    }
    connected = true;
    co_return Result<void>{};
  }

  static std::string describe(const boost::system::error_code& ec) {
    if (ec == beast::error::timeout) return "timed out";
    return ec.message();
  }

  // How far an exchange got before it failed: a request that was written may have been
  // acted on by the server and must not be sent again.
  enum class Phase { writing, reading };

  template <class Stream>
  asio::awaitable<boost::system::error_code> exchange(Stream& stream, http::request<http::string_body>& req,
                                                      HttpResponse& out, Phase& phase) {
    lowest().expires_after(limits.request_timeout);
    phase = Phase::writing;
    auto [wec, written] = co_await http::async_write(stream, req, use_tuple);
    if (wec) co_return wec;
    phase = Phase::reading;
    http::response_parser<http::string_body> parser;
    parser.body_limit(limits.body_limit);
    auto [rec, read] = co_await http::async_read(stream, buffer, parser, use_tuple);
    if (rec) co_return rec;
    auto& res = parser.get();
    out.status = static_cast<int>(res.result_int());
    for (const auto& field : res) out.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
    out.body = std::move(res.body());
    if (!res.keep_alive()) reset_connection();
    co_return boost::system::error_code{};
  }

  asio::any_io_executor executor;
  Url base;
  TlsOptions tls;
  HttpLimits limits;
  std::optional<asio::ssl::context> ssl_context;
  tcp::resolver resolver;
  std::optional<beast::tcp_stream> plain_stream;
  std::optional<beast::ssl_stream<beast::tcp_stream>> tls_stream;
  beast::flat_buffer buffer;
  bool connected = false;
  std::string load_error;
};

HttpClient::HttpClient(asio::any_io_executor executor, Url base, TlsOptions tls, HttpLimits limits)
    : impl_(std::make_unique<Impl>(std::move(executor), std::move(base), std::move(tls), limits)) {}

HttpClient::~HttpClient() = default;

const Url& HttpClient::base() const { return impl_->base; }

void HttpClient::close() {
  // Only cancel: an operation may still be pending on the stream (an SSL read keeps
  // references into it), so the stream objects live until the next connect().
  impl_->resolver.cancel();
  boost::system::error_code ignored;
  if (impl_->plain_stream) impl_->plain_stream->socket().close(ignored);
  if (impl_->tls_stream) beast::get_lowest_layer(*impl_->tls_stream).socket().close(ignored);
  impl_->connected = false;
}

asio::awaitable<Result<HttpResponse>> HttpClient::send(HttpRequest request) {
  auto& d = *impl_;
  http::request<http::string_body> req;
  req.version(11);
  req.method_string(request.method);
  req.target(request.target);
  req.set(http::field::host, d.base.host_header());
  req.keep_alive(true);
  for (const auto& [name, value] : request.headers) req.set(name, value);
  if (request.method != "GET" && request.method != "HEAD") {
    req.body() = std::move(request.body);
    req.prepare_payload();
  }
  for (int attempt = 0; attempt < 2; ++attempt) {
    const bool reused = d.connected;
    if (!d.connected) {
      auto connected = co_await d.connect();
      if (!connected) co_return connected.error();
    }
    d.buffer.clear();
    HttpResponse response;
    Impl::Phase phase = Impl::Phase::writing;
    const auto ec = d.is_tls() ? co_await d.exchange(*d.tls_stream, req, response, phase)
                               : co_await d.exchange(*d.plain_stream, req, response, phase);
    if (!ec) co_return response;
    d.reset_connection();
    // A kept-alive connection the server had closed before it read anything: open a new
    // one, once. Not when the server may have acted on the request (GET takes a task,
    // POST delivers a result): only a failed write or an answer that never began.
    const bool nothing_read = phase == Impl::Phase::writing || ec == http::error::end_of_stream;
    if (reused && attempt == 0 && nothing_read && is_stale_connection_error(ec)) continue;
    if (ec == http::error::body_limit) {
      co_return make_error("the answer from " + d.base.origin() + " is larger than " +
                           std::to_string(d.limits.body_limit) + " bytes");
    }
    co_return make_error(request.method + " " + d.base.origin() + request.target + " failed: " + Impl::describe(ec));
  }
  co_return make_error("cannot reach " + d.base.origin());
}

}  // namespace proctor
