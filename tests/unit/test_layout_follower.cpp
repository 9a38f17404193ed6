// LayoutFollower: what `runner listen` publishes of a results layout, scan by scan, read
// through an in-memory LayoutReader.

#include <map>
#include <set>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "common/layout_follower.hpp"

using namespace proctor;
using nlohmann::ordered_json;

namespace {

// An in-memory layout: files by relative path, each write a new stamp; every path the
// follower touches is recorded.
class FakeLayout : public LayoutReader {
 public:
  struct File {
    std::string content;
    std::int64_t version = 0;
    bool settled = true;
  };

  void write(const std::string& path, const std::string& content, bool settled = true) {
    files[path] = File{content, ++version_, settled};
  }
  void append(const std::string& path, const std::string& text) {
    auto& file = files[path];
    file.content += text;
    file.version = ++version_;
  }
  // Changes the content without changing the stamp, as a same-size rewrite within one
  // clock tick does.
  void rewrite_same_stamp(const std::string& path, const std::string& content) {
    REQUIRE(files.at(path).content.size() == content.size());
    files.at(path).content = content;
  }

  Result<std::optional<FileStamp>> stamp(const std::string& path) override {
    touched.push_back(path);
    if (refused.count(path) != 0) return make_error(path + " is refused");
    const auto it = files.find(path);
    if (it == files.end()) return std::optional<FileStamp>();
    return std::optional<FileStamp>(
        FileStamp{it->second.content.size(), it->second.version, 1, it->second.settled});
  }
  Result<std::optional<std::string>> read_small(const std::string& path,
                                                std::size_t limit) override {
    touched.push_back(path);
    if (refused.count(path) != 0) return make_error(path + " is refused");
    const auto it = files.find(path);
    if (it == files.end()) return std::optional<std::string>();
    return std::optional<std::string>(it->second.content.substr(0, limit + 1));
  }
  Result<std::optional<std::string>> read_range(const std::string& path, std::uint64_t offset,
                                                std::size_t max) override {
    touched.push_back(path);
    if (refused.count(path) != 0) return make_error(path + " is refused");
    const auto it = files.find(path);
    if (it == files.end()) return std::optional<std::string>();
    if (offset >= it->second.content.size()) return std::optional<std::string>(std::string());
    return std::optional<std::string>(it->second.content.substr(offset, max));
  }

  std::map<std::string, File> files;
  std::set<std::string> refused;
  std::vector<std::string> touched;

 private:
  std::int64_t version_ = 0;
};

std::string tests_json(const std::string& records, const std::string& suite_status = "") {
  return R"({"test_suite": {"status": ")" + suite_status + R"(", "links": []}, "test_records": [)" +
         records + "]}";
}

std::string record(const std::string& testname, const std::string& status) {
  return R"({"testname": ")" + testname + R"(", "status": ")" + status + R"("})";
}

std::vector<std::string> kinds(const LayoutChanges& changes) {
  std::vector<std::string> out;
  for (const auto& change : changes) out.push_back(change["change"].get<std::string>());
  return out;
}

}  // namespace

