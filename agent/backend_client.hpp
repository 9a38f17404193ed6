#pragma once
// BackendClient: the agent's two calls to the backend (SPEC §2): get a task, post a
// result. The HTTP implementation adds identification headers and the login flow; a
// recording fake can stand in for it in tests.

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

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
  // Posts a result payload (POST post-api, JSON); a non-empty `idempotency_key` is sent
  // as Idempotency-Key, so that the backend records a result delivered twice only once.
  virtual boost::asio::awaitable<BackendAnswer> post_result(std::string body, std::string idempotency_key = {}) = 0;
  // Aborts what is in flight (shutdown).
  virtual void close() = 0;
};

class AuthSession;

struct BackendConfig {
  Url base;
  std::string get_api = "/api/task/available";
  std::string post_api = "/api/task/result";
  std::string login_api = "/api/v1/login";
  std::string refresh_api = "/api/v1/auth/refresh";
  bool auth = false;
  std::string login;
  std::string password;   // never logged
  std::chrono::seconds refresh_time{240};  // token refresh interval when its exp is unreadable
  // The login shared with the other clients of this agent (see auth_session.hpp); when
  // null and auth is on, the client makes a session of its own from the fields above.
  std::shared_ptr<AuthSession> session;
  std::string runner_id;  // X-Runner-Id: host name + slot
  TlsOptions tls;
  HttpLimits limits;      // request_timeout: --request-timeout
};

// A login session from `config`'s auth fields, for clients to share (null when auth is off).
std::shared_ptr<AuthSession> make_auth_session(const BackendConfig& config);

// The real backend client over HttpClient. With auth on, every call carries the
// session's token (the session logs in or refreshes first when needed); a 401 renews
// the token once and retries the call once; a 403 is explained in the log.
class HttpBackendClient final : public BackendClient {
 public:
  HttpBackendClient(boost::asio::any_io_executor executor, BackendConfig config);
  ~HttpBackendClient() override;
  boost::asio::awaitable<BackendAnswer> get_task() override;
  boost::asio::awaitable<BackendAnswer> post_result(std::string body, std::string idempotency_key = {}) override;
  void close() override;

 private:
  boost::asio::awaitable<BackendAnswer> call(HttpRequest request, std::string_view api);
  boost::asio::awaitable<BackendAnswer> exchange(HttpRequest request, std::string authorization);

  BackendConfig config_;
  HttpClient http_;
  std::shared_ptr<AuthSession> session_;  // null when auth is off
};

// User-Agent sent on every request: "proctor-runner/<version>".
std::string user_agent();

}  // namespace proctor
