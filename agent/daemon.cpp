#include "agent/daemon.hpp"

#include <algorithm>
#include <csignal>
#include <optional>
#include <random>
#include <stop_token>
#include <variant>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "agent/event_server.hpp"
#include "agent/metrics_server.hpp"
#include "agent/process_runner.hpp"
#include "agent/service_notifier.hpp"
#include "agent/spool.hpp"
#include "agent/task_journal.hpp"
#include "agent/url.hpp"
#include "agent/workspace.hpp"
#include "common/asio_await.hpp"
#include "common/metrics.hpp"
#include "common/text.hpp"

namespace proctor {

using namespace std::chrono_literals;
using std::chrono::milliseconds;

int exit_code_for(const ResultPayload& payload) {
  if (payload.error) return exit_infrastructure;
  return payload.passed ? exit_ok : exit_tests_failed;
}

namespace {

// What a slot is doing, so shutdown knows what it may interrupt.
enum class SlotState { polling, idle, running, delivering, done };

// The state's name in /metrics: kSlotStates lists them in SlotState's order.
const char* slot_state_name(SlotState state) {
  static_assert(static_cast<std::size_t>(SlotState::done) + 1 == kSlotStates.size());
  return kSlotStates[static_cast<std::size_t>(state)];
}

struct Slot {
  Slot(int n, asio::any_io_executor ex, std::unique_ptr<BackendClient> backend)
      : index(n), client(std::move(backend)), timer(std::move(ex)) {}
  int index;
  std::unique_ptr<BackendClient> client;
  asio::steady_timer timer;
  std::stop_source stop;
  SlotState state = SlotState::polling;
};

// A spooled payload and where it lives.
struct SpooledPayload {
  std::string body;
  std::optional<std::filesystem::path> entry;  // unset when the spool could not store it
  std::optional<int> held_by;  // the slot whose journal record stays until delivery (not spooled)
};

class Agent {
 public:
  Agent(const DaemonSettings& settings, const TaskExecutor& executor, const BackendClientFactory& make_client)
      : settings_(settings), executor_(executor), make_client_(make_client),
        workers_(static_cast<std::size_t>(settings.concurrent)), signals_(io_, SIGINT, SIGTERM),
        grace_timer_(io_), reaper_timer_(io_), watchdog_timer_(io_),
        spool_(settings.spool_dir, settings.spool_max_bytes),
        journal_(settings.work_dir / "journal"), rng_(std::random_device{}()) {}

  int run() {
    if (auto locked = journal_.lock(); !locked) {
      spdlog::critical("{}", locked.error().message);
      return exit_infrastructure;
    }
    // A metrics address that is malformed or taken is a usage error: found before recovery
    // kills or reports anything. Nothing is served before io_.run(), when the slots exist.
    if (!settings_.metrics_address.empty()) {
      auto server = MetricsServer::start(io_.get_executor(), settings_.metrics_address, endpoint_content());
      if (!server) {
        spdlog::critical("{}", server.error().message);
        return exit_usage;
      }
      metrics_ = std::move(server).value();
      spdlog::info("metrics at http://{}/metrics, health at /healthz (port {})", settings_.metrics_address,
                   metrics_->port());
    }
    if (auto reaper = become_child_subreaper(); !reaper) spdlog::warn("{}", reaper.error().message);
    recover_held_tasks();
    schedule_reaping();
    for (int n = 0; n < settings_.concurrent; ++n) {
      slots_.push_back(std::make_unique<Slot>(n, io_.get_executor(), make_client_(io_.get_executor(), n)));
    }
    if (!settings_.events_socket.empty()) {
      auto server = EventServer::start(io_.get_executor(), settings_.events_socket);
      if (server) {
        events_ = std::move(server).value();
        spdlog::info("events at {}", settings_.events_socket.string());
      } else {
        spdlog::error("no event stream: {}", server.error().message);
      }
    }
    wait_for_signal();
    // Logged only once SIGINT/SIGTERM are handled (signals_ is built with this object): a
    // caller that sees this line may signal the agent and get a clean shutdown.
    spdlog::info("proctor runner {} polling {} with {} slot(s), work dir {}", PROCTOR_VERSION, settings_.backend_origin,
                 settings_.concurrent, settings_.work_dir.string());
    notifier_.ready(fmt::format("polling {} with {} slot(s)", settings_.backend_origin, settings_.concurrent));
    schedule_watchdog();
    start([this]() { return flush_spool(); });
    for (auto& slot : slots_) {
      start([this, s = slot.get()]() { return slot_loop(*s); });
    }
    io_.run();
    workers_.join();
    executor_.wait_for_layouts();  // nothing may publish to events_ once this object goes
    spool_io_.join();
    return exit_code_;
  }

