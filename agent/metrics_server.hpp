#pragma once
// MetricsServer: `--metrics-address HOST:PORT`, plain HTTP for a scraper and a probe:
//   GET /metrics  Prometheus text (common/metrics.hpp)
//   GET /healthz  200 with a JSON status while the agent runs; 503 once it is stopping
// Served from the daemon's event loop, so a loop that is stuck fails the probe. Each
// connection gets one answer and is closed; a request must arrive within a deadline and
// under a size limit, and only a few connections are served at once.

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include <boost/asio/any_io_executor.hpp>

#include "common/result.hpp"

namespace proctor {

// What the endpoint shows; called on the server's executor, at each request.
struct EndpointContent {
  std::function<std::string()> metrics;  // the Prometheus text
  std::function<bool()> healthy;         // false once the agent is stopping
  std::function<std::string()> status;   // /healthz's JSON body
};

// One answer of the endpoint.
struct EndpointReply {
  int status = 200;
  std::string content_type;
  std::string body;
  std::string allow;  // the Allow header of a 405
};

// The answer to `method` `target` (its query ignored): a pure function of the request.
EndpointReply endpoint_reply(std::string_view method, std::string_view target, const EndpointContent& content);

struct MetricsServerLimits {
  std::chrono::milliseconds request_timeout{5000};  // to read a request and write its answer
  std::size_t max_request_bytes = 8192;             // headers and body
  std::size_t max_connections = 16;                 // served at once; more wait in the backlog
};

class MetricsServer {
 public:
  // Listens on `address` ("127.0.0.1:9310", "[::1]:9310", "0.0.0.0:0" for any free port)
  // and serves on `executor`, whose context must outlive the server. An error a user can
  // act on when the address is malformed or taken.
  static Result<std::unique_ptr<MetricsServer>> start(boost::asio::any_io_executor executor, const std::string& address,
                                                      EndpointContent content, MetricsServerLimits limits = {});
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // The port it listens on (the one picked, for port 0).
  [[nodiscard]] unsigned short port() const;
  // Stops accepting and closes the connections; on the executor's thread; idempotent.
  void stop();

 private:
  struct State;  // shared with the coroutines, which may outlive this object
  explicit MetricsServer(std::shared_ptr<State> state);
  std::shared_ptr<State> state_;
};

}  // namespace proctor
