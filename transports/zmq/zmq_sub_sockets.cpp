// SPDX-License-Identifier: MIT
//
// zmq-sub's sockets (see zmq_sub.hpp): opening them in the engine's ZeroMQ context, the
// epoll set that waits on them, their monitors, and the reconnect after a protocol
// disconnect.
//
// Waiting scales with the number of endpoints: zmq_poll() over N sockets costs O(N) per
// wake-up (it builds a pollfd array and asks every socket for ZMQ_EVENTS), which made a
// fixed message rate spread over 1,000 publishers cost several times as much CPU as over
// one. Instead each socket's ZMQ_FD sits in an epoll set, and a ready list holds the
// sockets that may still have queued messages; a wake-up touches only those.
//
// Connections: each socket has a monitor (zmq_socket_monitor, read through a PAIR socket
// whose ZMQ_FD is in the same epoll set). libzmq 4.3.4 treats a frame above
// ZMQ_MAXMSGSIZE, like a failed handshake, as a protocol error: the session ends with
// DISCONNECTED and is never retried (no CONNECT_RETRIED follows, unlike after a TCP
// reset), so the publisher would be cut off for good. A DISCONNECTED that no retry follows
// within kRetryGrace is such a protocol disconnect: it is counted (`protocol_disconnects`),
// logged, and the endpoint is disconnected and connected again by the application. What
// the dead connection lost shows up as a sequence gap at the publisher's next `i`: the
// tracker keeps its state across the reconnect. A new connection is reported to
// onEndpointConnected().
#include <netdb.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>

#include "zmq_sub.hpp"

