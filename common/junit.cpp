#include "common/junit.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>

#include <nlohmann/json.hpp>
#include <pugixml.hpp>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "common/text.hpp"

namespace proctor {

namespace {

// pugixml's defaults (entities and character references decoded, CDATA kept as text,
// line ends and attribute white space normalised as XML says) plus embedded text: a
// lone text child lives in its element instead of costing a node. No PI, comment,
// declaration or DOCTYPE nodes are built; a DOCTYPE is skipped whole, so its entities
// are never expanded and an external one is never fetched.
constexpr unsigned kParseOptions = pugi::parse_cdata | pugi::parse_escapes | pugi::parse_eol |
                                   pugi::parse_wconv_attribute | pugi::parse_embed_pcdata;

// Deeper nesting than this is hostile input, not a report; the reader and the model's
// destructor recurse per level.
constexpr int kMaxSuiteDepth = 256;

constexpr std::string_view kNotJunit = "not a JUnit XML report: ";

// The document's bytes while pugixml parses them in place: an anonymous mapping, so that
// pages can be handed back to the kernel. The reader walks the tree in document order and
// pugixml keeps every string inside its own node's span, so everything before the node
// being read is dead: releasing it as the model grows keeps the peak near one copy of
// the document plus the tree, instead of two copies.
class DocumentBuffer {
 public:
  explicit DocumentBuffer(std::size_t capacity) { reserve(capacity); }
  DocumentBuffer(const DocumentBuffer&) = delete;
  DocumentBuffer& operator=(const DocumentBuffer&) = delete;
  ~DocumentBuffer() {
    if (data_ != nullptr) ::munmap(data_, mapped_);
  }

  [[nodiscard]] char* data() const { return data_; }
  [[nodiscard]] std::size_t capacity() const { return capacity_; }

  // Grows the room to at least `capacity` bytes (plus one spare), keeping the contents.
  void reserve(std::size_t capacity) {
    const std::size_t page = page_size();
    const std::size_t wanted = (capacity + 1 + page - 1) / page * page;
    if (wanted <= mapped_) return;
    void* p = data_ == nullptr
                  ? ::mmap(nullptr, wanted, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0)
                  : ::mremap(data_, mapped_, wanted, MREMAP_MAYMOVE);
    if (p == MAP_FAILED) throw std::bad_alloc();
    data_ = static_cast<char*>(p);
    mapped_ = wanted;
    capacity_ = wanted - 1;
  }

  // Hands back the whole pages before `p`; the caller never reads there again. Cheap to
  // call per node: the kernel is only asked once a few MiB are dead.
  void release_before(const char* p) {
    if (!holds(p)) return;  // a string pugixml converted into a buffer of its own
    const std::size_t end = static_cast<std::size_t>(p - data_) / kReleaseStep * kReleaseStep;
    if (end <= released_) return;
    ::madvise(data_ + released_, end - released_, MADV_DONTNEED);
    released_ = end;
  }

  // True when `p` points into this buffer.
  [[nodiscard]] bool holds(const char* p) const {
    const auto address = reinterpret_cast<std::uintptr_t>(p);      // NOLINT(cppcoreguidelines-pro-type-reinterpret-cast)
    const auto start = reinterpret_cast<std::uintptr_t>(data_);    // NOLINT(cppcoreguidelines-pro-type-reinterpret-cast)
    return address >= start && address < start + mapped_;
  }

  // Hands back every page (pugixml converted the text to a buffer of its own).
  void release_all() {
    if (mapped_ > released_) ::madvise(data_ + released_, mapped_ - released_, MADV_DONTNEED);
    released_ = mapped_;
  }

 private:
  static constexpr std::size_t kReleaseStep = 2 * 1024 * 1024;
  static std::size_t page_size() { return static_cast<std::size_t>(::sysconf(_SC_PAGESIZE)); }

