#pragma once
// AWS Signature Version 4 for requests signed in headers (S3 GET first): the canonical
// request, the string to sign and the Authorization header. Pure functions: the clock is
// injected as `amz_date`, so a signature is reproducible; no networking here.

#include <chrono>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace proctor {

// SHA-256 of an empty body, hex: the payload hash of every GET.
inline constexpr std::string_view kEmptyPayloadSha256 =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

// Who signs: an access key pair, plus the session token of temporary credentials.
struct AwsCredentials {
  std::string access_key;
  std::string secret_key;
  // Empty for long-term keys; else sent and signed as x-amz-security-token.
  std::string session_token;
};

// What is signed. Host, x-amz-date, x-amz-content-sha256, x-amz-security-token and
// Authorization are the signer's own: entries with those names in `headers` are ignored.
struct SigV4Request {
  std::string method = "GET";
  std::string host;  // as sent in Host (with :port when not the scheme's default)
  // Already URI-encoded, used as is (S3 does not normalise): "/bucket/a%20b.zip".
  std::string path = "/";
  std::vector<std::pair<std::string, std::string>> query;  // decoded name/value pairs, any order
  // Extra headers to sign, which the caller sends as given (e.g. Range).
  std::vector<std::pair<std::string, std::string>> headers;
  std::string payload_sha256;  // hex; empty means the SHA-256 of an empty body
  // S3 requires x-amz-content-sha256, sent and signed; false leaves it out, as the generic
  // SigV4 test suite does.
  bool sign_content_sha256 = true;
};

// The headers to add to the request (besides `request.headers`, sent as given), in this
// order: Host, x-amz-date, x-amz-content-sha256 (unless turned off), x-amz-security-token
// (with a session token), Authorization. `amz_date` is "YYYYMMDDTHHMMSSZ".
std::vector<std::pair<std::string, std::string>> sign_v4(const SigV4Request& request,
                                                         const AwsCredentials& credentials,
                                                         std::string_view region,
                                                         std::string_view service,
                                                         std::string_view amz_date);

// The canonical request sign_v4 signs for the same arguments (S3 returns its own in a
// SignatureDoesNotMatch error, so the two can be compared).
std::string canonical_request(const SigV4Request& request, const AwsCredentials& credentials,
                              std::string_view amz_date);

// The string to sign: algorithm, date, credential scope and the canonical request's hash.
std::string string_to_sign(std::string_view canonical_request, std::string_view region,
                           std::string_view service, std::string_view amz_date);

// The canonical query string: names and values encoded with uri_encode(…, false), sorted by
// name then value, joined with '&'; also usable as the query sent on the wire.
std::string canonical_query(const std::vector<std::pair<std::string, std::string>>& query);

// S3 URI encoding, byte by byte: A-Z a-z 0-9 - . _ ~ kept, '/' kept only when `keep_slash`,
// every other byte (UTF-8 included) as %XX with upper-case hex.
std::string uri_encode(std::string_view text, bool keep_slash);

// "YYYYMMDDTHHMMSSZ" (UTC, whole seconds) for `when`.
std::string amz_date(std::chrono::system_clock::time_point when);

// Lower-case hex SHA-256 of `bytes`.
std::string sha256_hex(std::string_view bytes);

}  // namespace proctor
