#pragma once
// The service specification (seed opereto-service-spec.md): how to run a service.
// This is the subset the agent runs today: cmd (string or shell form), timeout,
// valid_exit_codes, type, item_properties (key, value, type, direction, mandatory) and
// a `reports` glob list. Loading never throws: errors carry the YAML line.

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"

namespace proctor {

struct ServiceProperty {
  std::string key;
  std::string value;             // the default value, as text ("" when null)
  std::string type = "text";     // text, integer, json, boolean, list, environment
  std::string direction = "input";  // input, output, both
  bool mandatory = false;
};

struct ServiceSpec {
  std::string cmd;                          // the command line for this host's OS
  std::vector<int> valid_exit_codes{0};
  std::optional<double> timeout_seconds;
  std::string type = "action";
  std::vector<ServiceProperty> properties;
  std::vector<std::string> reports;         // report globs relative to the service folder
};

// Parses a specification from YAML text; `os` picks the shell form's line ("linux").
Result<ServiceSpec> parse_service_spec(std::string_view yaml_text, std::string_view os = "linux");

// A service folder and its parsed specification.
struct ServiceDefinition {
  std::filesystem::path dir;   // the folder whose code runs (the spec's folder)
  std::filesystem::path spec_file;
  ServiceSpec spec;
};

// Loads `path`: a folder holding service.yaml (or service.yml), or the YAML file itself.
Result<ServiceDefinition> load_service(const std::filesystem::path& path);

// Replaces each ${key} in `cmd` with the shell-quoted value of `inputs[key]`. A ${key}
// that names no input is an error, so nothing runs with a hole in its command line.
Result<std::string> expand_command(std::string_view cmd, const std::map<std::string, std::string>& inputs);

}  // namespace proctor
