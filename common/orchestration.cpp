#include "common/orchestration.hpp"

#include <cmath>

#include <nlohmann/json.hpp>

#include "common/json_bounded.hpp"
#include "common/text.hpp"

namespace proctor {

namespace {

using nlohmann::json;

// The kind of a JSON value, in words, for "must be X, not Y" messages.
std::string kind_of(const json& value) {
  switch (value.type()) {
    case json::value_t::null:
      return "null";
    case json::value_t::boolean:
      return "a boolean";
    case json::value_t::string:
      return "a string";
    case json::value_t::array:
      return "a list";
    case json::value_t::object:
      return "an object";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
    case json::value_t::number_float:
      return "a number";
    default:
      return "something else";
  }
}

// Reads one description; problems go to `check` as they are found.
class DescriptionReader {
 public:
  explicit DescriptionReader(DescriptionCheck& check) : check_(check) {}

  void read(const json& root, std::string_view file_stem) {
    if (!root.is_object()) {
      error("", "the description must be a JSON object, not " + kind_of(root));
      return;
    }
    auto& out = check_.description;
    for (const auto& [key, value] : root.items()) {
      if (key != "test_name" && key != "total_hours" && key != "unref_setup_fixtures" &&
          key != "events") {
        check_.warnings.push_back(make_valid_utf8(key) +
                                  ": not a description key (test_name, total_hours, "
                                  "unref_setup_fixtures, events); ignored");
      }
    }
    if (const auto name = root.find("test_name"); name == root.end()) {
      error("test_name", "missing");
    } else if (!name->is_string() || !is_plain_name(name->get<std::string>())) {
      error("test_name",
            "must be a plain name (a string without '/'), not " +
                (name->is_string() ? "'" + make_valid_utf8(name->get<std::string>()) + "'"
                                   : kind_of(*name)));
    } else {
      out.test_name = name->get<std::string>();
      if (!file_stem.empty() && out.test_name != file_stem) {
        error("test_name", "is '" + make_valid_utf8(out.test_name) + "' but the file is named '" +
                               make_valid_utf8(std::string(file_stem)) + "': they must be equal");
      }
    }
    if (const auto hours = root.find("total_hours"); hours == root.end()) {
      error("total_hours", "missing");
    } else if (auto value = positive_number("total_hours", *hours)) {
      if (*value > kMaxTotalHours)
        error("total_hours", "is more than a year");
      else
        out.total_hours = *value;
    }
    if (const auto setups = root.find("unref_setup_fixtures"); setups != root.end()) {
      if (!setups->is_array()) {
        error("unref_setup_fixtures", "must be a list of service names, not " + kind_of(*setups));
      } else {
        for (std::size_t i = 0; i < setups->size(); ++i) {
          const json& item = (*setups)[i];
          if (!item.is_string() || !is_plain_name(item.get<std::string>())) {
            error("unref_setup_fixtures[" + std::to_string(i) + "]", "must be a service name");
          } else {
            out.setup_services.push_back(item.get<std::string>());
          }
        }
      }
    }
    const auto events = root.find("events");
    if (events == root.end()) {
      error("events", "missing");
    } else if (!events->is_array()) {
      error("events", "must be a list, not " + kind_of(*events));
    } else if (events->empty()) {
      error("events", "is empty: an orchestration needs at least one event");
    } else {
      for (std::size_t i = 0; i < events->size(); ++i)
        read_event("events[" + std::to_string(i) + "]", (*events)[i]);
    }
  }

 private:
  void error(const std::string& path, const std::string& message) {
    check_.errors.push_back(path.empty() ? message : path + ": " + message);
  }

  std::optional<double> positive_number(const std::string& path, const json& value) {
    if (!value.is_number()) {
      error(path, "must be a number above 0, not " + kind_of(value));
      return std::nullopt;
    }
    const double number = value.get<double>();
    if (!std::isfinite(number) || number <= 0) {
      error(path, "must be a number above 0, not " + value.dump());
      return std::nullopt;
    }
    return number;
  }

  std::optional<bool> boolean(const std::string& path, const json& value) {
    if (!value.is_boolean()) {
      error(path, "must be true or false, not " + kind_of(value));
      return std::nullopt;
    }
    return value.get<bool>();
  }

