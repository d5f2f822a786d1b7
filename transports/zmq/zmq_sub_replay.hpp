// SPDX-License-Identifier: MIT
//
// zmq-sub's gap backfill (docs/plugins/zmq-sub.md, "Replay (gap backfill)"): for each
// publisher name that replay_endpoints names, the last `seq_id` seen; a gap in it is asked
// for from the publisher's replay endpoint (fedmsg's REQ/REP protocol,
// switchyard/replay.hpp) while that publisher's newer messages are held; the recovered
// messages and then the held ones are handed back in seq_id order.
//
// Unlike fedmsg's check_for_replay, the query asks for the gap only ([last+1, seq_id-1]),
// and waits at most replay_timeout: the REQ socket is in the source's epoll set, so one
// publisher's replay never stops the others; after a timeout the REQ socket is closed and
// made again for the next query (a REQ socket that got no answer cannot send again).
//
// THREADING: the source's thread only.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "zmq_common.hpp"

namespace switchyard::zmqt {

struct ReplaySettings {
  std::map<std::string, std::string> endpoints;  // publisher name -> replay endpoint
  std::int64_t timeout_ms = 5000;
  std::int64_t max_gap = 1000;
  std::size_t hold = 10000;
};

/// The `seq_id` of a decoded message, if it has an integer one.
std::optional<std::int64_t> seqIdOf(const Message &m);

class ReplayClient {
 public:
  using Clock = std::chrono::steady_clock;

  /// A message to submit: a held one (read from the SUB socket @p endpoint) or a
  /// backfilled one (from the replay endpoint of the publisher read on @p endpoint).
  struct Item {
    Message msg;
    std::string endpoint;
    bool backfilled = false;
    std::int64_t seq = 0;
  };
  enum class Verdict { Pass, Drop, Held };

  ReplayClient(const ReplaySettings &s, const fedmsg::Limits &limits);
  ReplayClient(const ReplayClient &) = delete;
  ReplayClient &operator=(const ReplayClient &) = delete;
  ~ReplayClient();

  [[nodiscard]] bool active() const noexcept { return !pubs_.empty(); }
  /// Registers the counters; REQ sockets are made in @p zctx and watched in @p epoll_fd
  /// with epoll data @p bit | their index.
  void start(SourceContext &ctx, std::shared_ptr<zmq::context_t> zctx, int epoll_fd, std::uint32_t bit);

  /// A message of publisher @p name read on @p endpoint, in its connection number
  /// @p generation: Pass (submit it now, after what takeReady() gives), Drop (a late
  /// duplicate, counted) or Held (taken).
  Verdict onMessage(SourceContext &ctx, const std::string &name, Message &m, const std::string &endpoint,
                    std::uint64_t generation);
  /// The REQ socket @p idx signalled.
  void onReadable(SourceContext &ctx, std::uint32_t idx);
  /// Timeouts. Call every poll.
  void housekeeping(SourceContext &ctx);
  /// Milliseconds until the next replay deadline (-1: none).
  [[nodiscard]] int msUntilDeadline() const;
  /// What is ready to submit, in order (the caller submits it before a Pass message).
  std::vector<Item> takeReady();
  [[nodiscard]] bool hasReady() const noexcept { return !ready_.empty(); }
  /// Shutdown: every open replay is given up (unrecoverable) and the held messages made ready.
  void abandonAll(SourceContext &ctx);
  void close() noexcept;

 private:
  struct Pub {
    std::string name;
    std::string endpoint;  // the replay endpoint
    std::optional<zmq::socket_t> req;
    int req_fd = -1;
    std::optional<std::int64_t> last;
    std::deque<std::pair<std::int64_t, std::int64_t>> ranges;  // the first one is asked for
    bool waiting = false;
    Clock::time_point deadline;
    std::string sub_endpoint;  // where the gap was seen (for the backfilled messages' metadata)
    std::vector<Item> held;
    std::vector<Item> recovered;
    std::map<std::string, std::uint64_t> generation;  // SUB endpoint -> connection of its last message
  };

  void ask(SourceContext &ctx, std::uint32_t idx);
  void answered(SourceContext &ctx, Pub &p, std::vector<zmq::message_t> &frames);
  void failed(SourceContext &ctx, Pub &p, const std::string &why, bool all = false);
  void next(SourceContext &ctx, std::uint32_t idx);
  void release(Pub &p);
  void closeReq(Pub &p) noexcept;

  ReplaySettings settings_;
  fedmsg::Limits limits_;
  std::vector<Pub> pubs_;
  std::map<std::string, std::uint32_t> by_name_;
  std::vector<Item> ready_;
  std::shared_ptr<zmq::context_t> zctx_;
  int epoll_fd_ = -1;
  std::uint32_t bit_ = 0;
  DropLog log_;

  Counter *backfilled_ = nullptr;
  Counter *unrecoverable_ = nullptr;
  Counter *duplicates_ = nullptr;
  Counter *restarts_ = nullptr;
  Counter *queries_ = nullptr;
  Counter *timeouts_ = nullptr;
  Counter *errors_ = nullptr;
  Gauge *held_ = nullptr;
  std::int64_t held_count_ = 0;
};

}  // namespace switchyard::zmqt