 private:
  // Runs a coroutine; when the last one ends the agent stops listening for signals.
  template <class F>
  void start(F make) {
    ++active_;
    asio::co_spawn(io_, make(), [this](const std::exception_ptr& error) {
      if (error) {
        try {
          std::rethrow_exception(error);
        } catch (const std::exception& e) {
          spdlog::critical("internal error: {}", e.what());
          exit_code_ = exit_infrastructure;
        }
      }
      if (--active_ == 0) {
        // A timer or signal handler already queued with success must not re-arm itself
        // after this, or io_.run() would never return.
        finished_ = true;
        boost::system::error_code ignored;
        signals_.cancel(ignored);
        grace_timer_.cancel();
        reaper_timer_.cancel();
        watchdog_timer_.cancel();
        if (metrics_) metrics_->stop();
        asio::post(spool_io_, [] { reap_adopted_zombies(); });
        // Subscribers get every event (the last ones come with the layouts' last files,
        // waited for on a worker: it blocks), then the stream closes.
        if (events_) {
          asio::post(workers_, [this] {
            executor_.wait_for_layouts();
            asio::post(io_, [this] { events_->stop(); });
          });
        }
      }
    });
  }

  // Tasks a previous run took and never finished (it was killed, or the host went down):
  // their leftover processes are killed and each is reported as errored, unless its
  // payload made it into the spool just before the end. Runs before anything else, so
  // blocking here is fine.
  void recover_held_tasks() {
    const auto held_tasks = journal_.open();
    if (held_tasks.empty()) return;
    const auto spooled = spool_.task_keys();  // read once, however many tasks were held
    for (const auto& held : held_tasks) {
      const auto task = held.identity.text();
      if (const int killed = kill_marked_processes(held.cookie); killed > 0) {
        spdlog::warn("task {}: killed {} process(es) the previous run of the agent left running", task, killed);
      }
      if (spooled.contains(identity_key(held.identity))) {
        journal_.release(held.slot);
        continue;
      }
      spdlog::error("task {} (slot {}, taken {}) never finished: the agent stopped while it ran; reporting it as errored",
                    task, held.slot, held.taken_at.empty() ? "at an unknown time" : "at " + held.taken_at);
      const auto payload = error_payload(
          "The agent stopped (it was killed or its host went down) while this task ran, so the task has no result.",
          executor_.settings().payload);
      auto entry = spool_.add(task, serialize_payload(payload, held.identity));
      if (entry) journal_.release(held.slot);
      else spdlog::error("task {}: its error payload could not be spooled ({}); trying again at the next start", task,
                         entry.error().message);
    }
  }

  // Pings the service manager's watchdog from the event loop, so a loop that is stuck
  // gets the agent restarted. Only under a manager that asked for it (WatchdogSec).
  void schedule_watchdog() {
    const auto interval = notifier_.watchdog_interval();
    if (!interval) return;
    notifier_.watchdog();
    watchdog_timer_.expires_after(*interval);
    watchdog_timer_.async_wait([this](const boost::system::error_code& ec) {
      if (!ec && !finished_) schedule_watchdog();
    });
  }

  // What --metrics-address serves, read on the event loop where every count changes.
  EndpointContent endpoint_content() {
    EndpointContent content;
    content.metrics = [this] { return render_prometheus(metrics_snapshot()); };
    content.healthy = [this] { return !stopping_; };
    content.status = [this] {
      const auto snapshot = metrics_snapshot();
      const auto running = snapshot.slots_by_state.count("running") ? snapshot.slots_by_state.at("running") : 0;
      return nlohmann::json{{"status", stopping_ ? "stopping" : "ok"},
                            {"version", PROCTOR_VERSION},
                            {"slots", snapshot.slots},
                            {"running", running},
                            {"spool_pending", snapshot.spool_pending},
                            {"spool_full", snapshot.spool_full}}
          .dump();
    };
    return content;
  }

