#include "agent/git_fetcher.hpp"

#include <git2.h>

#include <array>
#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "common/text.hpp"

// A note on leaks: libgit2 1.5.1 (Debian 12) leaks a PCRE2 match block (about 20 KiB)
// each time a config regex fails to match (fixed upstream in libgit2 PR #6382, 1.6).
// Every git_remote_lookup/git_remote_create scans the whole config for url.*.insteadOf
// that way, which cost a long-running agent ~0.5 MB per fetch. So this file reads
// remote.origin.url itself, fetches through an in-memory remote that skips libgit2's
// insteadOf scan, applies insteadOf itself, and does not write FETCH_HEAD. Submodule
// operations still leak a little (libgit2 matches submodule config the same way).

namespace proctor {
namespace {

namespace fs = std::filesystem;

// unique_ptr deleter calling libgit2's free function for that object type.
template <auto Free>
struct GitDeleter {
  template <class T>
  void operator()(T* object) const noexcept {
    Free(object);
  }
};

template <class T, auto Free>
using GitPtr = std::unique_ptr<T, GitDeleter<Free>>;
using RepositoryPtr = GitPtr<git_repository, git_repository_free>;
using RemotePtr = GitPtr<git_remote, git_remote_free>;
using ObjectPtr = GitPtr<git_object, git_object_free>;
using ReferencePtr = GitPtr<git_reference, git_reference_free>;
using SubmodulePtr = GitPtr<git_submodule, git_submodule_free>;
using ConfigPtr = GitPtr<git_config, git_config_free>;
using ConfigIteratorPtr = GitPtr<git_config_iterator, git_config_iterator_free>;

// A git_buf released on scope exit.
class GitBuf {
 public:
  GitBuf() = default;
  ~GitBuf() { git_buf_dispose(&buf_); }
  GitBuf(const GitBuf&) = delete;
  GitBuf& operator=(const GitBuf&) = delete;
  git_buf* get() { return &buf_; }
  [[nodiscard]] std::string str() const { return buf_.ptr != nullptr ? std::string(buf_.ptr, buf_.size) : ""; }

 private:
  git_buf buf_ = GIT_BUF_INIT;
};

constexpr std::string_view kCancelled = "fetch cancelled";
// libgit2 asks again after every rejected credential; past this many offers of the same
// kind the credential is wrong and asking forever would hang the slot.
constexpr int kMaxUserpassAttempts = 1;
// Submodules of submodules of ...: a sane repository never nests this deep.
constexpr int kMaxSubmoduleDepth = 8;

// A repository URL split into what may be stored, what may be shown, and the secrets.
struct RepoUrl {
  std::string remote;   // stored as origin on disk: never a password, no userinfo for http(s)
  std::string display;  // for messages and folder names: no userinfo at all
  std::string host;     // lower-case host; credentials from the URL only go back there
  std::string username;  // percent-decoded userinfo, kept in memory only
  std::string password;
  bool has_userinfo = false;
};

std::string percent_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() &&
        std::isxdigit(static_cast<unsigned char>(s[i + 1])) != 0 &&
        std::isxdigit(static_cast<unsigned char>(s[i + 2])) != 0) {
      out.push_back(static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16)));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

// The host of "host", "host:port", "[v6]:port"; lower-cased.
std::string host_of_authority(std::string_view host_port) {
  if (!host_port.empty() && host_port.front() == '[') {
    const auto close = host_port.find(']');
    return to_lower(host_port.substr(0, close == std::string_view::npos ? host_port.size() : close + 1));
  }
  return to_lower(host_port.substr(0, host_port.find(':')));
}

bool has_scheme(std::string_view url, std::size_t scheme_end) {
  if (scheme_end == 0 || std::isalpha(static_cast<unsigned char>(url[0])) == 0) return false;
  for (std::size_t i = 1; i < scheme_end; ++i) {
    const char c = url[i];
    if (std::isalnum(static_cast<unsigned char>(c)) == 0 && c != '+' && c != '-' && c != '.') return false;
  }
  return true;
}

