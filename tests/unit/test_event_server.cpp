// The event stream over real Unix sockets: the agent's EventServer and the EventClient.
// Tests synchronise on events (a subscriber's count, the server's subscriber count while
// the test runs its handlers), never on time.

#include <sys/stat.h>

#include <atomic>
#include <condition_variable>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/write.hpp>

#include "agent/event_server.hpp"
#include "common/event_client.hpp"
#include "require_ok.hpp"
#include "temp_dir.hpp"

using namespace proctor;
namespace asio = boost::asio;
namespace fs = std::filesystem;
using stream_protocol = asio::local::stream_protocol;

namespace {

// An EventServer on an io_context of its own. Until run(), the test thread runs its
// handlers (accept() does), so that subscribers are known to be in before publishing.
struct Served {
  explicit Served(EventServerSettings settings = {}) : path(dir / "events.sock") {
    auto started = EventServer::start(io.get_executor(), path, settings);
    REQUIRE_OK(started);
    server = std::move(*started);
  }
  ~Served() {
    if (server) server->stop();
    if (thread.joinable()) thread.join();
  }
  Served(const Served&) = delete;
  Served& operator=(const Served&) = delete;

  // Runs the server's handlers here until `count` clients are subscribed.
  void accept(std::size_t count) {
    while (server->subscriber_count() < count) io.run_one();
  }
  // From now on the server runs on its own thread (until stop()).
  void run() {
    thread = std::thread([this] { io.run(); });
  }

  test::TempDir dir;
  fs::path path;
  asio::io_context io;
  std::unique_ptr<EventServer> server;
  std::thread thread;
};

// An EventClient subscribed on a thread of its own, keeping every event it receives.
class Subscriber {
 public:
  explicit Subscriber(const fs::path& socket) : client_(io_.get_executor(), socket) {
    asio::co_spawn(
        io_,
        [this]() -> asio::awaitable<void> {
          auto outcome =
              co_await client_.subscribe([this](const Event& event) -> asio::awaitable<void> {
                {
                  const std::lock_guard lock(mutex_);
                  events_.push_back(event);
                }
                changed_.notify_all();
                co_return;
              });
          {
            const std::lock_guard lock(mutex_);
            outcome_ = std::move(outcome);
            done_ = true;
          }
          changed_.notify_all();
        },
        asio::detached);
    thread_ = std::thread([this] { io_.run(); });
  }
  ~Subscriber() {
    asio::post(io_, [this] { client_.cancel(); });
    thread_.join();
  }
  Subscriber(const Subscriber&) = delete;
  Subscriber& operator=(const Subscriber&) = delete;

  // Waits until `count` events arrived (or the subscription ended).
  void wait_for(std::size_t count) {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return events_.size() >= count || done_; });
  }
  // Waits for the subscription to end; its outcome.
  Result<void> wait_done() {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return done_; });
    return outcome_;
  }
  std::vector<Event> events() {
    const std::lock_guard lock(mutex_);
    return events_;
  }

 private:
  asio::io_context io_;
  EventClient client_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<Event> events_;
  Result<void> outcome_;
  bool done_ = false;
  std::thread thread_;
};

// A pyATS-like run: a task, `phases` phases under it, `cases` testcases under each, every
// section started and stopped; seq_num and parent_seq_num as a reporter numbers them.
std::vector<Event> nested_run(int phases, int cases) {
  std::vector<Event> events;
  std::uint64_t next = 1;
  const auto section = [&](const char* kind, const char* type, std::uint64_t seq,
                           std::optional<std::uint64_t> parent, const std::string& name) {
    Event event;
    event.event = kind;
    event.type = type;
    event.seq_num = seq;
    event.parent_seq_num = parent;
    event.id = name;
    event.name = name;
    event.starttime = "2026-11-24T10:00:00.000Z";
    if (std::string_view(kind).starts_with("stop")) {
      event.stoptime = "2026-11-24T10:00:01.250Z";
      event.runtime = 1.25;
      event.result = SectionResult::passed;
      event.logs = LogSpan{"TaskLog.task", seq * 100, 100};
    }
    event.logfile = "TaskLog.task";
    event.xref = "tests/test_module.py:" + std::to_string(seq);
    events.push_back(std::move(event));
  };
  const std::uint64_t task = next++;
  section("start_task", "task", task, std::nullopt, "task-1");
  for (int p = 0; p < phases; ++p) {
    const std::uint64_t phase = next++;
    section("start_section", "phase", phase, task, "phase_" + std::to_string(p));
    for (int c = 0; c < cases; ++c) {
      const std::uint64_t testcase = next++;
      const std::string name =
          "tests/test_module.py::test_case_" + std::to_string(p) + "_" + std::to_string(c);
      section("start_section", "testcase", testcase, phase, name);
      section("stop_section", "testcase", testcase, phase, name);
    }
    section("stop_section", "phase", phase, task, "phase_" + std::to_string(p));
  }
  section("stop_task", "task", task, std::nullopt, "task-1");
  return events;
}

