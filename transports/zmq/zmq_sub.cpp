// SPDX-License-Identifier: MIT
//
// zmq-sub (source): receives fedmsg messages ([topic, json envelope], interop-spec 1.2)
// from ZeroMQ PUB sockets and submits one Message per envelope (core fedmsg codec).
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
// line; nothing a peer sends stops the source. See docs/plugins/zmq-sub.md.
//
// Waiting scales with the number of endpoints: zmq_poll() over N sockets costs O(N) per
// wake-up (it builds a pollfd array and asks every socket for ZMQ_EVENTS), which made a
// fixed message rate spread over 1,000 publishers cost several times as much CPU as over
// one. Instead each socket's ZMQ_FD sits in an epoll set, and a ready list holds the
// sockets that may still have queued messages; a wake-up touches only those.
//
// Connections (issue 12, case 4): each socket has a monitor (zmq_socket_monitor, read
// through a PAIR socket whose ZMQ_FD is in the same epoll set). libzmq 4.3.4 treats a frame
// above ZMQ_MAXMSGSIZE, like a failed handshake, as a protocol error: the session ends with
// DISCONNECTED and is never retried (no CONNECT_RETRIED follows, unlike after a TCP reset),
// so the publisher would be cut off for good. A DISCONNECTED that no retry follows within
// kRetryGrace is such a protocol disconnect: it is counted (`protocol_disconnects`), logged,
// and the endpoint is disconnected and connected again by the application. What the dead
// connection lost shows up as a sequence gap at the publisher's next `i`: the tracker keeps
// its state across the reconnect. A new connection is reported to onEndpointConnected().
//
// Shutdown (issue 12, case 7): the sockets are XSUB, not SUB, which differ in one way that
// matters here: XSUB does not filter what it receives against its subscriptions (the
// publishers filter, ZMTP 3), so stopIntake() can unsubscribe (the publishers stop sending
// to us) and still read everything the sockets already hold, and submit it. What the
// pipeline no longer takes is counted as dropped{shutdown}.
#include <netdb.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "seq_state.hpp"
#include "seq_tracker.hpp"
#include "zmq_common.hpp"

namespace {

using namespace switchyard;
using namespace switchyard::zmqt;

const sy_config_key kSchema[] = {
    {"endpoints", SY_CFG_STRING_LIST, 1, nullptr,
     "ZeroMQ addresses to connect to (or to bind, with bind: true), e.g. tcp://host:9940.", 0},
    {"bind", SY_CFG_BOOL, 0, "false",
     "Bind the endpoints instead of connecting (fedmsg-relay inbound: publishers connect).", 0},
    {"topics", SY_CFG_STRING_LIST, 0, "[\"\"]",
     "Topic prefixes to subscribe to (byte-prefix match on frame 0); \"\" means everything.", 0},
    {"hwm", SY_CFG_INT, 0, "1000",
     "ZMQ_RCVHWM: messages queued per connection before libzmq drops; 0 = unlimited.", 0},
    {"max_message_size", SY_CFG_INT, 0, "16777216",
     "Largest accepted frame in bytes; larger messages are dropped as oversize.", 0},
    {"socket_max_message_size", SY_CFG_INT, 0, "0",
     "ZMQ_MAXMSGSIZE: libzmq disconnects a peer that sends a bigger frame. 0 = twice "
     "max_message_size, -1 = unlimited.", 0},
    {"max_depth", SY_CFG_INT, 0, "64", "Deepest accepted JSON nesting; deeper is dropped as too_deep.", 0},
    {"tcp_keepalive", SY_CFG_INT, 0, "1", "ZMQ_TCP_KEEPALIVE (-1 OS default, 0 off, 1 on).", 0},
    {"tcp_keepalive_cnt", SY_CFG_INT, 0, "3", "ZMQ_TCP_KEEPALIVE_CNT.", 0},
    {"tcp_keepalive_idle", SY_CFG_INT, 0, "60", "ZMQ_TCP_KEEPALIVE_IDLE in seconds.", 0},
    {"tcp_keepalive_intvl", SY_CFG_INT, 0, "5", "ZMQ_TCP_KEEPALIVE_INTVL in seconds.", 0},
    {"reconnect_ivl", SY_CFG_INT, 0, "100", "ZMQ_RECONNECT_IVL in milliseconds.", 0},
    {"reconnect_ivl_max", SY_CFG_INT, 0, "1000",
     "ZMQ_RECONNECT_IVL_MAX in milliseconds (exponential back-off cap).", 0},
    {"track_sequence", SY_CFG_BOOL, 0, "true",
     "Count gaps, duplicates, reorders and restarts of each publisher's `i` counter.", 0},
    {"reorder_window", SY_CFG_INT, 0, "64",
     "Sequence tracking: a skipped `i` is counted missing once the publisher's `i` is this many "
     "values past it (0 to 1024; 0: at once); arriving before, it counts as reordered.", 0},
    {"reorder_time", SY_CFG_INT, 0, "1000",
     "Sequence tracking: or once this many milliseconds passed since the jump that skipped it "
     "(0: no time limit).", 0},
    {"state_file", SY_CFG_STRING, 0, "\"\"",
     "Sequence tracking: file that keeps each publisher's sequence state across restarts, so "
     "that what was sent while the router was down is counted missing. Empty: none.", 0},
    {"state_interval", SY_CFG_INT, 0, "0",
     "Milliseconds between writes of state_file; 0: after every poll that changed the state "
     "(exact after a kill -9). Always written at stop.", 0},
    {nullptr, 0, 0, nullptr, nullptr, 0},
};

constexpr std::size_t kMaxPerPoll = 512;  // messages per poll() call, so that stop is prompt
// Messages taken from one socket before the next ready socket gets its turn, so that a
// flooding publisher cannot starve the others (the leftovers stay on the ready list).
constexpr std::size_t kMaxPerSocketTurn = 64;
constexpr int kMaxEpollEvents = 256;  // per epoll_wait(); level-triggered, the rest come next time
// Metadata set on the message whose `i` revealed a sequence gap (or a restart above 1): the
// number of messages of that publisher that never arrived, in decimal.
constexpr std::string_view kSeqMissingMeta = "zmq.seq_missing";

using Clock = std::chrono::steady_clock;
// epoll data of a monitor socket: its socket's index with this bit set.
constexpr std::uint32_t kMonitorBit = 0x80000000U;
constexpr int kMonitorEvents = ZMQ_EVENT_CONNECTED | ZMQ_EVENT_CONNECT_DELAYED | ZMQ_EVENT_CONNECT_RETRIED |
                               ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_HANDSHAKE_SUCCEEDED |
                               ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                               ZMQ_EVENT_HANDSHAKE_FAILED_AUTH;
// After a connection's DISCONNECTED, libzmq emits CONNECT_RETRIED from the same I/O thread
// at once when it is going to reconnect by itself; without it within this time the session
// ended for good (protocol error) and zmq-sub reconnects the endpoint itself.
constexpr auto kRetryGrace = std::chrono::milliseconds(200);
// Shutdown drain: the sockets count as drained once none of them had anything to read for
// this long after the unsubscription (messages the publishers sent before it reached them
// are still on the way), or after kDrainCap in all.
constexpr auto kDrainQuiet = std::chrono::milliseconds(100);
constexpr auto kDrainCap = std::chrono::seconds(10);
// After kDrainCap, what the sockets still hold is read and counted for at most this long.
constexpr auto kDrainCountCap = std::chrono::seconds(1);

class ZmqSubSource final : public Source {
 public:
  explicit ZmqSubSource(const sdk::Config &c)
      : endpoints_(c.strings("endpoints")),
        bind_(boolOr(c, "bind", false)),
        topics_(stringsOr(c, "topics", {""})),
        hwm_(static_cast<int>(nonNegative(c, "hwm", kDefaultHwm))),
        socket_max_(intOr(c, "socket_max_message_size", 0)),
        track_(boolOr(c, "track_sequence", true)),
        tuning_(SocketTuning::fromConfig(c)) {
    configureSequence(c);
    if (endpoints_.empty()) {
      throw sdk::ConfigError("endpoints", "'endpoints' needs at least one address");
    }
    std::int64_t max = intOr(c, "max_message_size", kDefaultMaxMessageSize);
    if (max <= 0) {
      throw sdk::ConfigError("max_message_size", "'max_message_size' must be positive");
    }
    limits_.max_bytes = static_cast<std::size_t>(max);
    std::int64_t depth = intOr(c, "max_depth", kDefaultMaxDepth);
    if (depth <= 0) {
      throw sdk::ConfigError("max_depth", "'max_depth' must be positive");
    }
    limits_.max_depth = static_cast<std::size_t>(depth);
    if (socket_max_ == 0) {
      socket_max_ = 2 * max;
    }
    if (socket_max_ < -1) {
      throw sdk::ConfigError("socket_max_message_size", "'socket_max_message_size' must be -1 or more");
    }
    if (topics_.empty()) {
      topics_.emplace_back();
    }
    all_topics_ = std::find(topics_.begin(), topics_.end(), std::string()) != topics_.end();
  }