// Splits "user:password" into the URL's credential fields.
void take_userinfo(std::string_view userinfo, RepoUrl& url) {
  url.has_userinfo = true;
  const auto colon = userinfo.find(':');
  url.username = percent_decode(userinfo.substr(0, colon));
  if (colon != std::string_view::npos) url.password = percent_decode(userinfo.substr(colon + 1));
}

// Handles "scheme://[userinfo@]host[:port]/path", scp-like "[user@]host:path" and paths.
RepoUrl parse_url(std::string_view raw) {
  RepoUrl url;
  const auto scheme_end = raw.find("://");
  if (scheme_end != std::string_view::npos && has_scheme(raw, scheme_end)) {
    const std::string scheme = to_lower(raw.substr(0, scheme_end));
    const std::string_view rest = raw.substr(scheme_end + 3);
    const auto authority_end = std::min(rest.find_first_of("/?#"), rest.size());
    const std::string_view authority = rest.substr(0, authority_end);
    const std::string_view path = rest.substr(authority_end);
    const auto at = authority.rfind('@');
    const std::string_view host_port = at == std::string_view::npos ? authority : authority.substr(at + 1);
    const std::string_view userinfo = at == std::string_view::npos ? std::string_view{} : authority.substr(0, at);
    if (at != std::string_view::npos) take_userinfo(userinfo, url);
    url.host = host_of_authority(host_port);
    url.display = scheme + "://" + std::string(host_port) + std::string(path);
    const bool http = scheme == "http" || scheme == "https";
    // HTTP credentials go through the credentials callback, never onto disk. An SSH user
    // name is no secret and selects the account, so it stays (its password does not).
    if (http || !url.has_userinfo) {
      url.remote = url.display;
    } else {
      url.remote = scheme + "://" + std::string(userinfo.substr(0, userinfo.find(':'))) + "@" +
                   std::string(host_port) + std::string(path);
    }
    return url;
  }
  const auto slash = raw.find('/');
  const auto at = raw.find('@');
  if (at != std::string_view::npos && (slash == std::string_view::npos || at < slash)) {
    // scp-like "user@host:path".
    const std::string_view userinfo = raw.substr(0, at);
    const std::string_view rest = raw.substr(at + 1);
    take_userinfo(userinfo, url);
    url.host = to_lower(rest.substr(0, rest.find(':')));
    url.display = std::string(rest);
    url.remote = std::string(userinfo.substr(0, userinfo.find(':'))) + "@" + std::string(rest);
    return url;
  }
  url.remote = url.display = std::string(raw);
  const auto colon = raw.find(':');
  if (colon != std::string_view::npos && (slash == std::string_view::npos || colon < slash)) {
    url.host = to_lower(raw.substr(0, colon));  // scp-like "host:path"
  }
  return url;
}

// Removes any secret of `url` that libgit2 might have echoed into `message`.
std::string scrub(std::string message, const RepoUrl& url) {
  // Very short secrets would blank out ordinary words; they cannot reach libgit2 anyway,
  // since it never sees the URL's userinfo.
  constexpr std::size_t kMinSecret = 4;
  for (const std::string& secret : {url.password, url.username}) {
    if (!url.has_userinfo || secret.size() < kMinSecret) continue;
    for (auto pos = message.find(secret); pos != std::string::npos; pos = message.find(secret, pos)) {
      message.replace(pos, secret.size(), "***");
      pos += 3;
    }
  }
  return message;
}

// "<readable>-<hash>": the readable tail of the URL made of [A-Za-z0-9._-] only (so no
// '/', no "..", no leading dot), plus a hash of the stored URL so two URLs do not share
// a folder. URLs differing only in credentials share it on purpose.
std::string key_of(const RepoUrl& url) {
  std::string_view readable = url.display;
  if (const auto scheme_end = readable.find("://"); scheme_end != std::string_view::npos) {
    readable.remove_prefix(scheme_end + 3);
  }
  while (!readable.empty() && readable.back() == '/') readable.remove_suffix(1);
  if (readable.ends_with(".git")) readable.remove_suffix(4);
  std::string name;
  for (const char c : readable) {
    const bool keep = std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '.' || c == '-' || c == '_';
    const char out = keep ? c : '_';
    if ((out == '_' || out == '.') && !name.empty() && name.back() == out) continue;  // no "..", no "__"
    name.push_back(out);
  }
  constexpr std::size_t kMaxReadable = 48;
  if (name.size() > kMaxReadable) name.erase(0, name.size() - kMaxReadable);
  const auto first = name.find_first_not_of("._-");
  name = first == std::string::npos ? std::string() : name.substr(first);
  while (!name.empty() && (name.back() == '.' || name.back() == '_')) name.pop_back();
  if (name.empty()) name = "repo";
  return name + "-" + fnv1a_hex(url.remote);
}

