// SPDX-License-Identifier: MIT
//
// zmq-pub (sink), the sink itself (see zmq_pub.hpp): publishes messages as fedmsg
// ([topic, json envelope]).
//
//   outputs:
//     - type: zmq-pub
//       endpoints: ["tcp://*:9940"]
//       no_drop: true
//
// Frame 0 is the envelope topic. A message that carries an envelope (Message::envelope())
// is sent as that envelope's text, byte-exact, so a signature keeps validating: the
// envelope is always the message's own, since every setter of topic, body, headers or id
// drops it. Any other message gets a new envelope, built once by the codec's
// EnvelopeBuilder (year-prefixed msg_id, integer timestamp, `i` counting from 1 per
// socket, `username`).
//
// The socket is an XPUB, so the plugin sees subscriptions: it counts messages that no
// subscriber wanted (dropped, reason no_subscriber) or, when the input can redeliver
// (AMQP), hands them back to the runtime for a retry while nobody is subscribed yet
// (after a start or a restart); it can wait for a first subscriber (wait_for_subscriber).
// ZMQ_XPUB_NODROP is always set, so that a send a full subscriber pipe would refuse
// comes back as EAGAIN instead of being dropped inside libzmq: with no_drop the sink
// waits (backpressure); without it, slow_subscriber decides: skip (libzmq's way, counted
// per episode) or drop (nobody gets it, counted per message: dropped{subscriber_full}).
// Envelopes numbered by a parallel signer (meta "signer.i") leave in `i` order (a small
// reorder buffer). A message counts as delivered once ZeroMQ accepted it. With
// replay_endpoint, each envelope is numbered with `seq_id` and kept for replay queries
// (zmq_pub_replay.hpp). See docs/plugins/zmq-pub.md.
#include <poll.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <charconv>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>

#include "zmq_probe.hpp"
#include "zmq_pub.hpp"
#include "zmq_pub_replay.hpp"

namespace switchyard::zmqt {
namespace {

using Clock = std::chrono::steady_clock;

class ZmqPubSink final : public Sink {
 public:
  ZmqPubSink(const PubSettings &settings, std::shared_ptr<zmq::context_t> zctx)
      : settings_(settings), zctx_(std::move(zctx)), builder_(settings.username, settings.limits) {}

  /// `switchyard check --connect`: each bind address bound and closed again, or each
  /// relay endpoint connected to (zmq_probe.hpp).
  Status probe(ProbeReport &report, std::chrono::milliseconds timeout) noexcept override {
    Status s = probeEndpoints(report, settings_.endpoints, settings_.bind, timeout);
    if (s.isOk() && !settings_.replay_endpoint.empty()) {  // the replay endpoint: bindable
      s = probeEndpoints(report, {settings_.replay_endpoint}, true, timeout);
    }
    return s;
  }

