#pragma once
// Recording fakes of the agent's side-effect interfaces (as ninja's tests do): they
// record what they were asked and answer what the test scripted.

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <vector>

#include "agent/fetcher.hpp"
#include "agent/process_runner.hpp"
#include "common/events.hpp"

namespace proctor::test {

// A Fetcher that "checks out" by creating an empty folder, or fails as told.
class RecordingFetcher final : public Fetcher {
 public:
  Result<Checkout> fetch(const SourceSpec& source, const std::filesystem::path& cache_root,
                         std::stop_token /*cancel*/) override {
    requests.push_back(source);
    if (!fail_with.empty()) return make_error(fail_with);
    Checkout checkout;
    checkout.dir = cache_root / "checkout";
    std::filesystem::create_directories(checkout.dir);
    checkout.commit = "0123456789abcdef0123456789abcdef01234567";
    if (populate) populate(source, checkout.dir);
    return checkout;
  }
  std::vector<SourceSpec> requests;
  // Called with each fetched checkout's folder, for the test to fill in.
  std::function<void(const SourceSpec&, const std::filesystem::path&)> populate;
  std::string fail_with;  // non-empty: every fetch fails with this message
};

// The value of environment variable `name` in `spec` ("" when unset).
inline std::string env_of(const ProcessSpec& spec, const std::string& name) {
  for (const auto& [key, value] : spec.env) {
    if (key == name) return value;
  }
  return {};
}

// A ProcessRunner that records specs and lets the test play the service.
class RecordingProcessRunner final : public ProcessRunner {
 public:
  // Safe to call from several threads at once (an orchestration runs several processes):
  // only the record is locked, so one run's behaviour never waits on another's.
  ProcessOutcome run(const ProcessSpec& spec, std::stop_token /*cancel*/) override {
    {
      std::lock_guard lock(mutex);
      specs.push_back(spec);
    }
    ProcessOutcome outcome;
    outcome.started = true;
    outcome.exit_code = 0;
    outcome.peak_rss_kib = 4321;
    outcome.wall = std::chrono::milliseconds(1500);
    if (behaviour) behaviour(spec, outcome);
    if (outcome.started && spec.on_start) spec.on_start();
    if (outcome.started && spec.on_line) {
      for (const auto& line : lines) spec.on_line(line);
    }
    return outcome;
  }
  // The value of environment variable `name` in the last spec ("" when unset).
  [[nodiscard]] std::string env(const std::string& name) const { return env_of(specs.back(), name); }
  std::vector<ProcessSpec> specs;
  std::function<void(const ProcessSpec&, ProcessOutcome&)> behaviour;
  std::vector<std::string> lines;  // what every started process "prints", to on_line
  std::mutex mutex;
};

// An EventSink that keeps every event, and lets a test wait for one.
class RecordingEventSink final : public EventSink {
 public:
  void publish(const Event& event) override {
    {
      std::lock_guard lock(mutex_);
      events_.push_back(event);
    }
    changed_.notify_all();
  }
  // Every event so far.
  [[nodiscard]] std::vector<Event> events() const {
    std::lock_guard lock(mutex_);
    return events_;
  }
  // Waits (at most `limit`) until an event satisfies `match`; true when one did.
  bool wait_for(const std::function<bool(const Event&)>& match, std::chrono::seconds limit = std::chrono::seconds(20)) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, limit, [&] {
      for (const auto& event : events_) {
        if (match(event)) return true;
      }
      return false;
    });
  }

 private:
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<Event> events_;
};

}  // namespace proctor::test