std::string last_git_message() {
  const git_error* error = git_error_last();
  return error != nullptr && error->message != nullptr ? error->message : "unknown libgit2 error";
}

int last_git_class() {
  const git_error* error = git_error_last();
  return error != nullptr ? error->klass : GIT_ERROR_NONE;
}

// Errors of the conversation with the server: the cached clone is not to blame.
bool is_network_class(int klass) {
  return klass == GIT_ERROR_NET || klass == GIT_ERROR_SSH || klass == GIT_ERROR_HTTP ||
         klass == GIT_ERROR_SSL || klass == GIT_ERROR_CALLBACK;
}

// Removes `dir`; a test run may have left read-only folders, so write access is restored
// once before giving up.
std::error_code force_remove_all(const fs::path& dir) {
  std::error_code ec;
  fs::remove_all(dir, ec);
  if (!ec) return ec;
  std::error_code walk_ec;
  fs::permissions(dir, fs::perms::owner_all, fs::perm_options::add, walk_ec);
  for (auto it = fs::recursive_directory_iterator(dir, fs::directory_options::skip_permission_denied, walk_ec);
       !walk_ec && it != fs::recursive_directory_iterator(); it.increment(walk_ec)) {
    std::error_code perm_ec;
    if (it->is_directory(perm_ec) && !it->is_symlink(perm_ec)) {
      fs::permissions(it->path(), fs::perms::owner_all, fs::perm_options::add, perm_ec);
    }
  }
  ec.clear();
  fs::remove_all(dir, ec);
  return ec;
}

// State shared with libgit2's callbacks for one fetch() call.
struct Session {
  std::stop_token cancel;
  const RepoUrl* url = nullptr;
  int userpass_attempts = 0;
  int ssh_step = 0;  // 0: agent, 1: id_ed25519, 2: id_rsa, 3: nothing left
  int offered = 0;   // credentials handed to libgit2 on this connection

  // Called before each network operation: each connection may try every credential.
  void reset_attempts() {
    userpass_attempts = 0;
    ssh_step = 0;
    offered = 0;
  }
};

int refuse_when_cancelled(void* payload) {
  const auto* session = static_cast<const Session*>(payload);
  if (!session->cancel.stop_requested()) return 0;
  git_error_set_str(GIT_ERROR_CALLBACK, std::string(kCancelled).c_str());
  return -1;  // a negative value makes libgit2 abort the transfer
}

int on_transfer_progress(const git_indexer_progress* /*stats*/, void* payload) {
  return refuse_when_cancelled(payload);
}

int on_sideband(const char* /*text*/, int /*length*/, void* payload) { return refuse_when_cancelled(payload); }

// Packing happens on our side for local (path, file://) remotes and can take long.
int on_pack_progress(int /*stage*/, std::uint32_t /*current*/, std::uint32_t /*total*/, void* payload) {
  return refuse_when_cancelled(payload);
}

std::string home_ssh_key(const char* name) {
  const char* home = std::getenv("HOME");
  if (home == nullptr || *home == '\0') return {};
  return (fs::path(home) / ".ssh" / name).string();
}

