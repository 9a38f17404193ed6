#pragma once
// REQUIRE_OK(result): a Result must hold a value; when it does not, its error message is
// the failure's explanation.

#include <doctest/doctest.h>

#define REQUIRE_OK(result) REQUIRE_MESSAGE((result).ok(), ((result).ok() ? std::string() : (result).error().message))
