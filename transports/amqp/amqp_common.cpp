// SPDX-License-Identifier: MIT
#include "amqp_common.hpp"

#include <amqp_ssl_socket.h>
#include <amqp_tcp_socket.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>

#ifdef SY_AMQP_HAVE_OPENSSL
#include <openssl/err.h>
#include <openssl/ssl.h>
#endif

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "switchyard/fedmsg.hpp"

namespace switchyard::amqp {

namespace {

timeval toTimeval(double s) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(s);
  tv.tv_usec = static_cast<suseconds_t>((s - static_cast<double>(tv.tv_sec)) * 1e6);
  return tv;
}

amqp_table_entry_t boolEntry(const char *key) {
  amqp_table_entry_t e{};
  e.key = amqp_cstring_bytes(key);
  e.value.kind = AMQP_FIELD_KIND_BOOLEAN;
  e.value.value.boolean = 1;
  return e;
}

amqp_table_entry_t strEntry(const char *key, const std::string &v) {
  amqp_table_entry_t e{};
  e.key = amqp_cstring_bytes(key);
  e.value.kind = AMQP_FIELD_KIND_UTF8;
  e.value.value.bytes = amqp_bytes_t{v.size(), const_cast<char *>(v.data())};
  return e;
}

}  // namespace

std::string redactUrl(std::string_view url) {
  auto scheme = url.find("://");
  std::size_t start = scheme == std::string_view::npos ? 0 : scheme + 3;
  auto at = url.find('@', start);
  if (at == std::string_view::npos) {
    return std::string(url);
  }
  auto colon = url.find(':', start);
  if (colon == std::string_view::npos || colon > at) {
    return std::string(url);
  }
  return std::string(url.substr(0, colon + 1)) + "***" + std::string(url.substr(at));
}

Settings Settings::fromConfig(const sdk::Config &c) {
  Settings s;
  std::string url = c.str("url");
  s.redacted_url = redactUrl(url);
  amqp_connection_info info{};
  std::vector<char> buf(url.begin(), url.end());
  buf.push_back('\0');
  if (amqp_parse_url(buf.data(), &info) != AMQP_STATUS_OK) {
    throw sdk::ConfigError("url", "'url' is not a valid amqp:// or amqps:// URL: " + s.redacted_url);
  }
  s.host = info.host;
  s.port = info.port;
  s.user = info.user;
  s.password = info.password;
  s.vhost = info.vhost;
  // "amqp://host/" has an empty path; like pika, take it as the default vhost "/".
  if (s.vhost.empty()) {
    s.vhost = "/";
  }
  s.tls = info.ssl != 0;
  if (c.has("password_file")) {
    std::ifstream in(c.str("password_file"));
    if (!in) {
      throw sdk::ConfigError("password_file", "cannot read password_file '" + c.str("password_file") + "'");
    }
    std::getline(in, s.password);
    if (!s.password.empty() && s.password.back() == '\r') {
      s.password.pop_back();
    }
  }
  if (c.has("tls")) {
    const auto &t = c.value("tls");
    if (!t.IsObject()) {
      throw sdk::ConfigError("tls", "'tls' must be a mapping {ca_file, cert_file, key_file}");
    }
    for (const auto &m : t.GetObject()) {
      std::string k(m.name.GetString(), m.name.GetStringLength());
      if (!m.value.IsString()) {
        throw sdk::ConfigError("tls", "tls." + k + " must be a string (a file path)");
      }
      std::string v(m.value.GetString(), m.value.GetStringLength());
      if (k == "ca_file") {
        s.ca_file = v;
      } else if (k == "cert_file") {
        s.cert_file = v;
      } else if (k == "key_file") {
        s.key_file = v;
      } else {
        throw sdk::ConfigError("tls", "unknown key tls." + k + "; allowed: ca_file, cert_file, key_file");
      }
    }
    if (s.cert_file.empty() != s.key_file.empty()) {
      throw sdk::ConfigError("tls", "tls.cert_file and tls.key_file must be given together");
    }
    for (const auto *f : {&s.ca_file, &s.cert_file, &s.key_file}) {
      if (!f->empty() && !std::ifstream(*f)) {
        throw sdk::ConfigError("tls", "cannot read '" + *f + "'");
      }
    }
    if (!s.tls && (!s.ca_file.empty() || !s.cert_file.empty())) {
      throw sdk::ConfigError("tls", "tls settings need an amqps:// url");
    }
  }
  std::string sasl = c.str("sasl");
  if (sasl == "external") {
    if (s.cert_file.empty()) {
      throw sdk::ConfigError("sasl", "sasl: external needs tls.cert_file and tls.key_file");
    }
    s.external = true;
  } else if (sasl == "auto") {
    s.external = !s.cert_file.empty();
  } else if (sasl != "plain") {
    throw sdk::ConfigError("sasl", "sasl must be plain, external or auto");
  }
  auto hb = c.integer("heartbeat");
  if (hb < 0 || hb > 65535) {
    throw sdk::ConfigError("heartbeat", "heartbeat must be between 0 and 65535 seconds");
  }
  s.heartbeat = static_cast<int>(hb);
  s.connect_timeout = c.number("connect_timeout");
  if (!(s.connect_timeout > 0)) {
    throw sdk::ConfigError("connect_timeout", "connect_timeout must be positive");
  }
  s.max_delay = c.number("reconnect_max_delay");
  if (!(s.max_delay > 0)) {
    throw sdk::ConfigError("reconnect_max_delay", "reconnect_max_delay must be positive");
  }
  s.app = c.str("app");
  return s;
}

