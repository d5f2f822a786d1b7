// SPDX-License-Identifier: MIT
// Pieces shared by zmq-sub and zmq-pub (each plugin is its own .so with hidden symbols, so
// this header is compiled into both).
#pragma once

#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <zmq.hpp>

#include "switchyard/drop_log.hpp"
#include "switchyard/fedmsg.hpp"
#include "switchyard/sdk.hpp"
#include "zmq_endpoint.hpp"

namespace switchyard::zmqt {

// Defaults, as fedmsg sets them. The schema strings repeat them; the
// accessors below fall back to them so a configuration without defaults applied still works.
inline constexpr std::int64_t kDefaultHwm = 1000;  // libzmq's own default, which fedmsg gets
inline constexpr std::int64_t kDefaultMaxMessageSize = 16 * 1024 * 1024;
inline constexpr std::int64_t kDefaultMaxDepth = 64;
inline constexpr std::int64_t kDefaultKeepalive = 1;
inline constexpr std::int64_t kDefaultKeepaliveCnt = 3;
inline constexpr std::int64_t kDefaultKeepaliveIdle = 60;
inline constexpr std::int64_t kDefaultKeepaliveIntvl = 5;
inline constexpr std::int64_t kDefaultReconnectIvl = 100;
inline constexpr std::int64_t kDefaultReconnectIvlMax = 1000;
inline constexpr std::int64_t kDefaultLinger = 1000;

inline std::int64_t intOr(const sdk::Config &c, const char *key, std::int64_t def) {
  return c.has(key) ? c.integer(key) : def;
}
inline bool boolOr(const sdk::Config &c, const char *key, bool def) {
  return c.has(key) ? c.boolean(key) : def;
}
inline double numberOr(const sdk::Config &c, const char *key, double def) {
  return c.has(key) ? c.number(key) : def;
}
inline std::string strOr(const sdk::Config &c, const char *key, std::string def) {
  return c.has(key) ? c.str(key) : def;
}
inline std::vector<std::string> stringsOr(const sdk::Config &c, const char *key,
                                          std::vector<std::string> def) {
  return c.has(key) ? c.strings(key) : def;
}
inline std::int64_t nonNegative(const sdk::Config &c, const char *key, std::int64_t def) {
  std::int64_t v = intOr(c, key, def);
  if (v < 0) {
    c.problem(key, std::string("'") + key + "' must not be negative, got " + std::to_string(v));
    return def;
  }
  return v;
}

/// Joins schema pieces (arrays without the terminating row) into one schema array, with
/// the terminating null row: `joinSchema(kOwnRows, kSocketTuningRows, kMoreRows).data()`.
template <std::size_t... N>
constexpr auto joinSchema(const sy_config_key (&...parts)[N]) {
  std::array<sy_config_key, (N + ... + 0) + 1> out{};  // the last row stays null
  std::size_t at = 0;
  ((std::copy(parts, parts + N, out.begin() + static_cast<std::ptrdiff_t>(at)), at += N), ...);
  return out;
}

/// The schema rows of SocketTuning, the same in both plugins (the defaults are fedmsg's).
inline constexpr sy_config_key kSocketTuningRows[] = {
    {"tcp_keepalive", SY_CFG_INT, 0, "1", "ZMQ_TCP_KEEPALIVE (-1 OS default, 0 off, 1 on).", 0, nullptr, SY_BOUND_MIN | SY_BOUND_MAX, -1, 1},
    {"tcp_keepalive_cnt", SY_CFG_INT, 0, "3", "ZMQ_TCP_KEEPALIVE_CNT.", 0},
    {"tcp_keepalive_idle", SY_CFG_INT, 0, "60", "ZMQ_TCP_KEEPALIVE_IDLE in seconds.", 0},
    {"tcp_keepalive_intvl", SY_CFG_INT, 0, "5", "ZMQ_TCP_KEEPALIVE_INTVL in seconds.", 0},
    {"reconnect_ivl", SY_CFG_INT, 0, "100", "ZMQ_RECONNECT_IVL in milliseconds (connect mode).", 0},
    {"reconnect_ivl_max", SY_CFG_INT, 0, "1000",
     "ZMQ_RECONNECT_IVL_MAX in milliseconds (the cap of the exponential back-off).", 0},
};

/// TCP keepalive and reconnect settings (schema rows: kSocketTuningRows).
struct SocketTuning {
  int keepalive = kDefaultKeepalive;
  int keepalive_cnt = kDefaultKeepaliveCnt;
  int keepalive_idle = kDefaultKeepaliveIdle;
  int keepalive_intvl = kDefaultKeepaliveIntvl;
  int reconnect_ivl = kDefaultReconnectIvl;
  int reconnect_ivl_max = kDefaultReconnectIvlMax;