int acquire_credentials(git_credential** out, const char* url, const char* username_from_url,
                        unsigned int allowed_types, void* payload) {
  auto& session = *static_cast<Session*>(payload);
  if (session.cancel.stop_requested()) return refuse_when_cancelled(payload);
  const RepoUrl& repo = *session.url;
  // Tokens from the repository URL are only sent back to its own host, never to a
  // submodule or redirect elsewhere.
  const bool same_host = url != nullptr && parse_url(url).host == repo.host;
  std::string user = username_from_url != nullptr && *username_from_url != '\0' ? username_from_url : "";
  if (user.empty() && same_host && !repo.username.empty()) user = repo.username;

  if ((allowed_types & GIT_CREDENTIAL_SSH_KEY) != 0U) {
    if (user.empty()) user = "git";
    while (session.ssh_step < 3) {
      const int step = session.ssh_step++;
      if (step == 0) {
        const char* agent = std::getenv("SSH_AUTH_SOCK");
        if (agent != nullptr && *agent != '\0') {
          ++session.offered;
          return git_credential_ssh_key_from_agent(out, user.c_str());
        }
        continue;
      }
      const std::string key = home_ssh_key(step == 1 ? "id_ed25519" : "id_rsa");
      std::error_code ec;
      if (key.empty() || !fs::exists(key, ec)) continue;
      const std::string pub = key + ".pub";
      ++session.offered;
      return git_credential_ssh_key_new(out, user.c_str(), fs::exists(pub, ec) ? pub.c_str() : nullptr,
                                        key.c_str(), nullptr);
    }
  }
  if ((allowed_types & GIT_CREDENTIAL_USERPASS_PLAINTEXT) != 0U && same_host && repo.has_userinfo &&
      session.userpass_attempts < kMaxUserpassAttempts) {
    ++session.userpass_attempts;
    ++session.offered;
    return git_credential_userpass_plaintext_new(out, repo.username.c_str(), repo.password.c_str());
  }
  if ((allowed_types & GIT_CREDENTIAL_USERNAME) != 0U) {
    return git_credential_username_new(out, user.empty() ? "git" : user.c_str());
  }
  git_error_set_str(GIT_ERROR_NET, session.offered > 0
                                       ? "authentication failed: the server refused every credential offered"
                                       : "authentication required: the URL carries no credentials and no SSH key is available");
  return GIT_EAUTH;
}

git_remote_callbacks make_callbacks(Session& session) {
  git_remote_callbacks callbacks;
  git_remote_init_callbacks(&callbacks, GIT_REMOTE_CALLBACKS_VERSION);
  callbacks.credentials = acquire_credentials;
  callbacks.transfer_progress = on_transfer_progress;
  callbacks.sideband_progress = on_sideband;
  callbacks.pack_progress = on_pack_progress;
  callbacks.payload = &session;
  return callbacks;
}

// "trunk" from "refs/heads/trunk" or "refs/remotes/origin/trunk".
std::string branch_name(std::string_view ref) {
  for (const std::string_view prefix : {std::string_view("refs/heads/"), std::string_view("refs/remotes/origin/")}) {
    if (ref.starts_with(prefix)) ref.remove_prefix(prefix.size());
  }
  return std::string(ref);
}

// url.<base>.insteadOf as git applies it (the longest matching prefix wins), read
// without the config regex that leaks in libgit2 1.5 (see the note on leaks at the top).
std::string apply_instead_of(git_repository* repo, const std::string& url) {
  git_config* raw_config = nullptr;
  if (git_repository_config_snapshot(&raw_config, repo) < 0) return url;
  const ConfigPtr config(raw_config);
  git_config_iterator* raw_iterator = nullptr;
  if (git_config_iterator_new(&raw_iterator, config.get()) < 0) return url;
  const ConfigIteratorPtr iterator(raw_iterator);
  constexpr std::string_view kPrefix = "url.";
  constexpr std::string_view kSuffix = ".insteadof";  // libgit2 lower-cases the key
  std::string base;
  std::size_t matched = 0;
  git_config_entry* entry = nullptr;
  while (git_config_next(&entry, iterator.get()) == 0) {
    const std::string_view name = entry->name;
    const std::string_view value = entry->value != nullptr ? entry->value : "";
    if (!name.starts_with(kPrefix) || !name.ends_with(kSuffix) || name.size() <= kPrefix.size() + kSuffix.size() ||
        value.empty() || !std::string_view(url).starts_with(value) || value.size() <= matched) {
      continue;
    }
    base = name.substr(kPrefix.size(), name.size() - kPrefix.size() - kSuffix.size());
    matched = value.size();
  }
  return matched == 0 ? url : base + url.substr(matched);
}

