#include "mock_backend/handler.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <iterator>
#include <sstream>
#include <utility>

namespace proctor::mock {
namespace {

using nlohmann::json;

constexpr std::string_view kJson = "application/json";
constexpr std::string_view kBase64Url =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

bool iequals(std::string_view a, std::string_view b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](char x, char y) {
    auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; };
    return lower(x) == lower(y);
  });
}

std::optional<std::string_view> find_header(const std::vector<Header>& headers, std::string_view name) {
  for (const Header& h : headers) {
    if (iequals(h.name, name)) return std::string_view(h.value);
  }
  return std::nullopt;
}

std::string_view trim_spaces(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::optional<int64_t> parse_int(std::string_view s) {
  int64_t value = 0;
  const char* end = s.data() + s.size();
  auto [ptr, ec] = std::from_chars(s.data(), end, value);
  if (s.empty() || ec != std::errc() || ptr != end) return std::nullopt;
  return value;
}

int64_t unix_ms(TimePoint t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

// True when `target` is the endpoint `api`. The query string is ignored unless the
// configured path itself has one, so `?runner=x` style extras still reach the endpoint.
bool matches(std::string_view target, std::string_view api) {
  if (api.find('?') != std::string_view::npos) return target == api;
  return target.substr(0, target.find('?')) == api;
}

// Compact JSON; bytes that are not UTF-8 (a client may send them in a target or header
// that the request log echoes) become U+FFFD instead of throwing.
std::string dump(const json& value) {
  return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

// An answer with `body` sent as it is, labelled JSON (the empty answers and raw tasks
// are not always valid JSON).
Response json_text_response(int status, std::string body) {
  Response r;
  r.status = status;
  r.headers.push_back({"Content-Type", std::string(kJson)});
  r.body = std::move(body);
  return r;
}

Response json_response(int status, const json& body) { return json_text_response(status, dump(body)); }

Response error_response(int status, const std::string& message) {
  return json_response(status, json{{"error", message}});
}

Response unauthorized(const std::string& message) {
  Response r = error_response(401, message);
  r.headers.push_back({"WWW-Authenticate", "Bearer"});
  return r;
}

// The kind's name as /admin/stats counts it: the status ("500", "429", ...) or the word.
std::string kind_name(const FaultRule& rule) {
  switch (rule.kind) {
    case FaultKind::status: return std::to_string(rule.status);
    case FaultKind::garbage: return "garbage";
    case FaultKind::slow: return "slow";
    case FaultKind::close: return "close";
    case FaultKind::cut: return "cut";
    case FaultKind::duplicate: return "duplicate";
  }
  return "unknown";
}

// The rule as --fault spells it, for the log.
std::string describe(const FaultRule& rule) {
  static constexpr std::array<std::string_view, 4> kEndpoints = {"get", "post", "login", "refresh"};
  std::string text(kEndpoints.at(static_cast<std::size_t>(rule.endpoint)));
  if (rule.kind == FaultKind::slow) return text + ":slow=" + std::to_string(rule.delay.count());
  return text + ":" + kind_name(rule);
}

// True for the kinds that replace the real answer; the others (slow, cut, duplicate)
// shape or choose it, so the real handler still runs and a POST is still recorded.
bool replaces_answer(FaultKind kind) {
  return kind == FaultKind::status || kind == FaultKind::garbage || kind == FaultKind::close;
}

// The answer a replacing fault gives in place of the real one.
Response fault_response(const FaultRule& rule, std::chrono::seconds retry_after) {
  Response r;
  switch (rule.kind) {
    case FaultKind::status:
      r = error_response(rule.status, "injected fault: HTTP " + std::to_string(rule.status));
      if (rule.status == 429) r.headers.push_back({"Retry-After", std::to_string(retry_after.count())});
      break;
    case FaultKind::garbage:
      r.headers.push_back({"Content-Type", "text/html"});
      r.body = "<html><body>injected garbage: not JSON</body></html>";
      break;
    case FaultKind::close:
      r.close_without_answer = true;
      break;
    case FaultKind::slow:
    case FaultKind::cut:
    case FaultKind::duplicate:
      break;  // not replacements: see replaces_answer()
  }
  return r;
}

// The fault rule a chaos kind stands for on `endpoint`.
FaultRule chaos_rule(ChaosKind kind, FaultEndpoint endpoint, std::chrono::milliseconds slow_delay) {
  FaultRule rule;
  rule.endpoint = endpoint;
  switch (kind) {
    case ChaosKind::status_500: rule.kind = FaultKind::status; rule.status = 500; break;
    case ChaosKind::status_429: rule.kind = FaultKind::status; rule.status = 429; break;
    case ChaosKind::slow: rule.kind = FaultKind::slow; rule.delay = slow_delay; break;
    case ChaosKind::cut: rule.kind = FaultKind::cut; break;
    case ChaosKind::garbage: rule.kind = FaultKind::garbage; break;
    case ChaosKind::close: rule.kind = FaultKind::close; break;
    case ChaosKind::duplicate: rule.kind = FaultKind::duplicate; break;
  }
  return rule;
}

// True for an upper-case role name: [A-Z][A-Z0-9_]*.
bool is_role_name(std::string_view text) {
  if (text.empty() || text.front() < 'A' || text.front() > 'Z') return false;
  return std::all_of(text.begin(), text.end(),
                     [](char c) { return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'; });
}

int64_t unix_seconds(TimePoint t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

// The identity a result is deduplicated on: its `id` or `attempt` (SPEC §2.2).
std::optional<std::string> result_identity(const json& result) {
  if (!result.is_object()) return std::nullopt;
  if (auto it = result.find("id"); it != result.end()) return "id:" + dump(*it);
  if (auto it = result.find("attempt"); it != result.end()) return "attempt:" + dump(*it);
  return std::nullopt;
}

}  // namespace

std::optional<std::string_view> Request::header(std::string_view name) const {
  return find_header(headers, name);
}

std::optional<std::string_view> Response::header(std::string_view name) const {
  return find_header(headers, name);
}

Result<EmptyAnswer> parse_empty_answer(std::string_view text) {
  if (text == "unavailable") return EmptyAnswer::unavailable;
  if (text == "204") return EmptyAnswer::no_content;
  if (text == "404") return EmptyAnswer::not_found;
  if (text == "empty") return EmptyAnswer::empty_body;
  return make_error("the empty answer '" + std::string(text) + "' is not one of unavailable, 204, 404 or empty.");
}

Result<FaultRule> parse_fault_rule(std::string_view text) {
  const std::string quoted = "fault rule '" + std::string(text) + "'";
  std::vector<std::string_view> parts;
  for (std::string_view rest = text;;) {
    const auto colon = rest.find(':');
    parts.push_back(rest.substr(0, colon));
    if (colon == std::string_view::npos) break;
    rest.remove_prefix(colon + 1);
  }
  if (parts.size() < 2 || parts.size() > 3) {
    return make_error(quoted + " must look like ENDPOINT:KIND[:COUNT], e.g. post:500:2.");
  }
  FaultRule rule;
  if (parts[0] == "get") {
    rule.endpoint = FaultEndpoint::get;
  } else if (parts[0] == "post") {
    rule.endpoint = FaultEndpoint::post;
  } else if (parts[0] == "login") {
    rule.endpoint = FaultEndpoint::login;
  } else if (parts[0] == "refresh") {
    rule.endpoint = FaultEndpoint::refresh;
  } else {
    return make_error(quoted + ": the endpoint must be get, post, login or refresh.");
  }
  const std::string_view kind = parts[1];
  if (kind == "garbage") {
    rule.kind = FaultKind::garbage;
  } else if (kind == "close") {
    rule.kind = FaultKind::close;
  } else if (kind == "cut") {
    rule.kind = FaultKind::cut;
  } else if (kind.starts_with("slow=")) {
    const auto ms = parse_int(kind.substr(5));
    if (!ms || *ms < 0) return make_error(quoted + ": slow=MS needs a number of milliseconds.");
    rule.kind = FaultKind::slow;
    rule.delay = std::chrono::milliseconds(*ms);
  } else if (const auto status = parse_int(kind); status && *status >= 200 && *status <= 599) {
    rule.kind = FaultKind::status;
    rule.status = static_cast<int>(*status);
  } else {
    return make_error(quoted + ": the kind must be an HTTP status (200-599), garbage, slow=MS, close or cut.");
  }
  if (parts.size() == 3) {
    const auto count = parse_int(parts[2]);
    if (!count || *count < 1 || *count > 1'000'000) {
      return make_error(quoted + ": the count must be a positive number.");
    }
    rule.count = static_cast<int>(*count);
  }
  return rule;
}

Result<Credentials> parse_credentials(std::string_view text) {
  const auto colon = text.find(':');
  if (colon == std::string_view::npos || colon == 0) {
    return make_error("the credentials must look like USER:PASSWORD.");
  }
  return Credentials{std::string(text.substr(0, colon)), std::string(text.substr(colon + 1))};
}

Result<Account> parse_account(std::string_view text) {
  const auto first = text.find(':');
  if (first == std::string_view::npos || first == 0) {
    return make_error("the account must look like USER:PASSWORD[:ROLE], e.g. alice:s3cret:RUNNER.");
  }
  Account account;
  account.credentials.username = std::string(text.substr(0, first));
  std::string_view password = text.substr(first + 1);
  if (const auto last = password.rfind(':'); last != std::string_view::npos && is_role_name(password.substr(last + 1))) {
    account.role = std::string(password.substr(last + 1));
    password = password.substr(0, last);
  }
  account.credentials.password = std::string(password);
  return account;
}

std::vector<ChaosKind> all_chaos_kinds() {
  return {ChaosKind::status_500, ChaosKind::status_429, ChaosKind::slow,     ChaosKind::cut,
          ChaosKind::garbage,    ChaosKind::close,      ChaosKind::duplicate};
}

Result<std::vector<ChaosKind>> parse_chaos_kinds(std::string_view text) {
  static constexpr std::array<std::pair<std::string_view, ChaosKind>, 7> kNames = {{
      {"500", ChaosKind::status_500},
      {"429", ChaosKind::status_429},
      {"slow", ChaosKind::slow},
      {"cut", ChaosKind::cut},
      {"garbage", ChaosKind::garbage},
      {"close", ChaosKind::close},
      {"duplicate", ChaosKind::duplicate},
  }};
  std::vector<ChaosKind> kinds;
  for (std::string_view rest = text;;) {
    const auto comma = rest.find(',');
    const std::string_view name = trim_spaces(rest.substr(0, comma));
    const auto* found = std::find_if(kNames.begin(), kNames.end(), [name](const auto& entry) { return entry.first == name; });
    if (found == kNames.end()) {
      return make_error("the chaos kind '" + std::string(name) +
                        "' is not one of 500, 429, slow, cut, garbage, close or duplicate.");
    }
    if (std::find(kinds.begin(), kinds.end(), found->second) == kinds.end()) kinds.push_back(found->second);
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  return kinds;
}

Result<std::vector<json>> parse_tasks(std::string_view text) {
  json parsed = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) return make_error("the tasks are not valid JSON.");
  std::vector<json> tasks;
  if (parsed.is_array()) {
    for (json& task : parsed) tasks.push_back(std::move(task));
  } else {
    tasks.push_back(std::move(parsed));
  }
  return tasks;
}

Result<std::vector<json>> load_tasks_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error("could not read the tasks file " + path.string() + ".");
  std::ostringstream text;
  text << in.rdbuf();
  auto tasks = parse_tasks(text.str());
  if (!tasks) return make_error("the tasks file " + path.string() + " is not valid JSON.");
  return tasks;
}

std::string base64url_encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  uint32_t buffer = 0;
  int bits = 0;
  for (const char c : bytes) {
    buffer = (buffer << 8U) | static_cast<unsigned char>(c);
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out.push_back(kBase64Url[(buffer >> static_cast<unsigned>(bits)) & 0x3FU]);
    }
  }
  if (bits > 0) out.push_back(kBase64Url[(buffer << static_cast<unsigned>(6 - bits)) & 0x3FU]);
  return out;
}

std::optional<std::string> base64url_decode(std::string_view text) {
  while (!text.empty() && text.back() == '=') text.remove_suffix(1);
  std::string out;
  uint32_t buffer = 0;
  int bits = 0;
  for (const char c : text) {
    const auto index = kBase64Url.find(c);
    if (index == std::string_view::npos) return std::nullopt;
    buffer = (buffer << 6U) | static_cast<uint32_t>(index);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((buffer >> static_cast<unsigned>(bits)) & 0xFFU));
    }
  }
  return out;
}

