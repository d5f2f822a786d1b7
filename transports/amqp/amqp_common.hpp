// SPDX-License-Identifier: MIT
//
// Code shared by amqp-consume and amqp-publish, compiled into both plugins (each is its own
// .so with hidden symbols): connection settings, opening a connection with TLS and SASL,
// reconnect backoff, and the mapping between AMQP field tables and JSON.
//
// rabbitmq-c 0.11 recovers nothing by itself (reliability.md 2.9): callers own the retry
// loop, re-declare their topology and service heartbeats by reading frames regularly.
// THREADING: one AmqpConnection per plugin instance, used from that instance's thread only.
#pragma once

#include <amqp.h>
#include <amqp_framing.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include <rapidjson/document.h>

#include "switchyard/abi.h"
#include "switchyard/drop_log.hpp"
#include "switchyard/plugin.hpp"
#include "switchyard/sdk.hpp"

namespace switchyard::amqp {

/// Configuration keys common to both plugins (the schema rows are in kCommonKeys).
#define SY_AMQP_COMMON_KEYS                                                                  \
  {"url", SY_CFG_STRING, 1, nullptr,                                                         \
   "amqp://user:password@host:port/vhost or amqps://...; the password may come from "      \
   "${ENV} or password_file. Never logged (the password is redacted).",                     \
   1},                                                                                       \
      {"password_file", SY_CFG_STRING, 0, nullptr,                                           \
       "File whose first line is the password (replaces the URL's password).", 0},          \
      {"tls", SY_CFG_MAP, 0, nullptr,                                                        \
       "TLS settings for amqps://: {ca_file, cert_file, key_file}. With cert_file and "     \
       "key_file the client authenticates with SASL EXTERNAL (certificate) unless sasl "    \
       "says otherwise. Server hostname verification is always on.",                        \
       0},                                                                                   \
      {"sasl", SY_CFG_STRING, 0, "\"auto\"",                                                 \
       "plain, external, or auto (external when a client certificate is configured).", 0},  \
      {"heartbeat", SY_CFG_INT, 0, "30",                                                     \
       "AMQP heartbeat interval in seconds (0 disables; 5-20 is recommended).", 0},         \
      {"connect_timeout", SY_CFG_FLOAT, 0, "10",                                             \
       "Seconds allowed for TCP/TLS connect and the AMQP handshake; also the RPC timeout.", \
       0},                                                                                   \
      {"reconnect_max_delay", SY_CFG_FLOAT, 0, "5",                                         \
       "Cap of the exponential reconnect backoff, in seconds (the first retry comes within " \
       "a second).",                                                                         \
       0},                                                                                   \
      {"app", SY_CFG_STRING, 0, "\"switchyard\"",                                            \
       "Application name sent in the connection's client properties.", 0}

struct Settings {
  std::string host;
  int port = 5672;
  std::string vhost = "/";
  std::string user = "guest";
  std::string password = "guest";  // secret: never logged
  bool tls = false;
  std::string ca_file, cert_file, key_file;
  bool external = false;
  int heartbeat = 30;
  double connect_timeout = 10;
  double max_delay = 5;
  std::string app = "switchyard";
  std::string redacted_url;  // for logs

  /// Reads the common keys; throws sdk::ConfigError naming the key.
  static Settings fromConfig(const sdk::Config &c);
};

/// Returns @p url with the password replaced by "***".
std::string redactUrl(std::string_view url);

/// Exponential backoff with jitter: first delay within a second, doubling up to a cap.
class Backoff {
 public:
  explicit Backoff(double max_s) : max_s_(max_s < 0.5 ? 0.5 : max_s) {}
  /// Delay before the next attempt; grows with every call until reset().
  std::chrono::milliseconds next();
  void reset() { attempt_ = 0; }

 private:
  double max_s_;
  int attempt_ = 0;
  std::mt19937 rng_{std::random_device{}()};
};

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

/// Classifies a failed RPC of the set-up (queue/exchange declare, bind) in @p r; fills
/// @p e.kind and @p e.fix for the permanent cases, @p what names the object.
void classifyDeclare(const amqp_rpc_reply_t &r, const std::string &what, ConnectError &e);

/// An open AMQP connection (socket + login). Channels are the caller's business.
class Connection {
 public:
  Connection() = default;
  Connection(const Connection &) = delete;
  Connection &operator=(const Connection &) = delete;
  ~Connection() { close(); }

