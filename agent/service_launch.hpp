#pragma once
// How a service is started, whoever asks (a task's run, an orchestration's event): its
// inputs checked against its item_properties, its command line built, input.json and
// arguments.json written, its clean environment made (SPEC §5.2, §5.3); and its
// output.json read back. Plain functions: the process itself is the caller's to run.

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/process_runner.hpp"
#include "common/result.hpp"
#include "common/service_spec.hpp"

namespace proctor {

// Service inputs by key.
using ServiceInputs = std::map<std::string, std::string>;

// What every launch shares.
struct LaunchSettings {
  // The variables passed on from the agent's environment; nothing else is.
  std::vector<std::string> env_allow{"PATH",     "HOME",   "USER",     "LOGNAME", "LANG",
                                     "LANGUAGE", "LC_ALL", "LC_CTYPE", "TZ",      "SHELL"};
  std::chrono::milliseconds kill_grace{std::chrono::seconds(10)};
  std::size_t tail_bytes = 4096;
};

// The service's input properties at their defaults (empty when none): where its inputs start.
ServiceInputs default_inputs(const ServiceSpec& spec);

// The service `name` in `services_dir`: refused unless a plain name, an error naming the
// folder when there is none, the load error ("the service 'x' cannot be loaded: ...").
Result<ServiceDefinition> load_named_service(const std::filesystem::path& services_dir, const std::string& name);

// Whether `key` names an input add_builtin_inputs sets, or any opereto_ name (the agent's
// own namespace): params from an orchestration may not set it.
bool is_agent_set_input(std::string_view key);

// Adds the inputs the agent sets for every run (SPEC §5.2): pid, opereto_workspace,
// opereto_timeout (whole seconds, rounded up), opereto_execution_mode and junit_xml.
void add_builtin_inputs(ServiceInputs& inputs, const std::string& pid, const std::filesystem::path& service_dir,
                        double timeout_seconds, const std::filesystem::path& junit_xml);

// Exit codes as the spec writes them: "[0, 1]".
std::string exit_code_list(const std::vector<int>& codes);

// Checks the input properties' values in `inputs`: a mandatory one has a value, each
// value fits its type. The error names the property.
Result<void> check_inputs(const ServiceSpec& spec, const ServiceInputs& inputs);

// The input properties of `spec` with their values, as the service record's test_input.
nlohmann::json input_properties_json(const ServiceSpec& spec, const ServiceInputs& inputs);

// The process that runs `spec`'s command with `inputs` in `service_dir` (the service's
// own copy): ${key}s expanded, input.json and arguments.json written there, the
// environment made of the allowed variables, TMPDIR=`tmp_dir`, opereto_workspace and an
// OT_<KEY> per input. The caller sets log_file, on_line and cookie as it needs.
Result<ProcessSpec> service_process(const ServiceSpec& spec, const ServiceInputs& inputs,
                                    const std::filesystem::path& service_dir,
                                    const std::filesystem::path& tmp_dir,
                                    std::chrono::milliseconds timeout,
                                    const LaunchSettings& settings);

// The service's output.json (in its folder) reduced to its output properties, types
// checked; anything else is ignored with a warning naming `who` (the task, the run). No
// output.json: no outputs.
nlohmann::json read_service_outputs(const ServiceSpec& spec,
                                    const std::filesystem::path& output_file, std::string_view who);

// "SIGTERM" for 15.
std::string signal_name(int sig);

// How a process ended, in words: "exited with code 0 after 1.5 s", "killed by signal
// SIGKILL after 3 s", "did not run".
std::string describe_end(const ProcessOutcome& outcome);

}  // namespace proctor