  char* data_ = nullptr;
  std::size_t mapped_ = 0;
  std::size_t capacity_ = 0;
  std::size_t released_ = 0;
};

// Length of the valid UTF-8 sequence at s[0..n), or 0 when it is not one (overlong
// forms, surrogates and code points past U+10FFFF are invalid, as make_valid_utf8 says).
std::size_t sequence_length(const unsigned char* s, std::size_t n) {
  const unsigned c = s[0];
  std::size_t len = 0;
  unsigned lo = 0x80;
  unsigned hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    if (c == 0xE0) lo = 0xA0;        // overlong
    else if (c == 0xED) hi = 0x9F;   // surrogates
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    if (c == 0xF0) lo = 0x90;        // overlong
    else if (c == 0xF4) hi = 0x8F;   // past U+10FFFF
  } else {
    return 0;
  }
  if (len > n || s[1] < lo || s[1] > hi) return 0;
  for (std::size_t k = 2; k < len; ++k) {
    if ((s[k] & 0xC0U) != 0x80U) return 0;
  }
  return len;
}

// Length of the all-ASCII prefix of s[0..n), 16 bytes at a time where SSE2 is there.
std::size_t ascii_prefix(const unsigned char* s, std::size_t n) {
  std::size_t i = 0;
#ifdef __SSE2__
  for (; i + 16 <= n; i += 16) {
    const __m128i block = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i));  // NOLINT
    if (_mm_movemask_epi8(block) != 0) break;
  }
#endif
  for (; i + 8 <= n; i += 8) {
    std::uint64_t word = 0;
    std::memcpy(&word, s + i, 8);
    if ((word & 0x8080808080808080ULL) != 0) break;
  }
  while (i < n && s[i] < 0x80) ++i;
  return i;
}

// True when s[0..n) is valid UTF-8 (the common all-ASCII case costs one fast scan).
bool is_valid_utf8(const char* text, std::size_t n) {
  const auto* s = reinterpret_cast<const unsigned char*>(text);  // NOLINT(cppcoreguidelines-pro-type-reinterpret-cast)
  std::size_t i = 0;
  while (true) {
    i += ascii_prefix(s + i, n - i);
    if (i == n) return true;
    const std::size_t len = sequence_length(s + i, n - i);
    if (len == 0) return false;
    i += len;
  }
}

// Appends a pugixml string as valid UTF-8: copied as is when valid (pugixml strings hold
// no NUL), repaired by make_valid_utf8 otherwise.
void append_utf8(std::string& out, const char* s) {
  const std::size_t n = std::strlen(s);
  if (n == 0) return;
  if (is_valid_utf8(s, n)) {
    out.append(s, n);
  } else {
    out += make_valid_utf8(std::string_view(s, n));
  }
}

std::string utf8(const char* s) {
  std::string out;
  append_utf8(out, s);
  return out;
}

// Names are compared often (every attribute and child); the first byte settles most.
bool is(const char* name, const char* expected) {
  return name[0] == expected[0] && std::strcmp(name, expected) == 0;
}

// A duration in seconds; nullopt when unreadable or negative.
std::optional<double> read_seconds(const char* value) {
  auto seconds = parse_decimal(value);
  if (seconds && *seconds < 0) return std::nullopt;
  return seconds;
}

// A line attribute: a whole number (surrounding blanks allowed), else nullopt.
std::optional<int64_t> read_line(const char* value) {
  const std::string_view text = trim(value);
  int64_t line = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), line);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return line;
}

// The text of an element: its embedded text and every direct text or CDATA child, in order.
std::string element_text(pugi::xml_node node) {
  std::string out;
  append_utf8(out, node.value());  // the embedded text (parse_embed_pcdata)
  for (pugi::xml_node child = node.first_child(); child; child = child.next_sibling()) {
    const auto type = child.type();
    if (type == pugi::node_pcdata || type == pugi::node_cdata) append_utf8(out, child.value());
  }
  return out;
}

