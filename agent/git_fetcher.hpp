#pragma once
// GitFetcher: the libgit2 Fetcher. Clones (in full: libgit2 1.5 has no shallow clone) at
// a branch or the default branch, pins a revision, updates submodules, and reuses a cached
// clone of the same URL (fetch, hard reset, remove untracked and ignored files).

#include <string>
#include <string_view>

#include "agent/fetcher.hpp"

namespace proctor {

class GitFetcher final : public Fetcher {
 public:
  GitFetcher();   // initialises libgit2 (reference counted)
  ~GitFetcher() override;
  GitFetcher(const GitFetcher&) = delete;
  GitFetcher& operator=(const GitFetcher&) = delete;

  Result<Checkout> fetch(const SourceSpec& source, const std::filesystem::path& cache_root,
                         std::stop_token cancel) override;

  // The folder name under cache_root for `url`: readable, [A-Za-z0-9._-] only, with a
  // hash of the URL; credentials in the URL change neither the name nor the folder.
  static std::string cache_key(std::string_view url);
};

}  // namespace proctor
