// SPDX-License-Identifier: MIT
//
// `switchyard check --connect` for amqp-consume and amqp-publish (Plugin::probe): one
// connection like start() opens it (TCP, TLS handshake with the configured files, SASL
// login, vhost), then passive checks of the exchanges and queues the plugin would use;
// nothing is declared, bound or consumed. Each result is reported on its own line, named
// by the URL without its password or by the entity and that URL.
#pragma once

#include <chrono>
#include <string>

#include "amqp_common.hpp"

namespace switchyard::amqp {

/// The URL as probe results name it: the password left out ("amqp://user@host:5672/%2F").
std::string urlWithoutPassword(const Settings &s);

/// One probe's connection. THREADING: the probing thread only.
class Prober {
 public:
  Prober(const Settings &s, ProbeReport &report, std::chrono::milliseconds timeout);
  Prober(const Prober &) = delete;
  Prober &operator=(const Prober &) = delete;
  ~Prober() { conn_.close(); }

  /// Connects, logs in and opens a channel; reports the URL's result, for a list of URLs
  /// each node's. False when no node could be used (nothing more can be checked).
  bool connect();
  /// Checks that exchange @p name exists (exchange.declare, passive); reports it. When it
  /// does not exist: fine if @p declared_at_start (start() declares it), else a failure
  /// that says what to do (@p fix).
  void exchange(const std::string &name, bool declared_at_start, const std::string &fix);
  /// The same for queue @p name (queue.declare, passive).
  void queue(const std::string &name, bool declared_at_start, const std::string &fix);

 private:
  /// A passive declare's reply: 0 when the entity exists, else the broker's reply code
  /// (404 absent, 403 refused), or -1 when the connection failed (@p why says how).
  int passive(bool is_queue, const std::string &name, std::string &why);
  bool openChannel(std::string &why);
  /// One attempt on the node in use through @p conn, reported; true when it is usable.
  bool reportNode(Connection &conn);
  /// channel.open on a connection other than conn_ (a further node of the list).
  static bool probeChannel(Connection &conn, std::string &why);
  double leftSeconds() const;

  Settings settings_;  ///< a copy: connect() moves it through the nodes of the list
  ProbeReport &report_;
  const std::chrono::steady_clock::time_point deadline_;
  std::string where_;  ///< the node the passive checks run on
  Connection conn_;
  amqp_channel_t channel_ = 0;
};

}  // namespace switchyard::amqp
