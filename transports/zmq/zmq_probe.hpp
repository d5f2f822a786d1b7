// SPDX-License-Identifier: MIT
//
// `switchyard check --connect` for zmq-sub and zmq-pub (Plugin::probe), one result per
// endpoint, named by the endpoint:
//
//   connected endpoints   tcp://: the host is resolved and a TCP connection is made; when
//                         the peer answers with something that is not ZeroMQ's greeting,
//                         that is a failure too. ipc://: a connection to the socket file.
//   bound endpoints       bound and closed again with libzmq (in a context of the probe's
//                         own), so a port another process holds, an address this machine
//                         does not have or a missing directory shows now.
//
// inproc:// endpoints live inside the process: there is nothing to check outside it.
#pragma once

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <zmq.hpp>

#include "switchyard/plugin.hpp"
#include "zmq_endpoint.hpp"

namespace switchyard::zmqt {
namespace probe_detail {

using Clock = std::chrono::steady_clock;

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) {
      ::close(fd);
    }
  }
};

inline int msLeft(Clock::time_point deadline) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return static_cast<int>(std::max<long long>(ms, 0));
}

/// getaddrinfo() within @p deadline: it has no timeout of its own, so it runs on a thread
/// that is left to finish by itself when the deadline passes first.
inline int resolve(const std::string &host, const std::string &port, Clock::time_point deadline,
                   std::vector<sockaddr_storage> &out, std::vector<socklen_t> &lens, std::string &why) {
  struct Shared {
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    int rc = 0;
    std::vector<sockaddr_storage> addrs;
    std::vector<socklen_t> lens;
  };
  auto sh = std::make_shared<Shared>();
  std::thread t;
  try {
    t = std::thread([sh, host, port] {
      addrinfo hints{};
      hints.ai_family = AF_UNSPEC;
      hints.ai_socktype = SOCK_STREAM;
      addrinfo *res = nullptr;
      int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &res);
      std::lock_guard<std::mutex> lock(sh->mu);
      sh->rc = rc;
      for (addrinfo *a = res; rc == 0 && a != nullptr; a = a->ai_next) {
        sockaddr_storage s{};
        std::memcpy(&s, a->ai_addr, std::min<std::size_t>(a->ai_addrlen, sizeof s));
        sh->addrs.push_back(s);
        sh->lens.push_back(a->ai_addrlen);
      }
      if (res != nullptr) {
        ::freeaddrinfo(res);
      }
      sh->done = true;
      sh->cv.notify_all();
    });
  } catch (const std::exception &e) {
    why = std::string("cannot start the resolver: ") + e.what();
    return -1;
  }
  std::unique_lock<std::mutex> lock(sh->mu);
  if (!sh->cv.wait_until(lock, deadline, [&] { return sh->done; })) {
    lock.unlock();
    t.detach();
    why = "cannot resolve host '" + host + "' in time: check the name and the DNS servers";
    return -1;
  }
  // Joined when it finished in time: a thread still running this plugin's code (the
  // lambda's destructors) when the plugin is unloaded after the probe crashes the process.
  lock.unlock();
  t.join();
  lock.lock();
  if (sh->rc != 0) {
    why = "cannot resolve host '" + host + "': " + ::gai_strerror(sh->rc) + "; check the name";
    return -1;
  }
  out = sh->addrs;
  lens = sh->lens;
  return 0;
}

/// Connects a stream socket to @p addr by @p deadline; 0, or an errno value.
inline int connectBy(const sockaddr *addr, socklen_t len, Clock::time_point deadline, Fd &s) {
  s.fd = ::socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (s.fd < 0) {
    return errno;
  }
  if (::connect(s.fd, addr, len) == 0) {
    return 0;
  }
  if (errno != EINPROGRESS) {
    return errno;
  }
  pollfd p{s.fd, POLLOUT, 0};
  int n = ::poll(&p, 1, msLeft(deadline));
  if (n == 0) {
    return ETIMEDOUT;
  }
  int err = 0;
  socklen_t el = sizeof err;
  if (n < 0 || ::getsockopt(s.fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0) {
    return errno;
  }
  return err;
}

/// A connected peer's first bytes, if it sends them within 500 ms: every ZeroMQ socket
/// starts with a 10-byte signature, 0xFF ... 0x7F. Empty when the peer is ZeroMQ or silent.
inline std::string notZeroMq(int fd, Clock::time_point deadline) {
  unsigned char buf[10];
  std::size_t got = 0;
  auto until = std::min(deadline, Clock::now() + std::chrono::milliseconds(500));
  while (got < sizeof buf) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, msLeft(until)) <= 0) {
      break;
    }
    ssize_t n = ::recv(fd, buf + got, sizeof buf - got, 0);
    if (n <= 0) {
      break;
    }
    got += static_cast<std::size_t>(n);
  }
  if (got == 0 || (buf[0] == 0xFF && (got < 10 || buf[9] == 0x7F))) {
    return {};
  }
  return "the peer answered, but not with ZeroMQ's greeting: is this the publisher's port?";
}

}  // namespace probe_detail

