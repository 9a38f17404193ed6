#include "agent/backend_client.hpp"

// A GCC 12 false positive inside Asio's templates, not in this file's code: it pairs the
// aligned_alloc-backed coroutine frame allocator with the wrong delete (as in
// mock_backend/server.cpp).
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

#include <algorithm>
#include <charconv>

#include <spdlog/spdlog.h>

#include "agent/auth_session.hpp"

namespace proctor {

namespace asio = boost::asio;

std::string user_agent() { return std::string("proctor-runner/") + PROCTOR_VERSION; }

namespace {

std::shared_ptr<AuthSession> session_for(const BackendConfig& config) {
  if (!config.auth) return nullptr;
  return config.session ? config.session : make_auth_session(config);
}

}  // namespace

std::shared_ptr<AuthSession> make_auth_session(const BackendConfig& config) {
  if (!config.auth) return nullptr;
  return std::make_shared<AuthSession>(
      AuthSettings{config.login_api, config.refresh_api, config.login, config.password, config.refresh_time});
}

namespace {

// A failed login is never reported as the call's own status: a 4xx from the login
// endpoint must not make a result look refused, nor a 404 look like "no task".
BackendAnswer login_failure(const AuthGrant& grant) {
  BackendAnswer failed = grant.failure;
  failed.status = 0;
  failed.body.clear();
  failed.login_failed = true;
  if (failed.error.empty()) failed.error = "login failed";
  return failed;
}

}  // namespace

HttpBackendClient::HttpBackendClient(asio::any_io_executor executor, BackendConfig config)
    : config_(std::move(config)),
      http_(std::move(executor), config_.base, config_.tls, config_.limits),
      session_(session_for(config_)) {}

HttpBackendClient::~HttpBackendClient() = default;

void HttpBackendClient::close() { http_.close(); }

asio::awaitable<BackendAnswer> HttpBackendClient::get_task() {
  HttpRequest request;
  request.method = "GET";
  request.target = config_.base.target_for(config_.get_api);
  request.headers.emplace_back("Accept", "application/json");
  co_return co_await call(std::move(request), config_.get_api);
}

asio::awaitable<BackendAnswer> HttpBackendClient::post_result(std::string body, std::string idempotency_key) {
  HttpRequest request;
  request.method = "POST";
  request.target = config_.base.target_for(config_.post_api);
  request.headers.emplace_back("Content-Type", "application/json");
  if (!idempotency_key.empty()) request.headers.emplace_back("Idempotency-Key", std::move(idempotency_key));
  request.body = std::move(body);
  co_return co_await call(std::move(request), config_.post_api);
}

asio::awaitable<BackendAnswer> HttpBackendClient::call(HttpRequest request, std::string_view api) {
  // Login and refresh go over this client's connection, so that close() aborts them too.
  const AuthExchange over_this_connection = [this](HttpRequest auth_request) {
    auth_request.target = config_.base.target_for(auth_request.target);
    return exchange(std::move(auth_request), std::string());
  };
  std::string authorization;
  if (session_) {
    auto grant = co_await session_->authorization(over_this_connection);
    if (grant.authorization.empty()) co_return login_failure(grant);
    authorization = std::move(grant.authorization);
  }
  auto answer = co_await exchange(request, authorization);
  if (session_ && answer.status == 401) {
    // The token expired or was revoked: renew it once and retry the call once.
    auto grant = co_await session_->renew(authorization, over_this_connection);
    if (grant.authorization.empty()) co_return login_failure(grant);
    answer = co_await exchange(std::move(request), grant.authorization);
  }
  if (answer.status == 403) {
    answer.error = session_ ? "the account '" + session_->login() + "' lacks the role for " + std::string(api) +
                                  " (403); check the account's role"
                            : "the backend refused " + std::string(api) +
                                  " (403) and --auth is off; the backend may need a login with the right role";
    spdlog::error("{}", answer.error);
  }
  co_return answer;
}

asio::awaitable<BackendAnswer> HttpBackendClient::exchange(HttpRequest request, std::string authorization) {
  request.headers.emplace_back("User-Agent", user_agent());
  request.headers.emplace_back("X-Runner-Id", config_.runner_id);
  if (!authorization.empty()) request.headers.emplace_back("Authorization", std::move(authorization));
  BackendAnswer answer;
  auto response = co_await http_.send(std::move(request));
  if (!response) {
    answer.error = response.error().message;
    co_return answer;
  }
  answer.status = response->status;
  answer.body = std::move(response->body);
  if (auto retry = response->header("Retry-After")) {
    long seconds = 0;
    const auto* end = retry->data() + retry->size();
    if (auto [ptr, ec] = std::from_chars(retry->data(), end, seconds); ec == std::errc() && ptr == end && seconds >= 0) {
      answer.retry_after = std::chrono::seconds(std::min(seconds, 86400L));
    }
  }
  co_return answer;
}

}  // namespace proctor
