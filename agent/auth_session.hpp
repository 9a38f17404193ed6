#pragma once
// AuthSession: the agent's one login to the backend (SPEC §2.3), shared by every slot and
// the spool flusher, so that a login by one of them never invalidates the refresh token
// another holds. It logs in, refreshes the access token before it expires (a failed
// refresh falls back to a login), and runs one login or refresh at a time: callers that
// need a token meanwhile wait for that one instead of logging in themselves.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <boost/asio/awaitable.hpp>

#include "agent/backend_client.hpp"
#include "agent/http_client.hpp"

namespace proctor {

// The times a JWT's payload states, in Unix seconds.
struct JwtTimes {
  int64_t expires_at = 0;             // exp
  std::optional<int64_t> issued_at;   // iat, when present
};

// The `exp` (and `iat`) of a JWT (header.payload.signature, base64url); nullopt when the
// token is not a JWT, its payload is not JSON, or it has no numeric exp.
std::optional<JwtTimes> read_jwt_times(std::string_view token);

// How long after its receipt a token should be refreshed: with a readable exp, 80% of
// its lifetime but at least 30 s before it ends, and never before half of it (the lifetime
// is exp - iat when the token has an iat, so a skewed clock does not matter; else exp -
// now_unix); `fallback` (--refresh-time) when the exp is unreadable or already past.
std::chrono::milliseconds refresh_delay(const std::optional<JwtTimes>& times, int64_t now_unix,
                                        std::chrono::seconds fallback);

struct AuthSettings {
  std::string login_api = "/api/v1/login";
  std::string refresh_api = "/api/v1/auth/refresh";
  std::string login;
  std::string password;                     // never logged
  std::chrono::seconds refresh_time{240};  // refresh interval when the token's exp is unreadable
};

// Sends one request over the caller's own connection (with its identification headers)
// and returns the answer: the session has no connection of its own. The request's
// target is the API path (login-api, token-refresh-api); the caller prefixes its base.
using AuthExchange = std::function<boost::asio::awaitable<BackendAnswer>(HttpRequest)>;

// What asking the session for a token came to.
struct AuthGrant {
  std::string authorization;  // the Authorization header value "{type} {accessToken}"; empty on failure
  BackendAnswer failure;      // when authorization is empty: the failed login (login_failed set)
};

class AuthSession {
 public:
  explicit AuthSession(AuthSettings settings);
  ~AuthSession();
  AuthSession(const AuthSession&) = delete;
  AuthSession& operator=(const AuthSession&) = delete;

  // The Authorization header to send now: logs in first when there is no token,
  // refreshes it first when it is due; waits for a login or refresh already in flight.
  boost::asio::awaitable<AuthGrant> authorization(AuthExchange send);

  // The backend answered 401 to a call sent with `rejected`: logs in again, unless the
  // token was replaced meanwhile (then the new one), or a login is in flight (then its).
  boost::asio::awaitable<AuthGrant> renew(std::string rejected, AuthExchange send);

  // The account's login name, for messages.
  [[nodiscard]] const std::string& login() const;

 private:
  struct Attempt;
  boost::asio::awaitable<AuthGrant> start_attempt(bool try_refresh, AuthExchange send);
  static boost::asio::awaitable<AuthGrant> wait_for(std::shared_ptr<Attempt> attempt);
  boost::asio::awaitable<BackendAnswer> log_in(const AuthExchange& send);
  boost::asio::awaitable<BackendAnswer> refresh(const AuthExchange& send);
  // Takes the tokens from a login or refresh answer; false (with answer.error set) when
  // the answer has no access token.
  bool take_tokens(BackendAnswer& answer, std::string_view what);
  // Seconds until the token is due for refresh, for the log.
  [[nodiscard]] double seconds_until_refresh() const;

  AuthSettings settings_;
  std::string authorization_;  // "{type} {accessToken}"; empty before the first login
  std::string refresh_token_;  // empty when the backend gave none
  std::chrono::steady_clock::time_point refresh_due_;
  std::shared_ptr<Attempt> in_flight_;  // the login or refresh under way, if any
};

}  // namespace proctor
