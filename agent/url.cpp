#include "agent/url.hpp"

#include <algorithm>
#include <cctype>

#include "common/aws_sigv4.hpp"
#include "common/text.hpp"

namespace proctor {

namespace {

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c) != 0; });
}

}  // namespace

std::string Url::origin() const {
  const bool v6 = host.find(':') != std::string::npos;
  return scheme + "://" + (v6 ? "[" + host + "]" : host) + ":" + port;
}

std::string Url::host_header() const {
  const bool default_port = (scheme == "http" && port == "80") || (scheme == "https" && port == "443");
  const std::string name = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  return default_port ? name : name + ":" + port;
}

std::string Url::target_for(std::string_view api) const {
  std::string base = path;
  const auto query = base.find('?');
  if (query != std::string::npos) base.resize(query);
  while (!base.empty() && base.back() == '/') base.pop_back();
  std::string target = base;
  if (api.empty() || api.front() != '/') target += '/';
  target += api;
  return target;
}

Result<Url> parse_http_url(std::string_view text) {
  Url url;
  const auto sep = text.find("://");
  if (sep == std::string_view::npos) return make_error("'" + redact_url(text) + "' is not a URL: it has no scheme://");
  url.scheme = to_lower(text.substr(0, sep));
  if (url.scheme != "http" && url.scheme != "https") {
    return make_error("unsupported scheme '" + url.scheme + "': use http:// or https://");
  }
  std::string_view rest = text.substr(sep + 3);
  const auto path_start = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, path_start);
  url.path = path_start == std::string_view::npos ? "/" : std::string(rest.substr(path_start));
  if (const auto hash = url.path.find('#'); hash != std::string::npos) url.path.resize(hash);
  if (url.path.empty() || url.path.front() == '?') url.path.insert(0, "/");
  if (const auto at = authority.rfind('@'); at != std::string_view::npos) {
    url.userinfo = std::string(authority.substr(0, at));
    authority.remove_prefix(at + 1);
  }
  if (!authority.empty() && authority.front() == '[') {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) return make_error("bad IPv6 address in URL '" + redact_url(text) + "'");
    url.host = std::string(authority.substr(1, close - 1));
    authority.remove_prefix(close + 1);
    if (!authority.empty()) {
      if (authority.front() != ':') return make_error("bad host in URL '" + redact_url(text) + "'");
      url.port = std::string(authority.substr(1));
    }
  } else {
    const auto colon = authority.rfind(':');
    url.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) url.port = std::string(authority.substr(colon + 1));
  }
  if (url.host.empty()) return make_error("the URL '" + redact_url(text) + "' has no host");
  if (url.port.empty()) url.port = url.scheme == "https" ? "443" : "80";
  if (!all_digits(url.port) || url.port.size() > 5 || std::stoi(url.port) > 65535) {
    return make_error("bad port '" + url.port + "' in URL '" + redact_url(text) + "'");
  }
  return url;
}

std::string repository_scheme(std::string_view url) {
  if (url.substr(0, 5) == "ext::") return "ext";
  const auto sep = url.find("://");
  if (sep != std::string_view::npos) return to_lower(url.substr(0, sep));
  // scp-like syntax: [user@]host:path, with no slash before the colon.
  const auto colon = url.find(':');
  const auto slash = url.find('/');
  if (colon != std::string_view::npos && colon > 0 && (slash == std::string_view::npos || colon < slash)) return "ssh";
  return "file";
}

std::string redact_url(std::string_view url) {
  const auto sep = url.find("://");
  if (sep == std::string_view::npos) return std::string(url);
  const auto authority_start = sep + 3;
  const auto authority_end = url.find_first_of("/?#", authority_start);
  const auto authority = url.substr(authority_start, authority_end == std::string_view::npos
                                                          ? std::string_view::npos
                                                          : authority_end - authority_start);
  const auto at = authority.rfind('@');
  if (at == std::string_view::npos) return std::string(url);
  std::string out(url.substr(0, authority_start));
  out += "***@";
  out += url.substr(authority_start + at + 1);
  return out;
}

std::string cache_folder_name(std::string_view url) {
  const std::string shown = redact_url(url);
  return safe_folder_name(shown.substr(0, 48)) + "-" + sha256_hex(shown).substr(0, 12);
}

}  // namespace proctor
