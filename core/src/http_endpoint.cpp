// SPDX-License-Identifier: MIT
// The operations HTTP server on cpp-httplib (Debian's libcpp-httplib-dev).
#include "http_endpoint.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include <fmt/format.h>
#include <httplib.h>

namespace switchyard::http {

namespace {

bool allDigits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

bool validHostName(std::string_view s) {
  return !s.empty() && s.size() <= 253 && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
  });
}

constexpr const char *kForms =
    "write ADDR:PORT (127.0.0.1:9100, 0.0.0.0:9100, [::1]:9100, localhost:9100) or a bare PORT "
    "(loopback only)";

/// Why binding @p where fails, found by trying it with a socket of our own (cpp-httplib
/// only says that it failed).
std::string bindCause(const Listen &where) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo *res = nullptr;
  std::string port = std::to_string(where.port);
  if (int rc = ::getaddrinfo(where.host.c_str(), port.c_str(), &hints, &res); rc != 0) {
    return fmt::format("cannot resolve '{}': {}", where.host, ::gai_strerror(rc));
  }
  std::string cause = "unknown cause";
  for (addrinfo *ai = res; ai != nullptr; ai = ai->ai_next) {
    int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
      cause = std::strerror(errno);
      continue;
    }
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
      int err = errno;
      cause = std::strerror(err);
      if (err == EADDRINUSE) {
        cause += " (another process listens there: choose another port)";
      } else if (err == EACCES) {
        cause += " (ports below 1024 need privileges: choose a port above 1023)";
      } else if (err == EADDRNOTAVAIL) {
        cause += " (no interface of this host has that address)";
      }
    } else {
      cause = "the address was busy for a moment; try again";
    }
    ::close(fd);
  }
  ::freeaddrinfo(res);
  return cause;
}

}  // namespace

std::string Listen::str() const {
  if (host.find(':') != std::string::npos) {
    return fmt::format("[{}]:{}", host, port);
  }
  return fmt::format("{}:{}", host, port);
}

std::optional<std::string> parseListen(std::string_view text, Listen &out) {
  if (text.empty()) {
    return fmt::format("empty address: {}", kForms);
  }
  std::string_view host;
  std::string_view port;
  if (allDigits(text)) {
    host = "127.0.0.1";
    port = text;
  } else if (text.front() == '[') {
    auto close = text.find("]:");
    if (close == std::string_view::npos) {
      return fmt::format("'{}': an IPv6 address in brackets needs a port after it, as in [::1]:9100", text);
    }
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
    in6_addr a6{};
    if (::inet_pton(AF_INET6, std::string(host).c_str(), &a6) != 1) {
      return fmt::format("'{}': '{}' is not an IPv6 address; {}", text, host, kForms);
    }
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      return fmt::format("'{}' has no port; {}", text, kForms);
    }
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) {
      return fmt::format("'{}': write an IPv6 address in brackets, as in [::1]:9100", text);
    }
    in_addr a4{};
    bool dotted = !host.empty() && std::all_of(host.begin(), host.end(), [](char c) {
      return (c >= '0' && c <= '9') || c == '.';
    });
    if (dotted ? ::inet_pton(AF_INET, std::string(host).c_str(), &a4) != 1 : !validHostName(host)) {
      return fmt::format("'{}': '{}' is not an IPv4 address or a host name; {}", text, host, kForms);
    }
  }
  if (!allDigits(port)) {
    return fmt::format("'{}': the port '{}' is not a number; {}", text, port, kForms);
  }
  if (port.size() > 5 || std::stoi(std::string(port)) > 65535) {
    return fmt::format("'{}': port {} is out of range: use 1 to 65535 (0: any free port, logged at start)",
                       text, port);
  }
  out.host = std::string(host);
  out.port = std::stoi(std::string(port));
  return std::nullopt;
}

struct Server::Impl {
  httplib::Server server;
  std::size_t threads;
  std::map<std::string, Handler> routes;
  std::thread thread;
  std::atomic<bool> stopping{false};
  std::atomic<bool> ended{false};  ///< the listening thread returned
  bool started = false;
  Listen bound;

