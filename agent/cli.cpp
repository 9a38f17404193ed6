#include "agent/cli.hpp"

#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <sstream>
#include <thread>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "agent/archive_fetcher.hpp"
#include "agent/auth_session.hpp"
#include "agent/config_file.hpp"
#include "agent/daemon.hpp"
#include "agent/event_stream_thread.hpp"
#include "agent/git_fetcher.hpp"
#include "agent/listen_command.hpp"
#include "agent/subscribe_command.hpp"
#include "agent/url.hpp"
#include "agent/svn_fetcher.hpp"
#include "agent/process_runner.hpp"
#include "agent/task_executor.hpp"
#include "common/file_io.hpp"
#include "common/junit.hpp"
#include "common/text.hpp"

namespace proctor {

namespace fs = std::filesystem;
using std::chrono::milliseconds;

namespace {

struct Options {
  // Backend and polling.
  std::string backend_url;
  std::string get_api = "/api/task/available";
  std::string post_api = "/api/task/result";
  std::string login_api = "/api/v1/login";
  std::string refresh_api = "/api/v1/auth/refresh";
  int refresh_time = 240;
  double request_timeout = 30;
  bool auth = false;
  std::string login = "dora_explorer";
  std::string password = "dora_explorer";  // the reference agent's default; never logged
  std::string password_file;
  std::string config;
  bool print_config = false;
  std::string runner_id;
  std::string metrics_address;
  std::string ca_file;
  bool insecure = false;
  int concurrent = 1;
  double check_interval = 5;
  double error_backoff = 1;
  double max_error_backoff = 60;
  double shutdown_grace = 30;
  bool once = false;
  // Execution.
  std::string work_dir;
  std::string results_dir;
  std::string spool_dir;
  double spool_max_mb = 1024;
  std::string events_socket;
  bool events = true;
  bool results_layout = true;
  std::string service;
  std::string services;
  double timeout = 600;
  double kill_grace = 10;
  std::string allow_schemes = "https,http,ssh,git,svn,s3";
  double max_download_mb = 512;
  std::string s3_access_key;
  std::string s3_secret_key;
  std::string s3_region = "us-east-1";
  std::string s3_endpoint;
  std::string strip_prefix = "tests.";
  bool skips_pass = false;
  // Orchestrations.
  std::string descriptions;
  bool strict = false;
  double runtime_hours = 0;  // 0: the description's total_hours
  std::string orchestration;  // runner orchestrate DESCRIPTION
  // Logging.
  std::string logger_level = "info";
  std::string logger_output;
  // Subcommands.
  std::string task_file;
  std::vector<std::string> reports;
  std::string format = "flat";
  std::string verify_path;  // runner verify
  std::string listen_dir;   // runner listen
  std::string listen_socket;
  int wrapper_pid = 0;
  std::string subscribe_socket;  // runner subscribe
  std::vector<std::string> filters;
};

fs::path default_work_dir() {
  if (const char* state = std::getenv("STATE_DIRECTORY"); state != nullptr && *state != '\0') return state;
  if (const char* home = std::getenv("HOME"); home != nullptr && *home != '\0') {
    return fs::path(home) / ".local" / "state" / "proctor";
  }
  return fs::temp_directory_path() / ("proctor-" + std::to_string(::getuid()));
}

std::string host_name() {
  char buffer[256] = {};
  if (::gethostname(buffer, sizeof buffer - 1) != 0) return "unknown-host";
  return buffer;
}

void set_up_logging(const Options& options) {
  std::shared_ptr<spdlog::logger> logger;
  if (options.logger_output.empty()) {
    // Logs go to stderr: stdout is reserved for payloads (`exec`, `convert`).
    logger = spdlog::stderr_color_mt("runner");
  } else {
    logger = spdlog::basic_logger_mt("runner", options.logger_output);
  }
  logger->set_level(spdlog::level::from_str(options.logger_level));
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
}

ExecutorSettings executor_settings(const Options& options, const fs::path& work_dir) {
  ExecutorSettings settings;
  if (!options.service.empty()) settings.service_path = fs::absolute(options.service);
  if (!options.services.empty()) settings.services_dir = fs::absolute(options.services);
  settings.results_dir = options.results_dir.empty() ? work_dir / "results" : fs::absolute(options.results_dir);
  settings.results_layout = options.results_layout;
  settings.default_timeout = milliseconds(static_cast<int64_t>(options.timeout * 1000));
  settings.launch.kill_grace = milliseconds(static_cast<int64_t>(options.kill_grace * 1000));
  settings.allowed_schemes = split_list(options.allow_schemes);
  settings.payload.strip_prefix = options.strip_prefix;
  settings.payload.skips_pass = options.skips_pass;
  if (!options.descriptions.empty()) settings.descriptions_dir = fs::absolute(options.descriptions);
  settings.strict_orchestrations = options.strict;
  if (options.runtime_hours > 0) {
    settings.orchestration_runtime = milliseconds(static_cast<int64_t>(std::llround(options.runtime_hours * 3600 * 1000)));
  }
  return settings;
}

// Downloads of http and s3 repositories: the agent's CA file, the size cap.
ArchiveFetchSettings archive_settings(const Options& options) {
  ArchiveFetchSettings settings;
  settings.tls.ca_file = options.ca_file;
  settings.max_download_bytes = static_cast<std::uintmax_t>(options.max_download_mb * 1024 * 1024);
  return settings;
}

// The agent's S3 account: the options, else AWS's own environment variables.
S3Settings s3_settings(const Options& options) {
  const auto env = [](const char* name) {
    const char* value = std::getenv(name);
    return std::string(value != nullptr ? value : "");
  };
  S3Settings settings;
  settings.access_key = options.s3_access_key.empty() ? env("AWS_ACCESS_KEY_ID") : options.s3_access_key;
  settings.secret_key = options.s3_secret_key.empty() ? env("AWS_SECRET_ACCESS_KEY") : options.s3_secret_key;
  settings.region = options.s3_region;
  settings.endpoint = options.s3_endpoint;
  return settings;
}

// The real side-effect implementations wired under one TaskExecutor (the composition
// root of `runner` and `runner exec`).
struct RealExecutor {
  explicit RealExecutor(const Options& options)
      : work_dir(options.work_dir.empty() ? default_work_dir() : fs::absolute(options.work_dir)),
        svn(runner),
        http(archive_settings(options)),
        s3(archive_settings(options), s3_settings(options)),
        executor({{"git", &git}, {"svn", &svn}, {"http", &http}, {"s3", &s3}}, runner,
                 executor_settings(options, work_dir)) {}
  fs::path work_dir;
  PosixProcessRunner runner;
  GitFetcher git;
  SvnFetcher svn;
  HttpArchiveFetcher http;
  S3ArchiveFetcher s3;
  TaskExecutor executor;
};

// The event stream's socket: --events-socket, else {work-dir}/events.sock.
fs::path events_socket_path(const Options& options, const fs::path& work_dir) {
  return options.events_socket.empty() ? work_dir / "events.sock" : fs::absolute(options.events_socket);
}

int run_daemon(const Options& options) {
  auto url = parse_http_url(options.backend_url);
  if (!url) {
    spdlog::error("--backend-url: {}", url.error().message);
    return exit_usage;
  }
  RealExecutor real(options);

  DaemonSettings settings;
  // --once takes exactly one task, so it polls with one slot whatever --concurrent says.
  settings.concurrent = options.once ? 1 : options.concurrent;
  settings.check_interval = milliseconds(static_cast<int64_t>(options.check_interval * 1000));
  settings.shutdown_grace = milliseconds(static_cast<int64_t>(options.shutdown_grace * 1000));
  settings.error_backoff = std::max(milliseconds(1), milliseconds(static_cast<int64_t>(options.error_backoff * 1000)));
  settings.max_error_backoff =
      std::max(settings.error_backoff, milliseconds(static_cast<int64_t>(options.max_error_backoff * 1000)));
  settings.spool_max_bytes = static_cast<uint64_t>(options.spool_max_mb * 1024 * 1024);
  settings.work_dir = real.work_dir;
  settings.spool_dir = options.spool_dir.empty() ? real.work_dir / "spool" : fs::absolute(options.spool_dir);
  settings.once = options.once;
  settings.backend_origin = url->origin();
  settings.metrics_address = options.metrics_address;
  if (options.events) settings.events_socket = events_socket_path(options, real.work_dir);
  // The default events socket lives in the work dir, which a first start has not made yet.
  std::error_code ignored;  // a failure is reported where the folder is used
  fs::create_directories(real.work_dir, ignored);

  BackendConfig backend;
  backend.base = *url;
  backend.get_api = options.get_api;
  backend.post_api = options.post_api;
  backend.login_api = options.login_api;
  backend.refresh_api = options.refresh_api;
  backend.auth = options.auth;
  backend.login = options.login;
  backend.password = options.password;
  backend.refresh_time = std::chrono::seconds(options.refresh_time);
  // One login for every slot and the spool flusher: a login by one of them would
  // invalidate the refresh token the others hold (SPEC §2.3).
  backend.session = make_auth_session(backend);
  backend.tls = TlsOptions{options.ca_file, options.insecure};
  backend.limits.request_timeout = milliseconds(static_cast<int64_t>(options.request_timeout * 1000));
  backend.limits.connect_timeout = std::min(backend.limits.connect_timeout, backend.limits.request_timeout);
  // This agent's name to the backend; a fleet on one host gives each agent its own.
  const auto host = options.runner_id.empty() ? host_name() : options.runner_id;
  auto make_client = [backend, host](boost::asio::any_io_executor ex, int slot) -> std::unique_ptr<BackendClient> {
    auto config = backend;
    config.runner_id = host + "-" + (slot < 0 ? std::string("spool") : std::to_string(slot));
    return std::make_unique<HttpBackendClient>(std::move(ex), std::move(config));
  };
  Daemon daemon(settings, real.executor, make_client);
  return daemon.run();
}

// SIGINT/SIGTERM, counted by a thread of their own: first() is cancelled by the first,
// second() by any later one. Built before any other thread starts: each thread inherits
// the signals blocked, so only the counter takes them (a thread with them unblocked would
// take them and die of them).
class SignalCounter {
 public:
  // `on_first` and `on_second` are logged as the signals arrive.
  SignalCounter(std::string on_first, std::string on_second)
      : on_first_(std::move(on_first)), on_second_(std::move(on_second)) {
    sigemptyset(&signals_);
    sigaddset(&signals_, SIGINT);
    sigaddset(&signals_, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &signals_, nullptr);
    waiter_ = std::jthread([this](const std::stop_token& done) {
      int seen = 0;
      while (!done.stop_requested()) {
        timespec tick{0, 100'000'000};
        if (sigtimedwait(&signals_, nullptr, &tick) <= 0) continue;
        if (++seen == 1) {
          spdlog::warn("{}", on_first_);
          first_.request_stop();
        } else {
          spdlog::warn("{}", on_second_);
          second_.request_stop();
        }
      }
    });
  }
  [[nodiscard]] std::stop_token first() const { return first_.get_token(); }
  [[nodiscard]] std::stop_token second() const { return second_.get_token(); }

