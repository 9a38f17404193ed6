#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "agent/git_fetcher.hpp"
#include "tests/unit/require_ok.hpp"
#include "common/text.hpp"
#include "tests/unit/temp_dir.hpp"

namespace {

namespace fs = std::filesystem;
using proctor::Checkout;
using proctor::GitFetcher;
using proctor::Result;
using proctor::shell_quote;
using proctor::SourceSpec;
using proctor::test::TempDir;

void write_file(const fs::path& path, const std::string& content) {
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << content;
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// Runs the git CLI in `dir` (isolated from the user's configuration) and returns its
// trimmed stdout; the test fails when git does.
std::string git(const fs::path& dir, const std::string& args) {
  const fs::path err = dir.parent_path() / ".git-stderr";
  const std::string command = "cd " + shell_quote(dir.string()) +
                              " && GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1 git -c user.name=Proctor"
                              " -c user.email=proctor@example.com -c protocol.file.allow=always " +
                              args + " 2>" + shell_quote(err.string());
  FILE* pipe = popen(command.c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::string out;
  char chunk[4096];
  for (std::size_t n = 0; (n = fread(chunk, 1, sizeof chunk, pipe)) > 0;) out.append(chunk, n);
  const int status = pclose(pipe);
  INFO(command);
  INFO(read_file(err));
  REQUIRE(status == 0);
  return std::string(proctor::trim(out));
}

// A repository made with the git CLI, standing in for the remote.
struct Upstream {
  fs::path path;

  Upstream(fs::path where, const std::string& initial_branch) : path(std::move(where)) {
    fs::create_directories(path);
    git(path, "init -q -b " + initial_branch);
  }

  // Writes `file`, commits everything, returns the new commit's sha.
  std::string commit(const std::string& file, const std::string& content) {
    write_file(path / file, content);
    git(path, "add -A");
    git(path, "commit -q -m " + shell_quote("change " + file));
    return git(path, "rev-parse HEAD");
  }
};

Result<Checkout> fetch(GitFetcher& fetcher, const fs::path& cache, SourceSpec source) {
  return fetcher.fetch(source, cache, std::stop_token{});
}

// "Nothing to report" from the CLI, ignored files included: the tree is exactly HEAD.
void check_clean(const fs::path& dir) { CHECK(git(dir, "status --porcelain --ignored").empty()); }

// An HTTP server that rejects every request with 401 and records the requests.
class RejectingServer {
 public:
  RejectingServer() {
    listener_ = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(listener_ >= 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(listener_, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    REQUIRE(::listen(listener_, 8) == 0);
    socklen_t length = sizeof address;
    REQUIRE(::getsockname(listener_, reinterpret_cast<sockaddr*>(&address), &length) == 0);
    port_ = ntohs(address.sin_port);
    thread_ = std::jthread([this](const std::stop_token& stop) { serve(stop); });
  }
  ~RejectingServer() {
    stop();
    ::close(listener_);
  }
  RejectingServer(const RejectingServer&) = delete;
  RejectingServer& operator=(const RejectingServer&) = delete;

  [[nodiscard]] int port() const { return port_; }
  // Every request head received so far; call after the client is done.
  std::vector<std::string> requests() {
    stop();
    return requests_;
  }

 private:
  // Ends the serving thread: shutting the listener down wakes its poll at once.
  void stop() {
    if (!thread_.joinable()) return;
    thread_.request_stop();
    ::shutdown(listener_, SHUT_RDWR);
    thread_.join();
  }

  void serve(const std::stop_token& stop) {
    while (!stop.stop_requested()) {
      pollfd ready{listener_, POLLIN, 0};
      if (::poll(&ready, 1, -1) <= 0) continue;
      const int client = ::accept(listener_, nullptr, nullptr);
      if (client < 0) continue;
      std::string head;
      char chunk[2048];
      while (head.find("\r\n\r\n") == std::string::npos) {
        const ssize_t n = ::recv(client, chunk, sizeof chunk, 0);
        if (n <= 0) break;
        head.append(chunk, static_cast<std::size_t>(n));
      }
      requests_.push_back(head);
      const std::string reply =
          "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"git\"\r\n"
          "Content-Length: 0\r\nConnection: close\r\n\r\n";
      (void)!::send(client, reply.data(), reply.size(), MSG_NOSIGNAL);
      ::close(client);
    }
  }

  int listener_ = -1;
  int port_ = 0;
  std::vector<std::string> requests_;
  std::jthread thread_;
};

}  // namespace

TEST_SUITE("git_fetcher") {
  TEST_CASE("clones the remote's default branch, whatever it is called") {
    const TempDir tmp;
    Upstream upstream(tmp / "upstream", "trunk");
    const std::string trunk = upstream.commit("which.txt", "trunk");
    git(upstream.path, "checkout -q -b main");
    const std::string main_tip = upstream.commit("which.txt", "main");
    git(upstream.path, "checkout -q trunk");

    GitFetcher fetcher;
    const auto result = fetch(fetcher, tmp / "cache", {upstream.path.string(), {}, {}});
    REQUIRE_OK(result);
    CHECK(result->dir.parent_path() == tmp / "cache");
    CHECK(read_file(result->dir / "which.txt") == "trunk");
    CHECK(result->commit == trunk);
    CHECK_FALSE(result->reused);
    CHECK(git(result->dir, "rev-parse --abbrev-ref HEAD") == "trunk");
    check_clean(result->dir);

    // The remote changes its default branch: a reused clone follows.
    git(upstream.path, "checkout -q main");
    const auto again = fetch(fetcher, tmp / "cache", {upstream.path.string(), {}, {}});
    REQUIRE_OK(again);
    CHECK(again->reused);
    CHECK(again->commit == main_tip);
    CHECK(read_file(again->dir / "which.txt") == "main");
  }

  TEST_CASE("clones a named branch over a file:// URL") {
    const TempDir tmp;
    Upstream upstream(tmp / "upstream", "main");
    upstream.commit("which.txt", "main");
    git(upstream.path, "checkout -q -b feature");
    const std::string feature = upstream.commit("which.txt", "feature");
    git(upstream.path, "checkout -q main");

    GitFetcher fetcher;
    const auto result = fetch(fetcher, tmp / "cache", {"file://" + upstream.path.string(), "feature", {}});
    REQUIRE_OK(result);
    CHECK(read_file(result->dir / "which.txt") == "feature");
    CHECK(result->commit == feature);
    CHECK(git(result->dir, "rev-parse --abbrev-ref HEAD") == "feature");
  }

  TEST_CASE("pins a revision given as full sha, abbreviated sha or tag") {
    const TempDir tmp;
    Upstream upstream(tmp / "upstream", "main");
    const std::string old_commit = upstream.commit("version.txt", "1");
    git(upstream.path, "tag -a v1 -m release-1");
    const std::string new_commit = upstream.commit("version.txt", "2");
    REQUIRE(old_commit != new_commit);

    GitFetcher fetcher;
    for (const std::string& revision : {old_commit, old_commit.substr(0, 8), std::string("v1")}) {
      CAPTURE(revision);
      const auto result = fetch(fetcher, tmp / "cache", {upstream.path.string(), {}, revision});
      REQUIRE_OK(result);
      CHECK(result->commit == old_commit);
      CHECK(read_file(result->dir / "version.txt") == "1");
      CHECK(git(result->dir, "rev-parse --abbrev-ref HEAD") == "HEAD");  // detached
    }
    const auto latest = fetch(fetcher, tmp / "cache", {upstream.path.string(), {}, {}});
    REQUIRE(latest.ok());
    CHECK(latest->commit == new_commit);
    CHECK(read_file(latest->dir / "version.txt") == "2");
  }

  TEST_CASE("a second fetch reuses the clone, gets new commits and removes what a test run left") {
    const TempDir tmp;
    Upstream upstream(tmp / "upstream", "main");
    write_file(upstream.path / ".gitignore", "build/\n*.log\n");
    upstream.commit("src/main.c", "int main() { return 0; }\n");

    GitFetcher fetcher;
    const auto first = fetch(fetcher, tmp / "cache", {upstream.path.string(), {}, {}});
    REQUIRE_OK(first);
    CHECK_FALSE(first->reused);

    // What a test run writes into the tree: untracked, ignored, and a changed tracked file.
    write_file(first->dir / "untracked.txt", "left over");
    write_file(first->dir / "new_dir/deep/file.txt", "left over");
    write_file(first->dir / "build/out.o", "object");
    write_file(first->dir / "run.log", "log");
    write_file(first->dir / "src/main.c", "broken");
    REQUIRE_FALSE(git(first->dir, "status --porcelain --ignored").empty());

    const std::string newer = upstream.commit("src/util.c", "int util;\n");
    const auto second = fetch(fetcher, tmp / "cache", {upstream.path.string(), {}, {}});
    REQUIRE_OK(second);
    CHECK(second->reused);
    CHECK(second->dir == first->dir);
    CHECK(second->commit == newer);
    CHECK(read_file(second->dir / "src/util.c") == "int util;\n");
    CHECK(read_file(second->dir / "src/main.c") == "int main() { return 0; }\n");
    CHECK_FALSE(fs::exists(second->dir / "untracked.txt"));
    CHECK_FALSE(fs::exists(second->dir / "new_dir"));
    CHECK_FALSE(fs::exists(second->dir / "build"));
    CHECK_FALSE(fs::exists(second->dir / "run.log"));
    check_clean(second->dir);
  }

  TEST_CASE("a reused clone switches branch and drops the other branch's files") {
    const TempDir tmp;
    Upstream upstream(tmp / "upstream", "main");
    upstream.commit("common.txt", "common");
    git(upstream.path, "checkout -q -b a");
    const std::string a = upstream.commit("only_a.txt", "a");
    git(upstream.path, "checkout -q main");
    git(upstream.path, "checkout -q -b b");
    const std::string b = upstream.commit("only_b.txt", "b");

    GitFetcher fetcher;
    const auto on_a = fetch(fetcher, tmp / "cache", {upstream.path.string(), "a", {}});
    REQUIRE_OK(on_a);
    CHECK(on_a->commit == a);
    CHECK(fs::exists(on_a->dir / "only_a.txt"));

    const auto on_b = fetch(fetcher, tmp / "cache", {upstream.path.string(), "b", {}});
    REQUIRE_OK(on_b);
    CHECK(on_b->reused);
    CHECK(on_b->commit == b);
    CHECK(git(on_b->dir, "rev-parse --abbrev-ref HEAD") == "b");
    CHECK(fs::exists(on_b->dir / "only_b.txt"));
    CHECK_FALSE(fs::exists(on_b->dir / "only_a.txt"));
    check_clean(on_b->dir);

    // A branch deleted upstream is pruned, not served from a stale tracking ref.
    git(upstream.path, "branch -q -D a");
    const auto gone = fetch(fetcher, tmp / "cache", {upstream.path.string(), "a", {}});
    REQUIRE_FALSE(gone.ok());
    CHECK(gone.error().message == "branch 'a' does not exist in " + upstream.path.string());
  }

  TEST_CASE("a reused clone honours url.<base>.insteadOf from the git config") {
    const TempDir tmp;
    Upstream original(tmp / "original", "main");
    original.commit("which.txt", "original");
    Upstream mirror(tmp / "mirror", "main");
    const std::string mirrored = mirror.commit("which.txt", "mirror");

    GitFetcher fetcher;
    const auto first = fetch(fetcher, tmp / "cache", {original.path.string(), {}, {}});
    REQUIRE(first.ok());
    git(first->dir, "config " + shell_quote("url." + mirror.path.string() + ".insteadOf") + " " +
                        shell_quote(original.path.string()));

    const auto second = fetch(fetcher, tmp / "cache", {original.path.string(), {}, {}});
    REQUIRE_OK(second);
    CHECK(second->reused);
    CHECK(second->commit == mirrored);
    CHECK(read_file(second->dir / "which.txt") == "mirror");
  }

  TEST_CASE("a corrupt cached clone or one of another URL is cloned afresh") {
    const TempDir tmp;
    Upstream upstream(tmp / "upstream", "main");
    const std::string head = upstream.commit("file.txt", "content");
    GitFetcher fetcher;
    const auto first = fetch(fetcher, tmp / "cache", {upstream.path.string(), {}, {}});
    REQUIRE(first.ok());

    SUBCASE("not a repository any more") {
      fs::remove_all(first->dir / ".git");
      write_file(first->dir / ".git", "garbage");
    }
    SUBCASE("origin points elsewhere") { git(first->dir, "remote set-url origin /somewhere/else"); }
    SUBCASE("a read-only folder left behind") {
      fs::remove_all(first->dir / ".git");
      write_file(first->dir / "locked/file.txt", "x");
      fs::permissions(first->dir / "locked", fs::perms::owner_read | fs::perms::owner_exec);
    }

    const auto again = fetch(fetcher, tmp / "cache", {upstream.path.string(), {}, {}});
    REQUIRE_OK(again);
    CHECK_FALSE(again->reused);
    CHECK(again->dir == first->dir);
    CHECK(again->commit == head);
    CHECK(read_file(again->dir / "file.txt") == "content");
    CHECK(git(again->dir, "remote get-url origin") == upstream.path.string());
    check_clean(again->dir);
  }

  TEST_CASE("an unreachable URL is a clear error and leaves no folder behind") {
    const TempDir tmp;
    GitFetcher fetcher;
    const auto missing = fetch(fetcher, tmp / "cache", {(tmp / "does-not-exist").string(), {}, {}});
    REQUIRE_FALSE(missing.ok());
    CHECK(missing.error().message == "cannot clone " + (tmp / "does-not-exist").string() + ": no such folder");
    CHECK(fs::is_empty(tmp / "cache"));
    const std::string url = "http://127.0.0.1:1/x.git";
    const auto refused = fetch(fetcher, tmp / "cache", {url, {}, {}});
    REQUIRE_FALSE(refused.ok());
    const std::string prefix = "cannot clone " + url + ": ";
    CHECK(refused.error().message.starts_with(prefix));
    CHECK(refused.error().message.size() > prefix.size());  // libgit2's reason follows
    CHECK(fs::is_empty(tmp / "cache"));
  }

  TEST_CASE("a missing branch is an error naming the branch") {
    const TempDir tmp;
    Upstream upstream(tmp / "upstream", "main");
    upstream.commit("file.txt", "content");
    GitFetcher fetcher;
    const auto result = fetch(fetcher, tmp / "cache", {upstream.path.string(), "nope", {}});
    REQUIRE_FALSE(result.ok());
    CHECK(result.error().message == "branch 'nope' does not exist in " + upstream.path.string());
  }

  TEST_CASE("an empty remote is an error saying so") {
    const TempDir tmp;
    const Upstream upstream(tmp / "upstream", "main");
    GitFetcher fetcher;
    const auto result = fetch(fetcher, tmp / "cache", {upstream.path.string(), {}, {}});
    REQUIRE_FALSE(result.ok());
    CHECK(result.error().message.starts_with(upstream.path.string() + " has no"));
    CHECK(result.error().message.ends_with("(is it empty?)"));
  }

  TEST_CASE("an unknown revision is an error naming the revision") {
    const TempDir tmp;
    Upstream upstream(tmp / "upstream", "main");
    upstream.commit("file.txt", "content");
    GitFetcher fetcher;
    for (const std::string& revision : {std::string("deadbeefdeadbeef"), std::string("no-such-tag")}) {
      CAPTURE(revision);
      const auto result = fetch(fetcher, tmp / "cache", {upstream.path.string(), {}, revision});
      REQUIRE_FALSE(result.ok());
      CHECK(result.error().message.starts_with("revision '" + revision + "' does not exist in " +
                                               upstream.path.string()));
    }
  }

  TEST_CASE("submodules are checked out recursively and reset on reuse") {
    const TempDir tmp;
    Upstream inner(tmp / "inner", "main");
    inner.commit("inner.txt", "inner");
    Upstream sub(tmp / "sub", "main");
    sub.commit("sub.txt", "sub");
    git(sub.path, "submodule add -q " + shell_quote("file://" + inner.path.string()) + " nested");
    git(sub.path, "commit -q -m add-nested");
    Upstream super(tmp / "super", "main");
    super.commit("top.txt", "top");
    git(super.path, "submodule add -q " + shell_quote(sub.path.string()) + " libs/sub");
    git(super.path, "commit -q -m add-sub");

    GitFetcher fetcher;
    const auto first = fetch(fetcher, tmp / "cache", {super.path.string(), {}, {}});
    REQUIRE_OK(first);
    CHECK(read_file(first->dir / "libs/sub/sub.txt") == "sub");
    CHECK(read_file(first->dir / "libs/sub/nested/inner.txt") == "inner");

    write_file(first->dir / "libs/sub/stray.txt", "left over");
    write_file(first->dir / "libs/sub/sub.txt", "changed");
    const auto second = fetch(fetcher, tmp / "cache", {super.path.string(), {}, {}});
    REQUIRE_OK(second);
    CHECK(second->reused);
    CHECK(read_file(second->dir / "libs/sub/sub.txt") == "sub");
    CHECK_FALSE(fs::exists(second->dir / "libs/sub/stray.txt"));
    CHECK(read_file(second->dir / "libs/sub/nested/inner.txt") == "inner");
  }

  TEST_CASE("a fetch cancelled before it starts returns the cancel error and clones nothing") {
    const TempDir tmp;
    Upstream upstream(tmp / "upstream", "main");
    upstream.commit("file.txt", "content");
    GitFetcher fetcher;
    std::stop_source stop;
    stop.request_stop();
    const auto result = fetcher.fetch({upstream.path.string(), {}, {}}, tmp / "cache", stop.get_token());
    REQUIRE_FALSE(result.ok());
    CHECK(result.error().message == "fetch cancelled");
    CHECK_FALSE(fs::exists(tmp / "cache" / GitFetcher::cache_key(upstream.path.string())));
  }

  TEST_CASE("credentials in the URL never reach the error message or the folder name") {
    const TempDir tmp;
    GitFetcher fetcher;
    RejectingServer server;
    const std::string base = "127.0.0.1:" + std::to_string(server.port()) + "/x.git";
    const std::string url = "http://user:secret@" + base;

    const auto result = fetch(fetcher, tmp / "cache", {url, {}, {}});
    REQUIRE_FALSE(result.ok());
    CHECK(result.error().message.starts_with("cannot clone http://" + base + ": "));
    CHECK(result.error().message.find("authentication failed") != std::string::npos);
    CHECK(result.error().message.find("secret") == std::string::npos);
    CHECK(result.error().message.find("user") == std::string::npos);

    // The credential was offered (basic "user:secret"), once, then the fetch gave up.
    const auto requests = server.requests();
    int with_credentials = 0;
    for (const std::string& request : requests) {
      if (request.find("Authorization: Basic dXNlcjpzZWNyZXQ=") != std::string::npos) ++with_credentials;
    }
    CHECK(with_credentials == 1);
    CHECK(requests.size() <= 3);

    const std::string key = GitFetcher::cache_key(url);
    CHECK(key == GitFetcher::cache_key("http://" + base));
    CHECK(key.find("secret") == std::string::npos);
    CHECK(key.find("user") == std::string::npos);
  }

  TEST_CASE("folder names are safe and differ between URLs") {
    const TempDir tmp;
    Upstream one(tmp / "one", "main");
    one.commit("name.txt", "one");
    Upstream two(tmp / "two", "main");
    two.commit("name.txt", "two");
    GitFetcher fetcher;
    const auto a = fetch(fetcher, tmp / "cache", {one.path.string(), {}, {}});
    const auto b = fetch(fetcher, tmp / "cache", {two.path.string(), {}, {}});
    REQUIRE(a.ok());
    REQUIRE(b.ok());
    CHECK(a->dir != b->dir);
    CHECK(read_file(a->dir / "name.txt") == "one");
    CHECK(read_file(b->dir / "name.txt") == "two");
    CHECK(a->dir.filename() == GitFetcher::cache_key(one.path.string()));

    CHECK(GitFetcher::cache_key("https://host/a/b.git") != GitFetcher::cache_key("https://host/a_b.git"));
    for (const std::string url : {"..", "../../etc", "https://host/../../x", "/", "https://h/.hidden/..",
                                  "ssh://git@host:22/~/repo.git", "git@host:org/repo.git"}) {
      CAPTURE(url);
      const std::string key = GitFetcher::cache_key(url);
      CHECK(key.find('/') == std::string::npos);
      CHECK(key.find("..") == std::string::npos);
      CHECK_FALSE(key.starts_with('.'));
      CHECK(key.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") ==
            std::string::npos);
    }
  }
}