  Status start(SourceContext &ctx) noexcept override {
    try {
      std::size_t count = bind_ ? 1 : endpoints_.size();
      // Three sockets per endpoint (the XSUB, libzmq's monitor PAIR, ours): raise the
      // context's limit (1023 by default) where needed.
      zctx_ = std::make_unique<zmq::context_t>(1, std::max<int>(ZMQ_MAX_SOCKETS_DFLT, static_cast<int>(3 * count + 16)));
      // Memory (issue 12, case 6): with zero-copy receive, libzmq cuts messages out of an
      // 8 KiB read buffer that stays alive while any of them waits, so a queued 400-byte
      // message held 3.5-6 KiB and `hwm` bounded the count, not the memory. Copying each
      // message out costs a memcpy and keeps a queued message at its own size.
      // ZMQ_ZERO_COPY_RECV (10) is a context option of libzmq >= 4.3 behind its draft-API
      // guard; an older library refuses it, which only costs the memory.
      constexpr int kZmqZeroCopyRecv = 10;
      if (zmq_ctx_set(zctx_->handle(), kZmqZeroCopyRecv, 0) != 0) {
        ctx.log().debug("libzmq refused ZMQ_ZERO_COPY_RECV=0: {}", zmq_strerror(zmq_errno()));
      }
      for (std::size_t k = 0; k < count; ++k) {
        Socket s{zmq::socket_t(*zctx_, zmq::socket_type::xsub), bind_ ? std::string() : endpoints_[k]};
        s.sock.set(zmq::sockopt::rcvhwm, hwm_);
        s.sock.set(zmq::sockopt::maxmsgsize, socket_max_);
        s.sock.set(zmq::sockopt::linger, 0);
        tuning_.apply(s.sock);
        // XSUB: a subscription is a message (0x01 + prefix), kept by the socket and sent to
        // every peer that connects.
        for (const auto &t : topics_) {
          sendSubscription(s.sock, true, t);
        }
        // The monitor first, so that no event of the first connection is missed.
        std::string mon_addr = fmt::format("inproc://zmq-sub-monitor-{}", k);
        if (zmq_socket_monitor(s.sock.handle(), mon_addr.c_str(), kMonitorEvents) != 0) {
          throw zmq::error_t();
        }
        s.monitor = zmq::socket_t(*zctx_, zmq::socket_type::pair);
        s.monitor.set(zmq::sockopt::linger, 0);
        s.monitor.connect(mon_addr);
        if (bind_) {
          for (const auto &e : endpoints_) {
            s.sock.bind(e);
            ctx.log().info("bound {}", s.sock.get(zmq::sockopt::last_endpoint));
          }
        } else {
          s.sock.connect(endpoints_[k]);
          ctx.log().info("connecting to {}", endpoints_[k]);
        }
        sockets_.push_back(std::move(s));
      }
    } catch (const zmq::error_t &e) {
      sockets_.clear();
      return Status::fatal(fmt::format("cannot set up the SUB socket: {}", e.what()), "endpoints");
    } catch (const std::exception &e) {
      sockets_.clear();
      return Status::fatal(fmt::format("cannot set up the SUB socket: {}", e.what()));
    }
    if (Status st = setUpEpoll(); !st.isOk()) {
      sockets_.clear();
      return st;
    }
    received_ = &ctx.counter("zmq_received");
    gaps_ = &ctx.counter("seq_gaps");
    missing_ = &ctx.counter("seq_missing");
    duplicates_ = &ctx.counter("seq_duplicates");
    reordered_ = &ctx.counter("seq_reordered");
    restarts_ = &ctx.counter("seq_restarts");
    untracked_ = &ctx.counter("seq_untracked");
    publishers_ = &ctx.gauge("publishers");
    if (Status st = startSequence(ctx); !st.isOk()) {
      sockets_.clear();
      return st;
    }
    disconnects_ = &ctx.counter("disconnects");
    protocol_disconnects_ = &ctx.counter("protocol_disconnects");
    reconnects_ = &ctx.counter("reconnects");
    return Status::ok();
  }