  void answer(const httplib::Request &req, httplib::Response &res) {
    auto it = routes.find(req.path);
    if (it == routes.end()) {
      std::string known;
      for (const auto &[path, h] : routes) {
        known += (known.empty() ? "" : ", ") + path;
      }
      res.status = 404;
      res.set_content(fmt::format("no such path '{}'; this endpoint serves {}\n", req.path, known),
                      "text/plain; charset=utf-8");
      return;
    }
    Request r;
    r.path = req.path;
    for (const auto &[k, v] : req.params) {
      r.params[k] = v;
    }
    r.remote = req.remote_addr;
    Response out;
    try {
      out = it->second(r);
    } catch (const std::exception &e) {
      res.status = 500;
      res.set_content(fmt::format("internal error: {}\n", e.what()), "text/plain; charset=utf-8");
      return;
    }
    res.status = out.status;
    res.set_header("Cache-Control", "no-store");
    if (!out.stream) {
      res.set_content(out.body, out.content_type);
      return;
    }
    res.set_chunked_content_provider(
        out.content_type, [this, stream = std::move(out.stream)](std::size_t, httplib::DataSink &sink) {
          ChunkWriter write = [this, &sink](std::string_view chunk) {
            if (stopping.load() || !sink.is_writable()) {
              return false;
            }
            return chunk.empty() || sink.write(chunk.data(), chunk.size());
          };
          stream(write);
          sink.done();
          return true;
        });
  }
};

Server::Server(std::size_t threads) : impl_(std::make_unique<Impl>()) {
  impl_->threads = std::max<std::size_t>(1, threads);
}

Server::~Server() { stop(); }

void Server::route(std::string path, Handler handler) {
  if (impl_->started) {
    throw std::logic_error("http::Server::route: add routes before start()");
  }
  impl_->routes[std::move(path)] = std::move(handler);
}

void Server::start(const Listen &where) {
  if (impl_->started) {
    throw std::logic_error("http::Server::start: already started");
  }
  auto &s = impl_->server;
  std::size_t n = impl_->threads;
  s.new_task_queue = [n] { return new httplib::ThreadPool(n); };
  // Scrapers and probes ask small questions: short timeouts keep a silent client from
  // holding one of the few threads.
  s.set_read_timeout(5, 0);
  s.set_write_timeout(5, 0);
  s.set_keep_alive_timeout(5);
  s.set_keep_alive_max_count(100);
  s.set_payload_max_length(64 * 1024);
  s.Get(".*", [this](const httplib::Request &req, httplib::Response &res) { impl_->answer(req, res); });
  Listen bound = where;
  if (where.port == 0) {
    bound.port = s.bind_to_any_port(where.host);
    if (bound.port <= 0) {
      throw BindError(fmt::format("http: cannot listen on {}: {}", where.str(), bindCause(where)));
    }
  } else if (!s.bind_to_port(where.host, where.port)) {
    throw BindError(fmt::format("http: cannot listen on {}: {}", where.str(), bindCause(where)));
  }
  impl_->bound = bound;
  impl_->started = true;
  impl_->thread = std::thread([this] {
    impl_->server.listen_after_bind();
    impl_->ended.store(true);
  });
}

int Server::port() const noexcept { return impl_->started ? impl_->bound.port : 0; }

std::string Server::address() const { return impl_->bound.str(); }

void Server::stop() noexcept {
  if (!impl_->started) {
    return;
  }
  impl_->stopping.store(true);
  // cpp-httplib's stop() does nothing until its loop runs: repeat it until the thread ends.
  while (!impl_->ended.load()) {
    impl_->server.stop();
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (impl_->thread.joinable()) {
    impl_->thread.join();
  }
  impl_->started = false;
}

bool Server::stopping() const noexcept { return impl_->stopping.load(); }

}  // namespace switchyard::http