Backend::Backend(Config config)
    : config_(std::move(config)),
      chaos_random_(config_.seed),
      // Any fixed constant keeps the token stream apart from the chaos stream.
      token_random_(config_.seed ^ 0x9E3779B97F4A7C15ULL) {}

Result<Backend> Backend::create(Config config, std::vector<json> tasks, TimePoint now) {
  std::set<std::string_view> users;
  for (const Account& account : config.accounts) {
    if (!users.insert(account.credentials.username).second) {
      return make_error("the account '" + account.credentials.username + "' is given twice; give each user once.");
    }
  }
  if (!(config.chaos_share >= 0.0 && config.chaos_share <= 1.0)) {
    return make_error("the chaos share must be between 0 and 1, e.g. 0.2.");
  }
  if (config.chaos_share > 0.0 && config.chaos_kinds.empty()) {
    return make_error("chaos needs at least one fault kind.");
  }
  Backend backend(std::move(config));
  for (const FaultRule& rule : backend.config_.faults) backend.faults_.push_back(rule);
  for (const json& task : tasks) backend.queue_.push_back(queued(dump(task), now));
  if (backend.config_.results_file) {
    backend.results_out_.open(*backend.config_.results_file, std::ios::app | std::ios::binary);
    if (!backend.results_out_) {
      return make_error("could not open the results file " + backend.config_.results_file->string() +
                        " for appending.");
    }
  }
  return backend;
}

