// SPDX-License-Identifier: MIT
//
// ZeroMQ endpoint syntax, checked when the configuration is loaded (so `switchyard check`
// reports a bad endpoint instead of the socket failing at start-up), shared by zmq-sub and
// zmq-pub. Accepted, as libzmq reads them:
//
//   tcp://HOST:PORT          connect: HOST a name, an IPv4 address or [IPv6]; PORT 1-65535
//                            (libzmq's "SOURCE;HOST:PORT" form is checked on its HOST:PORT)
//   tcp://*:PORT             bind: HOST may also be * or an interface name; PORT may be * or
//                            0 (a free port the system picks)
//   ipc://PATH               a socket file (at most 107 bytes; @NAME: an abstract socket)
//   inproc://NAME            within the process
//
// Anything else (another transport, no "://", a port that is not a number or out of range)
// is refused with a sentence naming the endpoint and what to write instead.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include <fmt/format.h>

namespace switchyard::zmqt {

/// The parts of a tcp:// endpoint.
struct TcpAddress {
  std::string host;  ///< without the brackets of an IPv6 address; "*" for any interface
  std::string port;  ///< as written ("*" for bind: any free port)
};

namespace detail {

inline bool hostChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
         c == '_';
}

inline bool allDigits(std::string_view s) {
  if (s.empty()) {
    return false;
  }
  for (char c : s) {
    if (c < '0' || c > '9') {
      return false;
    }
  }
  return true;
}

/// HOST:PORT of a tcp:// endpoint, split; the problem in @p problem when it is not.
inline std::optional<TcpAddress> splitHostPort(std::string_view rest, bool bind, std::string *problem) {
  TcpAddress a;
  std::string_view port;
  if (!rest.empty() && rest.front() == '[') {
    auto close = rest.find(']');
    if (close == std::string_view::npos) {
      *problem = "an IPv6 address needs its closing ']' (tcp://[::1]:9940)";
      return std::nullopt;
    }
    a.host = std::string(rest.substr(1, close - 1));
    if (close + 1 >= rest.size() || rest[close + 1] != ':') {
      *problem = "no port after the address (tcp://[::1]:9940)";
      return std::nullopt;
    }
    port = rest.substr(close + 2);
    if (a.host.empty() || a.host.find_first_not_of("0123456789abcdefABCDEF:.%") != std::string::npos) {
      *problem = fmt::format("'{}' is not an IPv6 address", a.host);
      return std::nullopt;
    }
  } else {
    auto colon = rest.rfind(':');
    if (colon == std::string_view::npos) {
      *problem = bind ? "no port: write tcp://*:PORT (or tcp://ADDRESS:PORT)" : "no port: write tcp://HOST:PORT";
      return std::nullopt;
    }
    a.host = std::string(rest.substr(0, colon));
    port = rest.substr(colon + 1);
    if (a.host.empty()) {
      *problem = bind ? "no host: write tcp://*:PORT to bind every interface" : "no host: write tcp://HOST:PORT";
      return std::nullopt;
    }
    if (a.host == "*") {
      if (!bind) {
        *problem = "'*' (every interface) can only be bound; to connect, name the host (tcp://HOST:PORT)";
        return std::nullopt;
      }
    } else {
      for (char c : a.host) {
        if (!hostChar(c)) {
          *problem = fmt::format("'{}' is not a host name or address", a.host);
          return std::nullopt;
        }
      }
    }
  }
  a.port = std::string(port);
  if (bind && (port == "*" || port == "0")) {
    return a;
  }
  if (!allDigits(port) || port.size() > 5) {
    *problem = port.empty() ? std::string("no port after the ':'")
                            : fmt::format("port '{}' is not a number from 1 to 65535{}", port,
                                          bind ? " (or * for a free port)" : "");
    return std::nullopt;
  }
  unsigned long n = std::stoul(std::string(port));
  if (n < 1 || n > 65535) {
    *problem = fmt::format("port {} is out of range (1 to 65535{})", n, bind ? ", or * for a free port" : "");
    return std::nullopt;
  }
  return a;
}

}  // namespace detail

/// What is wrong with endpoint @p e (bound when @p bind), or nullopt when libzmq can take it.
inline std::optional<std::string> endpointProblem(std::string_view e, bool bind) {
  auto sep = e.find("://");
  if (sep == std::string_view::npos) {
    return std::string("not an endpoint: write tcp://HOST:PORT, ipc://PATH or inproc://NAME");
  }
  std::string_view transport = e.substr(0, sep);
  std::string_view rest = e.substr(sep + 3);
  std::string problem;
  if (transport == "tcp") {
    // libzmq's connect form "SOURCE;HOST:PORT" binds the connection's local end first.
    if (auto semi = rest.find(';'); semi != std::string_view::npos && !bind) {
      rest = rest.substr(semi + 1);
    }
    if (!detail::splitHostPort(rest, bind, &problem)) {
      return problem;
    }
    return std::nullopt;
  }
  if (transport == "ipc") {
    if (rest.empty()) {
      return std::string("no path: write ipc:///run/NAME.sock");
    }
    if (rest.size() > 107) {
      return fmt::format("the path is {} bytes long; a socket path has at most 107", rest.size());
    }
    return std::nullopt;
  }
  if (transport == "inproc") {
    if (rest.empty()) {
      return std::string("no name: write inproc://NAME");
    }
    return std::nullopt;
  }
  return fmt::format("unknown transport '{}': use tcp://, ipc:// or inproc://", transport);
}

/// The host and port of a tcp:// endpoint (the part after "SOURCE;" of a connect), or
/// nullopt for other transports and malformed text.
inline std::optional<TcpAddress> tcpAddress(std::string_view e, bool bind) {
  if (e.substr(0, 6) != "tcp://") {
    return std::nullopt;
  }
  std::string_view rest = e.substr(6);
  if (auto semi = rest.find(';'); semi != std::string_view::npos && !bind) {
    rest = rest.substr(semi + 1);
  }
  std::string problem;
  return detail::splitHostPort(rest, bind, &problem);
}

}  // namespace switchyard::zmqt
