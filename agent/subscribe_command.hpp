#pragma once
// `runner subscribe`: connects to an agent's event stream and prints every event (or
// those matching the filters) as one JSON line on stdout.

#include <filesystem>
#include <string>
#include <vector>

namespace proctor {

struct SubscribeOptions {
  std::filesystem::path socket;      // the agent's events socket
  std::vector<std::string> filters;  // "field=value"; an event must match all of them
};

// Prints events until the agent closes the stream; 0 then, 3 when the socket cannot be
// reached or the agent dropped this subscriber, 2 for a malformed filter.
int run_subscribe(const SubscribeOptions& options);

}  // namespace proctor