Response Backend::handle(const Request& request, TimePoint now) {
  RequestRecord record;
  record.method = request.method;
  record.target = request.target;
  record.time = now;
  if (auto ua = request.header("User-Agent")) record.user_agent = std::string(*ua);
  if (auto runner = request.header("X-Runner-Id")) record.runner_id = std::string(*runner);
  record.authorization_present = request.header("Authorization").has_value();
  record.tasks_requeued = requeue_timed_out(now);
  Response response;
  if (auto file = serve_file(request)) response = std::move(*file);
  else response = dispatch(request, now, record);
  record.status = response.close_without_answer ? 0 : response.status;
  record.fault = response.fault;
  requests_.push_back(std::move(record));
  return response;
}

Backend::QueuedTask Backend::queued(std::string body, TimePoint now) {
  const json parsed = json::parse(body, nullptr, /*allow_exceptions=*/false);
  std::optional<std::string> identity = result_identity(parsed);
  return QueuedTask{std::move(body), now, std::move(identity)};
}

int64_t Backend::requeue_timed_out(TimePoint now) {
  std::vector<QueuedTask> again;
  while (!outstanding_.empty()) {
    Outstanding& oldest = outstanding_.front();
    const auto results = results_by_identity_.find(oldest.identity);
    const bool answered = results != results_by_identity_.end() && results->second > oldest.results_before;
    if (!answered) {
      if (now - oldest.handed_out < config_.task_timeout) break;
      if (config_.log) {
        config_.log("task " + oldest.identity + " handed out " +
                    std::to_string(std::chrono::duration_cast<std::chrono::seconds>(now - oldest.handed_out).count()) +
                    " s ago has no result: offered again");
      }
      again.push_back(QueuedTask{std::move(oldest.body), now, std::move(oldest.identity)});
    }
    outstanding_.pop_front();
  }
  // Oldest first, all ahead of the tasks never served: the real backend re-offers the
  // timed-out task before newer ones.
  queue_.insert(queue_.begin(), std::make_move_iterator(again.begin()), std::make_move_iterator(again.end()));
  tasks_requeued_ += static_cast<int64_t>(again.size());
  return static_cast<int64_t>(again.size());
}

