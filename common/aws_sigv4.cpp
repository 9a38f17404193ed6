#include "common/aws_sigv4.hpp"

#include <algorithm>
#include <array>
#include <cstdio>
#include <stdexcept>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "common/text.hpp"

namespace proctor {

namespace {

constexpr std::string_view kAlgorithm = "AWS4-HMAC-SHA256";

using Digest = std::array<unsigned char, 32>;
using Pairs = std::vector<std::pair<std::string, std::string>>;

std::string to_hex(const unsigned char* data, std::size_t size) {
  constexpr std::string_view kDigits = "0123456789abcdef";
  std::string out;
  out.reserve(size * 2);
  for (std::size_t i = 0; i < size; ++i) {
    out += kDigits[data[i] >> 4U];
    out += kDigits[data[i] & 0x0FU];
  }
  return out;
}

const unsigned char* bytes(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(
      s.data());  // NOLINT(cppcoreguidelines-pro-type-reinterpret-cast)
}

// OpenSSL fails here only when it is broken (no SHA-256 provider): an invariant, not a
// user's error, hence the exception.
Digest hmac_sha256(std::string_view key, std::string_view data) {
  Digest out{};
  unsigned int size = 0;
  if (HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), bytes(data), data.size(),
           out.data(), &size) == nullptr ||
      size != out.size()) {
    throw std::runtime_error("OpenSSL could not compute HMAC-SHA256");
  }
  return out;
}

std::string_view as_view(const Digest& digest) {
  return {reinterpret_cast<const char*>(digest.data()),
          digest.size()};  // NOLINT(cppcoreguidelines-pro-type-reinterpret-cast)
}

// SigV4's "trimall": no white space at the ends, each inner run of it one space.
std::string trim_all(std::string_view value) {
  value = trim(value);
  std::string out;
  out.reserve(value.size());
  bool in_space = false;
  for (const char c : value) {
    if (c == ' ' || c == '\t') {
      in_space = true;
      continue;
    }
    if (in_space) out += ' ';
    in_space = false;
    out += c;
  }
  return out;
}

bool is_signer_header(std::string_view lower_name) {
  return lower_name == "host" || lower_name == "x-amz-date" ||
         lower_name == "x-amz-content-sha256" || lower_name == "x-amz-security-token" ||
         lower_name == "authorization";
}

std::string payload_hash(const SigV4Request& request) {
  return request.payload_sha256.empty() ? std::string(kEmptyPayloadSha256) : request.payload_sha256;
}

// Every signed header as (lower-case name, canonical value), sorted by name, one entry per
// name: repeated headers are joined with ',' in the order given, as SigV4 asks.
Pairs signed_headers(const SigV4Request& request, const AwsCredentials& credentials,
                     std::string_view amz_date) {
  Pairs all;
  all.emplace_back("host", trim_all(request.host));
  all.emplace_back("x-amz-date", std::string(amz_date));
  if (request.sign_content_sha256) all.emplace_back("x-amz-content-sha256", payload_hash(request));
  if (!credentials.session_token.empty()) {
    all.emplace_back("x-amz-security-token", credentials.session_token);
  }
  for (const auto& [name, value] : request.headers) {
    std::string key = to_lower(trim(name));
    if (is_signer_header(key)) continue;
    all.emplace_back(std::move(key), trim_all(value));
  }
  std::stable_sort(all.begin(), all.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  Pairs merged;
  for (auto& entry : all) {
    if (!merged.empty() && merged.back().first == entry.first) {
      merged.back().second += ',';
      merged.back().second += entry.second;
    } else {
      merged.push_back(std::move(entry));
    }
  }
  return merged;
}

std::string signed_header_names(const Pairs& headers) {
  std::string out;
  for (const auto& header : headers) {
    if (!out.empty()) out += ';';
    out += header.first;
  }
  return out;
}

std::string canonical_request_of(const SigV4Request& request, const Pairs& headers) {
  std::string out = request.method;
  out += '\n';
  out += request.path.empty() ? std::string("/") : request.path;
  out += '\n';
  out += canonical_query(request.query);
  out += '\n';
  for (const auto& [name, value] : headers) {
    out += name;
    out += ':';
    out += value;
    out += '\n';
  }
  out += '\n';
  out += signed_header_names(headers);
  out += '\n';
  out += payload_hash(request);
  return out;
}

std::string credential_scope(std::string_view region, std::string_view service,
                             std::string_view amz_date) {
  std::string out(amz_date.substr(0, 8));
  out += '/';
  out += region;
  out += '/';
  out += service;
  out += "/aws4_request";
  return out;
}

// The key derivation chain of SigV4: date, region, service, "aws4_request".
std::string signature(std::string_view secret_key, std::string_view region,
                      std::string_view service, std::string_view amz_date,
                      std::string_view string_to_sign) {
  std::string secret = "AWS4";
  secret += secret_key;
  Digest key = hmac_sha256(secret, amz_date.substr(0, 8));
  OPENSSL_cleanse(secret.data(), secret.size());
  key = hmac_sha256(as_view(key), region);
  key = hmac_sha256(as_view(key), service);
  key = hmac_sha256(as_view(key), "aws4_request");
  const Digest result = hmac_sha256(as_view(key), string_to_sign);
  OPENSSL_cleanse(key.data(), key.size());
  return to_hex(result.data(), result.size());
}

}  // namespace

