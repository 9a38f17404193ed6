#include "common/service_spec.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <set>

#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

#include "common/file_io.hpp"
#include "common/limits.hpp"
#include "common/text.hpp"

namespace proctor {

namespace {

using Severity = SpecProblem::Severity;
using Names = std::vector<std::string_view>;

const Names kDirectives = {"cmd", "item_properties", "timeout", "type", "repository", "valid_exit_codes", "reports"};
const Names kPropertyFields = {"key", "value", "type", "editor", "mandatory", "direction", "help", "example", "store"};
const Names kPropertyTypes = {"text", "integer", "json", "boolean", "list", "environment"};
const Names kEditors = {"text", "number", "json", "textarea", "checkbox", "selectbox", "multiselectbox", "itemselector"};
const Names kSelectorEditors = {"selectbox", "multiselectbox", "itemselector"};
const Names kDirections = {"input", "output", "both"};
const Names kActionFamily = {"action", "setup", "teardown", "fixture", "analyzer", "fetcher", "test"};
const Names kClusterTypes = {"cycle", "container"};
const Names kRepoTypes = {"git", "svn", "http", "s3"};

bool contains(const Names& names, std::string_view name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

// "a, b, c or d"
std::string one_of(const Names& names) {
  std::string out;
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (i > 0) out += i + 1 == names.size() ? " or " : ", ";
    out += names[i];
  }
  return out;
}

// Edit distance, for "did you mean" on misspelt keys.
std::size_t distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

// " (did you mean 'x'?)" when a known name is close to `name`.
std::string suggestion(std::string_view name, const Names& known) {
  std::string_view best;
  // At most a third of the name wrong (two letters at most): 'timout' is 'timeout', 'ftp' is not 'http'.
  std::size_t best_distance = std::min<std::size_t>(2, std::max<std::size_t>(1, name.size() / 3)) + 1;
  for (const auto candidate : known) {
    const std::size_t d = distance(name, candidate);
    if (d < best_distance) {
      best = candidate;
      best_distance = d;
    }
  }
  return best.empty() ? "" : " (did you mean '" + std::string(best) + "'?)";
}

// What a node is, for "... must be X, not Y".
std::string kind_of(const YAML::Node& node) {
  if (!node || node.IsNull()) return "nothing";
  if (node.IsSequence()) return "a list";
  if (node.IsMap()) return "a mapping";
  return "'" + node.Scalar() + "'";
}

bool is_key_char(char c, bool first) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (!first && c >= '0' && c <= '9');
}

bool is_identifier(std::string_view key) {
  if (key.empty()) return false;
  for (std::size_t i = 0; i < key.size(); ++i) {
    if (!is_key_char(key[i], i == 0)) return false;
  }
  return true;
}

// One ${key} of a command line: the key, where its "${" starts and one past its "}".
struct CommandKey {
  std::string_view key;
  std::size_t at = 0;
  std::size_t end = 0;
};

// Calls f(CommandKey) for each ${key} of `cmd` whose key is an identifier, in order;
// anything else that looks like one ("${ x}", "${") is plain text.
template <class F>
void for_each_command_key(std::string_view cmd, const F& f) {
  std::size_t i = 0;
  while ((i = cmd.find("${", i)) != std::string_view::npos) {
    const auto close = cmd.find('}', i + 2);
    if (close == std::string_view::npos) break;
    const auto key = cmd.substr(i + 2, close - i - 2);
    if (!is_identifier(key)) {
      i += 2;
      continue;
    }
    f(CommandKey{key, i, close + 1});
    i = close + 1;
  }
}

// A plain (unquoted) scalar: its text may stand for a number, a boolean or null.
bool is_plain(const YAML::Node& node) { return node.Tag() == "?"; }

// Bounds for turning a YAML value into JSON: an alias can make a node contain itself
// (`&a [*a]`) or multiply (billion laughs).
constexpr int kMaxJsonDepth = 64;
constexpr std::size_t kMaxJsonNodes = 100000;

// A YAML value as JSON: plain scalars that read as booleans or numbers become those,
// everything else text; sequences and mappings keep their shape. Nullopt past the bounds.
std::optional<nlohmann::json> to_json(const YAML::Node& node, int depth, std::size_t& budget) {
  if (depth > kMaxJsonDepth || budget == 0) return std::nullopt;
  --budget;
  if (!node || node.IsNull()) return nlohmann::json(nullptr);
  if (node.IsSequence()) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& item : node) {
      auto value = to_json(item, depth + 1, budget);
      if (!value) return std::nullopt;
      out.push_back(std::move(*value));
    }
    return out;
  }
  if (node.IsMap()) {
    nlohmann::json out = nlohmann::json::object();
    for (const auto& entry : node) {
      auto value = to_json(entry.second, depth + 1, budget);
      if (!value) return std::nullopt;
      out[make_valid_utf8(entry.first.Scalar())] = std::move(*value);
    }
    return out;
  }
  const std::string& text = node.Scalar();
  if (is_plain(node)) {
    bool flag = false;
    if (YAML::convert<bool>::decode(node, flag)) return flag;
    long long whole = 0;
    if (const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), whole);
        ec == std::errc() && end == text.data() + text.size()) {
      return whole;
    }
    double number = 0;
    if (const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), number);
        ec == std::errc() && end == text.data() + text.size()) {
      return number;
    }
  }
  return make_valid_utf8(text);
}

