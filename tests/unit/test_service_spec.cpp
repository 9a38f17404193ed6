#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "common/file_io.hpp"
#include "common/service_spec.hpp"
#include "tests/unit/require_ok.hpp"
#include "tests/unit/temp_dir.hpp"

using namespace proctor;

TEST_SUITE("service_spec") {
  TEST_CASE("the seed's example") {
    auto spec = parse_service_spec(R"(
cmd: python -u run.py
item_properties:
- key: filename
  direction: input
  mandatory: true
  type: text
  value:
  help: a file name to find
- key: occurrences
  type: json
  value:
  direction: output
timeout: 600
type: action
)");
    REQUIRE(spec.ok());
    CHECK(spec->cmd == "python -u run.py");
    CHECK(spec->timeout_seconds == doctest::Approx(600));
    CHECK(spec->valid_exit_codes == std::vector<int>{0});
    REQUIRE(spec->properties.size() == 2);
    CHECK(spec->properties[0].mandatory);
    CHECK_FALSE(spec->properties[0].value.has_value());
    CHECK(spec->properties[1].direction == "output");
  }

  TEST_CASE("shell form picks the host's line, else default; its valid_exit_codes apply") {
    auto spec = parse_service_spec(R"(
cmd:
  type: shell
  command:
    default: bash run.sh
    windows: cmd /c run.bat
    linux: bash run-linux.sh
  valid_exit_codes: [0,10,3]
timeout: 600
)");
    REQUIRE(spec.ok());
    CHECK(spec->cmd == "bash run-linux.sh");
    CHECK(spec->valid_exit_codes == std::vector<int>{0, 10, 3});
    auto other = parse_service_spec("cmd: {type: shell, command: {default: bash run.sh}}\n", "linux");
    REQUIRE(other.ok());
    CHECK(other->cmd == "bash run.sh");
  }

  TEST_CASE("parse_service_spec fails with the first error, its line and column") {
    const auto error = [](std::string_view yaml) {
      auto spec = parse_service_spec(yaml);
      REQUIRE_FALSE(spec.ok());
      return spec.error().message;
    };
    CHECK(error("timeout: 5\n") == "line 1, column 1: the specification has no cmd: the command line that runs the service");
    CHECK(error("cmd: x\ntimeout: soon\n") ==
          "line 2, column 10: timeout must be a positive number of seconds, at most a week (604800), not 'soon'");
    CHECK(error("cmd: x\nvalid_exit_codes: [0, x]\n") ==
          "line 2, column 23: exit code 'x' is not a whole number from 0 to 255");
    CHECK(error("cmd: [unclosed\n").find("line 2, column 1: this is not valid YAML") == 0);
    CHECK(error("- just\n- a list\n").find("must be a mapping of directives") != std::string::npos);
    // Warnings do not stop a specification from loading.
    CHECK(parse_service_spec("cmd: make\n").ok());
  }

  TEST_CASE("${key} is replaced by the shell-quoted input; an unknown key is an error") {
    const std::map<std::string, std::string> inputs{{"junit_xml", "/w/r/junit.xml"}, {"name", "it's"}};
    auto cmd = expand_command("pytest --junit-xml=${junit_xml} -k ${name} $HOME ${", inputs);
    REQUIRE(cmd.ok());
    CHECK(*cmd == "pytest --junit-xml='/w/r/junit.xml' -k 'it'\\''s' $HOME ${");
    auto unknown = expand_command("run ${nope}", inputs);
    REQUIRE_FALSE(unknown.ok());
    CHECK(unknown.error().message.find("${nope}") != std::string::npos);
  }

  TEST_CASE("load_service takes a folder or the YAML file") {
    test::TempDir dir;
    std::ofstream(dir / "service.yaml") << "cmd: make test\n";
    auto from_folder = load_service(dir.path());
    REQUIRE(from_folder.ok());
    CHECK(from_folder->spec.cmd == "make test");
    CHECK(from_folder->dir == dir.path());
    auto from_file = load_service(dir / "service.yaml");
    REQUIRE(from_file.ok());
    CHECK(from_file->dir == dir.path());
    auto missing = load_service(dir / "nope");
    REQUIRE_FALSE(missing.ok());
    CHECK(missing.error().message.find("cannot read") != std::string::npos);
  }
}

