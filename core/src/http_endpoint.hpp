// SPDX-License-Identifier: MIT
// The operations HTTP server (internal): a small GET-only server on Debian's cpp-httplib,
// with a bounded thread pool, to which the parts of the router add routes (/metrics,
// /health/live, /health/ready, /pipelines, /tap). docs/operations.md.
//
//   http::Server server;
//   server.route("/hello", [](const http::Request &) { return http::Response{200, "text/plain", "hi\n"}; });
//   server.start(listen);   // throws http::BindError naming the address
//   ...
//   server.stop();
//
// cpp-httplib stays behind this header: nothing that includes it needs httplib.h.
#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace switchyard::http {

/// Where to listen: a host (IPv4 or IPv6 address, or a name) and a port (0: any free one).
struct Listen {
  std::string host;
  int port = 0;
  /// "127.0.0.1:9100", "[::1]:9100"
  [[nodiscard]] std::string str() const;
};

/// Parses "ADDR:PORT", "[IPV6]:PORT", "NAME:PORT" or a bare "PORT" (then the host is
/// 127.0.0.1, loopback only). Returns an error message (what is wrong and how to write it)
/// when @p text is none of them or the port is outside 0..65535; std::nullopt when it is
/// good.
std::optional<std::string> parseListen(std::string_view text, Listen &out);

struct Request {
  std::string path;
  /// Query parameters (?pipeline=p&limit=10): the last value of each.
  std::map<std::string, std::string> params;
  std::string remote;  ///< the client's address, for logs
  [[nodiscard]] std::string param(const std::string &name, std::string fallback = {}) const {
    auto it = params.find(name);
    return it == params.end() ? fallback : it->second;
  }
};

/// Writes one chunk of a streamed response; false once the client is gone or the server
/// is stopping (the stream should then end).
using ChunkWriter = std::function<bool(std::string_view)>;

struct Response {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  /// When set, the response is streamed (chunked) instead of @c body: @c stream is called
  /// on the server thread with a writer and returns when the stream ends (it must return
  /// soon after the writer says false). It holds one of the server's threads meanwhile.
  std::function<void(const ChunkWriter &)> stream;
};

using Handler = std::function<Response(const Request &)>;

/// Thrown by Server::start() when the address cannot be bound; what() names it.
class BindError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A GET-only HTTP/1.1 server. THREADING: route() before start(); start() and stop() from
/// one thread; handlers run on the server's threads (at most @p threads at once, more
/// connections wait for a free one) and must be thread-safe. A handler that throws
/// answers 500 with the exception's message.
class Server {
 public:
  explicit Server(std::size_t threads = 4);
  ~Server();  ///< stop()s
  Server(const Server &) = delete;
  Server &operator=(const Server &) = delete;

  /// Answers GET (and HEAD) requests for exactly @p path with @p handler. A second route
  /// for the same path replaces the first.
  void route(std::string path, Handler handler);
  /// Binds @p where and starts serving on a thread of its own. Throws BindError (naming the
  /// address and the cause) when the address cannot be bound.
  void start(const Listen &where);
  /// The bound port (the chosen one when started with port 0); 0 before start().
  [[nodiscard]] int port() const noexcept;
  /// The bound address, "127.0.0.1:9100".
  [[nodiscard]] std::string address() const;
  /// Stops accepting, ends streams (their writers say false), waits for the threads.
  void stop() noexcept;
  /// True from stop() on: long-running handlers should return.
  [[nodiscard]] bool stopping() const noexcept;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace switchyard::http
