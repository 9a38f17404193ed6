#include "agent/http_download.hpp"

#include <openssl/evp.h>

#include <memory>
#include <optional>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

namespace proctor {

namespace asio = boost::asio;

namespace {

bool is_redirect(int status) { return status == 301 || status == 302 || status == 303 || status == 307 || status == 308; }

// The absolute URL a Location header points to, from the URL that answered.
std::string resolve_location(const Url& from, std::string_view location) {
  if (location.find("://") != std::string_view::npos) return std::string(location);
  if (location.starts_with("//")) return from.scheme + ":" + std::string(location);  // same scheme, other host
  const std::string origin = from.origin();
  if (!location.empty() && location.front() == '/') return origin + std::string(location);
  const auto slash = from.path.rfind('/', from.path.find('?'));
  return origin + from.path.substr(0, slash + 1) + std::string(location);
}

std::string status_sentence(int status) {
  switch (status) {
    case 401: return "the server refused the credentials (HTTP 401)";
    case 403: return "the server refused access (HTTP 403)";
    case 404: return "there is no such file (HTTP 404)";
    default: return "the server answered HTTP " + std::to_string(status);
  }
}

// The basic-auth user and password: the options', else those in the URL.
std::pair<std::string, std::string> credentials_for(const Url& url, const DownloadOptions& options) {
  if (!options.username.empty() || url.userinfo.empty()) return {options.username, options.password};
  const auto colon = url.userinfo.find(':');
  return {url.userinfo.substr(0, colon), colon == std::string::npos ? "" : url.userinfo.substr(colon + 1)};
}

// The GET for `target`. Credentials go to the origin they were given for (every hop
// back to it included), never to a redirect elsewhere.
HttpRequest make_request(const Url& target, const std::string& first_origin,
                         const std::pair<std::string, std::string>& credentials, const DownloadOptions& options) {
  HttpRequest request;
  request.target = target.path;
  if (target.origin() == first_origin && !credentials.first.empty()) {
    request.headers.emplace_back("Authorization", basic_authorization(credentials.first, credentials.second));
  }
  if (options.headers) {
    for (auto& header : options.headers(target)) request.headers.push_back(std::move(header));
  }
  return request;
}

// The download itself, on `executor`; `current` is the client in use, for cancellation.
asio::awaitable<Result<std::string>> fetch_body(asio::any_io_executor executor, std::string url,
                                                const DownloadOptions& options,
                                                const std::pair<std::string, std::string>& credentials,
                                                std::shared_ptr<HttpClient>& current, const bool& cancelled) {
  std::optional<std::string> first_origin;
  for (int hop = 0; hop <= options.max_redirects; ++hop) {
    auto parsed = parse_http_url(url);
    if (!parsed) co_return make_error("cannot download " + redact_url(url) + ": " + parsed.error().message);
    const Url target = std::move(parsed).value();
    if (first_origin && first_origin->starts_with("https:") && target.scheme != "https") {
      co_return make_error("cannot download: a redirect from https to plain http (" + redact_url(url) + ") is refused");
    }
    if (!first_origin) first_origin = target.origin();
    current = std::make_shared<HttpClient>(executor, target, options.tls, options.limits);
    HttpRequest request = make_request(target, *first_origin, credentials, options);
    auto response = co_await current->send(std::move(request));
    current->close();
    if (cancelled) co_return make_error("the download of " + redact_url(url) + " was cancelled");
    if (!response) co_return make_error("cannot download " + redact_url(url) + ": " + response.error().message);
    if (response->status >= 200 && response->status < 300) co_return std::move(response->body);
    if (is_redirect(response->status)) {
      const auto location = response->header("Location");
      if (!location || location->empty()) {
        co_return make_error("cannot download " + redact_url(url) + ": a redirect without a Location");
      }
      url = resolve_location(target, *location);
      continue;
    }
    co_return make_error("cannot download " + redact_url(url) + ": " + status_sentence(response->status));
  }
  co_return make_error("cannot download " + redact_url(url) + ": more than " + std::to_string(options.max_redirects) +
                       " redirects");
}

// fetch_body's outcome into `outcome` (co_spawn wants a result it can default-construct).
asio::awaitable<void> keep_outcome(asio::any_io_executor executor, std::string url, const DownloadOptions& options,
                                   const std::pair<std::string, std::string>& credentials,
                                   std::shared_ptr<HttpClient>& current, const bool& cancelled,
                                   std::optional<Result<std::string>>& outcome) {
  outcome = co_await fetch_body(std::move(executor), std::move(url), options, credentials, current, cancelled);
}

}  // namespace

std::string basic_authorization(std::string_view username, std::string_view password) {
  const std::string plain = std::string(username) + ":" + std::string(password);
  std::vector<unsigned char> encoded(4 * ((plain.size() + 2) / 3) + 1);
  const int length = EVP_EncodeBlock(encoded.data(), reinterpret_cast<const unsigned char*>(plain.data()),  // NOLINT
                                     static_cast<int>(plain.size()));
  return "Basic " + std::string(reinterpret_cast<const char*>(encoded.data()), static_cast<std::size_t>(length));  // NOLINT
}

Result<std::string> download(std::string_view url, const DownloadOptions& options, std::stop_token cancel) {
  asio::io_context context;
  std::shared_ptr<HttpClient> current;
  bool cancelled = false;
  std::optional<Result<std::string>> outcome;
  // Credentials from the options, else from the URL as given (kept for every hop back to it).
  auto first = parse_http_url(url);
  const auto credentials = first ? credentials_for(*first, options) : std::pair<std::string, std::string>{};
  asio::co_spawn(context,
                 keep_outcome(context.get_executor(), std::string(url), options, credentials, current, cancelled, outcome),
                 [](const std::exception_ptr& failure) {
    if (failure) std::rethrow_exception(failure);
  });
  // A stop request closes the connection in use, from the loop's own thread.
  const std::stop_callback on_stop(cancel, [&] {
    asio::post(context, [&] {
      cancelled = true;
      if (current) current->close();
    });
  });
  context.run();
  if (!outcome) return make_error("the download of " + redact_url(url) + " did not finish");
  return std::move(*outcome);
}

}  // namespace proctor
