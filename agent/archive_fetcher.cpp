#include "agent/archive_fetcher.hpp"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <system_error>

#include "agent/http_download.hpp"
#include "agent/url.hpp"
#include "common/aws_sigv4.hpp"
#include "common/text.hpp"

namespace proctor {

namespace fs = std::filesystem;

namespace {

DownloadOptions download_options(const ArchiveFetchSettings& settings) {
  DownloadOptions options;
  options.tls = settings.tls;
  options.limits.body_limit = static_cast<std::size_t>(settings.max_download_bytes);
  options.limits.request_timeout = settings.download_timeout;
  return options;
}

// Unpacks a downloaded archive into the URL's cache folder, replacing the last one.
Result<Checkout> unpack_into_cache(const std::string& data, std::string_view url, const fs::path& cache_root,
                                   const ArchiveLimits& limits) {
  const fs::path tree = cache_root / cache_folder_name(url) / "tree";
  std::error_code ec;
  fs::remove_all(tree, ec);
  if (ec) return make_error("cannot clear the last copy of " + redact_url(url) + ": " + ec.message());
  auto unpacked = unpack_archive(data, tree, limits);
  if (!unpacked) return make_error("cannot unpack " + redact_url(url) + ": " + unpacked.error().message);
  Checkout checkout;
  checkout.dir = tree;
  checkout.commit = "sha256:" + sha256_hex(data);
  return checkout;
}

// An S3 object: bucket and key of an s3://bucket/key URL.
struct S3Object {
  std::string bucket;
  std::string key;
};

Result<S3Object> parse_s3_url(std::string_view url) {
  constexpr std::string_view kScheme = "s3://";
  if (!url.starts_with(kScheme)) return make_error("'" + redact_url(url) + "' is not an s3://bucket/key URL");
  const std::string_view rest = url.substr(kScheme.size());
  const auto slash = rest.find('/');
  if (slash == std::string_view::npos || slash == 0 || slash + 1 == rest.size()) {
    return make_error("'" + redact_url(url) + "' is not an s3://bucket/key URL (bucket and key are both needed)");
  }
  // A bucket name is letters, digits, '.', '-' and '_' (legacy buckets): anything else
  // could move the request, and its signature, to another host.
  const std::string_view bucket = rest.substr(0, slash);
  const bool valid = bucket.size() <= 255 && std::all_of(bucket.begin(), bucket.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '.' || c == '-' || c == '_';
  });
  if (!valid) return make_error("'" + std::string(bucket) + "' is not an S3 bucket name");
  return S3Object{std::string(bucket), std::string(rest.substr(slash + 1))};
}

// True when the bucket can be a host name label under AWS's wildcard certificate.
bool is_dns_bucket(std::string_view bucket) {
  return bucket.size() >= 3 && bucket.size() <= 63 && bucket.front() != '-' && bucket.back() != '-' &&
         std::all_of(bucket.begin(), bucket.end(), [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'; });
}

}  // namespace

Result<Checkout> HttpArchiveFetcher::fetch(const SourceSpec& source, const fs::path& cache_root, std::stop_token cancel) {
  DownloadOptions options = download_options(settings_);
  options.username = source.username;
  options.password = source.password;
  auto data = download(source.url, options, cancel);
  if (!data) return data.error();
  return unpack_into_cache(*data, source.url, cache_root, settings_.unpack);
}

Result<Checkout> S3ArchiveFetcher::fetch(const SourceSpec& source, const fs::path& cache_root, std::stop_token cancel) {
  auto object = parse_s3_url(source.url);
  if (!object) return object.error();
  AwsCredentials credentials;
  credentials.access_key = source.access_key.empty() ? s3_.access_key : source.access_key;
  credentials.secret_key = source.secret_key.empty() ? s3_.secret_key : source.secret_key;
  if (credentials.access_key.empty() || credentials.secret_key.empty()) {
    return make_error("no S3 credentials for " + source.url + ": give access_key and secret_key in the repository, or "
                      "--s3-access-key and --s3-secret-key to the agent");
  }
  const std::string region = source.region.empty() ? s3_.region : source.region;
  const std::string endpoint = source.endpoint.empty() ? s3_.endpoint : source.endpoint;
  // Path-style on an S3-compatible endpoint, virtual-hosted style on AWS itself.
  const std::string encoded_key = uri_encode(object->key, /*keep_slash=*/true);
  std::string url;
  if (!endpoint.empty()) {
    std::string base = endpoint;
    while (!base.empty() && base.back() == '/') base.pop_back();
    url = base + "/" + uri_encode(object->bucket, false) + "/" + encoded_key;
  } else if (is_dns_bucket(object->bucket)) {
    url = "https://" + object->bucket + ".s3." + region + ".amazonaws.com/" + encoded_key;
  } else {
    // Dots break the TLS wildcard of virtual-hosted names; '_' and capitals are no host names.
    url = "https://s3." + region + ".amazonaws.com/" + uri_encode(object->bucket, false) + "/" + encoded_key;
  }
  DownloadOptions options = download_options(settings_);
  options.max_redirects = 0;  // a signed request is valid for its own URL only
  options.headers = [&](const Url& target) {
    SigV4Request request;
    request.host = target.host_header();  // what HttpClient sends
    request.path = target.path;
    HttpHeaders headers;
    for (auto& [name, value] : sign_v4(request, credentials, region, "s3", amz_date(std::chrono::system_clock::now()))) {
      if (name != "Host") headers.emplace_back(std::move(name), std::move(value));  // HttpClient sets it
    }
    return headers;
  };
  auto data = download(url, options, cancel);
  if (!data) return make_error("cannot fetch " + source.url + " from S3: " + data.error().message);
  return unpack_into_cache(*data, source.url, cache_root, settings_.unpack);
}

}  // namespace proctor