// Reads one specification, collecting every problem.
class SpecReader {
 public:
  explicit SpecReader(std::string_view os) : os_(os) {}

  SpecCheck read(const YAML::Node& root) {
    if (!root || root.IsNull()) {
      error(root, "the specification is empty: it needs at least cmd (the command line that runs the service)");
      return finish();
    }
    if (!root.IsMap()) {
      error(root, "a service specification must be a mapping of directives (" + one_of(kDirectives) + "), not " +
                      kind_of(root));
      return finish();
    }
    check_known_keys(root, kDirectives, "directive", "", "a specification has");
    read_type(root["type"]);
    read_properties(root["item_properties"]);
    const bool on_agent = spec_.runs_on_agent();
    read_cmd(root["cmd"], root, on_agent);
    read_timeout(root["timeout"], root, on_agent);
    if (const YAML::Node codes = root["valid_exit_codes"]) {
      if (auto read = exit_codes(codes); read) {
        if (cmd_exit_codes_ && *cmd_exit_codes_ != *read) {
          warning(codes, "valid_exit_codes is given both here and under cmd; this top-level list is the one used");
        }
        spec_.valid_exit_codes = *read;
      }
    }
    read_reports(root["reports"]);
    read_repository(root["repository"]);
    check_type_constraints(root["type"]);
    return finish();
  }

 private:
  void add(Severity severity, const YAML::Node& at, std::string message, int column_offset = 0) {
    SpecProblem problem;
    problem.severity = severity;
    problem.message = std::move(message);
    if (at) {
      const YAML::Mark mark = at.Mark();
      if (!mark.is_null()) {
        problem.line = mark.line + 1;
        problem.column = mark.column + 1 + column_offset;
      }
    }
    problems_.push_back(std::move(problem));
  }
  void error(const YAML::Node& at, std::string message, int column_offset = 0) {
    add(Severity::error, at, std::move(message), column_offset);
  }
  void warning(const YAML::Node& at, std::string message) { add(Severity::warning, at, std::move(message)); }

  // Reports each key of `map` that is not in `known` ("unknown <what> 'name'<qualifier>
  // (did you mean ...?); <has> a, b or c"); true when all are known.
  bool check_known_keys(const YAML::Node& map, const Names& known, const std::string& what,
                        const std::string& qualifier, const std::string& has) {
    bool all_known = true;
    for (const auto& entry : map) {
      const std::string name = entry.first.Scalar();
      if (contains(known, name)) continue;
      error(entry.first, "unknown " + what + " '" + name + "'" + qualifier + suggestion(name, known) + "; " + has +
                             " " + one_of(known));
      all_known = false;
    }
    return all_known;
  }

  SpecCheck finish() {
    std::stable_sort(problems_.begin(), problems_.end(),
                     [](const SpecProblem& a, const SpecProblem& b) { return a.line < b.line; });
    return SpecCheck{std::move(spec_), std::move(problems_)};
  }

  // A text field: a scalar (null is "" unless required); anything else is a problem.
  std::optional<std::string> text(const YAML::Node& node, std::string_view what) {
    if (!node || node.IsNull()) return std::string();
    if (!node.IsScalar()) {
      error(node, std::string(what) + " must be text, not " + kind_of(node));
      return std::nullopt;
    }
    return node.Scalar();
  }

