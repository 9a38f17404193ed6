// The backend client and its shared login (agent/backend_client, agent/auth_session):
// the JWT expiry reader and refresh schedule as pure functions, then the real client
// against a scripted HTTP backend on a loopback socket, on one io_context as in the agent.

// GCC 12 sees a "null" io_context inside any_io_executor's equality test, a false
// positive in Asio's templates (as in test_mock_backend.cpp).
#pragma GCC diagnostic ignored "-Wnull-dereference"

#include <doctest/doctest.h>

#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include "agent/auth_session.hpp"
#include "agent/backend_client.hpp"
#include "mock_backend/handler.hpp"

namespace {

using namespace proctor;
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using nlohmann::json;
using tcp = asio::ip::tcp;
using std::chrono::milliseconds;
using std::chrono::seconds;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

// The mock backend's encoder: the agent's decoder is tested against an independent one.
std::string base64url(std::string_view bytes) { return mock::base64url_encode(bytes); }

std::string jwt(const json& claims) {
  return base64url(R"({"alg":"HS256","typ":"JWT"})") + "." + base64url(claims.dump()) + ".c2lnbmF0dXJl";
}

// One request the scripted backend received.
struct SeenRequest {
  std::string method;
  std::string target;
  std::string authorization;
  std::string idempotency_key;
  std::string body;
};

struct Answer {
  int status = 200;
  std::string body;
};

// An HTTP backend on a loopback port whose every answer comes from `script`; it keeps
// the requests it saw, in order.
class ScriptedBackend {
 public:
  ScriptedBackend(asio::io_context& io, std::function<Answer(const SeenRequest&)> script)
      : acceptor_(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)), script_(std::move(script)) {
    asio::co_spawn(io, accept(), asio::detached);
  }

  [[nodiscard]] Url url() const {
    auto url = parse_http_url("http://127.0.0.1:" + std::to_string(acceptor_.local_endpoint().port()));
    REQUIRE(url.ok());
    return *url;
  }

  // Closes the listening socket and every connection, so that the io_context runs out of work.
  void stop() {
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    for (auto& socket : sockets_) socket->close(ignored);
  }

  [[nodiscard]] int count(std::string_view target) const {
    int n = 0;
    for (const auto& request : requests) n += request.target == target ? 1 : 0;
    return n;
  }

  std::vector<SeenRequest> requests;

 private:
  asio::awaitable<void> accept() {
    for (;;) {
      auto [ec, socket] = co_await acceptor_.async_accept(use_tuple);
      if (ec) co_return;
      auto shared = std::make_shared<tcp::socket>(std::move(socket));
      sockets_.push_back(shared);
      asio::co_spawn(acceptor_.get_executor(), serve(shared), asio::detached);
    }
  }

  asio::awaitable<void> serve(std::shared_ptr<tcp::socket> socket) {
    beast::flat_buffer buffer;
    for (;;) {
      http::request<http::string_body> request;
      auto [ec, read] = co_await http::async_read(*socket, buffer, request, use_tuple);
      if (ec) co_return;
      SeenRequest seen{std::string(request.method_string()), std::string(request.target()),
                       std::string(request[http::field::authorization]), std::string(request["Idempotency-Key"]),
                       request.body()};
      requests.push_back(seen);
      const auto answer = script_(seen);
      http::response<http::string_body> response{static_cast<http::status>(answer.status), 11};
      response.body() = answer.body;
      response.keep_alive(true);
      response.prepare_payload();
      auto [wec, written] = co_await http::async_write(*socket, response, use_tuple);
      if (wec) co_return;
    }
  }

  tcp::acceptor acceptor_;
  std::function<Answer(const SeenRequest&)> script_;
  std::vector<std::shared_ptr<tcp::socket>> sockets_;
};

asio::awaitable<void> get_into(BackendClient* client, BackendAnswer* out) { *out = co_await client->get_task(); }

asio::awaitable<void> get_twice(BackendClient* client, BackendAnswer* first, BackendAnswer* second) {
  *first = co_await client->get_task();
  *second = co_await client->get_task();
}

// A keyed post, then one through the interface's default (no key).
asio::awaitable<void> post_keyed_then_plain(BackendClient* client, BackendAnswer* keyed, BackendAnswer* plain) {
  *keyed = co_await client->post_result(R"({"id":"a"})", "0001-a");
  *plain = co_await client->post_result(R"({"id":"b"})");
}

asio::awaitable<void> post_into(BackendClient* client, std::string body, std::string key, BackendAnswer* out) {
  *out = co_await client->post_result(std::move(body), std::move(key));
}

