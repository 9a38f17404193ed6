// The report watcher: real inotify on a real folder. Each test waits for the callback
// it expects (a condition variable), never for time to pass.

#include <condition_variable>
#include <fstream>
#include <mutex>
#include <set>

#include <doctest/doctest.h>

#include "agent/report_watcher.hpp"
#include "tests/unit/temp_dir.hpp"

using namespace proctor;
namespace fs = std::filesystem;

namespace {

// Collects the files the watcher reports.
struct Seen {
  void add(const fs::path& file) {
    {
      std::lock_guard lock(mutex);
      files.push_back(file);
    }
    changed.notify_all();
  }
  bool wait_for(const fs::path& file) {
    std::unique_lock lock(mutex);
    return changed.wait_for(lock, std::chrono::seconds(20),
                            [&] { return std::find(files.begin(), files.end(), file) != files.end(); });
  }
  std::vector<fs::path> snapshot() {
    std::lock_guard lock(mutex);
    return files;
  }
  std::mutex mutex;
  std::condition_variable changed;
  std::vector<fs::path> files;
};

void write(const fs::path& path, const std::string& text) { std::ofstream(path) << text; }

}  // namespace

TEST_SUITE("report_watcher") {
  TEST_CASE("a matching file is reported when it is closed or moved into place; others are not") {
    test::TempDir dir;
    fs::create_directories(dir / "reports");
    Seen seen;
    ReportWatcher watcher({dir / "reports" / "TEST-*.xml", dir / "reports" / "junit.xml"}, dir.path(),
                          [&](const fs::path& file) { seen.add(file); });
    REQUIRE(watcher.watching());
    write(dir / "reports" / "notes.txt", "x");
    write(dir / "reports" / "TEST-a.xml", "<testsuite/>");
    CHECK(seen.wait_for(dir / "reports" / "TEST-a.xml"));
    write(dir / "staged.xml", "<testsuite/>");
    fs::rename(dir / "staged.xml", dir / "reports" / "junit.xml");
    CHECK(seen.wait_for(dir / "reports" / "junit.xml"));
    watcher.stop();
    // A witness that watches everything: once it has seen the later files, the stopped
    // watcher would have seen them too had it not stopped.
    Seen witnessed;
    ReportWatcher witness({dir / "reports" / "*"}, dir.path(), [&](const fs::path& file) { witnessed.add(file); });
    write(dir / "reports" / "notes2.txt", "x");
    write(dir / "reports" / "TEST-b.xml", "<testsuite/>");
    CHECK(witnessed.wait_for(dir / "reports" / "TEST-b.xml"));
    CHECK(witnessed.wait_for(dir / "reports" / "notes2.txt"));
    for (const auto& file : seen.snapshot()) {
      CHECK(file.filename() != "notes.txt");   // not a match
      CHECK(file.filename() != "TEST-b.xml");  // after stop()
    }
  }

  TEST_CASE("a report folder wiped and made again is watched again") {
    test::TempDir dir;
    fs::create_directories(dir / "target" / "reports");
    Seen seen;
    ReportWatcher watcher({dir / "target" / "reports" / "*.xml"}, dir.path(), [&](const fs::path& file) { seen.add(file); });
    write(dir / "target" / "reports" / "first.xml", "<testsuite/>");
    CHECK(seen.wait_for(dir / "target" / "reports" / "first.xml"));
    fs::remove_all(dir / "target");  // "mvn clean"
    fs::create_directories(dir / "target" / "reports");
    write(dir / "target" / "reports" / "second.xml", "<testsuite/>");
    CHECK(seen.wait_for(dir / "target" / "reports" / "second.xml"));
  }

  TEST_CASE("a report folder made while the service runs is found, with the files already in it") {
    test::TempDir dir;
    Seen seen;
    ReportWatcher watcher({dir / "target" / "surefire-reports" / "TEST-*.xml"}, dir.path(),
                          [&](const fs::path& file) { seen.add(file); });
    // Made in one go, with a file inside before any watch on the new folders could exist.
    fs::create_directories(dir / "target" / "surefire-reports");
    write(dir / "target" / "surefire-reports" / "TEST-first.xml", "<testsuite/>");
    CHECK(seen.wait_for(dir / "target" / "surefire-reports" / "TEST-first.xml"));
    write(dir / "target" / "surefire-reports" / "TEST-second.xml", "<testsuite/>");
    CHECK(seen.wait_for(dir / "target" / "surefire-reports" / "TEST-second.xml"));
  }

  TEST_CASE("folders outside the root are not waited for") {
    test::TempDir dir;
    fs::create_directories(dir / "root");
    Seen seen;
    ReportWatcher watcher({dir / "elsewhere" / "x.xml"}, dir / "root", [&](const fs::path& file) { seen.add(file); });
    Seen witnessed;
    ReportWatcher witness({dir / "elsewhere" / "x.xml"}, dir.path(), [&](const fs::path& file) { witnessed.add(file); });
    fs::create_directories(dir / "elsewhere");
    write(dir / "elsewhere" / "x.xml", "<testsuite/>");
    CHECK(witnessed.wait_for(dir / "elsewhere" / "x.xml"));  // found from inside its root
    watcher.stop();
    CHECK(seen.snapshot().empty());  // not from outside
  }
}