  Status poll(SourceContext &ctx, std::chrono::milliseconds timeout) noexcept override {
    seqHousekeeping(ctx);
    if (stopped_intake_) {
      // Draining: nothing can be acknowledged upstream, just let the runtime finish.
      pollfd p{ctx.wakeFd(), POLLIN, 0};
      (void)::poll(&p, 1, static_cast<int>(timeout.count()));
      return Status::ok();
    }
    try {
      // ctx.wakeFd() is not in the set, as before: ZeroMQ cannot acknowledge, so waiting
      // completions need no prompt service (the runtime takes them between polls).
      // With sockets on the ready list there is work already: only collect new signals.
      int wait_ms = ready_.empty() ? static_cast<int>(timeout.count()) : 0;
      if (wait_ms > 0 && lost_count_ > 0) {
        wait_ms = std::min(wait_ms, msUntilNextReconnect());
      }
      std::array<epoll_event, kMaxEpollEvents> events{};
      int n = ::epoll_wait(epoll_fd_, events.data(), kMaxEpollEvents, wait_ms);
      if (n < 0) {
        if (errno == EINTR) {
          return Status::ok();
        }
        return Status::error(fmt::format("zmq-sub: epoll_wait: {}", std::strerror(errno)));
      }
      if (n == 0 && ready_.empty()) {
        // An idle period (the runtime's poll timeout, 100 ms) passed without a signal:
        // ask every socket once. ZMQ_FD does not promise a signal for every arrival (a
        // message can slip in between a recv's EAGAIN and the fd being re-armed, e.g. on
        // a freshly attached pipe), and zmq_poll() used to cover that by checking
        // ZMQ_EVENTS of all sockets on every call. Here it costs O(sockets) per idle
        // timeout, not per wake-up.
        sweepIdle(ctx);
      }
      // Connection events first, so that a new connection is known before its messages.
      for (int k = 0; k < n; ++k) {
        std::uint32_t data = events[static_cast<std::size_t>(k)].data.u32;
        if ((data & kMonitorBit) != 0 && (data & ~kMonitorBit) < sockets_.size()) {
          serviceMonitor(ctx, sockets_[data & ~kMonitorBit]);
        }
      }
      if (lost_count_ > 0) {
        reconnectLost(ctx);
      }
      for (int k = 0; k < n; ++k) {
        std::uint32_t data = events[static_cast<std::size_t>(k)].data.u32;
        if ((data & kMonitorBit) != 0) {
          continue;
        }
        std::size_t idx = data;
        // ZMQ_FD only says "something happened" (commands, not necessarily messages).
        // Reading ZMQ_EVENTS processes the socket's pending commands, which also resets
        // the fd, so the level-triggered epoll does not keep reporting it.
        if (idx < sockets_.size() && !sockets_[idx].ready &&
            (sockets_[idx].sock.get(zmq::sockopt::events) & ZMQ_POLLIN) != 0) {
          markReady(idx);
        }
      }
      // Round robin over the ready sockets. A socket leaves the list only when a recv
      // returned EAGAIN: from then on libzmq signals its fd when a message arrives. A
      // socket left before EAGAIN (turn or poll budget used up) may never signal again,
      // so it stays on the list.
      std::size_t budget = kMaxPerPoll;
      while (budget > 0 && !ready_.empty() && !stopped_intake_ && !ctx.stopping()) {
        // Popped only after the drain: if it throws, the socket stays on the list.
        std::size_t idx = ready_.front();
        std::size_t turn = std::min(budget, kMaxPerSocketTurn);
        std::size_t got = 0;
        bool empty = drainSocket(ctx, sockets_[idx], turn, got);
        budget -= got;
        ready_.pop_front();
        // After the EAGAIN, ask once more: per libzmq's documentation the fd need not
        // signal again for what arrived while we were reading (see sweepIdle()).
        if (empty && (sockets_[idx].sock.get(zmq::sockopt::events) & ZMQ_POLLIN) == 0) {
          sockets_[idx].ready = false;
        } else {
          ready_.push_back(idx);
        }
      }
    } catch (const zmq::error_t &e) {
      if (e.num() == EINTR) {
        return Status::ok();
      }
      return Status::error(fmt::format("zmq: {}", e.what()));
    } catch (const std::exception &e) {
      return Status::error(fmt::format("zmq-sub: {}", e.what()));
    }
    return Status::ok();
  }

  /// Shutdown: unsubscribe (the publishers stop sending to us once it reaches them), then
  /// read what the sockets hold and what was already on the way, and submit it; the runtime
  /// takes submissions during this call until its drain timeout. Whatever is read after the
  /// pipeline stopped taking messages is counted as dropped{shutdown}.
  void stopIntake(SourceContext &ctx) noexcept override {
    if (stopped_intake_) {
      return;  // submit() already answered Stopping
    }
    draining_ = true;
    try {
      for (auto &s : sockets_) {
        for (const auto &t : topics_) {
          sendSubscription(s.sock, false, t);
        }
      }
      drainAll(ctx);
    } catch (const std::exception &e) {
      ctx.log().error("shutdown drain of the ZeroMQ sockets failed: {}", e.what());
    }
    stopped_intake_ = true;
  }

  void stop() noexcept override {
    seqStop();
    ready_.clear();
    if (epoll_fd_ >= 0) {
      ::close(epoll_fd_);
      epoll_fd_ = -1;
    }
    for (auto &s : sockets_) {
      if (s.sock.handle() != nullptr) {
        (void)zmq_socket_monitor(s.sock.handle(), nullptr, 0);
      }
    }
    sockets_.clear();  // linger 0: nothing to flush on a SUB socket
    zctx_.reset();
  }

