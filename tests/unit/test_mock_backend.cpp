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

#include <boost/asio/connect.hpp>
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

std::vector<std::string> lines_of(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

Config with_auth(seconds ttl = seconds{300}) {
  Config config;
  config.auth = Credentials{"alice", "s3cret"};
  config.token_ttl = ttl;
  return config;
}

// Logs in as the configured account; returns the login answer's JSON.
json login(Backend& backend, TimePoint now) {
  const Response r = backend.handle(post("/api/v1/login", R"({"username":"alice","password":"s3cret"})"), now);
  REQUIRE(r.status == 200);
  return body_of(r);
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

}  // TEST_SUITE