  /// Opens socket, TLS and login within @p timeout_s (0: the settings' connect_timeout),
  /// which stays the RPC timeout (for the caller's set-up) until setRpcTimeout().
  /// On failure returns false with @p error classified (ConnectError).
  bool open(const Settings &s, ConnectError &error, double timeout_s = 0);
  void setRpcTimeout(double s) noexcept;
  /// Polite close (connection.close with the RPC timeout), then frees everything.
  void close() noexcept;
  /// Frees everything without talking to the peer (after a socket error).
  void drop() noexcept;

  [[nodiscard]] bool isOpen() const noexcept { return state_ != nullptr; }
  [[nodiscard]] amqp_connection_state_t state() const noexcept { return state_; }
  [[nodiscard]] int fd() const noexcept;
  /// True when frames are already decoded or bytes buffered: poll(2) would not see them.
  [[nodiscard]] bool hasBuffered() const noexcept;

  /// Decodes up to @p max frames that are already available, without blocking, and hands
  /// each method frame to @p on_method, which returns false to stop early (it may also drop
  /// the connection). Every call services due heartbeats: rabbitmq-c sends them only inside
  /// its wait calls. Returns AMQP_STATUS_OK, or the status that broke the connection (the
  /// caller then drops it).
  template <typename OnMethod>
  int readMethods(int max, OnMethod &&on_method) {
    for (int i = 0; i < max && isOpen(); ++i) {
      amqp_frame_t frame;
      timeval zero{0, 0};
      int rc = amqp_simple_wait_frame_noblock(state_, &frame, &zero);
      if (rc == AMQP_STATUS_TIMEOUT) {
        break;
      }
      if (rc != AMQP_STATUS_OK) {
        return rc;
      }
      if (frame.frame_type == AMQP_FRAME_METHOD && !on_method(frame)) {
        break;
      }
    }
    if (isOpen()) {
      amqp_maybe_release_buffers(state_);
    }
    return AMQP_STATUS_OK;
  }

 private:
  amqp_connection_state_t state_ = nullptr;
};

/// A readable description of an RPC reply ("channel closed by broker: 403 ACCESS_REFUSED ...").
std::string describe(const amqp_rpc_reply_t &r);
/// The reply code of a server close in @p r (0 if it is not one).
int replyCode(const amqp_rpc_reply_t &r);
std::string describeStatus(int status);

/// Owns the memory of AMQP tables built from JSON. Keep it alive until the publish is done.
class TableArena {
 public:
  /// Adds the members of the JSON object @p obj to @p out (entries appended after
  /// @p extra which the caller fills). Returns false with @p error for unsupported values.
  bool fromJson(const rapidjson::Value &obj, std::vector<amqp_table_entry_t> &out, std::string &error);
  amqp_bytes_t bytes(std::string_view s);
  void clear();

 private:
  bool value(const rapidjson::Value &v, amqp_field_value_t &out, std::string &error, int depth);
  std::deque<std::string> strings_;
  std::deque<std::vector<amqp_table_entry_t>> tables_;
  std::deque<std::vector<amqp_field_value_t>> arrays_;
};

/// Writes @p table as a JSON object into @p w. Returns false if a value cannot be
/// represented (invalid UTF-8 in a string is written with U+FFFD replacements instead).
void tableToJson(const amqp_table_t &table, std::string &out);

/// Sends channel.close-ok / connection.close-ok after a server close method.
void sendChannelCloseOk(amqp_connection_state_t st, amqp_channel_t ch) noexcept;
void sendConnectionCloseOk(amqp_connection_state_t st) noexcept;

/// Connection state counters shared by both plugins.
struct ConnCounters {
  Counter *connects = nullptr;
  Counter *disconnects = nullptr;
  Counter *reconnects = nullptr;
  Counter *connect_failures = nullptr;
  Gauge *connected = nullptr;
  void init(PluginContext &ctx) {
    connects = &ctx.counter("connects");
    disconnects = &ctx.counter("disconnects");
    reconnects = &ctx.counter("reconnects");
    connect_failures = &ctx.counter("connect_failures");
    connected = &ctx.gauge("connected");
  }
};

}  // namespace switchyard::amqp
