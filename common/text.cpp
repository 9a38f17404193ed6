#include "common/text.hpp"

#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

namespace proctor {

namespace {

// Length of the valid multi-byte UTF-8 sequence at s[0..n), or 0 when s[0] does not start
// one (ASCII included): overlong forms, surrogates and code points past U+10FFFF are invalid.
std::size_t utf8_sequence_length(const unsigned char* s, std::size_t n) {
  const unsigned c = s[0];
  std::size_t len = 0;
  unsigned lo = 0x80;
  unsigned hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    if (c == 0xE0) lo = 0xA0;       // overlong
    else if (c == 0xED) hi = 0x9F;  // surrogates
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    if (c == 0xF0) lo = 0x90;       // overlong
    else if (c == 0xF4) hi = 0x8F;  // past U+10FFFF
  } else {
    return 0;
  }
  if (len > n || s[1] < lo || s[1] > hi) return 0;
  for (std::size_t k = 2; k < len; ++k) {
    if ((s[k] & 0xC0U) != 0x80U) return 0;
  }
  return len;
}

const unsigned char* bytes(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());  // NOLINT(cppcoreguidelines-pro-type-reinterpret-cast)
}

// Length of the all-ASCII prefix of s[0..n), 16 bytes at a time where SSE2 is there.
std::size_t ascii_prefix(const unsigned char* s, std::size_t n) {
  std::size_t i = 0;
#ifdef __SSE2__
  for (; i + 16 <= n; i += 16) {
    const __m128i block = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i));  // NOLINT
    if (const int high = _mm_movemask_epi8(block); high != 0) return i + static_cast<std::size_t>(__builtin_ctz(static_cast<unsigned>(high)));
  }
#endif
  while (i < n && s[i] < 0x80) ++i;
  return i;
}

// Length of the prefix of s[0..n) that a JSON string holds as is: printable ASCII but
// the quote and the backslash. 16 bytes at a time where SSE2 is there.
std::size_t plain_json_prefix(const unsigned char* s, std::size_t n) {
  std::size_t i = 0;
#ifdef __SSE2__
  const __m128i space = _mm_set1_epi8(0x20);
  const __m128i quote = _mm_set1_epi8('"');
  const __m128i backslash = _mm_set1_epi8('\\');
  for (; i + 16 <= n; i += 16) {
    const __m128i block = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i));  // NOLINT
    // As signed bytes, both the control characters and every byte >= 0x80 are below 0x20.
    const __m128i special = _mm_or_si128(_mm_cmplt_epi8(block, space),
                                         _mm_or_si128(_mm_cmpeq_epi8(block, quote), _mm_cmpeq_epi8(block, backslash)));
    if (const int mask = _mm_movemask_epi8(special); mask != 0) return i + static_cast<std::size_t>(__builtin_ctz(static_cast<unsigned>(mask)));
  }
#endif
  while (i < n && s[i] >= 0x20 && s[i] < 0x80 && s[i] != '"' && s[i] != '\\') ++i;
  return i;
}

bool is_continuation(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

}  // namespace

std::string to_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

std::optional<std::size_t> first_invalid_utf8(std::string_view text) {
  const unsigned char* s = bytes(text);
  const std::size_t n = text.size();
  std::size_t i = 0;
  while (true) {
    i += ascii_prefix(s + i, n - i);
    if (i == n) return std::nullopt;
    const std::size_t len = utf8_sequence_length(s + i, n - i);
    if (len == 0) return i;
    i += len;
  }
}

bool is_valid_utf8(std::string_view text) { return !first_invalid_utf8(text).has_value(); }

void append_valid_utf8(std::string& out, std::string_view in) {
  const unsigned char* s = bytes(in);
  const std::size_t n = in.size();
  std::size_t i = 0;
  while (i < n) {
    // A run of ASCII (up to a NUL) is copied whole.
    const std::size_t plain = ascii_prefix(s + i, n - i);
    const void* nul = std::memchr(s + i, 0, plain);
    const std::size_t stop = nul != nullptr ? static_cast<std::size_t>(static_cast<const unsigned char*>(nul) - s) : i + plain;
    out.append(in.data() + i, stop - i);
    i = stop;
    if (i == n) break;
    const std::size_t len = s[i] == 0 ? 0 : utf8_sequence_length(s + i, n - i);
    if (len == 0) {
      out += "\xEF\xBF\xBD";
      ++i;
    } else {
      out.append(in.data() + i, len);
      i += len;
    }
  }
}

std::string make_valid_utf8(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  append_valid_utf8(out, in);
  return out;
}

std::string shell_quote(std::string_view value) {
  std::string out = "'";
  for (char c : value) {
    if (c == '\'') out += "'\\''";
    else out.push_back(c);
  }
  out.push_back('\'');
  return out;
}

