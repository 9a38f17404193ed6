#pragma once
// LayoutFollower: the pure logic of `runner listen DIR` (SPEC §6). It reads a results
// layout that someone else writes through a small LayoutReader (the real one, on the
// file system, is in agent/layout_listener; tests use an in-memory one) and turns what
// changed since the last scan() into change lines: new records, status and info changes,
// whole-line log deltas, summary and output rewrites, the suite's status, and problems.
// A log line carries "bytes", the raw byte count of its piece of log.txt ("text" is that
// piece made valid UTF-8, so its length may differ), for a consumer computing byte spans.
// No I/O of its own, no threads, no clock.

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/result.hpp"
#include "common/results_layout.hpp"

namespace proctor {

// What a file looked like when stamped: a different stamp means it may have changed.
struct FileStamp {
  std::uint64_t size = 0;
  std::int64_t mtime_ns = 0;
  std::uint64_t inode = 0;
  // False when the file was modified so recently that a rewrite of the same size could
  // still keep this stamp (file times are coarse): such a file is read again next scan.
  bool settled = true;

  friend bool operator==(const FileStamp&, const FileStamp&) = default;
};

// Reads files below the layout's folder by relative paths ("tests.json", "t1/log.txt").
// Each call: nullopt when the file is not there (yet), an error when it is refused (a
// symlink, not a regular file, unreadable) with a sentence saying so.
class LayoutReader {
 public:
  virtual ~LayoutReader() = default;

  // The file's stamp.
  virtual Result<std::optional<FileStamp>> stamp(const std::string& relative_path) = 0;

  // The whole file, or its first limit + 1 bytes when it is larger than `limit`.
  virtual Result<std::optional<std::string>> read_small(const std::string& relative_path,
                                                        std::size_t limit) = 0;

  // Up to `max` bytes from `offset` ("" at or past the end).
  virtual Result<std::optional<std::string>> read_range(const std::string& relative_path,
                                                        std::uint64_t offset, std::size_t max) = 0;
};

// How much the follower reads at most.
struct FollowerLimits {
  std::size_t tests_json_bytes = 16U << 20U;  // a larger tests.json is a problem
  std::size_t small_file_bytes = 1U << 20U;   // summary.txt, output.json; larger is a problem
  std::size_t log_read_bytes = 1U << 20U;     // per record and scan; the rest comes next scan
};

// The change lines of one scan, in order.
using LayoutChanges = std::vector<nlohmann::ordered_json>;

class LayoutFollower {
 public:
  // Follows the layout `reader` reads (kept by reference: it must outlive the follower).
  explicit LayoutFollower(LayoutReader& reader, FollowerLimits limits = {});

  // The changes since the last scan, one JSON object each in the shapes of `runner
  // listen`'s output ({"change":"record",...}). A tests.json that does not parse yet
  // (half written) changes nothing; a record's files are published before its status, and
  // a record that turns final gets its partial last log line published before its status.
  LayoutChanges scan();

  // One last scan that reads every file whatever its stamp, reads logs to their end,
  // publishes partial last lines and reports what never became valid as problems.
  LayoutChanges final_scan();

  // True when test_suite.status is set and every listed record is final.
  [[nodiscard]] bool finished() const;

  // True when a log was read only up to the per-scan limit: scan again soon.
  [[nodiscard]] bool behind() const { return behind_; }

  // The testnames tests.json lists, in order (their folders are worth watching).
  [[nodiscard]] std::vector<std::string> testnames() const;

 private:
  struct WatchedFile {
    std::optional<FileStamp> stamp;        // when last read
    std::optional<std::string> published;  // the content last published (or parsed)
  };
  struct FollowedRecord {
    LayoutRecord record;  // as last published
    bool listed = true;
    WatchedFile summary;
    WatchedFile output;
    std::uint64_t log_offset = 0;  // bytes of log.txt published
    std::string log_partial;       // bytes read after log_offset: a line not ended yet
  };

  LayoutChanges scan(bool final);
  std::optional<TestsJson> read_tests_json(bool final, LayoutChanges& out);
  void apply_record(const LayoutRecord& record, bool final, LayoutChanges& out);
  // `finished`: the record is final, so the writer is done with its log.
  void follow_files(FollowedRecord& followed, bool final, bool finished, LayoutChanges& out);
  void follow_log(FollowedRecord& followed, bool final, bool finished, LayoutChanges& out);
  void publish_log(FollowedRecord& followed, std::size_t bytes, LayoutChanges& out);
  std::optional<std::string> read_if_changed(const std::string& path, WatchedFile& file,
                                             std::size_t limit, bool final,
                                             const std::string& testname, LayoutChanges& out);
  void problem(const std::string& testname, const std::string& message, LayoutChanges& out);
  void problem_once(const std::string& testname, const std::string& message, LayoutChanges& out);

  LayoutReader& reader_;
  FollowerLimits limits_;
  WatchedFile tests_json_;
  bool tests_json_parsed_ = false;
  std::optional<RecordStatus> suite_status_;
  std::vector<LayoutLink> suite_links_;
  std::vector<std::string> order_;  // testnames in order of first sight
  std::map<std::string, FollowedRecord, std::less<>> records_;
  std::set<std::string, std::less<>> reported_;  // problems already published
  bool behind_ = false;
};

// The change line's text: compact JSON, no newline.
std::string to_change_line(const nlohmann::ordered_json& change);

}  // namespace proctor
