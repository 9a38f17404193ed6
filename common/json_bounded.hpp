#pragma once
// JSON from untrusted files, bounded in depth. nlohmann's parser does not recurse, but
// copying, comparing and dumping a document do: "[[[[..." a million deep would overflow
// the stack later. A document nested deeper than the bound is refused as a whole.

#include <string_view>

#include <nlohmann/json.hpp>

namespace proctor {

// The deepest nesting of arrays and objects accepted from a file.
constexpr int kMaxJsonNesting = 64;

// `text` as JSON; discarded (is_discarded()) when it is not JSON or nests deeper than
// `max_depth`. Never throws.
template <class Json = nlohmann::json>
Json parse_json_bounded(std::string_view text, int max_depth = kMaxJsonNesting) {
  bool too_deep = false;
  const typename Json::parser_callback_t keep = [&too_deep, max_depth](int depth, typename Json::parse_event_t,
                                                                       Json&) {
    if (depth > max_depth) too_deep = true;
    return depth <= max_depth;  // what is past the bound is not even built
  };
  Json parsed = Json::parse(text, keep, /*allow_exceptions=*/false);
  return too_deep ? Json(Json::value_t::discarded) : parsed;
}

}  // namespace proctor
