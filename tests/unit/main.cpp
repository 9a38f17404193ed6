#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <atomic>

#include <spdlog/spdlog.h>

#include "tests/unit/temp_dir.hpp"

namespace proctor::test {
namespace {

std::atomic<bool> g_current_test_failed{false};

// Code under test logs what it does; the tests assert on results, not on log lines.
const bool g_logging_quiet = [] {
  spdlog::set_level(spdlog::level::off);
  return true;
}();

// Listens to doctest so TempDir knows whether the running test has failed.
struct FailureListener : doctest::IReporter {
  explicit FailureListener(const doctest::ContextOptions& /*unused*/) {}
  void report_query(const doctest::QueryData& /*unused*/) override {}
  void test_run_start() override {}
  void test_run_end(const doctest::TestRunStats& /*unused*/) override {}
  void test_case_start(const doctest::TestCaseData& /*unused*/) override { g_current_test_failed = false; }
  void test_case_reenter(const doctest::TestCaseData& /*unused*/) override {}
  void test_case_end(const doctest::CurrentTestCaseStats& /*unused*/) override {}
  void test_case_exception(const doctest::TestCaseException& /*unused*/) override { g_current_test_failed = true; }
  void subcase_start(const doctest::SubcaseSignature& /*unused*/) override {}
  void subcase_end() override {}
  void log_assert(const doctest::AssertData& data) override {
    if (data.m_failed) g_current_test_failed = true;
  }
  void log_message(const doctest::MessageData& /*unused*/) override {}
  void test_case_skipped(const doctest::TestCaseData& /*unused*/) override {}
};

}  // namespace

bool current_test_failed() { return g_current_test_failed.load(); }

}  // namespace proctor::test

DOCTEST_REGISTER_LISTENER("proctor-failure-listener", 1, proctor::test::FailureListener);
