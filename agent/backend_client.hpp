#pragma once
// BackendClient: the agent's two calls to the backend (SPEC §2): get a task, post a
// result. The HTTP implementation adds identification headers and the login flow; a
// recording fake can stand in for it in tests.

#include <chrono>
#include <optional>
#include <string>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "agent/http_client.hpp"

namespace proctor {

// What one exchange with the backend came to.
struct BackendAnswer {
  int status = 0;         // the HTTP status; 0 when no answer arrived
  std::string body;
  std::string error;      // why no answer arrived (status == 0), or why login failed
  std::optional<std::chrono::seconds> retry_after;  // from a Retry-After header (capped at a day)
  bool login_failed = false;  // the call was not made: logging in failed (see error)

  // True for any 2xx.
  [[nodiscard]] bool ok() const { return status >= 200 && status <= 299; }
};

class BackendClient {
 public:
  virtual ~BackendClient() = default;
  // Asks for a task (GET get-api).
  virtual boost::asio::awaitable<BackendAnswer> get_task() = 0;
  // Posts a result payload (POST post-api, JSON).
  virtual boost::asio::awaitable<BackendAnswer> post_result(std::string body) = 0;
  // Aborts what is in flight (shutdown).
  virtual void close() = 0;
};

struct BackendConfig {
  Url base;
  std::string get_api = "/api/task/available";
  std::string post_api = "/api/task/result";
  std::string login_api = "/api/v1/login";
  bool auth = false;
  std::string login;
  std::string password;   // never logged
  std::string runner_id;  // X-Runner-Id: host name + slot
  TlsOptions tls;
  HttpLimits limits;
};

// The real backend client over HttpClient. With auth on, it logs in before the first
// call and once more (retrying the call once) when the backend answers 401.
class HttpBackendClient final : public BackendClient {
 public:
  HttpBackendClient(boost::asio::any_io_executor executor, BackendConfig config);
  boost::asio::awaitable<BackendAnswer> get_task() override;
  boost::asio::awaitable<BackendAnswer> post_result(std::string body) override;
  void close() override;

 private:
  boost::asio::awaitable<BackendAnswer> call(HttpRequest request);
  boost::asio::awaitable<BackendAnswer> exchange(HttpRequest request);
  boost::asio::awaitable<BackendAnswer> log_in();

  BackendConfig config_;
  HttpClient http_;
  std::string authorization_;  // "Bearer <token>" once logged in
};

// User-Agent sent on every request: "proctor-runner/<version>".
std::string user_agent();

}  // namespace proctor
