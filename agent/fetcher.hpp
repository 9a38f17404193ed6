#pragma once
// Fetcher: brings a repository's code onto the disk. One real implementation per kind
// (git, svn, http, s3) and a recording fake in tests/. fetch() blocks (network,
// libgit2): call it on a worker thread.

#include <filesystem>
#include <optional>
#include <stop_token>
#include <string>
#include <utility>

#include "common/result.hpp"

namespace proctor {

struct SourceSpec {
  SourceSpec() = default;
  // A repository by URL, branch and pinned revision ({url, branch, revision}); credentials
  // are set afterwards.
  SourceSpec(std::string url_, std::optional<std::string> branch_ = {},  // NOLINT(google-explicit-constructor)
                      std::optional<std::string> revision_ = {})
      : url(std::move(url_)), branch(std::move(branch_)), revision(std::move(revision_)) {}

  std::string url;
  std::optional<std::string> branch;    // absent: the remote's default branch
  std::optional<std::string> revision;  // a commit (git) or revision number (svn) to pin
  std::string username;                 // http basic auth and svn; empty: none (or the URL's)
  std::string password;
  std::string access_key;               // s3; empty: the agent's own
  std::string secret_key;
  std::string region;
  std::string endpoint;
};

struct Checkout {
  std::filesystem::path dir;  // the working tree, clean, at the requested commit
  std::string commit;         // the commit (or revision) checked out
  bool reused = false;        // an earlier clone was updated instead of cloning again
};

class Fetcher {
 public:
  virtual ~Fetcher() = default;
  // Makes `cache_root`/<key of url> a clean working tree of `source`, reusing an earlier
  // clone of the same URL there. Errors say what failed (unreachable URL, no such branch).
  virtual Result<Checkout> fetch(const SourceSpec& source, const std::filesystem::path& cache_root,
                                 std::stop_token cancel) = 0;
};

}  // namespace proctor
