// What the live results cost one task, in the agent's own process: a TaskRecorder
// writing the results layout of a task with N cases (fetch and service phases, the cases
// of one report, the end) and publishing its events, against the same with both off.
// The wall time of a real task with its pytest run is in live_results_overhead.py.

#include <filesystem>
#include <random>
#include <string>

#include <benchmark/benchmark.h>

#include "agent/task_recorder.hpp"
#include "common/junit.hpp"

using namespace proctor;
namespace fs = std::filesystem;

namespace {

// Events are formatted as the server would, then thrown away.
class FormattingSink final : public EventSink {
 public:
  void publish(const Event& event) override { benchmark::DoNotOptimize(to_json_line(event)); }
};

Report report_with(int cases) {
  std::string xml = "<testsuite name=\"bench\">";
  for (int i = 0; i < cases; ++i) {
    xml += "<testcase classname=\"tests.test_many\" name=\"test_" + std::to_string(i) + "\" time=\"0.001\"";
    xml += i % 10 == 0 ? "><failure message=\"assert 1 == 2\">Traceback\n  line\nAssertionError</failure></testcase>"
                       : "/>";
  }
  xml += "</testsuite>";
  return std::move(parse_junit(xml)).value();
}

Task bench_task() { return std::move(parse_task(R"({"id":"bench","repositoryUrl":"https://h/r.git"})")).value(); }

void record_task(const Task& task, const Report& report, std::optional<fs::path> layout, EventSink* events,
                 SequenceCounter& sequence, SerialWorker* io) {
  TaskRecorder recorder(task, std::move(layout), events, sequence, io);
  recorder.start_task("service");
  recorder.start_phase(Phase::fetch);
  recorder.phase_log(Phase::fetch, "fetching");
  recorder.end_phase(Phase::fetch, RecordStatus::success, "fetched\n");
  recorder.start_phase(Phase::service);
  recorder.add_cases("/r/junit.xml", report);
  recorder.add_cases("/r/junit.xml", report);  // the watcher's read, then the final one
  recorder.end_phase(Phase::service, RecordStatus::failure, "done\n");
  recorder.end_task(RecordStatus::failure);
}

void BM_task_recorded(benchmark::State& state) {
  const Report report = report_with(static_cast<int>(state.range(0)));
  const bool on = state.range(1) != 0;
  // Mode 2: the files written on a worker, as the agent does; what is timed is what the
  // task itself waits for (the worker's backlog is drained untimed after each task).
  const bool on_worker = state.range(1) == 2;
  SerialWorker io;
  const fs::path dir = fs::temp_directory_path() / ("proctor-bench-layout-" + std::to_string(std::random_device{}()));
  const Task task = bench_task();
  FormattingSink sink;
  SequenceCounter sequence;
  int run = 0;
  for (auto _ : state) {
    // A folder per task, as the agent has (removing the last one would time the removal).
    const fs::path task_dir = dir / ("task-" + std::to_string(run++));
    record_task(task, report, on ? std::optional(task_dir) : std::nullopt, on ? &sink : nullptr, sequence,
                on_worker ? &io : nullptr);
    if (on_worker) {
      // The worker's backlog is written untimed, each time: left to grow, it would make
      // the benchmark run thousands of iterations and then write them all at the end.
      state.PauseTiming();
      io.drain();
      state.ResumeTiming();
    }
  }
  fs::remove_all(dir);
  state.SetLabel(on_worker ? "layout+events on a worker: the task's wait" : on ? "layout+events" : "off");
  state.counters["cases"] = static_cast<double>(state.range(0));
}

}  // namespace

BENCHMARK(BM_task_recorded)
    ->Args({200, 1})
    ->Args({200, 2})
    ->Args({200, 0})
    ->Args({2000, 1})
    ->Args({2000, 2})
    ->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
