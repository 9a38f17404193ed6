#include "common/service_spec.hpp"

#include <fstream>
#include <sstream>

#include <yaml-cpp/yaml.h>

#include "common/text.hpp"

namespace proctor {

namespace {

std::string at_line(const YAML::Node& node) {
  const auto mark = node.Mark();
  if (mark.is_null()) return "";
  return " (line " + std::to_string(mark.line + 1) + ")";
}

// A scalar as text; null becomes "", sequences and maps their flow-style YAML.
std::string scalar_text(const YAML::Node& node) {
  if (!node || node.IsNull()) return "";
  if (node.IsScalar()) return node.Scalar();
  YAML::Emitter out;
  out << YAML::Flow << node;
  return out.c_str();
}

Result<std::vector<int>> exit_codes(const YAML::Node& node) {
  if (!node.IsSequence() || node.size() == 0) {
    return make_error("valid_exit_codes must be a non-empty list of integers" + at_line(node));
  }
  std::vector<int> codes;
  for (const auto& item : node) {
    int code = 0;
    if (!item.IsScalar() || !YAML::convert<int>::decode(item, code) || code < 0 || code > 255) {
      return make_error("valid_exit_codes must hold integers from 0 to 255" + at_line(item));
    }
    codes.push_back(code);
  }
  return codes;
}

Result<ServiceSpec> spec_from_yaml(const YAML::Node& root, std::string_view os) {
  if (!root.IsMap()) return make_error("a service specification must be a YAML mapping" + at_line(root));
  ServiceSpec spec;
  const YAML::Node cmd = root["cmd"];
  if (!cmd || cmd.IsNull()) return make_error("the specification has no cmd");
  if (cmd.IsScalar()) {
    spec.cmd = cmd.Scalar();
  } else if (cmd.IsMap()) {
    const YAML::Node command = cmd["command"];
    if (!command || !command.IsMap()) return make_error("cmd.command must be a mapping with a default line" + at_line(cmd));
    const YAML::Node line = command[std::string(os)] ? command[std::string(os)] : command["default"];
    if (!line || !line.IsScalar()) return make_error("cmd.command has no default line" + at_line(command));
    spec.cmd = line.Scalar();
    if (cmd["valid_exit_codes"]) {
      auto codes = exit_codes(cmd["valid_exit_codes"]);
      if (!codes) return codes.error();
      spec.valid_exit_codes = std::move(codes).value();
    }
  } else {
    return make_error("cmd must be a string or a {type: shell, command: ...} mapping" + at_line(cmd));
  }
  if (trim(spec.cmd).empty()) return make_error("cmd is empty" + at_line(cmd));

  if (const YAML::Node codes_node = root["valid_exit_codes"]) {
    auto codes = exit_codes(codes_node);
    if (!codes) return codes.error();
    spec.valid_exit_codes = std::move(codes).value();
  }
  if (const YAML::Node timeout = root["timeout"]; timeout && !timeout.IsNull()) {
    double seconds = 0;
    if (!timeout.IsScalar() || !YAML::convert<double>::decode(timeout, seconds) || seconds <= 0 ||
        seconds > 7 * 24 * 3600) {
      return make_error("timeout must be a positive number of seconds, at most a week" + at_line(timeout));
    }
    spec.timeout_seconds = seconds;
  }
  if (const YAML::Node type = root["type"]; type && type.IsScalar()) spec.type = type.Scalar();
  if (const YAML::Node reports = root["reports"]; reports && !reports.IsNull()) {
    if (!reports.IsSequence()) return make_error("reports must be a list of file patterns" + at_line(reports));
    for (const auto& item : reports) spec.reports.push_back(scalar_text(item));
  }
  if (const YAML::Node props = root["item_properties"]; props && !props.IsNull()) {
    if (!props.IsSequence()) return make_error("item_properties must be a list" + at_line(props));
    for (const auto& item : props) {
      if (!item.IsMap() || !item["key"] || !item["key"].IsScalar()) {
        return make_error("every item property needs a key" + at_line(item));
      }
      ServiceProperty property;
      property.key = item["key"].Scalar();
      property.value = scalar_text(item["value"]);
      if (item["type"] && item["type"].IsScalar()) property.type = item["type"].Scalar();
      if (item["direction"] && item["direction"].IsScalar()) property.direction = item["direction"].Scalar();
      if (item["mandatory"]) property.mandatory = item["mandatory"].as<bool>(false);
      spec.properties.push_back(std::move(property));
    }
  }
  return spec;
}

bool is_key_char(char c, bool first) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (!first && c >= '0' && c <= '9');
}

}  // namespace

Result<ServiceSpec> parse_service_spec(std::string_view yaml_text, std::string_view os) {
  try {
    return spec_from_yaml(YAML::Load(std::string(yaml_text)), os);
  } catch (const YAML::Exception& e) {
    return make_error("the specification is not valid YAML: " + e.msg + " (line " + std::to_string(e.mark.line + 1) + ")");
  }
}

Result<ServiceDefinition> load_service(const std::filesystem::path& path) {
  std::error_code ec;
  ServiceDefinition def;
  if (std::filesystem::is_directory(path, ec)) {
    def.dir = path;
    def.spec_file = path / "service.yaml";
    if (!std::filesystem::exists(def.spec_file, ec) && std::filesystem::exists(path / "service.yml", ec)) {
      def.spec_file = path / "service.yml";
    }
  } else {
    def.spec_file = path;
    def.dir = path.parent_path().empty() ? std::filesystem::path(".") : path.parent_path();
  }
  std::ifstream in(def.spec_file, std::ios::binary);
  if (!in) return make_error("cannot read the service specification " + def.spec_file.string());
  std::ostringstream text;
  text << in.rdbuf();
  auto spec = parse_service_spec(text.str());
  if (!spec) return make_error(def.spec_file.string() + ": " + spec.error().message);
  def.spec = std::move(spec).value();
  return def;
}

Result<std::string> expand_command(std::string_view cmd, const std::map<std::string, std::string>& inputs) {
  std::string out;
  out.reserve(cmd.size());
  std::size_t i = 0;
  while (i < cmd.size()) {
    if (cmd[i] == '$' && i + 1 < cmd.size() && cmd[i + 1] == '{') {
      const auto close = cmd.find('}', i + 2);
      const auto key = cmd.substr(i + 2, close == std::string_view::npos ? 0 : close - i - 2);
      bool valid = close != std::string_view::npos && !key.empty();
      for (std::size_t k = 0; valid && k < key.size(); ++k) valid = is_key_char(key[k], k == 0);
      if (valid) {
        const auto it = inputs.find(std::string(key));
        if (it == inputs.end()) {
          return make_error("cmd uses ${" + std::string(key) + "}, which is not an input property of the service");
        }
        out += shell_quote(it->second);
        i = close + 1;
        continue;
      }
    }
    out.push_back(cmd[i]);
    ++i;
  }
  return out;
}

}  // namespace proctor
