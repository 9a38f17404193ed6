#include "agent/service_notifier.hpp"

#include <dlfcn.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <type_traits>

#include <spdlog/spdlog.h>
#include <systemd/sd-daemon.h>

namespace proctor {

namespace {

// The newline-free status: sd_notify's fields are one per line.
std::string one_line(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c == '\n') c = ' ';
  }
  return out;
}

}  // namespace

ServiceNotifier::ServiceNotifier() {
  const char* socket = std::getenv("NOTIFY_SOCKET");
  if (socket == nullptr || *socket == '\0') return;
  // Never unloaded: the agent notifies until it exits.
  void* library = ::dlopen("libsystemd.so.0", RTLD_NOW | RTLD_LOCAL);
  if (library == nullptr) {
    spdlog::warn("NOTIFY_SOCKET is set but libsystemd.so.0 cannot be loaded ({}): the service manager will not hear "
                 "that the agent is ready",
                 ::dlerror());
    return;
  }
  using WatchdogFn = decltype(&sd_watchdog_enabled);
  static_assert(std::is_same_v<NotifyFn, decltype(&sd_notify)>, "sd_notify's signature");
  notify_ = reinterpret_cast<NotifyFn>(::dlsym(library, "sd_notify"));
  auto* watchdog_enabled = reinterpret_cast<WatchdogFn>(::dlsym(library, "sd_watchdog_enabled"));
  if (notify_ == nullptr) {
    spdlog::warn("libsystemd.so.0 has no sd_notify: the service manager will not hear from the agent");
    return;
  }
  std::uint64_t usec = 0;
  if (watchdog_enabled != nullptr && watchdog_enabled(0, &usec) > 0 && usec > 0) {
    // Pinged twice per period, as sd_watchdog_enabled(3) advises.
    watchdog_interval_ = std::chrono::milliseconds(std::max<std::uint64_t>(1, usec / 2000));
  }
}

void ServiceNotifier::send(const std::string& state) const {
  if (notify_ == nullptr) return;
  if (const int sent = notify_(0, state.c_str()); sent < 0) {
    spdlog::debug("sd_notify({}) failed: error {}", state.substr(0, state.find('\n')), -sent);
  }
}

void ServiceNotifier::ready(std::string_view status) const { send("READY=1\nSTATUS=" + one_line(status)); }

void ServiceNotifier::stopping(std::string_view status) const { send("STOPPING=1\nSTATUS=" + one_line(status)); }

void ServiceNotifier::watchdog() const { send("WATCHDOG=1"); }

}  // namespace proctor
