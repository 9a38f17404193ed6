#include "common/events.hpp"

#include <array>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <utility>

#include <nlohmann/json.hpp>

#include "common/json_bounded.hpp"
#include "common/text.hpp"

namespace proctor {

namespace {

using nlohmann::json;

// Listed from the weakest to the strongest: the roll-up keeps the higher rank.
constexpr std::array<std::pair<SectionResult, const char*>, 7> kResults = {{
    {SectionResult::skipped, "skipped"},
    {SectionResult::passed, "passed"},
    {SectionResult::passx, "passx"},
    {SectionResult::blocked, "blocked"},
    {SectionResult::failed, "failed"},
    {SectionResult::errored, "errored"},
    {SectionResult::aborted, "aborted"},
}};

std::size_t rank(SectionResult result) {
  for (std::size_t i = 0; i < kResults.size(); ++i) {
    if (kResults[i].first == result) return i;
  }
  return 0;
}

// `value` as a JSON string made as make_valid_utf8 makes it (a NUL too becomes U+FFFD).
void append_text(std::string& out, std::string_view value) {
  if (value.find('\0') == std::string_view::npos)
    append_json_string(out, value);  // invalid bytes -> U+FFFD
  else
    append_json_string(out, make_valid_utf8(value));
}

// ,"key":"value" unless `value` is empty: the seed sends only the fields a section has.
void append_string_field(std::string& out, const char* key, std::string_view value) {
  if (value.empty()) return;
  out += ",\"";
  out += key;
  out += "\":";
  append_text(out, value);
}

// ,"key":number
void append_count(std::string& out, const char* key, std::uint64_t value) {
  std::array<char, 24> number{};
  const auto written = std::to_chars(number.data(), number.data() + number.size(), value);
  out += ",\"";
  out += key;
  out += "\":";
  out.append(number.data(), written.ptr);
}

// Reads one event straight from nlohmann's SAX events into an Event: no JSON tree is
// built, which made parsing several times faster (bench/bench_events). The first problem
// stops the parse: a syntax error, or a known field of the wrong type (its message kept).
class EventReader : public JsonSaxTypes {
 public:
  bool null() { return scalar(Value::of("null")); }
  bool boolean(bool /*value*/) { return scalar(Value::of("a boolean")); }
  bool number_integer(number_integer_t value) {
    return scalar(Value::of("a negative number").with_number(static_cast<double>(value)));
  }
  bool number_unsigned(number_unsigned_t value) {
    return scalar(Value::of("a number").with_count(value));
  }
  bool number_float(number_float_t value, const string_t& /*text*/) {
    return scalar(Value::of("a fraction").with_number(value));
  }
  bool string(string_t& value) { return scalar(Value::of("a string").with_text(value)); }
  bool binary(binary_t& /*value*/) { return scalar(Value::of("binary data")); }

  bool start_object(std::size_t /*elements*/) { return container(true); }
  bool start_array(std::size_t /*elements*/) { return container(false); }
  bool end_object() { return end(); }
  bool end_array() { return end(); }

  bool key(string_t& name) {
    if (skipping_ == 0) key_[depth_ == 2 ? 1 : 0] = std::move(name);
    return true;
  }

  bool parse_error(std::size_t /*position*/, const std::string& /*token*/,
                   const nlohmann::detail::exception& /*error*/) {
    syntax_error_ = true;
    return false;
  }

  // The event read, or the first problem found.
  Result<Event> finish(bool parsed) {
    if (!error_.empty()) return make_error(std::move(error_));
    if (!parsed || syntax_error_) return make_error("the event is not valid JSON");
    for (const auto& [name, seen] : {std::pair{"event", has_event_}, std::pair{"type", has_type_},
                                     std::pair{"seq_num", has_seq_num_}}) {
      if (!seen) return make_error(std::string("the event has no \"") + name + "\"");
    }
    return std::move(event_);
  }

 private:
  // One scalar as the fields want it.
  struct Value {
    const char* kind = "";               // for messages: "a string", "a number", ...
    std::string* text = nullptr;         // a string, moved from when taken
    std::optional<std::uint64_t> count;  // a non-negative integer
    std::optional<double> number;        // any number

