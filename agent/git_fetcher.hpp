#pragma once
// GitFetcher: the libgit2 Fetcher. Clones (shallow when the server allows) at a branch
// or the default branch, pins a revision, updates submodules, and reuses a cached clone
// of the same URL (fetch, hard reset, remove untracked and ignored files).

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
};

}  // namespace proctor