  // A name from a fixed list, or a problem naming the list.
  std::optional<std::string> choice(const YAML::Node& node, std::string_view what, const Names& names) {
    if (!node.IsScalar() || !contains(names, node.Scalar())) {
      const std::string given = node.IsScalar() ? node.Scalar() : kind_of(node);
      error(node, std::string(what) + " '" + given + "' is not one of " + one_of(names) +
                      (node.IsScalar() ? suggestion(given, names) : ""));
      return std::nullopt;
    }
    return node.Scalar();
  }

  void read_type(const YAML::Node& node) {
    if (!node) return;
    static const Names kTypes = [] {
      Names all = kActionFamily;
      all.insert(all.end(), kClusterTypes.begin(), kClusterTypes.end());
      return all;
    }();
    if (auto type = choice(node, "service type", kTypes)) spec_.type = *type;
    if (contains(kClusterTypes, spec_.type)) {
      warning(node, "a " + spec_.type +
                        " is run by Opereto's own cluster, not by an agent: runner checks it but will not run it");
    }
  }

  std::optional<std::vector<int>> exit_codes(const YAML::Node& node) {
    if (!node.IsSequence() || node.size() == 0) {
      error(node, "valid_exit_codes must be a non-empty list of exit codes such as [0, 1], not " + kind_of(node));
      return std::nullopt;
    }
    std::vector<int> codes;
    bool ok = true;
    for (const auto& item : node) {
      int code = 0;
      if (!item.IsScalar() || !YAML::convert<int>::decode(item, code) || code < 0 || code > 255) {
        error(item, "exit code " + kind_of(item) + " is not a whole number from 0 to 255");
        ok = false;
        continue;
      }
      if (std::find(codes.begin(), codes.end(), code) != codes.end()) {
        warning(item, "exit code " + std::to_string(code) + " is listed twice");
      }
      codes.push_back(code);
    }
    if (!ok) return std::nullopt;
    return codes;
  }

  void read_cmd(const YAML::Node& cmd, const YAML::Node& root, bool on_agent) {
    if (!cmd || cmd.IsNull()) {
      if (on_agent) error(root, "the specification has no cmd: the command line that runs the service");
      return;
    }
    if (cmd.IsScalar()) {
      spec_.cmd = cmd.Scalar();
      if (trim(spec_.cmd).empty()) error(cmd, "cmd is empty");
      check_command_keys(cmd);
      return;
    }
    if (!cmd.IsMap()) {
      error(cmd, "cmd must be a command line or a {type: shell, command: {default: ...}} mapping, not " + kind_of(cmd));
      return;
    }
    static const Names kCmdFields = {"type", "command", "valid_exit_codes"};
    check_known_keys(cmd, kCmdFields, "cmd field", "", "cmd has");
    if (const YAML::Node type = cmd["type"]; type && !(type.IsScalar() && type.Scalar() == "shell")) {
      error(type, "cmd type " + kind_of(type) + " is not supported: the only cmd type is shell");
    }
    if (const YAML::Node codes = cmd["valid_exit_codes"]) {
      if (auto read = exit_codes(codes)) {
        spec_.valid_exit_codes = *read;
        cmd_exit_codes_ = std::move(read);
      }
    }
    const YAML::Node command = cmd["command"];
    if (!command || !command.IsMap()) {
      error(command ? command : cmd, "cmd.command must be a mapping with a default line (and optional linux and "
                                     "windows lines), not " + kind_of(command));
      return;
    }
    static const Names kLines = {"default", "linux", "windows"};
    check_known_keys(command, kLines, "cmd.command line", "", "the lines are");
    for (const auto& entry : command) {
      const std::string name = entry.first.Scalar();
      if (!contains(kLines, name)) continue;
      if (!entry.second.IsScalar() || trim(entry.second.Scalar()).empty()) {
        error(entry.second, "cmd.command." + name + " must be a command line, not " + kind_of(entry.second));
        continue;
      }
      check_command_keys(entry.second);
    }
    if (!command["default"]) {
      error(command, "cmd.command has no default line");
      return;
    }
    const YAML::Node line = command[std::string(os_)] ? command[std::string(os_)] : command["default"];
    if (line.IsScalar()) spec_.cmd = line.Scalar();
  }

  // Every ${key} of a command line must name an input: a property or one the agent gives.
  void check_command_keys(const YAML::Node& line) {
    const std::string& cmd = line.Scalar();
    // The exact column is known when the line is one plain scalar line.
    const bool exact = is_plain(line) && cmd.find('\n') == std::string::npos;
    for_each_command_key(cmd, [&](const CommandKey& found) { check_command_key(line, found, exact); });
  }