    static Value of(const char* kind) {
      Value value;
      value.kind = kind;
      return value;
    }
    Value with_text(std::string& string) && {
      text = &string;
      return std::move(*this);
    }
    Value with_count(std::uint64_t n) && {
      count = n;
      number = static_cast<double>(n);
      return std::move(*this);
    }
    Value with_number(double n) && {
      number = n;
      return std::move(*this);
    }
  };

  bool fail(std::string message) {
    error_ = std::move(message);
    return false;
  }

  bool wrong_type(std::string_view field, const char* wanted, const char* got) {
    return fail("the event's \"" + std::string(field) + "\" must be " + wanted + ", not " + got);
  }

  bool scalar(const Value& value) {
    if (skipping_ > 0) return true;
    if (depth_ == 0) return fail(std::string("the event must be a JSON object, not ") + value.kind);
    if (depth_ == 1) return event_field(key_[0], value);
    return logs_field(key_[1], value);
  }

  bool event_field(const std::string& name, const Value& value) {
    static constexpr std::array<std::pair<const char*, std::string Event::*>, 8> kStrings = {{
        {"event", &Event::event},
        {"type", &Event::type},
        {"id", &Event::id},
        {"name", &Event::name},
        {"starttime", &Event::starttime},
        {"stoptime", &Event::stoptime},
        {"logfile", &Event::logfile},
        {"xref", &Event::xref},
    }};
    for (const auto& [field, member] : kStrings) {
      if (name != field) continue;
      if (value.text == nullptr) return wrong_type(name, "a string", value.kind);
      event_.*member = std::move(*value.text);
      if (name == "event") has_event_ = true;
      if (name == "type") has_type_ = true;
      return true;
    }
    if (name == "seq_num" || name == "parent_seq_num") {
      if (!value.count) return wrong_type(name, "a non-negative integer", value.kind);
      if (name == "seq_num") {
        event_.seq_num = *value.count;
        has_seq_num_ = true;
      } else {
        event_.parent_seq_num = *value.count;
      }
    } else if (name == "runtime") {
      if (!value.number) return wrong_type(name, "a number", value.kind);
      event_.runtime = *value.number;
    } else if (name == "result") {
      const auto result = value.text != nullptr ? parse_section_result(*value.text) : std::nullopt;
      if (!result) {
        return fail(
            "the event's \"result\" must be one of passed, passx, failed, errored, skipped, "
            "blocked, aborted");
      }
      event_.result = *result;
    } else if (name == "logs") {
      return wrong_type(name, "an object", value.kind);
    }
    return true;  // a field the model does not know
  }

  bool logs_field(const std::string& name, const Value& value) {
    if (name == "file") {
      if (value.text == nullptr) return wrong_type("logs.file", "a string", value.kind);
      event_.logs->file = std::move(*value.text);
    } else if (name == "begin" || name == "size") {
      if (!value.count) return wrong_type("logs." + name, "a non-negative integer", value.kind);
      (name == "begin" ? event_.logs->begin : event_.logs->size) = *value.count;
    }
    return true;
  }

  static bool is_event_field(std::string_view name) {
    for (const char* field : {"event", "type", "seq_num", "parent_seq_num", "id", "name",
                              "starttime", "stoptime", "runtime", "result", "logfile", "xref"}) {
      if (name == field) return true;
    }
    return false;
  }

  bool container(bool object) {
    if (skipping_ > 0) {
      ++skipping_;
      return true;
    }
    const char* kind = object ? "an object" : "an array";
    if (depth_ == 0) {
      if (!object) return fail(std::string("the event must be a JSON object, not ") + kind);
      depth_ = 1;
      return true;
    }
    if (depth_ == 1) {
      if (key_[0] == "logs") {
        if (!object) return wrong_type("logs", "an object", kind);
        event_.logs.emplace();
        depth_ = 2;
        return true;
      }
      if (is_event_field(key_[0])) return scalar(Value::of(kind));  // the type error of that field
    } else if (key_[1] == "file" || key_[1] == "begin" || key_[1] == "size") {
      return scalar(Value::of(kind));
    }
    skipping_ = 1;  // the value of a field the model does not know
    return true;
  }

  bool end() {
    if (skipping_ > 0)
      --skipping_;
    else
      --depth_;
    return true;
  }