std::chrono::milliseconds Backoff::next() {
  // 0.5 s, 1 s, 2 s, ... capped; each with +-25 % jitter so a fleet does not retry in step.
  double base = 0.5 * std::pow(2.0, std::min(attempt_, 20));
  ++attempt_;
  if (base > max_s_) {
    base = max_s_;
  }
  std::uniform_real_distribution<double> jitter(0.75, 1.25);
  double d = std::min(base * jitter(rng_), max_s_);
  if (attempt_ == 1 && d > 0.9) {
    d = 0.9;  // the first retry always comes within a second
  }
  return std::chrono::milliseconds(static_cast<std::int64_t>(d * 1000));
}

namespace {

#ifdef SY_AMQP_HAVE_OPENSSL
/// The reason of the newest error in this thread's OpenSSL error queue ("tlsv13 alert
/// certificate required"), or "" when there is none. rabbitmq-c reports every TLS problem as
/// "a SSL error occurred"; the queue still holds the real one after it returns.
std::string opensslReason() {
  unsigned long e = ERR_peek_last_error();
  if (e == 0) {
    return {};
  }
  const char *r = ERR_reason_error_string(e);
  return r != nullptr ? std::string(r) : fmt::format("OpenSSL error {:#x}", e);
}
void clearOpenssl() { ERR_clear_error(); }

/// Set when the broker asked this thread's connection for a client certificate that is not
/// configured: a broker that then ends the connection requires one, whatever reached us
/// (the alert, or only a reset when the socket closed before the alert was read).
thread_local bool t_cert_requested = false;
int noClientCertificate(SSL *, X509 **, EVP_PKEY **) {
  t_cert_requested = true;
  return 0;  // none: the handshake goes on without one
}
void watchCertificateRequest(amqp_socket_t *sock) {
  t_cert_requested = false;
  auto *ctx = static_cast<SSL_CTX *>(amqp_ssl_socket_get_context(sock));
  if (ctx != nullptr) {
    SSL_CTX_set_client_cert_cb(ctx, noClientCertificate);
  }
}
bool certificateRequested() { return t_cert_requested; }
#else
std::string opensslReason() { return {}; }
void clearOpenssl() {}
void watchCertificateRequest(amqp_socket_t *) {}
bool certificateRequested() { return false; }
#endif

bool contains(const std::string &s, std::string_view what) { return s.find(what) != std::string::npos; }

/// A TLS failure whose OpenSSL reason is an alert from the broker about our certificate.
/// Fills @p e as permanent when it is; returns false otherwise.
bool classifyTlsAlert(const Settings &s, const std::string &reason, ConnectError &e) {
  if (s.cert_file.empty() && (contains(reason, "certificate required") || contains(reason, "handshake failure") ||
                              certificateRequested())) {
    e.kind = Failure::Tls;
    e.message = "the broker requires a TLS client certificate and none is configured (" +
                (reason.empty() ? std::string("it asked for one, then closed the connection")
                                : "TLS alert: " + reason) +
                ")";
    e.fix = "set tls.cert_file and tls.key_file to a client certificate signed by a CA the broker trusts";
    return true;
  }
  if (reason.empty()) {
    return false;
  }
  if (!s.cert_file.empty() && (contains(reason, "unknown ca") || contains(reason, "bad certificate") ||
                               contains(reason, "certificate unknown") || contains(reason, "certificate expired") ||
                               contains(reason, "certificate revoked") || contains(reason, "unsupported certificate"))) {
    e.kind = Failure::Tls;
    e.message = "the broker refused the client certificate '" + s.cert_file + "' (TLS alert: " + reason + ")";
    e.fix = "use a valid client certificate signed by a CA in the broker's ssl_options.cacertfile";
    return true;
  }
  return false;
}

}  // namespace