  // A ${key} must name an input: a property that is one, or one the agent provides.
  void check_command_key(const YAML::Node& line, const CommandKey& found, bool exact) {
    const std::string key(found.key);
    const int offset = exact ? static_cast<int>(found.at) : 0;
    const ServiceProperty* property = spec_.property(key);
    const auto& builtins = builtin_inputs();
    if (property != nullptr && !property->is_input()) {
      error(line, "cmd uses ${" + key + "}, but '" + key + "' is an output property: only inputs reach the command",
            offset);
    } else if (property == nullptr && std::find(builtins.begin(), builtins.end(), key) == builtins.end()) {
      error(line, "cmd uses ${" + key + "}, which names no input property" + suggestion(key, property_keys()) +
                      " and none the agent provides (" + join(builtins, ", ") + ")",
            offset);
    }
  }

  Names property_keys() const {
    Names keys;
    for (const auto& property : spec_.properties) keys.emplace_back(property.key);
    return keys;
  }

  void read_timeout(const YAML::Node& node, const YAML::Node& root, bool on_agent) {
    if (!node || node.IsNull()) {
      if (on_agent) {
        warning(root, "no timeout: the agent's --default-timeout applies (Opereto requires one for actions)");
      }
      return;
    }
    double seconds = 0;
    if (!node.IsScalar() || !YAML::convert<double>::decode(node, seconds) || !(seconds > 0) || seconds > kMaxTimeoutSeconds) {
      error(node, "timeout must be a positive number of seconds, at most a week (604800), not " + kind_of(node));
      return;
    }
    spec_.timeout_seconds = seconds;
  }

  void read_reports(const YAML::Node& node) {
    if (!node || node.IsNull()) return;
    if (!node.IsSequence()) {
      error(node, "reports must be a list of report file patterns such as [target/surefire-reports/*.xml], not " +
                      kind_of(node));
      return;
    }
    for (const auto& item : node) {
      if (!item.IsScalar() || trim(item.Scalar()).empty()) {
        error(item, "a reports entry must be a file pattern, not " + kind_of(item));
        continue;
      }
      spec_.reports.push_back(item.Scalar());
    }
  }

  void read_properties(const YAML::Node& node) {
    if (!node || node.IsNull()) return;
    if (!node.IsSequence()) {
      error(node, "item_properties must be a list of properties (each with key and value), not " + kind_of(node));
      return;
    }
    std::map<std::string, int> first_line;
    for (const auto& item : node) {
      if (!item.IsMap()) {
        error(item, "an item property must be a mapping with at least key and value, not " + kind_of(item));
        continue;
      }
      auto property = read_property(item);
      if (!property) continue;
      if (const auto [it, fresh] = first_line.emplace(property->key, property->line); !fresh) {
        error(item["key"], "property '" + property->key + "' is defined twice (first at line " +
                               std::to_string(it->second) + ")");
        continue;
      }
      spec_.properties.push_back(std::move(*property));
    }
  }

  std::optional<ServiceProperty> read_property(const YAML::Node& item) {
    ServiceProperty property;
    property.line = item.Mark().line + 1;
    check_known_keys(item, kPropertyFields, "property field", "", "a property has");
    const YAML::Node key = item["key"];
    if (!key || key.IsNull()) {
      error(item, "an item property has no key (its name)");
      return std::nullopt;
    }
    if (!key.IsScalar() || !is_identifier(key.Scalar())) {
      error(key, "property key " + kind_of(key) +
                     " must be letters, digits and underscores, not starting with a digit (it becomes ${key} and OT_KEY)");
      return std::nullopt;
    }
    property.key = key.Scalar();
    const std::string label = "property '" + property.key + "'";
    if (const YAML::Node type = item["type"]; type && !type.IsNull()) {
      if (auto read = choice(type, label + " type", kPropertyTypes)) property.type = *read;
    }
    if (const YAML::Node editor = item["editor"]; editor && !editor.IsNull()) {
      // The seed's own example writes "multiselector" for the multiselectbox editor.
      if (editor.IsScalar() && editor.Scalar() == "multiselector") {
        property.editor = "multiselectbox";
      } else if (auto read = choice(editor, label + " editor", kEditors)) {
        property.editor = *read;
      }
    }
    if (const YAML::Node direction = item["direction"]; direction && !direction.IsNull()) {
      if (auto read = choice(direction, label + " direction", kDirections)) property.direction = *read;
    }
    if (const YAML::Node mandatory = item["mandatory"]; mandatory && !mandatory.IsNull()) {
      bool flag = false;
      if (!mandatory.IsScalar() || !YAML::convert<bool>::decode(mandatory, flag)) {
        error(mandatory, label + " mandatory must be true or false, not " + kind_of(mandatory));
      }
      property.mandatory = flag;
    }
    if (auto help = text(item["help"], label + " help")) property.help = *help;
    read_store(item["store"], property, label);
    const YAML::Node value = item["value"];
    if (!value) {
      error(item, label + " has no value field; write 'value:' when it has no default");
    } else if (!value.IsNull()) {
      property.value = default_value(value, property, label);
    }
    if (contains(kSelectorEditors, property.editor) && property.store.empty()) {
      error(item, label + " uses the " + property.editor + " editor but has no store of choices");
    }
    return property;
  }

