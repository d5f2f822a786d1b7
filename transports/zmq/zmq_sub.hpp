// SPDX-License-Identifier: MIT
//
// zmq-sub (source): receives fedmsg messages ([topic, json envelope]) from ZeroMQ PUB
// sockets and submits one Message per envelope, decoded once by the codec (fedmsg.hpp):
// the message carries the decoded envelope (Message::envelope()), which is all that
// sequence tracking and the later stages read. See docs/plugins/zmq-sub.md.
//
//   input:
//     type: zmq-sub
//     endpoints: [tcp://hub.fedoraproject.org:9940]
//     topics: [org.fedoraproject.prod.bodhi.]   # prefixes; default: everything
//
// Connect mode (default) opens one SUB socket per endpoint, as fedmsg does, so that the
// sequence counter `i` is tracked per (endpoint, username). Bind mode (relay inbound:
// active publishers connect to us) uses one socket bound to every endpoint and keys the
// tracking by (endpoint, peer IP address, username).
//
// ZeroMQ cannot acknowledge: the plugin does not set SY_FLAG_CAN_ACK. Backpressure: when
// the pipeline's queues are full, submit() blocks, the socket's receive queue (hwm) fills,
// and libzmq drops beyond it at the publisher; those losses show up as sequence gaps.
// Every malformed message is dropped with a counted reason (see fedmsg.hpp) and a log
// line; nothing a peer sends stops the source.
//
// The files, by concern:
//   zmq_sub_config.cpp   the schema, the settings, the factory (one per configured place,
//                        holding the settings and the engine's ZeroMQ context)
//   zmq_sub.cpp          the source: start, poll, reading and decoding, shutdown drain
//   zmq_sub_sockets.cpp  sockets, epoll, monitors and the reconnect of protocol disconnects
//   zmq_sub_seq.*        sequence tracking glue (SeqTracker, the state file, the verdicts)
//   zmq_sub_replay.*     gap backfill over fedmsg's `seq_id` from the replay endpoints
//   zmq_srv.*            DNS SRV resolution (c-ares, its sockets in the source's epoll set)
//   zmq_sub_srv.cpp      the endpoints that SRV records give: added and removed at run time
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "zmq_common.hpp"
#include "zmq_srv.hpp"
#include "zmq_sub_replay.hpp"
#include "zmq_sub_seq.hpp"

namespace switchyard::zmqt {

/// zmq-sub's validated configuration; immutable once the factory made it.
struct SubSettings {
  std::vector<std::string> endpoints;
  std::vector<std::string> names;  // each endpoint's publisher name (its address for a list)
  bool bind = false;
  std::vector<std::string> topics;  // never empty; "" = everything
  bool all_topics = true;           // "" among the topics: every message matches
  int hwm = static_cast<int>(kDefaultHwm);
  std::int64_t socket_max = 0;      // ZMQ_MAXMSGSIZE, resolved (never 0)
  SocketTuning tuning;
  fedmsg::Limits limits;
  SeqSettings seq;
  ReplaySettings replay;
  std::vector<std::string> srv;      // SRV names
  std::int64_t srv_interval_s = 300;
  std::vector<std::string> dns_servers;

  static SubSettings fromConfig(const sdk::Config &c);
  /// Sockets of one instance: an XSUB per endpoint (one in bind mode), each with libzmq's
  /// monitor PAIR and ours; a REQ per replay endpoint; room for kSrvSocketRoom endpoints
  /// found by SRV (a raise of ZMQ_MAX_SOCKETS, not a limit).
  static constexpr int kSrvSocketRoom = 64;
  [[nodiscard]] int contextSockets() const {
    return 3 * static_cast<int>(bind ? 1 : endpoints.size()) + static_cast<int>(replay.endpoints.size()) +
           (srv.empty() ? 0 : 3 * kSrvSocketRoom);
  }
};

class ZmqSubSource final : public Source {
 public:
  ZmqSubSource(const SubSettings &settings, std::shared_ptr<zmq::context_t> zctx);
  ZmqSubSource(const ZmqSubSource &) = delete;
  ZmqSubSource &operator=(const ZmqSubSource &) = delete;
  ~ZmqSubSource() override;

