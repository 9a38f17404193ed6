#include <doctest/doctest.h>

#include "agent/url.hpp"

using namespace proctor;

TEST_SUITE("url") {
  TEST_CASE("http URLs with and without port, path and credentials") {
    auto url = parse_http_url("http://localhost:5000");
    REQUIRE(url.ok());
    CHECK(url->host == "localhost");
    CHECK(url->port == "5000");
    CHECK(url->target_for("/api/task/available") == "/api/task/available");
    auto tls = parse_http_url("HTTPS://user:secret@backend.example.com/base/");
    REQUIRE(tls.ok());
    CHECK(tls->scheme == "https");
    CHECK(tls->port == "443");
    CHECK(tls->userinfo == "user:secret");
    CHECK(tls->target_for("/api/task/result") == "/base/api/task/result");
    CHECK(tls->origin() == "https://backend.example.com:443");
    auto v6 = parse_http_url("http://[::1]:8080/x");
    REQUIRE(v6.ok());
    CHECK(v6->host == "::1");
  }

  TEST_CASE("bad URLs are refused with a reason") {
    CHECK_FALSE(parse_http_url("localhost:5000").ok());
    CHECK(parse_http_url("ftp://x").error().message.find("unsupported scheme") != std::string::npos);
    CHECK_FALSE(parse_http_url("http://:80").ok());
    CHECK_FALSE(parse_http_url("http://host:99999").ok());
    CHECK_FALSE(parse_http_url("http://host:8o").ok());
  }

  TEST_CASE("repository schemes, including scp-like and local paths") {
    CHECK(repository_scheme("https://github.com/a/b.git") == "https");
    CHECK(repository_scheme("git@github.com:a/b.git") == "ssh");
    CHECK(repository_scheme("/srv/repos/b.git") == "file");
    CHECK(repository_scheme("./b") == "file");
    CHECK(repository_scheme("file:///srv/b") == "file");
    CHECK(repository_scheme("ext::sh -c touch% /tmp/pwned") == "ext");
    CHECK(repository_scheme("SVN://host/r") == "svn");
  }

  TEST_CASE("credentials never survive redaction") {
    CHECK(redact_url("https://user:tok3n@host/x.git") == "https://***@host/x.git");
    CHECK(redact_url("https://host/x.git") == "https://host/x.git");
    CHECK(redact_url("https://host/p@th") == "https://host/p@th");
  }
}
