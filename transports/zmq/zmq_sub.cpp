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
#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <deque>
#include <memory>
#include <string>
#include <vector>

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
  }

  Status start(SourceContext &ctx) noexcept override {
    try {
      zctx_ = std::make_unique<zmq::context_t>(1);
      std::size_t count = bind_ ? 1 : endpoints_.size();
      for (std::size_t k = 0; k < count; ++k) {
        Socket s{zmq::socket_t(*zctx_, zmq::socket_type::sub), bind_ ? std::string() : endpoints_[k]};
        s.sock.set(zmq::sockopt::rcvhwm, hwm_);
        s.sock.set(zmq::sockopt::maxmsgsize, socket_max_);
        s.sock.set(zmq::sockopt::linger, 0);
        tuning_.apply(s.sock);
        for (const auto &t : topics_) {
          s.sock.set(zmq::sockopt::subscribe, t);
        }
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
    return Status::ok();
  }

  Status poll(SourceContext &ctx, std::chrono::milliseconds timeout) noexcept override {
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
        sweepIdle();
      }
      for (int k = 0; k < n; ++k) {
        std::size_t idx = events[static_cast<std::size_t>(k)].data.u32;
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
      while (budget > 0 && !ready_.empty() && !stopped_intake_) {
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

  void stopIntake(SourceContext &) noexcept override { stopped_intake_ = true; }

  void stop() noexcept override {
    ready_.clear();
    if (epoll_fd_ >= 0) {
      ::close(epoll_fd_);
      epoll_fd_ = -1;
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
  };

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
      // Nothing has been read yet, so nothing guarantees a signal for what is already
      // queued: start with every socket on the ready list (each leaves it at its EAGAIN).
      markReady(k);
    }
    return Status::ok();
  }

  void sweepIdle() {
    for (std::size_t k = 0; k < sockets_.size(); ++k) {
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
    for (got = 0; got < limit && !stopped_intake_; ++got) {
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
      handle(ctx, s, count);
    }
    return false;
  }

  void handle(SourceContext &ctx, Socket &s, std::size_t count) {
    received_->add();
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
      track(ctx, m, s);
    }
    if (!s.endpoint.empty()) {
      m.setMeta("zmq.endpoint", s.endpoint);
    }
    if (ctx.submit(std::move(m), ++tag_) == SourceContext::SubmitResult::Stopping) {
      stopped_intake_ = true;
    }
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

  /// Also annotates the message that revealed a gap with kSeqMissingMeta (how many were
  /// skipped), so that a consumer such as verify-missing can tell its own ZeroMQ losses apart.
  void track(SourceContext &ctx, Message &m, Socket &s) {
    auto seq = m.getMeta(meta::kFedmsgSeq);
    std::uint64_t i = 0;
    if (!seq || std::from_chars(seq->data(), seq->data() + seq->size(), i).ec != std::errc() || i == 0) {
      untracked_->add();
      return;
    }
    auto user = m.getMeta(meta::kFedmsgUsername);
    std::string key = s.endpoint.empty() ? "bind|" + peerAddress() : s.endpoint;
    key += '|';
    key += user ? *user : std::string_view("?");
    SeqEvent ev = tracker_.observe(key, i);
    switch (ev.kind) {
      case SeqEvent::Kind::First: publishers_->set(static_cast<std::int64_t>(tracker_.publishers())); break;
      case SeqEvent::Kind::InOrder: break;
      case SeqEvent::Kind::Gap:
        gaps_->add();
        missing_->add(ev.missing);
        m.setMeta(kSeqMissingMeta, std::to_string(ev.missing));
        drop_log_.warn(ctx, "seq_gap", "publisher {}: {} message(s) missing before i={}", key, ev.missing, i);
        break;
      case SeqEvent::Kind::Duplicate: duplicates_->add(); break;
      case SeqEvent::Kind::Reordered: reordered_->add(); break;
      case SeqEvent::Kind::Restart:
        restarts_->add();
        drop_log_.warn(ctx, "seq_restart", "publisher {} restarted (i={})", key, i);
        if (ev.missing > 0) {
          gaps_->add();
          missing_->add(ev.missing);
          m.setMeta(kSeqMissingMeta, std::to_string(ev.missing));
        }
        break;
    }
  }

  std::vector<std::string> endpoints_;
  bool bind_;
  std::vector<std::string> topics_;
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
  std::uint64_t tag_ = 0;
  SeqTracker tracker_;
  DropLog drop_log_;

  Counter *received_ = nullptr;
  Counter *gaps_ = nullptr;
  Counter *missing_ = nullptr;
  Counter *duplicates_ = nullptr;
  Counter *reordered_ = nullptr;
  Counter *restarts_ = nullptr;
  Counter *untracked_ = nullptr;
  Gauge *publishers_ = nullptr;
};

}  // namespace

SWITCHYARD_PLUGIN(ZmqSubSource, SY_KIND_SOURCE, "zmq-sub", "1.0.0",
                  "Receives fedmsg messages from ZeroMQ PUB sockets (SUB, connect or bind)", 0,
                  kSchema)