  static SocketTuning fromConfig(const sdk::Config &c) {
    SocketTuning t;
    t.keepalive = static_cast<int>(intOr(c, "tcp_keepalive", kDefaultKeepalive));
    t.keepalive_cnt = static_cast<int>(intOr(c, "tcp_keepalive_cnt", kDefaultKeepaliveCnt));
    t.keepalive_idle = static_cast<int>(intOr(c, "tcp_keepalive_idle", kDefaultKeepaliveIdle));
    t.keepalive_intvl = static_cast<int>(intOr(c, "tcp_keepalive_intvl", kDefaultKeepaliveIntvl));
    t.reconnect_ivl = static_cast<int>(nonNegative(c, "reconnect_ivl", kDefaultReconnectIvl));
    t.reconnect_ivl_max = static_cast<int>(nonNegative(c, "reconnect_ivl_max", kDefaultReconnectIvlMax));
    if (t.keepalive < -1 || t.keepalive > 1) {
      c.problem("tcp_keepalive", "'tcp_keepalive' must be -1 (OS default), 0 or 1");
    }
    return t;
  }
  void apply(zmq::socket_t &s) const {
    s.set(zmq::sockopt::tcp_keepalive, keepalive);
    s.set(zmq::sockopt::tcp_keepalive_cnt, keepalive_cnt);
    s.set(zmq::sockopt::tcp_keepalive_idle, keepalive_idle);
    s.set(zmq::sockopt::tcp_keepalive_intvl, keepalive_intvl);
    s.set(zmq::sockopt::reconnect_ivl, reconnect_ivl);
    s.set(zmq::sockopt::reconnect_ivl_max, reconnect_ivl_max);
  }
};

/// `endpoints`, which both plugins require to name at least one address, each checked
/// for libzmq's syntax (zmq_endpoint.hpp) as bound (@p bind) or connected.
inline std::vector<std::string> endpointsFrom(const sdk::Config &c, bool bind) {
  std::vector<std::string> e = c.strings("endpoints");
  if (e.empty()) {
    c.problem("endpoints", "'endpoints' needs at least one address, e.g. " +
                           std::string(bind ? "tcp://*:9940" : "tcp://HOST:9940"));
  }
  for (std::size_t k = 0; k < e.size(); ++k) {
    if (auto problem = endpointProblem(e[k], bind)) {
      c.problem(fmt::format("endpoints[{}]", k), fmt::format("'{}' is not a usable endpoint: {}", e[k], *problem));
    }
  }
  return e;
}

/// How to fix a failed bind or connect, from libzmq's error ("; another socket is bound
/// there: ..."); empty when there is nothing to add to the error's own text.
inline std::string bindFailureHint(const std::exception &err) {
  const auto *z = dynamic_cast<const zmq::error_t *>(&err);
  if (z != nullptr && z->num() == EADDRINUSE) {
    return "; another socket is bound there: stop what holds it or choose another port";
  }
  if (z != nullptr && z->num() == EADDRNOTAVAIL) {
    return "; this machine has no such address: bind * or one of its own addresses";
  }
  if (z != nullptr && z->num() == EACCES) {
    return "; ports below 1024 need privileges: choose a port from 1024 up";
  }
  return {};
}

/// start()'s answer when endpoint @p k, @p e, cannot be bound (@p bind) or connected:
/// "cannot bind tcp://*:9940 (endpoints[0]): Address already in use; ...", at `endpoints`.
inline Status endpointFailure(bool bind, const std::string &e, std::size_t k, const std::exception &err) {
  return Status::fatal(fmt::format("cannot {} {} (endpoints[{}]): {}{}", bind ? "bind" : "connect to", e, k,
                                   err.what(), bindFailureHint(err)),
                       "endpoints");
}

/// endpointFailure()'s Status, thrown out of a socket set-up that runs deeper than start().
struct EndpointError : std::exception {
  explicit EndpointError(Status s) : status(std::move(s)) {}
  [[nodiscard]] const char *what() const noexcept override { return status.message().c_str(); }
  Status status;
};

/// `max_message_size` and `max_depth`, both positive.
inline fedmsg::Limits limitsFrom(const sdk::Config &c) {
  fedmsg::Limits l;
  std::int64_t max = intOr(c, "max_message_size", kDefaultMaxMessageSize);
  if (max <= 0) {
    c.problem("max_message_size", "'max_message_size' must be positive");
  } else {
    l.max_bytes = static_cast<std::size_t>(max);
  }
  std::int64_t depth = intOr(c, "max_depth", kDefaultMaxDepth);
  if (depth <= 0) {
    c.problem("max_depth", "'max_depth' must be positive");
  } else {
    l.max_depth = static_cast<std::size_t>(depth);
  }
  return l;
}

// --- One ZeroMQ context per engine ----------------------------------------------------
//
// Every zmq-sub and zmq-pub of an engine opens its sockets in one context, which the host
// keeps under kContextKey (Host::shared): one I/O thread for all of them, not one per
// plugin. Each factory and each instance holds a shared_ptr to it, and every socket is a
// member declared after that pointer, so the context is terminated (zmq_ctx_term, which
// waits for sockets closed with a linger) only after the last socket was closed: when the
// engine is destroyed, after its instances and factories, or later if an instance lives
// on. Without a host (unit tests) a factory makes a private context.

inline constexpr std::string_view kContextKey = "zmq.context";

/// A context as both plugins want it: one I/O thread, zero-copy receive off.
inline std::shared_ptr<zmq::context_t> newContext() {
  auto c = std::make_shared<zmq::context_t>(1);
  // Memory: with zero-copy receive, libzmq cuts messages out of an 8 KiB read buffer that
  // stays alive while any of them waits, so a queued 400-byte message held 3.5-6 KiB and
  // zmq-sub's `hwm` bounded the count, not the memory. Copying each message out costs a
  // memcpy and keeps a queued message at its own size. ZMQ_ZERO_COPY_RECV (10) is a
  // context option of libzmq >= 4.3 behind its draft-API guard, read when a socket is
  // made; an older library refuses it, which only costs the memory.
  constexpr int kZmqZeroCopyRecv = 10;
  (void)zmq_ctx_set(c->handle(), kZmqZeroCopyRecv, 0);
  return c;
}

/// The engine's ZeroMQ context (see above), or a private one when @p host is null, with
/// room for @p sockets more sockets: ZMQ_MAX_SOCKETS (1023 by default) is raised by that
/// much. libzmq reads ZMQ_MAX_SOCKETS when the context's first socket is made, so this is
/// called from the factories' constructors: the core makes every factory, one at a time on
/// its loading thread, before any instance starts (plugin.hpp).
inline std::shared_ptr<zmq::context_t> engineContext(Host *host, int sockets) {
  std::shared_ptr<zmq::context_t> c;
  if (host == nullptr) {
    c = newContext();
  } else {
    c = std::static_pointer_cast<zmq::context_t>(
        host->shared(kContextKey, [] { return std::shared_ptr<void>(newContext()); }));
  }
  if (!c) {
    throw std::runtime_error("cannot create the ZeroMQ context");
  }
  int max = zmq_ctx_get(c->handle(), ZMQ_MAX_SOCKETS);
  if (max < 0 || zmq_ctx_set(c->handle(), ZMQ_MAX_SOCKETS, max + std::max(sockets, 0)) != 0) {
    throw std::runtime_error(std::string("cannot raise ZMQ_MAX_SOCKETS: ") + zmq_strerror(zmq_errno()));
  }
  return c;
}

/// The factory of both plugins, one per configured place: the validated settings
/// (Settings::fromConfig) and the engine's ZeroMQ context with room for the sockets of
/// the instance (Settings::contextSockets()), both read-only for that instance (a source
/// or a sink has one), which Make(settings, context) makes.
template <typename Settings, auto Make>
class ContextFactory final : public PluginFactory {
 public:
  explicit ContextFactory(const sdk::Config &c)
      : settings_(Settings::fromConfig(c)), zctx_(engineContext(c.host(), settings_.contextSockets())) {}

