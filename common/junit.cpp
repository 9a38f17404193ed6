#include "common/junit.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdint>
#include <algorithm>
#include <cstring>
#include <functional>
#include <memory>
#include <new>

#include <nlohmann/json.hpp>
#include <pugixml.hpp>


#include "common/limits.hpp"
#include "common/parallel.hpp"
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

// Files from this size on are read, and cases from this count on are looked at, on two
// threads: below it a thread costs more than it saves.
constexpr std::size_t kParallelReadAt = 8 * 1024 * 1024;
constexpr std::size_t kParallelCasesAt = 8192;

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
    // Not populated: the pages are faulted in by whichever thread reads into them.
    void* p = data_ == nullptr
                  ? ::mmap(nullptr, wanted, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
                  : ::mremap(data_, mapped_, wanted, MREMAP_MAYMOVE);
    if (p == MAP_FAILED) throw std::bad_alloc();
    data_ = static_cast<char*>(p);
    mapped_ = wanted;
    capacity_ = wanted - 1;
  }

  // Faults in the pages of [first, last) at once (cheaper than one fault per page), where
  // the kernel can (Linux 5.14 on); a hint only.
  void populate(std::size_t first, std::size_t last) const {
#ifdef MADV_POPULATE_WRITE
    const std::size_t page = page_size();
    const std::size_t start = first / page * page;
    if (last > start) ::madvise(data_ + start, last - start, MADV_POPULATE_WRITE);
#else
    (void)first;
    (void)last;
#endif
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

// Appends a pugixml string as valid UTF-8 (valid runs copied whole, bad bytes replaced).
void append_utf8(std::string& out, const char* s) { append_valid_utf8(out, s); }

std::string utf8(const char* s) {
  std::string out;
  append_utf8(out, s);
  return out;
}

// Replaces `out` with a pugixml string, keeping its capacity (cases are read into one
// reused TestCase when streamed).
void assign_utf8(std::string& out, const char* s) {
  out.clear();
  append_utf8(out, s);
}

// Names are compared often (every attribute and child of every case): against a literal
// the comparison is inlined, byte by byte, and stops at the first difference (at worst
// at `name`'s terminator, which differs from the literal's letters).
template <std::size_t N>
bool is(const char* name, const char (&expected)[N]) {
  for (std::size_t i = 0; i < N; ++i) {
    if (name[i] != expected[i]) return false;
  }
  return true;
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

// Appends the text of an element: its embedded text and every direct text or CDATA
// child, in order.
void append_element_text(std::string& out, pugi::xml_node node) {
  append_utf8(out, node.value());  // the embedded text (parse_embed_pcdata)
  for (pugi::xml_node child = node.first_child(); child; child = child.next_sibling()) {
    const auto type = child.type();
    if (type == pugi::node_pcdata || type == pugi::node_cdata) append_utf8(out, child.value());
  }
}

std::string element_text(pugi::xml_node node) {
  std::string out;
  append_element_text(out, node);
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
void read_outcome(pugi::xml_node node, const char* kind, CaseOutcome& outcome) {
  outcome.kind = kind;
  for (pugi::xml_attribute a = node.first_attribute(); a; a = a.next_attribute()) {
    if (is(a.name(), "message")) assign_utf8(outcome.message, a.value());
    else if (is(a.name(), "type")) assign_utf8(outcome.type, a.value());
  }
  append_element_text(outcome.text, node);
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
}

// The outcome kind an element called `name` makes (a NUL-terminated literal), or null.
// outcome_status(kind) is the result it stands for: none for the flaky*/rerun* kinds.
const char* outcome_kind(const char* name) {
  static constexpr const char* kKinds[] = {"failure",    "error",        "skipped",   "flakyFailure",
                                           "flakyError", "rerunFailure", "rerunError"};
  for (const char* kind : kKinds) {
    if (std::strcmp(name, kind) == 0) return kind;
  }
  return nullptr;
}

// What the verdict needs of a case, read without its text: its result and its time.
struct CaseFacts {
  CaseStatus status = CaseStatus::passed;
  double time = 0;
};

// A case's result: the worst of its failure/error/skipped elements, else skipped when
// an attribute says it did not run, else passed. Its time: 0 when missing or unreadable.
CaseFacts read_case_facts(pugi::xml_node node) {
  CaseFacts facts;
  bool skipped_by_attribute = false;
  for (pugi::xml_attribute a = node.first_attribute(); a; a = a.next_attribute()) {
    const char* name = a.name();
    const char* value = a.value();
    if (is(name, "time")) {
      facts.time = read_seconds(value).value_or(0.0);
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
    const char* kind = outcome_kind(child.name());
    const auto status = kind != nullptr ? outcome_status(kind) : std::nullopt;
    if (!status) continue;  // not an outcome, or a rerun
    worst = worst ? worse_status(*worst, *status) : *status;
  }
  // Skipped is the least of all results, so any failure/error element outranks the attribute.
  facts.status = worst.value_or(skipped_by_attribute ? CaseStatus::skipped : CaseStatus::passed);
  return facts;
}

// Reads a case into `test_case`, replacing what it held but keeping its strings' memory.
void read_case(pugi::xml_node node, const CaseFacts& facts, TestCase& test_case) {
  test_case.status = facts.status;
  test_case.time = facts.time;
  test_case.name.clear();
  test_case.classname.clear();
  test_case.file.clear();
  test_case.line.reset();
  test_case.outcomes.clear();
  test_case.reruns.clear();
  test_case.system_out.clear();
  test_case.system_err.clear();
  test_case.properties.clear();
  for (pugi::xml_attribute a = node.first_attribute(); a; a = a.next_attribute()) {
    const char* name = a.name();
    if (is(name, "name")) assign_utf8(test_case.name, a.value());
    else if (is(name, "classname")) assign_utf8(test_case.classname, a.value());
    else if (is(name, "file")) assign_utf8(test_case.file, a.value());
    else if (is(name, "line")) test_case.line = read_line(a.value());
  }
  for (pugi::xml_node child = node.first_child(); child; child = child.next_sibling()) {
    if (child.type() != pugi::node_element) continue;
    const char* name = child.name();
    if (const char* kind = outcome_kind(name)) {
      read_outcome(child, kind, (outcome_status(kind) ? test_case.outcomes : test_case.reruns).emplace_back());
    } else if (is(name, "system-out")) {
      append_output(test_case.system_out, child);
    } else if (is(name, "system-err")) {
      append_output(test_case.system_err, child);
    } else if (is(name, "properties")) {
      read_properties(child, test_case.properties);
    }
  }
}

bool is_suite_element(const char* name) { return is(name, "testsuite") || is(name, "testsuites"); }

// The time attribute of a suite element, when readable.
std::optional<double> stated_time(pugi::xml_node node) {
  std::optional<double> time;
  for (pugi::xml_attribute a = node.first_attribute(); a; a = a.next_attribute()) {
    if (is(a.name(), "time")) time = read_seconds(a.value());
  }
  return time;
}

// A case element and its facts, found when the document is loaded.
struct CaseRef {
  pugi::xml_node node;
  CaseFacts facts;
};

// Reads a <testsuite> (or a <testsuites> treated as one) and everything under it, in
// document order, releasing the buffer behind each case once it is reached. The nesting
// depth was checked when the document was loaded.
void read_suite(pugi::xml_node node, TestSuite& suite, DocumentBuffer& buffer, const CaseRef*& next) {
  for (pugi::xml_attribute a = node.first_attribute(); a; a = a.next_attribute()) {
    const char* name = a.name();
    if (is(name, "name")) suite.name = utf8(a.value());
    else if (is(name, "timestamp")) suite.timestamp = utf8(a.value());
    else if (is(name, "hostname")) suite.hostname = utf8(a.value());
    else if (is(name, "file")) suite.file = utf8(a.value());
  }
  suite.time = stated_time(node);
  std::size_t case_count = 0;
  std::size_t suite_count = 0;
  for (pugi::xml_node child = node.first_child(); child; child = child.next_sibling()) {
    if (child.type() != pugi::node_element) continue;
    if (is(child.name(), "testcase")) ++case_count;
    else if (is_suite_element(child.name())) ++suite_count;
  }
  suite.cases.reserve(case_count);
  suite.suites.reserve(suite_count);
  // The facts of this suite's own cases come first in Report order, then its children's.
  const CaseRef* own = next;
  next += case_count;
  for (pugi::xml_node child = node.first_child(); child; child = child.next_sibling()) {
    if (child.type() != pugi::node_element) continue;
    const char* name = child.name();
    buffer.release_before(name);
    if (is(name, "testcase")) {
      read_case(child, own++->facts, suite.cases.emplace_back());
    } else if (is_suite_element(name)) {
      read_suite(child, suite.suites.emplace_back(), buffer, next);
    } else if (is(name, "properties")) {
      read_properties(child, suite.properties);
    } else if (is(name, "system-out")) {
      append_output(suite.system_out, child);
    } else if (is(name, "system-err")) {
      append_output(suite.system_err, child);
    }
  }
}

// Whether a <testsuites> root holds more than suites: cases, properties or output straight
// under it, which the model keeps in a suite of its own.
bool has_loose_content(pugi::xml_node root) {
  for (pugi::xml_node child = root.first_child(); child; child = child.next_sibling()) {
    if (child.type() != pugi::node_element) continue;
    const char* name = child.name();
    if (is(name, "testcase")) return true;
    if (is(name, "properties")) {
      for (pugi::xml_node property = child.first_child(); property; property = property.next_sibling()) {
        if (property.type() == pugi::node_element && is(property.name(), "property")) return true;
      }
    } else if ((is(name, "system-out") || is(name, "system-err")) && !element_text(child).empty()) {
      return true;
    }
  }
  return false;
}


// Appends the cases under a suite element to `cases` in Report order (the suite's own
// cases, then each nested suite's, depth first), their facts not read yet. Fails when
// suites nest deeper than kMaxSuiteDepth: hostile input, not a report (the readers and
// the model's destructor recurse per level).
Result<void> collect_cases(pugi::xml_node suite, int depth, std::vector<CaseRef>& cases) {
  if (depth > kMaxSuiteDepth) {
    return make_error(std::string(kNotJunit) + "its test suites are nested more than " +
                      std::to_string(kMaxSuiteDepth) + " levels deep");
  }
  bool has_suites = false;
  for (pugi::xml_node child = suite.first_child(); child; child = child.next_sibling()) {
    if (child.type() != pugi::node_element) continue;
    const char* name = child.name();
    if (is(name, "testcase")) {
      cases.push_back({child, {}});
    } else {
      has_suites = has_suites || is_suite_element(name);
    }
  }
  if (!has_suites) return {};
  for (pugi::xml_node child = suite.first_child(); child; child = child.next_sibling()) {
    if (child.type() != pugi::node_element || !is_suite_element(child.name())) continue;
    if (auto nested = collect_cases(child, depth + 1, cases); !nested) return nested;
  }
  return {};
}

// The summary of the report a root element makes, read without any case's text, and its
// cases in Report order.
Result<ReportSummary> summarize(pugi::xml_node root, bool root_is_suites, std::vector<CaseRef>& cases,
                                bool& has_loose) {
  if (auto collected = collect_cases(root, 0, cases); !collected) return collected.error();
  // Reading the facts walks the whole tree, cold in the cache: two threads do it faster.
  for_halves(cases.size(), kParallelCasesAt, [&cases](std::size_t first, std::size_t last) {
    for (std::size_t i = first; i < last; ++i) cases[i].facts = read_case_facts(cases[i].node);
  });
  ReportSummary summary;
  for (const CaseRef& ref : cases) {
    count_case(summary.counts, ref.facts.status);
    summary.case_seconds += ref.facts.time;
  }
  std::optional<double> stated;
  std::vector<std::optional<double>> suite_times;
  if (root_is_suites) {
    stated = stated_time(root);
    has_loose = has_loose_content(root);
    if (has_loose) suite_times.emplace_back();
    for (pugi::xml_node child = root.first_child(); child; child = child.next_sibling()) {
      if (child.type() == pugi::node_element && is_suite_element(child.name())) suite_times.push_back(stated_time(child));
    }
  } else {
    suite_times.push_back(stated_time(root));
  }
  summary.time = report_time(stated, suite_times);
  summary.has_suites = !suite_times.empty();
  return summary;
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
  const auto too_large = [&] {
    return make_error("the JUnit XML report " + path.string() + " is larger than " +
                      std::to_string(kMaxReportBytes >> 20) + " MiB, the most a report may be; it was not read");
  };
  if (::fstat(fd, &info) == 0 && S_ISREG(info.st_mode) && info.st_size > 0) {
    if (static_cast<std::size_t>(info.st_size) > kMaxReportBytes) return too_large();
    capacity = static_cast<std::size_t>(info.st_size) + 1;  // +1: the last read sees EOF
  }
  buffer = std::make_unique<DocumentBuffer>(capacity);
  std::size_t size = 0;
  if (capacity > kParallelReadAt) {
    // A large file is read in two halves at once: copying it and faulting in the
    // buffer's pages is a third of a big report's load time.
    const std::size_t expected = capacity - 1;
    std::size_t got[2] = {0, 0};
    int error[2] = {0, 0};
    for_halves(expected, kParallelReadAt, [&](std::size_t first, std::size_t last) {
      const std::size_t half = first == 0 ? 0 : 1;
      buffer->populate(first, last);
      while (first + got[half] < last) {
        const std::size_t at = first + got[half];
        const ssize_t n = ::pread(fd, buffer->data() + at, last - at, static_cast<off_t>(at));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
          error[half] = n < 0 ? errno : 0;
          break;
        }
        got[half] += static_cast<std::size_t>(n);
      }
    });
    if (error[0] != 0 || error[1] != 0) return fail(error[0] != 0 ? error[0] : error[1]);
    // A file that shrank meanwhile is read again from the start, one read at a time.
    if (got[0] + got[1] == expected) size = expected;
    if (::lseek(fd, static_cast<off_t>(size), SEEK_SET) < 0) return fail(errno);
  }
  while (true) {
    // A pipe, or a file still growing, is bounded too.
    if (size > kMaxReportBytes) return too_large();
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

struct JunitDocument::State {
  std::unique_ptr<DocumentBuffer> buffer;
  pugi::xml_document document;
  pugi::xml_node root;
  bool root_is_suites = false;
  bool has_loose = false;  // a <testsuites> root with cases or output of its own
  ReportSummary summary;
  std::vector<CaseRef> cases;  // in Report order, with their facts
};

namespace {

// Parses the first `size` bytes of `buffer` in place (pugixml writes into them) and checks
// that they make a report.
Result<std::unique_ptr<JunitDocument::State>> load(std::unique_ptr<DocumentBuffer> buffer, std::size_t size) {
  char* data = buffer->data();
  if (trim(std::string_view(data, size)).empty()) return make_error(std::string(kNotJunit) + "it is empty");
  auto state = std::make_unique<JunitDocument::State>();
  const pugi::xml_parse_result parsed =
      state->document.load_buffer_inplace(data, size, kParseOptions, pugi::encoding_auto);
  if (parsed.status == pugi::status_no_document_element) {
    return make_error(std::string(kNotJunit) + "it has no XML element");
  }
  if (!parsed) {
    return make_error(std::string(kNotJunit) + "XML parse error at offset " +
                      std::to_string(parsed.offset) + ": " + parsed.description());
  }
  state->root = state->document.document_element();
  const char* root_name = state->root.name();
  // A UTF-16 or Latin-1 document was converted into pugixml's own buffer: ours is dead.
  if (!buffer->holds(root_name)) buffer->release_all();
  if (is(root_name, "testsuites")) {
    state->root_is_suites = true;
  } else if (!is(root_name, "testsuite")) {
    return make_error(std::string(kNotJunit) + "the root element is <" + describe_root(root_name) +
                      ">, expected <testsuites> or <testsuite>");
  }
  auto summary = summarize(state->root, state->root_is_suites, state->cases, state->has_loose);
  if (!summary) return summary.error();
  state->summary = *summary;
  state->buffer = std::move(buffer);
  return state;
}

}  // namespace

JunitDocument::JunitDocument(std::unique_ptr<State> state) : state_(std::move(state)) {}
JunitDocument::JunitDocument(JunitDocument&&) noexcept = default;
JunitDocument& JunitDocument::operator=(JunitDocument&&) noexcept = default;
JunitDocument::~JunitDocument() = default;

Result<JunitDocument> JunitDocument::parse(std::string_view xml) {
  // One copy: pugixml parses in place and the caller's text must stay untouched.
  auto buffer = std::make_unique<DocumentBuffer>(xml.size());
  if (!xml.empty()) std::memcpy(buffer->data(), xml.data(), xml.size());
  auto state = load(std::move(buffer), xml.size());
  if (!state) return state.error();
  return JunitDocument(std::move(state).value());
}

Result<JunitDocument> JunitDocument::read(const std::filesystem::path& path) {
  std::unique_ptr<DocumentBuffer> buffer;
  auto size = read_file(path, buffer);
  if (!size) return size.error();
  auto state = load(std::move(buffer), *size);
  if (!state) return make_error(path.string() + ": " + state.error().message);
  return JunitDocument(std::move(state).value());
}

const ReportSummary& JunitDocument::summary() const { return state_->summary; }

std::size_t JunitDocument::case_count() const { return state_->cases.size(); }

void JunitDocument::for_each_case(std::size_t first, std::size_t last,
                                  const std::function<void(const TestCase&)>& f) const {
  TestCase scratch;  // one case's memory, reused for every case
  last = std::min(last, state_->cases.size());
  for (std::size_t i = first; i < last; ++i) {
    read_case(state_->cases[i].node, state_->cases[i].facts, scratch);
    f(scratch);
  }
}

Report JunitDocument::take_report() && {
  const std::unique_ptr<State> state = std::move(state_);
  Report report;
  const CaseRef* next = state->cases.data();
  if (state->root_is_suites) {
    TestSuite top;
    read_suite(state->root, top, *state->buffer, next);
    report.name = std::move(top.name);
    report.suites = std::move(top.suites);
    // Cases or output straight under <testsuites> are rare; keep them in a suite of their own.
    if (state->has_loose) {
      TestSuite loose;
      loose.name = report.name;
      loose.cases = std::move(top.cases);
      loose.properties = std::move(top.properties);
      loose.system_out = std::move(top.system_out);
      loose.system_err = std::move(top.system_err);
      report.suites.insert(report.suites.begin(), std::move(loose));
    }
  } else {
    read_suite(state->root, report.suites.emplace_back(), *state->buffer, next);
  }
  report.time = state->summary.time;
  return report;
}

std::size_t case_count(const std::vector<JunitDocument>& documents) {
  std::size_t count = 0;
  for (const auto& document : documents) count += document.case_count();
  return count;
}

void for_each_case(const std::vector<JunitDocument>& documents, std::size_t first, std::size_t last,
                   const std::function<void(const TestCase&)>& f) {
  std::size_t offset = 0;  // the number of the document's first case
  for (const auto& document : documents) {
    const std::size_t count = document.case_count();
    if (first < offset + count && last > offset) {
      document.for_each_case(std::max(first, offset) - offset, std::min(last, offset + count) - offset, f);
    }
    offset += count;
  }
}

Result<Report> parse_junit(std::string_view xml) {
  auto document = JunitDocument::parse(xml);
  if (!document) return document.error();
  return std::move(*document).take_report();
}

Result<Report> parse_junit_file(const std::filesystem::path& path) {
  auto document = JunitDocument::read(path);
  if (!document) return document.error();
  return std::move(*document).take_report();
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