  MetricsSnapshot metrics_snapshot() const {
    MetricsSnapshot snapshot;
    snapshot.version = PROCTOR_VERSION;
    snapshot.start_time_seconds = started_at_;
    snapshot.slots = settings_.concurrent;
    for (const auto& slot : slots_) ++snapshot.slots_by_state[slot_state_name(slot->state)];
    snapshot.spool_pending = spool_.pending_count();
    snapshot.spool_pending_bytes = spool_.pending_bytes();
    snapshot.spool_max_bytes = spool_.max_bytes();
    snapshot.spool_full = spool_.full();
    snapshot.stopping = stopping_;
    if (events_) snapshot.event_stream = EventStreamFigures{events_->subscriber_count(), events_->dropped_count()};
    snapshot.counters = &counters_;
    return snapshot;
  }

  // Orphans re-parented to the agent (a subreaper) that end between tasks are reaped
  // within a few seconds; the scan runs on the spool thread, off the event loop.
  void schedule_reaping() {
    reaper_timer_.expires_after(5s);
    reaper_timer_.async_wait([this](const boost::system::error_code& ec) {
      if (ec || finished_) return;
      asio::post(spool_io_, [] { reap_adopted_zombies(); });
      schedule_reaping();
    });
  }

  // True (after saying so, loudly but not on every poll) while the spool is at its cap.
  bool spool_is_full() {
    const bool full = spool_.full();
    const auto now = std::chrono::steady_clock::now();
    if (full && (!spool_was_full_ || now - last_spool_full_report_ >= 60s)) {
      spdlog::error("the spool {} holds {:.1f} MiB of undelivered results, its cap is {:.1f} MiB: taking no new tasks "
                    "until the backend accepts them (nothing is dropped)",
                    spool_.dir().string(), static_cast<double>(spool_.pending_bytes()) / (1 << 20),
                    static_cast<double>(spool_.max_bytes()) / (1 << 20));
      spool_was_full_ = true;
      last_spool_full_report_ = now;
    } else if (!full && spool_was_full_) {
      spdlog::info("the spool is below its cap again: taking tasks");
      spool_was_full_ = false;
    }
    return full;
  }

  void wait_for_signal() {
    signals_.async_wait([this](const boost::system::error_code& ec, int signal) {
      if (ec || finished_) return;
      if (!stopping_) {
        spdlog::info("received {}: no new tasks; running tasks have {} s to finish", signal == SIGTERM ? "SIGTERM" : "SIGINT",
                     settings_.shutdown_grace.count() / 1000.0);
        begin_shutdown();
        grace_timer_.expires_after(settings_.shutdown_grace);
        grace_timer_.async_wait([this](const boost::system::error_code& tec) {
          if (tec) return;
          stop_running_tasks("the shutdown grace ran out");
          // Deliveries asleep in back-off give up now: their payloads stay spooled.
          for (auto& slot : slots_) {
            if (slot->state == SlotState::delivering) slot->timer.cancel();
          }
          flusher_timer_cancel();
        });
      } else {
        spdlog::warn("second signal: stopping now");
        hard_stop();
      }
      wait_for_signal();
    });
  }

  // Stop polling: idle slots end now; a poll in flight is answered first (the backend
  // may already have handed its task over), running tasks finish within the grace.
  void begin_shutdown() {
    if (!stopping_) notifier_.stopping("stopping: running tasks finish, then the agent exits");
    stopping_ = true;
    for (auto& slot : slots_) {
      if (slot->state == SlotState::idle) slot->timer.cancel();
    }
    flusher_timer_cancel();
  }

  void stop_running_tasks(const char* why) {
    for (auto& slot : slots_) {
      if (slot->state == SlotState::running) {
        spdlog::warn("slot {}: stopping its task: {}", slot->index, why);
        slot->stop.request_stop();
      }
    }
  }