std::string base64_encode(std::string_view bytes) {
  std::string out = base64url_encode(bytes);
  for (char& c : out) {
    if (c == '-') c = '+';
    else if (c == '_') c = '/';
  }
  while (out.size() % 4 != 0) out.push_back('=');
  return out;
}

std::optional<Response> Backend::serve_file(const Request& request) const {
  if (!config_.serve_dir) return std::nullopt;
  std::string_view target = request.target;
  target = target.substr(0, target.find('?'));
  const bool is_file = target.starts_with("/files/");
  const bool is_redirect = target.starts_with("/redirect/");
  if (!is_file && !is_redirect) return std::nullopt;
  if (request.method != "GET") return error_response(405, "use GET on " + std::string(target));
  if (is_redirect) {
    // /redirect/<n>/<rest>: to /redirect/<n-1>/<rest>, or to /<rest> after the last one.
    const std::string_view rest = target.substr(std::string_view("/redirect/").size());
    const auto slash = rest.find('/');
    int hops = 0;
    const auto [end, ec] = std::from_chars(rest.data(), rest.data() + (slash == std::string_view::npos ? rest.size() : slash), hops);
    if (ec != std::errc() || slash == std::string_view::npos || hops < 1) {
      return error_response(404, "use /redirect/<count>/<path>");
    }
    Response r;
    r.status = 302;
    const std::string next(rest.substr(slash));
    r.headers.push_back({"Location", hops > 1 ? "/redirect/" + std::to_string(hops - 1) + next : next});
    return r;
  }
  if (config_.serve_auth) {
    const std::string expected = "Basic " + base64_encode(config_.serve_auth->username + ":" + config_.serve_auth->password);
    const auto given = request.header("Authorization");
    if (!given || *given != expected) {
      Response r = error_response(401, "this file needs HTTP basic authentication");
      r.headers.push_back({"WWW-Authenticate", "Basic realm=\"files\""});
      return r;
    }
  }
  const std::filesystem::path relative(std::string(target.substr(std::string_view("/files/").size())));
  const bool climbs = std::any_of(relative.begin(), relative.end(), [](const auto& part) { return part == ".."; });
  const std::filesystem::path file = *config_.serve_dir / relative;
  std::error_code ec;
  if (relative.empty() || climbs || relative.is_absolute() || !std::filesystem::is_regular_file(file, ec)) {
    return error_response(404, "no file " + std::string(target));
  }
  std::ifstream in(file, std::ios::binary);
  Response r;
  r.body.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  r.headers.push_back({"Content-Type", "application/octet-stream"});
  return r;
}

