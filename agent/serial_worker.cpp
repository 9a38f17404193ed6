#include "agent/serial_worker.hpp"

namespace proctor {

SerialWorker::SerialWorker() : thread_([this] { run(); }) {}

SerialWorker::~SerialWorker() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

void SerialWorker::post(std::function<void()> job) {
  {
    std::lock_guard lock(mutex_);
    jobs_.push_back(std::move(job));
    ++posted_;
  }
  wake_.notify_one();
}

void SerialWorker::drain() {
  std::unique_lock lock(mutex_);
  const std::size_t target = posted_;
  idle_.wait(lock, [&] { return done_ >= target; });
}

void SerialWorker::wait_for_room(std::size_t max_queued) {
  std::unique_lock lock(mutex_);
  room_.wait(lock, [&] { return jobs_.size() <= max_queued; });
}

void SerialWorker::run() {
  std::unique_lock lock(mutex_);
  for (;;) {
    wake_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
    if (jobs_.empty()) return;  // stopping, and everything has run
    auto job = std::move(jobs_.front());
    jobs_.pop_front();
    room_.notify_all();
    lock.unlock();
    job();
    lock.lock();
    ++done_;
    idle_.notify_all();
  }
}

}  // namespace proctor