  void read_event(const std::string& path, const json& item) {
    if (!item.is_object()) {
      error(path, "must be an object, not " + kind_of(item));
      return;
    }
    OrchestrationEvent event;
    bool ok = true;
    const auto name = item.find("name");
    if (name == item.end()) {
      error(path + ".name", "missing (the name of the service the event runs)");
      ok = false;
    } else if (!name->is_string() || !is_plain_name(name->get<std::string>())) {
      error(path + ".name", "must be a service name");
      ok = false;
    } else {
      event.name = name->get<std::string>();
    }
    double interval_seconds = 0;
    bool has_interval = false;
    for (const auto& [key, value] : item.items()) {
      const std::string at = path + "." + make_valid_utf8(key);
      double scale = 0;
      if (key == "interval_sec")
        scale = 1;
      else if (key == "interval_min")
        scale = 60;
      else if (key == "interval_hour")
        scale = 3600;
      if (scale > 0) {
        if (auto number = positive_number(at, value)) {
          interval_seconds += *number * scale;
          has_interval = true;
        } else {
          ok = false;
        }
      } else if (key == "at_startup" || key == "at_teardown") {
        if (auto flag = boolean(at, value))
          (key == "at_startup" ? event.at_startup : event.at_teardown) = *flag;
        else
          ok = false;
      } else if (key == "params") {
        if (!value.is_object()) {
          error(at, "must be an object of key: value, not " + kind_of(value));
          ok = false;
          continue;
        }
        for (const auto& [param, param_value] : value.items()) {
          event.params[param] =
              param_value.is_string() ? param_value.get<std::string>() : param_value.dump();
        }
      } else if (key != "name") {
        check_.warnings.push_back(
            at +
            ": not an event key (name, interval_sec, interval_min, interval_hour, "
            "at_startup, at_teardown, params); ignored");
      }
    }
    if (has_interval) {
      if (interval_seconds > kMaxTotalHours * 3600) {
        error(path + ".interval_sec", "is more than a year");
        ok = false;
      } else if (interval_seconds < 0.001) {
        error(path + ".interval_sec", "is under a millisecond");
        ok = false;
      } else {
        event.interval = std::chrono::milliseconds(
            static_cast<std::int64_t>(std::llround(interval_seconds * 1000)));
      }
    }
    if (ok && !event.interval && !event.at_startup && !event.at_teardown) {
      error(path, "never runs: it has no interval and neither at_startup nor at_teardown");
      ok = false;
    }
    if (ok && event.interval && !event.at_startup && !event.at_teardown &&
        check_.description.total_hours > 0 && *event.interval >= check_.description.total()) {
      check_.warnings.push_back(
          path +
          ": its first run (after one interval) comes at or after total_hours, "
          "so it never runs");
    }
    if (ok) check_.description.events.push_back(std::move(event));
  }

  DescriptionCheck& check_;
};

}  // namespace

std::chrono::milliseconds OrchestrationDescription::total() const {
  return std::chrono::milliseconds(
      static_cast<std::int64_t>(std::llround(total_hours * 3600 * 1000)));
}

std::vector<std::string> OrchestrationDescription::event_labels() const {
  std::vector<std::string> labels;
  std::map<std::string, int> seen;
  for (const auto& event : events) {
    const int count = ++seen[event.name];
    labels.push_back(count == 1 ? event.name : event.name + "[" + std::to_string(count) + "]");
  }
  return labels;
}

DescriptionCheck check_orchestration(std::string_view json_text, std::string_view file_stem) {
  DescriptionCheck check;
  if (json_text.size() > kMaxDescriptionBytes) {
    check.errors.push_back("the description is larger than 1 MiB");
    return check;
  }
  if (auto bad = first_invalid_utf8(json_text)) {
    check.errors.push_back("the description is not valid UTF-8 (at byte " + std::to_string(*bad) +
                           ")");
    return check;
  }
  json root;
  try {
    bool too_deep = false;
    // Comments allowed: the seed documents its format with // comments in the JSON itself.
    // Exceptions on: their message says where the text stops being JSON.
    root = json::parse(json_text, depth_limit(too_deep), /*allow_exceptions=*/true, /*ignore_comments=*/true);
    if (too_deep) {
      check.errors.push_back("the description nests deeper than " +
                             std::to_string(kMaxJsonNesting) + " levels");
      return check;
    }
  } catch (const json::exception& e) {  // parse_error, and out_of_range for a number like 1e400
    check.errors.push_back("the description is not JSON: " + std::string(e.what()));
    return check;
  }
  DescriptionReader(check).read(root, file_stem);
  return check;
}

Result<OrchestrationDescription> parse_orchestration(std::string_view json_text,
                                                     std::string_view file_stem) {
  auto check = check_orchestration(json_text, file_stem);
  if (!check.valid()) return make_error(join(check.errors, "; "));
  return std::move(check.description);
}

}  // namespace proctor