  /// `switchyard check --connect`: each publisher endpoint resolved and connected to (bind
  /// mode: each address bound and closed again), zmq_probe.hpp.
  Status probe(ProbeReport &report, std::chrono::milliseconds timeout) noexcept override;
  Status start(SourceContext &ctx) noexcept override;
  Status poll(SourceContext &ctx, std::chrono::milliseconds timeout) noexcept override;
  void stopIntake(SourceContext &ctx) noexcept override;
  void stop() noexcept override;
  void filtered(std::uint64_t tag, bool passed, std::string_view refused_by,
                std::string_view reason) noexcept override;
  void complete(std::uint64_t tag, Outcome outcome, std::string_view reason) noexcept override;

 private:
  using Clock = std::chrono::steady_clock;

  static constexpr std::size_t kMaxPerPoll = 512;  // messages per poll() call, so that stop is prompt
  // Messages taken from one socket before the next ready socket gets its turn, so that a
  // flooding publisher cannot starve the others (the leftovers stay on the ready list).
  static constexpr std::size_t kMaxPerSocketTurn = 64;
  static constexpr int kMaxEpollEvents = 256;  // per epoll_wait(); level-triggered, the rest come next time
  // epoll data of a monitor socket: its socket's index with this bit set.
  static constexpr std::uint32_t kMonitorBit = 0x80000000U;
  // epoll data of a replay REQ socket (its index in ReplayClient) and of a c-ares socket (its fd).
  static constexpr std::uint32_t kReplayBit = 0x40000000U;
  static constexpr std::uint32_t kSrvBit = 0x20000000U;
  static constexpr std::uint32_t kKindBits = kMonitorBit | kReplayBit | kSrvBit;

  struct Socket {
    zmq::socket_t sock;
    std::string endpoint;   // connect mode: the one endpoint; bind mode: empty
    bool ready = false;     // on ready_
    zmq::socket_t monitor;  // PAIR: the socket's monitor events
    // Connect mode: a connection ended (DISCONNECTED) and libzmq has not said it retries.
    bool lost = false;
    Clock::time_point lost_at;
    unsigned protocol_streak = 0;  // protocol disconnects without a message in between
    bool ever_connected = false;
    bool warned_unreachable = false;  // the first failed attempt was logged
    // A connection may come up: look at the monitor before each read, so that the new
    // connection is announced before its first message is handled.
    bool expect_connect = true;
    bool up = false;  // connect mode: the endpoint's connection is established (handshake done)
    std::set<int> peers;  // bind mode: file descriptors of the publishers' live connections
    std::string name;     // the publisher's name (replay_endpoints' key), connect mode
    std::string srv;      // the SRV name that gave this endpoint; empty: a configured one
    bool dead = false;    // closed (its SRV record went away); the slot may be reused
    std::uint64_t generation = 0;  // connect mode: connections established so far
    Clock::time_point opened_at;
  };

  // zmq_sub.cpp: reading and decoding.
  bool drainSocket(SourceContext &ctx, Socket &s, std::size_t limit, std::size_t &got);
  void handle(SourceContext &ctx, Socket &s, std::size_t count);
  /// Submits a decoded message read on @p endpoint (empty: bind mode, the peer of frames_);
  /// @p track_i: observed by the `i` tracker (not for backfilled messages).
  void submitOne(SourceContext &ctx, Message m, const std::string &endpoint, bool track_i);
  void submitReplayed(SourceContext &ctx);
  [[nodiscard]] bool subscribedTo(std::string_view topic) const;
  void countShutdownDrop(SourceContext &ctx);
  void drainAll(SourceContext &ctx);
  std::string where(const Socket &s);
  std::string peerAddress();

