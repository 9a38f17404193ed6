#pragma once
// JUnit XML reading: every dialect real tools write (pytest, Surefire/Gradle, gtest,
// ctest, jest-junit, mocha, bazel, scalatest, xunit) into the neutral Report model.

#include <filesystem>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

#include "common/report.hpp"
#include "common/result.hpp"

namespace proctor {

// Parses JUnit XML text. Fails, with a one-line reason, when the text is not XML or
// its root is neither <testsuites> nor <testsuite>. Never expands DOCTYPE entities.
Result<Report> parse_junit(std::string_view xml);

// Reads and parses one report file; the error names the file.
Result<Report> parse_junit_file(const std::filesystem::path& path);

// The full neutral model as JSON (`runner convert --format report`): suites, cases,
// status, time, message, text, stdout/stderr, properties, file, line.
nlohmann::json report_to_json(const Report& report);

}  // namespace proctor
