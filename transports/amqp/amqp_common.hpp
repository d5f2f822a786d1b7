// SPDX-License-Identifier: MIT
//
// Code shared by amqp-consume and amqp-publish, compiled into both plugins (each is its own
// .so with hidden symbols): connection settings, failure classes, reconnect backoff and
// counters (here); the connection (amqp_connection.hpp) and the mapping between AMQP field
// tables and JSON (amqp_table.hpp).
//
// rabbitmq-c 0.11 recovers nothing by itself: callers own the retry loop, re-declare their
// topology and service heartbeats by reading frames regularly.
// THREADING: everything here is used by one plugin instance from its own thread. A source
// or a sink has one instance per configured place, so the plugins name their instance class
// in SWITCHYARD_PLUGIN (its PerInstanceFactory parses the configuration once): there is no
// state to share between instances, and no factory of their own.
#pragma once

#include <amqp.h>
#include <amqp_framing.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "switchyard/abi.h"
#include "switchyard/backoff.hpp"
#include "switchyard/drop_log.hpp"
#include "switchyard/plugin.hpp"
#include "switchyard/sdk.hpp"

namespace switchyard::amqp {

/// Configuration keys common to both plugins (the schema rows are in kCommonKeys).
#define SY_AMQP_COMMON_KEYS                                                                  \
  {"url", SY_CFG_STRING_LIST, 1, nullptr,                                                    \
   "amqp://user:password@host:port/vhost or amqps://...; the password may come from "      \
   "${ENV} or password_file. Never logged (the password is redacted). A list of URLs "      \
   "names the nodes of a cluster: a failed connect or a lost connection moves to the next " \
   "one (round robin, the reconnect backoff between full rounds).",                         \
   1},                                                                                       \
      {"password_file", SY_CFG_STRING, 0, nullptr,                                           \
       "File whose first line is the password (replaces the URL's password).", 0},          \
      {"tls", SY_CFG_MAP, 0, nullptr,                                                        \
       "TLS settings for amqps://: {ca_file, cert_file, key_file}. With cert_file and "     \
       "key_file the client authenticates with SASL EXTERNAL (certificate) unless sasl "    \
       "says otherwise. Server hostname verification is always on.",                        \
       0},                                                                                   \
      {"sasl", SY_CFG_STRING, 0, "\"auto\"",                                                 \
       "plain, external, or auto (external when a client certificate is configured).", 0, "plain|external|auto"},  \
      {"heartbeat", SY_CFG_INT, 0, "30",                                                     \
       "AMQP heartbeat interval in seconds (0 disables; 5-20 is recommended).", 0, nullptr, SY_BOUND_MIN | SY_BOUND_MAX, 0, 65535},         \
      {"connect_timeout", SY_CFG_FLOAT, 0, "10",                                             \
       "Seconds allowed for TCP/TLS connect and the AMQP handshake; also the RPC timeout.", \
       0},                                                                                   \
      {"reconnect_max_delay", SY_CFG_FLOAT, 0, "5",                                         \
       "Cap of the exponential reconnect backoff, in seconds (the first retry comes within " \
       "a second).",                                                                         \
       0},                                                                                   \
      {"app", SY_CFG_STRING, 0, "\"switchyard\"",                                            \
       "Application name sent in the connection's client properties.", 0}

/// One broker of `url` (a node of a cluster when there are several).
struct Node {
  std::string host;
  int port = 5672;
  std::string vhost = "/";
  std::string user = "guest";
  std::string password = "guest";  // secret: never logged
  bool tls = false;
  std::string redacted_url;  // for logs
};

/// The common keys. The Node part (host ... tls, redacted_url) is the node in use (nodes[node]);
/// Connection::open() moves to the next node of a list before every attempt but the first
/// (amqp_failover.cpp), and retryDelay() paces the attempts: the next node at once, the
/// reconnect backoff only after a full round of failures.
struct Settings : Node {
  std::string ca_file, cert_file, key_file;
  bool external = false;
  int heartbeat = 30;
  double connect_timeout = 10;
  double max_delay = 5;
  std::string app = "switchyard";

  std::vector<Node> nodes;           ///< every URL of `url`, in order (at least one when valid)
  std::size_t node = 0;              ///< the one in use
  std::size_t failures_in_row = 0;   ///< failed attempts since the last successful connection

  /// Makes nodes[@p i] the node in use.
  void useNode(std::size_t i);
  /// Moves to the next node of the list (round robin); a single URL stays.
  void nextNode() { useNode(nodes.empty() ? 0 : (node + 1) % nodes.size()); }
  /// The redacted URL of the node a next attempt goes to.
  [[nodiscard]] const std::string &nextUrl() const {
    return nodes.size() > 1 ? nodes[(node + 1) % nodes.size()].redacted_url : redacted_url;
  }

