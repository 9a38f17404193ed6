#pragma once
// TempDir: an RAII scratch folder for one test. It is removed when the test passed and
// kept (its path printed) when the test failed, so the evidence stays for a look.

#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>

#include <doctest/doctest.h>

namespace proctor::test {

// True when an assertion of the running test case has failed (tests/unit/main.cpp).
bool current_test_failed();

class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("PROCTOR_TEST_TMP");
    std::filesystem::path root = base != nullptr ? base : std::filesystem::temp_directory_path();
    std::random_device rd;
    path_ = root / ("proctor-test-" + std::to_string(rd()) + std::to_string(rd()));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    if (current_test_failed()) {
      MESSAGE("kept test folder " << path_.string());
      return;
    }
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  [[nodiscard]] const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

}  // namespace proctor::test