  Event event_;
  int depth_ = 0;                   // 1 in the event, 2 in its "logs"
  int skipping_ = 0;                // > 0 inside a value that is ignored
  std::array<std::string, 2> key_;  // the last key at depth 1 and 2
  bool has_event_ = false;
  bool has_type_ = false;
  bool has_seq_num_ = false;
  bool syntax_error_ = false;
  std::string error_;
};

}  // namespace

const char* to_string(SectionResult result) {
  for (const auto& [value, name] : kResults) {
    if (value == result) return name;
  }
  return "errored";
}

std::optional<SectionResult> parse_section_result(std::string_view text) {
  for (const auto& [value, name] : kResults) {
    if (text == name) return value;
  }
  return std::nullopt;
}

SectionResult roll_up(SectionResult a, SectionResult b) {
  return rank(a) >= rank(b) ? a : b;
}

SectionResult roll_up(std::span<const SectionResult> children) {
  if (children.empty()) return SectionResult::passed;
  SectionResult result = children.front();
  for (const SectionResult child : children.subspan(1)) result = roll_up(result, child);
  return result;
}

std::optional<SectionResult> section_result_of(RecordStatus status) {
  switch (status) {
    case RecordStatus::success:
      return SectionResult::passed;
    case RecordStatus::failure:
      return SectionResult::failed;
    case RecordStatus::error:
      return SectionResult::errored;
    case RecordStatus::warning:
      return SectionResult::passx;
    case RecordStatus::timeout:
    case RecordStatus::terminated:
      return SectionResult::aborted;
    case RecordStatus::in_process:
    case RecordStatus::registered:
      return std::nullopt;
  }
  return std::nullopt;
}

std::string to_json_line(const Event& event) {
  // Written directly rather than through a JSON object: the agent serializes every event,
  // and this is several times faster than building an nlohmann tree (bench/bench_events).
  // The seed's field order, which is what a person reading the stream expects.
  std::string out;
  out.reserve(256 + event.id.size() + event.name.size() + event.xref.size() + event.logfile.size());
  out += "{\"event\":";
  append_text(out, event.event);
  out += ",\"type\":";
  append_text(out, event.type);
  append_count(out, "seq_num", event.seq_num);
  if (event.parent_seq_num) append_count(out, "parent_seq_num", *event.parent_seq_num);
  append_string_field(out, "id", event.id);
  append_string_field(out, "name", event.name);
  append_string_field(out, "starttime", event.starttime);
  append_string_field(out, "stoptime", event.stoptime);
  // JSON has no NaN or infinity: such a runtime is no runtime.
  if (event.runtime && std::isfinite(*event.runtime)) {
    std::array<char, 32> number{};
    const auto written =
        std::to_chars(number.data(), number.data() + number.size(), *event.runtime);
    out += ",\"runtime\":";
    out.append(number.data(), written.ptr);
  }
  if (event.result) {
    out += ",\"result\":\"";
    out += to_string(*event.result);
    out += '"';
  }
  append_string_field(out, "logfile", event.logfile);
  if (event.logs) {
    out += ",\"logs\":{\"file\":";
    append_text(out, event.logs->file);
    append_count(out, "begin", event.logs->begin);
    append_count(out, "size", event.logs->size);
    out += '}';
  }
  append_string_field(out, "xref", event.xref);
  out += "}\n";
  return out;
}

Result<Event> parse_event(std::string_view line) {
  if (!line.empty() && line.back() == '\n') line.remove_suffix(1);
  // nlohmann refuses invalid UTF-8 outright; a repaired line keeps the rest of the event.
  std::string repaired;
  if (!is_valid_utf8(line)) {
    repaired = make_valid_utf8(line);
    line = repaired;
  }
  EventReader reader;
  const bool parsed = json::sax_parse(line.data(), line.data() + line.size(), &reader);
  return reader.finish(parsed);
}

std::string format_event_time(std::chrono::system_clock::time_point time) {
  using namespace std::chrono;
  const auto ms = floor<milliseconds>(time);
  const auto day = floor<days>(ms);
  const year_month_day date(day);
  const hh_mm_ss clock(ms - day);
  std::array<char, 40> text{};
  std::snprintf(text.data(), text.size(), "%04d-%02u-%02uT%02d:%02d:%02d.%03dZ",
                static_cast<int>(date.year()), static_cast<unsigned>(date.month()),
                static_cast<unsigned>(date.day()), static_cast<int>(clock.hours().count()),
                static_cast<int>(clock.minutes().count()),
                static_cast<int>(clock.seconds().count()),
                static_cast<int>(clock.subseconds().count()));
  return text.data();
}

}  // namespace proctor
