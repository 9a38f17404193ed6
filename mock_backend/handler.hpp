#pragma once
// The mock backend's request handling (SPEC §2), free of sockets: a Request and the
// time "now" go in, the Backend's state changes, a Response comes out. The server
// (server.hpp) only moves bytes, so every rule here is unit-tested without a network.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
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
  // A `cut` fault: send the headers with the full Content-Length, then only this many
  // body bytes, then close the connection.
  std::optional<std::size_t> cut_body_after;
  std::string fault;  // the injected fault that shaped this answer, for the log

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
  status,     // answer with `FaultRule::status` and a JSON error body (429 adds Retry-After)
  garbage,    // answer 200 with a body that is not JSON
  slow,       // answer normally, after `FaultRule::delay`
  close,      // close the connection without answering
  cut,        // answer normally but send only half the body, then close the connection
  duplicate,  // GET only (chaos): hand out again a task already handed out
};

// One scripted fault: the next `count` requests to `endpoint` get it.
struct FaultRule {
  FaultEndpoint endpoint = FaultEndpoint::get;
  FaultKind kind = FaultKind::status;
  int status = 0;                      // for FaultKind::status
  std::chrono::milliseconds delay{0};  // for FaultKind::slow
  int count = 1;
};

// Reads `ENDPOINT:KIND[:COUNT]`, e.g. "post:500:2", "get:garbage", "get:slow=1500", "login:close",
// "post:cut" (KIND duplicate is for --chaos-kinds only).
Result<FaultRule> parse_fault_rule(std::string_view text);

// The fault kinds --chaos picks from: 500, 429, slow, cut, garbage, close, duplicate.
enum class ChaosKind { status_500, status_429, slow, cut, garbage, close, duplicate };

// Every chaos kind, in the order --chaos-kinds names them by default.
std::vector<ChaosKind> all_chaos_kinds();

// Reads a comma list such as "500,cut,duplicate"; refuses unknown names and an empty list.
Result<std::vector<ChaosKind>> parse_chaos_kinds(std::string_view text);

// A user name and password: `--serve-auth USER:PASSWORD`, and an account's login.
struct Credentials {
  std::string username;
  std::string password;
};

// Reads `USER:PASSWORD` (the password may itself contain ':').
Result<Credentials> parse_credentials(std::string_view text);

// The role task and result endpoints require.
inline constexpr std::string_view kRunnerRole = "RUNNER";

// One account `--auth USER:PASSWORD[:ROLE]` adds.
struct Account {
  Credentials credentials;
  std::string role{kRunnerRole};
};

// Reads `USER:PASSWORD[:ROLE]`: the part after the last ':' is the role when it is an
// upper-case name ([A-Z][A-Z0-9_]*), else part of the password; so a password that ends in
// such a part is written with an explicit role, e.g. "bob:x:ADMIN:RUNNER".
Result<Account> parse_account(std::string_view text);

// Everything the command line can set about the backend's behaviour.
struct Config {
  std::string get_api = "/api/task/available";
  std::string post_api = "/api/task/result";
  std::string login_api = "/api/v1/login";
  std::string refresh_api = "/api/v1/auth/refresh";
  EmptyAnswer empty_answer = EmptyAnswer::unavailable;
  std::vector<Account> accounts;  // any: task and result endpoints need a RUNNER's bearer token
  std::chrono::seconds token_ttl{300};
  std::chrono::seconds refresh_ttl{3600};
  std::vector<FaultRule> faults;
  std::chrono::seconds retry_after{1};  // the Retry-After of every 429 fault
  // Chaos: each GET {get-api} and POST {post-api} gets a fault with probability
  // chaos_share, its kind picked uniformly from chaos_kinds.
  double chaos_share = 0.0;
  std::vector<ChaosKind> chaos_kinds = all_chaos_kinds();
  std::chrono::milliseconds slow_delay{3000};  // how late a chaos `slow` answer comes
  uint64_t seed = 0;  // seeds every random choice (chaos, tokens), so a run can be replayed
  std::optional<std::filesystem::path> results_file;  // each accepted result is appended as a line
  // Files for the http repository kind: GET /files/<path> serves <serve_dir>/<path>, and
  // GET /redirect/<n>/<path> redirects n times before reaching /<path>.
  std::optional<std::filesystem::path> serve_dir;
  std::optional<Credentials> serve_auth;  // set: /files needs this HTTP basic auth
  // A task handed out whose result (same id/attempt) has not come this long after is
  // offered again, first in line, as the real backend re-offers a timed-out task; 0: never.
  std::chrono::seconds task_timeout{600};
  // Told one line about each event worth logging (a task offered again); unset: silent.
  std::function<void(const std::string&)> log;
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
  // Starts with `tasks` queued at `now`; fails when the results file cannot be opened, an
  // account is given twice or the chaos settings are out of range.
  static Result<Backend> create(Config config, std::vector<nlohmann::json> tasks, TimePoint now);