  // Second signal: stop services, abandon deliveries (their payloads stay spooled).
  void hard_stop() {
    begin_shutdown();
    hard_stopped_ = true;
    stop_running_tasks("second signal");
    for (auto& slot : slots_) {
      slot->timer.cancel();
      if (slot->state == SlotState::delivering) slot->client->close();
    }
    if (flusher_client_) flusher_client_->close();
  }

  void flusher_timer_cancel() {
    if (flusher_timer_) flusher_timer_->cancel();
  }

  // Waits `delay` on `timer`; false when the wait was cut short by shutdown.
  static asio::awaitable<bool> wait(asio::steady_timer& timer, milliseconds delay) {
    timer.expires_after(delay);
    auto [ec] = co_await timer.async_wait(use_tuple);
    co_return !ec;
  }

  milliseconds jittered(milliseconds base, double spread) {
    std::uniform_real_distribution<double> dist(1.0 - spread, 1.0 + spread);
    return milliseconds(static_cast<int64_t>(static_cast<double>(base.count()) * dist(rng_)));
  }

  // The wait before retry number `failures`: the back-off, or the backend's Retry-After
  // when longer, never past the back-off ceiling (a Retry-After of 0 is no busy loop).
  milliseconds retry_delay(const BackendAnswer& answer, int failures) {
    const auto backoff = error_backoff(failures);
    if (!answer.retry_after) return backoff;
    return std::clamp(milliseconds(*answer.retry_after), backoff, std::max(backoff, settings_.max_error_backoff));
  }

  // The Idempotency-Key of a payload: derived from the task it answers, so that a task is
  // answered once as far as the backend can tell, whatever this agent sends later (an
  // "agent stopped" payload after a kill -9 that raced a delivery, say). A payload with no
  // identity (never made here) falls back to its spool entry, else a random key.
  std::string idempotency_key(const TaskIdentity* task, const std::optional<std::filesystem::path>& entry) {
    if (task) return "proctor-" + stable_digest("result of " + identity_key(*task));
    if (entry) return entry->stem().string();
    std::uniform_int_distribution<uint64_t> bits;
    return fmt::format("mem-{:016x}{:016x}", bits(rng_), bits(rng_));
  }

  milliseconds error_backoff(int failures) {
    const auto base = settings_.error_backoff * (int64_t{1} << std::min(failures, 10));
    return jittered(std::min(base, settings_.max_error_backoff), 0.25);
  }

  asio::awaitable<void> slot_loop(Slot& slot) {
    spdlog::info("slot {}: started", slot.index);
    int failures = 0;
    while (!stopping_) {
      if (spool_is_full()) {
        slot.state = SlotState::idle;
        if (!co_await wait(slot.timer, jittered(settings_.check_interval, 0.1))) break;
        continue;
      }
      slot.state = SlotState::polling;
      auto answer = co_await slot.client->get_task();
      if (!answer.ok() && answer.status != 404) {
        if (stopping_) break;
        if (answer.status == 0) {
          // No answer (or no login): a one-shot run says so and ends; the daemon retries.
          spdlog::error("slot {}: {}{}", slot.index, answer.login_failed ? "" : "cannot reach the backend: ",
                        answer.error);
          if (settings_.once) {
            exit_code_ = exit_infrastructure;
            begin_shutdown();
            break;
          }
        } else if (answer.status == 403) {
          spdlog::error("slot {}: the backend refused access (HTTP 403): this account lacks the role to take tasks",
                        slot.index);
        } else if (answer.status == 401) {
          spdlog::error("slot {}: the backend refused the credentials (HTTP 401){}", slot.index,
                        answer.error.empty() ? "" : ": " + answer.error);
        } else {
          spdlog::warn("slot {}: the backend answered HTTP {} to the task request: {}", slot.index, answer.status,
                       utf8_truncate(make_valid_utf8(answer.body), 512));
        }
        ++counters_.poll_errors;
        const auto delay = retry_delay(answer, failures++);
        slot.state = SlotState::idle;
        if (!co_await wait(slot.timer, delay)) break;
        continue;
      }
      failures = 0;
      auto poll = classify_poll_answer(answer.status, answer.body);
      if (std::holds_alternative<NoTask>(poll)) {
        if (stopping_) break;
        slot.state = SlotState::idle;
        if (!co_await wait(slot.timer, jittered(settings_.check_interval, 0.1))) break;
        continue;
      }
      if (auto* bad = std::get_if<MalformedTask>(&poll)) {
        spdlog::error("slot {}: the backend sent a malformed task ({}); raw body: {}", slot.index, bad->reason,
                      utf8_truncate(make_valid_utf8(answer.body), 4096));
        if (bad->identity && !is_duplicate(slot, *bad->identity)) {
          co_await hold(slot, *bad->identity);
          const auto payload = error_payload("The task is malformed: " + bad->reason + ".", executor_.settings().payload);
          ++counters_.tasks_finished[task_result_label(true, false)];
          co_await deliver(slot, *bad->identity,
                           co_await spool_payload(bad->identity->text(), serialize_payload(payload, *bad->identity),
                                                  slot.index));
        }
        if (settings_.once) {
          exit_code_ = exit_usage;
          begin_shutdown();
          break;
        }
        continue;
      }
      const auto& task = std::get<Task>(poll);
      if (is_duplicate(slot, task.identity)) {
        // A backend that keeps offering it is not asked again at once.
        slot.state = SlotState::idle;
        if (!co_await wait(slot.timer, jittered(settings_.check_interval, 0.1))) break;
        continue;
      }
      co_await run_task(slot, task);
      if (settings_.once) {
        begin_shutdown();
        break;
      }
    }
    slot.state = SlotState::done;
  }

