// libFuzzer target: the task parser (SPEC §2.1) on any bytes a backend could send.
// Besides not crashing, the parser's answers must agree with each other.

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <variant>

#include "common/task.hpp"
#include "fuzz/fuzz_check.hpp"

using proctor::fuzz::check;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto task = proctor::parse_task(text);
  const auto identity = proctor::recover_task_identity(text);
  const auto answer = proctor::classify_poll_answer(200, text);

  if (task) {
    // A task read whole has the identity the scan for a refused one would find.
    check(identity.has_value() && identity->dialect == task->identity.dialect &&
          identity->value == task->identity.value);
    check(!task->repository_url.empty());
    (void)proctor::task_inputs(*task);
    // The poll answer is the same task unless the backend marked it unavailable.
    check(!std::holds_alternative<proctor::MalformedTask>(answer));
  } else {
    const auto& reason = task.error().message;
    check(!reason.empty());
    // "not valid JSON" with no detail means the bounded parse and the scan disagree.
    check(reason != "the task is not valid JSON");
    if (const auto* bad = std::get_if<proctor::MalformedTask>(&answer)) {
      check(bad->reason == reason);
      check(bad->identity.has_value() == identity.has_value());
      if (bad->identity) check(bad->identity->value == identity->value);
    }
  }
  if (identity) check(!identity->text().empty());
  return 0;
}
