#include "agent/backend_client.hpp"

#include <algorithm>
#include <charconv>

#include <nlohmann/json.hpp>

namespace proctor {

namespace asio = boost::asio;

std::string user_agent() { return std::string("proctor-runner/") + PROCTOR_VERSION; }

HttpBackendClient::HttpBackendClient(asio::any_io_executor executor, BackendConfig config)
    : config_(std::move(config)), http_(std::move(executor), config_.base, config_.tls, config_.limits) {}

void HttpBackendClient::close() { http_.close(); }

asio::awaitable<BackendAnswer> HttpBackendClient::get_task() {
  HttpRequest request;
  request.method = "GET";
  request.target = config_.base.target_for(config_.get_api);
  request.headers.emplace_back("Accept", "application/json");
  co_return co_await call(std::move(request));
}

asio::awaitable<BackendAnswer> HttpBackendClient::post_result(std::string body) {
  HttpRequest request;
  request.method = "POST";
  request.target = config_.base.target_for(config_.post_api);
  request.headers.emplace_back("Content-Type", "application/json");
  request.body = std::move(body);
  co_return co_await call(std::move(request));
}

asio::awaitable<BackendAnswer> HttpBackendClient::call(HttpRequest request) {
  // A failed login is never reported as the call's own status: a 4xx from the login
  // endpoint must not make a result look refused, nor a 404 look like "no task".
  const auto login_failure = [](BackendAnswer login) {
    BackendAnswer failed;
    failed.login_failed = true;
    failed.error = login.error.empty() ? "login failed" : login.error;
    failed.retry_after = login.retry_after;
    return failed;
  };
  if (config_.auth && authorization_.empty()) {
    auto login = co_await log_in();
    if (!login.ok()) co_return login_failure(std::move(login));
  }
  auto answer = co_await exchange(request);
  if (config_.auth && answer.status == 401) {
    // The token expired or was revoked: log in again once and retry the call once.
    authorization_.clear();
    auto login = co_await log_in();
    if (!login.ok()) co_return login_failure(std::move(login));
    answer = co_await exchange(std::move(request));
  }
  co_return answer;
}

asio::awaitable<BackendAnswer> HttpBackendClient::exchange(HttpRequest request) {
  request.headers.emplace_back("User-Agent", user_agent());
  request.headers.emplace_back("X-Runner-Id", config_.runner_id);
  if (!authorization_.empty()) request.headers.emplace_back("Authorization", authorization_);
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

asio::awaitable<BackendAnswer> HttpBackendClient::log_in() {
  HttpRequest request;
  request.method = "POST";
  request.target = config_.base.target_for(config_.login_api);
  request.headers.emplace_back("Content-Type", "application/json");
  request.body = nlohmann::json{{"username", config_.login}, {"password", config_.password}}.dump();
  auto answer = co_await exchange(std::move(request));
  if (!answer.ok()) {
    if (answer.status != 0) answer.error = "login as '" + config_.login + "' was refused (HTTP " + std::to_string(answer.status) + ")";
    co_return answer;
  }
  const auto document = nlohmann::json::parse(answer.body, nullptr, false);
  if (!document.is_object() || !document.contains("accessToken") || !document["accessToken"].is_string()) {
    answer.status = 0;
    answer.error = "the login answer has no accessToken";
    co_return answer;
  }
  const auto type_field = document.find("type");
  const std::string type =
      type_field != document.end() && type_field->is_string() ? type_field->get<std::string>() : "Bearer";
  authorization_ = type + " " + document["accessToken"].get<std::string>();
  co_return answer;
}

}  // namespace proctor