  Status start(SinkContext &ctx) noexcept override {
    try {
      sock_ = std::make_unique<zmq::socket_t>(*zctx_, zmq::socket_type::xpub);
      sock_->set(zmq::sockopt::sndhwm, settings_.hwm);
      sock_->set(zmq::sockopt::linger, settings_.linger_ms);
      // Always: a full pipe answers EAGAIN, so that zmq-pub decides (and counts) what
      // happens instead of libzmq dropping silently (see sendFrames).
      sock_->set(zmq::sockopt::xpub_nodrop, 1);
      settings_.tuning.apply(*sock_);
      notify_fd_ = sock_->get(zmq::sockopt::fd);
    } catch (const std::exception &e) {
      sock_.reset();
      return Status::fatal(fmt::format("cannot set up the PUB socket: {}", e.what()));
    }
    connected_gauge_ = &ctx.gauge("connected");
    if (!settings_.bind) {
      // Connect mode: the connections' state from the socket's monitor (read in poll()),
      // for the `connected` and `endpoints_connected` gauges.
      endpoints_gauge_ = &ctx.gauge("endpoints_connected");
      reconnects_ = &ctx.counter("reconnects");
      disconnects_ = &ctx.counter("disconnects");
      try {
        static std::atomic<std::uint64_t> next{0};
        std::string addr = fmt::format("inproc://zmq-pub-monitor-{}", next.fetch_add(1, std::memory_order_relaxed));
        if (zmq_socket_monitor(sock_->handle(), addr.c_str(), ZMQ_EVENT_CONNECTED | ZMQ_EVENT_DISCONNECTED) != 0) {
          throw zmq::error_t();
        }
        monitor_ = std::make_unique<zmq::socket_t>(*zctx_, zmq::socket_type::pair);
        monitor_->set(zmq::sockopt::linger, 0);
        monitor_->connect(addr);
      } catch (const std::exception &e) {
        monitor_.reset();
        sock_.reset();
        return Status::fatal(fmt::format("cannot monitor the PUB socket: {}", e.what()));
      }
    }
    for (std::size_t k = 0; k < settings_.endpoints.size(); ++k) {
      const std::string &e = settings_.endpoints[k];
      try {
        if (settings_.bind) {
          sock_->bind(e);
          ctx.log().info("bound {}", sock_->get(zmq::sockopt::last_endpoint));
        } else {
          sock_->connect(e);
          ctx.log().info("connecting to {}", e);
        }
      } catch (const std::exception &err) {
        monitor_.reset();
        sock_.reset();
        return endpointFailure(settings_.bind, e, k, err);
      }
    }
    passed_ = &ctx.counter("envelopes_passed_through");
    built_ = &ctx.counter("envelopes_built");
    blocked_ = &ctx.counter("send_blocked");
    skips_ = &ctx.counter("subscriber_skips");
    reordered_ = &ctx.counter("reordered");
    reorder_skipped_ = &ctx.counter("reorder_skipped");
    reorder_late_ = &ctx.counter("reorder_late");
    subscriptions_gauge_ = &ctx.gauge("subscriptions");
    reorder_held_gauge_ = &ctx.gauge("reorder_held");
    retry_unsubscribed_ = settings_.retry_unsubscribed && ctx.inputCanRedeliver();
    if (!settings_.replay_endpoint.empty()) {
      replay_ = std::make_unique<PubReplay>(settings_, zctx_);
      if (Status s = replay_->start(ctx); !s.isOk()) {
        replay_.reset();
        monitor_.reset();
        sock_.reset();
        return s;
      }
    }
    connected_gauge_->set(settings_.bind ? 1 : 0);  // bound; connect mode: see readMonitor()
    return Status::ok();
  }

  void send(SinkContext &ctx, Message &&msg, DeliveryId id) noexcept override {
    std::uint64_t seq = 0;
    try {
      // Asking libzmq for (un)subscriptions costs a poll(2) and a getpid(2) when there are
      // none: between the batches poll() asks, within a batch once a millisecond (the pace at
      // which libzmq's own sends look at new subscribers).
      if (auto now = Clock::now(); now >= next_drain_) {
        drainSubscriptions();
        next_drain_ = now + std::chrono::milliseconds(1);
      }
      if (first_) {
        first_ = false;
        waitForSubscriber(ctx);
      }
      // A re-send (runtime retry) goes out at once: holding it could not restore an
      // order it already lost.
      seq = ctx.attempt() == 0 ? signerSeq(msg) : 0;
    } catch (const std::exception &e) {
      // Not settled yet and the message is intact: the runtime tries again after a backoff
      // (no hot loop through the input's requeue).
      ctx.log().error("send failed: {}", e.what());
      ctx.retry(id, std::move(msg), "send_failed");
      return;
    }
    if (seq == 0) {
      deliver(ctx, std::move(msg), id);
    } else {
      admit(ctx, std::move(msg), id, seq);
    }
    if (!held_.empty()) {  // no clock read per message when nothing waits
      expireReorder(ctx, Clock::now());
    }
  }

  Status poll(SinkContext &ctx, std::chrono::milliseconds timeout) noexcept override {
    try {
      readMonitor();
      drainSubscriptions();
      if (!held_.empty()) {
        auto left = std::chrono::ceil<std::chrono::milliseconds>(hole_since_ + settings_.reorder_timeout - Clock::now());
        timeout = std::clamp(left, std::chrono::milliseconds(0), timeout);
      }
      if (timeout.count() > 0) {
        // What zmq::poll() does, without its extra non-blocking pass and the two event
        // checks around the wait (each a poll(2) and a getpid(2)): everything pending was
        // just read, so libzmq's notification fd turns readable when something new comes.
        pollfd fds[2] = {{notify_fd_, POLLIN, 0}, {ctx.wakeFd(), POLLIN, 0}};
        if (::poll(fds, 2, static_cast<int>(timeout.count())) > 0 && (fds[0].revents & POLLIN) != 0) {
          drainSubscriptions();
        }
      }
      expireReorder(ctx, Clock::now());
      if (replay_) {
        replay_->refreshGauges(false);
      }
    } catch (const zmq::error_t &e) {
      if (e.num() != EINTR) {
        return Status::error(fmt::format("zmq: {}", e.what()));
      }
    } catch (const std::exception &e) {
      return Status::error(fmt::format("poll: {}", e.what()));
    }
    return Status::ok();
  }

