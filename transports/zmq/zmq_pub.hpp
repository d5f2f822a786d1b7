// SPDX-License-Identifier: MIT
//
// zmq-pub (sink): publishes messages as fedmsg ([topic, json envelope]) on a ZeroMQ XPUB
// socket. See docs/plugins/zmq-pub.md.
//
// The files, by concern:
//   zmq_pub_config.cpp  the schema, the settings, the factory (one per configured place,
//                       holding the settings and the engine's ZeroMQ context)
//   zmq_pub.cpp         the sink: the envelope, subscriptions, slow subscribers, `i` order
//   zmq_pub_replay.cpp  replay (replay_endpoint): seq_id numbering, the replay store, and
//                       the endpoint (zmq_replay_server.cpp)
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
  // Replay (zmq_pub_replay.hpp): on when replay_endpoint is set.
  std::string replay_endpoint;
  std::size_t replay_max_messages = 100000;
  std::size_t replay_max_bytes = 256u << 20;
  std::size_t replay_max_reply = 10000;
  std::string replay_database;  ///< empty: the in-memory store
  std::string replay_name;      ///< empty: the pipeline's name

  static PubSettings fromConfig(const sdk::Config &c);
  /// Sockets of one instance: the XPUB (connect mode: with libzmq's monitor PAIR and ours).
  /// With replay_endpoint, one more: the replay endpoint's REP.
  [[nodiscard]] int contextSockets() const { return (bind ? 1 : 3) + (replay_endpoint.empty() ? 0 : 1); }
};

/// A zmq-pub instance (zmq_pub.cpp) whose socket lives in @p zctx.
std::unique_ptr<Sink> makeZmqPubSink(const PubSettings &settings, std::shared_ptr<zmq::context_t> zctx);

}  // namespace switchyard::zmqt