  /// Reads the common keys; records every problem with sdk::Config::problem(), naming
  /// its key ("url", "tls.key_file").
  static Settings fromConfig(const sdk::Config &c);
};

/// The TLS files of @p s: readable, PEM, the key that of the certificate; each problem
/// recorded at its key (amqp_tls_files.cpp).
void checkTlsFiles(const sdk::Config &c, const Settings &s);

/// Returns @p url with the password replaced by "***".
std::string redactUrl(std::string_view url);

/// Reconnect pacing: sdk::Backoff with reconnectPolicy(): 0.5 s first, doubling, +-25 %
/// jitter, the first retry within 0.9 s; nextDelay() never exceeds the cap.
using Backoff = sdk::Backoff;
sdk::BackoffPolicy reconnectPolicy(double max_s) noexcept;
/// The next delay of @p b, never above its cap (policy().max_s).
std::chrono::milliseconds nextDelay(Backoff &b) noexcept;

/// Why a connection attempt (or its topology set-up) failed. Everything but Transient is a
/// problem of configuration or of the broker's set-up that retrying cannot fix: a plugin
/// reports it as Status::permanent() from start() (the command exits 3) and, after a
/// successful start, keeps retrying with backoff and a loud error.
enum class Failure : std::uint8_t {
  Transient,    ///< broker down or unreachable, connection reset, timeout, ...
  Credentials,  ///< 403 ACCESS_REFUSED at login (wrong password, unknown user)
  Vhost,        ///< 530 NOT_ALLOWED at connection.open (no such vhost, or no access to it)
  Declaration,  ///< 406 PRECONDITION_FAILED on a declare (inequivalent arguments or type)
  Access,       ///< 403 ACCESS_REFUSED on a declare or bind (no configure/read/write permission)
  Tls,          ///< TLS files unusable, or the broker requires a client certificate
};
const char *failureName(Failure f) noexcept;

/// A failed connection attempt: a readable @p message naming the cause, and for a
/// permanent failure the @p fix an operator should apply.
struct ConnectError {
  Failure kind = Failure::Transient;
  std::string message;
  std::string fix;
  [[nodiscard]] bool permanent() const noexcept { return kind != Failure::Transient; }
  /// "message (fix: ...)" or just the message.
  [[nodiscard]] std::string text() const { return fix.empty() ? message : message + "; fix: " + fix; }
  /// start()'s answer to a permanent failure: "PLUGIN cannot connect to URL: text", pointing
  /// at the configuration key to fix (`tls`, @p declaration_key or `url`).
  [[nodiscard]] Status startStatus(std::string_view plugin, std::string_view url,
                                   const char *declaration_key) const {
    return Status::permanent(fmt::format("{} cannot connect to {}: {}", plugin, url, text()),
                             kind == Failure::Tls           ? "tls"
                             : kind == Failure::Declaration ? declaration_key
                                                            : "url");
  }
};

/// How long start() waits for its one connection attempt (connect, login, set-up RPCs).
inline constexpr double kStartTimeoutS = 5.0;

/// After a failed connection attempt: the delay before the next one, at @p backoff's pace.
/// A permanent cause after a successful start is logged as an error at every attempt (at
/// most every reconnect_max_delay seconds) and counted as permanent_errors{kind}: the
/// service runs but cannot move anything. A transient one is a warning.
std::chrono::milliseconds retryDelay(PluginContext &ctx, Backoff &backoff, std::string_view url,
                                     const ConnectError &err) noexcept;
/// With several nodes in `url`, a failed attempt is followed at once by one on the next node,
/// and the backoff applies after a full round of failed attempts (amqp_failover.cpp).
std::chrono::milliseconds retryDelay(PluginContext &ctx, Backoff &backoff, Settings &s,
                                     const ConnectError &err) noexcept;

/// Classifies a failed RPC of the set-up (queue/exchange declare, bind) in @p r; fills
/// @p e.kind and @p e.fix for the permanent cases, @p what names the object.
void classifyDeclare(const amqp_rpc_reply_t &r, const std::string &what, ConnectError &e);

/// The notAfter of the PEM certificate in @p path as a Unix timestamp, 0 when it cannot be
/// read (amqp_tls_files.cpp). For the `tls_cert_not_after_timestamp_seconds` gauge.
std::int64_t certNotAfter(const std::string &path) noexcept;

/// Connection state counters shared by both plugins, and the two gauges of the readiness
/// contract (`/health/ready`): `connected` is 1 while the connection and the channel are
/// open and the topology is declared (0 from the moment a read, a write, a heartbeat or the
/// broker says otherwise), `blocked` is 1 while the broker blocks the connection
/// (connection.blocked: a memory or disk alarm).
struct ConnCounters {
  Counter *connects = nullptr;
  Counter *disconnects = nullptr;
  Counter *reconnects = nullptr;
  Counter *connect_failures = nullptr;
  Gauge *connected = nullptr;
  Gauge *blocked = nullptr;
  /// `broker_node`: the node in use, its 1-based place in the `url` list (0 before the
  /// first connection).
  Gauge *node = nullptr;
  Settings *settings = nullptr;
  /// Also publishes the client certificate's expiry (tls.cert_file's notAfter, a Unix
  /// timestamp) as the gauge `tls_cert_not_after_timestamp_seconds` when one is configured.
  void init(PluginContext &ctx, Settings &s) {
    settings = &s;
    node = &ctx.gauge("broker_node");
    if (!s.cert_file.empty()) {
      ctx.gauge("tls_cert_not_after_timestamp_seconds").set(certNotAfter(s.cert_file));
    }
    connects = &ctx.counter("connects");
    disconnects = &ctx.counter("disconnects");
    reconnects = &ctx.counter("reconnects");
    connect_failures = &ctx.counter("connect_failures");
    connected = &ctx.gauge("connected");
    blocked = &ctx.gauge("blocked");
  }
  /// The connection is usable (after connect() and its set-up).
  void up() noexcept {
    connected->set(1);
    blocked->set(0);
    settings->failures_in_row = 0;
    node->set(static_cast<std::int64_t>(settings->node + 1));
  }
  /// The connection is gone (a blocked state goes with it).
  void down() noexcept {
    connected->set(0);
    blocked->set(0);
  }
};

}  // namespace switchyard::amqp

#include "amqp_connection.hpp"
#include "amqp_table.hpp"