 private:
  std::string on_first_;
  std::string on_second_;
  sigset_t signals_{};
  std::stop_source first_;
  std::stop_source second_;
  std::jthread waiter_;
};

// Makes this process the subreaper of its descendants (a service that double-forks out of
// its session stays ours to kill and reap) and, when --events-socket is given, serves the
// event stream from a thread of its own. False, with the error printed, when the stream
// cannot start.
bool start_foreground_helpers(const Options& options, EventStreamThread& events, const char* command) {
  if (auto reaper = become_child_subreaper(); !reaper) spdlog::warn("{}", reaper.error().message);
  if (options.events && !options.events_socket.empty()) {
    if (auto started = events.start(fs::absolute(options.events_socket)); !started) {
      std::cerr << "runner " << command << ": " << started.error().message << "\n";
      return false;
    }
  }
  return true;
}

int run_exec(const Options& options) {
  const auto text = read_whole_file(options.task_file, "the task file");
  if (!text) {
    std::cerr << "runner exec: " << text.error().message << "\n";
    return exit_usage;
  }
  auto task = parse_task(*text);
  if (!task) {
    std::cerr << "runner exec: " << options.task_file << ": " << task.error().message << "\n";
    return exit_usage;
  }
  // SIGINT/SIGTERM cancel the task, which then stops cleanly.
  SignalCounter signals("signal received: stopping the task", "another signal: the task is already stopping");
  RealExecutor real(options);
  EventStreamThread events;
  if (!start_foreground_helpers(options, events, "exec")) return exit_usage;
  const auto payload = real.executor.run(*task, real.work_dir / "exec", signals.first(), events.sink());
  real.executor.wait_for_layouts();  // the layout whole, and every event out, before the stream closes
  std::cout << serialize_payload(payload, task->identity) << std::endl;
  return exit_code_for(payload);
}

int run_orchestrate(const Options& options) {
  // DESCRIPTION: a file, or a name found in --descriptions (as the seed's
  // orchestration_descriptions).
  fs::path file = options.orchestration;
  std::error_code ec;
  if (!fs::is_regular_file(file, ec) && !options.descriptions.empty()) {
    if (auto found = find_description(options.descriptions, options.orchestration)) file = *found;
  }
  if (!fs::is_regular_file(file, ec)) {
    std::cerr << "runner orchestrate: no description file " << options.orchestration
              << (options.descriptions.empty() ? std::string()
                                               : " (nor " + options.orchestration + ".json in " + options.descriptions + ")")
              << "\n";
    return exit_usage;
  }
  auto read = read_orchestration_file(file);
  if (!read) {
    std::cerr << "runner orchestrate: " << read.error().message << "\n";
    return exit_usage;
  }
  auto& check = *read;
  for (const auto& warning : check.warnings) spdlog::warn("{}: {}", file.string(), warning);
  if (!check.valid()) {
    for (const auto& error : check.errors) std::cerr << "runner orchestrate: " << file.string() << ": " << error << "\n";
    return exit_usage;
  }
  // The first signal ends the schedule early (its teardown still runs); the second stops every run.
  SignalCounter signals("signal received: ending the orchestration early (its teardown events still run; "
                        "a second signal stops everything)",
                        "second signal: stopping every run");
  RealExecutor real(options);
  EventStreamThread events;
  if (!start_foreground_helpers(options, events, "orchestrate")) return exit_usage;
  const std::string test_name = check.description.test_name;
  auto payload = real.executor.orchestrate(std::move(check.description), real.work_dir, signals.first(),
                                           signals.second(), events.sink());
  real.executor.wait_for_layouts();
  if (!payload) {
    std::cerr << "runner orchestrate: " << file.string() << ": " << payload.error().message << "\n";
    return exit_usage;
  }
  TaskIdentity identity;
  identity.value = test_name;
  std::cout << serialize_payload(*payload, identity) << std::endl;
  return exit_code_for(*payload);
}

int run_convert(const Options& options) {
  // Every file is parsed and checked before anything is written: a bad one among
  // several leaves stdout empty.
  std::vector<JunitDocument> documents;
  ReportSummary summary;
  for (const auto& file : options.reports) {
    auto document = JunitDocument::read(file);
    if (!document) {
      std::cerr << "runner convert: " << document.error().message << "\n";
      return exit_usage;
    }
    merge_summaries(summary, document->summary());
    documents.push_back(std::move(document).value());
  }
  std::ios::sync_with_stdio(false);
  if (options.format == "report") {
    Report merged;
    for (auto& document : documents) merge_reports(merged, std::move(document).take_report());
    std::cout << report_to_json(merged).dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  } else {
    PayloadOptions payload_options;
    payload_options.strip_prefix = options.strip_prefix;
    payload_options.skips_pass = options.skips_pass;
    // Cases go from the XML tree to stdout one at a time: no model of a huge report is built.
    CaseSource cases;
    cases.count = case_count(documents);
    cases.read = [&documents](std::size_t first, std::size_t last, const CaseVisitor& visit) {
      for_each_case(documents, first, last, visit);
    };
    write_streamed_payload(std::cout, summary, cases, RunFacts{}, payload_options,
                           options.format == "nested" ? Dialect::nested : Dialect::flat, nullptr);
    std::cout << "\n";
  }
  std::cout.flush();
  return std::cout ? exit_ok : exit_infrastructure;
}

// `runner verify`: every problem as FILE:LINE:COLUMN: error|warning: sentence, then a
// summary; 0 when valid (warnings allowed), 1 when not, 2 when the file is unreadable.
constexpr int exit_invalid = 1;

int run_verify(const Options& options) {
  const std::filesystem::path file = spec_file_of(options.verify_path);
  const auto read = check_service_file(file);
  if (!read) {
    std::cerr << "runner verify: " << read.error().message << "\n";
    return exit_usage;
  }
  const SpecCheck& check = *read;
  std::size_t errors = 0;
  std::size_t warnings = 0;
  for (const auto& problem : check.problems) {
    const bool is_error = problem.severity == SpecProblem::Severity::error;
    (is_error ? errors : warnings) += 1;
    std::cout << file.string();
    if (problem.line > 0) std::cout << ':' << problem.line << ':' << problem.column;
    std::cout << ": " << (is_error ? "error" : "warning") << ": " << problem.message << "\n";
  }
  const auto count = [](std::size_t n, const char* what) {
    return std::to_string(n) + " " + what + (n == 1 ? "" : "s");
  };
  if (errors > 0) {
    std::cout << file.string() << ": not valid: " << count(errors, "error")
              << (warnings > 0 ? ", " + count(warnings, "warning") : "") << "\n";
    return exit_invalid;
  }
  std::size_t inputs = 0;
  std::size_t outputs = 0;
  for (const auto& property : check.spec.properties) {
    inputs += property.is_input() ? 1 : 0;
    outputs += property.is_output() ? 1 : 0;
  }
  std::cout << file.string() << ": valid " << check.spec.type << " service (" << count(inputs, "input") << ", "
            << count(outputs, "output") << (warnings > 0 ? ", " + count(warnings, "warning") : "") << ")\n";
  return exit_ok;
}

// Registers an option that can also come from RUNNER_<NAME> in the environment.
template <class T>
CLI::Option* add(CLI::App& app, const std::string& name, T& value, const std::string& help) {
  return app.add_option(name, value, help)->envname(env_name_for(name.substr(2)))->capture_default_str();
}

// Registers a flag ("--name" or "--name,!--no-name") that can also come from RUNNER_<NAME>.
// Its default is recorded for --print-config.
CLI::Option* add_flag(CLI::App& app, const std::string& names, bool& value, const std::string& help) {
  const auto first = names.substr(2, names.find(',') - 2);
  return app.add_flag(names, value, help)->envname(env_name_for(first))->default_str(value ? "true" : "false");
}

// Options whose values are secrets.
constexpr std::array<std::string_view, 2> kSecretOptions = {"--password", "--s3-secret-key"};

// The value of `option` in `argument` ("--option=value"), or null when it is not that.
char* inline_value(char* argument, std::string_view option) {
  const std::string_view text = argument;
  if (text.size() > option.size() && text.starts_with(option) && text[option.size()] == '=') {
    return argument + option.size() + 1;
  }
  return nullptr;
}

// Overwrites with '*' the values of secret options in the process's own argument
// memory, and returns the secret options the command line gave. Why: /proc/PID/cmdline
// (what ps shows) is readable by every local user and is read from this very memory;
// the options are parsed from a copy. It cannot hide the value before the agent starts
// (nor from the shell's history): hence the warning that recommends --password-file.
std::vector<std::string_view> hide_secret_arguments(int argc, char** argv) {
  std::vector<std::string_view> given;
  for (int i = 1; i < argc; ++i) {
    if (std::string_view(argv[i]) == "--") break;  // positional arguments follow
    for (const auto option : kSecretOptions) {
      char* value = inline_value(argv[i], option);
      if (value == nullptr && std::string_view(argv[i]) == option && i + 1 < argc) value = argv[++i];
      if (value != nullptr) {
        std::memset(value, '*', std::strlen(value));
        given.push_back(option);
        break;
      }
    }
  }
  return given;
}

// Whether the command line `args` names `option` (as "--option value" or "--option=value").
bool names_option(const std::vector<std::string>& args, std::string_view option) {
  for (std::size_t i = 1; i < args.size() && args[i] != "--"; ++i) {
    const std::string_view arg = args[i];
    if (arg == option || (arg.size() > option.size() && arg.starts_with(option) && arg[option.size()] == '=')) {
      return true;
    }
  }
  return false;
}

// Where an option's value came from, lowest first (SPEC §3: command line > RUNNER_* >
// config file > default).
enum class Source { none, config_file, environment, command_line };

Source source_of(const std::string& name, const std::vector<std::string>& args,
                 const std::vector<ConfigSetting>& config) {
  // A flag's "--no-NAME" sets it on the command line too.
  if (names_option(args, "--" + name) || names_option(args, "--no-" + name)) return Source::command_line;
  if (const char* env = std::getenv(env_name_for(name).c_str()); env != nullptr && *env != '\0') {
    return Source::environment;
  }
  if (std::any_of(config.begin(), config.end(), [&](const auto& setting) { return setting.name == name; })) {
    return Source::config_file;
  }
  return Source::none;
}

// Options about the command line itself (--help, --version, --config): never a setting
// that a config file holds or --print-config shows.
bool is_command_line_option(std::string_view name) {
  return name == "help" || name == "version" || name == "config";
}

// `runner --print-config`: every option of the agent as a config file would set it, after
// defaults < config file < RUNNER_* < command line, each with where its value came from.
// Secrets are masked; --config reads the output back (secrets aside) to the same values.
std::string printed_config(const CLI::App& app, const std::vector<std::string>& args,
                           const std::vector<ConfigSetting>& config) {
  std::vector<PrintedSetting> printed;
  for (const CLI::Option* option : app.get_options()) {
    if (option->get_lnames().empty()) continue;
    const std::string name = option->get_lnames().front();
    if (is_command_line_option(name) || name == "print-config") continue;
    std::string value = option->get_default_str();
    if (option->count() > 0) {
      const auto results = option->reduced_results();
      value = option->get_expected_min() == 0 ? (option->as<bool>() ? "true" : "false")
                                              : (results.empty() ? std::string() : results.back());
    }
    bool secret = std::find(kSecretOptions.begin(), kSecretOptions.end(), "--" + name) != kSecretOptions.end();
    // A URL with a user:password in it is a secret too.
    if ((name == "backend-url" || name == "s3-endpoint") && redact_url(value) != value) secret = true;
    std::string source;
    switch (source_of(name, args, config)) {
      case Source::command_line: source = "command line"; break;
      case Source::environment: source = "environment (" + env_name_for(name) + ")"; break;
      case Source::config_file: source = "config file"; break;
      case Source::none: source = "default"; break;
    }
    printed.push_back({name, value, source, secret});
  }
  return format_config(printed);
}

const char* describe(Source source) {
  switch (source) {
    case Source::command_line: return "the command line";
    case Source::environment: return "the environment";
    case Source::config_file: return "the config file";
    case Source::none: break;
  }
  return "the defaults";
}

// The password: --password-file's first line when it comes from a higher place than
// --password (command line > environment > config file); both from the same place is
// an error, as the user's intent is unclear.
Result<void> resolve_password(Options& options, const std::vector<std::string>& args,
                              const std::vector<ConfigSetting>& config) {
  if (options.password_file.empty()) return {};
  const auto file_source = source_of("password-file", args, config);
  const auto password_source = source_of("password", args, config);
  if (file_source == password_source) {
    return make_error(std::string("both --password and --password-file are set in ") + describe(file_source) +
                      "; give the password one way");
  }
  if (file_source < password_source) return {};
  auto password = read_password_file(options.password_file);
  if (!password) return make_error("--password-file: " + password.error().message);
  options.password = std::move(password).value();
  return {};
}

}  // namespace

int run_cli(int argc, char** argv) {
  Options options;
  CLI::App app{"Proctor runner: takes test tasks from a backend, runs them, reports the results."};
  app.set_version_flag("--version", std::string("runner (proctor) ") + PROCTOR_VERSION);
  app.fallthrough();
  // A repeated option takes its last value, as in most command lines (and wrappers
  // that append overrides to a base command).
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.require_subcommand(0, 1);

  add(app, "--backend-url", options.backend_url, "Backend base URL, e.g. http://localhost:8080");
  add(app, "--get-api", options.get_api, "Path of the task request");
  add(app, "--post-api", options.post_api, "Path of the result post");
  add(app, "--login-api", options.login_api, "Path of the login request (with --auth)");
  add(app, "--token-refresh-api", options.refresh_api, "Path of the token refresh request (with --auth)");
  add(app, "--refresh-time", options.refresh_time,
      "Seconds between token refreshes when the access token's expiry is unreadable (with --auth)")
      ->check(CLI::Range(1, 365 * 86400));
  add(app, "--request-timeout", options.request_timeout, "Seconds one HTTP exchange with the backend may take")
      ->check(CLI::Range(0.001, 86400.0));
  add_flag(app, "--auth", options.auth, "Log in to the backend");
  add(app, "--login", options.login, "Login name (with --auth)");
  // No default shown in --help: it is a password.
  app.add_option("--password", options.password, "Password (with --auth); prefer --password-file or RUNNER_PASSWORD")
      ->envname("RUNNER_PASSWORD");
  add(app, "--password-file", options.password_file, "File whose first line is the password (with --auth)");
  add(app, "--config", options.config, "YAML file of options (keys: long option names without dashes)");
  app.add_flag("--print-config", options.print_config,
               "Print the options as merged from the defaults, --config, RUNNER_* and the command line; then exit");
  add(app, "--runner-id", options.runner_id,
      "This agent's name in X-Runner-Id (default: the host name); each slot adds -N to it");
  add(app, "--metrics-address", options.metrics_address,
      "Serve Prometheus /metrics and /healthz over HTTP here (HOST:PORT, e.g. 127.0.0.1:9310)");
  add(app, "--ca-file", options.ca_file, "Extra trusted CA certificates (PEM) for https")->check(CLI::ExistingFile);
  add_flag(app, "--insecure", options.insecure, "Do not verify the backend's TLS certificate");
  add(app, "--concurrent", options.concurrent, "Task slots")->check(CLI::Range(1, 256));
  add(app, "--check-interval", options.check_interval, "Seconds between polls when idle")->check(CLI::Range(0.0, 86400.0));
  add(app, "--shutdown-grace", options.shutdown_grace, "Seconds running tasks get to finish on SIGTERM")->check(CLI::NonNegativeNumber);
  add_flag(app, "--once", options.once, "Take one task, run it, exit with its status");
  add(app, "--work-dir", options.work_dir, "Slots' workspaces and caches (default $STATE_DIRECTORY or ~/.local/state/proctor)");
  add(app, "--results-dir", options.results_dir, "Results layout root (default {work-dir}/results)");
  add(app, "--spool-dir", options.spool_dir, "Undelivered results (default {work-dir}/spool)");
  add(app, "--spool-max-mb", options.spool_max_mb,
      "Undelivered results above this size stop the agent taking tasks (none is dropped); 0: no cap")
      ->check(CLI::NonNegativeNumber);
  add(app, "--error-backoff", options.error_backoff, "Seconds to wait after a failed backend call, doubled per failure")
      ->check(CLI::PositiveNumber);
  add(app, "--max-error-backoff", options.max_error_backoff, "Ceiling of the error back-off, in seconds")
      ->check(CLI::PositiveNumber);
  add(app, "--events-socket", options.events_socket, "The event stream's Unix socket (default {work-dir}/events.sock)");
  add_flag(app, "--events,!--no-events", options.events, "Serve the event stream (on by default)");
  add_flag(app, "--results-layout,!--no-results-layout", options.results_layout,
           "Write each task's results layout under --results-dir (on by default)");
  add(app, "--service", options.service, "The default service: a folder with service.yaml, or the YAML file");
  add(app, "--services", options.services, "Folder of named services (a task's 'service' field)");
  add(app, "--timeout", options.timeout, "Default service timeout in seconds")->check(CLI::PositiveNumber);
  add(app, "--kill-grace", options.kill_grace, "Seconds between SIGTERM and SIGKILL")->check(CLI::NonNegativeNumber);
  add(app, "--allow-schemes", options.allow_schemes, "Repository URL schemes allowed (add 'file' for local paths)");
  add(app, "--max-download-mb", options.max_download_mb, "Largest http/s3 archive downloaded, in MiB")
      ->check(CLI::PositiveNumber);
  add(app, "--s3-access-key", options.s3_access_key, "S3 access key (default $AWS_ACCESS_KEY_ID)");
  app.add_option("--s3-secret-key", options.s3_secret_key, "S3 secret key (default $AWS_SECRET_ACCESS_KEY)")
      ->envname("RUNNER_S3_SECRET_KEY");
  add(app, "--s3-region", options.s3_region, "S3 region");
  add(app, "--s3-endpoint", options.s3_endpoint, "S3-compatible store URL, path-style (default: AWS)");
  add(app, "--strip-prefix", options.strip_prefix, "Prefix removed from test classnames");
  add_flag(app, "--skips-pass", options.skips_pass, "Skipped tests do not fail the run");
  add(app, "--descriptions", options.descriptions,
      "Folder of orchestration descriptions (NAME.json): `runner orchestrate NAME`, or a task whose service is NAME");
  add_flag(app, "--strict", options.strict, "A run of an orchestration skipped (its previous run still going, or missed) fails it");
  add(app, "--runtime", options.runtime_hours, "Hours an orchestration runs, instead of its total_hours")
      ->check(CLI::Range(0.0, kMaxTotalHours));
  add(app, "--logger-level", options.logger_level, "debug, info, warning, error or critical")
      ->check(CLI::IsMember({"trace", "debug", "info", "warning", "warn", "error", "critical", "off"}));
  add(app, "--logger-output", options.logger_output, "Log file (default: stderr)");

  auto* exec = app.add_subcommand("exec", "Run one task locally, no backend; print its payload");
  exec->add_option("--task", options.task_file, "Task JSON file")->required();
  auto* verify = app.add_subcommand("verify", "Check a service specification: every problem with its line and column");
  verify->add_option("spec", options.verify_path, "service.yaml, or a service folder holding one")->required();
  auto* convert = app.add_subcommand("convert", "Convert JUnit XML report(s) to a payload");
  convert->add_option("reports", options.reports, "JUnit XML files")->required();
  convert->add_option("--format", options.format, "flat, nested or report")
      ->check(CLI::IsMember({"flat", "nested", "report"}))
      ->capture_default_str();

  auto* listen = app.add_subcommand("listen", "Follow a results layout written by any wrapper; print each change as JSON");
  listen->add_option("dir", options.listen_dir, "The results folder (tests.json and a folder per record)")->required();
  listen->add_option("--wrapper-pid", options.wrapper_pid, "Stop when this process ends")->check(CLI::PositiveNumber);
  listen->add_option("--events-socket", options.listen_socket, "Also publish the changes on an event stream here");
  auto* orchestrate = app.add_subcommand("orchestrate", "Run an orchestration (a pytest-orchestration description); print its payload");
  orchestrate->add_option("description", options.orchestration, "DESCRIPTION.json, or a NAME found in --descriptions")
      ->required();
  auto* subscribe = app.add_subcommand("subscribe", "Print an agent's events, one JSON per line");
  subscribe->add_option("--socket", options.subscribe_socket, "The agent's events socket (default {work-dir}/events.sock)");
  subscribe->add_option("--filter", options.filters, "field=value: only events that match (repeatable)")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);