// Everything a raw socket receives until the other side closes it.
// Everything until the server closes. A client that sent bytes the server had not read
// yet when it closed gets ECONNRESET instead of EOF, after the same data (Linux).
std::string read_all(stream_protocol::socket& socket, bool sent_unread = false) {
  std::string data;
  boost::system::error_code ec;
  asio::read(socket, asio::dynamic_buffer(data), ec);
  CHECK((ec == asio::error::eof || (sent_unread && ec == asio::error::connection_reset)));
  return data;
}

std::vector<std::string> lines_of(const std::string& data) {
  std::vector<std::string> lines;
  std::size_t begin = 0;
  for (std::size_t end = data.find('\n'); end != std::string::npos; end = data.find('\n', begin)) {
    lines.push_back(data.substr(begin, end - begin));
    begin = end + 1;
  }
  CHECK(begin == data.size());  // nothing after the last '\n': no cut line
  return lines;
}

// The events a raw subscriber read: after the server's greeting, which comes first.
std::vector<std::string> events_of(const std::string& data) {
  auto lines = lines_of(data);
  REQUIRE_FALSE(lines.empty());
  CHECK(lines.front() + "\n" == kSubscribedLine);
  lines.erase(lines.begin());
  return lines;
}

}  // namespace

TEST_SUITE("event_server") {
  TEST_CASE("the socket is private (0600) whatever the umask") {
    const mode_t previous = ::umask(0);
    Served served;
    ::umask(previous);
    struct stat info {};
    REQUIRE(::stat(served.path.c_str(), &info) == 0);
    CHECK(S_ISSOCK(info.st_mode));
    CHECK((info.st_mode & 07777) == 0600);
  }

  TEST_CASE("many clients at once receive the same events, in order") {
    Served served;
    constexpr std::size_t kClients = 8;
    std::vector<std::unique_ptr<Subscriber>> subscribers;
    for (std::size_t i = 0; i < kClients; ++i)
      subscribers.push_back(std::make_unique<Subscriber>(served.path));
    served.accept(kClients);
    served.run();

    const auto events = nested_run(5, 20);
    for (const auto& event : events) served.server->publish(event);
    for (auto& subscriber : subscribers) {
      subscriber->wait_for(events.size());
      CHECK(subscriber->events() == events);
    }
    CHECK(served.server->subscriber_count() == kClients);
  }

  TEST_CASE(
      "a subscriber that never reads is dropped with a last line; the reading one gets every event "
      "and the publisher is never held up") {
    // A small queue so the stuck client overflows soon; a long flush timeout so that its last
    // line is still being offered when the test reads it (the test does not race a clock).
    EventServerSettings settings;
    settings.max_queued_events = 1000;
    settings.flush_timeout = std::chrono::minutes(5);
    Served served(settings);

    asio::io_context raw_io;
    stream_protocol::socket stuck(raw_io);
    boost::system::error_code ec;
    stuck.connect(stream_protocol::endpoint(served.path.string()), ec);
    REQUIRE_FALSE(ec);
    Subscriber reader(served.path);
    served.accept(2);
    served.run();

    // 20 phases of 150 testcases, ~350 bytes an event: about 2 MB, far more than the stuck
    // client's 1,000 queued events plus what the kernel buffers for its socket.
    const auto events = nested_run(20, 150);
    REQUIRE(events.size() > 6000);
    std::thread publisher([&] {
      // Paced on the reading subscriber only (it must not be dropped for a burst); nothing
      // here waits for the stuck one, so finishing proves it never held the publisher up.
      constexpr std::size_t kRound = 100;
      for (std::size_t i = 0; i < events.size(); ++i) {
        served.server->publish(events[i]);
        if ((i + 1) % kRound == 0) reader.wait_for(i + 1);
      }
    });
    publisher.join();
    reader.wait_for(events.size());

    const auto received = reader.events();
    REQUIRE(received.size() == events.size());
    CHECK(received == events);
    // Every section's parent is the section it was published under: the phase of a
    // testcase, the task of a phase, none for the task.
    std::vector<std::uint64_t> open;
    for (const auto& event : received) {
      if (event.event.starts_with("start")) {
        CHECK(event.parent_seq_num == (open.empty() ? std::nullopt : std::optional(open.back())));
        open.push_back(event.seq_num);
      } else {
        REQUIRE_FALSE(open.empty());
        CHECK(event.seq_num == open.back());
        open.pop_back();
        CHECK(event.parent_seq_num == (open.empty() ? std::nullopt : std::optional(open.back())));
      }
    }
    CHECK(open.empty());
    // The reader has the last event, so every delivery (the stuck client's drop included) is done.
    CHECK(served.server->subscriber_count() == 1);
    CHECK(served.server->dropped_count() == 1);

    // The stuck client: whole events, in order, then the drop line, then the end.
    const auto lines = events_of(read_all(stuck));
    REQUIRE(lines.size() >= 2);
    REQUIRE(lines.size() - 1 < events.size());
    for (std::size_t i = 0; i + 1 < lines.size(); ++i) {
      auto event = parse_event(lines[i]);
      REQUIRE_OK(event);
      REQUIRE(*event == events[i]);
    }
    auto last = parse_event(lines.back());
    REQUIRE_OK(last);
    CHECK(last->event == "dropped");
    CHECK(last->type == "event");
    CHECK(last->seq_num == 0);
    CHECK(last->name.starts_with("fell behind by "));
    CHECK(last->name.ends_with(" events"));
    CHECK(lines.back().starts_with(
        R"({"event":"dropped","type":"event","seq_num":0,"name":"fell behind by )"));

    served.server->stop();
    REQUIRE_OK(reader.wait_done());
  }

  TEST_CASE(
      "stop() sends what is queued, closes every client (its subscribe returns ok) and removes the "
      "socket") {
    Served served;
    Subscriber subscriber(served.path);
    served.accept(1);
    served.run();
    const auto events = nested_run(1, 3);
    for (const auto& event : events) served.server->publish(event);
    served.server->stop();
    CHECK_FALSE(fs::exists(fs::symlink_status(served.path)));
    REQUIRE_OK(subscriber.wait_done());
    CHECK(subscriber.events() == events);
    served.server->publish(events.front());  // a no-op now
    served.server->stop();                   // and again: nothing happens
    served.thread.join();                    // every coroutine of the server has ended
    CHECK(served.server->subscriber_count() == 0);
  }

  TEST_CASE(
      "a stale socket file is replaced; a live one, or anything that is not a socket, is refused") {
    test::TempDir dir;
    const fs::path path = dir / "events.sock";
    asio::io_context io;
    {
      // A socket file whose server died without removing it.
      stream_protocol::acceptor dead(io, stream_protocol::endpoint(path.string()));
    }
    REQUIRE(fs::is_socket(path));
    auto first = EventServer::start(io.get_executor(), path);
    REQUIRE_OK(first);

    auto second = EventServer::start(io.get_executor(), path);
    REQUIRE_FALSE(second.ok());
    CHECK(second.error().message.find("already serving") != std::string::npos);
    (*first)->stop();

    const fs::path file = dir / "notes.txt";
    std::ofstream(file) << "keep me";
    auto refused = EventServer::start(io.get_executor(), file);
    REQUIRE_FALSE(refused.ok());
    CHECK(refused.error().message.find("not a socket") != std::string::npos);
    std::ifstream in(file);
    std::string content;
    std::getline(in, content);
    CHECK(content == "keep me");
  }

  TEST_CASE("a path too long for a Unix socket, or in a missing folder, is a clear error") {
    test::TempDir dir;
    asio::io_context io;
    auto too_long = EventServer::start(io.get_executor(), dir / (std::string(120, 'x') + ".sock"));
    REQUIRE_FALSE(too_long.ok());
    CHECK(too_long.error().message.find("shorter") != std::string::npos);
    auto missing = EventServer::start(io.get_executor(), dir / "missing" / "events.sock");
    REQUIRE_FALSE(missing.ok());
    CHECK(missing.error().message.find("does not exist") != std::string::npos);
  }

  TEST_CASE(
      "a client that closes its connection leaves the count at once; one that only ends its "
      "input (as `nc -U` does) stays subscribed") {
    Served served;
    asio::io_context raw_io;
    stream_protocol::socket gone(raw_io);
    stream_protocol::socket half(raw_io);
    boost::system::error_code ec;
    gone.connect(stream_protocol::endpoint(served.path.string()), ec);
    REQUIRE_FALSE(ec);
    half.connect(stream_protocol::endpoint(served.path.string()), ec);
    REQUIRE_FALSE(ec);
    served.accept(2);

    // `gone` reads its greeting first: closed with it unread, the server would see a reset
    // (or fail to write it) instead of the end of input followed by the hang-up.
    std::string greeting;
    std::atomic<bool> greeted{false};
    std::thread reader([&] {
      boost::system::error_code read_ec;
      asio::read_until(gone, asio::dynamic_buffer(greeting), '\n', read_ec);
      greeted = true;
    });
    while (!greeted) served.io.run_one_for(std::chrono::milliseconds(100));  // the server writes it
    reader.join();
    REQUIRE(greeting == kSubscribedLine);
    half.shutdown(stream_protocol::socket::shutdown_send, ec);
    REQUIRE_FALSE(ec);
    gone.close(ec);
    // No event is published: the count falls because the server saw the hang-up. Bounded,
    // so that a server that never notices fails here instead of hanging.
    for (int handlers = 0; served.server->subscriber_count() > 1 && handlers < 1000; ++handlers) {
      REQUIRE(served.io.run_one_for(std::chrono::seconds(60)) == 1);
    }
    CHECK(served.server->subscriber_count() == 1);

    served.run();
    const auto events = nested_run(1, 3);
    for (const auto& event : events) served.server->publish(event);
    served.server->stop();
    const auto lines = events_of(read_all(half));
    REQUIRE(lines.size() == events.size());
    for (std::size_t i = 0; i < lines.size(); ++i) CHECK(parse_event(lines[i]).value() == events[i]);
  }

  TEST_CASE("a client sending garbage does not disturb the server") {
    Served served;
    asio::io_context raw_io;
    stream_protocol::socket noisy(raw_io);
    boost::system::error_code ec;
    noisy.connect(stream_protocol::endpoint(served.path.string()), ec);
    REQUIRE_FALSE(ec);
    Subscriber subscriber(served.path);
    served.accept(2);
    served.run();

    // Far more than a socket buffer: the write completes only because the server reads it.
    const std::string garbage(4 * 1024 * 1024, '\x7f');
    asio::write(noisy, asio::buffer(garbage), ec);
    REQUIRE_FALSE(ec);
    const auto events = nested_run(2, 10);
    for (const auto& event : events) served.server->publish(event);
    subscriber.wait_for(events.size());
    CHECK(subscriber.events() == events);
    CHECK(served.server->subscriber_count() == 2);

    served.server->stop();
    const auto lines = events_of(read_all(noisy, /*sent_unread=*/true));
    REQUIRE(lines.size() == events.size());
    for (std::size_t i = 0; i < lines.size(); ++i)
      CHECK(parse_event(lines[i]).value() == events[i]);
    REQUIRE_OK(subscriber.wait_done());
  }

  TEST_CASE("the client: an error when the socket cannot be reached") {
    test::TempDir dir;
    Subscriber subscriber(dir / "nobody.sock");
    auto outcome = subscriber.wait_done();
    REQUIRE_FALSE(outcome.ok());
    CHECK(outcome.error().message.find("cannot connect") != std::string::npos);
  }

  TEST_CASE(
      "the client: an error carrying the reason when the agent drops it, or when a line is not an "
      "event") {
    test::TempDir dir;
    const fs::path path = dir / "fake.sock";
    asio::io_context io;
    stream_protocol::acceptor acceptor(io, stream_protocol::endpoint(path.string()));
    const auto serve = [&](const std::string& data) {
      Subscriber subscriber(path);
      stream_protocol::socket peer(io);
      acceptor.accept(peer);
      asio::write(peer, asio::buffer(data));
      peer.close();
      auto outcome = subscriber.wait_done();
      REQUIRE_FALSE(outcome.ok());
      CHECK(subscriber.events().size() == 1);
      return outcome.error().message;
    };
    const std::string first = to_json_line(nested_run(1, 1).front());
    const std::string dropped = serve(
        first + R"({"event":"dropped","type":"event","seq_num":0,"name":"fell behind by 7 events"})"
                "\n");
    CHECK(dropped.find("dropped") != std::string::npos);
    CHECK(dropped.find("fell behind by 7 events") != std::string::npos);
    CHECK(serve(first + "hello\n").find("not an event") != std::string::npos);
    CHECK(serve(first + "{\"event\":\"start_section\"").find("middle of an event") !=
          std::string::npos);
    CHECK(serve(first + std::string(kMaxEventLineBytes + 10, 'x')).find("longer than") !=
          std::string::npos);
  }
}