  Status flush(SinkContext &ctx, std::chrono::milliseconds timeout) noexcept override {
    (void)timeout;
    // Shutdown: what waits for a lower `i` goes now, in order.
    while (!held_.empty()) {
      skipHole(ctx);
    }
    return Status::ok();
  }

  void stop() noexcept override {
    try {
      if (replay_) {
        replay_->stop();  // its socket first: it lives in the same context
        replay_.reset();
      }
      // Closed: queued messages get `linger` ms to leave, in the I/O thread of the engine's
      // context, whose termination (when the engine is destroyed) waits for them.
      if (monitor_ && sock_) {
        (void)zmq_socket_monitor(sock_->handle(), nullptr, 0);
      }
      monitor_.reset();
      sock_.reset();
      zctx_.reset();
      if (connected_gauge_ != nullptr) {
        connected_gauge_->set(0);
      }
    } catch (...) {
    }
  }

 private:
  /// Connect mode: the monitor's events since the last call; a connection counts from
  /// CONNECTED to DISCONNECTED (both carry its file descriptor).
  void readMonitor() {
    if (!monitor_) {
      return;
    }
    bool changed = false;
    MonitorEvent ev;
    while (recvMonitorEvent(*monitor_, ev)) {
      if (!ev.valid) {
        continue;
      }
      if (ev.event == ZMQ_EVENT_CONNECTED) {
        live_.insert(static_cast<int>(ev.value));
        if (ever_connected_) {
          reconnects_->add();
        }
        ever_connected_ = true;
      } else if (ev.event == ZMQ_EVENT_DISCONNECTED) {
        live_.erase(static_cast<int>(ev.value));
        disconnects_->add();
      }
      changed = true;
    }
    if (changed) {
      endpoints_gauge_->set(static_cast<std::int64_t>(live_.size()));
      connected_gauge_->set(live_.empty() ? 0 : 1);
    }
  }

  /// The `i` a signer gave the message's envelope (meta "signer.i"), 0 if none.
  static std::uint64_t signerSeq(const Message &msg) {
    auto v = msg.getMeta(meta::kSignerSeq);
    if (!v || v->empty()) {
      return 0;
    }
    std::uint64_t n = 0;
    auto [end, ec] = std::from_chars(v->data(), v->data() + v->size(), n);
    return (ec == std::errc() && end == v->data() + v->size()) ? n : 0;
  }

  // --- `i` order ----------------------------------------------------------------------
  // The signer's instances number envelopes 1, 2, 3, ... in the order they get to its
  // counter, while the core hands them to the outputs in the stream's order, so `i` can
  // arrive slightly permuted (at most the core's reorder window apart). Each one waits
  // here until every lower `i` went out; a hole (an `i` whose message never comes: a later
  // filter dropped it, it went elsewhere) is skipped after reorder_timeout, or when
  // reorder_window messages are waiting.

  /// Settles @p id now, or holds it until its turn (then releaseReady settles it).
  void admit(SinkContext &ctx, Message &&msg, DeliveryId id, std::uint64_t seq) noexcept {
    try {
      admitOrThrow(ctx, msg, id, seq);
    } catch (const std::exception &e) {  // no memory for the map: send it as it comes
      ctx.log().error("reorder: {}", e.what());
      deliver(ctx, std::move(msg), id);
    }
  }