  // Parsed from a copy: the secrets are hidden in the process's own arguments at once.
  const std::vector<std::string> args(argv, argv + argc);
  const auto secrets_on_command_line = hide_secret_arguments(argc, argv);
  // Parses `arguments`; an exit code when the run ends here (help, version, an error).
  const auto parse = [&app](const std::vector<std::string>& arguments,
                            const std::string& context) -> std::optional<int> {
    std::vector<const char*> pointers;
    for (const auto& argument : arguments) pointers.push_back(argument.c_str());
    try {
      app.parse(static_cast<int>(pointers.size()), pointers.data());
    } catch (const CLI::CallForHelp& e) {
      return app.exit(e);
    } catch (const CLI::CallForAllHelp& e) {
      return app.exit(e);
    } catch (const CLI::CallForVersion& e) {
      return app.exit(e);
    } catch (const CLI::ParseError& e) {
      std::cerr << "runner: " << e.what() << context << "\n";
      return exit_usage;
    }
    return std::nullopt;
  };
  if (auto done = parse(args, "")) return *done;
  // The config file's settings go in as arguments before the command line's (a repeated
  // option takes its last value) and are left out where RUNNER_<NAME> is set, then all
  // is parsed again: command line > environment > config file > default.
  std::vector<ConfigSetting> config;
  if (!options.config.empty()) {
    const auto known = [&app](const std::string& name) {
      return !is_command_line_option(name) && app.get_option_no_throw("--" + name) != nullptr;
    };
    auto read = read_config_file(options.config, known);
    if (!read) {
      std::cerr << "runner: --config: " << read.error().message << "\n";
      return exit_usage;
    }
    config = std::move(read).value();
    for (const auto& setting : config) {
      const auto* option = app.get_option_no_throw("--" + setting.name);
      if (setting.value.empty() && option != nullptr && option->get_expected_min() == 0) {
        std::cerr << "runner: --config: " << options.config << ":" << setting.line << ": '" << setting.name
                  << "' is a flag: give true or false\n";
        return exit_usage;
      }
    }
    auto with_config = config_arguments(config);
    if (!with_config.empty()) {
      with_config.insert(with_config.begin(), args.front());
      with_config.insert(with_config.end(), args.begin() + 1, args.end());
      if (auto done = parse(with_config, " (with the settings of the config file " + options.config + ")")) {
        return *done;
      }
    }
  }
  if (options.print_config) {
    if (app.get_subcommands().size() > 0) {
      std::cerr << "runner: --print-config shows the agent's options; give it without a subcommand\n";
      return exit_usage;
    }
    std::cout << printed_config(app, args, config);
    return std::cout.flush() ? exit_ok : exit_infrastructure;
  }
  if (options.logger_level == "warning") options.logger_level = "warn";
  try {
    set_up_logging(options);
  } catch (const spdlog::spdlog_ex& e) {
    std::cerr << "runner: cannot set up logging: " << e.what() << "\n";
    return exit_usage;
  }
  for (const auto option : secrets_on_command_line) {
    const char* instead =
        option == "--password" ? "--password-file or RUNNER_PASSWORD" : "RUNNER_S3_SECRET_KEY or AWS_SECRET_ACCESS_KEY";
    spdlog::warn("{} was given on the command line, where other local users can read it (ps, /proc/PID/cmdline) "
                 "until the agent hides it as it starts; give it with {} instead",
                 option, instead);
  }

