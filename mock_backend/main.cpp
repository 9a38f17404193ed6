// mock_backend: a deliberately simple backend (SPEC §2) for the integration tests and
// the demo. Prints "listening on ADDRESS:PORT" once ready (the same line for HTTPS, which
// --tls-cert and --tls-key turn on); SIGINT/SIGTERM stop it (exit 0).

// GCC 12 reports a null dereference inside CLI11's inlined string splitting (a false
// positive in library code), which would otherwise be the only warning of this file.
#pragma GCC diagnostic ignored "-Wnull-dereference"

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "mock_backend/handler.hpp"
#include "mock_backend/server.hpp"

namespace {

// Exit status for a bad command line or an unusable file or port.
constexpr int kUsageError = 2;

// Writes the port to `path` through a temporary file, so a reader never sees half of it.
proctor::Result<void> write_port_file(const std::filesystem::path& path, unsigned short port) {
  const std::filesystem::path temporary = path.string() + ".tmp";
  {
    std::ofstream out(temporary, std::ios::trunc);
    out << port << '\n';
    if (!out.flush()) return proctor::make_error("could not write the port file " + temporary.string() + ".");
  }
  std::error_code ec;
  std::filesystem::rename(temporary, path, ec);
  if (ec) return proctor::make_error("could not write the port file " + path.string() + ": " + ec.message() + ".");
  return {};
}

int fail(const std::string& message) {
  std::cerr << "mock_backend: " << message << '\n';
  return kUsageError;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace proctor::mock;

  CLI::App app{"A deliberately simple Proctor backend for tests and demos."};
  Config config;
  ServerOptions server_options;
  std::string tasks_file;
  std::string results_file;
  std::string empty_answer = "unavailable";
  std::vector<std::string> accounts;
  int64_t token_ttl = config.token_ttl.count();
  int64_t refresh_ttl = config.refresh_ttl.count();
  std::vector<std::string> fault_rules;
  int64_t retry_after = config.retry_after.count();
  std::string chaos_kinds = "500,429,slow,cut,garbage,close,duplicate";
  std::optional<uint64_t> chaos_seed;
  int64_t slow_ms = config.slow_delay.count();
  int64_t task_timeout = config.task_timeout.count();
  std::string port_file;
  std::string log_level = "info";

  app.add_option("--tasks", tasks_file, "JSON file with an array of tasks, served first in, first out");
  app.add_option("--get-api", config.get_api, "Path of the task endpoint")->capture_default_str();
  app.add_option("--post-api", config.post_api, "Path of the result endpoint")->capture_default_str();
  app.add_option("--login-api", config.login_api, "Path of the login endpoint")->capture_default_str();
  app.add_option("--refresh-api", config.refresh_api, "Path of the token refresh endpoint")->capture_default_str();
  app.add_option("--empty-answer", empty_answer, "How 'no task' is said: unavailable, 204, 404 or empty")
      ->capture_default_str();
  app.add_option("--results", results_file, "File each accepted result is appended to as one JSON line");
  std::string serve_dir;
  std::string serve_auth;
  app.add_option("--serve", serve_dir, "Folder served at GET /files/<path> (and /redirect/<n>/files/<path>)")
      ->check(CLI::ExistingDirectory);
  app.add_option("--serve-auth", serve_auth, "USER:PASSWORD of HTTP basic auth for /files");
  app.add_option("--auth", accounts,
                 "USER:PASSWORD[:ROLE] (ROLE default RUNNER; repeatable); task and result endpoints then need the "
                 "bearer token of a RUNNER account");
  app.add_option("--token-ttl", token_ttl, "Access token lifetime in seconds")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--refresh-ttl", refresh_ttl, "Refresh token lifetime in seconds")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--fault", fault_rules, "ENDPOINT:KIND[:COUNT] with ENDPOINT get|post|login|refresh and KIND an "
                                         "HTTP status, garbage, slow=MS, close or cut (repeatable)");
  app.add_option("--retry-after", retry_after, "Seconds in the Retry-After header of every 429 fault")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--chaos", config.chaos_share,
                 "Share (0..1) of task and result requests that get a fault, each independently")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--chaos-kinds", chaos_kinds, "Comma list of the fault kinds --chaos picks from, uniformly")
      ->capture_default_str();
  app.add_option("--chaos-seed", chaos_seed, "Seed of every random choice, to replay a run (default: random, logged)");
  app.add_option("--slow-ms", slow_ms, "How late a --chaos slow answer comes, in milliseconds")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--task-timeout", task_timeout,
                 "Seconds after which a task handed out without a result (same id/attempt) is offered again, "
                 "first in line, as the real backend does; 0: never")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--port", server_options.port, "Port to listen on; 0 picks a free one")->capture_default_str();
  app.add_option("--bind", server_options.bind_address, "Address to listen on")->capture_default_str();
  app.add_option("--port-file", port_file, "File the chosen port is written to once listening");
  auto* tls_cert = app.add_option("--tls-cert", server_options.tls_cert_file,
                                  "PEM certificate chain; with --tls-key the server speaks HTTPS only")
                       ->check(CLI::ExistingFile);
  auto* tls_key = app.add_option("--tls-key", server_options.tls_key_file, "PEM private key of --tls-cert")
                      ->check(CLI::ExistingFile);
  tls_cert->needs(tls_key);
  tls_key->needs(tls_cert);
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error, critical or off")
      ->capture_default_str()
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : kUsageError;  // --help is not an error
  }

  // Logs go to stderr: stdout carries only the "listening on" line tests wait for.
  auto logger = spdlog::stderr_color_mt("mock_backend");
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(log_level));

  auto empty = parse_empty_answer(empty_answer);
  if (!empty) return fail(empty.error().message);
  config.empty_answer = *empty;
  for (const std::string& text : accounts) {
    auto account = parse_account(text);
    if (!account) return fail("--auth: " + account.error().message);
    config.accounts.push_back(std::move(*account));
  }
  config.token_ttl = std::chrono::seconds(token_ttl);
  config.refresh_ttl = std::chrono::seconds(refresh_ttl);
  config.retry_after = std::chrono::seconds(retry_after);
  config.slow_delay = std::chrono::milliseconds(slow_ms);
  config.task_timeout = std::chrono::seconds(task_timeout);
  config.log = [](const std::string& line) { spdlog::info("{}", line); };
  auto kinds = parse_chaos_kinds(chaos_kinds);
  if (!kinds) return fail("--chaos-kinds: " + kinds.error().message);
  config.chaos_kinds = std::move(*kinds);
  config.seed = chaos_seed ? *chaos_seed : std::random_device{}();
  for (const std::string& text : fault_rules) {
    auto rule = parse_fault_rule(text);
    if (!rule) return fail(rule.error().message);
    config.faults.push_back(*rule);
  }
  if (!results_file.empty()) config.results_file = results_file;
  if (!serve_dir.empty()) config.serve_dir = serve_dir;
  if (!serve_auth.empty()) {
    auto credentials = parse_credentials(serve_auth);
    if (!credentials) return fail("--serve-auth: " + credentials.error().message);
    config.serve_auth = *credentials;
  }

  std::vector<nlohmann::json> tasks;
  if (!tasks_file.empty()) {
    auto loaded = load_tasks_file(tasks_file);
    if (!loaded) return fail(loaded.error().message);
    tasks = std::move(*loaded);
  }
  const std::size_t task_count = tasks.size();
  const uint64_t seed = config.seed;
  auto backend = Backend::create(std::move(config), std::move(tasks), std::chrono::system_clock::now());
  if (!backend) return fail(backend.error().message);
  auto server = Server::open(std::move(*backend), server_options);
  if (!server) return fail(server.error().message);
  server->stop_on_signals();

  if (!port_file.empty()) {
    if (auto written = write_port_file(port_file, server->port()); !written) return fail(written.error().message);
  }
  spdlog::info("{} task(s) queued; speaking {}", task_count, server->tls() ? "HTTPS only" : "plain HTTP");
  spdlog::info("random seed {} (--chaos-seed {} replays the same choices)", seed, seed);
  std::cout << "listening on " << server->address() << ":" << server->port() << std::endl;
  server->run();
  spdlog::info("stopped");
  return 0;
}
