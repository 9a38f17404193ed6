// JUnit XML reading (SPEC §2.2): real reports as each tool writes them
// (tests/data/junit/), then the edge cases inline.

#include <sys/stat.h>

#include <chrono>
#include <clocale>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "common/junit.hpp"
#include "common/limits.hpp"
#include "common/report.hpp"
#include "tests/unit/temp_dir.hpp"

namespace proctor {
namespace {

std::filesystem::path source_dir() {
#ifdef PROCTOR_SOURCE_DIR
  return PROCTOR_SOURCE_DIR;
#else
  if (const char* dir = std::getenv("PROCTOR_SOURCE_DIR")) return dir;
  return "..";
#endif
}

std::filesystem::path sample(const std::string& name) { return source_dir() / "tests/data/junit" / name; }

Report load_sample(const std::string& name) {
  auto report = parse_junit_file(sample(name));
  INFO(name << ": " << (report ? std::string("ok") : report.error().message));
  REQUIRE(report.ok());
  return std::move(report).value();
}

Report parse_ok(std::string_view xml) {
  auto report = parse_junit(xml);
  INFO((report ? std::string("ok") : report.error().message));
  REQUIRE(report.ok());
  return std::move(report).value();
}

std::string parse_error(std::string_view xml) {
  auto report = parse_junit(xml);
  REQUIRE_FALSE(report.ok());
  return report.error().message;
}

const TestCase& find_case(const Report& report, const std::string& name) {
  const TestCase* found = nullptr;
  report.for_each_case([&](const TestSuite&, const TestCase& c) {
    if (c.name == name && found == nullptr) found = &c;
  });
  INFO("case " << name);
  REQUIRE(found != nullptr);
  return *found;
}

void check_counts(const Report& report, std::size_t total, std::size_t passed, std::size_t failed,
                  std::size_t errored, std::size_t skipped) {
  const ReportCounts counts = report.counts();
  CHECK(counts.total == total);
  CHECK(counts.passed == passed);
  CHECK(counts.failed == failed);
  CHECK(counts.errored == errored);
  CHECK(counts.skipped == skipped);
}

std::string property(const std::vector<Property>& properties, const std::string& name) {
  for (const auto& [key, value] : properties) {
    if (key == name) return value;
  }
  return "<missing>";
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

constexpr const char* kReplacement = "\xEF\xBF\xBD";  // U+FFFD

}  // namespace

TEST_SUITE("junit") {
TEST_CASE("a report file larger than the cap is refused unread, with the limit in the message") {
  test::TempDir dir;
  const auto path = dir / "huge.xml";
  { std::ofstream(path) << "<testsuite>"; }
  // Sparse: the size is past the cap without writing a gigabyte.
  std::filesystem::resize_file(path, kMaxReportBytes + 1);
  const auto parsed = parse_junit_file(path);
  REQUIRE_FALSE(parsed.ok());
  CHECK(parsed.error().message.find("larger than 1024 MiB") != std::string::npos);
  CHECK(parsed.error().message.find("huge.xml") != std::string::npos);
}


// ---- real reports, one per tool ------------------------------------------------------

TEST_CASE("pytest report: statuses, teardown error case, xfail skip, properties, captured output") {
  const Report report = load_sample("pytest.xml");
  REQUIRE(report.suites.size() == 1);
  const TestSuite& suite = report.suites[0];
  CHECK(suite.name == "pytest");
  CHECK(suite.hostname == "vm");
  CHECK_FALSE(suite.timestamp.empty());
  REQUIRE(suite.time.has_value());
  CHECK(report.time == suite.time);  // no <testsuites time>: the one suite's time
  // pytest writes the teardown error of a failed test as a second testcase of that name.
  check_counts(report, 9, 2, 3, 2, 2);

  const TestCase& ok = find_case(report, "test_successful_make_clean");
  CHECK(ok.classname == "tests.test_build");
  CHECK(ok.status == CaseStatus::passed);
  CHECK(property(ok.properties, "memoryUsed") == "1772");
  CHECK(contains(ok.system_out, "make clean: ok"));

  const TestCase& failed = find_case(report, "test_compile_error");
  CHECK(failed.status == CaseStatus::failed);
  REQUIRE(failed.outcomes.size() == 1);
  CHECK(failed.outcomes[0].kind == "failure");
  CHECK(contains(failed.outcomes[0].message, "compiler output: Ünïcødé ✓\nassert"));  // &#10; decoded
  CHECK(contains(failed.outcomes[0].text, ">       assert \"compiled\" == expected"));  // &gt; decoded

  const TestCase& setup_error = find_case(report, "test_needs_database");
  CHECK(setup_error.status == CaseStatus::errored);
  CHECK(setup_error.outcomes[0].message == "failed on setup with \"RuntimeError: database not reachable\"");

  const TestCase& xfail = find_case(report, "test_known_bug");
  CHECK(xfail.status == CaseStatus::skipped);
  CHECK(xfail.outcomes[0].type == "pytest.xfail");

  // pytest wrote two <system-out> elements for this case: both are kept, in order.
  const TestCase& skipped = find_case(report, "test_gpu_build");
  CHECK(skipped.status == CaseStatus::skipped);
  CHECK(skipped.outcomes[0].message == "no GPU on this host");
  CHECK(skipped.outcomes[0].text == "/home/ci/build/tests/test_build.py:25: no GPU on this host");
}

TEST_CASE("pytest xunit1 report: file and line attributes") {
  const Report report = load_sample("pytest-xunit1.xml");
  const TestCase& c = find_case(report, "test_compile_error");
  CHECK(c.file == "tests/test_build.py");
  REQUIRE(c.line.has_value());
  CHECK(*c.line == 19);
  check_counts(report, 9, 2, 3, 2, 2);
}

TEST_CASE("Surefire report: flaky and rerun elements are kept but do not change the status") {
  const Report report = load_sample("surefire-flaky.xml");
  REQUIRE(report.suites.size() == 1);
  CHECK(report.suites[0].name == "com.example.checkout.CartTest");
  CHECK(property(report.suites[0].properties, "java.version") == "17.0.9");
  check_counts(report, 5, 2, 1, 1, 1);

  const TestCase& flaky = find_case(report, "appliesDiscount");
  CHECK(flaky.status == CaseStatus::passed);  // passed on a retry
  CHECK(flaky.outcomes.empty());
  REQUIRE(flaky.reruns.size() == 2);
  CHECK(flaky.reruns[0].kind == "flakyFailure");
  CHECK(flaky.reruns[0].type == "org.opentest4j.AssertionFailedError");
  CHECK(flaky.reruns[0].message == "expected: <90> but was: <100>");
  // The nested <stackTrace> and <system-out> texts are kept.
  CHECK(contains(flaky.reruns[0].text, "at com.example.checkout.CartTest.appliesDiscount(CartTest.java:42)"));
  CHECK(contains(flaky.reruns[0].text, "discount service answered 503"));
  CHECK(flaky.reruns[1].kind == "flakyError");
  CHECK(contains(flaky.reruns[1].text, "WARN retrying discount-service"));  // its <system-err>

  const TestCase& failed = find_case(report, "checksOut");
  CHECK(failed.status == CaseStatus::failed);
  REQUIRE(failed.outcomes.size() == 1);
  CHECK(failed.outcomes[0].message == "Order total mismatch ==> expected: <42.00> but was: <41.99>");
  REQUIRE(failed.reruns.size() == 2);
  CHECK(failed.reruns[0].kind == "rerunFailure");
  CHECK(contains(failed.reruns[0].text, "placing order #1002"));
  CHECK(contains(failed.reruns[1].text, "placing order #1003"));
  CHECK(failed.system_out == "placing order #1001\n");  // the case's own output, not a rerun's

  const TestCase& errored = find_case(report, "chargesCard");
  CHECK(errored.status == CaseStatus::errored);
  REQUIRE(errored.reruns.size() == 1);
  CHECK(errored.reruns[0].kind == "rerunError");
  CHECK(contains(errored.reruns[0].text, "gateway: no route to host"));
}

TEST_CASE("Gradle report: merged reruns, bare <skipped/>, suite output") {
  const Report report = load_sample("gradle.xml");
  check_counts(report, 4, 2, 1, 0, 1);
  const TestSuite& suite = report.suites[0];
  CHECK(suite.hostname == "build-agent-3");
  CHECK(suite.timestamp == "2024-03-01T10:15:30");
  CHECK(suite.system_out == "Calculator initialised with scale 2\n");
  CHECK(suite.system_err.empty());
  const TestCase& flaky = find_case(report, "multiplies()");
  CHECK(flaky.status == CaseStatus::passed);
  REQUIRE(flaky.reruns.size() == 1);
  CHECK(contains(flaky.reruns[0].text, "java.lang.AssertionError: cache was cold"));
  const TestCase& skipped = find_case(report, "roundsHalfEven()");
  CHECK(skipped.status == CaseStatus::skipped);
  CHECK(skipped.outcomes[0].message.empty());
  const TestCase& failed = find_case(report, "[2] 7, 2");
  CHECK(contains(failed.outcomes[0].text, "\tat app//com.example.CalculatorTest.divides(CalculatorTest.java:27)"));
}

TEST_CASE("gtest report: notrun/suppressed and GTEST_SKIP are skips, two failures stay one failed case") {
  const Report report = load_sample("gtest.xml");
  CHECK(report.name == "AllTests");
  REQUIRE(report.suites.size() == 2);
  REQUIRE(report.time.has_value());  // from <testsuites time=...>
  check_counts(report, 5, 2, 1, 0, 2);

  const TestCase& disabled = find_case(report, "DISABLED_Slow");  // status="notrun" result="suppressed"
  CHECK(disabled.status == CaseStatus::skipped);
  CHECK(disabled.outcomes.empty());
  CHECK(worst_outcome(disabled) == nullptr);

  const TestCase& skipped = find_case(report, "NeedsHardware");  // result="skipped" + <skipped>
  CHECK(skipped.status == CaseStatus::skipped);
  CHECK(skipped.outcomes[0].message == "t.cpp:5\nno FPU <here> & now");

  const TestCase& failed = find_case(report, "Divides");
  CHECK(failed.status == CaseStatus::failed);
  REQUIRE(failed.outcomes.size() == 2);
  CHECK(contains(failed.outcomes[1].text, "second failure"));  // CDATA text
  CHECK(worst_outcome(failed) == &failed.outcomes[0]);
  CHECK(failed.file == "t.cpp");
  CHECK(failed.line == 4);

  const TestCase& adds = find_case(report, "Adds");
  CHECK(property(adds.properties, "memoryUsed") == "2048");
  CHECK(adds.time > 0);
}

TEST_CASE("ctest --output-junit report: bare <testsuite> root, notrun and disabled are skips") {
  const Report report = load_sample("ctest.xml");
  REQUIRE(report.suites.size() == 1);
  CHECK(report.suites[0].name == "(empty)");
  CHECK(report.name.empty());
  check_counts(report, 5, 1, 2, 0, 2);
  CHECK(find_case(report, "unit.skips").status == CaseStatus::skipped);
  CHECK(find_case(report, "unit.skips").outcomes[0].message == "SKIP_RETURN_CODE=77");
  CHECK(find_case(report, "unit.disabled").status == CaseStatus::skipped);  // no element, status="disabled"
  CHECK(find_case(report, "unit.fails").system_out == "assertion failed: x == 1\n");
  CHECK(find_case(report, "unit.passes").time == doctest::Approx(0.00664973));
}

TEST_CASE("jest-junit report: a failure without a message keeps its text") {
  const Report report = load_sample("jest-junit.xml");
  CHECK(report.name == "jest tests");
  check_counts(report, 5, 2, 2, 0, 1);
  const TestCase& failed = find_case(report, "Cart checkout throws on empty cart");
  CHECK(failed.outcomes[0].message.empty());
  CHECK(failed.outcomes[0].text.rfind("TypeError: cart.items is undefined", 0) == 0);
  CHECK(contains(failed.outcomes[0].text, "at new Promise (<anonymous>)"));
  CHECK(find_case(report, "Cart computes the total in €").status == CaseStatus::failed);
}

TEST_CASE("mocha-junit-reporter report: empty root suite, file attribute, normalised attribute newlines") {
  const Report report = load_sample("mocha.xml");
  REQUIRE(report.suites.size() == 3);
  CHECK(report.suites[0].name == "Root Suite");
  CHECK(report.suites[0].cases.empty());
  CHECK(report.suites[1].file == "/home/ci/shop/test/cart.test.js");
  check_counts(report, 5, 2, 2, 0, 1);
  REQUIRE(report.time.has_value());
  CHECK(*report.time == doctest::Approx(0.012));
  const TestCase& failed = find_case(report, "Cart computes the total in €");
  // Literal newlines in an attribute are white space to XML: they read as spaces.
  CHECK(failed.outcomes[0].message.rfind("total <mismatch> & rounding + actual - expected", 0) == 0);
  CHECK(contains(failed.outcomes[0].text, "AssertionError [ERR_ASSERTION]: total <mismatch> & rounding\n"));
}

TEST_CASE("bazel report: nested test suites are read at every level") {
  const Report report = load_sample("bazel.xml");
  REQUIRE(report.suites.size() == 2);
  const TestSuite& target = report.suites[0];
  CHECK(target.name == "//server/api:api_test");
  CHECK(target.cases.empty());
  REQUIRE(target.suites.size() == 2);
  CHECK(target.suites[0].name == "com.example.api.HandlerTest");
  CHECK(target.suites[0].hostname == "localhost");
  check_counts(report, 4, 2, 1, 1, 0);
  std::vector<std::string> order;
  report.for_each_case([&](const TestSuite& s, const TestCase& c) { order.push_back(s.name + "/" + c.name); });
  CHECK(order == std::vector<std::string>{"com.example.api.HandlerTest/rejectsBadToken",
                                          "com.example.api.HandlerTest/servesIndex",
                                          "com.example.api.RouterTest/routesByPrefix",
                                          "//server/tools:lint_test///server/tools:lint_test"});
  // Text and CDATA mixed in one element are joined in order.
  const TestSuite& lint = report.suites[1];
  CHECK(contains(lint.system_out, "may be unreadable):\nexec ${PAGER:-/usr/bin/less} \"$0\" || exit 1\n"));
  CHECK(contains(lint.system_out, "lint: 3 problems found"));
  CHECK_FALSE(report.time.has_value());  // the lint suite states no time
}

TEST_CASE("scalatest report: properties and ignored tests") {
  const Report report = load_sample("scalatest.xml");
  check_counts(report, 4, 1, 1, 0, 2);
  CHECK(property(report.suites[0].properties, "scala.version") == "2.13.12");
  CHECK(report.suites[0].hostname == "ci-7");
}

TEST_CASE("xunit.net JUnit report: thousands separators in times, CRLF character references") {
  const Report report = load_sample("xunit.xml");
  check_counts(report, 4, 2, 1, 0, 1);
  REQUIRE(report.suites[0].time.has_value());
  CHECK(*report.suites[0].time == doctest::Approx(1234.567));
  CHECK(find_case(report, "Shop.Tests.ImportTests.LoadsCatalogue").time == doctest::Approx(1233.0));
  // &#xD;&#xA; are characters the tool meant; the file's own CRLF line ends are normalised.
  CHECK(find_case(report, "Shop.Tests.PriceTests.RoundsPrice").outcomes[0].message ==
        "Assert.Equal() Failure\r\nExpected: 19.99\r\nActual:   20");
}

// ---- structure ------------------------------------------------------------------------

TEST_CASE("a bare <testsuite> root is one suite; its time is the report's") {
  const Report report = parse_ok(R"(<testsuite name="solo" time="2.5"><testcase name="a"/></testsuite>)");
  REQUIRE(report.suites.size() == 1);
  CHECK(report.suites[0].name == "solo");
  REQUIRE(report.time.has_value());
  CHECK(*report.time == 2.5);
  check_counts(report, 1, 1, 0, 0, 0);
}

TEST_CASE("suites nest to any depth and every case is counted") {
  const Report report = parse_ok(R"(<testsuites>
    <testsuite name="a"><testcase name="a1"/>
      <testsuite name="b"><testcase name="b1"><failure/></testcase>
        <testsuite name="c"><testcase name="c1"><error/></testcase></testsuite>
      </testsuite>
      <testcase name="a2"><skipped/></testcase>
    </testsuite></testsuites>)");
  REQUIRE(report.suites.size() == 1);
  REQUIRE(report.suites[0].suites.size() == 1);
  REQUIRE(report.suites[0].suites[0].suites.size() == 1);
  CHECK(report.suites[0].suites[0].suites[0].cases[0].name == "c1");
  check_counts(report, 4, 1, 1, 1, 1);
}

TEST_CASE("suites nested absurdly deep are refused, not a crash") {
  std::string xml;
  for (int i = 0; i < 5000; ++i) xml += "<testsuite>";
  for (int i = 0; i < 5000; ++i) xml += "</testsuite>";
  CHECK(contains(parse_error(xml), "nested more than"));
}

TEST_CASE("counts are recomputed from the cases when the suite attributes lie") {
  const Report report = parse_ok(R"(<testsuites tests="100" failures="0" errors="7">
    <testsuite name="s" tests="1" failures="0" errors="0" skipped="9">
      <testcase name="a"><failure message="m"/></testcase>
      <testcase name="b"/><testcase name="c"/>
    </testsuite></testsuites>)");
  check_counts(report, 3, 2, 1, 0, 0);
}

TEST_CASE("cases straight under <testsuites> are kept in a suite of their own") {
  const Report report = parse_ok(R"(<testsuites name="all"><testcase name="loose"/>
    <testsuite name="s"><testcase name="inner"/></testsuite></testsuites>)");
  check_counts(report, 2, 2, 0, 0, 0);
  CHECK(find_case(report, "loose").status == CaseStatus::passed);
}

TEST_CASE("a case with several results keeps the worst: error > failure > passed > skipped") {
  const Report report = parse_ok(R"(<testsuite>
    <testcase name="fail-then-error"><failure message="f"/><error message="e"/></testcase>
    <testcase name="error-then-fail"><error message="e"/><failure message="f"/></testcase>
    <testcase name="skip-and-fail"><skipped message="s"/><failure message="f"/></testcase>
    <testcase name="skip-only"><skipped message="s"/></testcase>
    <testcase name="notrun-but-failed" status="notrun"><failure message="f"/></testcase>
  </testsuite>)");
  CHECK(find_case(report, "fail-then-error").status == CaseStatus::errored);
  CHECK(find_case(report, "error-then-fail").status == CaseStatus::errored);
  CHECK(find_case(report, "skip-and-fail").status == CaseStatus::failed);
  CHECK(find_case(report, "skip-only").status == CaseStatus::skipped);
  CHECK(find_case(report, "notrun-but-failed").status == CaseStatus::failed);
  CHECK(find_case(report, "fail-then-error").outcomes.size() == 2);
  CHECK(worst_outcome(find_case(report, "fail-then-error"))->message == "e");
  CHECK(worst_outcome(find_case(report, "skip-and-fail"))->message == "f");
}

TEST_CASE("worse_status orders error > failure > passed > skipped; to_string names each status") {
  CHECK(worse_status(CaseStatus::failed, CaseStatus::errored) == CaseStatus::errored);
  CHECK(worse_status(CaseStatus::errored, CaseStatus::failed) == CaseStatus::errored);
  CHECK(worse_status(CaseStatus::passed, CaseStatus::failed) == CaseStatus::failed);
  CHECK(worse_status(CaseStatus::skipped, CaseStatus::passed) == CaseStatus::passed);
  CHECK(worse_status(CaseStatus::passed, CaseStatus::skipped) == CaseStatus::passed);
  CHECK(worse_status(CaseStatus::skipped, CaseStatus::skipped) == CaseStatus::skipped);
  CHECK(std::string(to_string(CaseStatus::passed)) == "passed");
  CHECK(std::string(to_string(CaseStatus::skipped)) == "skipped");
  CHECK(std::string(to_string(CaseStatus::failed)) == "failed");
  CHECK(std::string(to_string(CaseStatus::errored)) == "errored");
}

TEST_CASE("gtest-style result attributes on a case are skips") {
  const Report report = parse_ok(R"(<testsuite>
    <testcase name="notrun" status="notrun"/>
    <testcase name="skipped" status="run" result="skipped"/>
    <testcase name="suppressed" status="notrun" result="suppressed"/>
    <testcase name="completed" status="run" result="completed"/>
  </testsuite>)");
  check_counts(report, 4, 1, 0, 0, 3);
  CHECK(find_case(report, "completed").status == CaseStatus::passed);
}

TEST_CASE("properties take their value from the attribute or the element text") {
  const Report report = parse_ok(R"(<testsuite>
    <properties><property name="os" value="linux"/><property name="notes">multi
line</property></properties>
    <testcase name="a"><properties><property name="memoryUsed" value="512"/></properties></testcase>
  </testsuite>)");
  CHECK(property(report.suites[0].properties, "os") == "linux");
  CHECK(property(report.suites[0].properties, "notes") == "multi\nline");
  CHECK(property(find_case(report, "a").properties, "memoryUsed") == "512");
}

TEST_CASE("line is kept only when numeric") {
  const Report report = parse_ok(R"(<testsuite>
    <testcase name="num" file="a.py" line=" 42 "/><testcase name="junk" line="forty"/>
    <testcase name="partly" line="12abc"/><testcase name="none"/></testsuite>)");
  CHECK(find_case(report, "num").line == 42);
  CHECK(find_case(report, "num").file == "a.py");
  CHECK_FALSE(find_case(report, "junk").line.has_value());
  CHECK_FALSE(find_case(report, "partly").line.has_value());
  CHECK_FALSE(find_case(report, "none").line.has_value());
}

// ---- time ------------------------------------------------------------------------------

TEST_CASE("time: missing or unreadable is 0 for a case and absent for a suite; separators accepted") {
  const Report report = parse_ok(R"(<testsuites>
    <testsuite name="s1" time="oops">
      <testcase name="missing"/><testcase name="junk" time="fast"/><testcase name="empty" time=""/>
      <testcase name="negative" time="-3"/><testcase name="sep" time="1,234.5"/>
      <testcase name="exp" time="1e-3"/><testcase name="padded" time=" 0.25 "/>
    </testsuite></testsuites>)");
  CHECK_FALSE(report.suites[0].time.has_value());
  CHECK(find_case(report, "missing").time == 0);
  CHECK(find_case(report, "junk").time == 0);
  CHECK(find_case(report, "empty").time == 0);
  CHECK(find_case(report, "negative").time == 0);
  CHECK(find_case(report, "sep").time == doctest::Approx(1234.5));
  CHECK(find_case(report, "exp").time == doctest::Approx(0.001));
  CHECK(find_case(report, "padded").time == doctest::Approx(0.25));
}

TEST_CASE("report time: <testsuites time>, else the sum of the suites when all state one, else none") {
  CHECK(parse_ok(R"(<testsuites time="9.5"><testsuite time="1"/></testsuites>)").time == 9.5);
  const auto summed = parse_ok(R"(<testsuites><testsuite time="1.25"/><testsuite time="2"/></testsuites>)").time;
  REQUIRE(summed.has_value());
  CHECK(*summed == doctest::Approx(3.25));
  CHECK_FALSE(parse_ok(R"(<testsuites><testsuite time="1"/><testsuite/></testsuites>)").time.has_value());
  CHECK(parse_ok(R"(<testsuites time="junk"><testsuite time="4"/></testsuites>)").time == 4.0);
}

TEST_CASE("time is read the same whatever the process locale") {
  const std::string saved = std::setlocale(LC_ALL, nullptr);
  bool switched = false;
  for (const char* name : {"de_DE.UTF-8", "de_DE.utf8", "fr_FR.UTF-8", "ru_RU.UTF-8"}) {
    if (std::setlocale(LC_ALL, name) != nullptr) {
      switched = true;
      break;
    }
  }
  if (!switched) MESSAGE("no comma-decimal locale installed; checked under the C locale only");
  const Report report = parse_ok(R"(<testsuite time="1,234.5"><testcase name="a" time="0.5"/></testsuite>)");
  std::setlocale(LC_ALL, saved.c_str());
  CHECK(report.suites[0].time == 1234.5);
  CHECK(find_case(report, "a").time == 0.5);
}

// ---- text: entities, DOCTYPE, UTF-8 ----------------------------------------------------

TEST_CASE("predefined entities and character references are decoded; CDATA is literal text") {
  const Report report = parse_ok(
      R"(<testsuite name="&lt;s&gt; &amp; &quot;q&quot; &apos;a&apos;">)"
      R"(<testcase name="&#65;&#x42;&#x1F600;"><failure message="x &lt; y">a &amp;&amp; b<![CDATA[ <raw> &amp; ]]>end</failure></testcase>)"
      R"(</testsuite>)");
  CHECK(report.suites[0].name == "<s> & \"q\" 'a'");
  const TestCase& c = find_case(report, "AB\xF0\x9F\x98\x80");
  CHECK(c.outcomes[0].message == "x < y");
  CHECK(c.outcomes[0].text == "a && b <raw> &amp; end");
}

TEST_CASE("a billion-laughs DOCTYPE is not expanded and parsing finishes at once") {
  std::string xml = "<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [\n <!ENTITY lol \"lol\">\n";
  xml += " <!ENTITY lol1 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\n";
  for (int i = 2; i <= 9; ++i) {
    const std::string prev = "&lol" + std::to_string(i - 1) + ";";
    std::string body;
    for (int k = 0; k < 10; ++k) body += prev;
    xml += " <!ENTITY lol" + std::to_string(i) + " \"" + body + "\">\n";
  }
  xml += "]>\n<testsuite name=\"&lol9;\"><testcase name=\"t\" classname=\"&lol9;\"><failure>&lol9;</failure></testcase></testsuite>";
  const auto start = std::chrono::steady_clock::now();
  auto report = parse_junit(xml);
  const auto elapsed = std::chrono::steady_clock::now() - start;
  CHECK(elapsed < std::chrono::seconds(1));
  // Either outcome the contract allows: the entity stays literal, or the report is refused.
  if (report) {
    CHECK(report->suites[0].name == "&lol9;");
    CHECK(report->suites[0].cases[0].classname == "&lol9;");
    CHECK(report->suites[0].cases[0].outcomes[0].text == "&lol9;");
    CHECK_FALSE(contains(report_to_json(*report).dump(), "lollol"));
  } else {
    MESSAGE("refused: " << report.error().message);
  }
}

TEST_CASE("an external SYSTEM entity is never read") {
  test::TempDir dir;
  const auto secret = dir / "secret.txt";
  std::ofstream(secret) << "TOP-SECRET-CONTENT";
  const std::string xml = "<?xml version=\"1.0\"?>\n<!DOCTYPE testsuite [<!ENTITY xxe SYSTEM \"file://" +
                          secret.string() + "\">]>\n<testsuite name=\"s\"><testcase name=\"&xxe;\">"
                          "<failure message=\"&xxe;\">&xxe;</failure></testcase></testsuite>";
  auto report = parse_junit(xml);
  REQUIRE(report.ok());
  const std::string dumped = report_to_json(*report).dump();
  CHECK_FALSE(contains(dumped, "TOP-SECRET"));
  CHECK(report->suites[0].cases[0].name == "&xxe;");
}

TEST_CASE("an unknown entity is left as literal text") {
  const Report report = parse_ok(R"(<testsuite><testcase name="a &nbsp; b &unknown;"/></testsuite>)");
  CHECK(report.suites[0].cases[0].name == "a &nbsp; b &unknown;");
}

TEST_CASE("invalid UTF-8 anywhere is made valid") {
  const std::string xml = "<testsuite name=\"suite\xFF\"><testcase name=\"bad\xC3(name\" classname=\"c\xED\xA0\x80\">"
                          "<failure message=\"m\xFE\">trace \xF8\x88\x80\x80\x80</failure>"
                          "<system-out>out \xC0\xAF</system-out>"
                          "<properties><property name=\"p\" value=\"v\x80\"/></properties>"
                          "</testcase></testsuite>";
  const Report report = parse_ok(xml);
  const TestCase& c = report.suites[0].cases[0];
  CHECK(report.suites[0].name == std::string("suite") + kReplacement);
  CHECK(c.name == std::string("bad") + kReplacement + "(name");
  CHECK(c.classname == std::string("c") + kReplacement + kReplacement + kReplacement);  // a surrogate
  CHECK(c.outcomes[0].message == std::string("m") + kReplacement);
  CHECK(contains(c.outcomes[0].text, kReplacement));
  CHECK(c.system_out == std::string("out ") + kReplacement + kReplacement);  // overlong '/'
  CHECK(c.properties[0].second == std::string("v") + kReplacement);
  CHECK_NOTHROW(static_cast<void>(report_to_json(report).dump()));  // nlohmann throws on invalid UTF-8
}

TEST_CASE("a Latin-1 report is decoded to UTF-8 as its declaration says") {
  const std::string xml = "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><testsuite><testcase name=\"caf\xE9\"/></testsuite>";
  CHECK(parse_ok(xml).suites[0].cases[0].name == "caf\xC3\xA9");
}

TEST_CASE("a UTF-16 report (with a byte order mark) is decoded to UTF-8") {
  const std::u16string text = u"\uFEFF<testsuite name=\"s\"><testcase name=\"gr\u00FC\u00DFe \u6D4B\u8BD5\"/></testsuite>";
  std::string bytes;
  for (const char16_t unit : text) {
    bytes.push_back(static_cast<char>(unit & 0xFF));
    bytes.push_back(static_cast<char>(unit >> 8));
  }
  const Report report = parse_ok(bytes);
  CHECK(report.suites[0].name == "s");
  CHECK(report.suites[0].cases[0].name == "gr\xC3\xBC\xC3\x9F" "e \xE6\xB5\x8B\xE8\xAF\x95");
}

// ---- refusals --------------------------------------------------------------------------

TEST_CASE("an empty report is an error, not an empty pass") {
  CHECK(parse_error("") == "not a JUnit XML report: it is empty");
  CHECK(parse_error(" \n\t ") == "not a JUnit XML report: it is empty");
}

TEST_CASE("text that is not XML is an error") {
  CHECK(parse_error("Segmentation fault (core dumped)\n") == "not a JUnit XML report: it has no XML element");
  CHECK(parse_error(R"({"tests": 3})") == "not a JUnit XML report: it has no XML element");
  const std::string broken = parse_error("<testsuite name=\"a\" <testcase/></testsuite>");
  CHECK(broken.rfind("not a JUnit XML report: XML parse error at offset ", 0) == 0);
}

TEST_CASE("a truncated report is an error naming where it broke") {
  const std::string full = R"(<testsuites><testsuite name="s"><testcase name="a"/><testcase name="b">)";
  const std::string message = parse_error(full);
  CHECK(message.rfind("not a JUnit XML report: XML parse error at offset ", 0) == 0);
  CHECK(message.find('\n') == std::string::npos);
  CHECK(parse_error(R"(<testsuite name="cut)").rfind("not a JUnit XML report: XML parse error", 0) == 0);
}

TEST_CASE("another root element is an error that names it") {
  CHECK(parse_error("<!DOCTYPE html><html><body><p>502 Bad Gateway</p></body></html>") ==
        "not a JUnit XML report: the root element is <html>, expected <testsuites> or <testsuite>");
  CHECK(parse_error(R"(<?xml version="1.0"?><assemblies><assembly/></assemblies>)") ==
        "not a JUnit XML report: the root element is <assemblies>, expected <testsuites> or <testsuite>");
}

TEST_CASE("parse_junit_file: a missing file and a bad file are errors naming the file") {
  test::TempDir dir;
  const auto missing = dir / "nope.xml";
  auto report = parse_junit_file(missing);
  REQUIRE_FALSE(report.ok());
  CHECK(report.error().message == "cannot read the JUnit XML report " + missing.string() + ": No such file or directory");

  const auto html = dir / "report.xml";
  std::ofstream(html) << "<html/>";
  report = parse_junit_file(html);
  REQUIRE_FALSE(report.ok());
  CHECK(report.error().message == html.string() +
                                      ": not a JUnit XML report: the root element is <html>, expected <testsuites> or <testsuite>");

  report = parse_junit_file(dir.path());  // a directory
  REQUIRE_FALSE(report.ok());
  CHECK(contains(report.error().message, dir.path().string()));
}

TEST_CASE("parse_junit_file reads a pipe of unknown size") {
  test::TempDir dir;
  const auto fifo = dir / "report.fifo";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  std::string xml = "<testsuite name=\"piped\">";
  for (int i = 0; i < 5000; ++i) xml += "<testcase name=\"case" + std::to_string(i) + "\" time=\"0.001\"/>\n";
  xml += "</testsuite>";
  REQUIRE(xml.size() > 64 * 1024);  // more than the first read buffer
  // Opening a FIFO for writing blocks until the reader opens it: that is the synchronisation.
  std::thread writer([&] { std::ofstream(fifo, std::ios::binary) << xml; });
  auto report = parse_junit_file(fifo);
  writer.join();
  REQUIRE(report.ok());
  CHECK(report->counts().total == 5000);
  CHECK(report->suites[0].cases.back().name == "case4999");
}

TEST_CASE("parse_junit copies its input: the report does not depend on the caller's string") {
  auto xml = std::make_unique<std::string>(R"(<testsuite name="owned"><testcase name="a" classname="k"/></testsuite>)");
  auto report = parse_junit(*xml);
  xml->assign(xml->size(), 'X');
  xml.reset();
  REQUIRE(report.ok());
  CHECK(report->suites[0].name == "owned");
  CHECK(report->suites[0].cases[0].classname == "k");
}

TEST_CASE("a large report is read whole and intact while its buffer is released behind the reader") {
  // Several MiB, so the buffer is handed back in steps while cases are still being read.
  std::string xml = "<testsuites><testsuite name=\"big\">";
  constexpr int kCases = 50000;
  for (int i = 0; i < kCases; ++i) {
    xml += "<testcase classname=\"tests.module_" + std::to_string(i % 97) + "\" name=\"test_" + std::to_string(i) +
           "\" time=\"0.01\">";
    if (i % 10 == 0) xml += "<failure message=\"boom " + std::to_string(i) + "\">trace line\n  at " + std::to_string(i) + "</failure>";
    xml += "<system-out>out " + std::to_string(i) + " ÄÖÜ</system-out></testcase>\n";
  }
  xml += "</testsuite><testsuite name=\"tail\"><testcase name=\"last\"/></testsuite></testsuites>";
  REQUIRE(xml.size() > 5 * 1024 * 1024);
  test::TempDir dir;
  const auto path = dir / "big.xml";
  std::ofstream(path, std::ios::binary) << xml;
  for (const auto& report : {parse_junit(xml), parse_junit_file(path)}) {
    REQUIRE(report.ok());
    check_counts(*report, kCases + 1, kCases + 1 - kCases / 10, kCases / 10, 0, 0);
    const auto& cases = report->suites[0].cases;
    REQUIRE(cases.size() == static_cast<std::size_t>(kCases));
    int first_bad = -1;
    for (int i = 0; i < kCases && first_bad < 0; ++i) {
      const TestCase& c = cases[static_cast<std::size_t>(i)];
      const bool intact = c.name == "test_" + std::to_string(i) &&
                          c.classname == "tests.module_" + std::to_string(i % 97) &&
                          c.system_out == "out " + std::to_string(i) + " ÄÖÜ" &&
                          (i % 10 != 0 || c.outcomes[0].text == "trace line\n  at " + std::to_string(i));
      if (!intact) first_bad = i;
    }
    CHECK(first_bad == -1);
    CHECK(report->suites[1].cases[0].name == "last");
  }
}

// ---- merge and JSON ---------------------------------------------------------------------

TEST_CASE("merge_reports appends suites and sums times; an unknown time makes the total unknown") {
  Report merged;
  merge_reports(merged, parse_ok(R"(<testsuites name="first" time="1.5"><testsuite name="a"><testcase name="x"/></testsuite></testsuites>)"));
  REQUIRE(merged.time.has_value());
  CHECK(*merged.time == 1.5);
  merge_reports(merged, parse_ok(R"(<testsuite name="b" time="2"><testcase name="y"><failure/></testcase></testsuite>)"));
  REQUIRE(merged.time.has_value());
  CHECK(*merged.time == 3.5);
  CHECK(merged.name == "first");
  REQUIRE(merged.suites.size() == 2);
  CHECK(merged.suites[1].name == "b");
  check_counts(merged, 2, 1, 1, 0, 0);
  merge_reports(merged, parse_ok(R"(<testsuite name="c"><testcase name="z"/></testsuite>)"));
  CHECK_FALSE(merged.time.has_value());
  CHECK(merged.suites.size() == 3);
}

TEST_CASE("report_to_json: the documented shape, with optional keys only when they have a value") {
  const Report report = parse_ok(R"(<testsuites name="run" time="3">
    <testsuite name="s" time="2" timestamp="2024-01-01T00:00:00" hostname="h" file="s.py">
      <properties><property name="k" value="v"/></properties>
      <testcase name="ok" classname="c" time="0.5"/>
      <testcase name="bad" classname="c" file="t.py" line="7" time="1">
        <skipped message="later"/><failure message="boom" type="E">trace</failure>
        <flakyError message="once"/>
        <system-out>so</system-out><system-err>se</system-err>
        <properties><property name="memoryUsed" value="12"/></properties>
      </testcase>
      <testsuite name="inner"><testcase name="deep"/></testsuite>
      <system-out>suite out</system-out>
    </testsuite></testsuites>)");
  const nlohmann::json j = report_to_json(report);
  CHECK(j["name"] == "run");
  CHECK(j["time"] == 3.0);
  CHECK(j["counts"] == nlohmann::json{{"total", 3}, {"passed", 2}, {"failed", 1}, {"errored", 0}, {"skipped", 0}});
  const auto& s = j["suites"][0];
  CHECK(s["name"] == "s");
  CHECK(s["time"] == 2.0);
  CHECK(s["timestamp"] == "2024-01-01T00:00:00");
  CHECK(s["hostname"] == "h");
  CHECK(s["file"] == "s.py");
  CHECK(s["properties"] == nlohmann::json{{"k", "v"}});
  CHECK(s["system_out"] == "suite out");
  CHECK_FALSE(s.contains("system_err"));
  CHECK(s["suites"][0]["name"] == "inner");
  CHECK_FALSE(s["suites"][0].contains("time"));
  CHECK_FALSE(s["suites"][0].contains("suites"));

  const auto& ok = s["cases"][0];
  CHECK(ok == nlohmann::json{{"name", "ok"}, {"classname", "c"}, {"time", 0.5}, {"status", "passed"}});

  const auto& bad = s["cases"][1];
  CHECK(bad["status"] == "failed");
  CHECK(bad["file"] == "t.py");
  CHECK(bad["line"] == 7);
  CHECK(bad["time"] == 1.0);
  CHECK(bad["message"] == "boom");  // of the worst outcome, not the first
  CHECK(bad["type"] == "E");
  CHECK(bad["text"] == "trace");
  CHECK(bad["outcomes"] == nlohmann::json::parse(
                               R"([{"kind":"skipped","message":"later"},{"kind":"failure","message":"boom","type":"E","text":"trace"}])"));
  CHECK(bad["reruns"] == nlohmann::json::parse(R"([{"kind":"flakyError","message":"once"}])"));
  CHECK(bad["system_out"] == "so");
  CHECK(bad["system_err"] == "se");
  CHECK(bad["properties"] == nlohmann::json{{"memoryUsed", "12"}});

  const nlohmann::json bare = report_to_json(parse_ok("<testsuite><testcase name=\"x\"/></testsuite>"));
  CHECK_FALSE(bare.contains("name"));
  CHECK_FALSE(bare.contains("time"));
  CHECK(bare["suites"][0] == nlohmann::json{{"name", ""}, {"cases", {{{"name", "x"}, {"time", 0.0}, {"status", "passed"}}}}});
}

}  // TEST_SUITE("junit")

}  // namespace proctor

// ---- JunitDocument: the same report, read case by case -----------------------------------

namespace proctor {
namespace {

// Every case of a report, in the model's order.
std::vector<TestCase> model_cases(const Report& report) {
  std::vector<TestCase> cases;
  report.for_each_case([&](const TestSuite&, const TestCase& c) { cases.push_back(c); });
  return cases;
}

// Every case of a document, read as a stream (copies: the stream reuses one TestCase).
std::vector<TestCase> streamed_cases(const JunitDocument& document, std::size_t first = 0,
                                     std::size_t last = SIZE_MAX) {
  std::vector<TestCase> cases;
  document.for_each_case(first, std::min(last, document.case_count()), [&](const TestCase& c) { cases.push_back(c); });
  return cases;
}

// The document's summary and cases agree with the model made from the same text.
void check_document_matches_model(std::string_view xml) {
  auto document = JunitDocument::parse(xml);
  REQUIRE(document.ok());
  const Report report = parse_ok(xml);
  CHECK(document->summary() == report.summary());
  CHECK(document->case_count() == report.counts().total);
  CHECK(streamed_cases(*document) == model_cases(report));
}

}  // namespace

TEST_CASE("JunitDocument: every sample streams the cases and the summary its model has") {
  for (const auto& entry : std::filesystem::directory_iterator(source_dir() / "tests/data/junit")) {
    INFO(entry.path().filename().string());
    auto document = JunitDocument::read(entry.path());
    REQUIRE(document.ok());
    const Report report = load_sample(entry.path().filename().string());
    CHECK(document->summary() == report.summary());
    CHECK(streamed_cases(*document) == model_cases(report));
  }
}

TEST_CASE("JunitDocument: odd shapes stream in the model's order with the model's times") {
  // Cases straight under <testsuites>, next to properties and output: a suite of their own, first.
  check_document_matches_model(R"(<testsuites name="run"><testsuite name="a" time="1"><testcase name="a1" time="1"/></testsuite>
    <testcase name="loose" time="0.5"><failure message="m">t</failure></testcase>
    <system-out>hello</system-out></testsuites>)");
  // Only output under <testsuites>: the loose suite has no time, so neither has the report.
  check_document_matches_model(R"(<testsuites><testsuite name="a" time="1"><testcase name="a1"/></testsuite>
    <system-out>hello</system-out></testsuites>)");
  // Empty output and properties make no loose suite: the suites' times add up.
  check_document_matches_model(R"(<testsuites><properties/><system-out/><testsuite name="a" time="1"><testcase name="a1"/></testsuite>
    <testsuite name="b" time="2.25"><testcase name="b1"/></testsuite></testsuites>)");
  // Nested suites between cases: a suite's own cases come before its children's.
  check_document_matches_model(R"(<testsuite name="outer"><testcase name="o1" time="1"/>
    <testsuite name="inner"><testcase name="i1" time="2"><error/></testcase>
      <testsuite name="deepest"><testcase name="d1"><skipped/></testcase></testsuite>
      <testcase name="i2" time="3"/></testsuite>
    <testcase name="o2" time="4" status="notrun"/></testsuite>)");
  // A stated report time wins; a suite without a time leaves the total unknown.
  check_document_matches_model(R"(<testsuites time="9"><testsuite name="a"><testcase name="a1" time="1"/></testsuite></testsuites>)");
  check_document_matches_model(R"(<testsuites><testsuite name="a" time="1"><testcase name="a1"/></testsuite>
    <testsuite name="b"><testcase name="b1" time="1,234.5"/></testsuite></testsuites>)");
  // Reruns, properties and outputs reach the streamed case as they reach the model.
  check_document_matches_model(R"(<testsuite name="s"><testcase name="flaky" classname="k" file="f.py" line="7">
    <flakyFailure message="first" type="E"><stackTrace>at x</stackTrace><system-out>o</system-out></flakyFailure>
    <properties><property name="memoryUsed" value="12"/><property name="note">text</property></properties>
    <system-out>one</system-out><system-out>two</system-out><system-err>err</system-err></testcase>
    <testcase name="plain"/></testsuite>)");
}

TEST_CASE("JunitDocument: a reused case carries nothing over from the one before") {
  auto document = JunitDocument::parse(R"(<testsuite name="s">
    <testcase name="full" classname="k" file="f" line="3" time="2"><failure message="m" type="T">trace</failure>
      <flakyError message="r"/><system-out>o</system-out><system-err>e</system-err>
      <properties><property name="p" value="v"/></properties></testcase>
    <testcase name="bare"/></testsuite>)");
  REQUIRE(document.ok());
  std::vector<std::string> seen;
  document->for_each_case(0, 2, [&](const TestCase& c) {
    if (c.name != "bare") return;
    TestCase expected;
    expected.name = "bare";
    CHECK(c == expected);
    seen.push_back(c.name);
  });
  CHECK(seen == std::vector<std::string>{"bare"});
}

TEST_CASE("JunitDocument: ranges of cases, within one document and across several") {
  std::vector<JunitDocument> documents;
  for (const char* xml : {R"(<testsuite name="a"><testcase name="a0"/><testcase name="a1"/><testcase name="a2"/></testsuite>)",
                          R"(<testsuite name="b"></testsuite>)",
                          R"(<testsuites><testsuite name="c"><testcase name="c0"/><testcase name="c1"/></testsuite></testsuites>)"}) {
    auto document = JunitDocument::parse(xml);
    REQUIRE(document.ok());
    documents.push_back(std::move(document).value());
  }
  const auto names = [&](std::size_t first, std::size_t last) {
    std::vector<std::string> out;
    for_each_case(documents, first, last, [&](const TestCase& c) { out.push_back(c.name); });
    return out;
  };
  CHECK(case_count(documents) == 5);
  CHECK(names(0, 5) == std::vector<std::string>{"a0", "a1", "a2", "c0", "c1"});
  CHECK(names(2, 4) == std::vector<std::string>{"a2", "c0"});
  CHECK(names(3, 3).empty());
  CHECK(names(4, 99) == std::vector<std::string>{"c1"});
  CHECK(streamed_cases(documents[0], 1, 2).at(0).name == "a1");
}

TEST_CASE("JunitDocument: errors are found when loading, before any case is read") {
  std::string deep;
  for (int i = 0; i < 300; ++i) deep += "<testsuite>";
  for (int i = 0; i < 300; ++i) deep += "</testsuite>";
  auto document = JunitDocument::parse(deep);
  REQUIRE_FALSE(document.ok());
  CHECK(document.error().message.find("nested more than 256 levels") != std::string::npos);
  CHECK_FALSE(JunitDocument::parse("<html/>").ok());
  auto missing = JunitDocument::read("/nonexistent/report.xml");
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().message.find("/nonexistent/report.xml") != std::string::npos);
}

TEST_CASE("a report file large enough to be read in two halves at once is read whole") {
  // Past the size from which a file is read by two threads (8 MiB), with multi-byte text
  // everywhere so that a misplaced half would break a character or a case.
  std::string xml = "<testsuite name=\"big\">";
  int count = 0;
  while (xml.size() < 10 * 1024 * 1024) {
    xml += "<testcase name=\"t" + std::to_string(count) + "\"><failure message=\"ÄÖÜ " + std::to_string(count) +
           "\">テスト " + std::string(100, 'x') + "</failure></testcase>\n";
    ++count;
  }
  xml += "</testsuite>";
  test::TempDir dir;
  const auto path = dir / "big.xml";
  std::ofstream(path, std::ios::binary) << xml;
  auto from_file = JunitDocument::read(path);
  REQUIRE(from_file.ok());
  auto from_text = JunitDocument::parse(xml);
  REQUIRE(from_text.ok());
  CHECK(from_file->summary().counts.failed == static_cast<std::size_t>(count));
  CHECK(streamed_cases(*from_file) == streamed_cases(*from_text));
}

}  // namespace proctor
