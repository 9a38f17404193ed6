#pragma once
// Reading a whole small file (a task, a specification, a spooled payload, a service's
// output.json) with an error a user can act on. JUnit reports have their own reader
// (common/junit.cpp): they are large and parsed in place.

#include <filesystem>
#include <string>
#include <string_view>

#include "common/result.hpp"

namespace proctor {

// The file's bytes; the error names `what` and the file and says why ("cannot read the
// task file /x.json: No such file or directory").
Result<std::string> read_whole_file(const std::filesystem::path& path, std::string_view what);

// True when `path` is `root` or below it, comparing whole parts (no I/O: give both real
// paths, from std::filesystem::canonical, when links matter).
bool is_within(const std::filesystem::path& root, const std::filesystem::path& path);

}  // namespace proctor
