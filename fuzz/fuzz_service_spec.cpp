// libFuzzer target: the service-specification reader on any service.yaml text, for both
// shell forms, with every problem described as `runner verify` prints it.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "common/service_spec.hpp"
#include "fuzz/fuzz_check.hpp"

using proctor::fuzz::check;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view yaml(reinterpret_cast<const char*>(data), size);
  for (const std::string_view os : {"linux", "windows"}) {
    const auto checked = proctor::check_service_spec(yaml, os);
    for (const auto& problem : checked.problems) (void)proctor::describe(problem);
    const auto spec = proctor::parse_service_spec(yaml, os);
    // The whole check and the first-error reader agree on whether the text is valid.
    check(spec.ok() == checked.valid());
    if (spec) (void)proctor::command_keys(spec->cmd);
  }
  return 0;
}