// Runs `calls` at once on `io` (in the order given) until all are done, then stops the
// backend; a watchdog fails the test instead of hanging when something never ends.
void run_all(asio::io_context& io, ScriptedBackend& backend, std::vector<asio::awaitable<void>> calls) {
  std::size_t left = calls.size();
  std::exception_ptr failure;
  asio::steady_timer watchdog(io, seconds(20));
  watchdog.async_wait([&](const boost::system::error_code& ec) {
    if (!ec) {
      FAIL_CHECK("the calls did not finish within 20 s");
      io.stop();
    }
  });
  for (auto& call : calls) {
    asio::co_spawn(io, std::move(call), [&](const std::exception_ptr& error) {
      if (error) failure = error;
      if (--left == 0) {
        watchdog.cancel();
        backend.stop();
      }
    });
  }
  io.run();
  if (failure) std::rethrow_exception(failure);
}

BackendConfig config_for(const ScriptedBackend& backend, std::shared_ptr<AuthSession> session = nullptr) {
  BackendConfig config;
  config.base = backend.url();
  config.auth = true;
  config.login = "runner";
  config.password = "s3cret-pass";
  config.session = std::move(session);
  config.runner_id = "test-0";
  return config;
}

std::shared_ptr<AuthSession> session_for(std::chrono::seconds refresh_time = seconds(240)) {
  return std::make_shared<AuthSession>(
      AuthSettings{"/api/v1/login", "/api/v1/auth/refresh", "runner", "s3cret-pass", refresh_time});
}

std::string tokens(const std::string& access, const std::string& refresh) {
  return json{{"type", "Bearer"}, {"accessToken", access}, {"refreshToken", refresh}}.dump();
}

int64_t unix_now() {
  return std::chrono::duration_cast<seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// Captures every log line (all levels) while it lives.
class CapturedLog {
 public:
  CapturedLog() : previous_(spdlog::default_logger()) {
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(text_);
    auto logger = std::make_shared<spdlog::logger>("captured", sink);
    logger->set_level(spdlog::level::trace);
    spdlog::set_default_logger(logger);
  }
  ~CapturedLog() { spdlog::set_default_logger(previous_); }
  CapturedLog(const CapturedLog&) = delete;
  CapturedLog& operator=(const CapturedLog&) = delete;
  [[nodiscard]] std::string text() const { return text_.str(); }

 private:
  std::shared_ptr<spdlog::logger> previous_;
  std::ostringstream text_;
};

}  // namespace

