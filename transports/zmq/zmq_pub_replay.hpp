// SPDX-License-Identifier: MIT
//
// zmq-pub's replay side (`replay_endpoint`): numbers every envelope the sink publishes
// with `seq_id` (switchyard::replay::insertSeqId: after any signature, every other byte
// kept), keeps it in the replay store (in memory, bounded; or the message store's
// database with `replay_database`), and runs the replay endpoint (zmq_replay_server.hpp)
// that answers fedmsg's replay queries from that store. See docs/plugins/zmq-pub.md.
//
// THREADING: everything here runs on the sink's thread, except the server's own thread,
// which only reads the store.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include "zmq_pub.hpp"
#include "zmq_replay_server.hpp"

namespace switchyard::zmqt {

class PubReplay {
 public:
  PubReplay(const PubSettings &settings, std::shared_ptr<zmq::context_t> zctx)
      : settings_(settings), zctx_(std::move(zctx)) {}
  ~PubReplay() { stop(); }

  /// Opens the store and binds the endpoint (a fatal Status naming the key otherwise).
  Status start(SinkContext &ctx) noexcept;
  void stop() noexcept;

  /// Numbers @p envelope with the next seq_id and keeps it in the store. Returns the text to
  /// publish: the numbered envelope, or @p envelope itself when it cannot be numbered or
  /// kept (counted: replay_store_failed), which then goes out without a seq_id. A numbered
  /// text larger than @p max_bytes is returned without being kept (the caller drops it as
  /// oversize; its number is used by the next message). @p built: the sink built the
  /// envelope (canonical JSON) rather than passing the message's own one through.
  std::string_view number(SinkContext &ctx, const Message &msg, std::string_view envelope, bool built,
                          std::size_t max_bytes);

  /// Updates the store gauges (at most 4 times a second unless @p force).
  void refreshGauges(bool force) noexcept;

 private:
  using Clock = std::chrono::steady_clock;

  const PubSettings &settings_;
  std::shared_ptr<zmq::context_t> zctx_;
  std::shared_ptr<replay::Store> store_;
  std::unique_ptr<ReplayServer> server_;
  std::string numbered_;
  DropLog drop_log_;
  Counter *store_failed_ = nullptr;
  Gauge *messages_gauge_ = nullptr;
  Gauge *bytes_gauge_ = nullptr;
  Clock::time_point next_gauges_{};
};

}  // namespace switchyard::zmqt
