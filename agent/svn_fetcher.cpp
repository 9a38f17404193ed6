#include "agent/svn_fetcher.hpp"

#include <algorithm>
#include <cstdlib>
#include <system_error>
#include <vector>

#include "agent/url.hpp"
#include "common/text.hpp"

namespace proctor {

namespace fs = std::filesystem;

namespace {

// A plain revision number (svn's -r also takes dates and keywords; tasks pin numbers).
bool is_revision_number(std::string_view text) {
  return !text.empty() && text.size() <= 12 && std::all_of(text.begin(), text.end(), [](char c) {
    return c >= '0' && c <= '9';
  });
}

}  // namespace

Result<Checkout> SvnFetcher::fetch(const SourceSpec& source, const fs::path& cache_root, std::stop_token cancel) {
  const std::string& url = source.url;
  if (trim(url).empty()) return make_error("the svn repository URL is empty");
  if (url.front() == '-') return make_error("the svn repository URL '" + redact_url(url) + "' looks like an option");
  if (source.revision && !is_revision_number(*source.revision)) {
    return make_error("svn revision '" + *source.revision + "' is not a revision number");
  }
  const fs::path folder = cache_root / cache_folder_name(url);
  const fs::path working_copy = folder / "wc";
  const fs::path config = folder / "config";
  std::error_code ec;
  fs::create_directories(config, ec);
  if (ec) return make_error("cannot create " + config.string() + ": " + ec.message());

  // Runs `svn <args>` with the shared options; the output tail when it fails.
  const auto svn = [&](std::vector<std::string> args, std::string* output) -> Result<void> {
    ProcessSpec spec;
    spec.argv = {svn_, "--non-interactive", "--no-auth-cache", "--config-dir", config.string()};
    if (!source.username.empty()) {
      spec.argv.insert(spec.argv.end(), {"--username", source.username});
      if (!source.password.empty()) {
        spec.argv.emplace_back("--password-from-stdin");
        spec.stdin_data = source.password + "\n";
      }
    }
    spec.argv.insert(spec.argv.end(), args.begin(), args.end());
    spec.working_dir = folder;
    spec.env = {{"PATH", "/usr/local/bin:/usr/bin:/bin"}, {"LC_ALL", "C"}, {"HOME", folder.string()}};
    spec.timeout = timeout_;
    spec.kill_grace = std::chrono::seconds(2);
    std::string lines;
    spec.on_line = [&lines](std::string_view line) {
      if (lines.size() < 64 * 1024) (lines += line) += '\n';
    };
    const ProcessOutcome outcome = runner_.run(spec, cancel);
    if (output != nullptr) *output = lines;
    if (!outcome.started) return make_error("cannot run svn: " + outcome.start_error);
    if (outcome.cancelled) return make_error("the svn " + args.front() + " was cancelled");
    if (outcome.timed_out) return make_error("svn " + args.front() + " of " + redact_url(url) + " timed out");
    if (outcome.exit_code != 0) {
      const std::string why = trim(outcome.output_tail).empty() ? "it failed" : std::string(trim(outcome.output_tail));
      return make_error("svn " + args.front() + " of " + redact_url(url) + " failed: " + utf8_tail(why, 1024));
    }
    return {};
  };

  std::vector<std::string> revision;
  if (source.revision) revision = {"-r", *source.revision};
  Checkout checkout;
  checkout.dir = working_copy;
  checkout.reused = fs::exists(working_copy / ".svn", ec);
  if (checkout.reused) {
    // Back to a pristine tree: local edits reverted, unversioned and ignored files gone.
    if (auto reverted = svn({"revert", "--recursive", "--", working_copy.string()}, nullptr); !reverted) {
      return reverted.error();
    }
    if (auto cleaned = svn({"cleanup", "--remove-unversioned", "--remove-ignored", "--", working_copy.string()},
                           nullptr);
        !cleaned) {
      return cleaned.error();
    }
    // --ignore-externals: svn:externals could name any URL, past --allow-schemes.
    std::vector<std::string> args = {"update", "--ignore-externals", "--accept", "theirs-full"};
    args.insert(args.end(), revision.begin(), revision.end());
    args.insert(args.end(), {"--", working_copy.string()});
    if (auto updated = svn(args, nullptr); !updated) return updated.error();
  } else {
    fs::remove_all(working_copy, ec);
    std::vector<std::string> args = {"checkout", "--ignore-externals"};
    args.insert(args.end(), revision.begin(), revision.end());
    args.insert(args.end(), {"--", url, working_copy.string()});
    if (auto checked_out = svn(args, nullptr); !checked_out) return checked_out.error();
  }
  std::string info;
  if (auto read = svn({"info", "--show-item", "revision", "--", working_copy.string()}, &info); !read) {
    return read.error();
  }
  checkout.commit = "r" + std::string(trim(info));
  return checkout;
}

}  // namespace proctor