TEST_SUITE("backend_client") {
  TEST_CASE("the JWT reader finds exp and iat in a token's payload") {
    const auto times = read_jwt_times(jwt({{"sub", "runner"}, {"iat", 1700000000}, {"exp", 1700000300}}));
    REQUIRE(times.has_value());
    CHECK(times->expires_at == 1700000300);
    REQUIRE(times->issued_at.has_value());
    CHECK(*times->issued_at == 1700000000);
    // Padding, a float exp and no iat are read too.
    const auto padded = read_jwt_times("eyJhbGciOiJub25lIn0." + base64url(R"({"exp":1700000060.0})") + "==.x");
    REQUIRE(padded.has_value());
    CHECK(padded->expires_at == 1700000060);
    CHECK_FALSE(padded->issued_at.has_value());
  }

  TEST_CASE("the JWT reader gives nothing for garbage or a token without exp") {
    CHECK_FALSE(read_jwt_times("").has_value());
    CHECK_FALSE(read_jwt_times("opaque-token-without-dots").has_value());
    CHECK_FALSE(read_jwt_times("a.b").has_value());
    CHECK_FALSE(read_jwt_times("a.!!!not base64!!!.c").has_value());
    CHECK_FALSE(read_jwt_times("a." + base64url("not json") + ".c").has_value());
    CHECK_FALSE(read_jwt_times("a." + base64url("[1,2]") + ".c").has_value());
    CHECK_FALSE(read_jwt_times(jwt({{"sub", "runner"}, {"iat", 1700000000}})).has_value());
    CHECK_FALSE(read_jwt_times(jwt({{"exp", "tomorrow"}})).has_value());
  }

  TEST_CASE("a token is refreshed at 80% of its lifetime, at least 30 s before it ends, never before half") {
    const auto fallback = seconds(240);
    CHECK(refresh_delay(JwtTimes{1000 + 300, 1000}, 0, fallback) == seconds(240));
    CHECK(refresh_delay(JwtTimes{1000 + 3600, 1000}, 0, fallback) == seconds(2880));
    CHECK(refresh_delay(JwtTimes{1000 + 100, 1000}, 0, fallback) == seconds(70));
    CHECK(refresh_delay(JwtTimes{1000 + 10, 1000}, 0, fallback) == seconds(5));
    CHECK(refresh_delay(JwtTimes{1000 + 2, 1000}, 0, fallback) == milliseconds(1000));
    // iat, when present, measures the lifetime: a skewed local clock does not matter.
    CHECK(refresh_delay(JwtTimes{1000 + 300, 1000}, 999999, fallback) == seconds(240));
    // Without iat, from now.
    CHECK(refresh_delay(JwtTimes{5000 + 300, std::nullopt}, 5000, fallback) == seconds(240));
    // Unreadable, or already past by the local clock: --refresh-time.
    CHECK(refresh_delay(std::nullopt, 5000, fallback) == fallback);
    CHECK(refresh_delay(JwtTimes{4000, std::nullopt}, 5000, fallback) == fallback);
  }

  TEST_CASE("slots that need a token at once share one login, and send it as {type} {accessToken}") {
    asio::io_context io;
    const auto access = jwt({{"sub", "runner"}, {"iat", unix_now()}, {"exp", unix_now() + 3600}});
    ScriptedBackend backend(io, [&](const SeenRequest& request) -> Answer {
      if (request.target == "/api/v1/login") return {200, tokens(access, "refresh-1")};
      return {request.authorization == "Bearer " + access ? 200 : 401, "{}"};
    });
    const auto session = session_for();
    HttpBackendClient first(io.get_executor(), config_for(backend, session));
    HttpBackendClient second(io.get_executor(), config_for(backend, session));
    HttpBackendClient third(io.get_executor(), config_for(backend, session));
    BackendAnswer a, b, c;
    std::vector<asio::awaitable<void>> calls;
    calls.push_back(get_into(&first, &a));
    calls.push_back(get_into(&second, &b));
    calls.push_back(post_into(&third, "{}", "", &c));
    run_all(io, backend, std::move(calls));

    CHECK(a.status == 200);
    CHECK(b.status == 200);
    CHECK(c.status == 200);
    CHECK(backend.count("/api/v1/login") == 1);
    const auto login = json::parse(backend.requests.front().body);
    CHECK(login == json{{"username", "runner"}, {"password", "s3cret-pass"}});
  }

  TEST_CASE("a 401 renews the token once for every slot it hits, and each call is retried once") {
    asio::io_context io;
    int logins = 0;
    ScriptedBackend backend(io, [&](const SeenRequest& request) -> Answer {
      if (request.target == "/api/v1/login") {
        ++logins;
        return {200, tokens("token-" + std::to_string(logins), "refresh-" + std::to_string(logins))};
      }
      // The first token was revoked as soon as it was issued.
      return {request.authorization == "Bearer token-2" ? 200 : 401, "{}"};
    });
    const auto session = session_for();
    HttpBackendClient first(io.get_executor(), config_for(backend, session));
    HttpBackendClient second(io.get_executor(), config_for(backend, session));
    BackendAnswer a, b;
    std::vector<asio::awaitable<void>> calls;
    calls.push_back(get_into(&first, &a));
    calls.push_back(get_into(&second, &b));
    run_all(io, backend, std::move(calls));

    CHECK(a.status == 200);
    CHECK(b.status == 200);
    CHECK(logins == 2);
    CHECK(backend.count("/api/task/available") == 4);
  }

  TEST_CASE("a 401 after the renewal is the call's answer: no second retry") {
    asio::io_context io;
    ScriptedBackend backend(io, [&](const SeenRequest& request) -> Answer {
      if (request.target == "/api/v1/login") return {200, tokens("t", "r")};
      return {401, R"({"error":"nope"})"};
    });
    HttpBackendClient client(io.get_executor(), config_for(backend));
    BackendAnswer answer;
    std::vector<asio::awaitable<void>> calls;
    calls.push_back(get_into(&client, &answer));
    run_all(io, backend, std::move(calls));

    CHECK(answer.status == 401);
    CHECK_FALSE(answer.login_failed);
    CHECK(backend.count("/api/v1/login") == 2);
    CHECK(backend.count("/api/task/available") == 2);
  }

  TEST_CASE("a due token is refreshed with the refresh token; a refused refresh falls back to a login") {
    for (const bool refresh_works : {true, false}) {
      CAPTURE(refresh_works);
      asio::io_context io;
      int issued = 0;
      ScriptedBackend backend(io, [&](const SeenRequest& request) -> Answer {
        if (request.target == "/api/v1/login" || (request.target == "/api/v1/auth/refresh" && refresh_works)) {
          ++issued;
          // Opaque tokens: the refresh follows --refresh-time, here 0 s (due at once).
          return {200, tokens("opaque-" + std::to_string(issued), "refresh-" + std::to_string(issued))};
        }
        if (request.target == "/api/v1/auth/refresh") return {401, R"({"error":"unknown refresh token"})"};
        return {request.authorization == "Bearer opaque-" + std::to_string(issued) ? 200 : 401, "{}"};
      });
      HttpBackendClient client(io.get_executor(), config_for(backend, session_for(seconds(0))));
      BackendAnswer first, second;
      std::vector<asio::awaitable<void>> calls;
      calls.push_back(get_twice(&client, &first, &second));
      run_all(io, backend, std::move(calls));

      CHECK(first.status == 200);
      CHECK(second.status == 200);
      std::vector<std::string> targets;
      for (const auto& request : backend.requests) targets.push_back(request.target);
      if (refresh_works) {
        CHECK(targets == std::vector<std::string>{"/api/v1/login", "/api/task/available", "/api/v1/auth/refresh",
                                                  "/api/task/available"});
      } else {
        CHECK(targets == std::vector<std::string>{"/api/v1/login", "/api/task/available", "/api/v1/auth/refresh",
                                                  "/api/v1/login", "/api/task/available"});
      }
      CHECK(json::parse(backend.requests[2].body) == json{{"refreshToken", "refresh-1"}});
      CHECK(backend.requests.back().authorization == "Bearer opaque-2");
    }
  }

  TEST_CASE("a result carries its Idempotency-Key when it has one") {
    asio::io_context io;
    ScriptedBackend backend(io, [](const SeenRequest&) { return Answer{200, "{}"}; });
    auto config = config_for(backend);
    config.auth = false;
    HttpBackendClient client(io.get_executor(), config);
    BackendAnswer keyed, plain;
    std::vector<asio::awaitable<void>> calls;
    calls.push_back(post_keyed_then_plain(&client, &keyed, &plain));
    run_all(io, backend, std::move(calls));

    REQUIRE(backend.requests.size() == 2);
    CHECK(backend.requests[0].idempotency_key == "0001-a");
    CHECK(backend.requests[0].body == R"({"id":"a"})");
    CHECK(backend.requests[0].authorization.empty());
    CHECK(backend.requests[1].idempotency_key.empty());
    CHECK(keyed.ok());
    CHECK(plain.ok());
  }

  TEST_CASE("a 403 names the account and the endpoint") {
    asio::io_context io;
    ScriptedBackend backend(io, [](const SeenRequest& request) -> Answer {
      if (request.target == "/api/v1/login") return {200, tokens("t", "r")};
      return {403, R"({"error":"forbidden"})"};
    });
    HttpBackendClient client(io.get_executor(), config_for(backend));
    BackendAnswer answer;
    CapturedLog log;
    std::vector<asio::awaitable<void>> calls;
    calls.push_back(get_into(&client, &answer));
    run_all(io, backend, std::move(calls));

    CHECK(answer.status == 403);
    CHECK(answer.error ==
          "the account 'runner' lacks the role for /api/task/available (403); check the account's role");
    CHECK(log.text().find(answer.error) != std::string::npos);
    CHECK(backend.count("/api/v1/login") == 1);  // a 403 is no reason to log in again
  }

  TEST_CASE("a refused login is reported as a login failure, not as the call's status") {
    asio::io_context io;
    ScriptedBackend backend(io, [](const SeenRequest&) { return Answer{401, R"({"error":"bad credentials"})"}; });
    HttpBackendClient client(io.get_executor(), config_for(backend));
    BackendAnswer answer;
    std::vector<asio::awaitable<void>> calls;
    calls.push_back(get_into(&client, &answer));
    run_all(io, backend, std::move(calls));

    CHECK(answer.status == 0);
    CHECK(answer.login_failed);
    CHECK(answer.error == "login as 'runner' was refused (HTTP 401)");
    CHECK(backend.count("/api/task/available") == 0);
  }

  TEST_CASE("no password or token reaches the log, at any level") {
    asio::io_context io;
    int issued = 0;
    ScriptedBackend backend(io, [&](const SeenRequest& request) -> Answer {
      if (request.target == "/api/v1/login" || request.target == "/api/v1/auth/refresh") {
        ++issued;
        return {200, tokens("secret-access-" + std::to_string(issued), "secret-refresh-" + std::to_string(issued))};
      }
      // Every other call is refused once, so that the 401 path runs too.
      return {request.authorization == "Bearer secret-access-" + std::to_string(issued) && issued % 2 == 0 ? 200 : 401,
              "{}"};
    });
    HttpBackendClient client(io.get_executor(), config_for(backend, session_for(seconds(0))));
    BackendAnswer first, second;
    CapturedLog log;
    std::vector<asio::awaitable<void>> calls;
    calls.push_back(get_twice(&client, &first, &second));
    run_all(io, backend, std::move(calls));

    CHECK(issued >= 3);
    CHECK(log.text().find("logged in") != std::string::npos);  // the log was captured
    CHECK(log.text().find("s3cret-pass") == std::string::npos);
    CHECK(log.text().find("secret-access") == std::string::npos);
    CHECK(log.text().find("secret-refresh") == std::string::npos);
  }
}
