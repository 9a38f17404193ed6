#pragma once
// Fd: owns one POSIX file descriptor and closes it once, for the agent's low-level I/O.

#include <unistd.h>

#include <utility>

namespace proctor {

// Owns one file descriptor (-1 when empty); move-only.
class Fd {
 public:
  // Empty: owns nothing.
  Fd() = default;
  // Takes ownership of `fd` (a negative value, such as a failed open(), stays empty).
  explicit Fd(int fd) : fd_(fd) {}
  // Takes over `other`'s descriptor, leaving it empty.
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  // Closes the descriptor held, then takes over `other`'s, leaving it empty.
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) {
      reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  // Closes the descriptor held, if any.
  ~Fd() { reset(); }

  // The descriptor, still owned here; -1 when empty.
  [[nodiscard]] int get() const { return fd_; }
  // True when a descriptor is held.
  [[nodiscard]] bool valid() const { return fd_ >= 0; }
  // Closes the descriptor held, if any, and becomes empty.
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

}  // namespace proctor