std::chrono::milliseconds retryDelay(PluginContext &ctx, Backoff &backoff, std::string_view url,
                                     const ConnectError &err) noexcept {
  auto d = backoff.next();
  if (err.permanent()) {
    ctx.counter("permanent_errors", failureName(err.kind)).add();
    ctx.log().error("cannot connect to {}: {}; this will not fix itself; retrying in {} ms", url, err.text(),
                    d.count());
  } else {
    ctx.log().warn("cannot connect to {}: {}; retrying in {} ms", url, err.text(), d.count());
  }
  return d;
}

const char *failureName(Failure f) noexcept {
  switch (f) {
    case Failure::Transient: return "transient";
    case Failure::Credentials: return "credentials";
    case Failure::Vhost: return "vhost";
    case Failure::Declaration: return "declaration";
    case Failure::Access: return "access";
    case Failure::Tls: return "tls";
  }
  return "unknown";
}

void classifyDeclare(const amqp_rpc_reply_t &r, const std::string &what, ConnectError &e) {
  int code = replyCode(r);
  if (code == 406) {
    e.kind = Failure::Declaration;
    e.fix = what + " already exists with other properties: make the configuration match it (arguments, durable, "
                   "auto_delete, exchange_type) or delete it on the broker so it can be declared again";
  } else if (code == 403) {
    e.kind = Failure::Access;
    e.fix = "grant the user the permission on " + what +
            " (rabbitmqctl set_permissions), or use passive: true / declare_exchange: false to only check it";
  }
}