namespace {

// One `# expect:` (or `# expect-warning:`) line of a corpus file.
struct Expected {
  SpecProblem::Severity severity;
  int line;
  int column;  // 0: any
  std::string text;
};

std::vector<Expected> expectations(const std::string& yaml) {
  std::vector<Expected> out;
  std::istringstream lines(yaml);
  std::string line;
  while (std::getline(lines, line)) {
    for (const auto& [marker, severity] : {std::pair{std::string("# expect: "), SpecProblem::Severity::error},
                                           std::pair{std::string("# expect-warning: "), SpecProblem::Severity::warning}}) {
      if (line.rfind(marker, 0) != 0) continue;
      const std::string rest = line.substr(marker.size());
      const auto first = rest.find(':');
      const auto second = rest.find(':', first + 1);
      REQUIRE(second != std::string::npos);
      const std::string column = rest.substr(first + 1, second - first - 1);
      out.push_back({severity, std::stoi(rest.substr(0, first)), column == "*" ? 0 : std::stoi(column),
                     rest.substr(second + 2)});
    }
  }
  return out;
}

std::string read_text(const std::filesystem::path& file) {
  auto text = read_whole_file(file, "a corpus file");
  REQUIRE_OK(text);
  return *text;
}

// Checks that a corpus file yields exactly its expected problems, at their places, and
// says whether the specification is valid.
bool check_corpus_file(const std::filesystem::path& file) {
  const std::string yaml = read_text(file);
  const auto expected = expectations(yaml);
  const auto check = check_service_spec(yaml);
  INFO(file.filename().string());
  std::string reported;
  for (const auto& problem : check.problems) reported += "\n  " + describe(problem);
  INFO("reported:" << reported);
  CHECK(check.problems.size() == expected.size());
  for (const auto& want : expected) {
    const bool found = std::any_of(check.problems.begin(), check.problems.end(), [&](const SpecProblem& p) {
      return p.severity == want.severity && p.line == want.line && (want.column == 0 || p.column == want.column) &&
             p.message.find(want.text) != std::string::npos;
    });
    CHECK_MESSAGE(found, "expected at " << want.line << ":" << want.column << ": " << want.text);
  }
  return check.valid();
}

std::filesystem::path corpus(const char* kind) {
  return std::filesystem::path(PROCTOR_SOURCE_DIR) / "tests/data/specs" / kind;
}

}  // namespace

TEST_SUITE("service_spec") {
  TEST_CASE("corpus: every good specification is valid, with only the warnings it states") {
    int files = 0;
    for (const auto& entry : std::filesystem::directory_iterator(corpus("good"))) {
      CHECK(check_corpus_file(entry.path()));
      ++files;
    }
    CHECK(files >= 8);
  }

  TEST_CASE("corpus: every bad specification reports exactly its problems, each at its line and column") {
    int files = 0;
    for (const auto& entry : std::filesystem::directory_iterator(corpus("bad"))) {
      CHECK_FALSE(check_corpus_file(entry.path()));
      ++files;
    }
    CHECK(files >= 15);
  }

  TEST_CASE("the full specification is read into the model") {
    const auto check = check_service_spec(read_text(corpus("good") / "every-field.yaml"));
    REQUIRE(check.valid());
    const ServiceSpec& spec = check.spec;
    CHECK(spec.type == "setup");
    CHECK(spec.timeout_seconds == doctest::Approx(1800.5));
    CHECK(spec.valid_exit_codes == std::vector<int>{0, 1});
    CHECK(spec.reports == std::vector<std::string>{"target/surefire-reports/*.xml"});
    REQUIRE(spec.property("count") != nullptr);
    CHECK(spec.property("count")->value == "3");
    CHECK(spec.property("count")->editor == "number");
    CHECK(spec.property("verbose")->value == "true");
    CHECK(nlohmann::json::parse(*spec.property("settings")->value) ==
          nlohmann::json::parse(R"({"retries":2,"hosts":["a","b"],"strict":false})"));
    CHECK(spec.property("clients")->store.size() == 3);
    CHECK(spec.property("targets")->value == "alpha,beta");
    CHECK_FALSE(spec.property("sut_environment")->is_input());
    CHECK(spec.property("report_url")->is_input());
    CHECK(spec.property("report_url")->is_output());
    REQUIRE(spec.repository.has_value());
    CHECK(spec.repository->repo_type == "git");
    CHECK(spec.repository->branch == "main");
    CHECK(spec.repository->ot_dir == "services/checks");
  }

  TEST_CASE("check_property_value: types and choices of values given at run time") {
    ServiceProperty number;
    number.type = "integer";
    CHECK_FALSE(check_property_value(number, "42").has_value());
    CHECK_FALSE(check_property_value(number, " -7 ").has_value());
    CHECK(check_property_value(number, "4.2").has_value());
    ServiceProperty flag;
    flag.type = "boolean";
    CHECK_FALSE(check_property_value(flag, "false").has_value());
    CHECK(check_property_value(flag, "nope").value().find("not true or false") != std::string::npos);
    ServiceProperty data;
    data.type = "json";
    CHECK_FALSE(check_property_value(data, R"({"a": [1]})").has_value());
    CHECK(check_property_value(data, "{a:").has_value());
    ServiceProperty pick;
    pick.type = "list";
    pick.editor = "multiselectbox";
    pick.store = {{"x", "X"}, {"y", "Y"}};
    CHECK_FALSE(check_property_value(pick, "x, y").has_value());
    CHECK(check_property_value(pick, "x,z").value() == "'z' is not one of its choices (x, y)");
  }

  TEST_CASE("command_keys lists the ${key} names of a command line") {
    CHECK(command_keys("a ${x} ${y_2} ${x} ${} ${9a} ${ z} $HOME ${w") == std::vector<std::string>{"x", "y_2", "x"});
  }
}
