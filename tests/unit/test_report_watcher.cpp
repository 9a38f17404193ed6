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
    for (const auto& file : seen.snapshot()) CHECK(file.filename() != "notes.txt");
    // After stop(), nothing more is reported.
    const auto before = seen.snapshot().size();
    write(dir / "reports" / "TEST-b.xml", "<testsuite/>");
    CHECK(seen.snapshot().size() == before);
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

  TEST_CASE("folders outside the root are not watched for") {
    test::TempDir dir;
    fs::create_directories(dir / "root");
    Seen seen;
    ReportWatcher watcher({dir / "elsewhere" / "x.xml"}, dir / "root", [&](const fs::path& file) { seen.add(file); });
    watcher.stop();
    CHECK(seen.snapshot().empty());
  }
}
