#pragma once
// SerialWorker: one thread that runs jobs in the order they were posted — file writing
// that must not hold up the thread that asked for it, but must keep its order.

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

namespace proctor {

class SerialWorker {
 public:
  SerialWorker();
  // Runs every job posted, then joins.
  ~SerialWorker();
  SerialWorker(const SerialWorker&) = delete;
  SerialWorker& operator=(const SerialWorker&) = delete;

  // Queues `job`; it runs after every job posted before it. A job must not throw.
  void post(std::function<void()> job);
  // Waits until every job posted before this call has run.
  void drain();
  // Waits until at most `max_queued` jobs wait to run (the running one not counted).
  void wait_for_room(std::size_t max_queued);

 private:
  void run();

  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable idle_;  // a job is done: for drain()
  std::condition_variable room_;  // a job left the queue: for wait_for_room()
  std::deque<std::function<void()>> jobs_;
  std::size_t posted_ = 0;
  std::size_t done_ = 0;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace proctor
