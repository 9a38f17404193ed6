#pragma once
// The mock backend's request handling (SPEC §2), free of sockets: a Request and the
// time "now" go in, the Backend's state changes, a Response comes out. The server
// (server.hpp) only moves bytes, so every rule here is unit-tested without a network.

#include <chrono>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/result.hpp"

namespace proctor::mock {

// The handler's clock: wall time, because tokens carry a Unix `exp` and the request log
// shows Unix milliseconds. Always passed in, never read inside the handler.
using TimePoint = std::chrono::system_clock::time_point;

// One HTTP header field, as received or to be sent.
struct Header {
  std::string name;
  std::string value;
};

// An HTTP request as the server read it.
struct Request {
  std::string method;  // "GET", "POST", ...
  std::string target;  // path and query, as received
  std::vector<Header> headers;
  std::string body;

  // The value of the first header called `name` (compared case-insensitively), if any.
  [[nodiscard]] std::optional<std::string_view> header(std::string_view name) const;
};

// What the server must do: send this answer (perhaps after a delay) or hang up.
struct Response {
  int status = 200;
  std::vector<Header> headers;
  std::string body;
  std::chrono::milliseconds delay{0};  // a `slow` fault: wait this long before answering
  bool close_without_answer = false;   // a `close` fault: drop the connection instead
  std::string fault;                   // the injected fault that shaped this answer, for the log

  // The value of the first header called `name` (compared case-insensitively), if any.
  [[nodiscard]] std::optional<std::string_view> header(std::string_view name) const;
};

// How GET {get-api} says "no task now" once the queue is empty (SPEC §2.1 lists all four).
enum class EmptyAnswer {
  unavailable,  // 200 {"status":"UNAVAILABLE"}
  no_content,   // 204
  not_found,    // 404
  empty_body,   // 200 with an empty body
};

// Reads "unavailable", "204", "404" or "empty".
Result<EmptyAnswer> parse_empty_answer(std::string_view text);

// Which endpoint a fault rule applies to.
enum class FaultEndpoint { get, post, login, refresh };

// What an injected fault does to the answer.
enum class FaultKind {
  status,   // answer with `FaultRule::status` and a JSON error body
  garbage,  // answer 200 with a body that is not JSON
  slow,     // answer normally, after `FaultRule::delay`
  close,    // close the connection without answering
};

// One scripted fault: the next `count` requests to `endpoint` get it.
struct FaultRule {
  FaultEndpoint endpoint = FaultEndpoint::get;
  FaultKind kind = FaultKind::status;
  int status = 0;                      // for FaultKind::status
  std::chrono::milliseconds delay{0};  // for FaultKind::slow
  int count = 1;
};

// Reads `ENDPOINT:KIND[:COUNT]`, e.g. "post:500:2", "get:garbage", "get:slow=1500", "login:close".
Result<FaultRule> parse_fault_rule(std::string_view text);

// The one account `--auth USER:PASSWORD` accepts.
struct Credentials {
  std::string username;
  std::string password;
};

// Reads `USER:PASSWORD` (the password may itself contain ':').
Result<Credentials> parse_credentials(std::string_view text);

// Everything the command line can set about the backend's behaviour.
struct Config {
  std::string get_api = "/api/task/available";
  std::string post_api = "/api/task/result";
  std::string login_api = "/api/v1/login";
  std::string refresh_api = "/api/v1/auth/refresh";
  EmptyAnswer empty_answer = EmptyAnswer::unavailable;
  std::optional<Credentials> auth;  // set: task and result endpoints need a bearer token
  std::chrono::seconds token_ttl{300};
  std::vector<FaultRule> faults;
  std::optional<std::filesystem::path> results_file;  // each accepted result is appended as a line
  // Files for the http repository kind: GET /files/<path> serves <serve_dir>/<path>, and
  // GET /redirect/<n>/<path> redirects n times before reaching /<path>.
  std::optional<std::filesystem::path> serve_dir;
  std::optional<Credentials> serve_auth;  // set: /files needs this HTTP basic auth
};

// Standard base64 with padding (RFC 4648 §4), as HTTP basic auth uses.
std::string base64_encode(std::string_view bytes);

// Reads tasks from JSON text: an array gives one task per element, anything else is one task.
Result<std::vector<nlohmann::json>> parse_tasks(std::string_view text);

// Reads a `--tasks` file with parse_tasks.
Result<std::vector<nlohmann::json>> load_tasks_file(const std::filesystem::path& path);

// Base64url without padding (RFC 4648 §5), as JWT segments use.
std::string base64url_encode(std::string_view bytes);

// Decodes base64url with or without padding; nullopt on any character outside the alphabet.
std::optional<std::string> base64url_decode(std::string_view text);

// The mock backend: its queue, results, tokens, faults and request log, and the rules
// that answer a request from them. Single-threaded: the server calls it from one thread.
class Backend {
 public:
  // Starts with `tasks` queued at `now`; fails when the results file cannot be opened.
  static Result<Backend> create(Config config, std::vector<nlohmann::json> tasks, TimePoint now);

