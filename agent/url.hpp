#pragma once
// Url: the parts of an http(s) URL the HTTP client needs. Pure parsing, no I/O.

#include <string>
#include <string_view>

#include "common/result.hpp"

namespace proctor {

struct Url {
  std::string scheme;    // "http" or "https"
  std::string host;      // without brackets for IPv6 literals
  std::string port;      // explicit or the scheme's default
  std::string path;      // starts with '/'; "/" when the URL has none (query kept)
  std::string userinfo;  // "user:password" when present (never logged)

  // scheme://host:port with no path and no credentials, for logs.
  [[nodiscard]] std::string origin() const;
  // The Host header (RFC 9110 §7.2): the port unless it is the scheme's default, an
  // IPv6 address in brackets.
  [[nodiscard]] std::string host_header() const;
  // The request target for `api` appended to this URL's path ("/base" + "/api/x").
  [[nodiscard]] std::string target_for(std::string_view api) const;
};

// Parses an http:// or https:// URL; anything else is an error naming the problem.
Result<Url> parse_http_url(std::string_view text);

// The scheme of a repository URL: "https", "ssh" for scp-like "git@host:path", "file"
// for a local path, "ext" for git's ext:: transport; lower case.
std::string repository_scheme(std::string_view url);

// The URL with any "user:password@" replaced by "***@", for logs and errors.
std::string redact_url(std::string_view url);

// A cache folder name for a repository URL: readable, safe as one path component, and
// unique per URL (credentials left out of both).
std::string cache_folder_name(std::string_view url);

}  // namespace proctor
