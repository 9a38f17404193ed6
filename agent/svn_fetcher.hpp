#pragma once
// SvnFetcher: svn repositories through the `svn` client (SPEC §4), run by the
// ProcessRunner so that it is cancellable and killed on timeout. A checkout is made
// once per URL and updated (after a revert and a cleanup of unversioned files) on
// reuse. A password is given on stdin (--password-from-stdin): never on a command line,
// in the process list or in a log; nothing is cached (--no-auth-cache) and ~/.subversion
// is never read (a config folder of its own).

#include <chrono>
#include <string>

#include "agent/fetcher.hpp"
#include "agent/process_runner.hpp"

namespace proctor {

class SvnFetcher : public Fetcher {
 public:
  // `runner` must outlive this; `svn` is the client's path or name on PATH.
  explicit SvnFetcher(ProcessRunner& runner, std::string svn = "svn",
                      std::chrono::milliseconds timeout = std::chrono::minutes(10))
      : runner_(runner), svn_(std::move(svn)), timeout_(timeout) {}

  Result<Checkout> fetch(const SourceSpec& source, const std::filesystem::path& cache_root,
                         std::stop_token cancel) override;

 private:
  ProcessRunner& runner_;
  std::string svn_;
  std::chrono::milliseconds timeout_;
};

}  // namespace proctor
