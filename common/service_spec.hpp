#pragma once
// The service specification (seed opereto-service-spec.md, SPEC §5.2): how to run a
// service, what it takes and gives, and where its code lives. Reading checks the whole
// specification and reports every problem with its line and column (`runner verify`);
// nothing here throws.

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"

namespace proctor {

// One thing wrong (or doubtful) in a specification, where it is.
struct SpecProblem {
  enum class Severity { error, warning };
  Severity severity = Severity::error;
  int line = 0;    // 1-based; 0 when unknown
  int column = 0;  // 1-based; 0 when unknown
  std::string message;  // a plain sentence
};

// "line 3, column 5: <message>" (or just the message when the place is unknown).
std::string describe(const SpecProblem& problem);

// An item property: one input or output of the service.
struct ServiceProperty {
  std::string key;
  std::optional<std::string> value;  // the default as text (JSON for json/structured values); null when none
  std::string type = "text";         // text, integer, json, boolean, list, environment
  std::string editor;                // web UI editor; empty when not given
  std::string direction = "input";   // input, output, both
  bool mandatory = false;
  std::string help;
  std::map<std::string, std::string> store;  // choices for the selector editors, and environment_types
  int line = 0;                      // where the property starts

  [[nodiscard]] bool is_input() const { return direction != "output"; }
  [[nodiscard]] bool is_output() const { return direction != "input"; }
};

// Where a service's code comes from (or a submission's; SPEC §4).
struct RepositorySpec {
  std::string repo_type;  // git, svn, http, s3
  std::string url;        // git, svn, http
  std::string branch;     // git
  std::string revision;   // git (commit) or svn (revision number)
  std::string ot_dir;     // the sub-folder holding the service; empty for the root
  std::string username;
  std::string password;
  std::string bucket;     // s3: "bucket/key.zip"
  std::string access_key;
  std::string secret_key;
  std::string region;     // s3; empty for the agent's default
  std::string endpoint;   // s3: an S3-compatible store's URL; empty for AWS
};

struct ServiceSpec {
  std::string cmd;                      // the command line for this host's OS
  std::vector<int> valid_exit_codes{0};
  std::optional<double> timeout_seconds;
  std::string type = "action";
  std::vector<ServiceProperty> properties;
  std::vector<std::string> reports;     // report globs relative to the service folder
  std::optional<RepositorySpec> repository;

  // The property named `key`, or null.
  [[nodiscard]] const ServiceProperty* property(std::string_view key) const;
  // True for the action family (action, setup, teardown, fixture, analyzer, fetcher,
  // test): what an agent runs. cycle and container run on Opereto's cluster.
  [[nodiscard]] bool runs_on_agent() const;
};

// The specification as read, with every problem found (none when it is valid).
struct SpecCheck {
  ServiceSpec spec;
  std::vector<SpecProblem> problems;

  // True when no problem is an error (warnings allowed).
  [[nodiscard]] bool valid() const;
};

// Reads and checks a specification from YAML text; `os` picks the shell form's line.
SpecCheck check_service_spec(std::string_view yaml_text, std::string_view os = "linux");

// The specification when it is valid; else the first error, with its place.
Result<ServiceSpec> parse_service_spec(std::string_view yaml_text, std::string_view os = "linux");

// The inputs every service gets from the agent besides its own properties (SPEC §5.2):
// the task's fields, the report and results paths, and Opereto's built-ins.
const std::vector<std::string>& builtin_inputs();

// Why `value` does not fit `property`'s type (or its store), or nullopt when it does.
std::optional<std::string> check_property_value(const ServiceProperty& property, std::string_view value);

// A service folder and its parsed specification.
struct ServiceDefinition {
  std::filesystem::path dir;   // the folder whose code runs (the spec's folder)
  std::filesystem::path spec_file;
  ServiceSpec spec;
};

// The specification file of `path`: a folder's service.yaml (or service.yml), or `path`
// itself when it is a file.
std::filesystem::path spec_file_of(const std::filesystem::path& path);

// Reads and checks a specification file; fails only when the file cannot be read.
Result<SpecCheck> check_service_file(const std::filesystem::path& file);

// Loads `path`: a folder holding service.yaml (or service.yml), or the YAML file itself.
Result<ServiceDefinition> load_service(const std::filesystem::path& path);

// Replaces each ${key} in `cmd` with the shell-quoted value of `inputs[key]`. A ${key}
// that names no input is an error, so nothing runs with a hole in its command line.
Result<std::string> expand_command(std::string_view cmd, const std::map<std::string, std::string>& inputs);

// The keys `cmd` names as ${key}, in order, with repeats.
std::vector<std::string> command_keys(std::string_view cmd);

}  // namespace proctor