  void read_store(const YAML::Node& store, ServiceProperty& property, const std::string& label) {
    if (!store || store.IsNull()) return;
    if (!store.IsMap()) {
      error(store, label + " store must be a mapping of choices (name: value), not " + kind_of(store));
      return;
    }
    for (const auto& entry : store) {
      if (!entry.second.IsNull() && !entry.second.IsScalar()) {
        error(entry.second, label + " store entry '" + entry.first.Scalar() + "' must be text, not " +
                                kind_of(entry.second));
        continue;
      }
      property.store[entry.first.Scalar()] = entry.second.IsNull() ? "" : entry.second.Scalar();
    }
  }

  // The default value as the text a service receives, checked against the type.
  std::optional<std::string> default_value(const YAML::Node& value, const ServiceProperty& property,
                                           const std::string& label) {
    std::string as_text;
    if (value.IsScalar()) {
      as_text = value.Scalar();
    } else if (property.type == "json") {
      std::size_t budget = kMaxJsonNodes;
      auto json = to_json(value, 0, budget);
      if (!json) {
        error(value, label + " value is nested more than " + std::to_string(kMaxJsonDepth) + " levels deep or has more than " +
                         std::to_string(kMaxJsonNodes) + " parts (an alias that refers to itself?)");
        return std::nullopt;
      }
      as_text = json->dump();
    } else if (property.type == "list" && value.IsSequence()) {
      std::vector<std::string> items;
      for (const auto& item : value) {
        if (!item.IsScalar()) {
          error(item, label + " is a list of texts, so its value cannot hold " + kind_of(item));
          return std::nullopt;
        }
        items.push_back(item.Scalar());
      }
      as_text = join(items, ",");
    } else {
      error(value, label + " is of type " + property.type + ", so its value cannot be " + kind_of(value));
      return std::nullopt;
    }
    if (auto problem = check_property_value(property, as_text)) {
      error(value, label + " default value: " + *problem);
      return std::nullopt;
    }
    return as_text;
  }

