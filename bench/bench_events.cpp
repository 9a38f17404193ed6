// Google Benchmark of the event stream: events per second delivered through a real Unix
// socket to 1 and to 16 subscribers, each a real EventClient on a thread of its own. The
// publisher pushes a testcase's stop_section with every field (~330 bytes) in batches and
// waits for every subscriber to have the batch, so that none falls behind far enough to be
// dropped: `drops` must stay 0, or the rate is not a delivery rate.

#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <benchmark/benchmark.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include "agent/event_server.hpp"
#include "common/event_client.hpp"

namespace asio = boost::asio;
namespace fs = std::filesystem;
using proctor::Event;

namespace {

constexpr std::uint64_t kBatch = 1000;  // events per iteration; well under the queue bound

Event realistic_event() {
  Event event;
  event.event = "stop_section";
  event.type = "testcase";
  event.seq_num = 1234;
  event.parent_seq_num = 12;
  event.id = "tests/unit/test_calculator.py::TestCalculator::test_divide_by_zero";
  event.name = "test_divide_by_zero";
  event.starttime = "2026-11-24T10:00:00.123Z";
  event.stoptime = "2026-11-24T10:00:00.456Z";
  event.runtime = 0.333;
  event.result = proctor::SectionResult::passed;
  event.logfile = "TaskLog.lab1-task-42";
  event.logs = proctor::LogSpan{"TaskLog.lab1-task-42", 183'424, 2'048};
  event.xref = "tests/unit/test_calculator.py:87";
  return event;
}

// An EventClient on its own thread that counts what it receives.
class CountingSubscriber {
 public:
  CountingSubscriber(const fs::path& socket, const std::atomic<std::uint64_t>& target)
      : client_(io_.get_executor(), socket) {
    asio::co_spawn(
        io_,
        [this, &target]() -> asio::awaitable<void> {
          auto outcome = co_await client_.subscribe(
              [this, &target](const Event& /*event*/) -> asio::awaitable<void> {
                // Wakes the publisher only when its batch is complete.
                if (received.fetch_add(1, std::memory_order_relaxed) + 1 >=
                    target.load(std::memory_order_relaxed)) {
                  received.notify_all();
                }
                co_return;
              });
          if (!outcome) dropped = true;
          received.fetch_add(std::uint64_t{1}
                             << 62);  // past any target: the publisher never waits on it again
          received.notify_all();
        },
        asio::detached);
    thread_ = std::thread([this] { io_.run(); });
  }
  ~CountingSubscriber() {
    asio::post(io_, [this] { client_.cancel(); });
    thread_.join();
  }
  CountingSubscriber(const CountingSubscriber&) = delete;
  CountingSubscriber& operator=(const CountingSubscriber&) = delete;

  void wait_for(std::uint64_t count) {
    for (std::uint64_t now = received.load(); now < count; now = received.load())
      received.wait(now);
  }

  std::atomic<std::uint64_t> received{0};
  std::atomic<bool> dropped{false};

 private:
  asio::io_context io_;
  proctor::EventClient client_;
  std::thread thread_;
};

void BM_events_delivered(benchmark::State& state) {
  const auto subscribers = static_cast<std::size_t>(state.range(0));
  const fs::path socket =
      fs::temp_directory_path() / ("proctor-bench-events-" + std::to_string(::getpid()) + ".sock");

  asio::io_context io;
  auto started = proctor::EventServer::start(io.get_executor(), socket);
  if (!started) {
    state.SkipWithError(started.error().message.c_str());
    return;
  }
  auto server = std::move(*started);
  std::atomic<std::uint64_t> target{0};
  std::vector<std::unique_ptr<CountingSubscriber>> readers;
  for (std::size_t i = 0; i < subscribers; ++i)
    readers.push_back(std::make_unique<CountingSubscriber>(socket, target));
  // Accepted before the clock starts: the server's handlers run here until all are in.
  while (server->subscriber_count() < subscribers) io.run_one();
  std::thread io_thread([&io] { io.run(); });

  Event event = realistic_event();
  const std::size_t line_bytes = proctor::to_json_line(event).size();
  std::uint64_t published = 0;
  for (auto _ : state) {
    target = published + kBatch;
    for (std::uint64_t i = 0; i < kBatch; ++i) {
      event.seq_num = ++published;
      server->publish(event);
    }
    for (auto& reader : readers) reader->wait_for(published);
  }

  server->stop();
  io_thread.join();
  // Every subscription has ended (the server closed it); any that did not end cleanly was dropped.
  std::size_t drops = 0;
  for (auto& reader : readers) {
    reader->wait_for(std::uint64_t{1} << 62);
    if (reader->dropped) ++drops;
  }
  readers.clear();
  state.SetItemsProcessed(
      static_cast<std::int64_t>(published));  // events per second, as each subscriber gets them
  state.SetBytesProcessed(static_cast<std::int64_t>(published * line_bytes));
  state.counters["deliveries_per_second"] =
      benchmark::Counter(static_cast<double>(published * subscribers), benchmark::Counter::kIsRate);
  state.counters["subscribers"] = static_cast<double>(subscribers);
  state.counters["drops"] = static_cast<double>(drops);
  state.counters["event_bytes"] = static_cast<double>(line_bytes);
}

}  // namespace

BENCHMARK(BM_events_delivered)->Arg(1)->Arg(16)->UseRealTime()->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