std::string_view trim(std::string_view s) {
  const auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; };
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

std::optional<double> parse_decimal(std::string_view s) {
  s = trim(s);
  if (s.empty()) return std::nullopt;
  std::string cleaned;  // without thousands separators, when there are any
  if (s.find(',') != std::string_view::npos) {
    for (char c : s) {
      if (c != ',') cleaned.push_back(c);
    }
    s = cleaned;
  }
  std::string_view digits = s;
  if (!digits.empty() && digits.front() == '+') digits.remove_prefix(1);
  double value = 0;
  const char* end = digits.data() + digits.size();
  auto [ptr, ec] = std::from_chars(digits.data(), end, value, std::chars_format::general);
  if (ec != std::errc() || ptr != end || !std::isfinite(value)) return std::nullopt;
  return value;
}

std::string utf8_tail(std::string_view s, std::size_t max_bytes) {
  if (s.size() <= max_bytes) return std::string(s);
  std::size_t start = s.size() - max_bytes;
  while (start < s.size() && is_continuation(s[start])) ++start;
  return std::string(s.substr(start));
}

std::string utf8_truncate(std::string_view s, std::size_t max_bytes) {
  if (s.size() <= max_bytes) return std::string(s);
  std::size_t end = max_bytes;
  while (end > 0 && is_continuation(s[end])) --end;
  std::string out(s.substr(0, end));
  out += "\n[... " + std::to_string(s.size() - end) + " bytes truncated]";
  return out;
}

std::vector<std::string> split_list(std::string_view s, char sep) {
  std::vector<std::string> out;
  while (true) {
    const auto pos = s.find(sep);
    const auto part = trim(s.substr(0, pos));
    if (!part.empty()) out.emplace_back(part);
    if (pos == std::string_view::npos) break;
    s.remove_prefix(pos + 1);
  }
  return out;
}

std::string join(const std::vector<std::string>& parts, std::string_view sep) {
  std::string out;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    if (i != 0) out += sep;
    out += parts[i];
  }
  return out;
}

void append_json_string(std::string& out, std::string_view s) {
  static constexpr char hex[] = "0123456789abcdef";
  const unsigned char* p = bytes(s);
  const std::size_t n = s.size();
  out.push_back('"');
  std::size_t i = 0;
  std::size_t run_start = 0;  // plain bytes from here to i are copied in one append
  const auto flush_run = [&] { out.append(s.data() + run_start, i - run_start); };
  while (true) {
    i += plain_json_prefix(p + i, n - i);
    if (i >= n) break;
    const unsigned c = p[i];
    if (c >= 0x80) {
      if (const std::size_t len = utf8_sequence_length(p + i, n - i); len != 0) {
        i += len;  // valid UTF-8 is copied as is, with the rest of its run
        continue;
      }
      flush_run();
      out += "\xEF\xBF\xBD";
      run_start = ++i;
      continue;
    }
    flush_run();
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        out += "\\u00";
        out.push_back(hex[c >> 4]);
        out.push_back(hex[c & 0xF]);
    }
    run_start = ++i;
  }
  flush_run();
  out.push_back('"');
}

std::string safe_folder_name(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                    c == '_' || c == '-';
    out.push_back(ok ? c : '_');
  }
  if (out.empty() || out == "." || out == "..") out = "_" + out;
  return out;
}

std::string three_decimals(double value) {
  char buffer[64];
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, value, std::chars_format::fixed, 3);
  if (ec != std::errc()) return "0.000";
  return std::string(buffer, end);
}

std::string seconds_text(std::chrono::milliseconds ms) {
  char buffer[64];
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, static_cast<double>(ms.count()) / 1000.0);
  if (ec != std::errc()) return "0";
  return std::string(buffer, end);
}

bool is_plain_name(std::string_view name) {
  return !name.empty() && name.size() <= 200 && name != "." && name != ".." &&
         name.find('/') == std::string_view::npos && name.find('\0') == std::string_view::npos;
}

std::string fnv1a_hex(std::string_view text, std::uint64_t basis) {
  std::uint64_t hash = basis;
  for (const char c : text) {
    hash ^= static_cast<unsigned char>(c);
    hash *= 0x100000001b3ULL;
  }
  constexpr std::string_view kDigits = "0123456789abcdef";
  std::string hex(16, '0');
  for (auto it = hex.rbegin(); it != hex.rend(); ++it, hash >>= 4U) *it = kDigits[hash & 0xfU];
  return hex;
}

std::string stable_digest(std::string_view text) {
  return fnv1a_hex(text) + fnv1a_hex(text, 0x84222325cbf29ce4ULL);
}

}  // namespace proctor