  ~ZmqSubSource() override {
    if (epoll_fd_ >= 0) {
      ::close(epoll_fd_);
    }
  }

 private:
  struct Socket {
    zmq::socket_t sock;
    std::string endpoint;  // connect mode: the one endpoint; bind mode: empty
    bool ready = false;    // on ready_
    zmq::socket_t monitor;  // PAIR: the socket's monitor events
    // Connect mode: a connection ended (DISCONNECTED) and libzmq has not said it retries.
    bool lost = false;
    Clock::time_point lost_at;
    unsigned protocol_streak = 0;  // protocol disconnects without a message in between
    bool ever_connected = false;
    // A connection may come up: look at the monitor before each read, so that the new
    // connection is announced before its first message is handled.
    bool expect_connect = true;
  };

  static void sendSubscription(zmq::socket_t &sock, bool on, const std::string &prefix) {
    std::string m;
    m.reserve(prefix.size() + 1);
    m += on ? '\x01' : '\x00';
    m += prefix;
    (void)sock.send(zmq::buffer(m), zmq::send_flags::dontwait);
  }

  /// Reads every monitor event queued for @p s.
  void serviceMonitor(SourceContext &ctx, Socket &s) {
    while (true) {
      zmq::message_t head;
      if (!s.monitor.recv(head, zmq::recv_flags::dontwait)) {
        return;
      }
      zmq::message_t addr;
      bool has_addr = false;
      bool more = head.more();
      while (more) {  // [event+value, address]; read every part whatever comes
        zmq::message_t part;
        if (!s.monitor.recv(part, zmq::recv_flags::dontwait)) {
          break;
        }
        more = part.more();
        if (!has_addr) {
          addr = std::move(part);
          has_addr = true;
        }
      }
      if (head.size() < 6) {
        continue;
      }
      std::uint16_t event = 0;
      std::uint32_t value = 0;
      std::memcpy(&event, head.data(), sizeof event);
      std::memcpy(&value, static_cast<const char *>(head.data()) + 2, sizeof value);
      std::string where = has_addr ? addr.to_string() : s.endpoint;
      onMonitorEvent(ctx, s, event, value, where);
    }
  }

  void onMonitorEvent(SourceContext &ctx, Socket &s, std::uint16_t event, std::uint32_t value,
                      const std::string &where) {
    switch (event) {
      case ZMQ_EVENT_CONNECT_DELAYED:
      case ZMQ_EVENT_CONNECT_RETRIED:
      case ZMQ_EVENT_CONNECTED:
        clearLost(s);  // libzmq (re)connects by itself
        break;
      case ZMQ_EVENT_ACCEPTED:
        if (bind_) {
          // Bind mode tracks publishers by peer address; the fd is still open here.
          std::string ip = peerIp(static_cast<int>(value));
          if (!ip.empty()) {
            onEndpointConnected(ctx, "bind|" + ip + "|");
          }
        }
        break;
      case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
        clearLost(s);
        if (!bind_) {
          if (s.ever_connected) {
            reconnects_->add();
            conn_log_.info(ctx, "reconnected", "reconnected to {}", s.endpoint);
          } else {
            ctx.log().info("connected to {}", s.endpoint);
          }
          s.ever_connected = true;
          s.expect_connect = false;
          onEndpointConnected(ctx, s.endpoint + "|");
        }
        break;
      case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
      case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
      case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
        drop_log_.warn(ctx, "handshake_failed", "ZeroMQ handshake with {} failed ({}, {})", where,
                       event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL ? "protocol error"
                       : event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH   ? "authentication"
                                                                     : "no detail",
                       value);
        break;
      case ZMQ_EVENT_DISCONNECTED:
        disconnects_->add();
        conn_log_.info(ctx, "disconnected", "connection {} closed", bind_ ? "to " + where : "to " + s.endpoint);
        if (!bind_ && !draining_ && !s.lost) {
          s.lost = true;
          s.lost_at = Clock::now();
          s.expect_connect = true;
          ++lost_count_;
        }
        break;
      default: break;
    }
  }

  void clearLost(Socket &s) {
    if (s.lost) {
      s.lost = false;
      --lost_count_;
    }
  }

  [[nodiscard]] Clock::duration reconnectDelay(const Socket &s) const {
    if (s.protocol_streak == 0) {
      return kRetryGrace;
    }
    std::int64_t ms = tuning_.reconnect_ivl;
    for (unsigned k = 0; k < s.protocol_streak && ms < tuning_.reconnect_ivl_max; ++k) {
      ms *= 2;
    }
    ms = std::min<std::int64_t>(ms, tuning_.reconnect_ivl_max);
    return std::max<Clock::duration>(kRetryGrace, std::chrono::milliseconds(ms));
  }

  [[nodiscard]] int msUntilNextReconnect() const {
    auto now = Clock::now();
    auto next = Clock::duration::max();
    for (const auto &s : sockets_) {
      if (s.lost) {
        next = std::min(next, s.lost_at + reconnectDelay(s) - now);
      }
    }
    if (next <= Clock::duration::zero()) {
      return 0;
    }
    return static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(next).count());
  }

  /// Connect mode: a connection that ended without a retry (protocol error) is brought
  /// back by disconnecting and connecting the endpoint.
  void reconnectLost(SourceContext &ctx) {
    auto now = Clock::now();
    for (auto &s : sockets_) {
      if (!s.lost || now < s.lost_at + reconnectDelay(s) || draining_ || stopped_intake_ || ctx.stopping()) {
        continue;
      }
      clearLost(s);
      protocol_disconnects_->add();
      ++s.protocol_streak;
      drop_log_.warn(ctx, "protocol_disconnect",
                     "connection to {} closed by a protocol error (a frame above {} bytes, see "
                     "socket_max_message_size, or a failed handshake); libzmq does not retry it: "
                     "reconnecting (what it lost shows up as a sequence gap)",
                     s.endpoint, socket_max_);
      // What arrived before the error is still queued, and zmq_disconnect() would discard
      // it: read it first.
      std::size_t got = 0;
      while (!drainSocket(ctx, s, kMaxPerPoll, got) && !stopped_intake_ && !ctx.stopping()) {
      }
      try {
        s.sock.disconnect(s.endpoint);
      } catch (const zmq::error_t &e) {
        if (e.num() != ENOENT) {
          throw;
        }
      }
      s.sock.connect(s.endpoint);
      s.expect_connect = true;
    }
  }