namespace switchyard::zmqt {
namespace {

constexpr int kMonitorEvents = ZMQ_EVENT_CONNECTED | ZMQ_EVENT_CONNECT_DELAYED | ZMQ_EVENT_CONNECT_RETRIED |
                               ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_HANDSHAKE_SUCCEEDED |
                               ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                               ZMQ_EVENT_HANDSHAKE_FAILED_AUTH;
// After a connection's DISCONNECTED, libzmq emits CONNECT_RETRIED from the same I/O thread
// at once when it is going to reconnect by itself; without it within this time the session
// ended for good (protocol error) and zmq-sub reconnects the endpoint itself.
constexpr auto kRetryGrace = std::chrono::milliseconds(200);

/// A name for the inproc endpoint of a socket's monitor, unique in the process: every
/// zmq-sub of the engine opens its monitors in the same (shared) context.
std::string monitorAddress() {
  static std::atomic<std::uint64_t> next{0};
  return fmt::format("inproc://zmq-sub-monitor-{}", next.fetch_add(1, std::memory_order_relaxed));
}

std::string peerIp(int fd) {
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

}  // namespace

/// start(): one XSUB per endpoint (one bound to all of them in bind mode), each with its
/// monitor. Throws zmq::error_t, or EndpointError naming the endpoint that failed.
void ZmqSubSource::openSockets(SourceContext &ctx) {
  std::size_t count = settings_.bind ? 1 : settings_.endpoints.size();
  for (std::size_t k = 0; k < count; ++k) {
    Socket s = openOne(ctx, settings_.bind ? std::string() : settings_.endpoints[k], k);
    if (!settings_.bind && k < settings_.names.size()) {
      s.name = settings_.names[k];
    }
    sockets_.push_back(std::move(s));
  }
}

/// One XSUB with its monitor, connected to @p endpoint (bind mode: bound to every
/// endpoint; @p k is the endpoint's place in the configuration, for the error).
ZmqSubSource::Socket ZmqSubSource::openOne(SourceContext &ctx, const std::string &endpoint, std::size_t k) {
  const auto &endpoints = settings_.endpoints;
  Socket s{zmq::socket_t(*zctx_, zmq::socket_type::xsub), endpoint};
  s.opened_at = Clock::now();
  s.sock.set(zmq::sockopt::rcvhwm, settings_.hwm);
  s.sock.set(zmq::sockopt::maxmsgsize, settings_.socket_max);
  s.sock.set(zmq::sockopt::linger, 0);
  settings_.tuning.apply(s.sock);
  // XSUB: a subscription is a message (0x01 + prefix), kept by the socket and sent to
  // every peer that connects.
  for (const auto &t : settings_.topics) {
    sendSubscription(s.sock, true, t);
  }
  // The monitor first, so that no event of the first connection is missed.
  std::string mon_addr = monitorAddress();
  if (zmq_socket_monitor(s.sock.handle(), mon_addr.c_str(), kMonitorEvents) != 0) {
    throw zmq::error_t();
  }
  s.monitor = zmq::socket_t(*zctx_, zmq::socket_type::pair);
  s.monitor.set(zmq::sockopt::linger, 0);
  s.monitor.connect(mon_addr);
  std::size_t at = k;  // the endpoint being bound or connected, for the error
  try {
    if (settings_.bind) {
      for (at = 0; at < endpoints.size(); ++at) {
        s.sock.bind(endpoints[at]);
        ctx.log().info("bound {}", s.sock.get(zmq::sockopt::last_endpoint));
      }
    } else {
      s.sock.connect(endpoint);
      ctx.log().info("connecting to {}", endpoint);
    }
  } catch (const std::exception &e) {
    throw EndpointError(endpointFailure(settings_.bind, settings_.bind ? endpoints[at] : endpoint, at, e));
  }
  return s;
}

/// stop(): the monitors first, then the sockets (linger 0: nothing to flush on a SUB
/// socket), then our reference to the context.
void ZmqSubSource::closeSockets() noexcept {
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
  sockets_.clear();
  live_connections_ = 0;
  updateConnectedGauges();
  zctx_.reset();
}

void ZmqSubSource::sendSubscription(zmq::socket_t &sock, bool on, const std::string &prefix) {
  std::string m;
  m.reserve(prefix.size() + 1);
  m += on ? '\x01' : '\x00';
  m += prefix;
  (void)sock.send(zmq::buffer(m), zmq::send_flags::dontwait);
}

/// Reads every monitor event queued for @p s.
void ZmqSubSource::serviceMonitor(SourceContext &ctx, Socket &s) {
  MonitorEvent ev;
  while (recvMonitorEvent(s.monitor, ev)) {
    if (ev.valid) {
      onMonitorEvent(ctx, s, ev.event, ev.value, ev.has_address ? ev.address : s.endpoint);
    }
  }
}

void ZmqSubSource::onMonitorEvent(SourceContext &ctx, Socket &s, std::uint16_t event, std::uint32_t value,
                    const std::string &where) {
  switch (event) {
    case ZMQ_EVENT_CONNECT_RETRIED:
      // An endpoint never reached (nothing listens, the host does not resolve): libzmq
      // retries silently for ever, so say it once, with the endpoint.
      if (!settings_.bind && !s.ever_connected && !s.warned_unreachable) {
        s.warned_unreachable = true;
        ctx.log().warn("cannot connect to {} yet (nothing listens there, or the host does not resolve); still "
                       "retrying; `switchyard check --connect` tests the endpoints",
                       s.endpoint);
      }
      clearLost(s);  // libzmq (re)connects by itself
      break;
    case ZMQ_EVENT_CONNECT_DELAYED:
    case ZMQ_EVENT_CONNECTED:
      clearLost(s);  // libzmq (re)connects by itself
      break;
    case ZMQ_EVENT_ACCEPTED:
      if (settings_.bind) {
        if (s.peers.insert(static_cast<int>(value)).second) {
          ++live_connections_;
        }
        // Bind mode tracks publishers by peer address; the fd is still open here.
        std::string ip = peerIp(static_cast<int>(value));
        if (!ip.empty()) {
          onEndpointConnected(ctx, "bind|" + ip + "|");
        }
      }
      break;
    case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
      clearLost(s);
      if (!settings_.bind) {
        if (s.ever_connected) {
          reconnects_->add();
          conn_log_.info(ctx, "reconnected", "reconnected to {}", s.endpoint);
        } else {
          ctx.log().info("connected to {}", s.endpoint);
        }
        s.ever_connected = true;
        ++s.generation;  // a new connection (replay: a seq_id going down here is a restart)
        s.expect_connect = false;
        if (!s.up) {
          s.up = true;
          ++live_connections_;
        }
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
      if (s.up) {
        s.up = false;
        --live_connections_;
      }
      if (s.peers.erase(static_cast<int>(value)) != 0) {
        --live_connections_;
      }
      conn_log_.info(ctx, "disconnected", "connection {} closed", settings_.bind ? "to " + where : "to " + s.endpoint);
      if (!settings_.bind && !draining_ && !s.lost) {
        s.lost = true;
        s.lost_at = Clock::now();
        s.expect_connect = true;
        ++lost_count_;
      }
      break;
    default: break;
  }
  updateConnectedGauges();
}

void ZmqSubSource::updateConnectedGauges() {
  if (connected_ == nullptr) {
    return;  // start() has not made them yet (its monitors are read later)
  }
  // O(1) per monitor event: a thousand endpoints connecting at start cost a thousand updates.
  endpoints_connected_->set(live_connections_);
  connected_->set(settings_.bind ? (sockets_.empty() ? 0 : 1) : (live_connections_ > 0 ? 1 : 0));
}

void ZmqSubSource::clearLost(Socket &s) {
  if (s.lost) {
    s.lost = false;
    --lost_count_;
  }
}

ZmqSubSource::Clock::duration ZmqSubSource::reconnectDelay(const Socket &s) const {
  if (s.protocol_streak == 0) {
    return kRetryGrace;
  }
  std::int64_t ms = settings_.tuning.reconnect_ivl;
  for (unsigned k = 0; k < s.protocol_streak && ms < settings_.tuning.reconnect_ivl_max; ++k) {
    ms *= 2;
  }
  ms = std::min<std::int64_t>(ms, settings_.tuning.reconnect_ivl_max);
  return std::max<Clock::duration>(kRetryGrace, std::chrono::milliseconds(ms));
}

int ZmqSubSource::msUntilNextReconnect() const {
  auto now = Clock::now();
  auto next = Clock::duration::max();
  for (const auto &s : sockets_) {
    if (s.lost && !s.dead) {
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
void ZmqSubSource::reconnectLost(SourceContext &ctx) {
  auto now = Clock::now();
  for (auto &s : sockets_) {
    if (!s.lost || s.dead || now < s.lost_at + reconnectDelay(s) || draining_ || stopped_intake_ || ctx.stopping()) {
      continue;
    }
    clearLost(s);
    protocol_disconnects_->add();
    ++s.protocol_streak;
    drop_log_.warn(ctx, "protocol_disconnect",
                   "connection to {} closed by a protocol error (a frame above {} bytes, see "
                   "settings_.socket_maxmessage_size, or a failed handshake); libzmq does not retry it: "
                   "reconnecting (what it lost shows up as a sequence gap)",
                   s.endpoint, settings_.socket_max);
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

/// A new connection came up. Every publisher whose tracking key begins with @p key_prefix
/// may be a new incarnation from now on: connect mode gives "ENDPOINT|", bind mode
/// "bind|PEER_IP|". Called before any message of the new connection is handled (in bind
/// mode: as far as the monitor allows, see the docs).
void ZmqSubSource::onEndpointConnected(SourceContext &ctx, const std::string &key_prefix) {
  ctx.log().debug("new connection for publishers {}*", key_prefix);
  seq_.connected(key_prefix);
}

Status ZmqSubSource::setUpEpoll() {
  epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd_ < 0) {
    return Status::fatal(fmt::format("epoll_create1: {}", std::strerror(errno)));
  }
  for (std::size_t k = 0; k < sockets_.size(); ++k) {
    if (Status st = watch(k); !st.isOk()) {
      return st;
    }
  }
  return Status::ok();
}

/// Socket @p k and its monitor into the epoll set, and the socket onto the ready list.
Status ZmqSubSource::watch(std::size_t k) {
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
  return Status::ok();
}

void ZmqSubSource::sweepIdle(SourceContext &ctx) {
  for (std::size_t k = 0; k < sockets_.size(); ++k) {
    if (sockets_[k].dead) {
      continue;
    }
    // The monitors too: cheap insurance against a missed signal, which would delay the
    // detection of a protocol disconnect.
    serviceMonitor(ctx, sockets_[k]);
    if (!sockets_[k].ready && (sockets_[k].sock.get(zmq::sockopt::events) & ZMQ_POLLIN) != 0) {
      markReady(k);
    }
  }
}

void ZmqSubSource::markReady(std::size_t idx) {
  sockets_[idx].ready = true;
  ready_.push_back(idx);
}

}  // namespace switchyard::zmqt