  void admitOrThrow(SinkContext &ctx, Message &msg, DeliveryId id, std::uint64_t seq) {
    if (seq < next_seq_) {
      reorder_late_->add();  // its turn was skipped already: late is better than never
      deliver(ctx, std::move(msg), id);
      return;
    }
    if (seq == next_seq_) {
      deliver(ctx, std::move(msg), id);
      ++next_seq_;
      releaseReady(ctx);
      return;
    }
    bool was_empty = held_.empty();
    // The slot first: if the map cannot grow, msg is still whole for admit()'s fallback.
    auto [slot, fresh] = held_.try_emplace(seq);
    if (!fresh) {  // the same `i` twice: not ours to judge; send it as it comes
      reorder_late_->add();
      deliver(ctx, std::move(msg), id);
      return;
    }
    if (was_empty) {
      hole_since_ = Clock::now();
    }
    slot->second.msg = std::move(msg);
    slot->second.id = id;
    reordered_->add();
    reorder_held_gauge_->set(static_cast<std::int64_t>(held_.size()));
    if (held_.size() > settings_.reorder_window) {
      skipHole(ctx);
    }
  }

  void releaseReady(SinkContext &ctx) noexcept {
    bool progressed = false;
    while (!held_.empty() && held_.begin()->first == next_seq_) {
      auto node = held_.extract(held_.begin());
      deliver(ctx, std::move(node.mapped().msg), node.mapped().id);
      ++next_seq_;
      progressed = true;
    }
    if (progressed) {
      hole_since_ = Clock::now();
    }
    reorder_held_gauge_->set(static_cast<std::int64_t>(held_.size()));
  }

  /// Gives up on the missing `i` values below the lowest one held.
  void skipHole(SinkContext &ctx) noexcept {
    if (held_.empty()) {
      return;
    }
    std::uint64_t lowest = held_.begin()->first;
    reorder_skipped_->add(lowest - next_seq_);
    drop_log_.warn(ctx, "reorder_skipped", "envelope i={}..{} never reached zmq-pub; sending i={} on",
                   next_seq_, lowest - 1, lowest);
    next_seq_ = lowest;
    releaseReady(ctx);
  }

  void expireReorder(SinkContext &ctx, Clock::time_point now) noexcept {
    while (!held_.empty() && now - hole_since_ >= settings_.reorder_timeout) {
      skipHole(ctx);
    }
  }

  // --- delivery -----------------------------------------------------------------------

  /// Settles @p id, whatever happens.
  void deliver(SinkContext &ctx, Message &&msg, DeliveryId id) noexcept {
    try {
      std::string_view envelope;
      bool built = false;
      if (const auto &env = msg.envelope()) {
        envelope = env->text;
        passed_->add();
      } else {
        auto r = builder_.build(msg, built_text_);
        if (!r.ok()) {
          drop_log_.warn(ctx, r.reason, "dropped ({}): {} (topic \"{}\")", r.reason, r.detail, msg.topic());
          ctx.done(id, Outcome::Dropped, r.reason);
          return;
        }
        envelope = built_text_;
        built = true;
        built_->add();
      }
      const bool subscribed = anySubscriberFor(msg.topic());
      if (replay_ && envelope.size() <= settings_.limits.max_bytes && (subscribed || !retryUnsubscribed())) {
        // Published (to the subscribers, or to nobody but the replay store): numbered now.
        envelope = replay_->number(ctx, msg, envelope, built, settings_.limits.max_bytes);
      }
      if (envelope.size() > settings_.limits.max_bytes) {
        drop_log_.warn(ctx, "oversize", "dropped (oversize): envelope of {} bytes, limit {}", envelope.size(),
                       settings_.limits.max_bytes);
        ctx.done(id, Outcome::Dropped, "oversize");
        return;
      }
      if (!subscribed) {
        if (retryUnsubscribed()) {
          // (At shutdown the runtime hands it straight back to the input, which redelivers
          // it to the next process, instead of scheduling a retry.)
          // Nobody can receive it yet (start-up, restart, subscribers reconnecting): the
          // input keeps it unsettled and the runtime sends it again after a backoff.
          drop_log_.warn(ctx, "no_subscriber_retry",
                         "no subscriber for \"{}\" yet: handing the message back for a retry", msg.topic());
          ctx.retry(id, std::move(msg), "no_subscriber");
          return;
        }
        drop_log_.warn(ctx, "no_subscriber", "dropped (no_subscriber): nobody subscribed to \"{}\"", msg.topic());
        ctx.done(id, Outcome::Dropped, "no_subscriber");
        return;
      }
      sendFrames(ctx, msg.topic(), envelope, id);  // settles id as its last step
    } catch (const std::exception &e) {
      // Only from before the settling (and before a move of msg): try again after a backoff.
      ctx.log().error("send failed: {}", e.what());
      ctx.retry(id, std::move(msg), "send_failed");
    }
  }