TEST_SUITE("layout_follower") {
  TEST_CASE("a record's life: new, whole log lines only, summary, then its status change") {
    FakeLayout layout;
    LayoutFollower follower(layout);
    CHECK(follower.scan().empty());  // nothing there yet

    layout.write("tests.json",
                 tests_json(R"({"testname": "t1", "title": "First", "status": "in_process",
                                             "test_input": {"n": 1}, "links": [{"url": "u", "name": "n"}]})"));
    auto changes = follower.scan();
    REQUIRE(changes.size() == 1);
    CHECK(
        to_change_line(changes[0]) ==
        R"({"change":"record","testname":"t1","status":"in_process","title":"First","test_input":{"n":1},)"
        R"("links":[{"url":"u","name":"n"}]})");
    CHECK(follower.scan().empty());  // nothing new: nothing published twice

    layout.write("t1/log.txt", "one\ntwo\npar");
    changes = follower.scan();
    REQUIRE(changes.size() == 1);
    CHECK(to_change_line(changes[0]) ==
          R"({"change":"log","testname":"t1","offset":0,"bytes":8,"text":"one\ntwo\n"})");
    CHECK(follower.scan().empty());  // the partial line waits

    layout.append("t1/log.txt", "tial\nthr");
    changes = follower.scan();
    REQUIRE(changes.size() == 1);
    CHECK(changes[0]["offset"] == 8);
    CHECK(changes[0]["text"] == "partial\n");

    layout.write("t1/summary.txt", "all good");
    layout.write("tests.json",
                 tests_json(R"({"testname": "t1", "title": "First", "status": "success",
                                             "test_input": {"n": 1}, "links": [{"url": "u", "name": "n"}]})"));
    changes = follower.scan();
    // Files before the status: a record's files are complete before it turns final, and
    // the line that will never get its end goes out with them.
    CHECK(kinds(changes) == std::vector<std::string>{"log", "summary", "status"});
    CHECK(to_change_line(changes[0]) ==
          R"({"change":"log","testname":"t1","offset":16,"bytes":3,"text":"thr"})");
    CHECK(to_change_line(changes[1]) ==
          R"({"change":"summary","testname":"t1","text":"all good"})");
    CHECK(to_change_line(changes[2]) ==
          R"({"change":"status","testname":"t1","from":"in_process","to":"success"})");
    CHECK(follower.final_scan().empty());
  }

  TEST_CASE(
      "a half-written tests.json changes nothing until it parses; at the end it is a problem") {
    FakeLayout layout;
    LayoutFollower follower(layout);
    const std::string whole = tests_json(record("t1", "registered"));
    layout.write("tests.json", whole.substr(0, whole.size() / 2));
    CHECK(follower.scan().empty());
    CHECK(follower.scan().empty());

    layout.write("tests.json", whole);
    auto changes = follower.scan();
    CHECK(kinds(changes) == std::vector<std::string>{"record"});

    // Half written again (in place): the records known so far stay as they are.
    layout.write("tests.json", whole.substr(0, 10));
    CHECK(follower.scan().empty());
    changes = follower.final_scan();
    REQUIRE(changes.size() == 1);
    CHECK(changes[0]["change"] == "problem");
    CHECK_FALSE(changes[0].contains("testname"));
    CHECK(changes[0]["message"].get<std::string>().find("tests.json") != std::string::npos);
    CHECK(follower.testnames() == std::vector<std::string>{"t1"});
  }

  TEST_CASE("no tests.json at all is a problem at the end only") {
    FakeLayout layout;
    LayoutFollower follower(layout);
    CHECK(follower.scan().empty());
    const auto changes = follower.final_scan();
    REQUIRE(changes.size() == 1);
    CHECK(changes[0]["change"] == "problem");
  }

  TEST_CASE(
      "bad testnames, bad statuses and duplicates are reported once each, the rest published") {
    FakeLayout layout;
    LayoutFollower follower(layout);
    layout.write("tests.json",
                 tests_json(record("good", "in_process") + "," + record("Bad Name", "success") +
                            "," + record("odd", "passed") + "," + record("good", "success")));
    auto changes = follower.scan();
    CHECK(kinds(changes) == std::vector<std::string>{"problem", "problem", "problem", "record"});
    CHECK(changes[0]["message"].get<std::string>().find("Bad Name") != std::string::npos);
    CHECK(changes[1]["message"].get<std::string>().find("passed") != std::string::npos);
    CHECK(changes[2]["message"].get<std::string>().find("repeats") != std::string::npos);
    CHECK(changes[3]["testname"] == "good");
    CHECK(changes[3]["status"] == "in_process");  // the first of the duplicates wins

    // Rewritten with the same bad records and one more good one: no problem repeated.
    layout.write("tests.json",
                 tests_json(record("good", "in_process") + "," + record("Bad Name", "success") +
                            "," + record("odd", "passed") + "," + record("good", "success") + "," +
                            record("other", "registered")));
    changes = follower.scan();
    CHECK(kinds(changes) == std::vector<std::string>{"record"});
    CHECK(changes[0]["testname"] == "other");
    CHECK(follower.final_scan().empty());
  }

  TEST_CASE("a path-traversal testname is a problem and nothing outside is ever read") {
    FakeLayout layout;
    LayoutFollower follower(layout);
    layout.write("../evil/log.txt", "secret\n");
    layout.write("../evil/summary.txt", "secret");
    layout.write(
        "tests.json",
        tests_json(record("../evil", "success") + "," + record("ok", "success"), "success"));
    auto changes = follower.scan();
    CHECK(kinds(changes) == std::vector<std::string>{"problem", "record", "suite"});
    CHECK(changes[0]["message"].get<std::string>().find("../evil") != std::string::npos);
    changes = follower.final_scan();
    CHECK(changes.empty());
    for (const auto& path : layout.touched) {
      CHECK_MESSAGE(path.find("evil") == std::string::npos, path);
      CHECK_MESSAGE(path.find("..") == std::string::npos, path);
    }
  }

  TEST_CASE("a log that shrinks is a problem and is published again from its start") {
    FakeLayout layout;
    LayoutFollower follower(layout);
    layout.write("tests.json", tests_json(record("t1", "in_process")));
    layout.write("t1/log.txt", "first line\nsecond line\n");
    auto changes = follower.scan();
    REQUIRE(kinds(changes) == std::vector<std::string>{"record", "log"});

    layout.write("t1/log.txt", "new\n");
    changes = follower.scan();
    REQUIRE(kinds(changes) == std::vector<std::string>{"problem", "log"});
    CHECK(changes[0]["testname"] == "t1");
    CHECK(changes[0]["message"].get<std::string>().find("shrank") != std::string::npos);
    CHECK(to_change_line(changes[1]) ==
          R"({"change":"log","testname":"t1","offset":0,"bytes":4,"text":"new\n"})");

    layout.append("t1/log.txt", "more\n");
    changes = follower.scan();
    REQUIRE(changes.size() == 1);
    CHECK(changes[0]["offset"] == 4);
    CHECK(changes[0]["text"] == "more\n");
  }

  TEST_CASE(
      "summary.txt is published each time its content changes (override), not when only "
      "rewritten") {
    FakeLayout layout;
    LayoutFollower follower(layout);
    layout.write("tests.json", tests_json(record("t1", "in_process")));
    layout.write("t1/summary.txt", "3 passed");
    auto changes = follower.scan();
    REQUIRE(kinds(changes) == std::vector<std::string>{"record", "summary"});
    CHECK(changes[1]["text"] == "3 passed");

    layout.write("t1/summary.txt", "2 passed, 1 failed");
    changes = follower.scan();
    REQUIRE(changes.size() == 1);
    CHECK(to_change_line(changes[0]) ==
          R"({"change":"summary","testname":"t1","text":"2 passed, 1 failed"})");

    layout.write("t1/summary.txt", "2 passed, 1 failed");  // same content, new stamp
    CHECK(follower.scan().empty());
  }

  TEST_CASE("a rewrite that keeps the stamp is still seen while the stamp is not settled") {
    FakeLayout layout;
    LayoutFollower follower(layout);
    layout.write("tests.json", tests_json(record("t1", "in_process")));
    layout.write("t1/summary.txt", "AAAA", /*settled=*/false);
    CHECK(kinds(follower.scan()) == std::vector<std::string>{"record", "summary"});

    layout.rewrite_same_stamp("t1/summary.txt", "BBBB");
    auto changes = follower.scan();
    REQUIRE(changes.size() == 1);
    CHECK(changes[0]["text"] == "BBBB");

    // Once the file is settled its stamp is trusted: no re-read, no change.
    layout.files.at("t1/summary.txt").settled = true;
    CHECK(follower.scan().empty());
    const auto reads_before = layout.touched.size();
    CHECK(follower.scan().empty());
    int summary_reads = 0;
    for (std::size_t i = reads_before; i < layout.touched.size(); ++i)
      summary_reads += layout.touched[i] == "t1/summary.txt";
    CHECK(summary_reads == 1);  // stamped, not read
  }

  TEST_CASE(
      "output.json waits while it is not valid JSON, is published once valid, a problem at the "
      "end") {
    FakeLayout layout;
    LayoutFollower follower(layout);
    layout.write("tests.json",
                 tests_json(record("t1", "in_process") + "," + record("t2", "in_process")));
    layout.write("t1/output.json", R"({"answer": 4)");
    CHECK(kinds(follower.scan()) == std::vector<std::string>{"record", "record"});
    CHECK(follower.scan().empty());

    layout.write("t1/output.json", R"({"answer": 42})");
    auto changes = follower.scan();
    REQUIRE(changes.size() == 1);
    CHECK(to_change_line(changes[0]) ==
          R"({"change":"output","testname":"t1","output":{"answer":42}})");

    layout.write("t1/output.json", R"({"answer": 43})");  // override
    changes = follower.scan();
    REQUIRE(changes.size() == 1);
    CHECK(changes[0]["output"]["answer"] == 43);

    layout.write("t2/output.json", "{not json");
    CHECK(follower.scan().empty());
    changes = follower.final_scan();
    REQUIRE(changes.size() == 1);
    CHECK(changes[0]["change"] == "problem");
    CHECK(changes[0]["testname"] == "t2");
    CHECK(follower.final_scan().empty());  // reported once
  }

  TEST_CASE("finished only when test_suite.status is set and every record is final") {
    FakeLayout layout;
    LayoutFollower follower(layout);
    layout.write("tests.json",
                 tests_json(record("t1", "success") + "," + record("t2", "in_process")));
    (void)follower.scan();
    CHECK_FALSE(follower.finished());  // no suite status

    layout.write("tests.json",
                 tests_json(record("t1", "success") + "," + record("t2", "in_process"), "failure"));
    auto changes = follower.scan();
    REQUIRE(changes.size() == 1);
    CHECK(to_change_line(changes[0]) == R"({"change":"suite","status":"failure","links":[]})");
    CHECK_FALSE(follower.finished());  // t2 still runs

    layout.write("tests.json",
                 tests_json(record("t1", "success") + "," + record("t2", "timeout"), "failure"));
    changes = follower.scan();
    CHECK(kinds(changes) == std::vector<std::string>{"status"});
    CHECK(follower.finished());
  }

  TEST_CASE("title, test_input and links changes; a record no longer listed") {
    FakeLayout layout;
    LayoutFollower follower(layout);
    layout.write("tests.json",
                 tests_json(record("t1", "in_process") + "," + record("t2", "registered")));
    (void)follower.scan();
    layout.write(
        "tests.json",
        tests_json(
            R"({"testname": "t1", "status": "in_process", "title": "Renamed", "test_input": [1]})"));
    auto changes = follower.scan();
    REQUIRE(kinds(changes) == std::vector<std::string>{"problem", "record_info"});
    CHECK(changes[0]["testname"] == "t2");
    CHECK(
        to_change_line(changes[1]) ==
        R"({"change":"record_info","testname":"t1","title":"Renamed","test_input":[1],"links":[]})");
    CHECK(follower.testnames() == std::vector<std::string>{"t1"});

    // The unlisted record no longer holds the suite back.
    layout.write("tests.json",
                 tests_json(R"({"testname": "t1", "status": "success", "title": "Renamed",
                                             "test_input": [1]})",
                            "success"));
    (void)follower.scan();
    CHECK(follower.finished());
  }

  TEST_CASE(
      "log reads are bounded per scan and continue on the next; long lines go out in pieces") {
    FakeLayout layout;
    FollowerLimits limits;
    limits.log_read_bytes = 8;
    LayoutFollower follower(layout, limits);
    layout.write("tests.json", tests_json(record("t1", "in_process")));
    layout.write("t1/log.txt", "abc\ndef\nghi\njkl\n");
    auto changes = follower.scan();
    REQUIRE(kinds(changes) == std::vector<std::string>{"record", "log"});
    CHECK(changes[1]["text"] == "abc\ndef\n");
    CHECK(follower.behind());
    changes = follower.scan();
    REQUIRE(changes.size() == 1);
    CHECK(changes[0]["offset"] == 8);
    CHECK(changes[0]["text"] == "ghi\njkl\n");
    CHECK_FALSE(follower.behind());

    layout.append("t1/log.txt", "0123456789abc");  // a line longer than a read, not ended
    changes = follower.scan();
    REQUIRE(changes.size() == 1);
    CHECK(changes[0]["text"] == "01234567");
    changes = follower.final_scan();  // reads to the end, flushes the rest
    REQUIRE(changes.size() == 1);
    CHECK(changes[0]["offset"] == 24);
    CHECK(changes[0]["text"] == "89abc");
  }

  TEST_CASE("a record that turns final gets its partial last log line at once, before its status") {
    FakeLayout layout;
    FollowerLimits limits;
    limits.log_read_bytes = 4;
    LayoutFollower follower(layout, limits);
    layout.write("tests.json", tests_json(record("t1", "in_process")));
    layout.write("t1/log.txt", "one\ntw");
    auto changes = follower.scan();
    REQUIRE(kinds(changes) == std::vector<std::string>{"record", "log"});
    CHECK(changes[1]["text"] == "one\n");
    CHECK(follower.scan().empty());  // in process: the partial line waits for its end

    layout.append("t1/log.txt", "o");
    layout.write("tests.json", tests_json(record("t1", "failure")));
    changes = follower.scan();
    REQUIRE(kinds(changes) == std::vector<std::string>{"log", "status"});
    CHECK(to_change_line(changes[0]) ==
          R"({"change":"log","testname":"t1","offset":4,"bytes":3,"text":"two"})");
    CHECK(changes[1]["to"] == "failure");
    CHECK(follower.scan().empty());
    CHECK(follower.final_scan().empty());  // nothing left for the last look

    // Seen final at once, with a log longer than a read: its partial last line goes out
    // once the log is read to its end, not a piece cut at the read limit.
    layout.write("t2/log.txt", "ab\ncdefgh");
    layout.write("tests.json", tests_json(record("t1", "failure") + "," + record("t2", "success")));
    changes = follower.scan();
    REQUIRE(kinds(changes) == std::vector<std::string>{"record", "log"});
    CHECK(changes[1]["text"] == "ab\n");
    CHECK(follower.behind());
    changes = follower.scan();
    REQUIRE(kinds(changes) == std::vector<std::string>{"log"});
    CHECK(changes[0]["text"] == "cdef");  // a piece: the line is longer than a read
    changes = follower.scan();
    REQUIRE(kinds(changes) == std::vector<std::string>{"log"});
    CHECK(changes[0]["offset"] == 7);
    CHECK(changes[0]["text"] == "gh");
    CHECK_FALSE(follower.behind());
    CHECK(follower.final_scan().empty());
  }

  TEST_CASE(
      "log text is made valid UTF-8; a refused file and an oversized summary are reported once") {
    FakeLayout layout;
    FollowerLimits limits;
    limits.small_file_bytes = 4;
    LayoutFollower follower(layout, limits);
    layout.write("tests.json", tests_json(record("t1", "in_process")));
    layout.write("t1/log.txt", "bad \xFF byte\n");
    layout.write("t1/summary.txt", "too long");
    layout.write("t1/output.json", "{}");
    layout.refused.insert("t1/output.json");
    auto changes = follower.scan();
    REQUIRE(kinds(changes) == std::vector<std::string>{"record", "log", "problem", "problem"});
    CHECK(changes[1]["text"] == "bad \xEF\xBF\xBD byte\n");
    CHECK(changes[1]["bytes"] == 11);  // the raw bytes: "text" has 13, with the replacement
    CHECK(changes[2]["message"].get<std::string>().find("summary.txt") != std::string::npos);
    CHECK(changes[3]["message"] == "t1/output.json is refused");
    layout.write("t1/summary.txt", "long!");
    CHECK(follower.scan().empty());
    layout.write("t1/summary.txt", "ok");
    changes = follower.scan();
    REQUIRE(changes.size() == 1);
    CHECK(changes[0]["text"] == "ok");
  }
}
