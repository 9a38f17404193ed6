#pragma once
// Downloading one file over HTTP(S) from a blocking caller (a fetcher on a worker
// thread): the HttpClient runs on an event loop of the call's own, redirects are
// followed, the size is capped and a stop request aborts the transfer.

#include <functional>
#include <stop_token>
#include <string>
#include <string_view>

#include "agent/http_client.hpp"
#include "common/result.hpp"

namespace proctor {

struct DownloadOptions {
  TlsOptions tls;
  HttpLimits limits;      // body_limit is the largest download accepted
  int max_redirects = 5;
  std::string username;   // basic auth (else the URL's user:password), sent to the first origin only
  std::string password;
  // Extra headers for a request to `url` (an S3 signature), computed per request.
  std::function<HttpHeaders(const Url& url)> headers;
};

// The body of `url` after at most max_redirects redirects; fails with a sentence naming
// the URL (credentials hidden) and what went wrong: HTTP status, size, transport, cancel.
Result<std::string> download(std::string_view url, const DownloadOptions& options, std::stop_token cancel);

// "Basic <base64(user:password)>".
std::string basic_authorization(std::string_view username, std::string_view password);

}  // namespace proctor
