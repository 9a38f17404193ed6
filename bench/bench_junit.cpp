// Google Benchmark of the JUnit XML reader and of `runner convert`'s streamed path on pytest-style reports generated here (the
// same mix as bench/gen_junit_report.py: passes, failures with multi-line tracebacks,
// skips, setup errors, captured output, properties, non-ASCII text). Reports bytes/s.

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <ostream>
#include <streambuf>
#include <random>
#include <string>

#include <benchmark/benchmark.h>

#include "common/junit.hpp"
#include "common/payload.hpp"

namespace {

constexpr const char* kWords[] = {"build",  "cache",  "config", "parser", "network", "storage", "auth",
                                  "session", "render", "export", "import", "schema",  "queue",   "worker",
                                  "retry",  "upload", "métrique", "données", "配置",     "テスト"};
constexpr std::size_t kWordCount = sizeof(kWords) / sizeof(kWords[0]);

// A deterministic report of `cases` test cases, about 500 bytes per case.
std::string make_report(int cases) {
  std::mt19937 rng(20240301);
  const auto pick = [&](std::size_t n) { return static_cast<std::size_t>(rng() % n); };
  const auto word = [&] { return std::string(kWords[pick(kWordCount)]); };
  const auto chance = [&](double p) { return std::uniform_real_distribution<double>(0, 1)(rng) < p; };
  std::string xml = "<?xml version=\"1.0\" encoding=\"utf-8\"?><testsuites><testsuite name=\"pytest\" errors=\"0\" "
                    "failures=\"0\" skipped=\"0\" tests=\"" + std::to_string(cases) +
                    "\" time=\"12.5\" timestamp=\"2024-03-01T10:15:30\" hostname=\"ci\">";
  xml.reserve(static_cast<std::size_t>(cases) * 520);
  for (int i = 0; i < cases; ++i) {
    const std::string module = "tests." + std::string(kWords[pick(16)]) + ".test_" + word() + "_" + std::to_string(i / 50);
    const std::string test = "test_" + word() + "_" + std::to_string(i);
    const int line = static_cast<int>(10 + pick(2000));
    char time[32];
    std::snprintf(time, sizeof time, "%.3f", static_cast<double>(pick(200000)) / 1e6);
    xml += "<testcase classname=\"" + module + "\" name=\"" + test + "\" time=\"" + time + "\"";
    std::string body;
    const double roll = std::uniform_real_distribution<double>(0, 1)(rng);
    if (roll < 0.10) {
      body += "<failure message=\"AssertionError: unexpected 42 &lt;for&gt; " + test + " — ✗\">    def " + test + "(self):\n";
      const std::size_t lines = 12 + pick(28);
      for (std::size_t k = 0; k < lines; ++k) {
        const std::string w = word();
        body += "        value_" + std::to_string(k) + " = compute_" + w + "(fixture, index=" + std::to_string(k) +
                ", mode='" + w + "')\n";
      }
      body += "&gt;       assert result == 41\nE       AssertionError: unexpected 42 &lt;for&gt; " + test +
              "\nE       assert 42 == 41\n\n" + module + ".py:" + std::to_string(line) + ": AssertionError</failure>";
    } else if (roll < 0.12) {
      body += "<error message=\"failed on setup with &quot;ConnectionRefusedError: connection refused&quot;\">"
              "@pytest.fixture\n    def database():\n&gt;       return connect(\"db.internal\", timeout=5)\n"
              "E       ConnectionRefusedError: [Errno 111] connection refused\n\n" + module + ".py:" +
              std::to_string(line) + ": ConnectionRefusedError</error>";
    } else if (roll < 0.19) {
      body += "<skipped type=\"pytest.skip\" message=\"requires " + word() + " service\">" + module + ".py:" +
              std::to_string(line) + ": requires service</skipped>";
    }
    if (chance(0.15)) {
      body += "<properties><property name=\"memoryUsed\" value=\"" + std::to_string(500 + pick(90000)) +
              "\" /><property name=\"owner\" value=\"" + word() + "\" /></properties>";
    }
    if (chance(0.2)) {
      body += "<system-out>running " + test + "\n";
      const std::size_t lines = 4 + pick(14);
      for (std::size_t k = 0; k < lines; ++k) body += "[" + std::to_string(k) + "] step " + word() + " took 12.5 ms — ok\n";
      body += "</system-out>";
    }
    xml += body.empty() ? " />" : ">" + body + "</testcase>";
    if (i % 10 == 9) xml += '\n';
  }
  xml += "</testsuite></testsuites>\n";
  return xml;
}

void BM_parse_junit(benchmark::State& state) {
  const std::string xml = make_report(static_cast<int>(state.range(0)));  // outside the timed loop
  for (auto _ : state) {
    auto report = proctor::parse_junit(xml);
    if (!report) {
      state.SkipWithError(report.error().message.c_str());
      break;
    }
    benchmark::DoNotOptimize(report->suites.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(xml.size()));
  state.counters["cases"] = static_cast<double>(state.range(0));
  state.counters["MB"] = static_cast<double>(xml.size()) / 1e6;
}
BENCHMARK(BM_parse_junit)->Arg(1000)->Arg(100000)->Unit(benchmark::kMillisecond);

// The file path the agent takes after a run: read into one buffer, parsed in place, the
// whole model built.
void BM_parse_junit_file(benchmark::State& state) {
  const std::string xml = make_report(static_cast<int>(state.range(0)));  // outside the timed loop
  const auto path = std::filesystem::temp_directory_path() /
                    ("proctor-bench-junit-" + std::to_string(::getpid()) + "-" + std::to_string(state.range(0)) + ".xml");
  std::ofstream(path, std::ios::binary) << xml;
  for (auto _ : state) {
    auto report = proctor::parse_junit_file(path);
    if (!report) {
      state.SkipWithError(report.error().message.c_str());
      break;
    }
    benchmark::DoNotOptimize(report->suites.data());
  }
  std::filesystem::remove(path);
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(xml.size()));
}
BENCHMARK(BM_parse_junit_file)->Arg(1000)->Arg(100000)->Unit(benchmark::kMillisecond);

// A stream that throws its bytes away: what is measured is the conversion, not a disk.
class NullBuffer : public std::streambuf {
 protected:
  std::streamsize xsputn(const char*, std::streamsize n) override { return n; }
  int_type overflow(int_type c) override { return traits_type::not_eof(c); }
};

// What `runner convert --format flat` does: read and check the file, then write the
// payload case by case straight from the XML tree (no model), on two threads.
void BM_convert_streamed(benchmark::State& state) {
  const std::string xml = make_report(static_cast<int>(state.range(0)));  // outside the timed loop
  const auto path = std::filesystem::temp_directory_path() /
                    ("proctor-bench-convert-" + std::to_string(::getpid()) + "-" + std::to_string(state.range(0)) + ".xml");
  std::ofstream(path, std::ios::binary) << xml;
  NullBuffer null_buffer;
  std::ostream out(&null_buffer);
  for (auto _ : state) {
    auto document = proctor::JunitDocument::read(path);
    if (!document) {
      state.SkipWithError(document.error().message.c_str());
      break;
    }
    proctor::CaseSource cases;
    cases.count = document->case_count();
    cases.read = [&](std::size_t first, std::size_t last, const proctor::CaseVisitor& visit) {
      document->for_each_case(first, last, visit);
    };
    proctor::write_streamed_payload(out, document->summary(), cases, {}, {}, proctor::Dialect::flat, nullptr);
  }
  std::filesystem::remove(path);
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(xml.size()));
}
BENCHMARK(BM_convert_streamed)->Arg(1000)->Arg(100000)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