// Appends a further <system-out>/<system-err> on its own line after what came before.
void append_output(std::string& into, pugi::xml_node node) {
  std::string text = element_text(node);
  if (text.empty()) return;
  if (into.empty()) {
    into = std::move(text);
    return;
  }
  if (into.back() != '\n') into.push_back('\n');
  into += text;
}

void read_properties(pugi::xml_node node, std::vector<Property>& out) {
  for (pugi::xml_node child = node.first_child(); child; child = child.next_sibling()) {
    if (child.type() != pugi::node_element || !is(child.name(), "property")) continue;
    Property property;
    bool has_value = false;
    for (pugi::xml_attribute a = child.first_attribute(); a; a = a.next_attribute()) {
      if (is(a.name(), "name")) {
        property.first = utf8(a.value());
      } else if (is(a.name(), "value")) {
        property.second = utf8(a.value());
        has_value = true;
      }
    }
    if (!has_value) property.second = element_text(child);
    out.push_back(std::move(property));
  }
}

// A labelled section appended to a rerun's text, so its description keeps the output.
void append_section(std::string& text, std::string_view label, const std::string& body) {
  if (body.empty()) return;
  if (!text.empty()) text += text.back() == '\n' ? "\n" : "\n\n";
  text += label;
  text += '\n';
  text += body;
}

// A <failure>/<error>/<skipped> or flaky*/rerun* element. Surefire nests the rerun's
// trace and output in <stackTrace>/<system-out>/<system-err>: they are kept in `text`.
CaseOutcome read_outcome(pugi::xml_node node, const char* kind) {
  CaseOutcome outcome;
  outcome.kind = kind;
  for (pugi::xml_attribute a = node.first_attribute(); a; a = a.next_attribute()) {
    if (is(a.name(), "message")) outcome.message = utf8(a.value());
    else if (is(a.name(), "type")) outcome.type = utf8(a.value());
  }
  outcome.text = element_text(node);
  std::string out;
  std::string err;
  for (pugi::xml_node child = node.first_child(); child; child = child.next_sibling()) {
    if (child.type() != pugi::node_element) continue;
    const char* name = child.name();
    if (is(name, "stackTrace")) {
      std::string trace = element_text(child);
      if (!trace.empty() && !outcome.text.empty() && outcome.text.back() != '\n') outcome.text += '\n';
      outcome.text += trace;
    } else if (is(name, "system-out")) {
      append_output(out, child);
    } else if (is(name, "system-err")) {
      append_output(err, child);
    }
  }
  append_section(outcome.text, "[system-out]", out);
  append_section(outcome.text, "[system-err]", err);
  return outcome;
}

// The element names that make a CaseOutcome; `rerun` ones do not change the status.
const char* outcome_kind(const char* name, bool& rerun) {
  static constexpr const char* kResults[] = {"failure", "error", "skipped"};
  static constexpr const char* kReruns[] = {"flakyFailure", "flakyError", "rerunFailure", "rerunError"};
  for (const char* kind : kResults) {
    if (is(name, kind)) {
      rerun = false;
      return kind;
    }
  }
  for (const char* kind : kReruns) {
    if (is(name, kind)) {
      rerun = true;
      return kind;
    }
  }
  return nullptr;
}

