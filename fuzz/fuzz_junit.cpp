// libFuzzer target: the JUnit XML parser on any bytes a service could write, read both
// ways (into the model, and case by case) and turned into the report JSON.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/junit.hpp"
#include "fuzz/fuzz_check.hpp"

using proctor::fuzz::check;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view xml(reinterpret_cast<const char*>(data), size);
  auto report = proctor::parse_junit(xml);
  auto document = proctor::JunitDocument::parse(xml);
  check(report.ok() == document.ok());
  if (!report) {
    check(!report.error().message.empty());
    return 0;
  }
  // Case by case sees as many cases as the model holds.
  std::size_t seen = 0;
  document->for_each_case(0, document->case_count(), [&seen](const proctor::TestCase&) { ++seen; });
  check(seen == document->case_count());
  // As `runner convert --format report` prints it.
  const auto json = proctor::report_to_json(*report);
  (void)json.dump(2, ' ', false, nlohmann::json::error_handler_t::replace);
  return 0;
}
