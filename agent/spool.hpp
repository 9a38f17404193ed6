#pragma once
// Spool: payloads on disk until the backend has them. A payload is written (fsync'd,
// atomic rename) to pending/ before its first POST and removed only after a 2xx; a
// final 4xx moves it to rejected/ with the answer. Pending payloads survive restarts.

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"

namespace proctor {

class Spool {
 public:
  // A spool in `dir` (pending/ and rejected/ are created on demand).
  explicit Spool(std::filesystem::path dir);

  // Stores `body` for the task `identity`; returns the file that holds it.
  Result<std::filesystem::path> add(std::string_view identity, std::string_view body) const;
  // Forgets a delivered payload.
  void remove(const std::filesystem::path& entry) const;
  // Moves a payload the backend refused for good to rejected/, with its answer beside it.
  void reject(const std::filesystem::path& entry, int status, std::string_view answer) const;
  // The payloads still to deliver, oldest first.
  [[nodiscard]] std::vector<std::filesystem::path> pending() const;
  // Reads a spooled payload.
  [[nodiscard]] Result<std::string> read(const std::filesystem::path& entry) const;

  [[nodiscard]] const std::filesystem::path& dir() const { return dir_; }

 private:
  std::filesystem::path dir_;
};

}  // namespace proctor