void read_case(pugi::xml_node node, TestCase& test_case) {
  bool skipped_by_attribute = false;
  for (pugi::xml_attribute a = node.first_attribute(); a; a = a.next_attribute()) {
    const char* name = a.name();
    const char* value = a.value();
    if (is(name, "name")) {
      test_case.name = utf8(value);
    } else if (is(name, "classname")) {
      test_case.classname = utf8(value);
    } else if (is(name, "time")) {
      test_case.time = read_seconds(value).value_or(0.0);
    } else if (is(name, "file")) {
      test_case.file = utf8(value);
    } else if (is(name, "line")) {
      test_case.line = read_line(value);
    } else if (is(name, "status")) {
      // gtest: notrun (DISABLED_); ctest: notrun (skip code) and disabled.
      skipped_by_attribute |= is(value, "notrun") || is(value, "disabled") || is(value, "skipped");
    } else if (is(name, "result")) {
      // gtest: skipped (GTEST_SKIP) and suppressed (DISABLED_, not run).
      skipped_by_attribute |= is(value, "skipped") || is(value, "suppressed");
    }
  }
  std::optional<CaseStatus> worst;
  for (pugi::xml_node child = node.first_child(); child; child = child.next_sibling()) {
    if (child.type() != pugi::node_element) continue;
    const char* name = child.name();
    bool rerun = false;
    if (const char* kind = outcome_kind(name, rerun)) {
      if (rerun) {
        test_case.reruns.push_back(read_outcome(child, kind));
      } else {
        test_case.outcomes.push_back(read_outcome(child, kind));
        const CaseStatus status = *outcome_status(test_case.outcomes.back());
        worst = worst ? worse_status(*worst, status) : status;
      }
    } else if (is(name, "system-out")) {
      append_output(test_case.system_out, child);
    } else if (is(name, "system-err")) {
      append_output(test_case.system_err, child);
    } else if (is(name, "properties")) {
      read_properties(child, test_case.properties);
    }
  }
  // Skipped is the least of all results, so any failure/error element outranks the attribute.
  test_case.status = worst.value_or(skipped_by_attribute ? CaseStatus::skipped : CaseStatus::passed);
}

bool is_suite_element(const char* name) { return is(name, "testsuite") || is(name, "testsuites"); }

// Reads a <testsuite> (or a <testsuites> treated as one) and everything under it, in
// document order, releasing the buffer behind each case once it is reached.
Result<void> read_suite(pugi::xml_node node, TestSuite& suite, int depth, DocumentBuffer& buffer) {
  if (depth > kMaxSuiteDepth) {
    return make_error(std::string(kNotJunit) + "its test suites are nested more than " +
                      std::to_string(kMaxSuiteDepth) + " levels deep");
  }
  for (pugi::xml_attribute a = node.first_attribute(); a; a = a.next_attribute()) {
    const char* name = a.name();
    if (is(name, "name")) suite.name = utf8(a.value());
    else if (is(name, "time")) suite.time = read_seconds(a.value());
    else if (is(name, "timestamp")) suite.timestamp = utf8(a.value());
    else if (is(name, "hostname")) suite.hostname = utf8(a.value());
    else if (is(name, "file")) suite.file = utf8(a.value());
  }
  std::size_t case_count = 0;
  std::size_t suite_count = 0;
  for (pugi::xml_node child = node.first_child(); child; child = child.next_sibling()) {
    if (child.type() != pugi::node_element) continue;
    if (is(child.name(), "testcase")) ++case_count;
    else if (is_suite_element(child.name())) ++suite_count;
  }
  suite.cases.reserve(case_count);
  suite.suites.reserve(suite_count);
  for (pugi::xml_node child = node.first_child(); child; child = child.next_sibling()) {
    if (child.type() != pugi::node_element) continue;
    const char* name = child.name();
    buffer.release_before(name);
    if (is(name, "testcase")) {
      read_case(child, suite.cases.emplace_back());
    } else if (is_suite_element(name)) {
      auto nested = read_suite(child, suite.suites.emplace_back(), depth + 1, buffer);
      if (!nested) return nested;
    } else if (is(name, "properties")) {
      read_properties(child, suite.properties);
    } else if (is(name, "system-out")) {
      append_output(suite.system_out, child);
    } else if (is(name, "system-err")) {
      append_output(suite.system_err, child);
    }
  }
  return {};
}

// The root element's name for an error message: valid UTF-8, one line, not too long.
std::string describe_root(const char* name) {
  constexpr std::size_t kMaxShown = 64;
  std::string shown = make_valid_utf8(name);
  if (shown.size() <= kMaxShown) return shown;
  std::size_t end = kMaxShown;
  while (end > 0 && (static_cast<unsigned char>(shown[end]) & 0xC0U) == 0x80U) --end;
  shown.resize(end);
  shown += "...";
  return shown;
}

