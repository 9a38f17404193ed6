#include <doctest/doctest.h>

#include <chrono>
#include <string>

#include "common/aws_sigv4.hpp"

using namespace proctor;

namespace {

// The AWS SigV4 test suite (aws-sig-v4-test-suite): its credentials, scope and date.
const AwsCredentials kSuiteCredentials{"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                                       ""};
constexpr std::string_view kSuiteDate = "20150830T123600Z";
constexpr std::string_view kSuiteScope = "AKIDEXAMPLE/20150830/us-east-1/service/aws4_request";

// The S3 documentation's examples (Signature Calculations for the Authorization Header).
const AwsCredentials kS3DocCredentials{"AKIAIOSFODNN7EXAMPLE",
                                       "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", ""};
constexpr std::string_view kS3DocDate = "20130524T000000Z";

// A request of the test suite: host example.amazonaws.com, only host and x-amz-date signed.
SigV4Request suite_request() {
  SigV4Request request;
  request.host = "example.amazonaws.com";
  request.sign_content_sha256 = false;
  return request;
}

SigV4Request s3_doc_request() {
  SigV4Request request;
  request.host = "examplebucket.s3.amazonaws.com";
  request.payload_sha256 = std::string(kEmptyPayloadSha256);
  return request;
}

std::string header(const std::vector<std::pair<std::string, std::string>>& headers,
                   std::string_view name) {
  for (const auto& [key, value] : headers) {
    if (key == name) return value;
  }
  return "<absent>";
}

std::string signature_of(const std::vector<std::pair<std::string, std::string>>& headers) {
  const std::string authorization = header(headers, "Authorization");
  const auto at = authorization.rfind("Signature=");
  return at == std::string::npos ? "<none>" : authorization.substr(at + 10);
}

std::string suite_signature(const SigV4Request& request,
                            const AwsCredentials& credentials = kSuiteCredentials) {
  return signature_of(sign_v4(request, credentials, "us-east-1", "service", kSuiteDate));
}

std::string s3_doc_signature(const SigV4Request& request) {
  return signature_of(sign_v4(request, kS3DocCredentials, "us-east-1", "s3", kS3DocDate));
}

}  // namespace

TEST_SUITE("aws_sigv4") {
  TEST_CASE("get-vanilla: canonical request, string to sign and signature of the AWS test suite") {
    const SigV4Request request = suite_request();
    const std::string canonical = canonical_request(request, kSuiteCredentials, kSuiteDate);
    CHECK(canonical ==
          "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n"
          "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    CHECK(string_to_sign(canonical, "us-east-1", "service", kSuiteDate) ==
          "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
          "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63");

    const auto headers = sign_v4(request, kSuiteCredentials, "us-east-1", "service", kSuiteDate);
    CHECK(header(headers, "Authorization") ==
          "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
          "SignedHeaders=host;x-amz-date, "
          "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
    CHECK(header(headers, "Host") == "example.amazonaws.com");
    CHECK(header(headers, "x-amz-date") == "20150830T123600Z");
    CHECK(header(headers, "x-amz-content-sha256") == "<absent>");
    CHECK(header(headers, "x-amz-security-token") == "<absent>");
  }

  TEST_CASE("S3 documentation GET Object example with a Range header") {
    SigV4Request request = s3_doc_request();
    request.path = "/test.txt";
    request.headers = {{"Range", "bytes=0-9"}};
    const std::string canonical = canonical_request(request, kS3DocCredentials, kS3DocDate);
    CHECK(canonical ==
          "GET\n/test.txt\n\n"
          "host:examplebucket.s3.amazonaws.com\n"
          "range:bytes=0-9\n"
          "x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
          "x-amz-date:20130524T000000Z\n\n"
          "host;range;x-amz-content-sha256;x-amz-date\n"
          "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    CHECK(string_to_sign(canonical, "us-east-1", "s3", kS3DocDate) ==
          "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n"
          "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972");

    const auto headers = sign_v4(request, kS3DocCredentials, "us-east-1", "s3", kS3DocDate);
    CHECK(header(headers, "Authorization") ==
          "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
          "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
          "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
    CHECK(header(headers, "x-amz-content-sha256") == kEmptyPayloadSha256);
    CHECK(header(headers, "x-amz-date") == "20130524T000000Z");
    // Range is the caller's to send: the signer hands back only its own headers.
    CHECK(header(headers, "Range") == "<absent>");
  }

  TEST_CASE("an empty payload_sha256 means the hash of an empty body") {
    SigV4Request request = s3_doc_request();
    request.path = "/test.txt";
    request.headers = {{"Range", "bytes=0-9"}};
    request.payload_sha256.clear();
    CHECK(s3_doc_signature(request) ==
          "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
  }

  TEST_CASE("S3 documentation examples with a query: List Objects and GET Bucket Lifecycle") {
    SigV4Request list = s3_doc_request();
    list.query = {{"prefix", "J"}, {"max-keys", "2"}};  // signed sorted, whatever the order given
    CHECK(
        canonical_request(list, kS3DocCredentials, kS3DocDate).find("\n/\nmax-keys=2&prefix=J\n") !=
        std::string::npos);
    CHECK(s3_doc_signature(list) ==
          "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");

    SigV4Request lifecycle = s3_doc_request();
    lifecycle.query = {{"lifecycle", ""}};  // a bare name is signed as "lifecycle="
    CHECK(s3_doc_signature(lifecycle) ==
          "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543");
  }

  TEST_CASE(
      "query parameters are sorted by encoded name, upper case first "
      "(get-vanilla-query-order-key-case)") {
    SigV4Request request = suite_request();
    request.query = {{"Param2", "value2"}, {"Param1", "value1"}};
    CHECK(
        canonical_request(request, kSuiteCredentials, kSuiteDate) ==
        "GET\n/"
        "\nParam1=value1&Param2=value2\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
        "host;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    CHECK(suite_signature(request) ==
          "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500");

    CHECK(canonical_query({{"b", "2"}, {"a", "z"}, {"a", "y"}, {"B", "1"}}) == "B=1&a=y&a=z&b=2");
    // Sorted after encoding: "%7B" comes before "a" although '{' comes after it.
    CHECK(canonical_query({{"a", "1"}, {"{", "2"}}) == "%7B=2&a=1");
    CHECK(canonical_query({{"prefix", "a/b+c=d e"}}) == "prefix=a%2Fb%2Bc%3Dd%20e");
    CHECK(canonical_query({}).empty());
  }

  TEST_CASE("a UTF-8 query name is encoded byte by byte (get-vanilla-utf8-query)") {
    SigV4Request request = suite_request();
    request.query = {{"\xE1\x88\xB4", "bar"}};
    CHECK(canonical_query(request.query) == "%E1%88%B4=bar");
    CHECK(suite_signature(request) ==
          "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04");
  }

  TEST_CASE("header values are trimmed and inner blanks collapsed (get-header-value-trim)") {
    SigV4Request request = suite_request();
    request.headers = {{"My-Header1", " value1"}, {"My-Header2", " \"a   b   c\""}};
    CHECK(canonical_request(request, kSuiteCredentials, kSuiteDate) ==
          "GET\n/\n\nhost:example.amazonaws.com\nmy-header1:value1\nmy-header2:\"a b c\"\n"
          "x-amz-date:20150830T123600Z\n\nhost;my-header1;my-header2;x-amz-date\n"
          "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    CHECK(suite_signature(request) ==
          "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736");
  }

  TEST_CASE(
      "a repeated header is signed once, its values joined in order (get-header-key-duplicate)") {
    SigV4Request request = suite_request();
    request.headers = {
        {"My-Header1", "value2"}, {"My-Header1", "value2"}, {"My-Header1", "value1"}};
    CHECK(canonical_request(request, kSuiteCredentials, kSuiteDate)
              .find("\nmy-header1:value2,value2,value1\n") != std::string::npos);
    CHECK(suite_signature(request) ==
          "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea");
  }

  TEST_CASE("a session token is sent and signed (get-vanilla-with-session-token)") {
    AwsCredentials credentials = kSuiteCredentials;
    credentials.session_token = "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267";
    const SigV4Request request = suite_request();
    const std::string canonical = canonical_request(request, credentials, kSuiteDate);
    CHECK(string_to_sign(canonical, "us-east-1", "service", kSuiteDate) ==
          "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
          "067b36aa60031588cea4a4cde1f21215227a047690c72247f1d70b32fbbfad2b");
    const auto headers = sign_v4(request, credentials, "us-east-1", "service", kSuiteDate);
    CHECK(header(headers, "x-amz-security-token") == credentials.session_token);
    CHECK(header(headers, "Authorization") ==
          std::string("AWS4-HMAC-SHA256 Credential=") + std::string(kSuiteScope) +
              ", SignedHeaders=host;x-amz-date;x-amz-security-token, "
              "Signature=07ec1639c89043aa0e3e2de82b96708f198cceab042d4a97044c66dd9f74e7f8");
  }

  TEST_CASE("the signer's own headers given by the caller are ignored, not signed twice") {
    SigV4Request request = suite_request();
    request.headers = {
        {"X-Amz-Date", "19990101T000000Z"}, {"Host", "other.example"}, {"Authorization", "x"}};
    CHECK(canonical_request(request, kSuiteCredentials, kSuiteDate) ==
          canonical_request(suite_request(), kSuiteCredentials, kSuiteDate));
    CHECK(suite_signature(request) ==
          "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
  }

  TEST_CASE("sign_v4 returns its headers in a fixed order") {
    AwsCredentials credentials = kS3DocCredentials;
    credentials.session_token = "token";
    const auto headers = sign_v4(s3_doc_request(), credentials, "us-east-1", "s3", kS3DocDate);
    REQUIRE(headers.size() == 5);
    CHECK(headers[0].first == "Host");
    CHECK(headers[1].first == "x-amz-date");
    CHECK(headers[2].first == "x-amz-content-sha256");
    CHECK(headers[3].first == "x-amz-security-token");
    CHECK(headers[4].first == "Authorization");
    CHECK(headers[4].second.find(
              "SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token,") !=
          std::string::npos);
  }

  TEST_CASE("uri_encode keeps the unreserved characters and encodes every other byte") {
    CHECK(uri_encode("-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", false) ==
          "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz");
    CHECK(uri_encode("key with space.zip", true) == "key%20with%20space.zip");
    CHECK(uri_encode("a/b", true) == "a/b");
    CHECK(uri_encode("a/b", false) == "a%2Fb");
    CHECK(uri_encode("caf\xC3\xA9", false) == "caf%C3%A9");  // UTF-8 bytes, upper-case hex
    CHECK(uri_encode("!'()*+=&%$", false) == "%21%27%28%29%2A%2B%3D%26%25%24");
    CHECK(uri_encode(std::string_view("\0\xFF", 2), false) == "%00%FF");
    CHECK(uri_encode("", true).empty());
  }

  TEST_CASE("amz_date formats a UTC time point") {
    using std::chrono::seconds;
    using std::chrono::system_clock;
    CHECK(amz_date(system_clock::time_point(seconds(1369353600))) == "20130524T000000Z");
    CHECK(amz_date(system_clock::time_point(seconds(1440938160))) == "20150830T123600Z");
    CHECK(amz_date(system_clock::time_point(seconds(951782400))) == "20000229T000000Z");
    CHECK(amz_date(system_clock::time_point(seconds(4102444799))) == "20991231T235959Z");
    CHECK(amz_date(system_clock::time_point(seconds(-1))) == "19691231T235959Z");
    // Fractions of a second are dropped, not rounded.
    CHECK(amz_date(system_clock::time_point(seconds(1440938160)) +
                   std::chrono::milliseconds(999)) == "20150830T123600Z");
  }

  TEST_CASE("sha256_hex matches the FIPS 180-2 examples") {
    CHECK(sha256_hex("") == kEmptyPayloadSha256);
    CHECK(sha256_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    CHECK(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq") ==
          "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  }
}