  /// Whether a message nobody subscribed to is handed back for a retry: only for an input
  /// that can redeliver, while there is no subscription at all, or within subscriber_grace
  /// of the first one (the others may be reconnecting).
  bool retryUnsubscribed() const {
    if (!retry_unsubscribed_) {
      return false;
    }
    if (subscriptions_.empty()) {
      return true;
    }
    return Clock::now() - subscribed_since_ <
           std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(settings_.subscriber_grace_s));
  }

  /// XPUB hands us one message per new subscription prefix (byte 1 + prefix) and one per
  /// prefix nobody holds any more (byte 0 + prefix); it de-duplicates across subscribers.
  void drainSubscriptions() {
    bool was_empty = subscriptions_.empty();
    while (true) {
      zmq::message_t m;
      auto r = sock_->recv(m, zmq::recv_flags::dontwait);
      if (!r) {
        break;
      }
      if (m.size() == 0) {
        continue;
      }
      const auto *d = static_cast<const char *>(m.data());
      std::string prefix(d + 1, m.size() - 1);
      if (d[0] == 1) {
        subscriptions_.insert(std::move(prefix));
      } else if (d[0] == 0) {
        subscriptions_.erase(prefix);
      }
    }
    if (was_empty && !subscriptions_.empty()) {
      subscribed_since_ = Clock::now();
    }
    subscriptions_gauge_->set(static_cast<std::int64_t>(subscriptions_.size()));
  }

  bool anySubscriberFor(std::string_view topic) const {
    return std::any_of(subscriptions_.begin(), subscriptions_.end(),
                       [&](const std::string &p) { return topic.substr(0, p.size()) == p; });
  }

