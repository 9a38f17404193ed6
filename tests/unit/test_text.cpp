#include <doctest/doctest.h>

#include "common/text.hpp"

using namespace proctor;

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

  TEST_CASE("safe_folder_name never escapes a folder") {
    CHECK(safe_folder_name("3fa85f64-5717") == "3fa85f64-5717");
    CHECK(safe_folder_name("../etc/passwd") == ".._etc_passwd");
    CHECK(safe_folder_name("..") == "_..");
    CHECK(safe_folder_name("") == "_");
  }
}
