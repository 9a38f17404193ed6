#include "common/task.hpp"

#include <algorithm>

#include "common/limits.hpp"
#include "common/text.hpp"

namespace proctor {

namespace {

using nlohmann::json;

const char* json_type_name(const json& value) {
  return value.type_name();
}

// The identity of a task object, or nullopt when it has none usable.
std::optional<TaskIdentity> find_identity(const json& object, std::string* why) {
  if (const auto it = object.find("id"); it != object.end() && !it->is_null()) {
    if ((it->is_string() && !trim(it->get_ref<const std::string&>()).empty()) || it->is_number_integer()) {
      return TaskIdentity{Dialect::flat, *it};
    }
    if (why != nullptr) *why = std::string("\"id\" must be a non-empty string or an integer, not ") + json_type_name(*it);
    return std::nullopt;
  }
  if (const auto it = object.find("attempt"); it != object.end() && !it->is_null()) {
    if (it->is_number_integer()) return TaskIdentity{Dialect::nested, *it};
    if (why != nullptr) *why = std::string("\"attempt\" must be an integer, not ") + json_type_name(*it);
    return std::nullopt;
  }
  if (why != nullptr) *why = "the task has no identity: neither \"id\" nor \"attempt\" is present";
  return std::nullopt;
}

// Reads an optional string field; an error when present with another type.
Result<std::optional<std::string>> optional_string(const json& object, const char* key) {
  const auto it = object.find(key);
  if (it == object.end() || it->is_null()) return std::optional<std::string>{};
  if (!it->is_string()) {
    return make_error(std::string("\"") + key + "\" must be a string, not " + json_type_name(*it));
  }
  return std::optional<std::string>{make_valid_utf8(it->get_ref<const std::string&>())};
}

Result<Task> task_from_object(const json& object) {
  Task task;
  std::string why;
  auto identity = find_identity(object, &why);
  if (!identity) return make_error(why);
  task.identity = std::move(*identity);

  const auto url = object.find("repositoryUrl");
  if (url == object.end() || url->is_null()) return make_error("the task has no \"repositoryUrl\"");
  if (!url->is_string()) return make_error(std::string("\"repositoryUrl\" must be a string, not ") + json_type_name(*url));
  task.repository_url = std::string(trim(url->get_ref<const std::string&>()));
  if (task.repository_url.empty()) return make_error("\"repositoryUrl\" is empty");

  auto branch = optional_string(object, "branch");
  if (!branch) return branch.error();
  if (*branch && !trim(**branch).empty()) task.branch = std::string(trim(**branch));

  if (const auto it = object.find("laboratoryNumber"); it != object.end() && !it->is_null()) {
    if (it->is_number_integer()) {
      task.laboratory_numbers.push_back(it->get<int64_t>());
    } else if (it->is_array()) {
      task.laboratory_number_is_list = true;
      for (const auto& item : *it) {
        if (!item.is_number_integer()) {
          return make_error(std::string("\"laboratoryNumber\" must hold integers, not ") + json_type_name(item));
        }
        task.laboratory_numbers.push_back(item.get<int64_t>());
      }
    } else {
      return make_error(std::string("\"laboratoryNumber\" must be an integer or a list of integers, not ") +
                        json_type_name(*it));
    }
  }

  if (const auto it = object.find("connectedTests"); it != object.end() && !it->is_null()) {
    if (!it->is_array()) {
      return make_error(std::string("\"connectedTests\" must be a list of strings, not ") + json_type_name(*it));
    }
    for (const auto& item : *it) {
      if (!item.is_string()) {
        return make_error(std::string("\"connectedTests\" must hold strings, not ") + json_type_name(item));
      }
      const auto name = trim(item.get_ref<const std::string&>());
      if (!name.empty()) task.connected_tests.push_back(make_valid_utf8(name));
    }
  }

  auto type = optional_string(object, "repositoryType");
  if (!type) return type.error();
  if (*type) {
    static constexpr std::string_view kinds[] = {"git", "svn", "http", "s3"};
    if (std::find(std::begin(kinds), std::end(kinds), **type) == std::end(kinds)) {
      return make_error("\"repositoryType\" must be one of git, svn, http, s3, not \"" + **type + "\"");
    }
    task.repository_type = std::move(*type);
  }
  auto revision = optional_string(object, "revision");
  if (!revision) return revision.error();
  if (*revision && !trim(**revision).empty()) task.revision = std::string(trim(**revision));
  auto service = optional_string(object, "service");
  if (!service) return service.error();
  if (*service && !trim(**service).empty()) task.service = std::string(trim(**service));

  if (const auto it = object.find("timeout"); it != object.end() && !it->is_null()) {
    // Bounded so that deadlines never overflow: up to a week.
    if (!it->is_number() || it->get<double>() <= 0 || it->get<double>() > kMaxTimeoutSeconds) {
      return make_error("\"timeout\" must be a positive number of seconds, at most a week (604800)");
    }
    task.timeout_seconds = it->get<double>();
  }
  return task;
}

}  // namespace

std::string TaskIdentity::text() const {
  if (value.is_string()) return value.get<std::string>();
  return value.dump();
}

Result<Task> parse_task(std::string_view json_text) {
  json document = json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (document.is_discarded()) return make_error("the task is not valid JSON");
  if (!document.is_object()) {
    return make_error(std::string("the task must be a JSON object, not ") + json_type_name(document));
  }
  return task_from_object(document);
}

PollAnswer classify_poll_answer(int http_status, std::string_view body) {
  if (http_status == 204 || http_status == 404) return NoTask{};
  if (http_status < 200 || http_status > 299) {
    return MalformedTask{std::nullopt, "the backend answered HTTP " + std::to_string(http_status)};
  }
  if (trim(body).empty()) return NoTask{};
  json document = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (document.is_discarded()) return MalformedTask{std::nullopt, "the task is not valid JSON"};
  if (!document.is_object()) {
    return MalformedTask{std::nullopt, std::string("the task must be a JSON object, not ") + json_type_name(document)};
  }
  if (const auto it = document.find("status"); it != document.end() && it->is_string() && *it == "UNAVAILABLE") {
    return NoTask{};
  }
  auto task = task_from_object(document);
  if (task) return std::move(task).value();
  return MalformedTask{find_identity(document, nullptr), task.error().message};
}

std::vector<std::pair<std::string, std::string>> task_inputs(const Task& task) {
  std::vector<std::pair<std::string, std::string>> inputs;
  inputs.emplace_back("task_id", task.identity.text());
  inputs.emplace_back("branch", task.branch.value_or(""));
  std::vector<std::string> labs;
  labs.reserve(task.laboratory_numbers.size());
  for (auto n : task.laboratory_numbers) labs.push_back(std::to_string(n));
  inputs.emplace_back("laboratory_number", join(labs, ","));
  inputs.emplace_back("connected_tests", join(task.connected_tests, ","));
  return inputs;
}

}  // namespace proctor