std::string uri_encode(std::string_view text, bool keep_slash) {
  constexpr std::string_view kDigits = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    const bool unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                            (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' || c == '~';
    if (unreserved || (keep_slash && c == '/')) {
      out += c;
    } else {
      const auto byte = static_cast<unsigned char>(c);
      out += '%';
      out += kDigits[byte >> 4U];
      out += kDigits[byte & 0x0FU];
    }
  }
  return out;
}

std::string canonical_query(const std::vector<std::pair<std::string, std::string>>& query) {
  Pairs encoded;
  encoded.reserve(query.size());
  for (const auto& [name, value] : query) {
    encoded.emplace_back(uri_encode(name, false), uri_encode(value, false));
  }
  std::sort(encoded.begin(), encoded.end());
  std::string out;
  for (const auto& [name, value] : encoded) {
    if (!out.empty()) out += '&';
    out += name;
    out += '=';
    out += value;
  }
  return out;
}

std::string sha256_hex(std::string_view bytes_in) {
  Digest out{};
  unsigned int size = 0;
  if (EVP_Digest(bytes_in.data(), bytes_in.size(), out.data(), &size, EVP_sha256(), nullptr) != 1 ||
      size != out.size()) {
    throw std::runtime_error("OpenSSL could not compute SHA-256");
  }
  return to_hex(out.data(), out.size());
}

std::string amz_date(std::chrono::system_clock::time_point when) {
  using namespace std::chrono;
  const auto day = floor<days>(when);
  const year_month_day date{day};
  const hh_mm_ss time{floor<seconds>(when - day)};
  std::array<char, 32> out{};
  std::snprintf(out.data(), out.size(), "%04d%02u%02uT%02d%02d%02dZ", static_cast<int>(date.year()),
                static_cast<unsigned>(date.month()), static_cast<unsigned>(date.day()),
                static_cast<int>(time.hours().count()), static_cast<int>(time.minutes().count()),
                static_cast<int>(time.seconds().count()));
  return out.data();
}

std::string canonical_request(const SigV4Request& request, const AwsCredentials& credentials,
                              std::string_view amz_date) {
  return canonical_request_of(request, signed_headers(request, credentials, amz_date));
}

std::string string_to_sign(std::string_view canonical_request, std::string_view region,
                           std::string_view service, std::string_view amz_date) {
  std::string out(kAlgorithm);
  out += '\n';
  out += amz_date;
  out += '\n';
  out += credential_scope(region, service, amz_date);
  out += '\n';
  out += sha256_hex(canonical_request);
  return out;
}

std::vector<std::pair<std::string, std::string>> sign_v4(const SigV4Request& request,
                                                         const AwsCredentials& credentials,
                                                         std::string_view region,
                                                         std::string_view service,
                                                         std::string_view amz_date) {
  const Pairs headers = signed_headers(request, credentials, amz_date);
  const std::string to_sign =
      string_to_sign(canonical_request_of(request, headers), region, service, amz_date);

  std::string authorization(kAlgorithm);
  authorization += " Credential=";
  authorization += credentials.access_key;
  authorization += '/';
  authorization += credential_scope(region, service, amz_date);
  authorization += ", SignedHeaders=";
  authorization += signed_header_names(headers);
  authorization += ", Signature=";
  authorization += signature(credentials.secret_key, region, service, amz_date, to_sign);

  Pairs out;
  out.emplace_back("Host", request.host);
  out.emplace_back("x-amz-date", std::string(amz_date));
  if (request.sign_content_sha256) out.emplace_back("x-amz-content-sha256", payload_hash(request));
  if (!credentials.session_token.empty()) {
    out.emplace_back("x-amz-security-token", credentials.session_token);
  }
  out.emplace_back("Authorization", std::move(authorization));
  return out;
}

}  // namespace proctor
