#include "common/layout_follower.hpp"

#include <algorithm>
#include <utility>

#include "common/json_bounded.hpp"
#include "common/text.hpp"

namespace proctor {

namespace {

using nlohmann::ordered_json;

// Same file, same content as far as a stamp can tell (`settled` is about trust, not identity).
bool same_stamp(const FileStamp& a, const FileStamp& b) {
  return a.size == b.size && a.mtime_ns == b.mtime_ns && a.inode == b.inode;
}

ordered_json links_json(const std::vector<LayoutLink>& links) {
  ordered_json out = ordered_json::array();
  for (const auto& link : links) {
    out.push_back({{"url", make_valid_utf8(link.url)}, {"name", make_valid_utf8(link.name)}});
  }
  return out;
}

// The record's title, test_input and links into `line`; links only when `always_links`
// or there are some.
void add_info(ordered_json& line, const LayoutRecord& record, bool always_links) {
  if (record.title) line["title"] = make_valid_utf8(*record.title);
  if (record.test_input) line["test_input"] = ordered_json(*record.test_input);
  if (always_links || !record.links.empty()) line["links"] = links_json(record.links);
}

bool same_info(const LayoutRecord& a, const LayoutRecord& b) {
  return a.title == b.title && a.test_input == b.test_input && a.links == b.links;
}

// How many leading bytes of `text` (at most `limit`) end on a UTF-8 character boundary,
// so that a long line cut in pieces never splits a character.
std::size_t utf8_cut(const std::string& text, std::size_t limit) {
  const std::size_t cut = std::min(limit, text.size());
  const auto continuation = [&](std::size_t i) {
    return (static_cast<unsigned char>(text[i]) & 0xC0U) == 0x80U;
  };
  if (cut == text.size()) return cut;
  std::size_t back = cut;
  for (int i = 0; i < 3 && back > 0 && continuation(back); ++i) --back;
  return back > 0 && !continuation(back) ? back : cut;  // not UTF-8 anyway: cut where asked
}

}  // namespace

LayoutFollower::LayoutFollower(LayoutReader& reader, FollowerLimits limits)
    : reader_(reader), limits_(limits) {}

LayoutChanges LayoutFollower::scan() {
  return scan(false);
}

LayoutChanges LayoutFollower::final_scan() {
  return scan(true);
}

bool LayoutFollower::finished() const {
  if (!suite_status_) return false;
  return std::all_of(records_.begin(), records_.end(), [](const auto& entry) {
    return !entry.second.listed || is_final(entry.second.record.status);
  });
}

std::vector<std::string> LayoutFollower::testnames() const {
  std::vector<std::string> names;
  for (const auto& name : order_) {
    if (records_.at(name).listed) names.push_back(name);
  }
  return names;
}

LayoutChanges LayoutFollower::scan(bool final) {
  behind_ = false;
  LayoutChanges out;
  const std::optional<TestsJson> tests = read_tests_json(final, out);
  if (!tests) {
    // tests.json unchanged (or not readable yet): the records already known still move.
    for (const auto& name : order_) {
      auto& followed = records_.at(name);
      if (followed.listed)
        follow_files(followed, final, is_final(followed.record.status), out);
    }
    return out;
  }
  for (auto& [name, followed] : records_) {
    const bool listed =
        std::any_of(tests->records.begin(), tests->records.end(),
                    // `name` by reference explicitly: clang 14 cannot capture a structured binding.
                    [&record_name = name](const LayoutRecord& record) { return record.testname == record_name; });
    if (followed.listed && !listed) {
      problem(name,
              "the record '" + name +
                  "' is no longer listed in tests.json; its files are no longer followed",
              out);
    }
    followed.listed = listed;
  }
  for (const auto& record : tests->records) apply_record(record, final, out);
  if (tests->suite_status != suite_status_ || tests->suite_links != suite_links_) {
    suite_status_ = tests->suite_status;
    suite_links_ = tests->suite_links;
    out.push_back({{"change", "suite"},
                   {"status", suite_status_ ? to_string(*suite_status_) : ""},
                   {"links", links_json(suite_links_)}});
  }
  return out;
}

std::optional<TestsJson> LayoutFollower::read_tests_json(bool final, LayoutChanges& out) {
  const std::string path = "tests.json";
  std::optional<std::string> text =
      read_if_changed(path, tests_json_, limits_.tests_json_bytes, final, "", out);
  if (!text) {
    if (final && !tests_json_parsed_ && !tests_json_.stamp) {
      problem_once("", "the results folder has no tests.json; nothing was listed", out);
    }
    return std::nullopt;
  }
  auto parsed = parse_tests_json(*text);
  if (!parsed) {
    // Most likely half written: the writer's next write brings a new stamp and a new read.
    if (final)
      problem_once("",
                   "tests.json still does not parse at the end (" + parsed.error().message +
                       "); its last version is not published",
                   out);
    return std::nullopt;
  }
  tests_json_.published = std::move(*text);
  tests_json_parsed_ = true;
  for (const auto& problem : parsed->problems) problem_once("", problem, out);
  return std::move(parsed->tests);
}

void LayoutFollower::apply_record(const LayoutRecord& record, bool final, LayoutChanges& out) {
  auto found = records_.find(record.testname);
  if (found == records_.end()) {
    ordered_json line = {
        {"change", "record"}, {"testname", record.testname}, {"status", to_string(record.status)}};
    add_info(line, record, false);
    out.push_back(std::move(line));
    order_.push_back(record.testname);
    FollowedRecord followed;
    followed.record = record;
    auto& added = records_.emplace(record.testname, std::move(followed)).first->second;
    follow_files(added, final, is_final(record.status), out);
    return;
  }
  FollowedRecord& followed = found->second;
  if (!same_info(followed.record, record)) {
    ordered_json line = {{"change", "record_info"}, {"testname", record.testname}};
    add_info(line, record, true);
    out.push_back(std::move(line));
    followed.record.title = record.title;
    followed.record.test_input = record.test_input;
    followed.record.links = record.links;
  }
  // Files before the status: a record's files are complete before it turns final.
  follow_files(followed, final, is_final(record.status), out);
  if (followed.record.status != record.status) {
    out.push_back({{"change", "status"},
                   {"testname", record.testname},
                   {"from", to_string(followed.record.status)},
                   {"to", to_string(record.status)}});
    followed.record.status = record.status;
  }
}

void LayoutFollower::follow_files(FollowedRecord& followed, bool final, bool finished,
                                  LayoutChanges& out) {
  // Only ever called for a testname that passed is_valid_testname: no '/', no "..".
  const std::string& name = followed.record.testname;
  follow_log(followed, final, finished, out);
  if (auto summary = read_if_changed(name + "/summary.txt", followed.summary,
                                     limits_.small_file_bytes, final, name, out)) {
    out.push_back({{"change", "summary"}, {"testname", name}, {"text", make_valid_utf8(*summary)}});
    followed.summary.published = std::move(*summary);
  }
  if (auto output = read_if_changed(name + "/output.json", followed.output,
                                    limits_.small_file_bytes, final, name, out)) {
    ordered_json value = parse_json_bounded<ordered_json>(*output);
    if (value.is_discarded()) {
      // Half written, most likely: wait for the next write, unless this is the last look.
      if (final) {
        problem_once(name,
                     "output.json of '" + name + "' is not valid JSON (of at most " +
                         std::to_string(kMaxJsonNesting) + " levels) at the end; it is not published",
                     out);
      }
      return;
    }
    out.push_back({{"change", "output"}, {"testname", name}, {"output", std::move(value)}});
    followed.output.published = std::move(*output);
  }
}

void LayoutFollower::follow_log(FollowedRecord& followed, bool final, bool finished,
                                LayoutChanges& out) {
  const std::string& name = followed.record.testname;
  const std::string path = name + "/log.txt";
  const auto stamp = reader_.stamp(path);
  if (!stamp) {
    problem_once(name, stamp.error().message, out);
    return;
  }
  bool at_end = true;  // everything log.txt held when stamped has been read
  if (*stamp) {
    const std::uint64_t size = (*stamp)->size;
    std::uint64_t read_offset = followed.log_offset + followed.log_partial.size();
    if (size < read_offset) {
      problem(name,
              "log.txt of '" + name + "' shrank from " + std::to_string(read_offset) + " to " +
                  std::to_string(size) + " bytes; it is published again from its start",
              out);
      followed.log_offset = 0;
      followed.log_partial.clear();
      read_offset = 0;
    }
    while (size > read_offset) {
      const auto want = static_cast<std::size_t>(
          std::min<std::uint64_t>(size - read_offset, limits_.log_read_bytes));
      const auto data = reader_.read_range(path, read_offset, want);
      if (!data) {
        problem_once(name, data.error().message, out);
        return;
      }
      if (!*data || (*data)->empty()) {
        at_end = false;  // replaced or cut since stamped: the next scan sees it
        break;
      }
      followed.log_partial += **data;
      read_offset += (*data)->size();
      if (const auto newline = followed.log_partial.rfind('\n'); newline != std::string::npos) {
        publish_log(followed, newline + 1, out);
      }
      // A line longer than a read goes out in pieces, so the partial line stays bounded.
      while (followed.log_partial.size() >= limits_.log_read_bytes) {
        publish_log(followed, utf8_cut(followed.log_partial, limits_.log_read_bytes), out);
      }
      if (!final && size > read_offset) {
        behind_ = true;
        at_end = false;
        break;
      }
    }
  }
  // The writer has finished with the record: its partial last line will get no end. Only
  // when read to the end, or the partial is the middle of a line still to be read.
  if ((final || (finished && at_end)) && !followed.log_partial.empty())
    publish_log(followed, followed.log_partial.size(), out);
}

void LayoutFollower::publish_log(FollowedRecord& followed, std::size_t bytes, LayoutChanges& out) {
  out.push_back(
      {{"change", "log"},
       {"testname", followed.record.testname},
       {"offset", followed.log_offset},
       {"bytes", bytes},
       {"text", make_valid_utf8(std::string_view(followed.log_partial).substr(0, bytes))}});
  followed.log_offset += bytes;
  followed.log_partial.erase(0, bytes);
}

std::optional<std::string> LayoutFollower::read_if_changed(const std::string& path,
                                                           WatchedFile& file, std::size_t limit,
                                                           bool final, const std::string& testname,
                                                           LayoutChanges& out) {
  const auto stamp = reader_.stamp(path);
  if (!stamp) {
    problem_once(testname, stamp.error().message, out);
    return std::nullopt;
  }
  if (!*stamp) return std::nullopt;
  // An unchanged, settled stamp means unchanged content; the last look reads anyway.
  if (!final && file.stamp && file.stamp->settled && same_stamp(*file.stamp, **stamp))
    return std::nullopt;
  auto data = reader_.read_small(path, limit);
  if (!data) {
    problem_once(testname, data.error().message, out);
    return std::nullopt;
  }
  if (!*data) return std::nullopt;
  file.stamp = **stamp;
  if ((*data)->size() > limit) {
    problem_once(testname,
                 path + " is larger than " + std::to_string(limit) +
                     " bytes; it is not read until it is smaller",
                 out);
    return std::nullopt;
  }
  if (file.published == **data) return std::nullopt;
  return std::move(**data);
}

void LayoutFollower::problem(const std::string& testname, const std::string& message,
                             LayoutChanges& out) {
  ordered_json line = {{"change", "problem"}};
  if (!testname.empty()) line["testname"] = testname;
  line["message"] = make_valid_utf8(message);
  out.push_back(std::move(line));
}

void LayoutFollower::problem_once(const std::string& testname, const std::string& message,
                                  LayoutChanges& out) {
  if (!reported_.insert(testname + '\n' + message).second) return;
  problem(testname, message, out);
}

std::string to_change_line(const nlohmann::ordered_json& change) {
  return change.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

}  // namespace proctor