// Parses the first `size` bytes of `buffer` in place (pugixml writes into them).
Result<Report> parse_in_place(DocumentBuffer& buffer, std::size_t size) {
  char* data = buffer.data();
  if (trim(std::string_view(data, size)).empty()) return make_error(std::string(kNotJunit) + "it is empty");
  pugi::xml_document document;
  const pugi::xml_parse_result parsed =
      document.load_buffer_inplace(data, size, kParseOptions, pugi::encoding_auto);
  if (parsed.status == pugi::status_no_document_element) {
    return make_error(std::string(kNotJunit) + "it has no XML element");
  }
  if (!parsed) {
    return make_error(std::string(kNotJunit) + "XML parse error at offset " +
                      std::to_string(parsed.offset) + ": " + parsed.description());
  }
  const pugi::xml_node root = document.document_element();
  const char* root_name = root.name();
  // A UTF-16 or Latin-1 document was converted into pugixml's own buffer: ours is dead.
  if (!buffer.holds(root_name)) buffer.release_all();
  Report report;
  if (is(root_name, "testsuites")) {
    TestSuite top;
    auto read = read_suite(root, top, 0, buffer);
    if (!read) return read.error();
    report.name = std::move(top.name);
    report.time = top.time;
    report.suites = std::move(top.suites);
    // Cases or output straight under <testsuites> are rare; keep them in a suite of their own.
    if (!top.cases.empty() || !top.properties.empty() || !top.system_out.empty() ||
        !top.system_err.empty()) {
      TestSuite loose;
      loose.name = report.name;
      loose.cases = std::move(top.cases);
      loose.properties = std::move(top.properties);
      loose.system_out = std::move(top.system_out);
      loose.system_err = std::move(top.system_err);
      report.suites.insert(report.suites.begin(), std::move(loose));
    }
  } else if (is(root_name, "testsuite")) {
    auto read = read_suite(root, report.suites.emplace_back(), 0, buffer);
    if (!read) return read.error();
  } else {
    return make_error(std::string(kNotJunit) + "the root element is <" + describe_root(root_name) +
                      ">, expected <testsuites> or <testsuite>");
  }
  if (!report.time && !report.suites.empty()) {
    double total = 0;
    bool all_timed = true;
    for (const auto& suite : report.suites) {
      if (!suite.time) {
        all_timed = false;
        break;
      }
      total += *suite.time;
    }
    if (all_timed) report.time = total;
  }
  return report;
}

// Closes a file descriptor on scope exit.
struct FdCloser {
  explicit FdCloser(int descriptor) : fd(descriptor) {}
  int fd;
  FdCloser(const FdCloser&) = delete;
  FdCloser& operator=(const FdCloser&) = delete;
  ~FdCloser() { ::close(fd); }
};

// Reads a whole file into `buffer`, returning its size; works for pipes and growing files.
Result<std::size_t> read_file(const std::filesystem::path& path, std::unique_ptr<DocumentBuffer>& buffer) {
  const auto fail = [&](int err) {
    return make_error("cannot read the JUnit XML report " + path.string() + ": " + std::strerror(err));
  };
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fail(errno);
  const FdCloser closer(fd);
  struct stat info {};
  std::size_t capacity = 64 * 1024;
  if (::fstat(fd, &info) == 0 && S_ISREG(info.st_mode) && info.st_size > 0) {
    capacity = static_cast<std::size_t>(info.st_size) + 1;  // +1: the last read sees EOF
  }
  buffer = std::make_unique<DocumentBuffer>(capacity);
  std::size_t size = 0;
  while (true) {
    if (size == buffer->capacity()) buffer->reserve(size * 2);
    const ssize_t n = ::read(fd, buffer->data() + size, buffer->capacity() - size);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail(errno);
    }
    if (n == 0) break;
    size += static_cast<std::size_t>(n);
  }
  return size;
}

