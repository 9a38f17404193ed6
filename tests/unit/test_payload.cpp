#include <doctest/doctest.h>

#include <filesystem>
#include <sstream>
#include <stdexcept>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/junit.hpp"
#include "common/payload.hpp"

using namespace proctor;
using nlohmann::json;

namespace {

TestCase make_case(std::string classname, std::string name, CaseStatus status, double time = 0.5) {
  TestCase c;
  c.classname = std::move(classname);
  c.name = std::move(name);
  c.status = status;
  c.time = time;
  if (status == CaseStatus::failed) c.outcomes.push_back({"failure", "AssertionError", "assert 1 == 2", "trace\nback"});
  if (status == CaseStatus::errored) c.outcomes.push_back({"error", "", "fixture broke", "Traceback"});
  if (status == CaseStatus::skipped) c.outcomes.push_back({"skipped", "", "not on linux", ""});
  return c;
}

Report report_of(std::vector<TestCase> cases, std::optional<double> time = 2.5) {
  Report r;
  r.time = time;
  TestSuite s;
  s.name = "pytest";
  s.cases = std::move(cases);
  r.suites.push_back(std::move(s));
  return r;
}

// A CaseSource over cases held in memory.
CaseSource source_of(const std::vector<TestCase>& cases) {
  CaseSource source;
  source.count = cases.size();
  source.read = [&cases](std::size_t first, std::size_t last, const CaseVisitor& visit) {
    for (std::size_t i = first; i < last; ++i) visit(cases[i]);
  };
  return source;
}

std::vector<TestCase> cases_of(const Report& report) {
  std::vector<TestCase> cases;
  report.for_each_case([&](const TestSuite&, const TestCase& c) { cases.push_back(c); });
  return cases;
}

// The payload of `report` written both ways: from build_payload's result, and streamed.
std::pair<std::string, std::string> both_ways(const Report& report, const RunFacts& facts,
                                              const PayloadOptions& options, Dialect dialect,
                                              const TaskIdentity* identity) {
  std::ostringstream built;
  write_payload(built, build_payload(&report, facts, options), dialect, identity);
  const auto cases = cases_of(report);
  std::ostringstream streamed;
  write_streamed_payload(streamed, report.summary(), source_of(cases), facts, options, dialect, identity);
  return {built.str(), streamed.str()};
}

json wire(const ResultPayload& p, const std::string& identity_json, Dialect d) {
  TaskIdentity id{d, json::parse(identity_json)};
  return json::parse(serialize_payload(p, id));
}

}  // namespace

