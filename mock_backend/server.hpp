#pragma once
// The mock backend's HTTP/1.1 server: Beast on Asio coroutines, one thread, keep-alive,
// a deadline on every handshake, read and write and a request body limit; plain HTTP, or
// HTTPS only when given a certificate. It only moves bytes; every answer comes from
// Backend::handle (handler.hpp).

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
  std::string tls_cert_file;  // PEM certificate chain; set with tls_key_file, the server speaks HTTPS only
  std::string tls_key_file;   // PEM private key of tls_cert_file's certificate
};

// A listening server that owns its Backend. Movable; not copyable.
class Server {
 public:
  // Loads the TLS certificate and key if given, binds and listens; fails when only one of
  // them is given, either is unreadable or they do not match, the address is not an IP
  // address or the port is taken.
  static Result<Server> open(Backend backend, ServerOptions options);

  Server(Server&&) noexcept;
  Server& operator=(Server&&) noexcept;
  ~Server();

  // The port actually bound (the chosen one when the options said 0).
  [[nodiscard]] unsigned short port() const;

  // The address bound, as given in the options.
  [[nodiscard]] const std::string& address() const;

  // True when the server speaks HTTPS (the options named a certificate and key).
  [[nodiscard]] bool tls() const;

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
