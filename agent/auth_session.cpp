#include "agent/auth_session.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "common/asio_await.hpp"

namespace proctor {

using std::chrono::milliseconds;
using std::chrono::seconds;

namespace {

// Base64url (RFC 4648 §5) without padding, as JWTs use; standard base64's '+' and '/'
// are accepted too. nullopt on any other character.
std::optional<std::string> base64url_decode(std::string_view text) {
  while (!text.empty() && text.back() == '=') text.remove_suffix(1);
  std::string out;
  out.reserve(text.size() * 3 / 4);
  uint32_t bits = 0;
  int count = 0;
  for (const char c : text) {
    int value = 0;
    if (c >= 'A' && c <= 'Z') value = c - 'A';
    else if (c >= 'a' && c <= 'z') value = c - 'a' + 26;
    else if (c >= '0' && c <= '9') value = c - '0' + 52;
    else if (c == '-' || c == '+') value = 62;
    else if (c == '_' || c == '/') value = 63;
    else return std::nullopt;
    bits = (bits << 6) | static_cast<uint32_t>(value);
    count += 6;
    if (count >= 8) {
      count -= 8;
      out.push_back(static_cast<char>((bits >> count) & 0xFF));
    }
  }
  if (count >= 6) return std::nullopt;  // a single leftover character is not base64
  return out;
}

// A JSON number that is a whole number of seconds within range.
std::optional<int64_t> unix_seconds(const nlohmann::json& value) {
  if (value.is_number_integer()) return value.get<int64_t>();
  if (value.is_number_float()) {
    const double seconds = value.get<double>();
    if (std::isfinite(seconds) && std::abs(seconds) < 1e15) return static_cast<int64_t>(seconds);
  }
  return std::nullopt;
}

int64_t unix_now() {
  return std::chrono::duration_cast<seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

std::optional<JwtTimes> read_jwt_times(std::string_view token) {
  const auto first = token.find('.');
  if (first == std::string_view::npos) return std::nullopt;
  const auto second = token.find('.', first + 1);
  if (second == std::string_view::npos) return std::nullopt;
  const auto payload = base64url_decode(token.substr(first + 1, second - first - 1));
  if (!payload) return std::nullopt;
  const auto claims = nlohmann::json::parse(*payload, nullptr, false);
  if (!claims.is_object()) return std::nullopt;
  const auto exp = claims.find("exp");
  if (exp == claims.end()) return std::nullopt;
  const auto expires = unix_seconds(*exp);
  if (!expires) return std::nullopt;
  JwtTimes times;
  times.expires_at = *expires;
  if (const auto iat = claims.find("iat"); iat != claims.end()) times.issued_at = unix_seconds(*iat);
  return times;
}

milliseconds refresh_delay(const std::optional<JwtTimes>& times, int64_t now_unix, seconds fallback) {
  if (times) {
    const int64_t lifetime = times->issued_at ? times->expires_at - *times->issued_at : times->expires_at - now_unix;
    if (lifetime > 0 && lifetime < std::numeric_limits<int64_t>::max() / 1000) {
      const int64_t at_80_percent = lifetime * 800;
      const int64_t before_end = lifetime * 1000 - 30'000;
      return milliseconds(std::max(lifetime * 500, std::min(at_80_percent, before_end)));
    }
  }
  return fallback;
}

// One login or refresh in flight. Its waiters sleep on a timer that never expires; the
// attempt cancels it when it ends, which wakes them all. Everything runs on the agent's
// one Asio thread, so this needs no mutex: no two coroutines ever run at the same time.
struct AuthSession::Attempt {
  explicit Attempt(const asio::any_io_executor& executor)
      : done(executor, std::chrono::steady_clock::time_point::max()) {
    outcome.failure.login_failed = true;
    outcome.failure.error = "logging in was interrupted";
  }
  asio::steady_timer done;
  bool finished = false;
  AuthGrant outcome;
};

AuthSession::AuthSession(AuthSettings settings) : settings_(std::move(settings)) {}

AuthSession::~AuthSession() = default;

const std::string& AuthSession::login() const { return settings_.login; }

asio::awaitable<AuthGrant> AuthSession::authorization(AuthExchange send) {
  if (in_flight_) co_return co_await wait_for(in_flight_);
  if (!authorization_.empty() && std::chrono::steady_clock::now() < refresh_due_) {
    co_return AuthGrant{authorization_, {}};
  }
  co_return co_await start_attempt(!authorization_.empty() && !refresh_token_.empty(), std::move(send));
}

asio::awaitable<AuthGrant> AuthSession::renew(std::string rejected, AuthExchange send) {
  if (in_flight_) co_return co_await wait_for(in_flight_);
  // Another caller already replaced the refused token: use the new one.
  if (!authorization_.empty() && authorization_ != rejected) co_return co_await authorization(std::move(send));
  authorization_.clear();
  co_return co_await start_attempt(false, std::move(send));
}

asio::awaitable<AuthGrant> AuthSession::wait_for(std::shared_ptr<Attempt> attempt) {
  if (!attempt->finished) co_await attempt->done.async_wait(use_tuple);
  co_return attempt->outcome;
}

asio::awaitable<AuthGrant> AuthSession::start_attempt(bool try_refresh, AuthExchange send) {
  auto attempt = std::make_shared<Attempt>(co_await asio::this_coro::executor);
  in_flight_ = attempt;
  // However this coroutine ends (even destroyed mid-way at shutdown), the waiters wake.
  struct Finish {
    AuthSession& session;
    const std::shared_ptr<Attempt>& attempt;
    ~Finish() {
      attempt->finished = true;
      if (session.in_flight_ == attempt) session.in_flight_.reset();
      attempt->done.cancel();
    }
  } finish{*this, attempt};

  bool renewed = false;
  if (try_refresh) {
    auto refreshed = co_await refresh(send);
    renewed = refreshed.ok();
    if (!renewed) {
      spdlog::info("refreshing the access token of '{}' failed ({}); logging in again", settings_.login,
                   refreshed.status == 0 ? refreshed.error : "HTTP " + std::to_string(refreshed.status));
    }
  }
  if (!renewed) {
    auto login = co_await log_in(send);
    if (!login.ok()) {
      authorization_.clear();
      refresh_token_.clear();
      attempt->outcome.failure.error = login.error.empty() ? "login failed" : login.error;
      attempt->outcome.failure.retry_after = login.retry_after;
      co_return attempt->outcome;
    }
  }
  attempt->outcome = AuthGrant{authorization_, {}};
  co_return attempt->outcome;
}

asio::awaitable<BackendAnswer> AuthSession::log_in(const AuthExchange& send) {
  HttpRequest request;
  request.method = "POST";
  request.target = settings_.login_api;
  request.headers.emplace_back("Content-Type", "application/json");
  request.body = nlohmann::json{{"username", settings_.login}, {"password", settings_.password}}.dump();
  auto answer = co_await send(std::move(request));
  if (!answer.ok()) {
    if (answer.status != 0) {
      answer.error = "login as '" + settings_.login + "' was refused (HTTP " + std::to_string(answer.status) + ")";
    }
    co_return answer;
  }
  if (!take_tokens(answer, "login")) co_return answer;
  spdlog::info("logged in to the backend as '{}' (token refresh in {:.1f} s)", settings_.login,
               seconds_until_refresh());
  co_return answer;
}

asio::awaitable<BackendAnswer> AuthSession::refresh(const AuthExchange& send) {
  HttpRequest request;
  request.method = "POST";
  request.target = settings_.refresh_api;
  request.headers.emplace_back("Content-Type", "application/json");
  request.body = nlohmann::json{{"refreshToken", refresh_token_}}.dump();
  // The refresh token is spent either way (the backend rotates it); a failed refresh
  // falls back to a login, which brings a new one.
  refresh_token_.clear();
  auto answer = co_await send(std::move(request));
  if (!answer.ok()) co_return answer;
  if (!take_tokens(answer, "refresh")) co_return answer;
  spdlog::debug("refreshed the access token of '{}' (next refresh in {:.1f} s)", settings_.login,
                seconds_until_refresh());
  co_return answer;
}

bool AuthSession::take_tokens(BackendAnswer& answer, std::string_view what) {
  // The body holds the tokens: it is dropped here and never logged or passed on.
  const auto document = nlohmann::json::parse(answer.body, nullptr, false);
  answer.body.clear();
  const auto access = document.is_object() ? document.find("accessToken") : document.end();
  if (access == document.end() || !access->is_string() || access->get_ref<const std::string&>().empty()) {
    answer.status = 0;
    answer.error = "the " + std::string(what) + " answer has no accessToken";
    return false;
  }
  const auto type_field = document.find("type");
  const std::string type =
      type_field != document.end() && type_field->is_string() ? type_field->get<std::string>() : "Bearer";
  const auto& token = access->get_ref<const std::string&>();
  authorization_ = type + " " + token;
  const auto refresh = document.find("refreshToken");
  refresh_token_ = refresh != document.end() && refresh->is_string() ? refresh->get<std::string>() : std::string();
  const auto delay = refresh_delay(read_jwt_times(token), unix_now(), settings_.refresh_time);
  refresh_due_ = std::chrono::steady_clock::now() + delay;
  return true;
}

double AuthSession::seconds_until_refresh() const {
  return std::chrono::duration<double>(refresh_due_ - std::chrono::steady_clock::now()).count();
}

}  // namespace proctor
