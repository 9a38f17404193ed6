#include <doctest/doctest.h>

#include "common/text.hpp"

using namespace proctor;

namespace {

// The JSON escaping rule, one byte at a time, as the reference for the block-wise escaper.
std::string reference_json_string(std::string_view s) {
  std::string out = "\"";
  const std::string valid = make_valid_utf8(s);  // NUL would be escaped, but tests use none
  for (const char ch : valid) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '"') out += "\\\"";
    else if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else if (c == '\r') out += "\\r";
    else if (c == '\t') out += "\\t";
    else if (c == '\b') out += "\\b";
    else if (c == '\f') out += "\\f";
    else if (c < 0x20) {
      static constexpr char hex[] = "0123456789abcdef";
      out += "\\u00";
      out.push_back(hex[c >> 4]);
      out.push_back(hex[c & 0xF]);
    } else {
      out.push_back(ch);
    }
  }
  return out + "\"";
}

}  // namespace

TEST_SUITE("text") {
  TEST_CASE("make_valid_utf8 keeps valid text and replaces each bad byte") {
    CHECK(make_valid_utf8("plain ascii") == "plain ascii");
    CHECK(make_valid_utf8("caf\xC3\xA9 \xE2\x9C\x93 \xF0\x9F\x98\x80") == "caf\xC3\xA9 \xE2\x9C\x93 \xF0\x9F\x98\x80");
    CHECK(make_valid_utf8("a\xFFz") == "a\xEF\xBF\xBDz");
    CHECK(make_valid_utf8("cut \xE2\x9C") == "cut \xEF\xBF\xBD\xEF\xBF\xBD");
    CHECK(make_valid_utf8(std::string("nul\0byte", 8)) == "nul\xEF\xBF\xBD" "byte");
    CHECK(make_valid_utf8("\xC0\xAF") == "\xEF\xBF\xBD\xEF\xBF\xBD");     // overlong '/'
    CHECK(make_valid_utf8("\xED\xA0\x80") == "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate
  }

  TEST_CASE("shell_quote makes one literal word") {
    CHECK(shell_quote("simple") == "'simple'");
    CHECK(shell_quote("") == "''");
    CHECK(shell_quote("it's $(rm -rf /) `x` \"y\"") == "'it'\\''s $(rm -rf /) `x` \"y\"'");
  }

  TEST_CASE("parse_decimal reads C-locale numbers with thousands separators") {
    CHECK(parse_decimal("0.487").value() == doctest::Approx(0.487));
    CHECK(parse_decimal(" 15.866 ").value() == doctest::Approx(15.866));
    CHECK(parse_decimal("1,234.5").value() == doctest::Approx(1234.5));
    CHECK(parse_decimal("+3").value() == doctest::Approx(3));
    CHECK(parse_decimal("1e3").value() == doctest::Approx(1000));
    CHECK_FALSE(parse_decimal("").has_value());
    CHECK_FALSE(parse_decimal("abc").has_value());
    CHECK_FALSE(parse_decimal("1.5s").has_value());
    CHECK_FALSE(parse_decimal("nan").has_value());
    CHECK_FALSE(parse_decimal("inf").has_value());
  }

  TEST_CASE("utf8_tail and utf8_truncate cut on character boundaries") {
    const std::string text = "ab\xE2\x9C\x93" "cd";  // a b ✓ c d
    CHECK(utf8_tail(text, 100) == text);
    CHECK(utf8_tail(text, 4) == "cd");  // the ✓ would be cut in half: left out
    CHECK(utf8_tail(text, 5) == "\xE2\x9C\x93" "cd");
    CHECK(utf8_truncate(text, 3).substr(0, 2) == "ab");
    CHECK(utf8_truncate(text, 3).find("bytes truncated") != std::string::npos);
    CHECK(utf8_truncate(text, 100) == text);
  }

  TEST_CASE("split_list trims and drops empty parts; join is its inverse") {
    CHECK(split_list(" a, b ,,c ") == std::vector<std::string>{"a", "b", "c"});
    CHECK(split_list("").empty());
    CHECK(join({"a", "b"}, ",") == "a,b");
  }

  TEST_CASE("three_decimals rounds to milliseconds; seconds_text is exact and short") {
    CHECK(three_decimals(15.8664) == "15.866");
    CHECK(three_decimals(2.0) == "2.000");
    CHECK(seconds_text(std::chrono::milliseconds(1500)) == "1.5");
    CHECK(seconds_text(std::chrono::milliseconds(30000)) == "30");
    CHECK(seconds_text(std::chrono::milliseconds(1234567)) == "1234.567");
  }

  TEST_CASE("safe_folder_name never escapes a folder") {
    CHECK(safe_folder_name("3fa85f64-5717") == "3fa85f64-5717");
    CHECK(safe_folder_name("../etc/passwd") == ".._etc_passwd");
    CHECK(safe_folder_name("..") == "_..");
    CHECK(safe_folder_name("") == "_");
  }
}

TEST_SUITE("text") {
  TEST_CASE("append_json_string escapes exactly what JSON needs, in long and short runs") {
    const auto quoted = [](std::string_view s) {
      std::string out;
      append_json_string(out, s);
      return out;
    };
    CHECK(quoted("") == "\"\"");
    CHECK(quoted("plain") == "\"plain\"");
    CHECK(quoted("a \"quoted\" \\path\\ here, long enough for words") ==
          "\"a \\\"quoted\\\" \\\\path\\\\ here, long enough for words\"");
    CHECK(quoted("tab\there\nnew\rline\x01\x1f\x7f") == "\"tab\\there\\nnew\\rline\\u0001\\u001f\x7f\"");
    CHECK(quoted("0123456789abcdef\"") == "\"0123456789abcdef\\\"\"");  // special after two words
    CHECK(quoted("caf\xC3\xA9 na\xC3\xAFve r\xC3\xA9sum\xC3\xA9s \xE2\x9C\x93") ==
          "\"caf\xC3\xA9 na\xC3\xAFve r\xC3\xA9sum\xC3\xA9s \xE2\x9C\x93\"");
    CHECK(quoted("bad\xFF byte in a longer string") == "\"bad\xEF\xBF\xBD byte in a longer string\"");
    // Every single byte value inside a long plain run is escaped as the byte-wise rule says.
    for (int b = 1; b < 0x80; ++b) {
      const std::string raw = std::string(13, 'x') + static_cast<char>(b) + std::string(9, 'y');
      const std::string q = quoted(raw);
      CHECK(q == reference_json_string(raw));
      if (b < 0x20) CHECK(q.find(static_cast<char>(b)) == std::string::npos);
    }
  }
}


TEST_SUITE("text") {
  TEST_CASE("append_json_string and is_valid_utf8 agree with byte-wise rules at every offset of a block") {
    // Each piece lands at every offset around the 16-byte blocks the fast paths scan,
    // including multi-byte characters that straddle a block's end.
    const std::string pieces[] = {"\"", "\\", "\n", "\x1f", "\xC3\xA9", "\xE2\x9C\x93", "\xF0\x9F\x98\x80",
                                  "\xFF", "\xE2\x9C", "\xC0\xAF", "\xED\xA0\x80", "\xF4\x90\x80\x80"};
    for (const auto& piece : pieces) {
      for (std::size_t at = 0; at < 40; ++at) {
        const std::string text = std::string(at, 'a') + piece + std::string(40 - at, 'b');
        std::string quoted;
        append_json_string(quoted, text);
        CAPTURE(at);
        CHECK(quoted == reference_json_string(text));
        CHECK(is_valid_utf8(text) == (make_valid_utf8(text) == text));
      }
    }
    CHECK(is_valid_utf8(""));
    CHECK(is_valid_utf8(std::string(100, 'x') + "\xE2\x9C\x93"));
    CHECK_FALSE(is_valid_utf8(std::string(100, 'x') + "\xE2\x9C"));
    CHECK(is_valid_utf8(std::string("nul\0inside", 10)));  // valid UTF-8; make_valid_utf8 still replaces NUL
  }
}

TEST_CASE("fnv1a_hex and stable_digest keep their values: they name cookies, caches and keys a restart looks for") {
  // FNV-1a 64 test vectors as published with the algorithm.
  CHECK(fnv1a_hex("") == "cbf29ce484222325");
  CHECK(fnv1a_hex("a") == "af63dc4c8601ec8c");
  CHECK(fnv1a_hex("foobar") == "85944171f73967e8");
  // The empty text leaves each basis as it is.
  CHECK(stable_digest("") == "cbf29ce48422232584222325cbf29ce4");
  CHECK(stable_digest("a").size() == 32);
  CHECK(stable_digest("a").starts_with(fnv1a_hex("a")));
}