// git_clone's remote factory: origin as git_clone makes it, minus the leaky insteadOf
// scan; insteadOf applies to the connection only, the stored URL stays the given one.
int create_origin(git_remote** out, git_repository* repo, const char* name, const char* url, void* /*payload*/) {
  git_remote_create_options create;
  git_remote_create_options_init(&create, GIT_REMOTE_CREATE_OPTIONS_VERSION);
  create.repository = repo;
  create.name = name;
  create.flags = GIT_REMOTE_CREATE_SKIP_INSTEADOF;
  if (const int rc = git_remote_create_with_opts(out, url, &create); rc < 0) return rc;
  const std::string rewritten = apply_instead_of(repo, url);
  if (rewritten == url) return 0;
  if (const int rc = git_remote_set_instance_url(*out, rewritten.c_str()); rc < 0) {
    git_remote_free(*out);
    *out = nullptr;
    return rc;
  }
  return 0;
}

// The checkout counterpart of `git reset --hard` followed by `git clean -ffdx`.
constexpr unsigned kCleanCheckout = GIT_CHECKOUT_FORCE | GIT_CHECKOUT_REMOVE_UNTRACKED | GIT_CHECKOUT_REMOVE_IGNORED;

int collect_submodule_name(git_submodule* /*submodule*/, const char* name, void* payload) {
  static_cast<std::vector<std::string>*>(payload)->emplace_back(name);
  return 0;
}

// One fetch() call: the cache folder, the request and the failure bookkeeping.
class FetchJob {
 public:
  FetchJob(const SourceSpec& source, fs::path dir, RepoUrl url, std::stop_token cancel)
      : source_(source), dir_(std::move(dir)), url_(std::move(url)) {
    session_.cancel = std::move(cancel);
    session_.url = &url_;
  }

  Result<Checkout> run() {
    std::error_code ec;
    if (fs::exists(dir_, ec)) {
      if (RepositoryPtr repo = open_cached()) {
        auto reused = update(repo.get());
        if (reused.ok() || !cache_suspect_) return reused;
      }
      if (cancelled()) return cancelled_error();
      if (const auto remove_ec = force_remove_all(dir_)) {
        return make_error("cannot remove the stale cached clone " + dir_.string() + ": " + remove_ec.message());
      }
    }
    auto cloned = clone();
    if (!cloned.ok()) force_remove_all(dir_);  // a half clone would only be discarded next time
    return cloned;
  }

 private:
  [[nodiscard]] bool cancelled() const { return session_.cancel.stop_requested(); }
  static Error cancelled_error() { return make_error(std::string(kCancelled)); }

  // libgit2 says "unsupported URL protocol" for a local path that does not exist; this
  // says what is wrong instead.
  [[nodiscard]] std::optional<Error> missing_local_source(std::string_view verb) const {
    std::string_view path = url_.remote;
    if (path.starts_with("file://")) {
      path.remove_prefix(7);
    } else if (path.find("://") != std::string_view::npos || !url_.host.empty()) {
      return std::nullopt;
    }
    std::error_code ec;
    if (fs::exists(fs::path(path), ec)) return std::nullopt;
    return make_error("cannot " + std::string(verb) + " " + url_.display + ": no such folder");
  }

  // A libgit2 failure: the cancellation when that caused it, else `what` + libgit2's message.
  Error git_failure(const std::string& what) {
    if (cancelled()) return cancelled_error();
    return make_error(what + ": " + scrub(last_git_message(), url_));
  }

  // The cached clone when it is a usable working tree whose origin is this URL.
  RepositoryPtr open_cached() {
    git_repository* raw = nullptr;
    if (git_repository_open_ext(&raw, dir_.c_str(), GIT_REPOSITORY_OPEN_NO_SEARCH, nullptr) < 0) return {};
    RepositoryPtr repo(raw);
    const char* workdir = git_repository_workdir(repo.get());
    std::error_code ec;
    if (git_repository_is_bare(repo.get()) != 0 || workdir == nullptr ||
        !fs::equivalent(fs::path(workdir), dir_, ec)) {
      return {};
    }
    // Read from the config, not with git_remote_lookup (see the note on leaks at the top).
    git_config* raw_config = nullptr;
    if (git_repository_config_snapshot(&raw_config, repo.get()) < 0) return {};
    const ConfigPtr config(raw_config);
    const char* origin_url = nullptr;
    if (git_config_get_string(&origin_url, config.get(), "remote.origin.url") < 0 || origin_url == nullptr ||
        url_.remote != origin_url) {
      return {};
    }
    return repo;
  }

