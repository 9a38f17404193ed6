#include "agent/config_file.hpp"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <map>
#include <optional>

#include <yaml-cpp/yaml.h>

#include "common/file_io.hpp"

namespace proctor {

namespace {

int line_of(const YAML::Node& node) { return node.Mark().line + 1; }

// The value of a key as one argument; nullopt (with `why`) when it is not a scalar or a
// list of scalars.
std::optional<std::string> value_text(const YAML::Node& value, std::string& why) {
  if (value.IsNull()) {
    why = "has no value";
    return std::nullopt;
  }
  if (value.IsScalar()) return value.Scalar();
  if (value.IsSequence()) {
    std::string joined;
    for (const auto& item : value) {
      if (!item.IsScalar()) {
        why = "is a list whose items are not plain values";
        return std::nullopt;
      }
      if (!joined.empty()) joined += ',';
      joined += item.Scalar();
    }
    return joined;
  }
  why = "is a mapping; give a value or a list";
  return std::nullopt;
}

}  // namespace

Result<std::vector<ConfigSetting>> parse_config(std::string_view text, const std::string& source,
                                                const KnownOption& known) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    return make_error(source + ":" + std::to_string(e.mark.line + 1) + ": not valid YAML: " + e.msg);
  }
  std::vector<ConfigSetting> settings;
  if (root.IsNull()) return settings;
  if (!root.IsMap()) {
    return make_error(source + ":" + std::to_string(line_of(root)) +
                      ": a config file is a mapping of option names to values, e.g. 'concurrent: 4'");
  }
  std::map<std::string, int> seen;  // name -> line
  for (const auto& entry : root) {
    const int line = line_of(entry.first);
    const auto at = source + ":" + std::to_string(line) + ": ";
    if (!entry.first.IsScalar()) return make_error(at + "a key must be an option name");
    std::string name = entry.first.Scalar();
    std::replace(name.begin(), name.end(), '_', '-');
    if (name.starts_with("--")) name.erase(0, 2);
    if (!known(name)) {
      return make_error(at + "unknown option '" + entry.first.Scalar() +
                        "' (keys are the long options without their dashes, e.g. 'concurrent: 4')");
    }
    if (const auto [it, inserted] = seen.emplace(name, line); !inserted) {
      return make_error(at + "'" + name + "' is set twice (first on line " + std::to_string(it->second) + ")");
    }
    std::string why;
    auto value = value_text(entry.second, why);
    if (!value) return make_error(at + "'" + name + "' " + why);
    settings.push_back(ConfigSetting{name, std::move(*value), line});
  }
  return settings;
}

Result<std::vector<ConfigSetting>> read_config_file(const std::filesystem::path& path, const KnownOption& known) {
  const auto text = read_whole_file(path, "the config file");
  if (!text) return text.error();
  return parse_config(*text, path.string(), known);
}

std::string env_name_for(std::string_view name) {
  std::string env = "RUNNER_";
  for (const char c : name) {
    env.push_back(c == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
  }
  return env;
}

std::vector<std::string> config_arguments(const std::vector<ConfigSetting>& settings, const EnvLookup& env) {
  std::vector<std::string> arguments;
  for (const auto& setting : settings) {
    const auto variable = env_name_for(setting.name);
    const char* set = env ? env(variable) : std::getenv(variable.c_str());
    // The same rule as the option parser's: an empty variable does not count as set.
    if (set != nullptr && *set != '\0') continue;
    if (setting.value.empty()) {
      // "--name=" would take the next argument as its value; "--name" "" is an empty one.
      arguments.push_back("--" + setting.name);
      arguments.emplace_back();
    } else {
      arguments.push_back("--" + setting.name + "=" + setting.value);
    }
  }
  return arguments;
}

Result<std::string> read_password_file(const std::filesystem::path& path) {
  auto text = read_whole_file(path, "the password file");
  if (!text) return text.error();
  std::string password = std::move(text).value();
  if (const auto end = password.find('\n'); end != std::string::npos) password.resize(end);
  if (!password.empty() && password.back() == '\r') password.pop_back();
  if (password.empty()) return make_error("the password file " + path.string() + " has an empty first line");
  return password;
}

std::string format_config(const std::vector<PrintedSetting>& settings) {
  YAML::Emitter out;
  out << YAML::BeginMap;
  std::string unset;
  std::string secrets;
  for (const auto& setting : settings) {
    if (setting.value.empty()) {
      unset += (unset.empty() ? "" : ", ") + setting.name;
      continue;
    }
    if (setting.secret) {
      secrets += (secrets.empty() ? "" : ", ") + setting.name + " (" + setting.source + ")";
      continue;
    }
    out << YAML::Key << setting.name << YAML::Value << setting.value << YAML::Comment(setting.source);
  }
  out << YAML::EndMap;
  std::string text = std::string(out.c_str()) + "\n";
  if (!secrets.empty()) text += "# set, not shown: " + secrets + "\n";
  if (!unset.empty()) text += "# not set: " + unset + "\n";
  return text;
}

}  // namespace proctor
