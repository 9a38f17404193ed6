// The agent's config file and password file (agent/config_file), and the precedence
// they take part in: command line > RUNNER_* environment > config file > default.

#include <doctest/doctest.h>

#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "agent/config_file.hpp"
#include "tests/unit/require_ok.hpp"
#include "tests/unit/temp_dir.hpp"

namespace {

using namespace proctor;

const std::set<std::string> kKnown = {"backend-url", "concurrent", "auth", "events", "allow-schemes", "password",
                                      "check-interval", "login", "strip-prefix", "ca-file"};

bool known(const std::string& name) { return kKnown.count(name) > 0; }

// An environment made of `variables` only.
EnvLookup environment(std::map<std::string, std::string> variables) {
  return [variables = std::move(variables)](const std::string& name) -> const char* {
    const auto found = variables.find(name);
    return found == variables.end() ? nullptr : found->second.c_str();
  };
}

void write(const std::filesystem::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

// What the agent's parser makes of `command_line` with `config` below it and `env`
// around it, on a small CLI11 app set up as agent/cli.cpp sets up its own.
struct Parsed {
  int concurrent = 1;
  std::string login = "default-login";
  bool events = true;
};

Parsed parse_with(const std::vector<ConfigSetting>& config, std::vector<std::string> command_line,
                  const std::map<std::string, std::string>& env) {
  for (const auto& [name, value] : env) ::setenv(name.c_str(), value.c_str(), 1);
  Parsed parsed;
  CLI::App app;
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.add_option("--concurrent", parsed.concurrent)->envname(env_name_for("concurrent"));
  app.add_option("--login", parsed.login)->envname(env_name_for("login"));
  app.add_flag("--events,!--no-events", parsed.events)->envname(env_name_for("events"));
  std::vector<std::string> arguments{"runner"};
  for (auto& argument : config_arguments(config)) arguments.push_back(std::move(argument));
  for (auto& argument : command_line) arguments.push_back(std::move(argument));
  std::vector<const char*> pointers;
  for (const auto& argument : arguments) pointers.push_back(argument.c_str());
  app.parse(static_cast<int>(pointers.size()), pointers.data());
  for (const auto& [name, value] : env) ::unsetenv(name.c_str());
  return parsed;
}

}  // namespace

TEST_SUITE("config_file") {
  TEST_CASE("values, flags and lists are read as the command line would give them") {
    const auto settings = parse_config(
        "# the agent\n"
        "backend-url: http://backend:8080\n"
        "concurrent: 4\n"
        "auth: true\n"
        "allow_schemes: [https, git, file]\n"
        "check-interval: 0.5\n"
        "password: 'p@ss: word'\n"
        "login: \"\"\n",
        "agent.yaml", known);
    REQUIRE_OK(settings);
    REQUIRE(settings->size() == 7);
    CHECK((*settings)[0].name == "backend-url");
    CHECK((*settings)[0].value == "http://backend:8080");
    CHECK((*settings)[0].line == 2);
    CHECK((*settings)[1].value == "4");
    CHECK((*settings)[2].value == "true");
    CHECK((*settings)[3].name == "allow-schemes");  // '_' read as '-'
    CHECK((*settings)[3].value == "https,git,file");
    CHECK((*settings)[4].value == "0.5");
    CHECK((*settings)[5].value == "p@ss: word");
    CHECK((*settings)[6].value.empty());
    // A comma string is a list as it is.
    const auto comma = parse_config("allow-schemes: https,file\n", "agent.yaml", known);
    REQUIRE_OK(comma);
    CHECK((*comma)[0].value == "https,file");
    // An empty file (or only comments) sets nothing.
    const auto empty = parse_config("# nothing yet\n", "agent.yaml", known);
    REQUIRE_OK(empty);
    CHECK(empty->empty());
  }

  TEST_CASE("an unknown key is an error naming the key and its line") {
    const auto settings = parse_config("concurrent: 2\n\nconcurent: 4\n", "/etc/proctor/agent.yaml", known);
    REQUIRE_FALSE(settings.ok());
    CHECK(settings.error().message.find("/etc/proctor/agent.yaml:3:") == 0);
    CHECK(settings.error().message.find("unknown option 'concurent'") != std::string::npos);
  }

  TEST_CASE("nested values, empty values, keys given twice and broken YAML are errors with their line") {
    const auto check_error = [](const std::string& text, const std::string& where, const std::string& what) {
      const auto settings = parse_config(text, "a.yaml", known);
      REQUIRE_FALSE(settings.ok());
      CAPTURE(settings.error().message);
      CHECK(settings.error().message.find(where) == 0);
      CHECK(settings.error().message.find(what) != std::string::npos);
    };
    check_error("concurrent: 2\nauth:\n  enabled: true\n", "a.yaml:2:", "is a mapping");
    check_error("login:\n", "a.yaml:1:", "has no value");
    check_error("allow-schemes: [[https]]\n", "a.yaml:1:", "not plain values");
    check_error("concurrent: 2\nlogin: a\nconcurrent: 3\n", "a.yaml:3:", "set twice (first on line 1)");
    check_error("- concurrent\n", "a.yaml:1:", "mapping of option names");
    check_error("concurrent: [2\n", "a.yaml:", "not valid YAML");
  }

  TEST_CASE("a config file that cannot be read is named in the error") {
    test::TempDir dir;
    const auto missing = read_config_file(dir.path() / "none.yaml", known);
    REQUIRE_FALSE(missing.ok());
    CHECK(missing.error().message.find("cannot read the config file") != std::string::npos);
    write(dir.path() / "agent.yaml", "concurrent: 3\n");
    const auto read = read_config_file(dir.path() / "agent.yaml", known);
    REQUIRE_OK(read);
    CHECK((*read)[0].value == "3");
  }

  TEST_CASE("a setting whose RUNNER_ variable is set is left to the environment") {
    const std::vector<ConfigSetting> settings{{"concurrent", "4", 1}, {"allow-schemes", "https,file", 2},
                                              {"login", "from-file", 3}};
    const auto arguments = config_arguments(
        settings, environment({{"RUNNER_CONCURRENT", "2"}, {"RUNNER_LOGIN", ""}, {"RUNNER_OTHER", "x"}}));
    // An empty variable does not count as set (as for the option parser).
    CHECK(arguments == std::vector<std::string>{"--allow-schemes=https,file", "--login=from-file"});
    CHECK(env_name_for("allow-schemes") == "RUNNER_ALLOW_SCHEMES");
  }

  TEST_CASE("an empty setting is an empty value, not one that takes the next argument") {
    const std::vector<ConfigSetting> config{{"login", "", 1}, {"concurrent", "4", 2}};
    CHECK(config_arguments(config, environment({})) == std::vector<std::string>{"--login", "", "--concurrent=4"});
    const auto parsed = parse_with(config, {}, {});
    CHECK(parsed.login.empty());
    CHECK(parsed.concurrent == 4);
  }

  TEST_CASE("command line > environment > config file > default") {
    const std::vector<ConfigSetting> config{{"concurrent", "4", 1}, {"login", "from-file", 2}, {"events", "false", 3}};
    const std::map<std::string, std::string> env{{"RUNNER_CONCURRENT", "3"}};

    const auto file_only = parse_with(config, {}, {});
    CHECK(file_only.concurrent == 4);
    CHECK(file_only.login == "from-file");
    CHECK_FALSE(file_only.events);

    const auto env_over_file = parse_with(config, {}, env);
    CHECK(env_over_file.concurrent == 3);
    CHECK(env_over_file.login == "from-file");

    const auto command_line_over_all = parse_with(config, {"--concurrent", "2", "--events"}, env);
    CHECK(command_line_over_all.concurrent == 2);
    CHECK(command_line_over_all.events);

    const auto defaults = parse_with({}, {}, {});
    CHECK(defaults.concurrent == 1);
    CHECK(defaults.login == "default-login");
    CHECK(defaults.events);
  }

  TEST_CASE("the password file gives its first line without the line end") {
    test::TempDir dir;
    write(dir.path() / "unix", "correct horse\nsecond line\n");
    write(dir.path() / "dos", "battery staple\r\n");
    write(dir.path() / "bare", "no-newline");
    write(dir.path() / "blank", "\nsecret on line two\n");
    CHECK(read_password_file(dir.path() / "unix").value() == "correct horse");
    CHECK(read_password_file(dir.path() / "dos").value() == "battery staple");
    CHECK(read_password_file(dir.path() / "bare").value() == "no-newline");
    const auto blank = read_password_file(dir.path() / "blank");
    REQUIRE_FALSE(blank.ok());
    CHECK(blank.error().message.find("empty first line") != std::string::npos);
    const auto missing = read_password_file(dir.path() / "missing");
    REQUIRE_FALSE(missing.ok());
    CHECK(missing.error().message.find("cannot read the password file " + (dir.path() / "missing").string()) == 0);
    CHECK(missing.error().message.find("No such file") != std::string::npos);
  }

  TEST_CASE("format_config writes a config file that parses back to the same values, unset ones named") {
    const std::vector<PrintedSetting> printed = {{"concurrent", "4", "config file"},
                                                 {"allow-schemes", "https,file", "command line"},
                                                 {"strip-prefix", "a: b # c", "default"},
                                                 {"login", "", "default"},
                                                 {"ca-file", "", "default"},
                                                 {"password", "hunter2", "command line", true}};
    const auto text = format_config(printed);
    CHECK(text.find("concurrent: 4  # config file\n") != std::string::npos);
    CHECK(text.find("# not set: login, ca-file\n") != std::string::npos);
    CHECK(text.find("# set, not shown: password (command line)\n") != std::string::npos);
    CHECK(text.find("hunter2") == std::string::npos);
    const auto read = parse_config(text, "printed.yaml", known);
    REQUIRE_OK(read);
    REQUIRE(read->size() == 3);
    CHECK((*read)[0].name == "concurrent");
    CHECK((*read)[0].value == "4");
    CHECK((*read)[1].value == "https,file");
    CHECK((*read)[2].value == "a: b # c");
  }
}