Response Backend::dispatch(const Request& request, TimePoint now, RequestRecord& record) {
  enum class Endpoint { task, result, login, refresh, add_tasks, add_raw_task, add_faults, requests, stats, results };
  struct Route {
    std::string_view method;
    std::string_view path;  // empty: the route is off
    Endpoint endpoint;
  };
  const bool auth = !config_.accounts.empty();
  // Login and refresh exist only with --auth, as on a backend that has no accounts.
  const std::array<Route, 10> routes = {{
      {"GET", config_.get_api, Endpoint::task},
      {"POST", config_.post_api, Endpoint::result},
      {"POST", auth ? std::string_view(config_.login_api) : std::string_view(), Endpoint::login},
      {"POST", auth ? std::string_view(config_.refresh_api) : std::string_view(), Endpoint::refresh},
      {"POST", "/admin/tasks", Endpoint::add_tasks},
      {"POST", "/admin/raw-task", Endpoint::add_raw_task},
      {"POST", "/admin/faults", Endpoint::add_faults},
      {"GET", "/admin/requests", Endpoint::requests},
      {"GET", "/admin/stats", Endpoint::stats},
      {"GET", "/results", Endpoint::results},
  }};

  std::optional<Endpoint> endpoint;
  std::string allowed;
  for (const Route& r : routes) {
    if (r.path.empty() || !matches(request.target, r.path)) continue;
    if (r.method == request.method) {
      endpoint = r.endpoint;
      break;
    }
    allowed += allowed.empty() ? std::string(r.method) : ", " + std::string(r.method);
  }
  if (!endpoint) {
    if (allowed.empty()) return error_response(404, "no endpoint " + request.method + " " + request.target);
    Response r = error_response(405, "use " + allowed + " on " + request.target);
    r.headers.push_back({"Allow", allowed});
    return r;
  }

  // Faults come first, as from a proxy in front of the application: they hit before auth.
  // Scripted rules, then chaos (only on the task and result endpoints).
  std::optional<FaultRule> fault;
  std::string source;
  switch (*endpoint) {
    case Endpoint::task: fault = take_fault(FaultEndpoint::get); break;
    case Endpoint::result: fault = take_fault(FaultEndpoint::post); break;
    case Endpoint::login: fault = take_fault(FaultEndpoint::login); break;
    case Endpoint::refresh: fault = take_fault(FaultEndpoint::refresh); break;
    default: break;
  }
  if (!fault && (*endpoint == Endpoint::task || *endpoint == Endpoint::result)) {
    fault = draw_chaos(*endpoint == Endpoint::task ? FaultEndpoint::get : FaultEndpoint::post);
    if (fault) source = "chaos ";
  }
  // A duplicate is counted by serve_task, and only when there was a task to hand out again.
  if (fault && fault->kind != FaultKind::duplicate) ++faults_injected_[kind_name(*fault)];
  // A 2xx is success to any client (SPEC §2.2), so a garbage answer to a POST comes after
  // the result was recorded, like a backend that commits and then answers with a broken
  // body; anything else would be a loss no agent could see.
  const bool garbage_after_record = fault && fault->kind == FaultKind::garbage && *endpoint == Endpoint::result;
  if (fault && replaces_answer(fault->kind) && !garbage_after_record) {
    Response r = fault_response(*fault, config_.retry_after);
    r.fault = source + describe(*fault);
    return r;
  }

  Response response;
  const bool duplicate = fault && fault->kind == FaultKind::duplicate;
  switch (*endpoint) {
    case Endpoint::task: response = serve_task(request, now, record, duplicate); break;
    case Endpoint::result: response = accept_result(request, now); break;
    case Endpoint::login: response = login(request, now); break;
    case Endpoint::refresh: response = refresh(request, now); break;
    case Endpoint::add_tasks: response = add_tasks(request, now); break;
    case Endpoint::add_raw_task: response = add_raw_task(request, now); break;
    case Endpoint::add_faults: response = add_faults(request); break;
    case Endpoint::requests: response = requests_log(); break;
    case Endpoint::stats: response = stats(); break;
    case Endpoint::results: response = results(); break;
  }
  if (!fault) return response;
  if (garbage_after_record && response.status >= 200 && response.status <= 299) {
    const Response garbage = fault_response(*fault, config_.retry_after);
    response.headers = garbage.headers;
    response.body = garbage.body;
  }
  if (fault->kind == FaultKind::slow) response.delay = fault->delay;  // the real answer, late
  if (fault->kind == FaultKind::cut) response.cut_body_after = response.body.size() / 2;
  if (fault->kind != FaultKind::duplicate || record.task_duplicated) response.fault = source + describe(*fault);
  return response;
}