  void read_repository(const YAML::Node& node) {
    if (!node || node.IsNull()) return;
    if (!node.IsMap()) {
      error(node, "repository must be a mapping with repo_type and its fields, not " + kind_of(node));
      return;
    }
    const YAML::Node type = node["repo_type"];
    if (!type) {
      error(node, "repository has no repo_type (" + one_of(kRepoTypes) + ")");
      return;
    }
    const auto repo_type = choice(type, "repo_type", kRepoTypes);
    if (!repo_type) return;
    static const std::map<std::string, Names, std::less<>> kFields = {
        {"git", {"repo_type", "url", "branch", "revision", "ot_dir", "username", "password"}},
        {"svn", {"repo_type", "url", "revision", "ot_dir", "username", "password"}},
        {"http", {"repo_type", "url", "ot_dir", "username", "password"}},
        {"s3", {"repo_type", "bucket", "access_key", "secret_key", "region", "endpoint", "ot_dir"}}};
    const Names& fields = kFields.find(*repo_type)->second;
    RepositorySpec repo;
    repo.repo_type = *repo_type;
    const std::map<std::string_view, std::string*> targets = {
        {"url", &repo.url},           {"branch", &repo.branch},       {"revision", &repo.revision},
        {"ot_dir", &repo.ot_dir},     {"username", &repo.username},   {"password", &repo.password},
        {"bucket", &repo.bucket},     {"access_key", &repo.access_key}, {"secret_key", &repo.secret_key},
        {"region", &repo.region},     {"endpoint", &repo.endpoint}};
    bool ok = check_known_keys(node, fields, "field", " for a " + *repo_type + " repository", "it has");
    for (const auto& entry : node) {
      const std::string name = entry.first.Scalar();
      if (!contains(fields, name) || name == "repo_type") continue;
      if (auto value = text(entry.second, "repository " + name)) *targets.at(name) = *value;
      else ok = false;
    }
    const bool needs_url = *repo_type != "s3";
    if (needs_url && trim(repo.url).empty()) {
      error(node, "a " + *repo_type + " repository needs a url");
      ok = false;
    }
    if (*repo_type == "http" && !repo.url.empty() && repo.url.rfind("http://", 0) != 0 &&
        repo.url.rfind("https://", 0) != 0) {
      error(node["url"], "an http repository's url must start with http:// or https://");
      ok = false;
    }
    if (*repo_type == "s3") {
      const auto slash = repo.bucket.find('/');
      if (slash == std::string::npos || slash == 0 || slash + 1 == repo.bucket.size()) {
        error(node["bucket"] ? node["bucket"] : node,
              "an s3 repository needs bucket: <bucket>/<key of the archive>, such as my_bucket/my_service.zip");
        ok = false;
      }
    }
    if (!repo.ot_dir.empty()) {
      const std::filesystem::path dir(repo.ot_dir);
      const bool escapes = std::any_of(dir.begin(), dir.end(), [](const auto& part) { return part == ".."; });
      if (dir.is_absolute() || escapes) {
        error(node["ot_dir"], "ot_dir must be a folder inside the repository (no leading / and no ..)");
        ok = false;
      }
    }
    if (ok) spec_.repository = std::move(repo);
  }

  // The action family's extra rules (seed: "Additional Constraints").
  void check_type_constraints(const YAML::Node& type_node) {
    const std::string& type = spec_.type;
    if (type == "action" || !spec_.runs_on_agent()) return;
    const ServiceProperty* env = spec_.property("sut_environment");
    const bool is_environment = env != nullptr && env->type == "environment";
    if (type == "setup") {
      if (!is_environment || !env->is_output()) {
        error(type_node, "a setup service must have an output property 'sut_environment' of type environment");
      }
    } else if (!is_environment || !env->is_input()) {
      error(type_node, "a " + type + " service must have an input property 'sut_environment' of type environment");
    }
  }

  std::string os_;
  ServiceSpec spec_;
  std::vector<SpecProblem> problems_;
  std::optional<std::vector<int>> cmd_exit_codes_;
};

}  // namespace

std::string describe(const SpecProblem& problem) {
  std::string out;
  if (problem.line > 0) {
    out = "line " + std::to_string(problem.line);
    if (problem.column > 0) out += ", column " + std::to_string(problem.column);
    out += ": ";
  }
  if (problem.severity == Severity::warning) out += "warning: ";
  return out + problem.message;
}

const ServiceProperty* ServiceSpec::property(std::string_view key) const {
  const auto it = std::find_if(properties.begin(), properties.end(), [&](const auto& p) { return p.key == key; });
  return it == properties.end() ? nullptr : &*it;
}

bool ServiceSpec::runs_on_agent() const { return contains(kActionFamily, type); }

bool SpecCheck::valid() const {
  return std::none_of(problems.begin(), problems.end(), [](const auto& p) { return p.severity == Severity::error; });
}

SpecCheck check_service_spec(std::string_view yaml_text, std::string_view os) {
  try {
    return SpecReader(os).read(YAML::Load(std::string(yaml_text)));
  } catch (const YAML::Exception& e) {
    SpecCheck check;
    SpecProblem problem;
    problem.message = "this is not valid YAML: " + make_valid_utf8(e.msg);
    if (!e.mark.is_null()) {
      problem.line = e.mark.line + 1;
      problem.column = e.mark.column + 1;
    }
    check.problems.push_back(std::move(problem));
    return check;
  } catch (const std::exception& e) {
    // Whatever else a hostile document provokes is a problem with it, not a crash.
    SpecCheck check;
    check.problems.push_back({SpecProblem::Severity::error, 0, 0,
                              "the specification cannot be read: " + make_valid_utf8(e.what())});
    return check;
  }
}

