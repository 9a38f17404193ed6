#pragma once
// JUnit XML reading: every dialect real tools write (pytest, Surefire/Gradle, gtest,
// ctest, jest-junit, mocha, bazel, scalatest, xunit) into the neutral Report model.

#include <filesystem>
#include <functional>
#include <memory>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "common/report.hpp"
#include "common/result.hpp"

namespace proctor {

// A JUnit XML document, parsed and checked, read either case by case or into a whole
// Report. Its summary is known before any case is read, so a payload can be written
// while the cases are read (`runner convert` on a huge report builds no model).
class JunitDocument {
 public:
  // Parses JUnit XML text (copied first). Fails as parse_junit does.
  static Result<JunitDocument> parse(std::string_view xml);
  // Reads and parses one report file; the error names the file.
  static Result<JunitDocument> read(const std::filesystem::path& path);

  JunitDocument(JunitDocument&&) noexcept;
  JunitDocument& operator=(JunitDocument&&) noexcept;
  JunitDocument(const JunitDocument&) = delete;
  JunitDocument& operator=(const JunitDocument&) = delete;
  ~JunitDocument();

  // Counts and times over every case, and the report's time, as Report::summary() says.
  [[nodiscard]] const ReportSummary& summary() const;
  // How many cases the report has.
  [[nodiscard]] std::size_t case_count() const;
  // Calls f for the cases numbered [first, last) in Report order (a suite's cases, then its
  // nested suites'), handing it one TestCase that is overwritten by the next case. Calls
  // from several threads at once are safe: the document is only read.
  void for_each_case(std::size_t first, std::size_t last, const std::function<void(const TestCase&)>& f) const;
  // The whole model; the document's memory is handed back as the model grows, so the
  // document cannot be read again.
  [[nodiscard]] Report take_report() &&;

  struct State;  // the parsed tree and its buffer

 private:
  explicit JunitDocument(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

// The number of cases of several documents.
std::size_t case_count(const std::vector<JunitDocument>& documents);

// Calls f for the cases [first, last) of several documents numbered one after the other
// in the order given; as JunitDocument::for_each_case otherwise.
void for_each_case(const std::vector<JunitDocument>& documents, std::size_t first, std::size_t last,
                   const std::function<void(const TestCase&)>& f);

// Parses JUnit XML text. Fails, with a one-line reason, when the text is not XML or
// its root is neither <testsuites> nor <testsuite>. Never expands DOCTYPE entities.
Result<Report> parse_junit(std::string_view xml);

// Reads and parses one report file; the error names the file.
Result<Report> parse_junit_file(const std::filesystem::path& path);

// The full neutral model as JSON (`runner convert --format report`): suites, cases,
// status, time, message, text, stdout/stderr, properties, file, line.
nlohmann::json report_to_json(const Report& report);

}  // namespace proctor
