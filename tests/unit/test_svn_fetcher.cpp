// SvnFetcher's command lines, with a recording ProcessRunner: what it runs, in which
// order, and that a password only ever travels on stdin. The real svn and svnserve are
// driven by tests/integration/test_repositories.py.

#include <algorithm>
#include <filesystem>
#include <fstream>

#include <doctest/doctest.h>

#include "agent/svn_fetcher.hpp"
#include "tests/unit/fakes.hpp"
#include "tests/unit/require_ok.hpp"
#include "tests/unit/temp_dir.hpp"

using namespace proctor;
namespace fs = std::filesystem;

namespace {

// The svn subcommand of a recorded run (the first argument after the shared options).
std::string subcommand(const ProcessSpec& spec) {
  for (std::size_t i = 1; i < spec.argv.size(); ++i) {
    const auto& arg = spec.argv[i];
    if (arg == "--config-dir" || arg == "--username") {
      ++i;
      continue;
    }
    if (arg.rfind("--", 0) != 0) return arg;
  }
  return "";
}

bool has(const ProcessSpec& spec, const std::string& arg) {
  return std::find(spec.argv.begin(), spec.argv.end(), arg) != spec.argv.end();
}

}  // namespace

TEST_SUITE("svn_fetcher") {
  TEST_CASE("a first fetch checks out; the password goes on stdin, never on the command line") {
    test::TempDir dir;
    test::RecordingProcessRunner runner;
    runner.behaviour = [](const ProcessSpec& spec, ProcessOutcome&) {
      if (subcommand(spec) == "info" && spec.on_line) spec.on_line("42");
    };
    SvnFetcher fetcher(runner);
    SourceSpec source("svn://127.0.0.1:3690/repo/trunk", std::nullopt, std::string("41"));
    source.username = "alice";
    source.password = "s3cr3t pass";
    auto checkout = fetcher.fetch(source, dir.path(), {});
    REQUIRE_OK(checkout);
    CHECK(checkout->commit == "r42");
    CHECK_FALSE(checkout->reused);
    REQUIRE(runner.specs.size() == 2);
    const auto& checkout_spec = runner.specs[0];
    CHECK(subcommand(checkout_spec) == "checkout");
    CHECK(has(checkout_spec, "--non-interactive"));
    CHECK(has(checkout_spec, "--no-auth-cache"));
    CHECK(has(checkout_spec, "--password-from-stdin"));
    CHECK(has(checkout_spec, "alice"));
    CHECK(has(checkout_spec, "41"));  // -r 41
    CHECK(checkout_spec.stdin_data == "s3cr3t pass\n");
    for (const auto& spec : runner.specs) {
      for (const auto& arg : spec.argv) CHECK(arg.find("s3cr3t") == std::string::npos);
      for (const auto& [name, value] : spec.env) CHECK(value.find("s3cr3t") == std::string::npos);
      // Its own configuration: ~/.subversion is never read.
      const auto config = std::find(spec.argv.begin(), spec.argv.end(), "--config-dir");
      REQUIRE(config != spec.argv.end());
      CHECK(fs::path(*(config + 1)).parent_path().parent_path() == dir.path());
    }
    // The URL comes after "--": a URL can never be read as an option.
    const auto dashes = std::find(checkout_spec.argv.begin(), checkout_spec.argv.end(), "--");
    REQUIRE(dashes != checkout_spec.argv.end());
    CHECK(*(dashes + 1) == source.url);
  }

  TEST_CASE("a later fetch of the same URL reverts, cleans and updates the working copy") {
    test::TempDir dir;
    test::RecordingProcessRunner runner;
    runner.behaviour = [](const ProcessSpec& spec, ProcessOutcome&) {
      if (subcommand(spec) == "checkout") fs::create_directories(fs::path(spec.argv.back()) / ".svn");
      if (subcommand(spec) == "info" && spec.on_line) spec.on_line("7");
    };
    SvnFetcher fetcher(runner);
    const SourceSpec source("svn://host/repo");
    REQUIRE_OK(fetcher.fetch(source, dir.path(), {}));
    runner.specs.clear();
    auto again = fetcher.fetch(source, dir.path(), {});
    REQUIRE_OK(again);
    CHECK(again->reused);
    std::vector<std::string> steps;
    for (const auto& spec : runner.specs) steps.push_back(subcommand(spec));
    CHECK(steps == std::vector<std::string>{"revert", "cleanup", "update", "info"});
    CHECK(has(runner.specs[1], "--remove-unversioned"));
    CHECK(has(runner.specs[1], "--remove-ignored"));
    CHECK_FALSE(has(runner.specs[0], "--password-from-stdin"));  // no credentials given, none asked for
  }

  TEST_CASE("failures say which step failed and why; bad URLs and revisions run nothing") {
    test::TempDir dir;
    test::RecordingProcessRunner runner;
    runner.behaviour = [](const ProcessSpec&, ProcessOutcome& outcome) {
      outcome.exit_code = 1;
      outcome.output_tail = "svn: E170013: Unable to connect to a repository at URL 'svn://nowhere/repo'\n";
    };
    SvnFetcher fetcher(runner);
    auto failed = fetcher.fetch(SourceSpec("svn://nowhere/repo"), dir.path(), {});
    REQUIRE_FALSE(failed.ok());
    CHECK(failed.error().message ==
          "svn checkout of svn://nowhere/repo failed: svn: E170013: Unable to connect to a repository at URL "
          "'svn://nowhere/repo'");
    runner.specs.clear();
    CHECK_FALSE(fetcher.fetch(SourceSpec("--config-option=x"), dir.path(), {}).ok());
    CHECK(fetcher.fetch(SourceSpec("svn://h/r", std::nullopt, std::string("HEAD; rm -rf /")), dir.path(), {})
              .error()
              .message.find("not a revision number") != std::string::npos);
    CHECK(runner.specs.empty());
  }
}
