#pragma once
// HttpClient: one keep-alive HTTP/1.1 connection (plain or TLS with certificate and host
// name verification) used by coroutines on one executor. Every operation has a
// deadline and responses have a body limit. Beast stays inside http_client.cpp.

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "agent/url.hpp"
#include "common/result.hpp"

namespace proctor {

struct TlsOptions {
  std::string ca_file;    // extra trusted CA bundle (PEM); empty: the system store
  bool insecure = false;  // skip certificate verification (testing only)
};

struct HttpLimits {
  std::chrono::milliseconds connect_timeout{10000};  // resolve + connect + TLS handshake
  std::chrono::milliseconds request_timeout{30000};  // write the request, read the answer
  std::size_t body_limit = 16 * 1024 * 1024;         // largest response body accepted
};

using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

struct HttpRequest {
  std::string method = "GET";
  std::string target = "/";
  HttpHeaders headers;
  std::string body;  // sent with Content-Length when the method is not GET
};

struct HttpResponse {
  int status = 0;
  HttpHeaders headers;
  std::string body;

  // The first header named `name` (case-insensitive), if any.
  [[nodiscard]] std::optional<std::string> header(std::string_view name) const;
};

class HttpClient {
 public:
  // A client for `base`'s origin; connects lazily on the first send().
  HttpClient(boost::asio::any_io_executor executor, Url base, TlsOptions tls, HttpLimits limits);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Sends one request and reads its answer, reusing the connection when the server
  // keeps it alive (a stale kept-alive connection is reopened once). Transport
  // failures (refused, timeout, TLS, oversized body) are errors; any HTTP status is not.
  boost::asio::awaitable<Result<HttpResponse>> send(HttpRequest request);

  // Aborts the operation in flight and closes the connection (call on the executor).
  void close();

  // The base URL this client talks to.
  [[nodiscard]] const Url& base() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace proctor