  Result<Checkout> update(git_repository* repo) {
    cache_suspect_ = false;
    auto default_branch = fetch_origin(repo);
    if (!default_branch.ok()) return default_branch.error();
    auto commit = settle(repo, default_branch.value());
    if (!commit.ok()) return commit.error();
    return Checkout{dir_, std::move(commit.value()), true};
  }

  // libgit2 1.5 cannot clone shallow (depth arrived in 1.7), so this is a full clone.
  // The checkout is left to settle(), the same one a reuse takes.
  Result<Checkout> clone() {
    cache_suspect_ = false;
    if (cancelled()) return cancelled_error();
    if (auto missing = missing_local_source("clone")) return *missing;
    git_clone_options options;
    git_clone_options_init(&options, GIT_CLONE_OPTIONS_VERSION);
    options.checkout_opts.checkout_strategy = GIT_CHECKOUT_NONE;
    options.fetch_opts.callbacks = make_callbacks(session_);
    options.fetch_opts.download_tags = GIT_REMOTE_DOWNLOAD_TAGS_ALL;
    options.fetch_opts.update_fetchhead = 0;
    options.remote_cb = create_origin;
    session_.reset_attempts();
    git_repository* raw = nullptr;
    if (git_clone(&raw, url_.remote.c_str(), dir_.c_str(), &options) < 0) {
      return git_failure("cannot clone " + url_.display);
    }
    const RepositoryPtr repo(raw);
    // The clone points HEAD at the remote's default branch (unborn when the remote is empty).
    std::string default_branch;
    git_reference* head = nullptr;
    if (git_reference_lookup(&head, repo.get(), "HEAD") == 0) {
      const ReferencePtr guard(head);
      if (const char* target = git_reference_symbolic_target(head)) default_branch = branch_name(target);
    }
    auto commit = settle(repo.get(), default_branch);
    if (!commit.ok()) return commit.error();
    return Checkout{dir_, std::move(commit.value()), false};
  }

  // Fetches every branch and tag of origin, pruning the gone ones; returns the remote's
  // default branch (empty when the remote has none, i.e. it is empty).
  Result<std::string> fetch_origin(git_repository* repo) {
    if (cancelled()) return cancelled_error();
    if (auto missing = missing_local_source("fetch")) return *missing;
    // An in-memory remote with origin's refspec: same result as origin, without the
    // leaky config scan of git_remote_lookup (see the note on leaks at the top).
    git_remote_create_options create;
    git_remote_create_options_init(&create, GIT_REMOTE_CREATE_OPTIONS_VERSION);
    create.repository = repo;
    create.fetchspec = "+refs/heads/*:refs/remotes/origin/*";
    create.flags = GIT_REMOTE_CREATE_SKIP_INSTEADOF;
    git_remote* raw = nullptr;
    if (git_remote_create_with_opts(&raw, apply_instead_of(repo, url_.remote).c_str(), &create) < 0) {
      cache_suspect_ = true;
      return git_failure("cannot fetch " + url_.display);
    }
    const RemotePtr remote(raw);
    git_fetch_options options;
    git_fetch_options_init(&options, GIT_FETCH_OPTIONS_VERSION);
    options.callbacks = make_callbacks(session_);
    options.prune = GIT_FETCH_PRUNE;
    options.download_tags = GIT_REMOTE_DOWNLOAD_TAGS_ALL;
    options.update_fetchhead = 0;  // unused here, and writing it costs a leaky remote lookup
    session_.reset_attempts();
    if (git_remote_fetch(remote.get(), nullptr, &options, "proctor: fetch") < 0) {
      cache_suspect_ = !is_network_class(last_git_class());
      return git_failure("cannot fetch " + url_.display);
    }
    if (cancelled()) return cancelled_error();

    // The advertised refs stay readable after git_remote_fetch disconnects.
    std::string branch;
    GitBuf head;
    if (git_remote_default_branch(head.get(), remote.get()) == 0) {
      branch = head.str();
    } else {
      git_reference* origin_head = nullptr;
      if (git_reference_lookup(&origin_head, repo, "refs/remotes/origin/HEAD") == 0) {
        const ReferencePtr guard(origin_head);
        if (const char* target = git_reference_symbolic_target(origin_head)) branch = target;
      }
    }
    branch = branch_name(branch);
    if (!branch.empty()) {
      // Keeps origin/HEAD right for people looking into the cache with the git CLI.
      git_reference* symref = nullptr;
      const std::string target = "refs/remotes/origin/" + branch;
      if (git_reference_symbolic_create(&symref, repo, "refs/remotes/origin/HEAD", target.c_str(), 1,
                                        "proctor: remote HEAD") == 0) {
        git_reference_free(symref);
      }
    }
    return branch;
  }

