// SPDX-License-Identifier: MIT
//
// One AMQP connection of rabbitmq-c: socket, TLS (with the failures rabbitmq-c does not
// name), SASL login, frame reading; RPC reply descriptions and the close handshakes.
// THREADING: one Connection per plugin instance, used from that instance's thread only.
#pragma once

#include <amqp.h>
#include <amqp_framing.h>

#include <string>

#include "amqp_common.hpp"

namespace switchyard::amqp {

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
  /// The plugins' attempts (failover, amqp_failover.cpp): before every attempt of this
  /// Connection but the first -- the previous one failed or its connection was lost --
  /// moves @p s to the next node of its `url` list, then opens as above.
  bool open(Settings &s, ConnectError &error, double timeout_s = 0);
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
  /// Set by the TLS client-certificate callback of this connection's handshake when the
  /// broker asked for a certificate that is not configured (see Connection::open()).
  bool cert_requested_ = false;
  /// open(Settings &) ran before: the next one moves to the next node.
  bool attempted_ = false;
};

/// A readable description of an RPC reply ("channel closed by broker: 403 ACCESS_REFUSED ...").
std::string describe(const amqp_rpc_reply_t &r);
/// The reply code of a server close in @p r (0 if it is not one).
int replyCode(const amqp_rpc_reply_t &r);
std::string describeStatus(int status);

/// Sends channel.close-ok / connection.close-ok after a server close method.
void sendChannelCloseOk(amqp_connection_state_t st, amqp_channel_t ch) noexcept;
void sendConnectionCloseOk(amqp_connection_state_t st) noexcept;

}  // namespace switchyard::amqp
