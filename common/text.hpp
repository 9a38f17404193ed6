#pragma once
// Small string utilities shared by parsers and builders. Pure functions, no I/O.

#include <cstddef>
#include <optional>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace proctor {

// True for a name that can be a file and folder name: not empty, no '/', not "." or "..",
// no NUL, at most 200 bytes.
bool is_plain_name(std::string_view name);

// 64-bit FNV-1a of `text` as 16 hex digits: stable across builds and runs, unlike
// std::hash. Another `basis` gives another, independent digest.
std::string fnv1a_hex(std::string_view text, std::uint64_t basis = 0xcbf29ce484222325ULL);

// A 128-bit digest of `text` as 32 hex digits (two FNV-1a): names and keys, not security.
std::string stable_digest(std::string_view text);

// A number with three decimals, locale independent ("15.866").
std::string three_decimals(double value);

// Seconds in the shortest form that is exact to the millisecond ("1.5", "30").
std::string seconds_text(std::chrono::milliseconds ms);

// True when `text` is valid UTF-8 (NUL included); the all-ASCII case costs one fast scan.
bool is_valid_utf8(std::string_view text);
// The offset of the first byte of `text` that is not part of valid UTF-8 (overlong forms,
// surrogates and code points past U+10FFFF included), or nullopt when it is all valid.
std::optional<std::size_t> first_invalid_utf8(std::string_view text);

// Returns `in` as valid UTF-8: each invalid byte becomes U+FFFD, NUL becomes U+FFFD.
std::string make_valid_utf8(std::string_view in);

// Appends make_valid_utf8(in) to `out`, copying valid runs whole.
void append_valid_utf8(std::string& out, std::string_view in);

// Quotes `value` for POSIX sh so that it is always one word, taken literally.
std::string shell_quote(std::string_view value);

// ASCII letters lowered; every other byte kept.
std::string to_lower(std::string_view s);

// Strips ASCII white space from both ends.
std::string_view trim(std::string_view s);

// Parses a decimal number in the C locale; accepts "1,234.5" thousands separators.
// Returns nullopt on anything unreadable (empty, junk, inf/nan, negative overflow).
std::optional<double> parse_decimal(std::string_view s);

// Keeps at most `max_bytes` of the end of `s`, cut on a UTF-8 character boundary.
std::string utf8_tail(std::string_view s, std::size_t max_bytes);

// Keeps at most `max_bytes` of the start of `s`, cut on a UTF-8 character boundary,
// with a marker saying how much was cut when anything was.
std::string utf8_truncate(std::string_view s, std::size_t max_bytes);

// Splits on `sep`, trimming each part and dropping empty parts.
std::vector<std::string> split_list(std::string_view s, char sep = ',');

// Joins `parts` with `sep`.
std::string join(const std::vector<std::string>& parts, std::string_view sep);

// Appends `s` to `out` as a JSON string literal (quotes included): escapes quotes,
// backslashes and control characters; invalid UTF-8 bytes become U+FFFD.
void append_json_string(std::string& out, std::string_view s);

// Replaces characters outside [A-Za-z0-9._-] with '_' so `text` can name a file or
// folder; never returns "", "." or "..".
std::string safe_folder_name(std::string_view text);

}  // namespace proctor
