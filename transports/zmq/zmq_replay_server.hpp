// SPDX-License-Identifier: MIT
//
// zmq-pub's replay endpoint (`replay_endpoint`): fedmsg's REQ/REP replay server on a thread
// of its own. Each request is one frame, a JSON query (switchyard/replay.hpp); the reply
// is a multipart message, one envelope per frame (the exact text zmq-pub published, with
// its seq_id), in seq_id order and at most `replay_max_reply` of them (the first ones), or
// one frame `error: '<reason>'` for a bad query, a query that matches nothing, or a store
// that failed. See docs/plugins/zmq-pub.md, section Replay.
//
// THREADING: start() and stop() on the sink's thread; the socket lives on the server's
// thread from start() on; the store synchronises itself (replay::Store).
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include <zmq.hpp>

#include "switchyard/plugin.hpp"
#include "switchyard/replay.hpp"

namespace switchyard::zmqt {

/// The counters a replay server keeps (thread-safe: Counter is atomic).
struct ReplayCounters {
  Counter *requests = nullptr;      ///< replay_requests: requests answered
  Counter *served = nullptr;        ///< replay_served: envelopes sent in replies
  Counter *bad_query = nullptr;     ///< replay_errors{bad_query}
  Counter *no_match = nullptr;      ///< replay_errors{no_match}
  Counter *store_error = nullptr;   ///< replay_errors{store_error}
  Counter *multipart = nullptr;     ///< replay_errors{multipart}: a request of several frames

  static ReplayCounters from(PluginContext &ctx);
};

class ReplayServer {
 public:
  ReplayServer(std::shared_ptr<zmq::context_t> zctx, std::shared_ptr<replay::Store> store, std::size_t max_reply,
               ReplayCounters counters, Logger &log);
  ~ReplayServer();
  ReplayServer(const ReplayServer &) = delete;
  ReplayServer &operator=(const ReplayServer &) = delete;

  /// Binds @p endpoint and starts answering. A Status naming the endpoint and the key
  /// `replay_endpoint` when it cannot bind.
  Status start(const std::string &endpoint) noexcept;
  /// Stops the thread (within ~100 ms) and closes the socket; idempotent.
  void stop() noexcept;

 private:
  void run() noexcept;
  void answer(zmq::socket_t &sock);

  std::shared_ptr<zmq::context_t> zctx_;
  std::shared_ptr<replay::Store> store_;
  const std::size_t max_reply_;
  ReplayCounters counters_;
  Logger &log_;
  std::unique_ptr<zmq::socket_t> sock_;  ///< made and bound in start(), then the thread's
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace switchyard::zmqt