  // A task handed out again that this agent already took (now or before a restart) is not
  // run twice: its one result is (or was) delivered by the slot that took it first.
  bool is_duplicate(const Slot& slot, const TaskIdentity& identity) {
    // Claimed at once, on the event loop: a copy handed to another slot a moment later is
    // caught even before the journal's write is done.
    if (journal_.claim(identity_key(identity))) return false;
    ++counters_.duplicates_refused;
    spdlog::warn("slot {}: the backend handed out task {} again; this agent already took it, so it is not run twice",
                 slot.index, identity.text());
    return true;
  }

  std::filesystem::path slot_dir(const Slot& slot) const {
    return settings_.work_dir / "slots" / std::to_string(slot.index);
  }

  // Records, durably and before anything runs, that `slot` holds the task.
  asio::awaitable<void> hold(const Slot& slot, const TaskIdentity& identity) {
    ++counters_.tasks_taken;
    const auto cookie = process_cookie(slot_dir(slot), identity);
    auto held = co_await asio::co_spawn(
        spool_io_, [&]() -> asio::awaitable<Result<void>> { co_return journal_.hold(slot.index, identity, cookie); },
        asio::use_awaitable);
    if (!held) {
      spdlog::error("slot {}: task {} could not be recorded in the journal ({}); if the agent dies while it runs, "
                    "it will not be reported",
                    slot.index, identity.text(), held.error().message);
    }
  }

  asio::awaitable<void> run_task(Slot& slot, const Task& task) {
    spdlog::info("slot {}: took task {} ({}{})", slot.index, task.identity.text(), redact_url(task.repository_url),
                 task.branch ? " @ " + *task.branch : "");
    const auto taken_at = std::chrono::steady_clock::now();
    co_await hold(slot, task.identity);
    slot.state = SlotState::running;
    slot.stop = std::stop_source();
    // Taken during shutdown (the poll was in flight): it is answered, as errored.
    if (stopping_) slot.stop.request_stop();
    const auto slot_dir = this->slot_dir(slot);
    auto token = slot.stop.get_token();
    // The task runs on a worker (it blocks); its payload comes back here.
    auto payload = co_await asio::co_spawn(
        workers_,
        [&]() -> asio::awaitable<ResultPayload> {
          try {
            co_return executor_.run(task, slot_dir, token, events_.get());
          } catch (const std::exception& e) {
            // A task that was taken is always answered, even when the agent itself fails.
            spdlog::critical("task {}: internal error: {}", task.identity.text(), e.what());
            co_return error_payload(std::string("The agent failed internally: ") + e.what() + ".",
                                    executor_.settings().payload);
          }
        },
        asio::use_awaitable);
    if (settings_.once) exit_code_ = exit_code_for(payload);
    ++counters_.tasks_finished[task_result_label(payload.error, payload.passed)];
    counters_.task_duration.observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - taken_at).count());
    co_await deliver(slot, task.identity,
                     co_await spool_payload(task.identity.text(), serialize_payload(payload, task.identity), slot.index));
  }

