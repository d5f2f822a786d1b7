// SPDX-License-Identifier: MIT
//
// zmq-pub (sink): publishes messages as fedmsg ([topic, json envelope]) on a ZeroMQ XPUB
// socket. See docs/plugins/zmq-pub.md.
//
// The files, by concern:
//   zmq_pub_config.cpp  the schema, the settings, the factory (one per configured place,
//                       holding the settings and the engine's ZeroMQ context)
//   zmq_pub.cpp         the sink: the envelope, subscriptions, slow subscribers, `i` order
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "zmq_common.hpp"

namespace switchyard::zmqt {

/// zmq-pub's validated configuration; immutable once the factory made it.
struct PubSettings {
  std::vector<std::string> endpoints;
  bool bind = true;
  int hwm = static_cast<int>(kDefaultHwm);
  bool no_drop = false;
  std::int64_t send_timeout_ms = -1;
  int linger_ms = static_cast<int>(kDefaultLinger);
  double wait_for_subscriber_s = 0;
  double subscriber_grace_s = 10;
  bool retry_unsubscribed = true;  ///< no_subscriber: retry
  bool drop_for_all = false;       ///< slow_subscriber: drop
  std::chrono::milliseconds reorder_timeout{200};
  std::size_t reorder_window = 1024;
  SocketTuning tuning;
  fedmsg::Limits limits;
  std::string username;  ///< of the envelopes the sink builds; resolved, never empty

  static PubSettings fromConfig(const sdk::Config &c);
  /// Sockets of one instance: the XPUB (connect mode: with libzmq's monitor PAIR and ours).
  [[nodiscard]] int contextSockets() const { return bind ? 1 : 3; }
};

/// A zmq-pub instance (zmq_pub.cpp) whose socket lives in @p zctx.
std::unique_ptr<Sink> makeZmqPubSink(const PubSettings &settings, std::shared_ptr<zmq::context_t> zctx);

}  // namespace switchyard::zmqt
