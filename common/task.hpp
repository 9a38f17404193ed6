#pragma once
// The task model: what the backend hands out (SPEC §2.1), in both dialects, and the
// classification of a poll answer into "no task", "a task" or "a malformed task".

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/result.hpp"

namespace proctor {

// Which payload shape the backend expects: decided by the task's identity field.
enum class Dialect { flat, nested };

// The identity echoed back: `id` (UUID string or integer, flat) or `attempt` (nested).
struct TaskIdentity {
  Dialect dialect = Dialect::flat;
  nlohmann::json value;  // the id/attempt exactly as received

  // The identity as text, for logs and folder names ("3fa85f64-..." or "21").
  [[nodiscard]] std::string text() const;
};

// "id:<json>" or "attempt:<json>": one task's identity as the backend counts it.
std::string identity_key(const TaskIdentity& identity);

struct Task {
  TaskIdentity identity;
  std::string repository_url;
  std::optional<std::string> branch;            // absent: the remote's default branch
  std::vector<int64_t> laboratory_numbers;      // empty when absent
  bool laboratory_number_is_list = false;       // the backend sent a list, not an int
  std::vector<std::string> connected_tests;     // empty: all tests
  std::optional<std::string> repository_type;   // git, svn, http, s3
  std::optional<std::string> revision;          // commit or revision to pin
  std::optional<double> timeout_seconds;        // overrides the service's timeout
  std::optional<std::string> service;           // a service name known to the agent
};

// The backend had nothing for us.
struct NoTask {};

// The backend sent something that is not a runnable task.
struct MalformedTask {
  std::optional<TaskIdentity> identity;  // set when an error payload can be posted
  std::string reason;                    // one plain sentence
};

using PollAnswer = std::variant<NoTask, Task, MalformedTask>;

// Parses a task JSON document (a file for `runner exec`, or a poll body). Refuses, saying
// which, a text over kMaxTaskBytes, nested deeper than kMaxJsonNesting, not valid UTF-8
// (with the byte offset), not JSON, or with a field missing or of the wrong type.
Result<Task> parse_task(std::string_view json_text);

// The identity at the top level of a task text, read even when parse_task refuses it (too
// large: from its first kMaxTaskBytes; too deep; broken after the identity), so an error
// payload can be posted. nullopt when no usable `id` or `attempt` can be read.
std::optional<TaskIdentity> recover_task_identity(std::string_view json_text);

// Classifies a GET answer: 204, 404, an empty body or status "UNAVAILABLE" is NoTask;
// a 200 JSON task is a Task; anything else is MalformedTask with parse_task's reason and
// the identity recover_task_identity reads.
PollAnswer classify_poll_answer(int http_status, std::string_view body);

// The task's fields as service input properties: task_id, branch, laboratory_number
// (an integer, or a comma-delimited list), connected_tests (comma-delimited).
std::vector<std::pair<std::string, std::string>> task_inputs(const Task& task);

}  // namespace proctor
