#pragma once
// Fetchers for archive repositories: `http` (a zip or tar archive at an http(s) URL)
// and `s3` (the same in an S3 bucket, signed with AWS Signature V4). Each fetch
// downloads the archive (size-capped) and unpacks it afresh into the URL's cache folder.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>

#include "agent/archive.hpp"
#include "agent/fetcher.hpp"
#include "agent/http_client.hpp"

namespace proctor {

struct ArchiveFetchSettings {
  TlsOptions tls;
  std::uintmax_t max_download_bytes = 512ULL * 1024 * 1024;
  std::chrono::milliseconds download_timeout{std::chrono::minutes(10)};
  ArchiveLimits unpack;
};

// http(s) archives: basic auth (from the source or the URL), up to 5 redirects.
class HttpArchiveFetcher : public Fetcher {
 public:
  explicit HttpArchiveFetcher(ArchiveFetchSettings settings) : settings_(std::move(settings)) {}
  Result<Checkout> fetch(const SourceSpec& source, const std::filesystem::path& cache_root,
                         std::stop_token cancel) override;

 private:
  ArchiveFetchSettings settings_;
};

// What an S3 fetch needs besides the object: where the store is and who asks.
struct S3Settings {
  std::string access_key;
  std::string secret_key;
  std::string region = "us-east-1";
  std::string endpoint;  // an S3-compatible store ("http://127.0.0.1:4568"), path-style; empty: AWS
};

// S3 objects: `s3://bucket/key.zip` URLs; each of credentials, region and endpoint from
// the source (a specification's repository block) when it has one, else the agent's.
class S3ArchiveFetcher : public Fetcher {
 public:
  S3ArchiveFetcher(ArchiveFetchSettings settings, S3Settings s3) : settings_(std::move(settings)), s3_(std::move(s3)) {}
  Result<Checkout> fetch(const SourceSpec& source, const std::filesystem::path& cache_root,
                         std::stop_token cancel) override;

 private:
  ArchiveFetchSettings settings_;
  S3Settings s3_;
};

}  // namespace proctor
