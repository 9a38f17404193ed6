// The file-system side of `runner listen`: DirectoryReader on a real folder (symlinks
// and FIFOs refused) and the listen loop's ends (suite finished, stop fd, wrapper gone).

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "agent/layout_listener.hpp"
#include "require_ok.hpp"
#include "temp_dir.hpp"

using namespace proctor;
using nlohmann::ordered_json;
namespace fs = std::filesystem;

namespace {

void write_file(const fs::path& path, const std::string& content) {
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << content;
}

// Runs the loop to its end; the lines it emitted.
std::vector<ordered_json> listen(const ListenLoopOptions& options, ListenEnd expected) {
  std::vector<ordered_json> lines;
  const auto ended =
      listen_layout(options, [&](const ordered_json& line) { lines.push_back(line); });
  REQUIRE_OK(ended);
  CHECK(*ended == expected);
  REQUIRE_FALSE(lines.empty());
  CHECK(to_change_line(lines.back()) ==
        R"({"change":"end","reason":")" + std::string(end_reason(expected)) + R"("})");
  return lines;
}

std::vector<std::string> kinds(const std::vector<ordered_json>& lines) {
  std::vector<std::string> out;
  for (const auto& line : lines) out.push_back(line["change"].get<std::string>());
  return out;
}

const std::string kFinished = R"({"test_suite": {"status": "success"}, "test_records": [
  {"testname": "t1", "status": "success"}]})";

}  // namespace

TEST_SUITE("layout_listener") {
  TEST_CASE("DirectoryReader stamps and reads files below its folder") {
    test::TempDir dir;
    write_file(dir / "t1/log.txt", "0123456789");
    auto reader = DirectoryReader::open(dir.path());
    REQUIRE_OK(reader);

    const auto stamp = (*reader)->stamp("t1/log.txt");
    REQUIRE_OK(stamp);
    REQUIRE(stamp->has_value());
    CHECK((*stamp)->size == 10);
    CHECK_FALSE((*stamp)->settled);  // just written

    const auto range = (*reader)->read_range("t1/log.txt", 3, 4);
    REQUIRE_OK(range);
    CHECK(range->value() == "3456");
    const auto past_end = (*reader)->read_range("t1/log.txt", 20, 4);
    REQUIRE_OK(past_end);
    CHECK(past_end->value().empty());
    const auto small = (*reader)->read_small("t1/log.txt", 4);
    REQUIRE_OK(small);
    CHECK(small->value() == "01234");  // limit + 1: the caller sees it is too large

    const auto missing = (*reader)->stamp("t2/log.txt");
    REQUIRE_OK(missing);
    CHECK_FALSE(missing->has_value());
    CHECK_FALSE((*reader)->stamp("../t1/log.txt").ok());

    CHECK_FALSE(DirectoryReader::open(dir / "nope").ok());
  }

  TEST_CASE("DirectoryReader refuses symlinks that could lead outside, and FIFOs") {
    test::TempDir outside;
    test::TempDir dir;
    write_file(outside / "secret/log.txt", "secret\n");
    fs::create_directory_symlink(outside / "secret", dir / "linked");
    write_file(dir / "t1/log.txt", "mine\n");
    fs::create_symlink(outside / "secret/log.txt", dir / "t2-log");
    fs::create_directories(dir / "t2");
    fs::create_symlink(outside / "secret/log.txt", dir / "t2/log.txt");
    fs::create_directories(dir / "t3");
    REQUIRE(::mkfifo((dir / "t3/log.txt").c_str(), 0600) == 0);
    auto reader = DirectoryReader::open(dir.path());
    REQUIRE_OK(reader);

    const auto through_folder = (*reader)->read_range("linked/log.txt", 0, 100);
    REQUIRE_FALSE(through_folder.ok());
    CHECK(through_folder.error().message.find("symlink") != std::string::npos);
    const auto linked_file = (*reader)->stamp("t2/log.txt");
    REQUIRE_FALSE(linked_file.ok());
    CHECK(linked_file.error().message.find("symlink") != std::string::npos);
    const auto fifo = (*reader)->read_small("t3/log.txt", 100);  // must not block
    REQUIRE_FALSE(fifo.ok());
    CHECK(fifo.error().message.find("not a regular file") != std::string::npos);
    const auto own = (*reader)->read_small("t1/log.txt", 100);
    REQUIRE_OK(own);
    CHECK(own->value() == "mine\n");
  }

  TEST_CASE("a finished layout is published whole and ends with 'suite finished'") {
    test::TempDir dir;
    write_file(dir / "t1/log.txt", "line 1\nno end");
    write_file(dir / "t1/summary.txt", "fine");
    write_file(dir / "tests.json", kFinished);
    ListenLoopOptions options;
    options.dir = dir.path();
    const auto lines = listen(options, ListenEnd::suite_finished);
    // The record is final: its partial last line goes out with its files.
    CHECK(kinds(lines) ==
          std::vector<std::string>{"record", "log", "log", "summary", "suite", "end"});
    CHECK(to_change_line(lines[1]) ==
          R"({"change":"log","testname":"t1","offset":0,"bytes":7,"text":"line 1\n"})");
    CHECK(to_change_line(lines[2]) ==
          R"({"change":"log","testname":"t1","offset":7,"bytes":6,"text":"no end"})");
  }

  TEST_CASE("a symlinked record folder leading outside is a problem; nothing of it is published") {
    test::TempDir outside;
    test::TempDir dir;
    write_file(outside / "t1/log.txt", "secret\n");
    fs::create_directory_symlink(outside / "t1", dir / "t1");
    write_file(dir / "tests.json", kFinished);
    ListenLoopOptions options;
    options.dir = dir.path();
    const auto lines = listen(options, ListenEnd::suite_finished);
    CHECK(kinds(lines) == std::vector<std::string>{"record", "problem", "suite", "end"});
    CHECK(lines[1]["testname"] == "t1");
    CHECK(lines[1]["message"].get<std::string>().find("symlink") != std::string::npos);
    for (const auto& line : lines) CHECK(to_change_line(line).find("secret") == std::string::npos);
  }

  TEST_CASE("a readable stop fd ends the loop after a last look") {
    test::TempDir dir;
    write_file(dir / "tests.json",
               R"({"test_records": [{"testname": "t1", "status": "in_process"}]})");
    write_file(dir / "t1/log.txt", "partial");
    int pipe_fds[2];
    REQUIRE(::pipe(pipe_fds) == 0);
    REQUIRE(::write(pipe_fds[1], "x", 1) == 1);
    ListenLoopOptions options;
    options.dir = dir.path();
    options.stop_fd = pipe_fds[0];
    const auto lines = listen(options, ListenEnd::signal);
    ::close(pipe_fds[0]);
    ::close(pipe_fds[1]);
    CHECK(kinds(lines) == std::vector<std::string>{"record", "log", "end"});
    CHECK(lines[1]["text"] == "partial");
  }

  TEST_CASE("a wrapper process that has ended ends the loop") {
    test::TempDir dir;
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) ::_exit(0);
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    ListenLoopOptions options;
    options.dir = dir.path();
    options.wrapper_pid = child;
    const auto lines = listen(options, ListenEnd::wrapper_ended);
    CHECK(kinds(lines) == std::vector<std::string>{"problem", "end"});  // no tests.json ever came
  }
}