  void waitForSubscriber(SinkContext &ctx) {
    if (settings_.wait_for_subscriber_s <= 0 || !subscriptions_.empty()) {
      return;
    }
    auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                       std::chrono::duration<double>(settings_.wait_for_subscriber_s));
    while (subscriptions_.empty() && Clock::now() < deadline && !ctx.stopping()) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      zmq::pollitem_t item{sock_->handle(), 0, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1, std::clamp(left, std::chrono::milliseconds(1), std::chrono::milliseconds(100)));
      drainSubscriptions();
    }
    if (subscriptions_.empty()) {
      ctx.log().warn("no subscriber after {} s; publishing anyway", settings_.wait_for_subscriber_s);
    }
  }

  void sendFrames(SinkContext &ctx, std::string_view topic, std::string_view envelope, DeliveryId id) {
    std::optional<Clock::time_point> deadline;
    if (settings_.send_timeout_ms >= 0) {
      deadline = Clock::now() + std::chrono::milliseconds(settings_.send_timeout_ms);
    }
    std::optional<Clock::time_point> stop_deadline;
    bool counted_block = false;
    while (true) {
      // Frame 0 decides: once it is accepted, libzmq takes the rest of the message.
      auto r = sock_->send(zmq::const_buffer(topic.data(), topic.size()),
                           zmq::send_flags::sndmore | zmq::send_flags::dontwait);
      if (r) {
        break;
      }
      // EAGAIN (ZMQ_XPUB_NODROP): a matching subscriber's pipe holds hwm messages.
      if (!settings_.no_drop && settings_.drop_for_all) {
        // Nothing was written: no pipe saw this message, the full one is not deactivated
        // (so the next message is judged afresh), and the count is exact.
        drop_log_.warn(ctx, "subscriber_full",
                       "dropped (subscriber_full): a subscriber's pipe is full (hwm {}); nobody gets this "
                       "message (slow_subscriber: drop)", settings_.hwm);
        ctx.done(id, Outcome::Dropped, "subscriber_full");
        return;
      }
      if (!settings_.no_drop) {
        // libzmq's own lossy behaviour, seen: with NODROP off for this one send the message
        // reaches every pipe with room; libzmq then takes the full pipe out of the send
        // set until its subscriber has read half of it, and what it misses meanwhile is
        // not reported. Counted: the times a subscriber started skipping.
        sock_->set(zmq::sockopt::xpub_nodrop, 0);
        try {
          sock_->send(zmq::const_buffer(topic.data(), topic.size()), zmq::send_flags::sndmore);
          sock_->send(zmq::const_buffer(envelope.data(), envelope.size()), zmq::send_flags::none);
        } catch (...) {
          sock_->set(zmq::sockopt::xpub_nodrop, 1);
          throw;
        }
        sock_->set(zmq::sockopt::xpub_nodrop, 1);
        skips_->add();
        drop_log_.warn(ctx, "subscriber_full",
                       "a subscriber's pipe is full (hwm {}): it skips messages until it has read half of them "
                       "(slow_subscriber: skip; libzmq does not say how many)", settings_.hwm);
        ctx.done(id, Outcome::Delivered);
        return;
      }
      if (!counted_block) {
        blocked_->add();
        counted_block = true;
        drop_log_.warn(ctx, "send_blocked", "a subscriber's pipe is full (hwm {}): waiting (no_drop)", settings_.hwm);
      }
      auto now = Clock::now();
      if (deadline && now >= *deadline) {
        drop_log_.warn(ctx, "send_timeout", "dropped (send_timeout): a subscriber pipe stayed full for {} ms",
                       settings_.send_timeout_ms);
        ctx.done(id, Outcome::Dropped, "send_timeout");
        return;
      }
      if (ctx.stopping()) {
        if (!stop_deadline) {
          stop_deadline = now + std::chrono::milliseconds(std::max(settings_.linger_ms, 0));
        } else if (now >= *stop_deadline) {
          ctx.done(id, Outcome::Retry, "shutdown");
          return;
        }
      }
      drainSubscriptions();
      zmq::pollitem_t item{sock_->handle(), 0, ZMQ_POLLOUT, 0};
      zmq::poll(&item, 1, std::chrono::milliseconds(50));
    }
    sock_->send(zmq::const_buffer(envelope.data(), envelope.size()), zmq::send_flags::none);
    ctx.done(id, Outcome::Delivered);
  }

  struct Held {
    Message msg;
    DeliveryId id = 0;
  };

  const PubSettings settings_;
  // Before the socket: the context outlives it (see zmq_common.hpp).
  std::shared_ptr<zmq::context_t> zctx_;
  std::unique_ptr<PubReplay> replay_;  ///< with replay_endpoint
  fedmsg::EnvelopeBuilder builder_;
  bool retry_unsubscribed_ = true;  ///< settings_.retry_unsubscribed, for an input that can redeliver

  std::unique_ptr<zmq::socket_t> sock_;
  int notify_fd_ = -1;               ///< ZMQ_FD of sock_: readable when libzmq has news
  Clock::time_point next_drain_{};  ///< send() asks for subscriptions again from then on
  std::set<std::string, std::less<>> subscriptions_;
  Clock::time_point subscribed_since_{};
  bool first_ = true;
  std::string built_text_;
  DropLog drop_log_;

  std::map<std::uint64_t, Held> held_;  ///< by `i`, waiting for a lower one
  std::uint64_t next_seq_ = 1;          ///< the signer's next `i` to go out
  Clock::time_point hole_since_{};      ///< since when next_seq_ is waited for

  Counter *passed_ = nullptr;
  Counter *built_ = nullptr;
  Counter *blocked_ = nullptr;
  Counter *skips_ = nullptr;
  Counter *reordered_ = nullptr;
  Counter *reorder_skipped_ = nullptr;
  Counter *reorder_late_ = nullptr;
  Gauge *subscriptions_gauge_ = nullptr;
  Gauge *reorder_held_gauge_ = nullptr;
  Gauge *connected_gauge_ = nullptr;
  Gauge *endpoints_gauge_ = nullptr;           ///< connect mode only
  std::unique_ptr<zmq::socket_t> monitor_;     ///< connect mode: the socket's monitor (PAIR)
  std::set<int> live_;                          ///< connect mode: fds of the live connections
  bool ever_connected_ = false;                 ///< connect mode: a connection came up once
  Counter *reconnects_ = nullptr;               ///< connect mode: connections after the first
  Counter *disconnects_ = nullptr;              ///< connect mode: connections that ended
};

}  // namespace

std::unique_ptr<Sink> makeZmqPubSink(const PubSettings &settings, std::shared_ptr<zmq::context_t> zctx) {
  return std::make_unique<ZmqPubSink>(settings, std::move(zctx));
}

}  // namespace switchyard::zmqt