  // Writes the payload to the spool on the spool's thread (fsync never runs on the event
  // loop, and never waits behind running tasks); once it is there, the slot's journal
  // record goes. A payload the spool cannot take keeps the record until it is delivered:
  // if the agent dies first, the next start reports the task as errored.
  asio::awaitable<SpooledPayload> spool_payload(const std::string& identity, std::string body, int slot) {
    co_return co_await asio::co_spawn(
        spool_io_,
        [&]() -> asio::awaitable<SpooledPayload> {
          SpooledPayload spooled;
          spooled.held_by = slot;
          auto entry = spool_.add(identity, body);
          if (entry) {
            spooled.entry = *entry;
            journal_.release(slot);
            spooled.held_by.reset();
          } else {
            spdlog::error("the result of task {} could not be spooled ({}); delivering from memory", identity,
                          entry.error().message);
          }
          spooled.body = std::move(body);
          co_return spooled;
        },
        asio::use_awaitable);
  }

  // Posts until a 2xx or a final 4xx; retries with back-off otherwise. A payload that
  // is not delivered when the agent stops stays in the spool for the next start.
  asio::awaitable<void> deliver(Slot& slot, const TaskIdentity& identity, const SpooledPayload& spooled) {
    slot.state = SlotState::delivering;
    const bool settled = co_await deliver_spooled(*slot.client, slot.timer, &identity, spooled.body, spooled.entry);
    if (settled && spooled.held_by) asio::post(spool_io_, [this, held = *spooled.held_by] { journal_.release(held); });
  }

  // `task` is the task the payload answers, null when it names none (a spooled file's
  // payload that was not a task's).
  asio::awaitable<bool> deliver_spooled(BackendClient& client, asio::steady_timer& timer, const TaskIdentity* task,
                                        const std::string& body, const std::optional<std::filesystem::path>& entry) {
    const auto give_up = [this] { return hard_stopped_ || (stopping_ && shutdown_deadline_passed()); };
    // Logs name the task by its identity, else by the spool file.
    const std::string identity = task != nullptr ? task->text() : entry ? entry->filename().string() : std::string();
    const std::string key = idempotency_key(task, entry);
    for (int attempt = 0;; ++attempt) {
      if (hard_stopped_) break;  // stop at once: the payload is already spooled
      // The same key on every attempt, after a restart, and for any later payload of the
      // same task: a backend that recorded one knows every other for a replay.
      auto answer = co_await client.post_result(body, key);
      if (answer.ok()) {
        ++counters_.results_posted;
        spdlog::info("result of task {} delivered (HTTP {})", identity, answer.status);
        if (entry) asio::post(spool_io_, [this, path = *entry] { spool_.remove(path); });
        co_return true;
      }
      // 403 is the account's role, not the payload (SPEC §2.3): fixed on the backend, the
      // same payload goes through, so it is retried like a 5xx.
      const bool final_refusal = answer.status >= 400 && answer.status < 500 && answer.status != 401 &&
                                 answer.status != 403 && answer.status != 408 && answer.status != 429;
      if (final_refusal) {
        ++counters_.results_rejected;
        spdlog::error("the backend rejected the result of task {} (HTTP {}): {}", identity, answer.status,
                      utf8_truncate(make_valid_utf8(answer.body), 2048));
        if (entry) {
          asio::post(spool_io_, [this, path = *entry, status = answer.status, why = std::move(answer.body)] {
            spool_.reject(path, status, why);
          });
        }
        co_return true;
      }
      const auto delay = retry_delay(answer, attempt);
      ++counters_.post_retries;
      spdlog::warn("posting the result of task {} failed ({}); retrying in {:.1f} s", identity,
                   answer.status == 0 ? answer.error : "HTTP " + std::to_string(answer.status),
                   static_cast<double>(delay.count()) / 1000.0);
      if (give_up()) break;
      co_await wait(timer, delay);
      if (give_up()) break;
    }
    spdlog::warn("the result of task {} stays in the spool{}", identity,
                 entry ? " (" + entry->string() + ") for the next start" : " only in memory and is lost");
    co_return false;
  }

