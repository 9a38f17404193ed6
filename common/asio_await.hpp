#pragma once
// For the .cpp files that run Asio coroutines; never include it from a widely included
// header (Asio's templates are costly to parse).

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace proctor {

namespace asio = boost::asio;

// A co_await with this completion token gives (error_code, results...) and never throws.
inline constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

}  // namespace proctor