TEST_SUITE("payload") {
  TEST_CASE("case names strip the configured classname prefix") {
    CHECK(case_display_name(make_case("tests.test_build", "test_x", CaseStatus::passed), "tests.") ==
          "test_build::test_x");
    CHECK(case_display_name(make_case("other.test_build", "test_x", CaseStatus::passed), "tests.") ==
          "other.test_build::test_x");
    CHECK(case_display_name(make_case("", "lonely", CaseStatus::passed), "tests.") == "lonely");
    CHECK(case_display_name(make_case("suite.T", "t", CaseStatus::passed), "") == "suite.T::t");
  }

  TEST_CASE("all passed: isPassed, no error, report time, measured memory") {
    const auto report = report_of({make_case("tests.a", "t1", CaseStatus::passed)});
    RunFacts facts;
    facts.peak_rss_kib = 1772;
    facts.wall_seconds = 9;
    const auto p = build_payload(&report, facts, {});
    CHECK(p.passed);
    CHECK_FALSE(p.error);
    CHECK(p.error_details.empty());
    CHECK(p.seconds == doctest::Approx(2.5));  // the report's time wins over wall time
    REQUIRE(p.cases.size() == 1);
    CHECK(p.cases[0].memory_kib == 1772);
    CHECK(p.cases[0].description.empty());
  }

  TEST_CASE("failure: description is message, blank line, text") {
    const auto report = report_of({make_case("tests.a", "t1", CaseStatus::failed)});
    const auto p = build_payload(&report, {}, {});
    CHECK_FALSE(p.passed);
    CHECK_FALSE(p.error);
    CHECK(p.cases[0].description == "assert 1 == 2\n\ntrace\nback");
    CHECK_FALSE(p.cases[0].passed);
  }

  TEST_CASE("skips fail the run by default; a flag lets them pass") {
    const auto report = report_of({make_case("a", "t1", CaseStatus::passed), make_case("a", "t2", CaseStatus::skipped)});
    CHECK_FALSE(build_payload(&report, {}, {}).passed);
    PayloadOptions lenient;
    lenient.skips_pass = true;
    CHECK(build_payload(&report, {}, lenient).passed);
    CHECK(build_payload(&report, {}, {}).cases[1].description == "not on linux");
  }

  TEST_CASE("errored cases make the run an error") {
    const auto report = report_of({make_case("a", "t1", CaseStatus::errored)});
    RunFacts facts;
    facts.output_tail = "last words";
    const auto p = build_payload(&report, facts, {});
    CHECK(p.error);
    CHECK_FALSE(p.passed);
    CHECK(p.error_details == "The report has 1 errored test case.\n\nlast words");
  }

  TEST_CASE("an empty report does not pass") {
    const auto report = report_of({});
    const auto p = build_payload(&report, {}, {});
    CHECK_FALSE(p.passed);
    CHECK_FALSE(p.error);
  }

  TEST_CASE("a broken run: sentence then the output tail, cut to the configured size") {
    RunFacts facts;
    facts.failure = "The service timed out after 2 s and was stopped.";
    facts.output_tail = std::string(10000, 'x') + "END";
    facts.wall_seconds = 2.25;
    PayloadOptions options;
    options.details_tail = 100;
    const auto p = build_payload(nullptr, facts, options);
    CHECK(p.error);
    CHECK_FALSE(p.passed);
    CHECK(p.error_details.rfind("The service timed out after 2 s and was stopped.\n\n", 0) == 0);
    CHECK(p.error_details.size() == std::string("The service timed out after 2 s and was stopped.\n\n").size() + 100);
    CHECK(p.error_details.substr(p.error_details.size() - 3) == "END");
    CHECK(p.seconds == doctest::Approx(2.25));  // no report: the wall time
  }

  TEST_CASE("no report and no stated failure is still an error") {
    const auto p = build_payload(nullptr, {}, {});
    CHECK(p.error);
    CHECK(p.error_details.find("no readable report") != std::string::npos);
  }

  TEST_CASE("memoryUsed: a testcase property wins; nothing measured means no field") {
    auto c = make_case("a", "t", CaseStatus::passed);
    c.properties.emplace_back("memoryUsed", "2048");
    const auto report = report_of({c, make_case("a", "u", CaseStatus::passed)});
    RunFacts facts;
    facts.peak_rss_kib = 99;
    const auto measured = build_payload(&report, facts, {});
    CHECK(measured.cases[0].memory_kib == 2048);
    CHECK(measured.cases[1].memory_kib == 99);
    const auto unmeasured = build_payload(&report, {}, {});
    CHECK_FALSE(unmeasured.cases[1].memory_kib.has_value());
    const auto j = wire(unmeasured, "1", Dialect::flat);
    CHECK(j["testResults"][0]["memoryUsed"] == 2048);
    CHECK_FALSE(j["testResults"][1].contains("memoryUsed"));
  }

  TEST_CASE("flaky and rerun attempts are kept in the description without changing the result") {
    auto c = make_case("a", "t", CaseStatus::passed);
    c.reruns.push_back({"flakyFailure", "", "first try failed", "stack"});
    const auto report = report_of({c});
    const auto p = build_payload(&report, {}, {});
    CHECK(p.cases[0].passed);
    CHECK(p.cases[0].description == "[flakyFailure] first try failed\n\nstack");
  }

  TEST_CASE("descriptions are trimmed to the configured size") {
    auto c = make_case("a", "t", CaseStatus::failed);
    c.outcomes[0].text = std::string(5000, 'y');
    PayloadOptions options;
    options.description_limit = 200;
    const auto report = report_of({c});
    const auto p = build_payload(&report, {}, options);
    CHECK(p.cases[0].description.size() < 260);
    CHECK(p.cases[0].description.find("truncated") != std::string::npos);
  }

  TEST_CASE("flat wire format: integer milliseconds, id echoed with its type") {
    const auto report = report_of({make_case("tests.test_build", "test_successful_make_clean", CaseStatus::passed,
                                             0.487)}, 15.866);
    RunFacts facts;
    facts.peak_rss_kib = 1772;
    const auto j = wire(build_payload(&report, facts, {}), R"("3fa85f64-5717")", Dialect::flat);
    CHECK(j == json::parse(R"({"id":"3fa85f64-5717","isPassed":true,"isError":false,"errorDetails":"",
      "duration":15866,"testResults":[{"name":"test_build::test_successful_make_clean","isPassed":true,
      "description":"","duration":487,"memoryUsed":1772}]})"));
    CHECK(wire(build_payload(&report, facts, {}), "7", Dialect::flat)["id"] == 7);
  }

  TEST_CASE("nested wire format: attempt outside, seconds as strings with three decimals") {
    const auto report = report_of({make_case("tests.test_executable", "test_run", CaseStatus::failed, 1.0033)},
                                  15.866);
    RunFacts facts;
    facts.peak_rss_kib = 1491;
    const auto j = wire(build_payload(&report, facts, {}), "21", Dialect::nested);
    CHECK(j == json::parse(R"({"attempt":21,"testResults":{"isPassed":false,"isError":false,"errorDetails":"",
      "duration":"15.866","testCases":[{"name":"test_executable::test_run","isPassed":false,
      "description":"assert 1 == 2\n\ntrace\nback","duration":"1.003","memoryUsed":1491}]}})"));
  }

  TEST_CASE("invalid UTF-8 and control characters still give valid JSON") {
    auto c = make_case("a", "t\x01", CaseStatus::failed);
    c.outcomes[0].message = "bad \xFF byte";
    const auto report = report_of({c});
    const auto text = serialize_payload(build_payload(&report, {}, {}), TaskIdentity{Dialect::flat, json("x")});
    const auto j = json::parse(text);  // throws if invalid
    CHECK(j["testResults"][0]["name"] == "a::t\x01");
  }

  TEST_CASE("streamed payloads are byte for byte the built ones, small and large, in both dialects") {
    std::vector<Report> reports;
    reports.push_back(report_of({}));
    reports.push_back(report_of({make_case("tests.a", "t1", CaseStatus::passed)}, std::nullopt));
    reports.push_back(report_of({make_case("a", "t1", CaseStatus::failed), make_case("a", "t2", CaseStatus::errored),
                                 make_case("a", "t3", CaseStatus::skipped)}));
    // Many blocks of cases, so that both threads write some, in a mix of results.
    std::vector<TestCase> many;
    for (int i = 0; i < 10007; ++i) {
      auto c = make_case("tests.m" + std::to_string(i % 13), "t" + std::to_string(i),
                         static_cast<CaseStatus>(i % 4), i * 0.001);
      if (i % 7 == 0) c.properties.emplace_back("memoryUsed", std::to_string(i));
      if (i % 11 == 0) c.reruns.push_back({"rerunFailure", "", "retry \"" + std::to_string(i) + "\"", "\x01 ü"});
      many.push_back(std::move(c));
    }
    reports.push_back(report_of(std::move(many), std::nullopt));
    RunFacts facts;
    facts.peak_rss_kib = 321;
    facts.output_tail = "tail";
    PayloadOptions options;
    options.description_limit = 40;
    const TaskIdentity flat{Dialect::flat, json("3fa85f64")};
    const TaskIdentity nested{Dialect::nested, json(4)};
    for (const auto& report : reports) {
      for (const TaskIdentity* identity : {&flat, &nested, static_cast<const TaskIdentity*>(nullptr)}) {
        const Dialect dialect = identity != nullptr ? identity->dialect : Dialect::nested;
        for (const RunFacts& f : {RunFacts{}, facts}) {
          const auto [built, streamed] = both_ways(report, f, options, dialect, identity);
          CAPTURE(report.counts().total);
          CHECK(streamed == built);
          CHECK(json::accept(streamed));
        }
      }
    }
  }

  TEST_CASE("streamed from JUnit documents: every sample, and several files as one payload") {
    const auto dir = std::filesystem::path(PROCTOR_SOURCE_DIR) / "tests/data/junit";
    std::vector<JunitDocument> documents;
    Report merged;
    ReportSummary summary;
    for (const auto& entry : std::filesystem::directory_iterator(dir)) {
      auto document = JunitDocument::read(entry.path());
      REQUIRE(document.ok());
      auto report = parse_junit_file(entry.path());
      REQUIRE(report.ok());
      const auto [built, streamed] = [&] {
        std::ostringstream one_built;
        write_payload(one_built, build_payload(&*report, {}, {}), Dialect::flat, nullptr);
        CaseSource source;
        source.count = document->case_count();
        source.read = [&](std::size_t first, std::size_t last, const CaseVisitor& visit) {
          document->for_each_case(first, last, visit);
        };
        std::ostringstream one_streamed;
        write_streamed_payload(one_streamed, document->summary(), source, {}, {}, Dialect::flat, nullptr);
        return std::pair{one_built.str(), one_streamed.str()};
      }();
      CAPTURE(entry.path().filename().string());
      CHECK(streamed == built);
      merge_summaries(summary, document->summary());
      merge_reports(merged, std::move(report).value());
      documents.push_back(std::move(document).value());
    }
    CHECK(summary.counts == merged.counts());
    CHECK(summary.time == merged.time);
    CaseSource all;
    all.count = case_count(documents);
    all.read = [&](std::size_t first, std::size_t last, const CaseVisitor& visit) {
      for_each_case(documents, first, last, visit);
    };
    std::ostringstream streamed;
    write_streamed_payload(streamed, summary, all, {}, {}, Dialect::nested, nullptr);
    std::ostringstream built;
    write_payload(built, build_payload(&merged, {}, {}), Dialect::nested, nullptr);
    CHECK(streamed.str() == built.str());
  }

  TEST_CASE("a case source that throws stops both writing threads and reaches the caller") {
    std::vector<TestCase> cases(20000, make_case("a", "t", CaseStatus::passed));
    for (const std::size_t bad : {std::size_t{5}, std::size_t{19000}}) {  // in each thread's half
      CaseSource source = source_of(cases);
      const auto read = source.read;
      source.read = [&, read](std::size_t first, std::size_t last, const CaseVisitor& visit) {
        if (first <= bad && bad < last) throw std::runtime_error("unreadable case");
        read(first, last, visit);
      };
      ReportSummary summary;
      summary.counts.total = cases.size();
      std::ostringstream out;
      CHECK_THROWS_WITH_AS(write_streamed_payload(out, summary, source, {}, {}, Dialect::flat, nullptr),
                           "unreadable case", std::runtime_error);
    }
  }
}
