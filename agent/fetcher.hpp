#pragma once
// Fetcher: brings a repository's code onto the disk. One real implementation per kind
// (git now; svn/http/s3 later) and a recording fake in tests/. fetch() blocks (network,
// libgit2): call it on a worker thread.

#include <filesystem>
#include <optional>
#include <stop_token>
#include <string>

#include "common/result.hpp"

namespace proctor {

struct SourceSpec {
  std::string url;
  std::optional<std::string> branch;    // absent: the remote's default branch
  std::optional<std::string> revision;  // a commit to pin, when given
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
