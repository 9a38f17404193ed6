#include "agent/subscribe_command.hpp"

#include <csignal>
#include <cstdio>
#include <exception>
#include <iostream>
#include <string_view>
#include <utility>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <nlohmann/json.hpp>

#include "common/event_client.hpp"

namespace proctor {

namespace asio = boost::asio;

namespace {

constexpr int kExitOk = 0;
constexpr int kExitUsage = 2;
constexpr int kExitUnreachable = 3;

struct Filter {
  std::string field;
  std::string value;
};

// True when the event's JSON has `filter.field` and it reads as `filter.value`: a string
// without its quotes, anything else as JSON writes it.
bool matches(const nlohmann::json& event, const Filter& filter) {
  const auto it = event.find(filter.field);
  if (it == event.end()) return false;
  return it->is_string() ? it->get_ref<const std::string&>() == filter.value
                         : it->dump() == filter.value;
}

}  // namespace

int run_subscribe(const SubscribeOptions& options) {
  std::vector<Filter> filters;
  for (const auto& text : options.filters) {
    const auto equals = text.find('=');
    if (equals == std::string::npos || equals == 0) {
      std::cerr << "runner subscribe: --filter takes field=value (as in type=testcase), not '"
                << text << "'\n";
      return kExitUsage;
    }
    filters.push_back({text.substr(0, equals), text.substr(equals + 1)});
  }

  asio::io_context io;
  EventClient client(io.get_executor(), options.socket);
  // SIGINT and SIGTERM end the subscription as the agent closing it would.
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&client](const boost::system::error_code& ec, int /*signal*/) {
    if (!ec) client.cancel();
  });

  auto print = [&filters, &client](const Event& event) -> asio::awaitable<void> {
    const std::string line = to_json_line(event);
    if (!filters.empty()) {
      const auto json = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
      for (const auto& filter : filters) {
        if (!matches(json, filter)) co_return;
      }
    }
    // One line at a time, flushed, so that a pipe reader sees each event as it happens.
    if (std::fwrite(line.data(), 1, line.size(), stdout) != line.size() ||
        std::fflush(stdout) != 0) {
      client.cancel();  // stdout is gone: nobody reads any more
    }
    co_return;
  };

  Result<void> outcome;
  std::exception_ptr failure;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        outcome = co_await client.subscribe(print);
        boost::system::error_code ignored;
        signals.cancel(ignored);
      },
      [&failure, &signals](const std::exception_ptr& error) {
        failure = error;
        boost::system::error_code ignored;
        signals.cancel(ignored);
      });
  io.run();
  if (failure) std::rethrow_exception(failure);
  if (!outcome) {
    std::cerr << "runner subscribe: " << outcome.error().message << "\n";
    return kExitUnreachable;
  }
  return kExitOk;
}

}  // namespace proctor