  bool shutdown_deadline_passed() const { return grace_timer_.expiry() <= std::chrono::steady_clock::now(); }

  // A payload a previous run spooled, read back, with the task it answers if it names one.
  struct SpooledEntry {
    std::filesystem::path path;
    std::string body;
    std::optional<TaskIdentity> task;
  };

  // Delivers payloads a previous run left in the spool.
  asio::awaitable<void> flush_spool() {
    // The spool is read on its own thread: file I/O stays off the event loop.
    // Each payload is parsed there too, once, for the task it answers.
    using Entries = std::vector<SpooledEntry>;
    const auto entries = co_await asio::co_spawn(
        spool_io_,
        [this]() -> asio::awaitable<Entries> {
          Entries found;
          for (auto& entry : spool_.pending()) {
            auto body = spool_.read(entry);
            if (!body) {
              spdlog::error("{}", body.error().message);
              continue;
            }
            auto task = payload_identity(*body);
            found.push_back({std::move(entry), std::move(body).value(), std::move(task)});
          }
          co_return found;
        },
        asio::use_awaitable);
    if (entries.empty()) co_return;
    spdlog::info("{} undelivered result(s) in the spool {}: delivering", entries.size(), spool_.dir().string());
    flusher_client_ = make_client_(io_.get_executor(), -1);
    asio::steady_timer timer(io_);
    flusher_timer_ = &timer;
    // However this coroutine ends, shutdown must not touch the timer afterwards.
    struct ForgetTimer {
      asio::steady_timer*& pointer;
      ~ForgetTimer() { pointer = nullptr; }
    } forget{flusher_timer_};
    for (const auto& spooled : entries) {
      const TaskIdentity* task = spooled.task ? &*spooled.task : nullptr;
      const bool settled = co_await deliver_spooled(*flusher_client_, timer, task, spooled.body, spooled.path);
      if (!settled) break;
    }
  }

  const DaemonSettings& settings_;
  const TaskExecutor& executor_;
  const BackendClientFactory& make_client_;
  asio::io_context io_{1};
  asio::thread_pool workers_;  // one per slot: tasks
  // Spool file I/O: one thread of its own, so that recording a delivery (removing its
  // entry) never waits behind tasks that run for hours, and spool calls stay in order.
  asio::thread_pool spool_io_{1};
  asio::signal_set signals_;
  asio::steady_timer grace_timer_;
  asio::steady_timer reaper_timer_;
  asio::steady_timer watchdog_timer_;
  Spool spool_;
  TaskJournal journal_;
  bool spool_was_full_ = false;  // said so, and not yet said it is below again
  std::chrono::steady_clock::time_point last_spool_full_report_;
  std::mt19937 rng_;
  std::vector<std::unique_ptr<Slot>> slots_;
  std::unique_ptr<BackendClient> flusher_client_;
  std::unique_ptr<EventServer> events_;  // null when the stream is off or could not start
  std::unique_ptr<MetricsServer> metrics_;  // null without --metrics-address
  ServiceNotifier notifier_;
  AgentCounters counters_;  // changed and read on the event loop only
  double started_at_ =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  asio::steady_timer* flusher_timer_ = nullptr;
  int active_ = 0;
  bool stopping_ = false;
  bool hard_stopped_ = false;
  bool finished_ = false;  // every coroutine has ended: nothing re-arms
  int exit_code_ = exit_ok;
};

}  // namespace

Daemon::Daemon(DaemonSettings settings, const TaskExecutor& executor, BackendClientFactory make_client)
    : settings_(std::move(settings)), executor_(executor), make_client_(std::move(make_client)) {}

int Daemon::run() {
  Agent agent(settings_, executor_, make_client_);
  return agent.run();
}

}  // namespace proctor
