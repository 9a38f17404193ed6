#pragma once
// The mock backend's HTTP/1.1 server: Beast on Asio coroutines, one thread, keep-alive,
// a deadline on every read and write and a request body limit. It only moves bytes;
// every answer comes from Backend::handle (handler.hpp).

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

#include "common/result.hpp"
#include "mock_backend/handler.hpp"

namespace proctor::mock {

// Where and how the server listens.
struct ServerOptions {
  std::string bind_address = "127.0.0.1";
  unsigned short port = 0;                       // 0: the system picks a free port
  std::chrono::seconds io_timeout{30};           // deadline of each read and each write
  std::size_t body_limit = 16U * 1024U * 1024U;  // larger request bodies get 413
};

// A listening server that owns its Backend. Movable; not copyable.
class Server {
 public:
  // Binds and listens; fails when the address is not an IP address or the port is taken.
  static Result<Server> open(Backend backend, ServerOptions options);

  Server(Server&&) noexcept;
  Server& operator=(Server&&) noexcept;
  ~Server();

  // The port actually bound (the chosen one when the options said 0).
  [[nodiscard]] unsigned short port() const;

  // The address bound, as given in the options.
  [[nodiscard]] const std::string& address() const;

  // Makes SIGINT and SIGTERM stop the server as stop() does. Call before run().
  void stop_on_signals();

  // Serves on the calling thread until stopped; returns once every connection is closed.
  void run();

  // Stops accepting, closes open connections and makes run() return. Safe from any thread.
  void stop();

 private:
  struct Impl;
  explicit Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace proctor::mock