  // Checks out the requested commit cleanly, moves HEAD there, updates the submodules;
  // returns the full sha of HEAD.
  Result<std::string> settle(git_repository* repo, const std::string& default_branch) {
    if (cancelled()) return cancelled_error();
    const std::string branch = source_.branch.value_or(default_branch);
    if (branch.empty()) return make_error(url_.display + " has no branch to check out (is it empty?)");
    const std::string tracking = "refs/remotes/origin/" + branch;
    git_oid tip;
    if (const int rc = git_reference_name_to_id(&tip, repo, tracking.c_str()); rc < 0) {
      if ((rc == GIT_ENOTFOUND || rc == GIT_EINVALIDSPEC) && source_.branch) {
        return make_error("branch '" + branch + "' does not exist in " + url_.display);
      }
      if (rc == GIT_ENOTFOUND) {
        return make_error(url_.display + " has no commit on its default branch '" + branch + "' (is it empty?)");
      }
      cache_suspect_ = true;
      return git_failure("cannot read branch '" + branch + "' of " + url_.display);
    }

    git_object* raw = nullptr;
    if (source_.revision) {
      git_object* found = nullptr;
      if (git_revparse_single(&found, repo, source_.revision->c_str()) < 0) {
        return make_error("revision '" + *source_.revision + "' does not exist in " + url_.display + ": " +
                          scrub(last_git_message(), url_));
      }
      const ObjectPtr guard(found);
      if (git_object_peel(&raw, found, GIT_OBJECT_COMMIT) < 0) {
        return make_error("revision '" + *source_.revision + "' of " + url_.display + " is not a commit");
      }
    } else if (git_object_lookup(&raw, repo, &tip, GIT_OBJECT_COMMIT) < 0) {
      cache_suspect_ = true;
      return git_failure("cannot read the tip of branch '" + branch + "' of " + url_.display);
    }
    const ObjectPtr target(raw);
    const git_oid target_id = *git_object_id(target.get());

    git_checkout_options checkout;
    git_checkout_options_init(&checkout, GIT_CHECKOUT_OPTIONS_VERSION);
    checkout.checkout_strategy = kCleanCheckout;
    if (git_checkout_tree(repo, target.get(), &checkout) < 0) {
      cache_suspect_ = true;
      return git_failure("cannot check out " + url_.display);
    }
    if (!move_head(repo, branch, target_id)) {
      cache_suspect_ = true;
      return git_failure("cannot move HEAD of the clone of " + url_.display);
    }
    if (cancelled()) return cancelled_error();
    if (auto submodules = update_submodules(repo, 0); !submodules.ok()) return submodules.error();

    git_oid head;
    if (git_reference_name_to_id(&head, repo, "HEAD") < 0) {
      cache_suspect_ = true;
      return git_failure("cannot read HEAD of the clone of " + url_.display);
    }
    std::array<char, GIT_OID_HEXSZ> hex{};
    git_oid_fmt(hex.data(), &head);
    return std::string(hex.data(), hex.size());
  }

