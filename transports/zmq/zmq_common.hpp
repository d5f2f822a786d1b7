// SPDX-License-Identifier: MIT
// Pieces shared by zmq-sub and zmq-pub (each plugin is its own .so with hidden symbols, so
// this header is compiled into both).
#pragma once

#include <pwd.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include <zmq.hpp>

#include "switchyard/drop_log.hpp"
#include "switchyard/fedmsg.hpp"
#include "switchyard/sdk.hpp"

namespace switchyard::zmqt {

// Defaults, as fedmsg sets them (interop-spec 1.10). The schema strings repeat them; the
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
    throw sdk::ConfigError(key, std::string("'") + key + "' must not be negative");
  }
  return v;
}

/// TCP keepalive and reconnect settings (interop-spec 1.10).
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
      throw sdk::ConfigError("tcp_keepalive", "'tcp_keepalive' must be -1 (OS default), 0 or 1");
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

}  // namespace switchyard::zmqt