/// What is wrong with connecting to endpoint @p e (empty when a connection could be made).
inline std::string probeConnect(const std::string &e, std::chrono::milliseconds budget) {
  using namespace probe_detail;
  auto deadline = Clock::now() + budget;
  if (auto tcp = tcpAddress(e, false)) {
    std::vector<sockaddr_storage> addrs;
    std::vector<socklen_t> lens;
    std::string why;
    if (resolve(tcp->host, tcp->port, deadline, addrs, lens, why) != 0) {
      return why;
    }
    int last = 0;
    for (std::size_t k = 0; k < addrs.size(); ++k) {
      Fd s;
      last = connectBy(reinterpret_cast<const sockaddr *>(&addrs[k]), lens[k], deadline, s);
      if (last == 0) {
        return notZeroMq(s.fd, deadline);
      }
    }
    std::string fix = last == ECONNREFUSED ? "nothing listens there: start the publisher or fix the port"
                      : last == ETIMEDOUT  ? "no answer in time: check the host, the port and firewalls"
                                           : "check the host and the port";
    return fmt::format("cannot connect to {}:{}: {}; {}", tcp->host, tcp->port, std::strerror(last), fix);
  }
  if (e.rfind("ipc://", 0) == 0) {
    std::string path = e.substr(6);
    sockaddr_un un{};
    un.sun_family = AF_UNIX;
    if (path.size() >= sizeof un.sun_path) {
      return "the socket path is too long";
    }
    std::memcpy(un.sun_path, path.data(), path.size());
    if (!path.empty() && path[0] == '@') {
      un.sun_path[0] = '\0';  // an abstract socket
    }
    Fd s;
    int err = connectBy(reinterpret_cast<const sockaddr *>(&un),
                        static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size()), deadline, s);
    if (err != 0) {
      return fmt::format("cannot connect to the socket '{}': {}; start the publisher or fix the path", path,
                         std::strerror(err));
    }
  }
  return {};
}

/// What is wrong with binding endpoint @p e (empty when it could be bound), checked with
/// libzmq itself in a context of its own, closed before returning.
inline std::string probeBind(const std::string &e) {
  try {
    zmq::context_t ctx(1);
    zmq::socket_t s(ctx, zmq::socket_type::xpub);
    s.set(zmq::sockopt::linger, 0);
    try {
      s.bind(e);
    } catch (const zmq::error_t &err) {
      std::string fix = err.num() == EADDRINUSE      ? "; another socket is bound there: stop what holds it or choose "
                                                       "another port"
                        : err.num() == EADDRNOTAVAIL ? "; this machine has no such address: bind * or one of its own"
                        : err.num() == EACCES        ? "; not allowed (ports below 1024 need privileges)"
                                                     : "";
      return fmt::format("cannot bind {}: {}{}", e, err.what(), fix);
    }
    s.close();
    ctx.close();  // waits until the socket released the address
  } catch (const std::exception &err) {
    return fmt::format("cannot check {}: {}", e, err.what());
  }
  return {};
}

/// Plugin::probe() of both plugins: one result per endpoint, within @p timeout in all.
inline Status probeEndpoints(ProbeReport &report, const std::vector<std::string> &endpoints, bool bind,
                             std::chrono::milliseconds timeout) noexcept {
  try {
    auto deadline = probe_detail::Clock::now() + timeout;
    for (std::size_t k = 0; k < endpoints.size(); ++k) {
      const std::string &e = endpoints[k];
      if (e.rfind("inproc://", 0) == 0) {
        continue;  // inside the process: nothing outside to check
      }
      std::string problem;
      if (bind) {
        problem = probeBind(e);
      } else {
        auto left = std::chrono::milliseconds(probe_detail::msLeft(deadline));
        // An equal share of what is left, at least 200 ms (the last one gets the rest).
        auto share = std::max(left / static_cast<long>(endpoints.size() - k), std::chrono::milliseconds(200));
        problem = probeConnect(e, std::min(share, std::max(left, std::chrono::milliseconds(200))));
      }
      report.result(e, problem.empty() ? Status::ok() : Status::error(problem));
    }
  } catch (const std::exception &err) {
    return Status::error(std::string("probe failed: ") + err.what());
  }
  return Status::ok();
}

}  // namespace switchyard::zmqt
