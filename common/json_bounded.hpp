#pragma once
// JSON from untrusted files, bounded in depth. nlohmann's parser does not recurse, but
// copying, comparing and dumping a document do: "[[[[..." a million deep would overflow
// the stack later. A document nested deeper than the bound is refused as a whole.

#include <string_view>

#include <nlohmann/json.hpp>

namespace proctor {

// The deepest nesting of arrays and objects accepted from a file.
constexpr int kMaxJsonNesting = 64;

// A parser callback that drops what nests deeper than `max_depth` and sets `too_deep`
// when it does; the caller refuses the document then.
template <class Json = nlohmann::json>
typename Json::parser_callback_t depth_limit(bool& too_deep, int max_depth = kMaxJsonNesting) {
  return [&too_deep, max_depth](int depth, typename Json::parse_event_t, Json&) {
    if (depth > max_depth) too_deep = true;
    return depth <= max_depth;  // what is past the bound is not even built
  };
}

// `text` as JSON; discarded (is_discarded()) when it is not JSON or nests deeper than
// `max_depth`. Never throws.
template <class Json = nlohmann::json>
Json parse_json_bounded(std::string_view text, int max_depth = kMaxJsonNesting) {
  bool too_deep = false;
  Json parsed = Json::parse(text, depth_limit<Json>(too_deep, max_depth), /*allow_exceptions=*/false);
  return too_deep ? Json(Json::value_t::discarded) : parsed;
}

// The type names nlohmann's sax_parse requires of a SAX reader; a reader derives from it.
struct JsonSaxTypes {
  using number_integer_t = nlohmann::json::number_integer_t;
  using number_unsigned_t = nlohmann::json::number_unsigned_t;
  using number_float_t = nlohmann::json::number_float_t;
  using string_t = nlohmann::json::string_t;
  using binary_t = nlohmann::json::binary_t;
};

}  // namespace proctor