bool Connection::open(const Settings &s, ConnectError &error, double timeout_s) {
  drop();
  clearOpenssl();
  error = ConnectError{};
  state_ = amqp_new_connection();
  if (state_ == nullptr) {
    error.message = "out of memory";
    return false;
  }
  amqp_socket_t *sock = nullptr;
  if (s.tls) {
    sock = amqp_ssl_socket_new(state_);
    if (sock == nullptr) {
      error.message = "cannot create a TLS socket";
      drop();
      return false;
    }
    amqp_ssl_socket_set_verify_peer(sock, 1);
    amqp_ssl_socket_set_verify_hostname(sock, 1);
    if (!s.ca_file.empty()) {
      int rc = amqp_ssl_socket_set_cacert(sock, s.ca_file.c_str());
      if (rc != AMQP_STATUS_OK) {
        std::string why = opensslReason();
        error.kind = Failure::Tls;
        error.message = "cannot use tls.ca_file '" + s.ca_file + "': " + (why.empty() ? describeStatus(rc) : why);
        error.fix = "tls.ca_file must be a readable PEM file with the CA certificate(s) of the broker";
        drop();
        return false;
      }
    }
    if (s.cert_file.empty()) {
      watchCertificateRequest(sock);
    } else {
      int rc = amqp_ssl_socket_set_key(sock, s.cert_file.c_str(), s.key_file.c_str());
      if (rc != AMQP_STATUS_OK) {
        std::string why = opensslReason();
        error.kind = Failure::Tls;
        error.message = "cannot use the client certificate tls.cert_file '" + s.cert_file + "' with tls.key_file '" +
                        s.key_file + "': " + (why.empty() ? describeStatus(rc) : why);
        error.fix = "tls.cert_file must be a PEM certificate and tls.key_file its unencrypted PEM private key";
        drop();
        return false;
      }
    }
  } else {
    sock = amqp_tcp_socket_new(state_);
    if (sock == nullptr) {
      error.message = "cannot create a socket";
      drop();
      return false;
    }
  }
  timeval tv = toTimeval(timeout_s > 0 ? std::min(timeout_s, s.connect_timeout) : s.connect_timeout);
  clearOpenssl();
  int rc = amqp_socket_open_noblock(sock, s.host.c_str(), s.port, &tv);
  if (rc != AMQP_STATUS_OK) {
    std::string why = s.tls ? opensslReason() : std::string();
    // Our own verdict on the broker's certificate (wrong CA, wrong name) is not about ours.
    bool ours_to_judge = rc == AMQP_STATUS_SSL_PEER_VERIFY_FAILED || rc == AMQP_STATUS_SSL_HOSTNAME_VERIFY_FAILED;
    if (!s.tls || ours_to_judge || !classifyTlsAlert(s, why, error)) {
      error.message = "connect to " + s.host + ":" + std::to_string(s.port) + " failed: " + describeStatus(rc) +
                      (why.empty() ? "" : " (" + why + ")");
    }
    drop();
    return false;
  }
  // A broker that stops reading (resource alarm, dead peer) must not block a send forever.
  timeval rpc_tv = toTimeval(s.connect_timeout);
  int fdv = amqp_get_sockfd(state_);
  if (fdv >= 0) {
    (void)::setsockopt(fdv, SOL_SOCKET, SO_SNDTIMEO, &rpc_tv, sizeof rpc_tv);
  }
  (void)amqp_set_handshake_timeout(state_, &tv);
  (void)amqp_set_rpc_timeout(state_, &tv);

  // rabbitmq-c advertises neither connection.blocked nor consumer_cancel_notify: without
  // them RabbitMQ sends neither notification (reliability.md 2.9).
  std::vector<amqp_table_entry_t> caps = {
      boolEntry("publisher_confirms"),    boolEntry("consumer_cancel_notify"),
      boolEntry("connection.blocked"),    boolEntry("basic.nack"),
      boolEntry("authentication_failure_close"), boolEntry("exchange_exchange_bindings"),
  };
  static const std::string kProduct = "switchyard";
  static const std::string kVersion = "0.1.0";
  std::vector<amqp_table_entry_t> props = {strEntry("product", kProduct), strEntry("version", kVersion),
                                           strEntry("app", s.app)};
  amqp_table_entry_t ce{};
  ce.key = amqp_cstring_bytes("capabilities");
  ce.value.kind = AMQP_FIELD_KIND_TABLE;
  ce.value.value.table = amqp_table_t{static_cast<int>(caps.size()), caps.data()};
  props.push_back(ce);
  amqp_table_t table{static_cast<int>(props.size()), props.data()};

  amqp_rpc_reply_t r;
  // EXTERNAL: RabbitMQ takes the user from the certificate and ignores the identity sent,
  // but rabbitmq-c 0.11 fails with "could not allocate memory" on an empty identity.
  if (s.external) {
    r = amqp_login_with_properties(state_, s.vhost.c_str(), 0, 131072, s.heartbeat, &table,
                                   AMQP_SASL_METHOD_EXTERNAL, s.user.empty() ? "external" : s.user.c_str());
  } else {
    r = amqp_login_with_properties(state_, s.vhost.c_str(), 0, 131072, s.heartbeat, &table,
                                   AMQP_SASL_METHOD_PLAIN, s.user.c_str(), s.password.c_str());
  }
  if (r.reply_type != AMQP_RESPONSE_NORMAL) {
    std::string who = s.external ? "EXTERNAL (client certificate)" : "PLAIN user '" + s.user + "'";
    error.message = "login to " + s.host + ":" + std::to_string(s.port) + " (vhost '" + s.vhost + "', " + who +
                    ") failed: " + describe(r);
    int code = replyCode(r);
    if (code == 403) {
      error.kind = Failure::Credentials;
      error.fix = s.external ? "the broker knows no user for the client certificate's name: add it (rabbitmqctl "
                               "add_user) or use another certificate"
                             : "check the user name and the password in url / password_file (rabbitmqctl "
                               "authenticate_user tests them)";
    } else if (code == 530) {
      error.kind = Failure::Vhost;
      error.fix = "vhost '" + s.vhost + "' does not exist or user '" + s.user +
                  "' has no permission on it: create it (rabbitmqctl add_vhost), grant access (set_permissions -p), "
                  "or fix the url's path (%2F is the vhost '/')";
    } else if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && s.tls) {
      std::string why = opensslReason();
      ConnectError tls;
      if (classifyTlsAlert(s, why, tls)) {
        error = tls;
      } else if (!why.empty()) {
        error.message += " (" + why + ")";
      }
    }
    drop();
    return false;
  }
  return true;
}

