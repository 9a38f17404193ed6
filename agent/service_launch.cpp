#include "agent/service_launch.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include <spdlog/spdlog.h>

#include "agent/workspace.hpp"
#include "common/file_io.hpp"
#include "common/json_bounded.hpp"
#include "common/text.hpp"

namespace proctor {

namespace fs = std::filesystem;

namespace {

// OT_<KEY>: the key upper-cased, anything but letters and digits made '_'.
std::string upper_key(std::string_view key) {
  std::string out;
  for (char c : key) {
    const bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    out.push_back(alnum ? static_cast<char>(std::toupper(static_cast<unsigned char>(c))) : '_');
  }
  return out;
}

}  // namespace

Result<ServiceDefinition> load_named_service(const fs::path& services_dir, const std::string& name) {
  if (!is_plain_name(name)) return make_error("the service name '" + make_valid_utf8(name) + "' is not a plain name");
  std::error_code ec;
  const auto dir = services_dir / name;
  if (!fs::exists(dir, ec)) return make_error("no service named '" + name + "' in " + services_dir.string());
  auto service = load_service(dir);
  if (!service) return make_error("the service '" + name + "' cannot be loaded: " + service.error().message);
  return service;
}

bool is_agent_set_input(std::string_view key) {
  return key == "pid" || key == "junit_xml" || key.starts_with("opereto_");
}

void add_builtin_inputs(ServiceInputs& inputs, const std::string& pid, const fs::path& service_dir,
                        double timeout_seconds, const fs::path& junit_xml) {
  inputs["pid"] = pid;
  inputs["opereto_workspace"] = service_dir.string();
  inputs["opereto_timeout"] = std::to_string(static_cast<int64_t>(std::ceil(timeout_seconds)));
  inputs["opereto_execution_mode"] = "production";
  inputs["junit_xml"] = junit_xml.string();
}

std::string exit_code_list(const std::vector<int>& codes) {
  std::vector<std::string> parts;
  parts.reserve(codes.size());
  for (int c : codes) parts.push_back(std::to_string(c));
  return "[" + join(parts, ", ") + "]";
}

ServiceInputs default_inputs(const ServiceSpec& spec) {
  ServiceInputs inputs;
  for (const auto& property : spec.properties) {
    if (property.is_input()) inputs[property.key] = property.value.value_or("");
  }
  return inputs;
}

Result<void> check_inputs(const ServiceSpec& spec, const ServiceInputs& inputs) {
  for (const auto& property : spec.properties) {
    if (!property.is_input()) continue;
    const auto it = inputs.find(property.key);
    const std::string value = it == inputs.end() ? std::string() : it->second;
    if (trim(value).empty()) {
      if (property.mandatory)
        return make_error("the service's mandatory input '" + property.key + "' has no value");
      continue;
    }
    if (auto problem = check_property_value(property, value)) {
      return make_error("the service's input '" + property.key + "' is invalid: " + *problem);
    }
  }
  return {};
}

nlohmann::json input_properties_json(const ServiceSpec& spec, const ServiceInputs& inputs) {
  nlohmann::json json = nlohmann::json::object();
  for (const auto& property : spec.properties) {
    if (!property.is_input()) continue;
    const auto it = inputs.find(property.key);
    json[property.key] = make_valid_utf8(it == inputs.end() ? std::string() : it->second);
  }
  return json;
}

Result<ProcessSpec> service_process(const ServiceSpec& spec, const ServiceInputs& inputs,
                                    const fs::path& service_dir, const fs::path& tmp_dir,
                                    std::chrono::milliseconds timeout,
                                    const LaunchSettings& settings) {
  auto command = expand_command(spec.cmd, inputs);
  if (!command)
    return make_error("the service command cannot be built: " + command.error().message);

  // The inputs as input.json in the working folder and, for services written for
  // Opereto, as arguments.json in the service folder (where pyopereto reads them); here
  // both are the service's own copy.
  nlohmann::json input_json = nlohmann::json::object();
  for (const auto& [key, value] : inputs) input_json[key] = make_valid_utf8(value);
  const std::string text = input_json.dump(2);
  for (const char* name : {"input.json", "arguments.json"}) {
    // Replaced, never written through: a link of that name in the service's code must
    // not lead the agent to write elsewhere.
    if (auto written = write_file_atomically(service_dir / name, text, Durability::volatile_ok);
        !written) {
      return make_error("the service input could not be written: " + written.error().message);
    }
  }

  ProcessSpec process;
  process.argv = {"/bin/sh", "-c", *command};
  process.working_dir = service_dir;
  for (const auto& name : settings.env_allow) {
    if (const char* value = std::getenv(name.c_str()); value != nullptr)
      process.env.emplace_back(name, value);
  }
  if (std::none_of(process.env.begin(), process.env.end(),
                   [](const auto& kv) { return kv.first == "PATH"; })) {
    process.env.emplace_back("PATH", "/usr/local/bin:/usr/bin:/bin");
  }
  process.env.emplace_back("TMPDIR", tmp_dir.string());
  process.env.emplace_back("opereto_workspace", service_dir.string());
  for (const auto& [key, value] : inputs) process.env.emplace_back("OT_" + upper_key(key), value);
  process.timeout = timeout;
  process.kill_grace = settings.kill_grace;
  process.tail_bytes = settings.tail_bytes;
  return process;
}

nlohmann::json read_service_outputs(const ServiceSpec& spec, const fs::path& output_file,
                                    std::string_view who) {
  constexpr std::uintmax_t kMaxOutputBytes = 16 * 1024 * 1024;
  nlohmann::json kept = nlohmann::json::object();
  std::error_code ec;
  if (!fs::is_regular_file(fs::symlink_status(output_file, ec)))
    return kept;  // not a link to elsewhere
  if (fs::file_size(output_file, ec) > kMaxOutputBytes) {
    spdlog::warn("{}: the service's output.json is larger than 16 MiB; its outputs are ignored",
                 who);
    return kept;
  }
  const auto text = read_whole_file(output_file, "the service's output");
  const nlohmann::json written =
      text ? parse_json_bounded(*text) : nlohmann::json(nlohmann::json::value_t::discarded);
  if (written.is_discarded() || !written.is_object()) {
    spdlog::warn(
        "{}: the service's output.json is not a JSON object (of at most {} levels); its outputs "
        "are ignored",
        who, kMaxJsonNesting);
    return kept;
  }
  for (const auto& [key, value] : written.items()) {
    const ServiceProperty* property = spec.property(key);
    if (property == nullptr || !property->is_output()) {
      spdlog::warn(
          "{}: output.json sets '{}', which is not an output property of the service: ignored", who,
          make_valid_utf8(key));
      continue;
    }
    const std::string as_text = value.is_string() ? value.get<std::string>() : value.dump();
    if (auto problem = check_property_value(*property, as_text)) {
      spdlog::warn("{}: output '{}' is invalid ({}): ignored", who, key, *problem);
      continue;
    }
    kept[key] = value;
  }
  return kept;
}

std::string signal_name(int sig) {
  const char* abbrev = ::sigabbrev_np(sig);
  return abbrev != nullptr ? std::string("SIG") + abbrev : std::to_string(sig);
}

std::string describe_end(const ProcessOutcome& outcome) {
  std::string text;
  if (outcome.exit_code)
    text = "exited with code " + std::to_string(*outcome.exit_code);
  else if (outcome.term_signal)
    text = "killed by signal " + signal_name(*outcome.term_signal);
  else
    return "did not run";
  return text + " after " + seconds_text(outcome.wall) + " s";
}

}  // namespace proctor
