#pragma once
// GitFetcher: the libgit2 Fetcher. Clones (in full: libgit2 1.5 has no shallow clone) at
// a branch or the default branch, pins a revision, updates submodules, and reuses a cached
// clone of the same URL (fetch, hard reset, remove untracked and ignored files).

#include <mutex>
#include <string>
#include <string_view>

#include "agent/fetcher.hpp"

namespace proctor {

class GitFetcher final : public Fetcher {
 public:
  GitFetcher() = default;  // libgit2 is initialised by the first fetch
  ~GitFetcher() override;
  GitFetcher(const GitFetcher&) = delete;
  GitFetcher& operator=(const GitFetcher&) = delete;

  Result<Checkout> fetch(const SourceSpec& source, const std::filesystem::path& cache_root,
                         std::stop_token cancel) override;

  // The folder name under cache_root for `url`: readable, [A-Za-z0-9._-] only, with a
  // hash of the URL; credentials in the URL change neither the name nor the folder.
  static std::string cache_key(std::string_view url);

 private:
  // Initialises libgit2 once, on first use: its initialisation (OpenSSL, libssh2) costs
  // about 3 MB of RSS that an idle agent should not carry.
  Result<void> ensure_initialised();

  std::once_flag init_once_;
  bool initialised_ = false;
  std::string init_error_;
};

}  // namespace proctor
