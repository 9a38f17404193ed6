#include "common/results_layout.hpp"

#include <array>
#include <utility>

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
  const std::string base = base_testname(name);
  std::string candidate = base;
  // Names that map alike ("a.b" and "a b") get -2, -3, ... in order of first sight.
  for (std::size_t n = 2; taken_.count(candidate) != 0; ++n) {
    const std::string suffix = "-" + std::to_string(n);
    candidate = base.substr(0, kMaxTestnameBytes - suffix.size()) + suffix;
  }
  taken_.insert(candidate);
  return by_name_.emplace(std::string(name), std::move(candidate)).first->second;
}

}  // namespace proctor
