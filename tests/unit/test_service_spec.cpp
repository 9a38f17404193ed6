#include <doctest/doctest.h>

#include <fstream>

#include "common/service_spec.hpp"
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
    CHECK(spec->properties[0].value.empty());
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

  TEST_CASE("errors name the problem and its line") {
    const auto error = [](std::string_view yaml) {
      auto spec = parse_service_spec(yaml);
      REQUIRE_FALSE(spec.ok());
      return spec.error().message;
    };
    CHECK(error("timeout: 5\n") == "the specification has no cmd");
    CHECK(error("cmd: x\ntimeout: soon\n").find("timeout must be a positive number of seconds, at most a week (line 2)") !=
          std::string::npos);
    CHECK(error("cmd: x\nvalid_exit_codes: [0, x]\n").find("valid_exit_codes") != std::string::npos);
    CHECK(error("cmd: [unclosed\n").find("not valid YAML") != std::string::npos);
    CHECK(error("- just\n- a list\n").find("mapping") != std::string::npos);
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
