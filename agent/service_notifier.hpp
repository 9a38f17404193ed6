#pragma once
// ServiceNotifier: tells the service manager how the agent is doing (systemd's
// Type=notify: READY=1, STOPPING=1, STATUS=..., WATCHDOG=1), through libsystemd's
// sd_notify. libsystemd is loaded only when NOTIFY_SOCKET is set, so an agent that no
// service manager watches maps none of it (idle memory, issue 2); every call is then a
// no-op. A datagram send that never blocks: safe on the event loop.

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace proctor {

class ServiceNotifier {
 public:
  // Looks for NOTIFY_SOCKET and WATCHDOG_USEC (libsystemd's rules: WATCHDOG_PID, when
  // set, must be this process).
  ServiceNotifier();

  // The interval of watchdog pings the manager expects (half its WatchdogSec), if any.
  [[nodiscard]] std::optional<std::chrono::milliseconds> watchdog_interval() const { return watchdog_interval_; }

  // READY=1 with a status line: the agent polls.
  void ready(std::string_view status) const;
  // STOPPING=1 with a status line: the agent drains.
  void stopping(std::string_view status) const;
  // WATCHDOG=1: the event loop is alive.
  void watchdog() const;

 private:
  void send(const std::string& state) const;

  using NotifyFn = int (*)(int, const char*);
  NotifyFn notify_ = nullptr;
  std::optional<std::chrono::milliseconds> watchdog_interval_;
};

}  // namespace proctor