  Plugin *instantiate(const InstanceArgs &args) noexcept override {
    return sdk::barrier(args.error, [&]() -> Plugin * { return Make(settings_, zctx_).release(); });
  }

 private:
  const Settings settings_;
  const std::shared_ptr<zmq::context_t> zctx_;
};

/// The user name of this process, as fedmsg's getpass.getuser() would report it.
inline std::string processUserName() {
  for (const char *var : {"LOGNAME", "USER", "LNAME", "USERNAME"}) {
    const char *v = std::getenv(var);
    if (v != nullptr && *v != '\0') {
      return v;
    }
  }
  std::vector<char> buf(16384);
  passwd pw{};
  passwd *res = nullptr;
  if (getpwuid_r(geteuid(), &pw, buf.data(), buf.size(), &res) == 0 && res != nullptr &&
      res->pw_name != nullptr) {
    return res->pw_name;
  }
  return "switchyard";
}

/// Rate-limited log (one line per key per second by default): switchyard/drop_log.hpp.
using switchyard::DropLog;

/// One event read from a ZeroMQ socket monitor ([event(2)+value(4), address] frames).
struct MonitorEvent {
  bool valid = false;     ///< false: the first frame was too short to hold event and value
  std::uint16_t event = 0;
  std::uint32_t value = 0;
  bool has_address = false;
  std::string address;    ///< the second frame, when there was one
};

/// Reads the next queued event from @p monitor without blocking, every frame of it;
/// false when none is queued.
inline bool recvMonitorEvent(zmq::socket_t &monitor, MonitorEvent &out) {
  zmq::message_t head;
  if (!monitor.recv(head, zmq::recv_flags::dontwait)) {
    return false;
  }
  out = MonitorEvent{};
  bool more = head.more();
  while (more) {  // read every part whatever comes
    zmq::message_t part;
    if (!monitor.recv(part, zmq::recv_flags::dontwait)) {
      break;
    }
    more = part.more();
    if (!out.has_address) {
      out.address = part.to_string();
      out.has_address = true;
    }
  }
  if (head.size() < 6) {
    return true;
  }
  std::memcpy(&out.event, head.data(), sizeof out.event);
  std::memcpy(&out.value, static_cast<const char *>(head.data()) + 2, sizeof out.value);
  out.valid = true;
  return true;
}

}  // namespace switchyard::zmqt