  try {
    if (exec->parsed()) return run_exec(options);
    if (convert->parsed()) return run_convert(options);
    if (verify->parsed()) return run_verify(options);
    if (orchestrate->parsed()) return run_orchestrate(options);
    if (listen->parsed()) {
      ListenOptions listen_options{options.listen_dir, std::nullopt, {}};
      if (!options.listen_socket.empty()) listen_options.events_socket = fs::absolute(options.listen_socket);
      if (options.wrapper_pid > 0) listen_options.wrapper_pid = options.wrapper_pid;
      return run_listen(listen_options);
    }
    if (subscribe->parsed()) {
      const fs::path work_dir = options.work_dir.empty() ? default_work_dir() : fs::absolute(options.work_dir);
      return run_subscribe(SubscribeOptions{options.subscribe_socket.empty() ? events_socket_path(options, work_dir)
                                                                             : fs::path(options.subscribe_socket),
                                            options.filters});
    }
    if (options.backend_url.empty()) {
      std::cerr << "runner: --backend-url is required to run the agent (or use a subcommand; see --help)\n";
      return exit_usage;
    }
    if (auto password = resolve_password(options, args, config); !password) {
      std::cerr << "runner: " << password.error().message << "\n";
      return exit_usage;
    }
    return run_daemon(options);
  } catch (const std::exception& e) {
    spdlog::critical("fatal: {}", e.what());
    return exit_infrastructure;
  }
}

}  // namespace proctor
