#include "common/results_layout.hpp"

#include <array>
#include <cstdio>
#include <set>
#include <utility>

#include "common/json_bounded.hpp"
#include "common/text.hpp"

namespace proctor {

namespace {

constexpr std::array<std::pair<RecordStatus, const char*>, 8> kStatuses = {{
    {RecordStatus::success, "success"},
    {RecordStatus::failure, "failure"},
    {RecordStatus::warning, "warning"},
    {RecordStatus::error, "error"},
    {RecordStatus::timeout, "timeout"},
    {RecordStatus::terminated, "terminated"},
    {RecordStatus::in_process, "in_process"},
    {RecordStatus::registered, "registered"},
}};

bool is_lower(char c) { return c >= 'a' && c <= 'z'; }

bool is_testname_char(char c) {
  return is_lower(c) || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

// `name` turned into a valid testname: every other character (and run of them) becomes
// one '_', a leading capital is lowered, and a start that is not a letter gets "t_".
std::string base_testname(std::string_view name) {
  std::string out;
  out.reserve(name.size() + 2);
  for (const char c : name) {
    if (is_testname_char(c)) out.push_back(c);
    else if (out.empty() || out.back() != '_') out.push_back('_');
  }
  while (!out.empty() && out.back() == '_') out.pop_back();
  if (!out.empty() && out.front() >= 'A' && out.front() <= 'Z') out.front() = static_cast<char>(out.front() - 'A' + 'a');
  if (out.empty() || !is_lower(out.front())) out.insert(0, out.empty() || out.front() == '_' ? "t" : "t_");
  if (out.size() > kMaxTestnameBytes) out.resize(kMaxTestnameBytes);
  return out;
}

}  // namespace

const char* to_string(RecordStatus status) {
  for (const auto& [value, name] : kStatuses) {
    if (value == status) return name;
  }
  return "error";
}

std::optional<RecordStatus> parse_record_status(std::string_view text) {
  for (const auto& [value, name] : kStatuses) {
    if (text == name) return value;
  }
  return std::nullopt;
}

bool is_final(RecordStatus status) {
  return status != RecordStatus::in_process && status != RecordStatus::registered;
}

bool is_valid_testname(std::string_view name) {
  if (name.empty() || !is_lower(name.front())) return false;
  for (const char c : name) {
    if (!is_testname_char(c)) return false;
  }
  return true;
}

const std::string& TestnameMap::testname_for(std::string_view name) {
  if (const auto it = by_name_.find(name); it != by_name_.end()) return it->second;
  return by_name_.emplace(std::string(name), fresh_testname(name)).first->second;
}

std::string TestnameMap::fresh_testname(std::string_view name) {
  const std::string base = base_testname(name);
  std::string candidate = base;
  // Names that map alike ("a.b" and "a b") get -2, -3, ... in order of first sight.
  for (std::size_t n = 2; taken_.count(candidate) != 0; ++n) {
    const std::string suffix = "-" + std::to_string(n);
    candidate = base.substr(0, kMaxTestnameBytes - suffix.size()) + suffix;
  }
  taken_.insert(candidate);
  return candidate;
}

namespace {

using nlohmann::json;

// The links of `value` (a list of {url, name}); a problem for anything else.
std::vector<LayoutLink> read_links(const json& value, const std::string& where, std::vector<std::string>& problems) {
  std::vector<LayoutLink> links;
  if (!value.is_array()) {
    problems.push_back(where + ": links is not a list; ignored");
    return links;
  }
  for (const auto& entry : value) {
    const auto url = entry.is_object() ? entry.find("url") : entry.end();
    const auto name = entry.is_object() ? entry.find("name") : entry.end();
    if (!entry.is_object() || url == entry.end() || !url->is_string() ||
        (name != entry.end() && !name->is_string())) {
      problems.push_back(where + ": a link is not an object with a string url (and name); it is ignored");
      continue;
    }
    links.push_back({url->get<std::string>(), name != entry.end() ? name->get<std::string>() : std::string()});
  }
  return links;
}

// One record of test_records, or nullopt with a problem describing why it is left out.
std::optional<LayoutRecord> read_record(const json& entry, std::size_t index, std::vector<std::string>& problems) {
  const std::string where = "test_records[" + std::to_string(index) + "]";
  if (!entry.is_object()) {
    problems.push_back(where + " is not an object; it is left out");
    return std::nullopt;
  }
  const auto testname = entry.find("testname");
  if (testname == entry.end() || !testname->is_string()) {
    problems.push_back(where + " has no testname (a string); it is left out");
    return std::nullopt;
  }
  LayoutRecord record;
  record.testname = testname->get<std::string>();
  const std::string named = where + " '" + make_valid_utf8(record.testname) + "'";
  if (!is_valid_testname(record.testname)) {
    problems.push_back(named +
                       ": the testname must start with a lower-case letter and hold only letters, digits, _ and -; "
                       "the record is left out");
    return std::nullopt;
  }
  const auto status = entry.find("status");
  if (status == entry.end() || !status->is_string()) {
    problems.push_back(named + " has no status (a string); it is left out");
    return std::nullopt;
  }
  const auto parsed = parse_record_status(status->get<std::string>());
  if (!parsed) {
    problems.push_back(named + ": the status '" + make_valid_utf8(status->get<std::string>()) +
                       "' is not one of success, failure, warning, error, timeout, terminated, in_process, "
                       "registered; the record is left out");
    return std::nullopt;
  }
  record.status = *parsed;
  if (const auto title = entry.find("title"); title != entry.end()) {
    if (title->is_string()) record.title = title->get<std::string>();
    else problems.push_back(named + ": title is not a string; ignored");
  }
  if (const auto input = entry.find("test_input"); input != entry.end()) record.test_input = *input;
  if (const auto links = entry.find("links"); links != entry.end()) record.links = read_links(*links, named, problems);
  return record;
}

}  // namespace

std::string to_tests_json(const TestsJson& tests) {
  // Ordered, so that fields come in the seed's order (testname, title, status, ...).
  using ordered = nlohmann::ordered_json;
  const auto links = [](const std::vector<LayoutLink>& list) {
    ordered out = ordered::array();
    for (const auto& link : list) out.push_back({{"url", make_valid_utf8(link.url)}, {"name", make_valid_utf8(link.name)}});
    return out;
  };
  ordered suite = ordered::object();
  suite["status"] = tests.suite_status ? to_string(*tests.suite_status) : "";
  suite["links"] = links(tests.suite_links);
  ordered records = ordered::array();
  for (const auto& record : tests.records) {
    ordered entry = ordered::object();
    entry["testname"] = record.testname;
    if (record.title) entry["title"] = make_valid_utf8(*record.title);
    entry["status"] = to_string(record.status);
    if (record.test_input) {
      entry["test_input"] = ordered::parse(record.test_input->dump(-1, ' ', false, json::error_handler_t::replace));
    }
    entry["links"] = links(record.links);
    records.push_back(std::move(entry));
  }
  ordered out = ordered::object();
  out["test_suite"] = std::move(suite);
  out["test_records"] = std::move(records);
  return out.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
}

Result<ParsedTestsJson> parse_tests_json(std::string_view text) {
  const json document = parse_json_bounded(text);
  if (document.is_discarded()) {
    return make_error("tests.json is not valid JSON (yet), or nests more than " + std::to_string(kMaxJsonNesting) +
                      " levels deep");
  }
  if (!document.is_object()) return make_error("tests.json is not a JSON object");
  ParsedTestsJson parsed;
  if (const auto suite = document.find("test_suite"); suite != document.end()) {
    if (!suite->is_object()) {
      parsed.problems.push_back("test_suite is not an object; ignored");
    } else {
      if (const auto status = suite->find("status"); status != suite->end()) {
        const std::string text_status = status->is_string() ? status->get<std::string>() : std::string("?");
        if (status->is_string() && text_status.empty()) {
          // "" is the seed's way of saying "not set".
        } else if (const auto value = parse_record_status(text_status); value && is_final(*value)) {
          parsed.tests.suite_status = value;
        } else {
          parsed.problems.push_back("test_suite.status '" + make_valid_utf8(status->is_string() ? text_status : status->dump()) +
                                    "' is not a final status (success, failure, warning, error, timeout, "
                                    "terminated); ignored");
        }
      }
      if (const auto links = suite->find("links"); links != suite->end()) {
        parsed.tests.suite_links = read_links(*links, "test_suite", parsed.problems);
      }
    }
  }
  const auto records = document.find("test_records");
  if (records == document.end()) return parsed;
  if (!records->is_array()) return make_error("tests.json's test_records is not a list");
  std::set<std::string, std::less<>> seen;
  for (std::size_t i = 0; i < records->size(); ++i) {
    auto record = read_record((*records)[i], i, parsed.problems);
    if (!record) continue;
    if (!seen.insert(record->testname).second) {
      parsed.problems.push_back("test_records[" + std::to_string(i) + "] '" + record->testname +
                                "' repeats a testname already listed; the repeat is left out");
      continue;
    }
    parsed.tests.records.push_back(std::move(*record));
  }
  return parsed;
}

namespace {

RecordStatus record_status_of(CaseStatus status) {
  switch (status) {
    case CaseStatus::passed: return RecordStatus::success;
    case CaseStatus::failed: return RecordStatus::failure;
    case CaseStatus::errored: return RecordStatus::error;
    case CaseStatus::skipped: return RecordStatus::warning;
  }
  return RecordStatus::error;
}

void append_outcome(std::string& log, const CaseOutcome& outcome) {
  log += "== " + outcome.kind;
  if (!outcome.type.empty()) log += " (" + outcome.type + ")";
  if (!outcome.message.empty()) log += ": " + outcome.message;
  log += "\n";
  if (!outcome.text.empty()) {
    log += outcome.text;
    if (outcome.text.back() != '\n') log += "\n";
  }
}

json outcome_json(const CaseOutcome& outcome) {
  return {{"kind", outcome.kind}, {"type", outcome.type}, {"message", outcome.message}};
}

}  // namespace

CaseRecordContent case_record(const TestSuite& suite, const TestCase& test_case) {
  CaseRecordContent record;
  record.name = test_case.classname.empty() ? test_case.name : test_case.classname + "." + test_case.name;
  record.status = record_status_of(test_case.status);

  record.summary = std::string(to_string(test_case.status)) + " in " + three_decimals(test_case.time) + " s";
  if (const CaseOutcome* worst = worst_outcome(test_case)) {
    const std::string& why = worst->message.empty() ? worst->type : worst->message;
    if (!why.empty()) {
      const std::string first_line = why.substr(0, why.find('\n'));
      record.summary += ": " + (worst->type.empty() || worst->type == why ? first_line : worst->type + ": " + first_line);
    }
  }
  if (!test_case.reruns.empty()) record.summary += " (" + std::to_string(test_case.reruns.size()) + " rerun(s))";
  record.summary += "\n";

  json output = json::object();
  output["suite"] = suite.name;
  output["classname"] = test_case.classname;
  output["name"] = test_case.name;
  output["result"] = to_string(test_case.status);
  output["time"] = test_case.time;
  if (!test_case.file.empty()) output["file"] = test_case.file;
  if (test_case.line) output["line"] = *test_case.line;
  json outcomes = json::array();
  for (const auto& outcome : test_case.outcomes) outcomes.push_back(outcome_json(outcome));
  output["outcomes"] = std::move(outcomes);
  json reruns = json::array();
  for (const auto& rerun : test_case.reruns) reruns.push_back(outcome_json(rerun));
  output["reruns"] = std::move(reruns);
  record.output = std::move(output);

  for (const auto& outcome : test_case.outcomes) append_outcome(record.log, outcome);
  for (const auto& rerun : test_case.reruns) append_outcome(record.log, rerun);
  for (const auto& [title, text] : {std::pair{"== system-out\n", &test_case.system_out},
                                     std::pair{"== system-err\n", &test_case.system_err}}) {
    if (text->empty()) continue;
    record.log += title;
    record.log += *text;
    if (text->back() != '\n') record.log += "\n";
  }
  if (!test_case.properties.empty()) {
    json input = json::object();
    for (const auto& [key, value] : test_case.properties) input[key] = value;
    record.test_input = std::move(input);
  }
  return record;
}

}  // namespace proctor