std::optional<FaultRule> Backend::take_fault(FaultEndpoint endpoint) {
  for (auto it = faults_.begin(); it != faults_.end(); ++it) {
    if (it->endpoint != endpoint) continue;
    FaultRule rule = *it;
    if (--it->count <= 0) faults_.erase(it);
    return rule;
  }
  return std::nullopt;
}

std::optional<FaultRule> Backend::draw_chaos(FaultEndpoint endpoint) {
  if (config_.chaos_share <= 0.0) return std::nullopt;
  if (!std::bernoulli_distribution(config_.chaos_share)(chaos_random_)) return std::nullopt;
  std::vector<ChaosKind> kinds = config_.chaos_kinds;
  if (endpoint != FaultEndpoint::get) std::erase(kinds, ChaosKind::duplicate);  // a GET-only kind
  if (kinds.empty()) return std::nullopt;
  std::uniform_int_distribution<std::size_t> pick(0, kinds.size() - 1);
  return chaos_rule(kinds[pick(chaos_random_)], endpoint, config_.slow_delay);
}

const Account* Backend::find_account(std::string_view user) const {
  for (const Account& account : config_.accounts) {
    if (account.credentials.username == user) return &account;
  }
  return nullptr;
}

std::optional<Response> Backend::check_bearer(const Request& request, TimePoint now) const {
  if (config_.accounts.empty()) return std::nullopt;
  const auto header = request.header("Authorization");
  if (!header) return unauthorized("this endpoint needs an Authorization: Bearer token from " + config_.login_api);
  const std::string_view value = trim_spaces(*header);
  const auto space = value.find(' ');
  if (space == std::string_view::npos || !iequals(value.substr(0, space), "Bearer")) {
    return unauthorized("the Authorization header must be 'Bearer <token>'");
  }
  const auto token = access_tokens_.find(std::string(trim_spaces(value.substr(space + 1))));
  if (token == access_tokens_.end()) return unauthorized("the bearer token is not one this backend issued");
  if (now >= token->second.expires) return unauthorized("the bearer token has expired; refresh it or log in again");
  if (token->second.role != kRunnerRole) {
    return json_response(403, json{{"error", "forbidden"},
                                   {"message", "the account '" + token->second.user + "' has role '" +
                                                   token->second.role + "'; task endpoints need " +
                                                   std::string(kRunnerRole)}});
  }
  return std::nullopt;
}

Response Backend::serve_task(const Request& request, TimePoint now, RequestRecord& record, bool duplicate) {
  if (auto denied = check_bearer(request, now)) return *denied;
  if (duplicate && !handed_out_.empty()) {
    std::uniform_int_distribution<std::size_t> pick(0, handed_out_.size() - 1);
    ++tasks_duplicated_;
    ++faults_injected_["duplicate"];
    record.task_duplicated = true;
    return json_text_response(200, handed_out_[pick(chaos_random_)]);
  }
  const bool raw = !raw_tasks_.empty();
  std::deque<QueuedTask>& source = raw ? raw_tasks_ : queue_;
  if (source.empty()) {
    switch (config_.empty_answer) {
      case EmptyAnswer::unavailable: return json_response(200, json{{"status", "UNAVAILABLE"}});
      case EmptyAnswer::no_content: return json_text_response(204, "");
      case EmptyAnswer::not_found: return error_response(404, "no task available");
      case EmptyAnswer::empty_body: return json_text_response(200, "");
    }
  }
  QueuedTask task = std::move(source.front());
  source.pop_front();
  ++tasks_served_;
  ++tasks_by_runner_[record.runner_id.value_or("")];
  record.task_enqueued = task.enqueued;
  handed_out_.push_back(task.body);
  if (!raw && task.identity && config_.task_timeout.count() > 0) {
    const auto results = results_by_identity_.find(*task.identity);
    const int64_t before = results == results_by_identity_.end() ? 0 : results->second;
    outstanding_.push_back(Outstanding{now, std::move(*task.identity), task.body, before});
  }
  return json_text_response(200, std::move(task.body));
}