nlohmann::json properties_json(const std::vector<Property>& properties) {
  nlohmann::json out = nlohmann::json::object();
  for (const auto& [name, value] : properties) out[name] = value;
  return out;
}

void put_if(nlohmann::json& object, const char* key, const std::string& value) {
  if (!value.empty()) object[key] = value;
}

nlohmann::json outcome_json(const CaseOutcome& outcome) {
  nlohmann::json out = {{"kind", outcome.kind}};
  put_if(out, "type", outcome.type);
  put_if(out, "message", outcome.message);
  put_if(out, "text", outcome.text);
  return out;
}

nlohmann::json case_json(const TestCase& test_case) {
  nlohmann::json out = {{"name", test_case.name},
                        {"time", test_case.time},
                        {"status", to_string(test_case.status)}};
  put_if(out, "classname", test_case.classname);
  put_if(out, "file", test_case.file);
  if (test_case.line) out["line"] = *test_case.line;
  if (const CaseOutcome* worst = worst_outcome(test_case)) {
    put_if(out, "message", worst->message);
    put_if(out, "type", worst->type);
    put_if(out, "text", worst->text);
  }
  if (!test_case.outcomes.empty()) {
    auto& outcomes = out["outcomes"] = nlohmann::json::array();
    for (const auto& outcome : test_case.outcomes) outcomes.push_back(outcome_json(outcome));
  }
  if (!test_case.reruns.empty()) {
    auto& reruns = out["reruns"] = nlohmann::json::array();
    for (const auto& rerun : test_case.reruns) reruns.push_back(outcome_json(rerun));
  }
  put_if(out, "system_out", test_case.system_out);
  put_if(out, "system_err", test_case.system_err);
  if (!test_case.properties.empty()) out["properties"] = properties_json(test_case.properties);
  return out;
}

nlohmann::json suite_json(const TestSuite& suite) {
  nlohmann::json out = {{"name", suite.name}};
  if (suite.time) out["time"] = *suite.time;
  put_if(out, "timestamp", suite.timestamp);
  put_if(out, "hostname", suite.hostname);
  put_if(out, "file", suite.file);
  if (!suite.properties.empty()) out["properties"] = properties_json(suite.properties);
  put_if(out, "system_out", suite.system_out);
  put_if(out, "system_err", suite.system_err);
  auto& cases = out["cases"] = nlohmann::json::array();
  for (const auto& test_case : suite.cases) cases.push_back(case_json(test_case));
  if (!suite.suites.empty()) {
    auto& suites = out["suites"] = nlohmann::json::array();
    for (const auto& child : suite.suites) suites.push_back(suite_json(child));
  }
  return out;
}

}  // namespace

Result<Report> parse_junit(std::string_view xml) {
  // One copy: pugixml parses in place and the caller's text must stay untouched.
  DocumentBuffer buffer(xml.size());
  if (!xml.empty()) std::memcpy(buffer.data(), xml.data(), xml.size());
  return parse_in_place(buffer, xml.size());
}

Result<Report> parse_junit_file(const std::filesystem::path& path) {
  std::unique_ptr<DocumentBuffer> buffer;
  auto size = read_file(path, buffer);
  if (!size) return size.error();
  auto report = parse_in_place(*buffer, *size);
  if (!report) return make_error(path.string() + ": " + report.error().message);
  return report;
}

nlohmann::json report_to_json(const Report& report) {
  nlohmann::json out = nlohmann::json::object();
  put_if(out, "name", report.name);
  if (report.time) out["time"] = *report.time;
  const ReportCounts counts = report.counts();
  out["counts"] = {{"total", counts.total},
                   {"passed", counts.passed},
                   {"failed", counts.failed},
                   {"errored", counts.errored},
                   {"skipped", counts.skipped}};
  auto& suites = out["suites"] = nlohmann::json::array();
  for (const auto& suite : report.suites) suites.push_back(suite_json(suite));
  return out;
}

}  // namespace proctor
