// SPDX-License-Identifier: MIT
#include "amqp_connection.hpp"

#include <amqp_ssl_socket.h>
#include <amqp_tcp_socket.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <algorithm>

#ifdef SY_AMQP_HAVE_OPENSSL
#include <openssl/err.h>
#include <openssl/ssl.h>
#endif


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

/// The broker asked for a client certificate that is not configured: a broker that then
/// ends the connection requires one, whatever reached us (the alert, or only a reset when
/// the socket closed before the alert was read). The flag is the connection's own
/// (Connection::cert_requested_), found through the socket's SSL_CTX (rabbitmq-c makes one
/// per socket) under an ex_data index of ours.
int certFlagIndex() {
  static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}
int noClientCertificate(SSL *ssl, X509 **, EVP_PKEY **) {
  auto *flag = static_cast<bool *>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), certFlagIndex()));
  if (flag != nullptr) {
    *flag = true;
  }
  return 0;  // none: the handshake goes on without one
}
void watchCertificateRequest(amqp_socket_t *sock, bool &flag) {
  flag = false;
  auto *ctx = static_cast<SSL_CTX *>(amqp_ssl_socket_get_context(sock));
  if (ctx != nullptr && certFlagIndex() >= 0 && SSL_CTX_set_ex_data(ctx, certFlagIndex(), &flag) == 1) {
    SSL_CTX_set_client_cert_cb(ctx, noClientCertificate);
  }
}
#else
std::string opensslReason() { return {}; }
void clearOpenssl() {}
void watchCertificateRequest(amqp_socket_t *, bool &flag) { flag = false; }
#endif

bool contains(const std::string &s, std::string_view what) { return s.find(what) != std::string::npos; }

/// A TLS failure whose OpenSSL reason is an alert from the broker about our certificate.
/// Fills @p e as permanent when it is; returns false otherwise.
bool classifyTlsAlert(const Settings &s, const std::string &reason, bool cert_requested, ConnectError &e) {
  if (s.cert_file.empty() && (contains(reason, "certificate required") || contains(reason, "handshake failure") ||
                              cert_requested)) {
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
      watchCertificateRequest(sock, cert_requested_);
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
    if (!s.tls || ours_to_judge || !classifyTlsAlert(s, why, cert_requested_, error)) {
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
  // them RabbitMQ sends neither notification.
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
      if (classifyTlsAlert(s, why, cert_requested_, tls)) {
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

}  // namespace switchyard::amqp