namespace {

// The checked specification when it is valid, else its first error with its place.
Result<ServiceSpec> valid_spec(SpecCheck check) {
  for (const auto& problem : check.problems) {
    if (problem.severity == Severity::error) return make_error(describe(problem));
  }
  return std::move(check.spec);
}

}  // namespace

Result<ServiceSpec> parse_service_spec(std::string_view yaml_text, std::string_view os) {
  return valid_spec(check_service_spec(yaml_text, os));
}

Result<SpecCheck> check_service_file(const std::filesystem::path& file) {
  auto text = read_whole_file(file, "the service specification");
  if (!text) return text.error();
  return check_service_spec(*text);
}

const std::vector<std::string>& builtin_inputs() {
  static const std::vector<std::string> kBuiltins = {
      "repository_dir", "branch",   "laboratory_number", "connected_tests",  "task_id",
      "junit_xml",      "results_dir", "pid",            "opereto_workspace", "opereto_timeout",
      "opereto_execution_mode"};
  return kBuiltins;
}

std::optional<std::string> check_property_value(const ServiceProperty& property, std::string_view value) {
  const std::string_view trimmed = trim(value);
  if (property.type == "integer") {
    long long number = 0;
    const char* begin = trimmed.data();
    const char* end = begin + trimmed.size();
    if (!trimmed.empty() && *begin == '+') ++begin;
    const auto [stop, ec] = std::from_chars(begin, end, number);
    if (trimmed.empty() || ec != std::errc() || stop != end) {
      return "'" + std::string(value) + "' is not a whole number (the property is an integer)";
    }
  } else if (property.type == "boolean") {
    static const Names kBooleans = {"true", "false", "True", "False", "TRUE", "FALSE", "yes", "no", "on", "off"};
    if (!contains(kBooleans, trimmed)) return "'" + std::string(value) + "' is not true or false (the property is a boolean)";
  } else if (property.type == "json") {
    if (!nlohmann::json::accept(value)) return "'" + std::string(value) + "' is not JSON (the property is json)";
  }
  if (contains(kSelectorEditors, property.editor) && !property.store.empty()) {
    const auto items = property.editor == "selectbox" ? std::vector<std::string>{std::string(trimmed)}
                                                     : split_list(value, ',');
    for (const auto& item : items) {
      if (item.empty() && property.editor == "selectbox") continue;
      if (property.store.count(item) == 0) {
        std::vector<std::string> choices;
        for (const auto& [name, ignored] : property.store) choices.push_back(name);
        return "'" + item + "' is not one of its choices (" + join(choices, ", ") + ")";
      }
    }
  }
  return std::nullopt;
}

std::filesystem::path spec_file_of(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::is_directory(path, ec)) return path;
  if (!std::filesystem::exists(path / "service.yaml", ec) && std::filesystem::exists(path / "service.yml", ec)) {
    return path / "service.yml";
  }
  return path / "service.yaml";
}

Result<ServiceDefinition> load_service(const std::filesystem::path& path) {
  ServiceDefinition def;
  def.spec_file = spec_file_of(path);
  def.dir = def.spec_file.parent_path().empty() ? std::filesystem::path(".") : def.spec_file.parent_path();
  auto check = check_service_file(def.spec_file);
  if (!check) return check.error();
  auto spec = valid_spec(std::move(check).value());
  if (!spec) return make_error(def.spec_file.string() + ": " + spec.error().message);
  def.spec = std::move(spec).value();
  return def;
}

std::vector<std::string> command_keys(std::string_view cmd) {
  std::vector<std::string> keys;
  for_each_command_key(cmd, [&keys](const CommandKey& found) { keys.emplace_back(found.key); });
  return keys;
}

Result<std::string> expand_command(std::string_view cmd, const std::map<std::string, std::string>& inputs) {
  std::string out;
  out.reserve(cmd.size());
  std::size_t copied = 0;  // cmd before this is in `out`
  std::optional<std::string> unknown;
  for_each_command_key(cmd, [&](const CommandKey& found) {
    if (unknown) return;
    const auto it = inputs.find(std::string(found.key));
    if (it == inputs.end()) {
      unknown = std::string(found.key);
      return;
    }
    out.append(cmd.substr(copied, found.at - copied));
    out += shell_quote(it->second);
    copied = found.end;
  });
  if (unknown) return make_error("cmd uses ${" + *unknown + "}, which is not an input property of the service");
  out.append(cmd.substr(copied));
  return out;
}

}  // namespace proctor