void Connection::setRpcTimeout(double s) noexcept {
  if (state_ != nullptr) {
    timeval tv = toTimeval(s);
    (void)amqp_set_rpc_timeout(state_, &tv);
  }
}

void Connection::close() noexcept {
  if (state_ == nullptr) {
    return;
  }
  (void)amqp_connection_close(state_, AMQP_REPLY_SUCCESS);
  drop();
}

void Connection::drop() noexcept {
  if (state_ != nullptr) {
    amqp_destroy_connection(state_);
    state_ = nullptr;
  }
}

int Connection::fd() const noexcept { return state_ == nullptr ? -1 : amqp_get_sockfd(state_); }

bool Connection::hasBuffered() const noexcept {
  return state_ != nullptr && (amqp_frames_enqueued(state_) != 0 || amqp_data_in_buffer(state_) != 0);
}

std::string describeStatus(int status) { return amqp_error_string2(status); }

std::string describe(const amqp_rpc_reply_t &r) {
  switch (r.reply_type) {
    case AMQP_RESPONSE_NORMAL: return "ok";
    case AMQP_RESPONSE_NONE: return "missing RPC reply";
    case AMQP_RESPONSE_LIBRARY_EXCEPTION: return describeStatus(r.library_error);
    case AMQP_RESPONSE_SERVER_EXCEPTION:
      if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
        auto *m = static_cast<amqp_connection_close_t *>(r.reply.decoded);
        return "connection closed by broker: " + std::to_string(m->reply_code) + " " +
               std::string(static_cast<char *>(m->reply_text.bytes), m->reply_text.len);
      }
      if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
        auto *m = static_cast<amqp_channel_close_t *>(r.reply.decoded);
        return "channel closed by broker: " + std::to_string(m->reply_code) + " " +
               std::string(static_cast<char *>(m->reply_text.bytes), m->reply_text.len);
      }
      return "unexpected server method " + std::to_string(r.reply.id);
  }
  return "unknown reply";
}

int replyCode(const amqp_rpc_reply_t &r) {
  if (r.reply_type != AMQP_RESPONSE_SERVER_EXCEPTION) {
    return 0;
  }
  if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
    return static_cast<amqp_connection_close_t *>(r.reply.decoded)->reply_code;
  }
  if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
    return static_cast<amqp_channel_close_t *>(r.reply.decoded)->reply_code;
  }
  return 0;
}

