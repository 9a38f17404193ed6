// The mock backend: its pure request handler, rule by rule, with "now" passed in (no
// sleeping), and one test of the real server over a real socket.

// GCC 12 sees a "null" io_context inside any_io_executor's equality test, a false
// positive in Asio's templates that the socket client below instantiates.
#pragma GCC diagnostic ignored "-Wnull-dereference"

#include <doctest/doctest.h>

#include <chrono>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/buffer.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include "mock_backend/handler.hpp"
#include "mock_backend/server.hpp"
#include "tests/unit/temp_dir.hpp"

namespace {

using namespace proctor::mock;
using nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;

const TimePoint kStart{seconds{1'700'000'000}};

Request get(std::string target, std::vector<Header> headers = {}) {
  return Request{"GET", std::move(target), std::move(headers), ""};
}

Request post(std::string target, std::string body, std::vector<Header> headers = {}) {
  return Request{"POST", std::move(target), std::move(headers), std::move(body)};
}

Backend make_backend(Config config = {}, std::vector<json> tasks = {}) {
  auto backend = Backend::create(std::move(config), std::move(tasks), kStart);
  REQUIRE_MESSAGE(backend.ok(), backend.error().message);
  return std::move(*backend);
}

json body_of(const Response& response) { return json::parse(response.body); }

json stats_of(Backend& backend) { return body_of(backend.handle(get("/admin/stats"), kStart)); }

int64_t unix_ms_of(TimePoint t) { return std::chrono::duration_cast<milliseconds>(t.time_since_epoch()).count(); }

std::vector<std::string> lines_of(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

Config with_auth(seconds ttl = seconds{300}) {
  Config config;
  config.accounts = {Account{Credentials{"alice", "s3cret"}, "RUNNER"}};
  config.token_ttl = ttl;
  return config;
}

// Logs in as `user` (password "s3cret" unless given); returns the login answer's JSON.
json login(Backend& backend, TimePoint now, const std::string& user = "alice", const std::string& password = "s3cret") {
  const Response r =
      backend.handle(post("/api/v1/login", json{{"username", user}, {"password", password}}.dump()), now);
  REQUIRE(r.status == 200);
  return body_of(r);
}

// Asks for new tokens with `refresh_token`; returns the answer.
Response refresh(Backend& backend, const json& refresh_token, TimePoint now) {
  return backend.handle(post("/api/v1/auth/refresh", json{{"refreshToken", refresh_token}}.dump()), now);
}

// The decoded JSON payload of a JWT.
json jwt_payload(const std::string& token) {
  const auto first_dot = token.find('.');
  const auto second_dot = token.find('.', first_dot + 1);
  REQUIRE(second_dot != std::string::npos);
  const auto payload = base64url_decode(token.substr(first_dot + 1, second_dot - first_dot - 1));
  REQUIRE(payload.has_value());
  return json::parse(*payload);
}

// A backend whose every task and result request gets a chaos fault of `kinds`.
Config with_chaos(const std::string& kinds, double share = 1.0) {
  Config config;
  auto parsed = parse_chaos_kinds(kinds);
  REQUIRE_MESSAGE(parsed.ok(), parsed.error().message);
  config.chaos_kinds = *parsed;
  config.chaos_share = share;
  config.seed = 42;
  return config;
}

Header bearer(const json& tokens) {
  return {"Authorization", "Bearer " + tokens["accessToken"].get<std::string>()};
}

FaultRule rule(const std::string& text) {
  auto parsed = parse_fault_rule(text);
  REQUIRE_MESSAGE(parsed.ok(), parsed.error().message);
  return *parsed;
}

}  // namespace

TEST_SUITE("mock_backend") {

TEST_CASE("--serve: files, basic auth, redirect chains, and nothing outside the folder") {
  proctor::test::TempDir dir;
  std::filesystem::create_directories(dir / "served/sub");
  std::ofstream(dir / "served/sub/a.zip", std::ios::binary) << std::string("PK\x03\x04zip", 7);
  std::ofstream(dir / "secret.txt") << "outside";
  Config config;
  config.serve_dir = dir / "served";
  Backend open = make_backend(config);
  auto file = open.handle(get("/files/sub/a.zip?dl=0"), kStart);
  CHECK(file.status == 200);
  CHECK(file.body == std::string("PK\x03\x04zip", 7));
  CHECK(open.handle(get("/files/../secret.txt"), kStart).status == 404);
  CHECK(open.handle(get("/files/sub/missing.zip"), kStart).status == 404);
  auto hop = open.handle(get("/redirect/2/files/sub/a.zip"), kStart);
  CHECK(hop.status == 302);
  CHECK(hop.header("Location") == "/redirect/1/files/sub/a.zip");
  CHECK(open.handle(get("/redirect/1/files/sub/a.zip"), kStart).header("Location") == "/files/sub/a.zip");

  config.serve_auth = Credentials{"lab", "pa:ss"};
  Backend locked = make_backend(config);
  auto refused = locked.handle(get("/files/sub/a.zip"), kStart);
  CHECK(refused.status == 401);
  CHECK(refused.header("WWW-Authenticate").has_value());
  CHECK(locked.handle(get("/files/sub/a.zip", {{"Authorization", "Basic " + base64_encode("lab:wrong")}}), kStart)
            .status == 401);
  CHECK(locked.handle(get("/files/sub/a.zip", {{"Authorization", "Basic " + base64_encode("lab:pa:ss")}}), kStart)
            .status == 200);
  CHECK(base64_encode("lab:pa:ss") == "bGFiOnBhOnNz");  // RFC 4648 alphabet, padded
  CHECK(base64_encode("a") == "YQ==");
}

TEST_CASE("tasks are served first in, first out, each exactly once") {
  Backend backend = make_backend({}, {json{{"id", 1}}, json{{"id", 2}}});
  REQUIRE(backend.handle(post("/admin/tasks", R"({"id":3})"), kStart).status == 200);

  for (int id = 1; id <= 3; ++id) {
    const Response r = backend.handle(get("/api/task/available"), kStart);
    CHECK(r.status == 200);
    CHECK(r.header("Content-Type") == "application/json");
    CHECK(body_of(r) == json{{"id", id}});
  }
  CHECK(body_of(backend.handle(get("/api/task/available"), kStart)) == json{{"status", "UNAVAILABLE"}});
  const json stats = stats_of(backend);
  CHECK(stats["tasks_served"] == 3);
  CHECK(stats["tasks_queued"] == 0);
}

TEST_CASE("each empty-answer mode says 'no task' the configured way") {
  struct Case {
    const char* mode;
    int status;
    bool empty_body;
  };
  for (const Case c : {Case{"unavailable", 200, false}, Case{"204", 204, true}, Case{"404", 404, false},
                       Case{"empty", 200, true}}) {
    CAPTURE(c.mode);
    auto mode = parse_empty_answer(c.mode);
    REQUIRE(mode.ok());
    Config config;
    config.empty_answer = *mode;
    Backend backend = make_backend(config);
    const Response r = backend.handle(get("/api/task/available"), kStart);
    CHECK(r.status == c.status);
    CHECK(r.body.empty() == c.empty_body);
    CHECK(r.header("Content-Type") == "application/json");
    if (std::string(c.mode) == "unavailable") CHECK(body_of(r) == json{{"status", "UNAVAILABLE"}});
    if (std::string(c.mode) == "404") CHECK(body_of(r).contains("error"));
  }
  CHECK_FALSE(parse_empty_answer("never").ok());
}

TEST_CASE("POST /admin/tasks queues one task or an array and says how many") {
  Backend backend = make_backend();
  CHECK(body_of(backend.handle(post("/admin/tasks", R"({"id":"a"})"), kStart))["queued"] == 1);
  CHECK(body_of(backend.handle(post("/admin/tasks", R"([{"id":"b"},{"id":"c"}])"), kStart))["queued"] == 2);
  const Response bad = backend.handle(post("/admin/tasks", "{not json"), kStart);
  CHECK(bad.status == 400);
  CHECK(body_of(bad).contains("error"));
  CHECK(stats_of(backend)["tasks_queued"] == 3);
  CHECK(body_of(backend.handle(get("/api/task/available"), kStart)) == json{{"id", "a"}});
}

TEST_CASE("a raw task is served byte for byte as the next answer, ahead of queued tasks") {
  Backend backend = make_backend({}, {json{{"id", "queued"}}});
  const std::string raw = "{\"id\": 5, \"repositoryUrl\": [unterminated";
  REQUIRE(backend.handle(post("/admin/raw-task", raw), kStart).status == 200);

  const Response first = backend.handle(get("/api/task/available"), kStart);
  CHECK(first.status == 200);
  CHECK(first.body == raw);
  CHECK(body_of(backend.handle(get("/api/task/available"), kStart)) == json{{"id", "queued"}});
}

TEST_CASE("accepted results are kept in memory and appended to the results file as compact lines") {
  proctor::test::TempDir dir;
  Config config;
  config.results_file = dir / "results.jsonl";
  Backend backend = make_backend(config);
  const std::vector<std::string> bodies = {"{ \"id\": \"a\",\n  \"isPassed\": true }",
                                           R"({"attempt": 7, "testResults": {"isPassed": false}})"};
  for (const std::string& body : bodies) {
    const Response r = backend.handle(post("/api/task/result", body), kStart);
    CHECK(r.status == 200);
    CHECK(body_of(r) == json{{"status", "OK"}});
  }

  const std::vector<std::string> lines = lines_of(dir / "results.jsonl");
  REQUIRE(lines.size() == 2);
  CHECK(lines[0] == json::parse(bodies[0]).dump());
  CHECK(lines[1] == json::parse(bodies[1]).dump());
  CHECK(body_of(backend.handle(get("/results"), kStart)) == json{json::parse(bodies[0]), json::parse(bodies[1])});
}

TEST_CASE("a result that is not JSON is refused with 400 and not recorded") {
  proctor::test::TempDir dir;
  Config config;
  config.results_file = dir / "results.jsonl";
  Backend backend = make_backend(config);
  const Response r = backend.handle(post("/api/task/result", "isPassed=true"), kStart);
  CHECK(r.status == 400);
  CHECK_FALSE(body_of(r)["error"].get<std::string>().empty());
  CHECK(lines_of(dir / "results.jsonl").empty());
  CHECK(body_of(backend.handle(get("/results"), kStart)) == json::array());
}

TEST_CASE("stats count results per runner and results whose identity was already posted") {
  Backend backend = make_backend();
  const auto send = [&](const char* body, std::vector<Header> headers) {
    REQUIRE(backend.handle(post("/api/task/result", body, std::move(headers)), kStart).status == 200);
  };
  send(R"({"id":"a"})", {{"X-Runner-Id", "host-1"}});
  send(R"({"id":"a"})", {{"X-Runner-Id", "host-2"}});  // duplicate of id "a"
  send(R"({"attempt":7})", {{"X-Runner-Id", "host-1"}});
  send(R"({"attempt":7})", {{"x-runner-id", "host-1"}});  // duplicate of attempt 7
  send(R"({"id":7})", {});                                // id 7 is not attempt 7

  const json stats = stats_of(backend);
  CHECK(stats["results"] == 5);
  CHECK(stats["duplicate_results"] == 2);
  CHECK(stats["results_by_runner"] == json{{"host-1", 3}, {"host-2", 1}, {"", 1}});
}

TEST_CASE("the request log lists every request with its details but never a credential") {
  Backend backend = make_backend(with_auth(), {json{{"id", "t"}}});
  const json tokens = login(backend, kStart);
  const TimePoint later = kStart + milliseconds{1234};
  REQUIRE(backend
              .handle(get("/api/task/available",
                          {{"User-Agent", "proctor-runner/0.1.0"}, {"X-Runner-Id", "host-1"}, bearer(tokens)}),
                      later)
              .status == 200);

  const Response r = backend.handle(get("/admin/requests"), later);
  const json log = body_of(r);
  REQUIRE(log.size() == 2);
  CHECK(log[0]["method"] == "POST");
  CHECK(log[0]["target"] == "/api/v1/login");
  CHECK(log[0]["authorization_present"] == false);
  CHECK(log[0]["user_agent"].is_null());
  CHECK(log[0]["runner_id"].is_null());
  CHECK(log[1]["method"] == "GET");
  CHECK(log[1]["target"] == "/api/task/available");
  CHECK(log[1]["time_ms"] == 1'700'000'001'234);
  CHECK(log[1]["user_agent"] == "proctor-runner/0.1.0");
  CHECK(log[1]["runner_id"] == "host-1");
  CHECK(log[1]["authorization_present"] == true);
  CHECK(log[1]["status"] == 200);
  CHECK(log[1]["task_enqueued_ms"] == 1'700'000'000'000);
  CHECK(r.body.find(tokens["accessToken"].get<std::string>()) == std::string::npos);
  CHECK(r.body.find("s3cret") == std::string::npos);
}

TEST_CASE("the request log still answers after a request with bytes that are not UTF-8") {
  Backend backend = make_backend();
  CHECK(backend.handle(get("/caf\xe9", {{"X-Runner-Id", "h\xff"}}), kStart).status == 404);
  const Response r = backend.handle(get("/admin/requests"), kStart);
  CHECK(r.status == 200);
  CHECK(body_of(r)[0]["target"] == "/caf\xef\xbf\xbd");
  CHECK(body_of(backend.handle(get("/admin/stats"), kStart))["requests"] == 2);
}

TEST_CASE("login answers a bearer token whose JWT payload carries a readable exp") {
  Backend backend = make_backend(with_auth(seconds{60}));
  const json tokens = login(backend, kStart);
  CHECK(tokens["type"] == "Bearer");
  CHECK_FALSE(tokens["refreshToken"].get<std::string>().empty());

  const std::string access = tokens["accessToken"];
  const auto first_dot = access.find('.');
  const auto second_dot = access.find('.', first_dot + 1);
  REQUIRE(second_dot != std::string::npos);
  CHECK(access.find('.', second_dot + 1) == std::string::npos);
  const auto header = base64url_decode(access.substr(0, first_dot));
  const auto payload = base64url_decode(access.substr(first_dot + 1, second_dot - first_dot - 1));
  REQUIRE(header.has_value());
  REQUIRE(payload.has_value());
  CHECK(json::parse(*header)["typ"] == "JWT");
  CHECK(json::parse(*payload)["exp"] == 1'700'000'060);
}

TEST_CASE("login refuses wrong credentials with 401 and a malformed body with 400") {
  Backend backend = make_backend(with_auth());
  CHECK(backend.handle(post("/api/v1/login", R"({"username":"alice","password":"guess"})"), kStart).status == 401);
  CHECK(backend.handle(post("/api/v1/login", R"({"username":"mallory","password":"s3cret"})"), kStart).status ==
        401);
  CHECK(backend.handle(post("/api/v1/login", R"({"username":"alice"})"), kStart).status == 400);
  CHECK(backend.handle(post("/api/v1/login", "alice:s3cret"), kStart).status == 400);
}

TEST_CASE("with auth, the task and result endpoints need a valid bearer token; admin endpoints stay open") {
  Backend backend = make_backend(with_auth(), {json{{"id", "t"}}});
  const Response anonymous = backend.handle(get("/api/task/available"), kStart);
  CHECK(anonymous.status == 401);
  CHECK(anonymous.header("WWW-Authenticate") == "Bearer");
  CHECK(backend.handle(get("/api/task/available", {{"Authorization", "Bearer forged.token.here"}}), kStart).status ==
        401);
  CHECK(backend.handle(post("/api/task/result", R"({"id":"t"})"), kStart).status == 401);
  CHECK(stats_of(backend)["tasks_served"] == 0);
  CHECK(stats_of(backend)["results"] == 0);

  const json tokens = login(backend, kStart);
  CHECK(body_of(backend.handle(get("/api/task/available", {bearer(tokens)}), kStart)) == json{{"id", "t"}});
  CHECK(backend.handle(post("/api/task/result", R"({"id":"t"})", {bearer(tokens)}), kStart).status == 200);
  CHECK(backend.handle(post("/admin/tasks", R"({"id":"u"})"), kStart).status == 200);
  CHECK(backend.handle(get("/admin/requests"), kStart).status == 200);
  CHECK(backend.handle(get("/results"), kStart).status == 200);
}

TEST_CASE("an access token stops working at its exp and a refresh token gets a new one") {
  Backend backend = make_backend(with_auth(seconds{60}));
  const json tokens = login(backend, kStart);
  CHECK(backend.handle(get("/api/task/available", {bearer(tokens)}), kStart + seconds{59}).status == 200);
  CHECK(backend.handle(get("/api/task/available", {bearer(tokens)}), kStart + seconds{60}).status == 401);

  const std::string refresh_body = json{{"refreshToken", tokens["refreshToken"]}}.dump();
  const Response refreshed = backend.handle(post("/api/v1/auth/refresh", refresh_body), kStart + seconds{60});
  REQUIRE(refreshed.status == 200);
  const json fresh = body_of(refreshed);
  CHECK(fresh["type"] == "Bearer");
  CHECK(fresh["accessToken"] != tokens["accessToken"]);
  CHECK(backend.handle(get("/api/task/available", {bearer(fresh)}), kStart + seconds{61}).status == 200);

  CHECK(backend.handle(post("/api/v1/auth/refresh", R"({"refreshToken":"never-issued"})"), kStart).status == 401);
}

TEST_CASE("without auth there is no login endpoint and no token is needed") {
  Backend backend = make_backend({}, {json{{"id", "t"}}});
  CHECK(backend.handle(post("/api/v1/login", R"({"username":"a","password":"b"})"), kStart).status == 404);
  CHECK(backend.handle(get("/api/task/available"), kStart).status == 200);
}

TEST_CASE("parse_fault_rule reads endpoint, kind and count, and refuses malformed rules") {
  const FaultRule status = rule("post:500:2");
  CHECK(status.endpoint == FaultEndpoint::post);
  CHECK(status.kind == FaultKind::status);
  CHECK(status.status == 500);
  CHECK(status.count == 2);
  const FaultRule slow = rule("get:slow=1500");
  CHECK(slow.kind == FaultKind::slow);
  CHECK(slow.delay == milliseconds{1500});
  CHECK(slow.count == 1);
  CHECK(rule("login:garbage").kind == FaultKind::garbage);
  CHECK(rule("refresh:close:3").kind == FaultKind::close);

  for (const char* bad : {"", "post", "put:500", "get:99", "get:700", "get:slow=", "get:slow=-5", "get:boom",
                          "post:500:0", "post:500:x", "post:500:1:2"}) {
    CAPTURE(bad);
    const auto parsed = parse_fault_rule(bad);
    REQUIRE_FALSE(parsed.ok());
    CHECK_FALSE(parsed.error().message.empty());
  }
}

TEST_CASE("a status fault answers the next COUNT requests to its endpoint without taking a task") {
  Config config;
  config.faults = {rule("get:503:2")};
  Backend backend = make_backend(config, {json{{"id", "t"}}});
  for (int i = 0; i < 2; ++i) {
    const Response r = backend.handle(get("/api/task/available"), kStart);
    CHECK(r.status == 503);
    CHECK(r.header("Content-Type") == "application/json");
    CHECK(body_of(r).contains("error"));
  }
  CHECK(body_of(backend.handle(get("/api/task/available"), kStart)) == json{{"id", "t"}});
}

TEST_CASE("a faulted POST is not recorded as a result; the retry is") {
  proctor::test::TempDir dir;
  Config config;
  config.results_file = dir / "results.jsonl";
  config.faults = {rule("post:500")};
  Backend backend = make_backend(config);
  CHECK(backend.handle(post("/api/task/result", R"({"id":"a"})"), kStart).status == 500);
  CHECK(stats_of(backend)["results"] == 0);
  CHECK(backend.handle(post("/api/task/result", R"({"id":"a"})"), kStart).status == 200);
  const json stats = stats_of(backend);
  CHECK(stats["results"] == 1);
  CHECK(stats["duplicate_results"] == 0);
  CHECK(lines_of(dir / "results.jsonl").size() == 1);
}

TEST_CASE("a 429 fault carries Retry-After: 1") {
  Config config;
  config.faults = {rule("get:429")};
  Backend backend = make_backend(config);
  const Response r = backend.handle(get("/api/task/available"), kStart);
  CHECK(r.status == 429);
  CHECK(r.header("Retry-After") == "1");
}

TEST_CASE("a garbage fault answers 200 with a body that is not JSON") {
  Config config;
  config.faults = {rule("get:garbage")};
  Backend backend = make_backend(config, {json{{"id", "t"}}});
  const Response r = backend.handle(get("/api/task/available"), kStart);
  CHECK(r.status == 200);
  CHECK_FALSE(r.body.empty());
  CHECK_FALSE(json::accept(r.body));
  CHECK(r.header("Content-Type") != "application/json");
  CHECK(stats_of(backend)["tasks_queued"] == 1);
}

TEST_CASE("a slow fault gives the real answer with a delay for the server to wait") {
  Config config;
  config.faults = {rule("get:slow=1500"), rule("post:slow=250")};
  Backend backend = make_backend(config, {json{{"id", "t"}}});
  const Response slow_get = backend.handle(get("/api/task/available"), kStart);
  CHECK(slow_get.delay == milliseconds{1500});
  CHECK(body_of(slow_get) == json{{"id", "t"}});
  const Response slow_post = backend.handle(post("/api/task/result", R"({"id":"t"})"), kStart);
  CHECK(slow_post.delay == milliseconds{250});
  CHECK(slow_post.status == 200);
  CHECK(stats_of(backend)["results"] == 1);
  CHECK(backend.handle(get("/api/task/available"), kStart).delay == milliseconds{0});
}

TEST_CASE("a close fault asks the server to hang up without answering") {
  Config config;
  config.faults = {rule("get:close")};
  Backend backend = make_backend(config, {json{{"id", "t"}}});
  CHECK(backend.handle(get("/api/task/available"), kStart).close_without_answer);
  CHECK(body_of(backend.handle(get("/admin/requests"), kStart))[0]["status"] == 0);
  const Response next = backend.handle(get("/api/task/available"), kStart);
  CHECK_FALSE(next.close_without_answer);
  CHECK(body_of(next) == json{{"id", "t"}});
}

TEST_CASE("a login fault hits the login endpoint only") {
  Config config = with_auth();
  config.faults = {rule("login:500")};
  Backend backend = make_backend(config);
  const std::string credentials = R"({"username":"alice","password":"s3cret"})";
  CHECK(backend.handle(post("/api/v1/login", credentials), kStart).status == 500);
  CHECK(backend.handle(post("/api/v1/login", credentials), kStart).status == 200);
}

TEST_CASE("faults added through /admin/faults apply in order; an invalid rule adds none") {
  Backend backend = make_backend({}, {json{{"id", "t"}}});
  const Response bad = backend.handle(post("/admin/faults", R"({"rules":["get:500","get:teapot"]})"), kStart);
  CHECK(bad.status == 400);
  CHECK(body_of(bad)["error"].get<std::string>().find("get:teapot") != std::string::npos);

  const Response added = backend.handle(post("/admin/faults", R"({"rules":["get:500","get:close"]})"), kStart);
  CHECK(added.status == 200);
  CHECK(body_of(added)["added"] == 2);
  CHECK(backend.handle(get("/api/task/available"), kStart).status == 500);
  CHECK(backend.handle(get("/api/task/available"), kStart).close_without_answer);
  CHECK(body_of(backend.handle(get("/api/task/available"), kStart)) == json{{"id", "t"}});
}

TEST_CASE("unknown paths answer 404 JSON and known paths with the wrong method 405") {
  Backend backend = make_backend();
  const Response unknown = backend.handle(get("/api/nothing"), kStart);
  CHECK(unknown.status == 404);
  CHECK(unknown.header("Content-Type") == "application/json");
  CHECK(body_of(unknown).contains("error"));
  const Response wrong = backend.handle(post("/api/task/available", "{}"), kStart);
  CHECK(wrong.status == 405);
  CHECK(wrong.header("Allow") == "GET");
}

TEST_CASE("the task and result paths follow the configuration and ignore query strings") {
  Config config;
  config.get_api = "/v2/next";
  config.post_api = "/v2/done";
  Backend backend = make_backend(config, {json{{"id", "t"}}});
  CHECK(backend.handle(get("/api/task/available"), kStart).status == 404);
  CHECK(body_of(backend.handle(get("/v2/next?runner=host-1"), kStart)) == json{{"id", "t"}});
  CHECK(backend.handle(post("/v2/done", R"({"id":"t"})"), kStart).status == 200);
}

TEST_CASE("a tasks file is read as an array of tasks; a file that is not JSON is refused") {
  proctor::test::TempDir dir;
  std::ofstream(dir / "tasks.json") << R"([{"id":"a"},{"attempt":2}])";
  std::ofstream(dir / "broken.json") << "[{\"id\":";
  const auto tasks = load_tasks_file(dir / "tasks.json");
  REQUIRE(tasks.ok());
  CHECK(*tasks == std::vector<json>{json{{"id", "a"}}, json{{"attempt", 2}}});
  const auto broken = load_tasks_file(dir / "broken.json");
  REQUIRE_FALSE(broken.ok());
  CHECK(broken.error().message.find("broken.json") != std::string::npos);
  CHECK_FALSE(load_tasks_file(dir / "missing.json").ok());
}

TEST_CASE("creating a backend fails plainly when the results file cannot be opened") {
  proctor::test::TempDir dir;
  Config config;
  config.results_file = dir.path();  // a directory
  const auto backend = Backend::create(config, {}, kStart);
  REQUIRE_FALSE(backend.ok());
  CHECK(backend.error().message.find("results file") != std::string::npos);
}

TEST_CASE("base64url round-trips every byte and refuses characters outside its alphabet") {
  std::string bytes;
  for (int i = 0; i < 256; ++i) bytes.push_back(static_cast<char>(i));
  for (std::size_t length : {0U, 1U, 2U, 3U, 4U, 256U}) {
    const std::string encoded = base64url_encode(bytes.substr(0, length));
    CHECK(encoded.find_first_of("+/=") == std::string::npos);
    CHECK(base64url_decode(encoded) == bytes.substr(0, length));
  }
  CHECK(base64url_decode("eyJ0eXAiOiJKV1QifQ") == R"({"typ":"JWT"})");
  CHECK_FALSE(base64url_decode("a+b/").has_value());
}

TEST_CASE("parse_account reads USER:PASSWORD[:ROLE] with RUNNER as the default role") {
  const auto plain = parse_account("alice:s3cret");
  REQUIRE(plain.ok());
  CHECK(plain->credentials.username == "alice");
  CHECK(plain->credentials.password == "s3cret");
  CHECK(plain->role == "RUNNER");
  const auto admin = parse_account("bob:pw:ADMIN");
  REQUIRE(admin.ok());
  CHECK(admin->credentials.password == "pw");
  CHECK(admin->role == "ADMIN");
  const auto colons = parse_account("carol:pa:ss");  // "ss" is no role name: part of the password
  REQUIRE(colons.ok());
  CHECK(colons->credentials.password == "pa:ss");
  CHECK(colons->role == "RUNNER");
  const auto explicit_role = parse_account("dave:x:ADMIN:RUNNER");
  REQUIRE(explicit_role.ok());
  CHECK(explicit_role->credentials.password == "x:ADMIN");
  CHECK(explicit_role->role == "RUNNER");
  CHECK_FALSE(parse_account("nopassword").ok());
  CHECK_FALSE(parse_account(":pw").ok());
}

TEST_CASE("an account given twice is refused") {
  Config config = with_auth();
  config.accounts.push_back(Account{Credentials{"alice", "other"}, "ADMIN"});
  const auto backend = Backend::create(config, {}, kStart);
  REQUIRE_FALSE(backend.ok());
  CHECK(backend.error().message.find("alice") != std::string::npos);
}

TEST_CASE("several accounts log in; one whose role is not RUNNER gets 403 on task and result endpoints") {
  Config config = with_auth();
  config.accounts.push_back(Account{Credentials{"bob", "s3cret"}, "ADMIN"});
  Backend backend = make_backend(config, {json{{"id", "t"}}});
  const json admin = login(backend, kStart, "bob");
  CHECK(jwt_payload(admin["accessToken"])["role"] == "ADMIN");
  CHECK(jwt_payload(admin["accessToken"])["sub"] == "bob");

  for (const Response& r : {backend.handle(get("/api/task/available", {bearer(admin)}), kStart),
                            backend.handle(post("/api/task/result", R"({"id":"t"})", {bearer(admin)}), kStart)}) {
    CHECK(r.status == 403);
    CHECK(body_of(r) == json{{"error", "forbidden"},
                             {"message", "the account 'bob' has role 'ADMIN'; task endpoints need RUNNER"}});
  }
  CHECK(stats_of(backend)["tasks_served"] == 0);
  CHECK(stats_of(backend)["results"] == 0);

  const json runner = login(backend, kStart);
  const json payload = jwt_payload(runner["accessToken"]);
  CHECK(payload["sub"] == "alice");
  CHECK(payload["role"] == "RUNNER");
  CHECK(payload["iat"] == 1'700'000'000);
  CHECK(payload["exp"] == 1'700'000'300);
  CHECK(body_of(backend.handle(get("/api/task/available", {bearer(runner)}), kStart)) == json{{"id", "t"}});
  // An expired ADMIN token is a 401 first: the client must log in before its role matters.
  CHECK(backend.handle(get("/api/task/available", {bearer(admin)}), kStart + seconds{300}).status == 401);
}

TEST_CASE("a refresh token works once: the refresh answers a new one and the used one is refused") {
  Backend backend = make_backend(with_auth());
  const json tokens = login(backend, kStart);
  const Response first = refresh(backend, tokens["refreshToken"], kStart + seconds{10});
  REQUIRE(first.status == 200);
  const json rotated = body_of(first);
  CHECK(rotated["type"] == "Bearer");
  CHECK(rotated["refreshToken"] != tokens["refreshToken"]);
  CHECK(backend.handle(get("/api/task/available", {bearer(rotated)}), kStart + seconds{10}).status == 200);

  CHECK(refresh(backend, tokens["refreshToken"], kStart + seconds{11}).status == 401);  // used
  CHECK(refresh(backend, rotated["refreshToken"], kStart + seconds{12}).status == 200);
}

TEST_CASE("a login invalidates every refresh token issued to that user before, and no other user's") {
  Config config = with_auth();
  config.accounts.push_back(Account{Credentials{"bob", "s3cret"}, "RUNNER"});
  Backend backend = make_backend(config);
  const json first = login(backend, kStart);
  const json alice_again = login(backend, kStart);
  const json other_bob = login(backend, kStart, "bob");
  const json second = login(backend, kStart + seconds{1});
  CHECK(refresh(backend, first["refreshToken"], kStart + seconds{2}).status == 401);
  CHECK(refresh(backend, alice_again["refreshToken"], kStart + seconds{2}).status == 401);
  CHECK(refresh(backend, other_bob["refreshToken"], kStart + seconds{2}).status == 200);
  CHECK(refresh(backend, second["refreshToken"], kStart + seconds{2}).status == 200);
  // The earlier access token itself still works until its exp.
  CHECK(backend.handle(get("/api/task/available", {bearer(first)}), kStart + seconds{2}).status == 200);
}

TEST_CASE("a refresh token expires after the refresh ttl") {
  Config config = with_auth();
  config.refresh_ttl = seconds{100};
  Backend backend = make_backend(config);
  const json tokens = login(backend, kStart);
  CHECK(refresh(backend, tokens["refreshToken"], kStart + seconds{100}).status == 401);
  const json again = login(backend, kStart + seconds{100});
  CHECK(refresh(backend, again["refreshToken"], kStart + seconds{199}).status == 200);
}

TEST_CASE("a cut rule answers for real but marks half the body to be sent; a cut POST is recorded") {
  CHECK(rule("get:cut:2").kind == FaultKind::cut);
  Config config;
  config.faults = {rule("get:cut"), rule("post:cut")};
  Backend backend = make_backend(config, {json{{"id", "cut-task"}}});
  const Response task = backend.handle(get("/api/task/available"), kStart);
  CHECK(task.status == 200);
  CHECK(body_of(task) == json{{"id", "cut-task"}});
  REQUIRE(task.cut_body_after.has_value());
  CHECK(*task.cut_body_after == task.body.size() / 2);
  const Response result = backend.handle(post("/api/task/result", R"({"id":"cut-task"})"), kStart);
  CHECK(result.cut_body_after.has_value());
  const json stats = stats_of(backend);
  CHECK(stats["tasks_served"] == 1);
  CHECK(stats["results"] == 1);
  CHECK(stats["faults"] == json{{"cut", 2}});
  CHECK_FALSE(backend.handle(get("/api/task/available"), kStart).cut_body_after.has_value());
}

TEST_CASE("a 429 rule carries the configured Retry-After") {
  Config config;
  config.faults = {rule("post:429")};
  config.retry_after = seconds{7};
  Backend backend = make_backend(config);
  CHECK(backend.handle(post("/api/task/result", R"({"id":"a"})"), kStart).header("Retry-After") == "7");
}

TEST_CASE("parse_chaos_kinds reads a comma list and refuses unknown kinds") {
  const auto kinds = parse_chaos_kinds("500, cut,duplicate,cut");
  REQUIRE(kinds.ok());
  CHECK(*kinds == std::vector<ChaosKind>{ChaosKind::status_500, ChaosKind::cut, ChaosKind::duplicate});
  CHECK(*parse_chaos_kinds("500,429,slow,cut,garbage,close,duplicate") == all_chaos_kinds());
  CHECK_FALSE(parse_chaos_kinds("").ok());
  CHECK_FALSE(parse_chaos_kinds("500,teapot").ok());
  Config out_of_range;
  out_of_range.chaos_share = 1.5;
  CHECK_FALSE(Backend::create(out_of_range, {}, kStart).ok());
}

TEST_CASE("chaos at share 1 with a status kind answers that status and records nothing") {
  {
    Backend backend = make_backend(with_chaos("500"), {json{{"id", "t"}}});
    const Response task = backend.handle(get("/api/task/available"), kStart);
    CHECK(task.status == 500);
    CHECK(body_of(task).contains("error"));
    CHECK(backend.handle(post("/api/task/result", R"({"id":"t"})"), kStart).status == 500);
    const json stats = stats_of(backend);
    CHECK(stats["queue"] == 1);
    CHECK(stats["results"] == 0);
    CHECK(stats["faults"] == json{{"500", 2}});
  }
  {
    Config config = with_chaos("429");
    config.retry_after = seconds{3};
    Backend backend = make_backend(config);
    const Response r = backend.handle(get("/api/task/available"), kStart);
    CHECK(r.status == 429);
    CHECK(r.header("Retry-After") == "3");
  }
}

TEST_CASE("chaos slow answers for real after the slow delay; a slow POST is recorded") {
  Config config = with_chaos("slow");
  config.slow_delay = milliseconds{3000};
  Backend backend = make_backend(config, {json{{"id", "t"}}});
  const Response task = backend.handle(get("/api/task/available"), kStart);
  CHECK(task.delay == milliseconds{3000});
  CHECK(body_of(task) == json{{"id", "t"}});
  const Response result = backend.handle(post("/api/task/result", R"({"id":"t"})"), kStart);
  CHECK(result.delay == milliseconds{3000});
  CHECK(result.status == 200);
  CHECK(stats_of(backend)["results"] == 1);
}

TEST_CASE("chaos cut sends half the body and still records a POST") {
  proctor::test::TempDir dir;
  Config config = with_chaos("cut");
  config.results_file = dir / "results.jsonl";
  Backend backend = make_backend(config, {json{{"id", "t"}}});
  const Response task = backend.handle(get("/api/task/available"), kStart);
  REQUIRE(task.cut_body_after.has_value());
  CHECK(*task.cut_body_after == task.body.size() / 2);
  CHECK(*task.cut_body_after > 0);
  const Response result = backend.handle(post("/api/task/result", R"({"id":"t"})"), kStart);
  CHECK(result.cut_body_after.has_value());
  CHECK(stats_of(backend)["results"] == 1);
  CHECK(lines_of(dir / "results.jsonl").size() == 1);
}

TEST_CASE("chaos close never records a POST; garbage records it and then answers garbage") {
  for (const char* kind : {"garbage", "close"}) {
    CAPTURE(kind);
    Backend backend = make_backend(with_chaos(kind), {json{{"id", "t"}}});
    const Response task = backend.handle(get("/api/task/available"), kStart);
    const Response result = backend.handle(post("/api/task/result", R"({"id":"t"})"), kStart);
    const json stats = stats_of(backend);
    if (std::string(kind) == "garbage") {
      CHECK(task.status == 200);
      CHECK_FALSE(json::accept(task.body));
      CHECK(result.status == 200);
      CHECK_FALSE(json::accept(result.body));
      // A 2xx is success to the client, so the result was recorded before the garbage.
      CHECK(stats["results"] == 1);
    } else {
      CHECK(task.close_without_answer);
      CHECK(result.close_without_answer);
      CHECK(stats["results"] == 0);
    }
    CHECK(stats["queue"] == 1);  // a faulted GET hands nothing out
    CHECK(stats["faults"] == json{{kind, 2}});
  }
}

TEST_CASE("chaos duplicate hands out again a task already handed out, and never touches a POST") {
  Backend backend = make_backend(with_chaos("duplicate"), {json{{"id", "first"}}, json{{"id", "second"}}});
  // Nothing handed out yet: a normal answer.
  CHECK(body_of(backend.handle(get("/api/task/available"), kStart)) == json{{"id", "first"}});
  for (int i = 0; i < 3; ++i) {
    const Response again = backend.handle(get("/api/task/available"), kStart);
    CHECK(again.status == 200);
    CHECK(body_of(again) == json{{"id", "first"}});
    CHECK_FALSE(again.fault.empty());
  }
  const Response result = backend.handle(post("/api/task/result", R"({"id":"first"})"), kStart);
  CHECK(result.status == 200);  // duplicate is GET only, and the only kind: no fault on a POST
  CHECK(result.fault.empty());
  const json stats = stats_of(backend);
  CHECK(stats["tasks_served"] == 1);
  CHECK(stats["tasks_duplicated"] == 3);
  CHECK(stats["queue"] == 1);
  CHECK(stats["results"] == 1);
  CHECK(stats["faults"] == json{{"duplicate", 3}});
  CHECK(body_of(backend.handle(get("/admin/requests"), kStart))[1]["task_duplicated"] == true);
}

TEST_CASE("a task without a result is not offered again before the task timeout, and is at it") {
  Config config;
  config.task_timeout = seconds{600};
  std::vector<std::string> logged;
  config.log = [&logged](const std::string& line) { logged.push_back(line); };
  Backend backend = make_backend(config, {json{{"id", "a"}, {"repositoryUrl", "https://example.org/r.git"}}});
  const Response first = backend.handle(get("/api/task/available"), kStart);
  REQUIRE(first.status == 200);

  CHECK(body_of(backend.handle(get("/api/task/available"), kStart + seconds{599})) ==
        json{{"status", "UNAVAILABLE"}});
  CHECK(logged.empty());
  const Response again = backend.handle(get("/api/task/available"), kStart + seconds{600});
  CHECK(again.status == 200);
  CHECK(again.body == first.body);
  CHECK(body_of(backend.handle(get("/api/task/available"), kStart + seconds{601})) ==
        json{{"status", "UNAVAILABLE"}});

  const json stats = stats_of(backend);
  CHECK(stats["tasks_served"] == 2);  // a re-offered task served again is a hand-out
  CHECK(stats["tasks_requeued"] == 1);
  CHECK(stats["queue"] == 0);
  const json log = body_of(backend.handle(get("/admin/requests"), kStart));
  CHECK_FALSE(log[1].contains("tasks_requeued"));
  CHECK(log[2]["tasks_requeued"] == 1);
  CHECK(log[2]["task_enqueued_ms"] == unix_ms_of(kStart + seconds{600}));
  REQUIRE(logged.size() == 1);
  CHECK(logged[0].find(R"(id:"a")") != std::string::npos);
}

TEST_CASE("a task whose result came (same id or attempt) is never offered again") {
  Backend backend = make_backend({}, {json{{"id", "a"}}, json{{"attempt", 7}}, json{{"id", "b"}}});
  for (int i = 0; i < 3; ++i) REQUIRE(backend.handle(get("/api/task/available"), kStart).status == 200);
  REQUIRE(backend.handle(post("/api/task/result", R"({"id":"a","isPassed":true})"), kStart + seconds{10}).status ==
          200);
  REQUIRE(backend.handle(post("/api/task/result", R"({"attempt":7})"), kStart + seconds{599}).status == 200);
  REQUIRE(backend.handle(post("/api/task/result", R"({"id":"c"})"), kStart + seconds{20}).status == 200);

  // Only "b" has no result ("c" is another task's identity).
  CHECK(body_of(backend.handle(get("/api/task/available"), kStart + seconds{600})) == json{{"id", "b"}});
  CHECK(body_of(backend.handle(get("/api/task/available"), kStart + seconds{700})) ==
        json{{"status", "UNAVAILABLE"}});
  CHECK(body_of(backend.handle(get("/admin/stats"), kStart + seconds{1199}))["tasks_requeued"] == 1);
}

TEST_CASE("timed-out tasks are offered again in hand-out order, ahead of tasks never served") {
  Backend backend = make_backend({}, {json{{"id", "a"}}, json{{"id", "b"}}, json{{"id", "c"}}});
  CHECK(body_of(backend.handle(get("/api/task/available"), kStart)) == json{{"id", "a"}});
  CHECK(body_of(backend.handle(get("/api/task/available"), kStart + seconds{1})) == json{{"id", "b"}});

  // One request at +700 finds both timed out.
  CHECK(body_of(backend.handle(get("/api/task/available"), kStart + seconds{700})) == json{{"id", "a"}});
  CHECK(body_of(backend.handle(get("/api/task/available"), kStart + seconds{700})) == json{{"id", "b"}});
  CHECK(body_of(backend.handle(get("/api/task/available"), kStart + seconds{700})) == json{{"id", "c"}});
  const json stats = stats_of(backend);
  CHECK(stats["tasks_requeued"] == 2);
  CHECK(stats["tasks_served"] == 5);
}

TEST_CASE("raw tasks and tasks without an identity are never offered again") {
  Backend backend = make_backend({}, {json{{"repositoryUrl", "https://example.org/r.git"}}});
  REQUIRE(backend.handle(post("/admin/raw-task", R"({"id":"raw"})"), kStart).status == 200);
  CHECK(body_of(backend.handle(get("/api/task/available"), kStart)) == json{{"id", "raw"}});
  CHECK(body_of(backend.handle(get("/api/task/available"), kStart)) ==
        json{{"repositoryUrl", "https://example.org/r.git"}});

  for (const seconds later : {seconds{600}, seconds{1200}, seconds{100'000}}) {
    CHECK(body_of(backend.handle(get("/api/task/available"), kStart + later)) == json{{"status", "UNAVAILABLE"}});
  }
  CHECK(stats_of(backend)["tasks_requeued"] == 0);
}

TEST_CASE("a result after a re-offer is recorded once; a second one is a duplicate") {
  Backend backend = make_backend({}, {json{{"id", "a"}}});
  REQUIRE(backend.handle(get("/api/task/available"), kStart).status == 200);
  CHECK(body_of(backend.handle(get("/api/task/available"), kStart + seconds{600})) == json{{"id", "a"}});
  CHECK(backend.handle(post("/api/task/result", R"({"id":"a"})"), kStart + seconds{601}).status == 200);
  json stats = body_of(backend.handle(get("/admin/stats"), kStart + seconds{601}));
  CHECK(stats["results"] == 1);
  CHECK(stats["duplicate_results"] == 0);

  CHECK(backend.handle(post("/api/task/result", R"({"id":"a"})"), kStart + seconds{602}).status == 200);
  // The second hand-out got its result too: nothing more is offered.
  CHECK(body_of(backend.handle(get("/api/task/available"), kStart + seconds{5000})) ==
        json{{"status", "UNAVAILABLE"}});
  stats = stats_of(backend);
  CHECK(stats["results"] == 2);
  CHECK(stats["duplicate_results"] == 1);
  CHECK(stats["tasks_requeued"] == 1);
}

TEST_CASE("a duplicate re-serve is not a hand-out: it neither restarts nor adds a timeout") {
  Backend backend = make_backend(with_chaos("duplicate"), {json{{"id", "a"}}});
  CHECK(body_of(backend.handle(get("/api/task/available"), kStart)) == json{{"id", "a"}});  // a real hand-out
  const Response duplicate = backend.handle(get("/api/task/available"), kStart + seconds{300});
  CHECK(body_of(duplicate) == json{{"id", "a"}});
  CHECK_FALSE(duplicate.fault.empty());

  CHECK(body_of(backend.handle(get("/admin/stats"), kStart + seconds{600}))["tasks_requeued"] == 1);
  CHECK(body_of(backend.handle(get("/admin/stats"), kStart + seconds{5000}))["tasks_requeued"] == 1);
}

TEST_CASE("a task timeout of 0 never offers a task again") {
  Config config;
  config.task_timeout = seconds{0};
  Backend backend = make_backend(config, {json{{"id", "a"}}});
  REQUIRE(backend.handle(get("/api/task/available"), kStart).status == 200);
  CHECK(body_of(backend.handle(get("/api/task/available"), kStart + seconds{100'000})) ==
        json{{"status", "UNAVAILABLE"}});
  CHECK(stats_of(backend)["tasks_requeued"] == 0);
}

TEST_CASE("chaos at share 0 never faults") {
  Config config = with_chaos("500,429,slow,cut,garbage,close,duplicate", 0.0);
  Backend backend = make_backend(config);
  for (int i = 0; i < 1000; ++i) {
    const Response r = backend.handle(i % 2 == 0 ? get("/api/task/available")
                                                 : post("/api/task/result", json{{"id", i}}.dump()),
                                      kStart);
    REQUIRE(r.status == 200);
    REQUIRE(r.fault.empty());
    REQUIRE(r.delay == milliseconds{0});
    REQUIRE_FALSE(r.cut_body_after.has_value());
  }
  CHECK(stats_of(backend)["faults"] == json::object());
  CHECK(stats_of(backend)["results"] == 500);
}

TEST_CASE("chaos at share 0.2 faults about a fifth of 1000 requests, and a seed replays the same ones") {
  const auto faulted = [](uint64_t seed) {
    Config config = with_chaos("500,429", 0.2);
    config.seed = seed;
    Backend backend = make_backend(config);
    std::vector<int> hits;
    for (int i = 0; i < 1000; ++i) {
      if (backend.handle(get("/api/task/available"), kStart).status != 200) hits.push_back(i);
    }
    const json faults = stats_of(backend)["faults"];
    CHECK(faults["500"].get<int64_t>() + faults["429"].get<int64_t>() == static_cast<int64_t>(hits.size()));
    CHECK(faults["500"].get<int64_t>() > 0);
    CHECK(faults["429"].get<int64_t>() > 0);
    return hits;
  };
  const std::vector<int> hits = faulted(7);
  // Binomial(1000, 0.2): mean 200, standard deviation 12.6; this is about four of them.
  CHECK(hits.size() >= 150);
  CHECK(hits.size() <= 250);
  CHECK(faulted(7) == hits);
  CHECK(faulted(8) != hits);
}

TEST_CASE("an Idempotency-Key already recorded is answered as the first time and not recorded again") {
  proctor::test::TempDir dir;
  Config config;
  config.results_file = dir / "results.jsonl";
  Backend backend = make_backend(config);
  const Response first =
      backend.handle(post("/api/task/result", R"({"id":"a"})", {{"Idempotency-Key", "spool-1"}}), kStart);
  REQUIRE(first.status == 200);
  const Response replay =
      backend.handle(post("/api/task/result", R"({"id":"a"})", {{"idempotency-key", "spool-1"}}), kStart);
  CHECK(replay.status == 200);
  CHECK(replay.body == first.body);
  json stats = stats_of(backend);
  CHECK(stats["results"] == 1);
  CHECK(stats["replayed_deliveries"] == 1);
  CHECK(stats["duplicate_results"] == 0);
  CHECK(lines_of(dir / "results.jsonl").size() == 1);

  // The same identity under another key, or none, is a real second delivery.
  CHECK(backend.handle(post("/api/task/result", R"({"id":"a"})", {{"Idempotency-Key", "spool-2"}}), kStart)
            .status == 200);
  stats = stats_of(backend);
  CHECK(stats["results"] == 2);
  CHECK(stats["distinct_results"] == 1);
  CHECK(stats["duplicate_results"] == 1);
  CHECK(stats["replayed_deliveries"] == 1);
  CHECK(backend.handle(post("/api/task/result", R"({"id":"a"})"), kStart).status == 200);
  CHECK(stats_of(backend)["duplicate_results"] == 2);

  // A refused body does not claim its key: the corrected retry is recorded.
  CHECK(backend.handle(post("/api/task/result", "not json", {{"Idempotency-Key", "spool-3"}}), kStart).status ==
        400);
  CHECK(backend.handle(post("/api/task/result", R"({"id":"b"})", {{"Idempotency-Key", "spool-3"}}), kStart)
            .status == 200);
  CHECK(stats_of(backend)["results"] == 4);
  CHECK(stats_of(backend)["replayed_deliveries"] == 1);
}

TEST_CASE("/admin/stats has every counter the soak reads") {
  Config config;
  config.faults = {rule("get:503"), rule("post:close")};
  Backend backend = make_backend(config, {json{{"id", "a"}}, json{{"id", "b"}}});
  CHECK(backend.handle(get("/api/task/available"), kStart).status == 503);
  CHECK(body_of(backend.handle(get("/api/task/available"), kStart)) == json{{"id", "a"}});
  CHECK(backend.handle(post("/api/task/result", R"({"id":"a"})"), kStart).close_without_answer);
  CHECK(backend.handle(post("/api/task/result", R"({"id":"a"})", {{"Idempotency-Key", "k"}}), kStart).status ==
        200);
  CHECK(backend.handle(post("/api/task/result", R"({"id":"a"})", {{"Idempotency-Key", "k"}}), kStart).status ==
        200);

  const json stats = stats_of(backend);
  CHECK(stats["tasks_served"] == 1);
  CHECK(stats["tasks_duplicated"] == 0);
  CHECK(stats["tasks_requeued"] == 0);
  CHECK(stats["queue"] == 1);
  CHECK(stats["results"] == 1);
  CHECK(stats["distinct_results"] == 1);
  CHECK(stats["duplicate_results"] == 0);
  CHECK(stats["replayed_deliveries"] == 1);
  CHECK(stats["faults"] == json{{"503", 1}, {"close", 1}});
}

TEST_CASE("the server answers real HTTP with keep-alive, hangs up on close faults, delays slow ones, "
          "and stops with connections open") {
  namespace asio = boost::asio;
  namespace beast = boost::beast;
  namespace http = beast::http;
  using tcp = asio::ip::tcp;

  auto server = Server::open(make_backend({}, {json{{"id", "wire-1"}}}), ServerOptions{});
  REQUIRE_MESSAGE(server.ok(), server.error().message);
  REQUIRE(server->port() != 0);
  std::thread serving([&server] { server->run(); });

  asio::io_context client;
  const tcp::endpoint endpoint(asio::ip::make_address("127.0.0.1"), server->port());
  const auto connect = [&] {
    tcp::socket socket(client);
    socket.connect(endpoint);
    return socket;
  };
  const auto exchange = [](tcp::socket& socket, beast::flat_buffer& buffer, http::verb verb,
                           const std::string& target, const std::string& body = {}) {
    http::request<http::string_body> request{verb, target, 11};
    request.set(http::field::host, "127.0.0.1");
    request.set(http::field::user_agent, "proctor-test");
    if (!body.empty()) request.set(http::field::content_type, "application/json");
    request.body() = body;
    request.prepare_payload();
    http::write(socket, request);
    http::response<http::string_body> response;
    beast::error_code ec;
    http::read(socket, buffer, response, ec);
    return std::pair{ec, response};
  };

  tcp::socket socket = connect();
  beast::flat_buffer buffer;
  auto [queued_ec, queued] = exchange(socket, buffer, http::verb::post, "/admin/tasks", R"({"id":"wire-2"})");
  REQUIRE_FALSE(queued_ec);
  CHECK(queued.result_int() == 200);
  CHECK(json::parse(queued.body())["queued"] == 1);

  auto [task_ec, task] = exchange(socket, buffer, http::verb::get, "/api/task/available");  // same connection
  REQUIRE_FALSE(task_ec);
  CHECK(task.result_int() == 200);
  CHECK(task[http::field::content_type] == "application/json");
  CHECK(task.keep_alive());
  CHECK(json::parse(task.body()) == json{{"id", "wire-1"}});

  auto [faults_ec, faults] =
      exchange(socket, buffer, http::verb::post, "/admin/faults", R"({"rules":["get:slow=300","get:close"]})");
  REQUIRE_FALSE(faults_ec);
  CHECK(faults.result_int() == 200);

  const auto before_slow = std::chrono::steady_clock::now();
  auto [slow_ec, slow] = exchange(socket, buffer, http::verb::get, "/api/task/available");
  REQUIRE_FALSE(slow_ec);
  CHECK(std::chrono::steady_clock::now() - before_slow >= milliseconds{300});
  CHECK(json::parse(slow.body()) == json{{"id", "wire-2"}});

  auto [closed_ec, closed] = exchange(socket, buffer, http::verb::get, "/api/task/available");
  CHECK(closed_ec == http::error::end_of_stream);

  // A second connection stays open and idle while the server stops: stop() must close it.
  tcp::socket idle = connect();
  beast::flat_buffer idle_buffer;
  auto [stats_ec, stats] = exchange(idle, idle_buffer, http::verb::get, "/admin/stats");
  REQUIRE_FALSE(stats_ec);
  CHECK(json::parse(stats.body())["tasks_served"] == 2);

  server->stop();
  serving.join();
  http::response<http::string_body> after_stop;
  beast::error_code after_stop_ec;
  http::read(idle, idle_buffer, after_stop, after_stop_ec);
  CHECK(after_stop_ec == http::error::end_of_stream);
}

TEST_CASE("the server sends a cut answer's headers with the full Content-Length, half the body, then hangs up") {
  namespace asio = boost::asio;
  using tcp = asio::ip::tcp;

  const json task = {{"id", "cut-over-the-wire"}, {"repositoryUrl", "file:///nowhere"}};
  Config config;
  config.faults = {rule("get:cut")};
  auto server = Server::open(make_backend(config, {task}), ServerOptions{});
  REQUIRE_MESSAGE(server.ok(), server.error().message);
  std::thread serving([&server] { server->run(); });

  asio::io_context client;
  tcp::socket socket(client);
  socket.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), server->port()));
  const std::string request = "GET /api/task/available HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
  asio::write(socket, asio::buffer(request));
  std::string received;
  boost::system::error_code ec;
  asio::read(socket, asio::dynamic_buffer(received), ec);  // until the server hangs up
  CHECK(ec == asio::error::eof);
  server->stop();
  serving.join();

  const auto end_of_headers = received.find("\r\n\r\n");
  REQUIRE(end_of_headers != std::string::npos);
  const std::string headers = received.substr(0, end_of_headers);
  const std::string body = received.substr(end_of_headers + 4);
  CHECK(headers.starts_with("HTTP/1.1 200"));
  const std::string full = task.dump();
  CHECK(headers.find("Content-Length: " + std::to_string(full.size())) != std::string::npos);
  CHECK(body.size() == full.size() / 2);
  CHECK(body == full.substr(0, full.size() / 2));
}

}  // TEST_SUITE