  /// Hook: a new connection came up. Every publisher whose tracking key (see track())
  /// begins with @p key_prefix may be a new incarnation from now on: connect mode gives
  /// "ENDPOINT|", bind mode "bind|PEER_IP|". Called before any message of the new
  /// connection is handled (in bind mode: as far as the monitor allows, see the docs).
  void onEndpointConnected(SourceContext &ctx, const std::string &key_prefix) {
    ctx.log().debug("new connection for publishers {}*", key_prefix);
    // Sequence tracking (case 10b): messages read from now on carry the next connection
    // generation; a publisher whose `i` then falls to or below its highest is a new
    // process, not a stream of duplicates. The first connection of this process starts at
    // generation 0, like the publishers loaded from the state file: a restart of the
    // router itself is not a restart of its publishers.
    try {
      auto [it, inserted] = conn_epoch_.try_emplace(key_prefix, 0);
      if (!inserted) {
        ++it->second;
      }
    } catch (const std::exception &) {
      // out of memory: the connection just does not count as a possible restart
    }
  }

  static std::string peerIp(int fd) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (::getpeername(fd, reinterpret_cast<sockaddr *>(&ss), &len) != 0) {
      return {};
    }
    std::array<char, NI_MAXHOST> host{};
    if (::getnameinfo(reinterpret_cast<sockaddr *>(&ss), len, host.data(), host.size(), nullptr, 0,
                      NI_NUMERICHOST) != 0) {
      return {};
    }
    return host.data();
  }

  /// stopIntake(): reads every socket until none had anything for kDrainQuiet.
  void drainAll(SourceContext &ctx) {
    auto start = Clock::now();
    std::uint64_t read_before = received_->value();
    auto quiet_since = start;
    std::array<epoll_event, kMaxEpollEvents> events{};
    bool quiet = false;
    while (Clock::now() - start < kDrainCap) {
      bool any = false;
      for (auto &s : sockets_) {
        std::size_t got = 0;
        (void)drainSocket(ctx, s, kMaxPerSocketTurn, got);
        any = any || got > 0;
      }
      auto now = Clock::now();
      if (any) {
        quiet_since = now;
        continue;
      }
      auto left = kDrainQuiet - (now - quiet_since);
      if (left <= Clock::duration::zero()) {
        quiet = true;
        break;
      }
      (void)::epoll_wait(epoll_fd_, events.data(), kMaxEpollEvents,
                         static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(left).count()));
    }
    if (!quiet) {
      // Peers that go on sending although we unsubscribed: what the sockets hold now is
      // read and counted, not submitted, for at most kDrainCountCap more.
      ctx.log().warn("shutdown: the ZeroMQ sockets did not run empty within {} s of unsubscribing; "
                     "counting what they hold as dropped{{shutdown}}",
                     std::chrono::duration_cast<std::chrono::seconds>(kDrainCap).count());
      refused_ = true;
      auto until = Clock::now() + kDrainCountCap;
      for (auto &s : sockets_) {
        std::size_t got = 0;
        while (Clock::now() < until && !drainSocket(ctx, s, kMaxPerPoll, got)) {
        }
      }
    }
    ctx.log().info("shutdown: read {} message(s) from the ZeroMQ sockets after unsubscribing; {} "
                   "counted as dropped{{shutdown}}",
                   received_->value() - read_before, shutdown_drops_);
  }

  Status setUpEpoll() {
    epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd_ < 0) {
      return Status::fatal(fmt::format("epoll_create1: {}", std::strerror(errno)));
    }
    for (std::size_t k = 0; k < sockets_.size(); ++k) {
      int fd = -1;
      try {
        fd = sockets_[k].sock.get(zmq::sockopt::fd);
      } catch (const zmq::error_t &e) {
        return Status::fatal(fmt::format("cannot get ZMQ_FD: {}", e.what()));
      }
      // Level-triggered on purpose: a spurious report costs one ZMQ_EVENTS call, while a
      // missed edge would leave a socket's messages waiting until the next one arrives.
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.u32 = static_cast<std::uint32_t>(k);
      if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
        return Status::fatal(fmt::format("epoll_ctl: {}", std::strerror(errno)));
      }
      // The monitor's fd as well; its events are all read at every report, which resets it.
      try {
        fd = sockets_[k].monitor.get(zmq::sockopt::fd);
      } catch (const zmq::error_t &e) {
        return Status::fatal(fmt::format("cannot get the monitor's ZMQ_FD: {}", e.what()));
      }
      ev.data.u32 = static_cast<std::uint32_t>(k) | kMonitorBit;
      if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
        return Status::fatal(fmt::format("epoll_ctl: {}", std::strerror(errno)));
      }
      // Nothing has been read yet, so nothing guarantees a signal for what is already
      // queued: start with every socket on the ready list (each leaves it at its EAGAIN).
      markReady(k);
    }
    return Status::ok();
  }

  void sweepIdle(SourceContext &ctx) {
    for (std::size_t k = 0; k < sockets_.size(); ++k) {
      // The monitors too: cheap insurance against a missed signal, which would delay the
      // detection of a protocol disconnect.
      serviceMonitor(ctx, sockets_[k]);
      if (!sockets_[k].ready && (sockets_[k].sock.get(zmq::sockopt::events) & ZMQ_POLLIN) != 0) {
        markReady(k);
      }
    }
  }

  void markReady(std::size_t idx) {
    sockets_[idx].ready = true;
    ready_.push_back(idx);
  }

  /// Reads up to @p limit messages; true when the socket's queue ran empty (EAGAIN).
  bool drainSocket(SourceContext &ctx, Socket &s, std::size_t limit, std::size_t &got) {
    if (bind_) {
      serviceMonitor(ctx, s);  // peers connect at any time: look once per turn
    }
    // Once shutdown began, poll() stops reading so that stopIntake() (unsubscribe, drain)
    // comes at once; stopIntake() itself reads on.
    for (got = 0; got < limit && !stopped_intake_ && (draining_ || !ctx.stopping()); ++got) {
      if (s.expect_connect) {
        serviceMonitor(ctx, s);
      }
      // Keep at most 3 frames: anything beyond 2 is refused anyway, but every part must
      // be read so that the next message starts at a message boundary.
      std::size_t count = 0;
      while (true) {
        zmq::message_t part;
        auto r = s.sock.recv(part, zmq::recv_flags::dontwait);
        if (!r) {
          if (count == 0) {
            return true;  // nothing more queued
          }
          break;  // cannot happen: the parts of a message arrive together
        }
        bool more = part.more();
        if (count < frames_.size()) {
          frames_[count] = std::move(part);
        }
        ++count;
        if (!more) {
          break;
        }
      }
      s.protocol_streak = 0;
      handle(ctx, s, count);
    }
    return false;
  }

  void handle(SourceContext &ctx, Socket &s, std::size_t count) {
    received_->add();
    if (refused_) {
      countShutdownDrop(ctx);  // read while draining, after the pipeline stopped taking messages
      return;
    }
    if (!all_topics_ && !subscribedTo(frames_[0].to_string_view())) {
      // XSUB does not filter on receipt as SUB did; ZMTP 3 publishers filter for us, so
      // only a peer that ignores our subscriptions gets here.
      ctx.countDrop("not_subscribed");
      drop_log_.warn(ctx, "not_subscribed", "dropped (not_subscribed): a topic we did not subscribe to from {}",
                     where(s));
      return;
    }
    if (count != 2) {
      ctx.countDrop("wrong_frame_count");
      drop_log_.warn(ctx, "wrong_frame_count", "dropped (wrong_frame_count): {} frame(s) instead of 2 from {}",
                     count, where(s));
      return;
    }
    Message m;
    auto r = fedmsg::decode(frames_[0].to_string_view(), frames_[1].to_string_view(), m, limits_);
    if (!r.ok()) {
      ctx.countDrop(r.reason);
      drop_log_.warn(ctx, r.reason, "dropped ({}): {} (from {})", r.reason, r.detail, where(s));
      return;
    }
    if (track_) {
      noteSequence(ctx, m, s, tag_ + 1);
    }
    if (!s.endpoint.empty()) {
      m.setMeta("zmq.endpoint", s.endpoint);
    }
    if (ctx.submit(std::move(m), ++tag_) == SourceContext::SubmitResult::Stopping) {
      // Not taken: counted. While draining (stopIntake), the rest is read and counted too;
      // otherwise reading stops here.
      refused_ = true;
      seqNotTaken(tag_);
      countShutdownDrop(ctx);
      if (!draining_) {
        stopped_intake_ = true;
      }
    }
  }

  [[nodiscard]] bool subscribedTo(std::string_view topic) const {
    return std::any_of(topics_.begin(), topics_.end(), [&](const std::string &t) { return topic.starts_with(t); });
  }

  void countShutdownDrop(SourceContext &ctx) {
    ++shutdown_drops_;
    ctx.countDrop("shutdown");
    drop_log_.warn(ctx, "shutdown", "dropped (shutdown): the pipeline no longer takes messages");
  }

  std::string where(Socket &s) {
    if (!s.endpoint.empty()) {
      return s.endpoint;
    }
    return peerAddress();
  }

  std::string peerAddress() {
    try {
      const char *p = frames_[0].gets("Peer-Address");
      return p != nullptr ? std::string(p) : std::string("?");
    } catch (const zmq::error_t &) {
      return "?";  // not every transport has a peer address (inproc, ipc)
    }
  }

  // ---- Sequence tracking (docs/plugins/zmq-sub.md, "Sequence tracking") ---------------
  //
  // Where `i` is observed: with ctx.wantFiltered(true) the runtime reports each message's
  // filter verdict (Source::filtered) and the tracker observes `i` there, skipping the
  // messages that the `verifier` filter refused (issue 12, case 8: forged envelopes carry
  // any name and any `i`). A runtime without that support never calls filtered(); the first
  // complete() for a message still waiting for it shows this, and from then on `i` is
  // observed before submit(), as before. The messages between submit and filtered() are
  // kept in pending_, bounded by what the pipeline holds in flight.

  struct PendingSeq {
    std::uint64_t tag = 0;
    std::uint64_t i = 0;          // 0: no usable `i`
    std::uint64_t epoch = 0;      // connection generation when it was read
    std::uint64_t prev_high = 0;  // read_view_'s highest before this message raised it
    bool raised = false;          // this message raised read_view_'s highest
    std::string key;
  };
  /// What has been *read* of a publisher (before any verdict), for kSeqMissingMeta only.
  struct ReadView {
    std::uint64_t high = 0;
    std::uint64_t epoch = 0;
  };

  static std::int64_t nowMs() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now().time_since_epoch()).count();
  }

  void configureSequence(const sdk::Config &c) {
    std::int64_t count = intOr(c, "reorder_window", 64);
    if (count < 0 || count > static_cast<std::int64_t>(SeqTracker::kMaxReorder)) {
      throw sdk::ConfigError("reorder_window", "'reorder_window' must be between 0 and 1024");
    }
    tracker_ = SeqTracker(static_cast<std::uint64_t>(count), nonNegative(c, "reorder_time", 1000));
    state_file_ = strOr(c, "state_file", "");
    state_interval_ms_ = nonNegative(c, "state_interval", 0);
    if (!state_file_.empty() && !track_) {
      throw sdk::ConfigError("state_file", "'state_file' needs 'track_sequence: true'");
    }
  }

  /// Loads the state file, and writes it once at once: a state file that cannot be written
  /// is a configuration error that a restart cannot fix (exit status 3).
  Status startSequence(SourceContext &ctx) {
    ctx_ = &ctx;
    late_ = &ctx.counter("seq_late");
    unverified_ = &ctx.counter("seq_unverified");
    open_ = &ctx.gauge("seq_open");
    if (!track_) {
      return Status::ok();
    }
    ctx.wantFiltered(true);
    if (state_file_.empty()) {
      return Status::ok();
    }
    try {
      loadState(ctx);
      std::string err;
      if (!writeStateFile(state_file_, tracker_.save(), err)) {
        return Status::permanent(fmt::format("cannot write the sequence state file: {}", err), "state_file");
      }
    } catch (const std::exception &e) {
      return Status::fatal(fmt::format("sequence state file {}: {}", state_file_, e.what()), "state_file");
    }
    last_write_ms_ = nowMs();
    return Status::ok();
  }

  void loadState(SourceContext &ctx) {
    std::string text;
    std::string err;
    switch (readStateFile(state_file_, text, err)) {
      case StateRead::Missing:
        ctx.log().info("sequence state file {} does not exist yet: starting fresh", state_file_);
        return;
      case StateRead::Error:
        ctx.log().warn("cannot read the sequence state file {}: {}; starting fresh", state_file_, err);
        return;
      case StateRead::Ok: break;
    }
    if (!tracker_.load(text, nowMs(), err)) {
      // Kept for a post-mortem; the next write replaces the file itself.
      std::string aside = state_file_ + ".corrupt";
      bool kept = ::rename(state_file_.c_str(), aside.c_str()) == 0;
      ctx.log().warn("the sequence state file {} is unusable ({}); starting fresh{}", state_file_, err,
                     kept ? " (the file was renamed to " + aside + ")" : std::string());
      return;
    }
    publishers_->set(static_cast<std::int64_t>(tracker_.publishers()));
    open_->set(static_cast<std::int64_t>(tracker_.open()));
    ctx.log().info("sequence state of {} publisher(s) loaded from {} ({} skipped value(s) still open)",
                   tracker_.publishers(), state_file_, tracker_.open());
  }

  /// Before submit(): what the tracker needs of @p m, observed now (a runtime without
  /// filtered()) or kept until filtered(). Also marks a message whose `i` skips values
  /// with kSeqMissingMeta (how many), so that a consumer such as verify-missing can tell
  /// its own ZeroMQ losses apart. That mark is provisional: it is set on the message that
  /// reveals the skip, before the filters and before the reorder window judged anything
  /// (the counters are what is exact); it compares with what was read so far, because the
  /// tracker only learns of the messages of the current poll when their verdicts come.
  void noteSequence(SourceContext &ctx, Message &m, Socket &s, std::uint64_t tag) {
    PendingSeq p;
    p.tag = tag;
    const auto &env = m.envelope();
    std::string_view seq = env ? env->fields.i : std::string_view();
    if (!seq.empty() && std::from_chars(seq.data(), seq.data() + seq.size(), p.i).ec == std::errc() && p.i != 0) {
      p.key = s.endpoint.empty() ? "bind|" + peerAddress() : s.endpoint;
      p.key += '|';
      if (auto it = conn_epoch_.find(p.key); it != conn_epoch_.end()) {
        p.epoch = it->second;
      }
      p.key += env->fields.has_username ? std::string_view(env->fields.username) : std::string_view("?");
      if (std::uint64_t skipped = readSkip(p); skipped > 0) {
        m.setMeta(kSeqMissingMeta, std::to_string(skipped));
      }
    }
    if (seq_legacy_) {
      settle(ctx, p, true);
    } else {
      pending_.push_back(std::move(p));
    }
  }

  /// How many values @p p's `i` skips compared with what was read of its publisher (a
  /// restart on a new connection or at 1 skips i - 1); updates the read view.
  std::uint64_t readSkip(PendingSeq &p) {
    auto [it, inserted] = read_view_.try_emplace(p.key);
    ReadView &v = it->second;
    std::uint64_t skipped = 0;
    p.prev_high = v.high;
    if (inserted) {
      v.high = p.i;
      p.raised = true;
    } else if (p.i > v.high) {
      skipped = p.i - v.high - 1;
      v.high = p.i;
      p.raised = true;
    } else if (p.epoch != v.epoch || p.i == 1 || v.high - p.i >= SeqTracker::kWindow) {
      skipped = p.i - 1;  // a restart
      v.high = p.i;
      p.raised = true;
    }
    v.epoch = p.epoch;
    return skipped;
  }

  /// The verifier refused @p p: what it claimed must not move the read view.
  void unread(const PendingSeq &p) {
    if (!p.raised) {
      return;
    }
    auto it = read_view_.find(p.key);
    if (it == read_view_.end() || it->second.high != p.i) {
      return;  // moved on since
    }
    if (p.prev_high == 0) {
      read_view_.erase(it);  // a name only forged messages used: forget it (bounded memory)
    } else {
      it->second.high = p.prev_high;
    }
  }

  /// submit() answered Stopping for @p tag: it will get no filtered().
  void seqNotTaken(std::uint64_t tag) {
    if (!pending_.empty() && pending_.back().tag == tag) {
      pending_.pop_back();
    }
  }

  void filtered(std::uint64_t tag, bool passed, std::string_view refused_by, std::string_view reason) noexcept override {
    (void)reason;
    if (ctx_ == nullptr) {
      return;
    }
    try {
      filtered_seen_ = true;
      while (!pending_.empty() && pending_.front().tag <= tag) {
        PendingSeq p = std::move(pending_.front());
        pending_.pop_front();
        if (p.tag != tag) {
          settle(*ctx_, p, true);  // no verdict came for it (not expected): as before ABI 1.2
          continue;
        }
        // A message the verifier refused says nothing true about its publisher; one refused
        // by another filter (loop-guard, a topic filter) is genuine and still counts.
        bool genuine = passed || refused_by != "verifier";
        if (!genuine) {
          unread(p);
        }
        settle(*ctx_, p, genuine);
      }
    } catch (const std::exception &e) {
      ctx_->log().error("sequence tracking: {}", e.what());
    }
  }

  void complete(std::uint64_t tag, Outcome outcome, std::string_view reason) noexcept override {
    (void)outcome, (void)reason;
    if (seq_legacy_ || ctx_ == nullptr || pending_.empty() || pending_.front().tag > tag) {
      return;
    }
    // Settled before its verdict came: filtered() is not called by this runtime.
    try {
      if (!filtered_seen_) {
        seq_legacy_ = true;
        ctx_->log().info("the runtime does not report filter verdicts: sequence tracking observes `i` "
                         "before the filters (forged envelopes are counted too)");
      }
      while (!pending_.empty() && (seq_legacy_ || pending_.front().tag <= tag)) {
        PendingSeq p = std::move(pending_.front());
        pending_.pop_front();
        settle(*ctx_, p, true);
      }
    } catch (const std::exception &e) {
      ctx_->log().error("sequence tracking: {}", e.what());
    }
  }

  void settle(SourceContext &ctx, const PendingSeq &p, bool track) {
    if (!track) {
      unverified_->add();
      return;
    }
    if (p.i == 0) {
      untracked_->add();
      return;
    }
    SeqEvent ev = tracker_.observe(p.key, p.i, nowMs(), p.epoch);
    if (ev.kind != SeqEvent::Kind::Duplicate) {  // a duplicate changes nothing the state file keeps
      seq_dirty_ = true;
    }
    switch (ev.kind) {
      case SeqEvent::Kind::First: publishers_->set(static_cast<std::int64_t>(tracker_.publishers())); break;
      case SeqEvent::Kind::InOrder:
      case SeqEvent::Kind::Ahead: break;
      case SeqEvent::Kind::Duplicate: duplicates_->add(); break;
      case SeqEvent::Kind::Reordered: reordered_->add(); break;
      case SeqEvent::Kind::Late:
        late_->add();
        drop_log_.warn(ctx, "seq_late", "publisher {}: i={} arrived after it was counted missing", p.key, p.i);
        break;
      case SeqEvent::Kind::Restart:
        restarts_->add();
        drop_log_.warn(ctx, "seq_restart", "publisher {} restarted (i={})", p.key, p.i);
        break;
    }
    judged(ctx, p.key, ev.missing, ev.gaps, p.i);
    open_->set(static_cast<std::int64_t>(tracker_.open()));
  }

  void judged(SourceContext &ctx, const std::string &key, std::uint64_t missing, std::uint64_t gaps,
              std::uint64_t below) {
    if (missing == 0) {
      return;
    }
    gaps_->add(gaps);
    missing_->add(missing);
    drop_log_.warn(ctx, "seq_gap", "publisher {}: {} message(s) missing before i={}", key, missing, below);
  }

  /// Every poll(): judges what stayed open past reorder_time, saves the state when due.
  void seqHousekeeping(SourceContext &ctx) noexcept {
    if (!track_) {
      return;
    }
    try {
      std::int64_t now = nowMs();
      tracker_.expire(now, [&](const std::string &key, std::uint64_t missing, std::uint64_t gaps, std::uint64_t upto) {
        seq_dirty_ = true;
        judged(ctx, key, missing, gaps, upto + 1);
      });
      open_->set(static_cast<std::int64_t>(tracker_.open()));
      if (!state_file_.empty() && seq_dirty_ &&
          (state_interval_ms_ == 0 || now - last_write_ms_ >= state_interval_ms_)) {
        saveState(ctx, now);
      }
    } catch (const std::exception &e) {
      ctx.log().error("sequence tracking: {}", e.what());
    }
  }

  void saveState(SourceContext &ctx, std::int64_t now) {
    std::string err;
    last_write_ms_ = now;
    if (writeStateFile(state_file_, tracker_.save(), err)) {
      seq_dirty_ = false;
    } else {
      drop_log_.warn(ctx, "state_file", "cannot save the sequence state: {}", err);
    }
  }

  /// At stop: with a state file the open values are saved open (the next process judges
  /// them, and can still see them arrive); without one they are judged now.
  void seqStop() noexcept {
    if (!track_ || ctx_ == nullptr) {
      return;
    }
    try {
      if (state_file_.empty()) {
        tracker_.judgeAll([&](const std::string &key, std::uint64_t missing, std::uint64_t gaps, std::uint64_t upto) {
          judged(*ctx_, key, missing, gaps, upto + 1);
        });
      } else {
        saveState(*ctx_, nowMs());
      }
      open_->set(static_cast<std::int64_t>(tracker_.open()));
    } catch (const std::exception &e) {
      ctx_->log().error("sequence tracking: {}", e.what());
    }
  }

  std::vector<std::string> endpoints_;
  bool bind_;
  std::vector<std::string> topics_;
  bool all_topics_ = true;  // "" among the topics: every message matches
  int hwm_;
  std::int64_t socket_max_;
  bool track_;
  SocketTuning tuning_;
  fedmsg::Limits limits_;

  std::unique_ptr<zmq::context_t> zctx_;
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
  std::uint64_t tag_ = 0;
  // Sequence tracking (see the functions above).
  SeqTracker tracker_;
  std::string state_file_;
  std::int64_t state_interval_ms_ = 0;
  std::int64_t last_write_ms_ = 0;
  bool seq_dirty_ = false;
  bool seq_legacy_ = false;     // the runtime does not call filtered(): observe before submit
  bool filtered_seen_ = false;  // filtered() was called at least once
  std::deque<PendingSeq> pending_;  // submitted, filtered() not yet called; in tag order
  std::unordered_map<std::string, ReadView> read_view_;  // for kSeqMissingMeta
  std::unordered_map<std::string, std::uint64_t> conn_epoch_;  // key prefix -> connection generation
  SourceContext *ctx_ = nullptr;
  DropLog drop_log_;

  Counter *received_ = nullptr;
  Counter *gaps_ = nullptr;
  Counter *missing_ = nullptr;
  Counter *duplicates_ = nullptr;
  Counter *reordered_ = nullptr;
  Counter *restarts_ = nullptr;
  Counter *untracked_ = nullptr;
  Gauge *publishers_ = nullptr;
  Counter *late_ = nullptr;
  Counter *unverified_ = nullptr;
  Gauge *open_ = nullptr;
  Counter *disconnects_ = nullptr;
  Counter *protocol_disconnects_ = nullptr;
  Counter *reconnects_ = nullptr;
};

}  // namespace

SWITCHYARD_PLUGIN(ZmqSubSource, SY_KIND_SOURCE, "zmq-sub", "1.0.0",
                  "Receives fedmsg messages from ZeroMQ PUB sockets (SUB, connect or bind)", 0,
                  kSchema)