Response Backend::accept_result(const Request& request, TimePoint now) {
  if (auto denied = check_bearer(request, now)) return *denied;
  // A redelivery of what was already recorded (the client never saw the answer): the same
  // answer again, nothing recorded twice.
  const std::string key(trim_spaces(request.header("Idempotency-Key").value_or("")));
  if (!key.empty()) {
    if (auto replay = replies_by_key_.find(key); replay != replies_by_key_.end()) {
      ++replayed_deliveries_;
      return json_text_response(200, replay->second);
    }
  }
  json result = json::parse(request.body, nullptr, /*allow_exceptions=*/false);
  if (result.is_discarded()) return error_response(400, "the result body is not valid JSON");
  if (results_out_.is_open()) {
    results_out_ << dump(result) << '\n';
    results_out_.flush();
    if (!results_out_) {
      results_out_.clear();
      return error_response(500, "could not append the result to the results file");
    }
  }
  if (auto identity = result_identity(result); identity && results_by_identity_[*identity]++ > 0) {
    ++duplicate_results_;
  }
  ++results_by_runner_[std::string(request.header("X-Runner-Id").value_or(""))];
  results_.push_back(std::move(result));
  Response accepted = json_response(200, json{{"status", "OK"}});
  if (!key.empty()) replies_by_key_[key] = accepted.body;
  return accepted;
}

Response Backend::login(const Request& request, TimePoint now) {
  const json body = json::parse(request.body, nullptr, /*allow_exceptions=*/false);
  if (!body.is_object() || !body.contains("username") || !body["username"].is_string() ||
      !body.contains("password") || !body["password"].is_string()) {
    return error_response(400, "the login body must be a JSON object with string fields username and password");
  }
  const Account* account = find_account(body["username"].get<std::string>());
  if (account == nullptr || body["password"].get<std::string>() != account->credentials.password) {
    return error_response(401, "wrong username or password");
  }
  // One live session per user, as on the real backend: a login ends the earlier refresh tokens.
  std::erase_if(refresh_tokens_,
                [account](const auto& entry) { return entry.second.user == account->credentials.username; });
  return issue_tokens(*account, now);
}

Response Backend::refresh(const Request& request, TimePoint now) {
  const json body = json::parse(request.body, nullptr, /*allow_exceptions=*/false);
  if (!body.is_object() || !body.contains("refreshToken") || !body["refreshToken"].is_string()) {
    return error_response(400, "the refresh body must be a JSON object with a string field refreshToken");
  }
  const auto used = refresh_tokens_.find(body["refreshToken"].get<std::string>());
  if (used == refresh_tokens_.end()) {
    return error_response(401, "unknown refresh token: never issued, already used, or ended by a later login");
  }
  const RefreshToken token = used->second;
  refresh_tokens_.erase(used);  // rotation: a refresh token works once
  if (now >= token.expires) return error_response(401, "the refresh token has expired; log in again");
  const Account* account = find_account(token.user);
  if (account == nullptr) return error_response(401, "the refresh token's account no longer exists");
  return issue_tokens(*account, now);
}

Response Backend::issue_tokens(const Account& account, TimePoint now) {
  std::erase_if(access_tokens_, [now](const auto& entry) { return entry.second.expires <= now; });
  std::erase_if(refresh_tokens_, [now](const auto& entry) { return entry.second.expires <= now; });
  const int64_t issued_at = unix_seconds(now);
  const int64_t expires = issued_at + config_.token_ttl.count();
  ++tokens_issued_;
  const std::string& user = account.credentials.username;
  const json header = {{"alg", "HS256"}, {"typ", "JWT"}};
  const json payload = {
      {"sub", user}, {"role", account.role}, {"iat", issued_at}, {"exp", expires}, {"jti", tokens_issued_}};
  // The signature is random and checked by lookup: the mock needs tokens, not crypto.
  std::string access = base64url_encode(dump(header)) + "." + base64url_encode(dump(payload)) + "." +
                       base64url_encode(random_bytes(32));
  std::string refresh_token = base64url_encode(random_bytes(32));
  access_tokens_[access] = AccessToken{user, account.role, TimePoint(std::chrono::seconds(expires))};
  refresh_tokens_[refresh_token] = RefreshToken{user, now + config_.refresh_ttl};
  return json_response(200, json{{"type", "Bearer"}, {"accessToken", access}, {"refreshToken", refresh_token}});
}

Response Backend::add_tasks(const Request& request, TimePoint now) {
  auto tasks = parse_tasks(request.body);
  if (!tasks) return error_response(400, "the body must be one task object or an array of tasks, as JSON");
  for (const json& task : *tasks) queue_.push_back(queued(dump(task), now));
  return json_response(200, json{{"queued", tasks->size()}, {"pending", raw_tasks_.size() + queue_.size()}});
}

