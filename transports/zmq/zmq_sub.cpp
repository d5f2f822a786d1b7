// SPDX-License-Identifier: MIT
//
// zmq-sub, the source itself (see zmq_sub.hpp): poll() waits on the sockets' epoll set,
// reads the ready sockets in turns, decodes each message once (fedmsg::decode) and
// submits it; stopIntake() drains the sockets at shutdown.
//
// Shutdown: the sockets are XSUB, not SUB, which differ in one way that matters here: XSUB
// does not filter what it receives against its subscriptions (the publishers filter,
// ZMTP 3), so stopIntake() can unsubscribe (the publishers stop sending to us) and still
// read everything the sockets already hold, and submit it. What the pipeline no longer
// takes is counted as dropped{shutdown}.
#include <poll.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>

#include "zmq_probe.hpp"
#include "zmq_sub.hpp"

namespace switchyard::zmqt {
namespace {
// Shutdown drain: the sockets count as drained once none of them had anything to read for
// this long after the unsubscription (messages the publishers sent before it reached them
// are still on the way), or after kDrainCap in all.
constexpr auto kDrainQuiet = std::chrono::milliseconds(100);
constexpr auto kDrainCap = std::chrono::seconds(10);
// After kDrainCap, what the sockets still hold is read and counted for at most this long.
constexpr auto kDrainCountCap = std::chrono::seconds(1);
}  // namespace

ZmqSubSource::ZmqSubSource(const SubSettings &settings, std::shared_ptr<zmq::context_t> zctx)
    : settings_(settings), zctx_(std::move(zctx)), seq_(settings.seq), replay_(settings.replay, settings.limits) {}

ZmqSubSource::~ZmqSubSource() {
  if (epoll_fd_ >= 0) {
    ::close(epoll_fd_);
  }
}

Status ZmqSubSource::probe(ProbeReport &report, std::chrono::milliseconds timeout) noexcept {
  if (settings_.srv.empty()) {
    return probeEndpoints(report, settings_.endpoints, settings_.bind, timeout);
  }
  // Half the time for the configured endpoints, the rest for the SRV names and their targets.
  Status st = probeEndpoints(report, settings_.endpoints, settings_.bind, timeout / 2);
  Status srv = probeSrv(report, timeout - timeout / 2);
  return st.isOk() ? srv : st;
}

Status ZmqSubSource::start(SourceContext &ctx) noexcept {
  try {
    openSockets(ctx);
  } catch (const EndpointError &e) {
    sockets_.clear();
    return e.status;
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
  if (Status st = seq_.start(ctx); !st.isOk()) {
    sockets_.clear();
    return st;
  }
  replay_.start(ctx, zctx_, epoll_fd_, kReplayBit);
  if (Status st = startSrv(ctx); !st.isOk()) {
    sockets_.clear();
    return st;
  }
  disconnects_ = &ctx.counter("disconnects");
  protocol_disconnects_ = &ctx.counter("protocol_disconnects");
  reconnects_ = &ctx.counter("reconnects");
  connected_ = &ctx.gauge("connected");
  endpoints_connected_ = &ctx.gauge("endpoints_connected");
  updateConnectedGauges();
  return Status::ok();
}

Status ZmqSubSource::poll(SourceContext &ctx, std::chrono::milliseconds timeout) noexcept {
  seq_.housekeeping(ctx);
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
    replay_.housekeeping(ctx);
    serviceSrv(ctx);
    submitReplayed(ctx);
    int wait_ms = ready_.empty() ? static_cast<int>(timeout.count()) : 0;
    if (wait_ms > 0 && lost_count_ > 0) {
      wait_ms = std::min(wait_ms, msUntilNextReconnect());
    }
    if (int r = replay_.msUntilDeadline(); wait_ms > 0 && r >= 0) {
      wait_ms = std::min(wait_ms, r);
    }
    if (int r = srv_ ? srv_->msUntilDue() : -1; wait_ms > 0 && r >= 0) {
      wait_ms = std::min(wait_ms, r);
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
      const epoll_event &ev = events[static_cast<std::size_t>(k)];
      std::uint32_t data = ev.data.u32;
      if ((data & kMonitorBit) != 0 && (data & ~kMonitorBit) < sockets_.size()) {
        if (!sockets_[data & ~kMonitorBit].dead) {
          serviceMonitor(ctx, sockets_[data & ~kMonitorBit]);
        }
      } else if ((data & kReplayBit) != 0) {
        replay_.onReadable(ctx, data & ~kReplayBit);
      } else if ((data & kSrvBit) != 0 && srv_) {
        srv_->onFd(static_cast<int>(data & ~kSrvBit), ev.events);
      }
    }
    if (srv_) {
      srv_->processTimeouts();
      serviceSrv(ctx);
    }
    submitReplayed(ctx);
    if (lost_count_ > 0) {
      reconnectLost(ctx);
    }
    for (int k = 0; k < n; ++k) {
      std::uint32_t data = events[static_cast<std::size_t>(k)].data.u32;
      if ((data & kKindBits) != 0) {
        continue;
      }
      std::size_t idx = data;
      // ZMQ_FD only says "something happened" (commands, not necessarily messages).
      // Reading ZMQ_EVENTS processes the socket's pending commands, which also resets
      // the fd, so the level-triggered epoll does not keep reporting it.
      if (idx < sockets_.size() && !sockets_[idx].ready && !sockets_[idx].dead &&
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
      if (sockets_[idx].dead) {
        sockets_[idx].ready = false;
        ready_.pop_front();
        continue;
      }
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
void ZmqSubSource::stopIntake(SourceContext &ctx) noexcept {
  if (stopped_intake_) {
    return;  // submit() already answered Stopping
  }
  draining_ = true;
  try {
    for (auto &s : sockets_) {
      if (s.dead) {
        continue;
      }
      for (const auto &t : settings_.topics) {
        sendSubscription(s.sock, false, t);
      }
    }
    drainAll(ctx);
    // What waits for a replay answer goes now, without it.
    replay_.abandonAll(ctx);
    submitReplayed(ctx);
  } catch (const std::exception &e) {
    ctx.log().error("shutdown drain of the ZeroMQ sockets failed: {}", e.what());
  }
  stopped_intake_ = true;
}

void ZmqSubSource::stop() noexcept {
  seq_.stop();
  replay_.close();
  srv_.reset();
  closeSockets();
}

void ZmqSubSource::filtered(std::uint64_t tag, bool passed, std::string_view refused_by,
                            std::string_view reason) noexcept {
  (void)reason;
  seq_.filtered(tag, passed, refused_by);
}

void ZmqSubSource::complete(std::uint64_t tag, Outcome outcome, std::string_view reason) noexcept {
  (void)outcome, (void)reason;
  seq_.complete(tag);
}

/// stopIntake(): reads every socket until none had anything for kDrainQuiet.
void ZmqSubSource::drainAll(SourceContext &ctx) {
  auto start = Clock::now();
  std::uint64_t read_before = received_->value();
  auto quiet_since = start;
  std::array<epoll_event, kMaxEpollEvents> events{};
  bool quiet = false;
  while (Clock::now() - start < kDrainCap) {
    bool any = false;
    for (auto &s : sockets_) {
      if (s.dead) {
        continue;
      }
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
                   "counting what they hold as dropped{{reason=shutdown}}",
                   std::chrono::duration_cast<std::chrono::seconds>(kDrainCap).count());
    refused_ = true;
    auto until = Clock::now() + kDrainCountCap;
    for (auto &s : sockets_) {
      if (s.dead) {
        continue;
      }
      std::size_t got = 0;
      while (Clock::now() < until && !drainSocket(ctx, s, kMaxPerPoll, got)) {
      }
    }
  }
  ctx.log().info("shutdown: read {} message(s) from the ZeroMQ sockets after unsubscribing; {} "
                 "counted as dropped{{reason=shutdown}}",
                 received_->value() - read_before, shutdown_drops_);
}

bool ZmqSubSource::drainSocket(SourceContext &ctx, Socket &s, std::size_t limit, std::size_t &got) {
  if (settings_.bind) {
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

void ZmqSubSource::handle(SourceContext &ctx, Socket &s, std::size_t count) {
  received_->add();
  if (refused_) {
    countShutdownDrop(ctx);  // read while draining, after the pipeline stopped taking messages
    return;
  }
  if (!settings_.all_topics && !subscribedTo(frames_[0].to_string_view())) {
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
  auto r = fedmsg::decode(frames_[0].to_string_view(), frames_[1].to_string_view(), m, settings_.limits);
  if (!r.ok()) {
    ctx.countDrop(r.reason);
    drop_log_.warn(ctx, r.reason, "dropped ({}): {} (from {})", r.reason, r.detail, where(s));
    return;
  }
  if (replay_.active() && !s.name.empty()) {
    auto verdict = replay_.onMessage(ctx, s.name, m, s.endpoint, s.generation);
    submitReplayed(ctx);  // before this one: what a given-up replay released
    if (verdict != ReplayClient::Verdict::Pass) {
      return;
    }
  }
  submitOne(ctx, std::move(m), s.endpoint, true);
}

void ZmqSubSource::submitReplayed(SourceContext &ctx) {
  if (!replay_.hasReady()) {
    return;
  }
  for (auto &item : replay_.takeReady()) {
    submitOne(ctx, std::move(item.msg), item.endpoint, !item.backfilled);
  }
}

void ZmqSubSource::submitOne(SourceContext &ctx, Message m, const std::string &endpoint, bool track_i) {
  if (refused_) {
    countShutdownDrop(ctx);
    return;
  }
  if (track_i && seq_.tracking()) {
    seq_.note(ctx, m, tag_ + 1, [&] { return (endpoint.empty() ? "bind|" + peerAddress() : endpoint) + '|'; });
  }
  if (!endpoint.empty()) {
    m.setMeta("zmq.endpoint", endpoint);
  }
  if (ctx.submit(std::move(m), ++tag_) == SourceContext::SubmitResult::Stopping) {
    // Not taken: counted. While draining (stopIntake), the rest is read and counted too;
    // otherwise reading stops here.
    refused_ = true;
    if (track_i && seq_.tracking()) {
      seq_.notTaken(tag_);
    }
    countShutdownDrop(ctx);
    if (!draining_) {
      stopped_intake_ = true;
    }
  }
}

bool ZmqSubSource::subscribedTo(std::string_view topic) const {
  return std::any_of(settings_.topics.begin(), settings_.topics.end(),
                     [&](const std::string &t) { return topic.starts_with(t); });
}

void ZmqSubSource::countShutdownDrop(SourceContext &ctx) {
  ++shutdown_drops_;
  ctx.countDrop("shutdown");
  drop_log_.warn(ctx, "shutdown", "dropped (shutdown): the pipeline no longer takes messages");
}

std::string ZmqSubSource::where(const Socket &s) {
  if (!s.endpoint.empty()) {
    return s.endpoint;
  }
  return peerAddress();
}

std::string ZmqSubSource::peerAddress() {
  try {
    const char *p = frames_[0].gets("Peer-Address");
    return p != nullptr ? std::string(p) : std::string("?");
  } catch (const zmq::error_t &) {
    return "?";  // not every transport has a peer address (inproc, ipc)
  }
}

}  // namespace switchyard::zmqt
