#pragma once
// The agent's configuration file (`--config FILE`, SPEC §3) and its password file: a YAML
// mapping of long option names (without the dashes) to values, turned into arguments
// that sit below the command line and the RUNNER_* environment. Pure parsing, no I/O
// except the two file readers.

#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"

namespace proctor {

// One setting of a config file.
struct ConfigSetting {
  std::string name;   // the long option without its dashes: "concurrent", "allow-schemes"
  std::string value;  // as the command line would give it; a list joined with commas
  int line = 0;       // 1-based, for messages
};

// Whether a config file may set the option `name` (a long name without dashes).
using KnownOption = std::function<bool(const std::string& name)>;

// Reads a config file's YAML text (`source` names it in errors): a mapping whose keys
// are option names ('_' read as '-') and whose values are scalars or lists of scalars
// (joined with commas, as list options such as allow-schemes take them). An unknown
// key, a nested mapping, an empty value or a key given twice is an error naming the key
// and its line. An empty file sets nothing.
Result<std::vector<ConfigSetting>> parse_config(std::string_view text, const std::string& source,
                                                const KnownOption& known);

// Reads and parses the config file at `path`.
Result<std::vector<ConfigSetting>> read_config_file(const std::filesystem::path& path, const KnownOption& known);

// The environment variable that sets the option `name`: RUNNER_ + name in upper case,
// '-' as '_' ("allow-schemes" -> RUNNER_ALLOW_SCHEMES).
std::string env_name_for(std::string_view name);

// Looks up an environment variable; nullptr when unset (std::getenv's contract).
using EnvLookup = std::function<const char*(const std::string& name)>;

// The arguments ("--name=value") that bring `settings` in below the command line and
// the environment: a setting whose RUNNER_<NAME> is set and not empty is left out (the
// environment wins over the file), and the caller puts these arguments before the
// command line's, where a repeated option takes its last value (the command line wins).
// `env` defaults to the process environment.
std::vector<std::string> config_arguments(const std::vector<ConfigSetting>& settings, const EnvLookup& env = {});

// One option as `runner --print-config` shows it.
struct PrintedSetting {
  std::string name;    // the long option without its dashes
  std::string value;   // as the command line would give it (secrets already masked)
  std::string source;  // where the value came from: "default", "config file", ...
  bool secret = false;  // shown only as set, in a comment: a saved output must not set it
};

// The settings as a YAML config file, one key per option in the given order, each with
// a comment naming its source; those with an empty value (unset) and the secrets are only
// named, in closing comments. --config reads it back to the same values, secrets aside.
std::string format_config(const std::vector<PrintedSetting>& settings);

// The password in the first line of `path`, its line end stripped; an unreadable file
// or an empty first line is an error naming the file.
Result<std::string> read_password_file(const std::filesystem::path& path);

}  // namespace proctor
