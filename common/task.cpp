#include "common/task.hpp"

#include <algorithm>

#include "common/json_bounded.hpp"
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

// One SAX pass over a task text that builds nothing but the top level's `id` and `attempt`
// (a container there kept as an empty one, so that a wrongly typed id is told from an
// absent one), and learns whether the text nests deeper than parse_json_bounded allows
// (the same rule: no value or key inside more than kMaxJsonNesting containers) and where
// it stops being JSON. It reads on past the nesting bound, holding only a counter, so an
// identity after a deep part is still found; the caller bounds the text's size.
class TaskScan : public JsonSaxTypes {
 public:
  // `truncated`: the text is the start of a longer one, so a number it ends with may be cut.
  explicit TaskScan(bool truncated) : truncated_(truncated) {}

  bool null() { return scalar(nullptr, false); }
  bool boolean(bool value) { return scalar(value, false); }
  bool number_integer(number_integer_t value) { return scalar(value, true); }
  bool number_unsigned(number_unsigned_t value) { return scalar(value, true); }
  bool number_float(number_float_t value, const string_t& /*text*/) { return scalar(value, true); }
  bool string(string_t& value) { return scalar(std::move(value), false); }
  bool binary(binary_t& /*value*/) { return scalar(nullptr, false); }  // not in JSON text
  bool start_object(std::size_t /*size*/) {
    if (open_ == 0) root_is_object_ = true;
    scalar(json::object(), false);
    ++open_;
    return true;
  }
  bool start_array(std::size_t /*size*/) {
    scalar(json::array(), false);
    ++open_;
    return true;
  }
  bool end_object() { return close(); }
  bool end_array() { return close(); }
  bool key(string_t& name) {
    check_depth();
    ended_with_number_ = false;
    if (at_top_level()) key_ = std::move(name);
    return true;
  }
  bool parse_error(std::size_t position, const std::string& /*last_token*/, const json::exception& error) {
    // A number the cut ended may be the start of a longer one: not the identity sent.
    if (truncated_ && ended_with_number_) top_level_.erase(key_);
    error_position_ = position;
    error_ = error.what();
    return false;
  }

  [[nodiscard]] const json& top_level() const { return top_level_; }
  [[nodiscard]] bool too_deep() const { return too_deep_; }
  [[nodiscard]] const std::optional<std::string>& error() const { return error_; }
  [[nodiscard]] std::size_t error_position() const { return error_position_; }

 private:
  [[nodiscard]] bool at_top_level() const { return root_is_object_ && open_ == 1; }
  void check_depth() {
    if (open_ > static_cast<std::size_t>(kMaxJsonNesting)) too_deep_ = true;
  }
  bool scalar(json value, bool is_number) {
    check_depth();
    ended_with_number_ = false;
    if (at_top_level() && (key_ == "id" || key_ == "attempt")) {
      top_level_[key_] = std::move(value);
      ended_with_number_ = is_number;
    }
    return true;
  }
  bool close() {
    ended_with_number_ = false;
    --open_;
    return true;
  }

  bool truncated_;
  json top_level_ = json::object();
  std::string key_;
  std::size_t open_ = 0;  // containers open around the next event
  bool root_is_object_ = false;
  bool too_deep_ = false;
  bool ended_with_number_ = false;  // the last event stored a top-level number
  std::optional<std::string> error_;
  std::size_t error_position_ = 0;
};

// Scans at most the first kMaxTaskBytes of `text`.
TaskScan scan_task(std::string_view text) {
  TaskScan scan(text.size() > kMaxTaskBytes);
  json::sax_parse(text.substr(0, kMaxTaskBytes), &scan);
  return scan;
}

// nlohmann's message without its "[json.exception.parse_error.101] " prefix, short and
// valid UTF-8 (its "last read" part quotes the input).
std::string json_error_text(std::string_view what) {
  if (!what.empty() && what.front() == '[') {
    if (const auto end = what.find("] "); end != std::string_view::npos) what.remove_prefix(end + 2);
  }
  return utf8_truncate(make_valid_utf8(what), 300);
}

// Why a text that parse_json_bounded discarded is refused, in the order a reader meets it.
std::string why_not_json(const TaskScan& scan, std::string_view text) {
  if (scan.too_deep()) {
    return "the task nests arrays and objects more than " + std::to_string(kMaxJsonNesting) + " levels deep";
  }
  if (!scan.error()) return "the task is not valid JSON";
  // nlohmann reports ill-formed UTF-8 as a syntax error after the byte it stopped on.
  if (const auto bad = first_invalid_utf8(text); bad && *bad < scan.error_position()) {
    return "the task is not valid UTF-8 (at byte offset " + std::to_string(*bad) + ")";
  }
  return "the task is not valid JSON: " + json_error_text(*scan.error());
}

// The task text as a JSON object in `document`; or, when it is refused, why, with the
// identity that can still be read from it.
std::optional<MalformedTask> read_document(std::string_view text, json& document) {
  if (text.size() > kMaxTaskBytes) {
    return MalformedTask{recover_task_identity(text), "the task is " + std::to_string(text.size()) +
                                                          " bytes, more than the limit of " +
                                                          std::to_string(kMaxTaskBytes) + " bytes"};
  }
  document = parse_json_bounded(text);
  if (document.is_discarded()) {
    const auto scan = scan_task(text);
    return MalformedTask{find_identity(scan.top_level(), nullptr), why_not_json(scan, text)};
  }
  if (!document.is_object()) {
    return MalformedTask{std::nullopt, std::string("the task must be a JSON object, not ") + json_type_name(document)};
  }
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

std::string identity_key(const TaskIdentity& identity) {
  return (identity.dialect == Dialect::nested ? "attempt:" : "id:") + identity.value.dump();
}

Result<Task> parse_task(std::string_view json_text) {
  json document;
  if (auto refused = read_document(json_text, document)) return make_error(std::move(refused->reason));
  return task_from_object(document);
}

std::optional<TaskIdentity> recover_task_identity(std::string_view json_text) {
  return find_identity(scan_task(json_text).top_level(), nullptr);
}

PollAnswer classify_poll_answer(int http_status, std::string_view body) {
  if (http_status == 204 || http_status == 404) return NoTask{};
  if (http_status < 200 || http_status > 299) {
    return MalformedTask{std::nullopt, "the backend answered HTTP " + std::to_string(http_status)};
  }
  if (trim(body).empty()) return NoTask{};
  json document;
  if (auto refused = read_document(body, document)) return std::move(*refused);
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