  // A pinned revision is checked out detached; a branch as a local branch at its tip.
  bool move_head(git_repository* repo, const std::string& branch, const git_oid& id) {
    if (source_.revision) return git_repository_set_head_detached(repo, &id) == 0;
    const std::string local = "refs/heads/" + branch;
    git_reference* raw = nullptr;
    // A reference write, not git_branch_create: that one refuses to move the checked-out branch.
    if (git_reference_create(&raw, repo, local.c_str(), &id, 1, "proctor: reset to origin") < 0) return false;
    const ReferencePtr ref(raw);
    return git_repository_set_head(repo, local.c_str()) == 0;
  }

  // `git submodule update --init --recursive`, resetting submodules a test run dirtied.
  Result<void> update_submodules(git_repository* repo, int depth) {
    std::vector<std::string> names;
    if (git_submodule_foreach(repo, collect_submodule_name, &names) < 0) {
      return git_failure("cannot read the submodules of " + url_.display);
    }
    if (!names.empty() && depth >= kMaxSubmoduleDepth) {
      return make_error("submodules of " + url_.display + " nest deeper than " +
                        std::to_string(kMaxSubmoduleDepth) + " levels");
    }
    for (const std::string& name : names) {
      if (cancelled()) return cancelled_error();
      git_submodule* raw = nullptr;
      const std::string what = "cannot update submodule '" + name + "' of " + url_.display;
      if (git_submodule_lookup(&raw, repo, name.c_str()) < 0) return git_failure(what);
      const SubmodulePtr submodule(raw);
      git_submodule_update_options options;
      git_submodule_update_options_init(&options, GIT_SUBMODULE_UPDATE_OPTIONS_VERSION);
      options.checkout_opts.checkout_strategy = kCleanCheckout;
      options.fetch_opts.callbacks = make_callbacks(session_);
      session_.reset_attempts();
      // init(overwrite) + sync pick up a URL changed in .gitmodules since the last run.
      if (git_submodule_init(submodule.get(), 1) < 0 || git_submodule_sync(submodule.get()) < 0 ||
          git_submodule_update(submodule.get(), 1, &options) < 0) {
        return git_failure(what);
      }
      git_repository* sub_raw = nullptr;
      if (git_submodule_open(&sub_raw, submodule.get()) < 0) return git_failure(what);
      const RepositoryPtr sub(sub_raw);
      if (auto nested = update_submodules(sub.get(), depth + 1); !nested.ok()) return nested;
    }
    return {};
  }

  const SourceSpec& source_;
  fs::path dir_;
  RepoUrl url_;
  Session session_;
  bool cache_suspect_ = false;  // the last failure came from the cached clone, not the request
};

}  // namespace

Result<void> GitFetcher::ensure_initialised() {
  std::call_once(init_once_, [this] {
    if (git_libgit2_init() < 0) init_error_ = "libgit2 failed to initialise: " + last_git_message();
    else initialised_ = true;
  });
  if (!initialised_) return make_error(init_error_);
  return {};
}

GitFetcher::~GitFetcher() {
  if (initialised_) git_libgit2_shutdown();
}

std::string GitFetcher::cache_key(std::string_view url) { return key_of(parse_url(trim(url))); }

Result<Checkout> GitFetcher::fetch(const SourceSpec& source, const std::filesystem::path& cache_root,
                                   std::stop_token cancel) {
  if (cancel.stop_requested()) return make_error(std::string(kCancelled));
  if (auto ready = ensure_initialised(); !ready) return ready.error();
  if (trim(source.url).empty()) return make_error("the repository URL is empty");
  RepoUrl url = parse_url(trim(source.url));
  if (source.branch) {
    int valid = 0;
    if (source.branch->empty() || git_branch_name_is_valid(&valid, source.branch->c_str()) < 0 || valid == 0) {
      return make_error("branch name '" + *source.branch + "' is not a valid git branch name");
    }
  }
  if (source.revision && trim(*source.revision).empty()) return make_error("the revision to pin is empty");
  std::error_code ec;
  fs::create_directories(cache_root, ec);
  if (ec) return make_error("cannot create the clone cache " + cache_root.string() + ": " + ec.message());
  fs::path dir = cache_root / key_of(url);
  FetchJob job(source, std::move(dir), std::move(url), std::move(cancel));
  return job.run();
}

}  // namespace proctor