  // zmq_sub_sockets.cpp: sockets, epoll, monitors, reconnects.
  void openSockets(SourceContext &ctx);
  Socket openOne(SourceContext &ctx, const std::string &endpoint, std::size_t k);
  Status watch(std::size_t idx);
  static void sendSubscription(zmq::socket_t &sock, bool on, const std::string &prefix);
  Status setUpEpoll();
  void sweepIdle(SourceContext &ctx);
  void markReady(std::size_t idx);
  void serviceMonitor(SourceContext &ctx, Socket &s);
  void onMonitorEvent(SourceContext &ctx, Socket &s, std::uint16_t event, std::uint32_t value,
                      const std::string &where);
  void clearLost(Socket &s);
  /// The readiness gauges from the sockets' state: `endpoints_connected` (connect mode: the
  /// endpoints with a live connection; bind mode: the publishers connected to us) and
  /// `connected` (connect mode: at least one endpoint connected; bind mode: bound).
  void updateConnectedGauges();
  [[nodiscard]] Clock::duration reconnectDelay(const Socket &s) const;
  [[nodiscard]] int msUntilNextReconnect() const;
  void reconnectLost(SourceContext &ctx);
  void onEndpointConnected(SourceContext &ctx, const std::string &key_prefix);
  void closeSockets() noexcept;

  // zmq_sub_srv.cpp: endpoints from SRV records.
  Status startSrv(SourceContext &ctx);
  void serviceSrv(SourceContext &ctx);
  void applySrv(SourceContext &ctx, const std::string &name);
  void addSrvEndpoint(SourceContext &ctx, const std::string &endpoint, const std::string &name);
  void removeSocket(SourceContext &ctx, std::size_t idx);
  void srvFallback(SourceContext &ctx);
  [[nodiscard]] Status probeSrv(ProbeReport &report, std::chrono::milliseconds timeout) noexcept;

  const SubSettings settings_;
  // Before the sockets: the context outlives them (see zmq_common.hpp).
  std::shared_ptr<zmq::context_t> zctx_;
  std::vector<Socket> sockets_;
  int epoll_fd_ = -1;
  std::deque<std::size_t> ready_;  // sockets that may still have messages queued
  std::array<zmq::message_t, 3> frames_;
  bool stopped_intake_ = false;
  bool draining_ = false;  // inside stopIntake()
  bool refused_ = false;   // submit() answered Stopping
  std::uint64_t shutdown_drops_ = 0;
  std::size_t lost_count_ = 0;  // sockets with lost == true
  DropLog conn_log_;            // connection events, rate-limited like drops
  DropLog drop_log_;
  std::uint64_t tag_ = 0;
  SeqGlue seq_;
  ReplayClient replay_;
  std::unique_ptr<SrvResolver> srv_;
  struct SrvState {
    std::vector<SrvTarget> targets;  // the last resolved set, best first
    std::size_t levels = 1;          // priority levels in use (more after a fallback)
  };
  std::map<std::string, SrvState> srv_state_;
  Counter *srv_added_ = nullptr;
  Counter *srv_removed_ = nullptr;
  Gauge *srv_endpoints_ = nullptr;

  Counter *received_ = nullptr;
  Counter *disconnects_ = nullptr;
  Counter *protocol_disconnects_ = nullptr;
  Counter *reconnects_ = nullptr;
  Gauge *connected_ = nullptr;
  Gauge *endpoints_connected_ = nullptr;
  std::int64_t live_connections_ = 0;  ///< sockets with up (connect mode) + every socket's peers (bind mode)
};

/// A zmq-sub instance whose sockets live in @p zctx.
std::unique_ptr<Source> makeZmqSubSource(const SubSettings &settings, std::shared_ptr<zmq::context_t> zctx);

}  // namespace switchyard::zmqt