  // Answers one request received at `now`, updating the state.
  Response handle(const Request& request, TimePoint now);

 private:
  // A task waiting to be served: its exact answer body and when it was queued.
  struct QueuedTask {
    std::string body;
    TimePoint enqueued;
  };

  // One line of GET /admin/requests.
  struct RequestRecord {
    std::string method;
    std::string target;
    TimePoint time;
    std::optional<std::string> user_agent;
    std::optional<std::string> runner_id;
    bool authorization_present = false;
    int status = 0;  // 0: the connection was closed without an answer
    std::optional<TimePoint> task_enqueued;  // set when this request was served a task
  };

  // An empty backend with `config`; create() fills it.
  explicit Backend(Config config);

  // Routes a request (faults first, then auth, then the endpoint); fills `record`.
  Response dispatch(const Request& request, TimePoint now, RequestRecord& record);
  // Consumes one use of the first pending fault rule for `endpoint`, if any.
  std::optional<FaultRule> take_fault(FaultEndpoint endpoint);
  // A 401 answer when auth is on and the request lacks a valid unexpired bearer token.
  [[nodiscard]] std::optional<Response> check_bearer(const Request& request, TimePoint now) const;
  // GET {get-api}: the next raw task, else the next queued task, else the empty answer.
  Response serve_task(const Request& request, TimePoint now, RequestRecord& record);
  // POST {post-api}: records a JSON result in memory and in the results file.
  Response accept_result(const Request& request, TimePoint now);
  // POST {login-api}: tokens for the right username and password, else 401.
  Response login(const Request& request, TimePoint now);
  // POST {refresh-api}: tokens for a refresh token this backend issued, else 401.
  Response refresh(const Request& request, TimePoint now);
  // A new JWT-shaped access token (expiring after token_ttl) and refresh token.
  Response issue_tokens(const std::string& subject, TimePoint now);
  // POST /admin/tasks: queues one task or an array of tasks.
  Response add_tasks(const Request& request, TimePoint now);
  // POST /admin/raw-task: queues the body, byte for byte, as the next GET answer.
  Response add_raw_task(const Request& request, TimePoint now);
  // POST /admin/faults: adds fault rules; none are added when one is invalid.
  Response add_faults(const Request& request);
  // GET /admin/requests: every request seen so far, never a credential.
  [[nodiscard]] Response requests_log() const;
  // GET /admin/stats: counters for tests and the demo.
  [[nodiscard]] Response stats() const;
  // GET /files/... and /redirect/...: files under serve_dir; nullopt for other targets.
  [[nodiscard]] std::optional<Response> serve_file(const Request& request) const;
  // GET /results: every accepted result, in arrival order.
  [[nodiscard]] Response results() const;
  // `count` random bytes for token signatures and refresh tokens.
  std::string random_bytes(std::size_t count);

  Config config_;
  std::deque<QueuedTask> raw_tasks_;  // served before queue_: "the next GET answer"
  std::deque<QueuedTask> queue_;
  std::deque<FaultRule> faults_;      // applied in order; a rule is dropped when its count runs out
  std::vector<RequestRecord> requests_;
  std::vector<nlohmann::json> results_;
  std::set<std::string> result_identities_;
  std::map<std::string, int64_t> results_by_runner_;
  int64_t tasks_served_ = 0;
  int64_t duplicate_results_ = 0;
  std::map<std::string, TimePoint> access_tokens_;  // token -> expiry
  std::set<std::string> refresh_tokens_;
  int64_t tokens_issued_ = 0;
  std::mt19937_64 random_;
  std::ofstream results_out_;
};

}  // namespace proctor::mock