  // Answers one request received at `now`, updating the state.
  Response handle(const Request& request, TimePoint now);

 private:
  // A task waiting to be served: its exact answer body and when it was queued.
  struct QueuedTask {
    std::string body;
    TimePoint enqueued;
    std::optional<std::string> identity;  // as result_identity reads it; never set for raw tasks
  };

  // A task handed out whose result had not been recorded yet at hand-out.
  struct Outstanding {
    TimePoint handed_out;
    std::string identity;
    std::string body;
    int64_t results_before = 0;  // results with this identity recorded before the hand-out
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
    std::optional<TimePoint> task_enqueued;  // set when this request was served a new task
    bool task_duplicated = false;            // set when it was handed a task served before
    std::string fault;                       // the injected fault, if any
    int64_t tasks_requeued = 0;              // tasks offered again just before this request
  };

  // An access token this backend issued.
  struct AccessToken {
    std::string user;
    std::string role;
    TimePoint expires;
  };

  // A refresh token this backend issued and that was not used yet.
  struct RefreshToken {
    std::string user;
    TimePoint expires;
  };

  // An empty backend with `config`; create() fills it.
  explicit Backend(Config config);

  // A queued task for `body` at `now`, with its identity when the body has one.
  static QueuedTask queued(std::string body, TimePoint now);
  // Puts back at the front of the queue, in hand-out order, every task handed out at least
  // task_timeout before `now` whose result has not come; returns how many.
  int64_t requeue_timed_out(TimePoint now);
  // Routes a request (faults first, then auth, then the endpoint); fills `record`.
  Response dispatch(const Request& request, TimePoint now, RequestRecord& record);
  // Consumes one use of the first pending fault rule for `endpoint`, if any.
  std::optional<FaultRule> take_fault(FaultEndpoint endpoint);
  // Draws whether a chaos fault hits this GET or POST and which; nullopt: none.
  std::optional<FaultRule> draw_chaos(FaultEndpoint endpoint);
  // With accounts: 401 without a valid unexpired bearer token, 403 when its account is not a RUNNER.
  [[nodiscard]] std::optional<Response> check_bearer(const Request& request, TimePoint now) const;
  // GET {get-api}: the next raw task, else the next queued task, else the empty answer;
  // with `duplicate`, a task already handed out instead, when there is one. A queued task
  // with an identity is watched for requeue_timed_out.
  Response serve_task(const Request& request, TimePoint now, RequestRecord& record, bool duplicate);
  // POST {post-api}: records a JSON result in memory and in the results file, once per
  // Idempotency-Key.
  Response accept_result(const Request& request, TimePoint now);
  // POST {login-api}: tokens for an account's username and password, else 401; the
  // user's earlier refresh tokens stop working.
  Response login(const Request& request, TimePoint now);
  // POST {refresh-api}: tokens for an unused unexpired refresh token, which stops working; else 401.
  Response refresh(const Request& request, TimePoint now);
  // A new JWT access token (expiring after token_ttl) and refresh token for `account`.
  Response issue_tokens(const Account& account, TimePoint now);
  // The account called `user`, if any.
  [[nodiscard]] const Account* find_account(std::string_view user) const;
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
  std::vector<std::string> handed_out_;  // every task body served, for `duplicate`
  std::deque<QueuedTask> raw_tasks_;  // served before queue_: "the next GET answer"
  std::deque<QueuedTask> queue_;
  std::deque<Outstanding> outstanding_;  // in hand-out order, so the oldest times out first
  std::deque<FaultRule> faults_;      // applied in order; a rule is dropped when its count runs out
  std::vector<RequestRecord> requests_;
  std::vector<nlohmann::json> results_;
  std::map<std::string, int64_t> results_by_identity_;  // result_identity -> results recorded
  std::map<std::string, int64_t> results_by_runner_;
  std::map<std::string, int64_t> tasks_by_runner_;  // tasks served, by X-Runner-Id
  std::map<std::string, std::string> replies_by_key_;  // Idempotency-Key -> the first answer's body
  int64_t tasks_served_ = 0;
  int64_t tasks_duplicated_ = 0;
  int64_t tasks_requeued_ = 0;
  int64_t duplicate_results_ = 0;
  int64_t replayed_deliveries_ = 0;
  std::map<std::string, int64_t> faults_injected_;  // kind ("500", "slow", ...) -> count
  std::map<std::string, AccessToken> access_tokens_;
  std::map<std::string, RefreshToken> refresh_tokens_;
  int64_t tokens_issued_ = 0;
  // Two generators from one seed, so logins and refreshes never shift the chaos sequence.
  std::mt19937_64 chaos_random_;
  std::mt19937_64 token_random_;
  std::ofstream results_out_;
};

}  // namespace proctor::mock