void sendChannelCloseOk(amqp_connection_state_t st, amqp_channel_t ch) noexcept {
  amqp_channel_close_ok_t ok{};
  (void)amqp_send_method(st, ch, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
}

void sendConnectionCloseOk(amqp_connection_state_t st) noexcept {
  amqp_connection_close_ok_t ok{};
  (void)amqp_send_method(st, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
}

// --- JSON -> AMQP table ---------------------------------------------------------------

amqp_bytes_t TableArena::bytes(std::string_view s) {
  strings_.emplace_back(s);
  auto &str = strings_.back();
  return amqp_bytes_t{str.size(), str.data()};
}

void TableArena::clear() {
  strings_.clear();
  tables_.clear();
  arrays_.clear();
}

bool TableArena::fromJson(const rapidjson::Value &obj, std::vector<amqp_table_entry_t> &out,
                          std::string &error) {
  if (!obj.IsObject()) {
    error = "headers are not a JSON object";
    return false;
  }
  for (const auto &m : obj.GetObject()) {
    amqp_table_entry_t e{};
    if (m.name.GetStringLength() > 128) {
      error = "header name longer than 128 bytes";
      return false;
    }
    e.key = bytes({m.name.GetString(), m.name.GetStringLength()});
    if (!value(m.value, e.value, error, 1)) {
      return false;
    }
    out.push_back(e);
  }
  return true;
}

bool TableArena::value(const rapidjson::Value &v, amqp_field_value_t &out, std::string &error, int depth) {
  if (depth > 32) {
    error = "headers nested deeper than 32 levels";
    return false;
  }
  // Types mirror pika's choices so fedora-messaging reads them: int -> I or l, bool -> t,
  // str -> S, dict -> F, list -> A, None -> V; doubles as d (pika decodes them).
  if (v.IsNull()) {
    out.kind = AMQP_FIELD_KIND_VOID;
  } else if (v.IsBool()) {
    out.kind = AMQP_FIELD_KIND_BOOLEAN;
    out.value.boolean = v.GetBool() ? 1 : 0;
  } else if (v.IsInt()) {
    out.kind = AMQP_FIELD_KIND_I32;
    out.value.i32 = v.GetInt();
  } else if (v.IsInt64()) {
    out.kind = AMQP_FIELD_KIND_I64;
    out.value.i64 = v.GetInt64();
  } else if (v.IsNumber()) {
    // Not `d`: pika (Debian 12) decodes doubles with long(), so 1.5 would arrive as 1.
    // A decimal (scale + int32) is exact for the usual values; anything else is sent as
    // its JSON text (`S`) rather than silently rounded.
    double d = v.GetDouble();
    bool done = false;
    for (int scale = 0; scale <= 9 && !done; ++scale) {
      double scaled = d * std::pow(10.0, scale);
      double r = std::round(scaled);
      if (std::fabs(r) <= 2147483647.0 && std::fabs(scaled - r) <= 1e-9 * std::max(1.0, std::fabs(scaled))) {
        out.kind = AMQP_FIELD_KIND_DECIMAL;
        out.value.decimal.decimals = static_cast<std::uint8_t>(scale);
        out.value.decimal.value = static_cast<std::uint32_t>(static_cast<std::int32_t>(r));
        done = true;
      }
    }
    if (!done) {
      rapidjson::StringBuffer sb;
      rapidjson::Writer<rapidjson::StringBuffer> w(sb);
      v.Accept(w);
      out.kind = AMQP_FIELD_KIND_UTF8;
      out.value.bytes = bytes({sb.GetString(), sb.GetSize()});
    }
  } else if (v.IsString()) {
    out.kind = AMQP_FIELD_KIND_UTF8;
    out.value.bytes = bytes({v.GetString(), v.GetStringLength()});
  } else if (v.IsObject()) {
    tables_.emplace_back();
    auto &entries = tables_.back();
    entries.reserve(v.MemberCount());
    for (const auto &m : v.GetObject()) {
      amqp_table_entry_t e{};
      e.key = bytes({m.name.GetString(), m.name.GetStringLength()});
      if (!value(m.value, e.value, error, depth + 1)) {
        return false;
      }
      entries.push_back(e);
    }
    out.kind = AMQP_FIELD_KIND_TABLE;
    out.value.table = amqp_table_t{static_cast<int>(entries.size()), entries.data()};
  } else if (v.IsArray()) {
    arrays_.emplace_back();
    auto &items = arrays_.back();
    items.reserve(v.Size());
    for (const auto &x : v.GetArray()) {
      amqp_field_value_t fv{};
      if (!value(x, fv, error, depth + 1)) {
        return false;
      }
      items.push_back(fv);
    }
    out.kind = AMQP_FIELD_KIND_ARRAY;
    out.value.array = amqp_array_t{static_cast<int>(items.size()), items.data()};
  } else {
    error = "unsupported header value";
    return false;
  }
  return true;
}

// --- AMQP table -> JSON ---------------------------------------------------------------

namespace {

using JsonWriter = rapidjson::Writer<rapidjson::StringBuffer>;

void writeString(JsonWriter &w, const amqp_bytes_t &b) {
  std::string_view s(static_cast<const char *>(b.bytes), b.len);
  if (fedmsg::isValidUtf8(s)) {
    w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
    return;
  }
  // Binary or broken text: keep the ASCII, replace the rest, so the headers stay valid JSON.
  std::string fixed;
  for (unsigned char c : s) {
    if (c < 0x80) {
      fixed += static_cast<char>(c);
    } else {
      fixed += "\xEF\xBF\xBD";
    }
  }
  w.String(fixed.data(), static_cast<rapidjson::SizeType>(fixed.size()));
}

void writeValue(JsonWriter &w, const amqp_field_value_t &v, int depth);

void writeTable(JsonWriter &w, const amqp_table_t &t, int depth) {
  w.StartObject();
  for (int i = 0; i < t.num_entries; ++i) {
    writeString(w, t.entries[i].key);
    writeValue(w, t.entries[i].value, depth + 1);
  }
  w.EndObject();
}

void writeValue(JsonWriter &w, const amqp_field_value_t &v, int depth) {
  if (depth > 64) {
    w.Null();
    return;
  }
  switch (v.kind) {
    case AMQP_FIELD_KIND_BOOLEAN: w.Bool(v.value.boolean != 0); break;
    case AMQP_FIELD_KIND_I8: w.Int(v.value.i8); break;
    case AMQP_FIELD_KIND_U8: w.Uint(v.value.u8); break;
    case AMQP_FIELD_KIND_I16: w.Int(v.value.i16); break;
    case AMQP_FIELD_KIND_U16: w.Uint(v.value.u16); break;
    case AMQP_FIELD_KIND_I32: w.Int(v.value.i32); break;
    case AMQP_FIELD_KIND_U32: w.Uint(v.value.u32); break;
    case AMQP_FIELD_KIND_I64: w.Int64(v.value.i64); break;
    case AMQP_FIELD_KIND_U64:
    case AMQP_FIELD_KIND_TIMESTAMP: w.Uint64(v.value.u64); break;
    case AMQP_FIELD_KIND_F32:
      if (std::isfinite(v.value.f32)) {
        w.Double(v.value.f32);
      } else {
        w.Null();
      }
      break;
    case AMQP_FIELD_KIND_F64:
      if (std::isfinite(v.value.f64)) {
        w.Double(v.value.f64);
      } else {
        w.Null();
      }
      break;
    case AMQP_FIELD_KIND_DECIMAL:
      // The value is a signed 32-bit integer on the wire.
      w.Double(static_cast<double>(static_cast<std::int32_t>(v.value.decimal.value)) /
               std::pow(10.0, v.value.decimal.decimals));
      break;
    case AMQP_FIELD_KIND_UTF8:
    case AMQP_FIELD_KIND_BYTES: writeString(w, v.value.bytes); break;
    case AMQP_FIELD_KIND_TABLE: writeTable(w, v.value.table, depth); break;
    case AMQP_FIELD_KIND_ARRAY:
      w.StartArray();
      for (int i = 0; i < v.value.array.num_entries; ++i) {
        writeValue(w, v.value.array.entries[i], depth + 1);
      }
      w.EndArray();
      break;
    case AMQP_FIELD_KIND_VOID:
    default: w.Null(); break;
  }
}

}  // namespace

void tableToJson(const amqp_table_t &table, std::string &out) {
  rapidjson::StringBuffer sb;
  JsonWriter w(sb);
  writeTable(w, table, 0);
  out.assign(sb.GetString(), sb.GetSize());
}

}  // namespace switchyard::amqp