Response Backend::add_raw_task(const Request& request, TimePoint now) {
  raw_tasks_.push_back({request.body, now, std::nullopt});
  return json_response(200, json{{"queued", 1}, {"pending", raw_tasks_.size() + queue_.size()}});
}

Response Backend::add_faults(const Request& request) {
  const json body = json::parse(request.body, nullptr, /*allow_exceptions=*/false);
  if (!body.is_object() || !body.contains("rules") || !body["rules"].is_array()) {
    return error_response(400, "the body must be {\"rules\": [\"ENDPOINT:KIND[:COUNT]\", ...]}");
  }
  std::vector<FaultRule> rules;
  for (const json& text : body["rules"]) {
    if (!text.is_string()) return error_response(400, "every fault rule must be a string");
    auto rule = parse_fault_rule(text.get<std::string>());
    if (!rule) return error_response(400, rule.error().message);
    rules.push_back(*rule);
  }
  faults_.insert(faults_.end(), rules.begin(), rules.end());
  return json_response(200, json{{"added", rules.size()}, {"pending", faults_.size()}});
}

Response Backend::requests_log() const {
  json log = json::array();
  for (const RequestRecord& r : requests_) {
    json entry = {{"method", r.method},
                  {"target", r.target},
                  {"time_ms", unix_ms(r.time)},
                  {"user_agent", r.user_agent ? json(*r.user_agent) : json(nullptr)},
                  {"runner_id", r.runner_id ? json(*r.runner_id) : json(nullptr)},
                  {"authorization_present", r.authorization_present},
                  {"status", r.status}};
    if (r.task_enqueued) entry["task_enqueued_ms"] = unix_ms(*r.task_enqueued);
    if (r.task_duplicated) entry["task_duplicated"] = true;
    if (!r.fault.empty()) entry["fault"] = r.fault;
    if (r.tasks_requeued > 0) entry["tasks_requeued"] = r.tasks_requeued;
    log.push_back(std::move(entry));
  }
  return json_response(200, log);
}

namespace {

// The agent of an X-Runner-Id: the id without its "-SLOT" suffix (SPEC §9: host name + slot).
std::string agent_of(const std::string& runner_id) {
  const auto dash = runner_id.rfind('-');
  if (dash == std::string::npos || dash + 1 == runner_id.size()) return runner_id;
  const bool slot = std::all_of(runner_id.begin() + static_cast<std::ptrdiff_t>(dash) + 1, runner_id.end(),
                                [](char c) { return c >= '0' && c <= '9'; });
  return slot || runner_id.substr(dash + 1) == "spool" ? runner_id.substr(0, dash) : runner_id;
}

}  // namespace

Response Backend::stats() const {
  json by_runner = json::object();
  for (const auto& [runner, count] : results_by_runner_) by_runner[runner] = count;
  // Per agent (its slots and spool flusher together): what it took and what it answered.
  std::map<std::string, std::pair<int64_t, int64_t>> agents;  // tasks, results
  for (const auto& [runner, count] : tasks_by_runner_) agents[agent_of(runner)].first += count;
  for (const auto& [runner, count] : results_by_runner_) agents[agent_of(runner)].second += count;
  json by_agent = json::object();
  for (const auto& [agent, counts] : agents) by_agent[agent] = json{{"tasks", counts.first}, {"results", counts.second}};
  json faults = json::object();
  for (const auto& [kind, count] : faults_injected_) faults[kind] = count;
  const auto queued = static_cast<int64_t>(raw_tasks_.size() + queue_.size());
  const auto recorded = static_cast<int64_t>(results_.size());
  return json_response(200, json{{"tasks_served", tasks_served_},
                                 {"tasks_duplicated", tasks_duplicated_},
                                 {"tasks_requeued", tasks_requeued_},
                                 {"queue", queued},
                                 {"tasks_queued", queued},
                                 {"results", recorded},
                                 {"distinct_results", recorded - duplicate_results_},
                                 {"duplicate_results", duplicate_results_},
                                 {"replayed_deliveries", replayed_deliveries_},
                                 {"results_by_runner", by_runner},
                                 {"by_agent", by_agent},
                                 {"faults", faults},
                                 {"requests", requests_.size()}});
}

Response Backend::results() const {
  return json_response(200, json(results_));
}

std::string Backend::random_bytes(std::size_t count) {
  std::string bytes;
  bytes.reserve(count);
  std::uniform_int_distribution<int> byte(0, 255);
  for (std::size_t i = 0; i < count; ++i) bytes.push_back(static_cast<char>(byte(token_random_)));
  return bytes;
}

}  // namespace proctor::mock
