// SPDX-License-Identifier: MIT
//
// zmq-pub (sink): publishes messages as fedmsg ([topic, json envelope], interop-spec 1.2).
//
//   outputs:
//     - type: zmq-pub
//       endpoints: ["tcp://*:9940"]
//       no_drop: true
//
// Frame 0 is the envelope topic. A message whose original envelope still matches it
// (metadata "fedmsg.envelope", see fedmsg.hpp) is sent byte-exact, so a signature keeps
// validating; any other message gets a new envelope from the core codec (interop-spec
// 4.3: year-prefixed msg_id, integer timestamp, `i` counting from 1 per socket,
// `username`).
//
// The socket is an XPUB, so the plugin sees subscriptions: it counts messages that no
// subscriber wanted (dropped, reason no_subscriber), can wait for a first subscriber
// (wait_for_subscriber), and with no_drop sets ZMQ_XPUB_NODROP so that a full pipe
// becomes backpressure (send() waits) instead of a silent drop. A message counts as
// delivered once ZeroMQ accepted it. See docs/plugins/zmq-pub.md.
#include <poll.h>

#include <algorithm>
#include <memory>
#include <set>
#include <string>
#include <thread>

#include "zmq_common.hpp"

namespace {

using namespace switchyard;
using namespace switchyard::zmqt;
using Clock = std::chrono::steady_clock;

const sy_config_key kSchema[] = {
    {"endpoints", SY_CFG_STRING_LIST, 1, nullptr,
     "ZeroMQ addresses to bind (or to connect to, with bind: false), e.g. tcp://*:9940.", 0},
    {"bind", SY_CFG_BOOL, 0, "true",
     "Bind the endpoints (fedmsg publisher); false connects them (active mode, to a relay).", 0},
    {"hwm", SY_CFG_INT, 0, "1000",
     "ZMQ_SNDHWM: messages queued per subscriber; beyond it libzmq drops (or, with no_drop, "
     "the sink waits). 0 = unlimited.", 0},
    {"max_message_size", SY_CFG_INT, 0, "16777216",
     "Largest envelope sent, in bytes; bigger messages are dropped as oversize.", 0},
    {"max_depth", SY_CFG_INT, 0, "64", "Deepest JSON nesting accepted in a body that needs a new envelope.", 0},
    {"no_drop", SY_CFG_BOOL, 0, "false",
     "ZMQ_XPUB_NODROP: a full subscriber pipe makes the sink wait instead of dropping; one slow "
     "subscriber then stalls every subscriber.", 0},
    {"send_timeout", SY_CFG_INT, 0, "-1",
     "With no_drop: milliseconds to wait for a full pipe before dropping the message as "
     "send_timeout; -1 waits as long as the pipeline runs.", 0},
    {"username", SY_CFG_STRING, 0, "\"\"",
     "`username` of envelopes this sink builds; empty = the process's user name.", 0},
    {"linger", SY_CFG_INT, 0, "1000",
     "ZMQ_LINGER in milliseconds: how long queued messages may still leave at shutdown.", 0},
    {"wait_for_subscriber", SY_CFG_FLOAT, 0, "0",
     "Before the first message, wait up to this many seconds for a subscription (avoids the "
     "slow-joiner loss); 0 = do not wait.", 0},
    {"tcp_keepalive", SY_CFG_INT, 0, "1", "ZMQ_TCP_KEEPALIVE (-1 OS default, 0 off, 1 on).", 0},
    {"tcp_keepalive_cnt", SY_CFG_INT, 0, "3", "ZMQ_TCP_KEEPALIVE_CNT.", 0},
    {"tcp_keepalive_idle", SY_CFG_INT, 0, "60", "ZMQ_TCP_KEEPALIVE_IDLE in seconds.", 0},
    {"tcp_keepalive_intvl", SY_CFG_INT, 0, "5", "ZMQ_TCP_KEEPALIVE_INTVL in seconds.", 0},
    {"reconnect_ivl", SY_CFG_INT, 0, "100", "ZMQ_RECONNECT_IVL in milliseconds (connect mode).", 0},
    {"reconnect_ivl_max", SY_CFG_INT, 0, "1000", "ZMQ_RECONNECT_IVL_MAX in milliseconds.", 0},
    {nullptr, 0, 0, nullptr, nullptr, 0},
};

class ZmqPubSink final : public Sink {
 public:
  explicit ZmqPubSink(const sdk::Config &c)
      : endpoints_(c.strings("endpoints")),
        bind_(boolOr(c, "bind", true)),
        hwm_(static_cast<int>(nonNegative(c, "hwm", kDefaultHwm))),
        no_drop_(boolOr(c, "no_drop", false)),
        send_timeout_ms_(intOr(c, "send_timeout", -1)),
        linger_ms_(static_cast<int>(intOr(c, "linger", kDefaultLinger))),
        wait_for_subscriber_s_(numberOr(c, "wait_for_subscriber", 0.0)),
        tuning_(SocketTuning::fromConfig(c)),
        limits_(limitsFrom(c)),
        builder_(initUsername(c), limits_) {
    if (endpoints_.empty()) {
      throw sdk::ConfigError("endpoints", "'endpoints' needs at least one address");
    }
    if (send_timeout_ms_ < -1) {
      throw sdk::ConfigError("send_timeout", "'send_timeout' must be -1 or more");
    }
    if (linger_ms_ < -1) {
      throw sdk::ConfigError("linger", "'linger' must be -1 or more");
    }
    if (wait_for_subscriber_s_ < 0) {
      throw sdk::ConfigError("wait_for_subscriber", "'wait_for_subscriber' must not be negative");
    }
  }

  Status start(SinkContext &ctx) noexcept override {
    try {
      zctx_ = std::make_unique<zmq::context_t>(1);
      sock_ = std::make_unique<zmq::socket_t>(*zctx_, zmq::socket_type::xpub);
      sock_->set(zmq::sockopt::sndhwm, hwm_);
      sock_->set(zmq::sockopt::linger, linger_ms_);
      sock_->set(zmq::sockopt::xpub_nodrop, no_drop_ ? 1 : 0);
      tuning_.apply(*sock_);
      for (const auto &e : endpoints_) {
        if (bind_) {
          sock_->bind(e);
          ctx.log().info("bound {}", sock_->get(zmq::sockopt::last_endpoint));
        } else {
          sock_->connect(e);
          ctx.log().info("connecting to {}", e);
        }
      }
    } catch (const zmq::error_t &e) {
      sock_.reset();
      return Status::fatal(fmt::format("cannot set up the PUB socket: {}", e.what()), "endpoints");
    } catch (const std::exception &e) {
      sock_.reset();
      return Status::fatal(fmt::format("cannot set up the PUB socket: {}", e.what()));
    }
    passed_ = &ctx.counter("envelopes_passed_through");
    built_ = &ctx.counter("envelopes_built");
    stale_ = &ctx.counter("envelopes_stale");
    blocked_ = &ctx.counter("send_blocked");
    subscriptions_gauge_ = &ctx.gauge("subscriptions");
    return Status::ok();
  }

  void send(SinkContext &ctx, Message &&msg, DeliveryId id) noexcept override {
    try {
      drainSubscriptions();
      if (first_) {
        first_ = false;
        waitForSubscriber(ctx);
      }
      std::string_view envelope;
      if (fedmsg::envelopeMatches(msg, limits_)) {
        envelope = *msg.getMeta(meta::kFedmsgEnvelope);
        passed_->add();
      } else {
        if (msg.getMeta(meta::kFedmsgEnvelope)) {
          stale_->add();  // a stage changed the message but left the old envelope behind
        }
        auto r = builder_.build(msg, built_text_);
        if (!r.ok()) {
          drop_log_.warn(ctx, r.reason, "dropped ({}): {} (topic \"{}\")", r.reason, r.detail, msg.topic);
          ctx.done(id, Outcome::Dropped, r.reason);
          return;
        }
        envelope = built_text_;
        built_->add();
      }
      if (envelope.size() > limits_.max_bytes) {
        drop_log_.warn(ctx, "oversize", "dropped (oversize): envelope of {} bytes, limit {}", envelope.size(),
                       limits_.max_bytes);
        ctx.done(id, Outcome::Dropped, "oversize");
        return;
      }
      if (!anySubscriberFor(msg.topic)) {
        drop_log_.warn(ctx, "no_subscriber", "dropped (no_subscriber): nobody subscribed to \"{}\"", msg.topic);
        ctx.done(id, Outcome::Dropped, "no_subscriber");
        return;
      }
      sendFrames(ctx, msg.topic, envelope, id);
    } catch (const std::exception &e) {
      ctx.log().error("send failed: {}", e.what());
      ctx.done(id, Outcome::Retry, "send_failed");
    }
  }

  Status poll(SinkContext &ctx, std::chrono::milliseconds timeout) noexcept override {
    try {
      drainSubscriptions();
      zmq::pollitem_t items[] = {{sock_->handle(), 0, ZMQ_POLLIN, 0}, {nullptr, ctx.wakeFd(), ZMQ_POLLIN, 0}};
      if (zmq::poll(items, 2, timeout) > 0 && (items[0].revents & ZMQ_POLLIN) != 0) {
        drainSubscriptions();
      }
    } catch (const zmq::error_t &e) {
      if (e.num() != EINTR) {
        return Status::error(fmt::format("zmq: {}", e.what()));
      }
    }
    return Status::ok();
  }

  void stop() noexcept override {
    try {
      sock_.reset();  // close: queued messages get `linger` ms to leave
      zctx_.reset();  // waits for the linger period at most
    } catch (...) {
    }
  }

 private:
  static fedmsg::Limits limitsFrom(const sdk::Config &c) {
    std::int64_t max = intOr(c, "max_message_size", kDefaultMaxMessageSize);
    if (max <= 0) {
      throw sdk::ConfigError("max_message_size", "'max_message_size' must be positive");
    }
    std::int64_t depth = intOr(c, "max_depth", kDefaultMaxDepth);
    if (depth <= 0) {
      throw sdk::ConfigError("max_depth", "'max_depth' must be positive");
    }
    fedmsg::Limits l;
    l.max_bytes = static_cast<std::size_t>(max);
    l.max_depth = static_cast<std::size_t>(depth);
    return l;
  }

  static std::string initUsername(const sdk::Config &c) {
    std::string u = strOr(c, "username", "");
    return u.empty() ? processUserName() : u;
  }

  /// XPUB hands us one message per new subscription prefix (byte 1 + prefix) and one per
  /// prefix nobody holds any more (byte 0 + prefix); it de-duplicates across subscribers.
  void drainSubscriptions() {
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
    subscriptions_gauge_->set(static_cast<std::int64_t>(subscriptions_.size()));
  }

  bool anySubscriberFor(std::string_view topic) const {
    return std::any_of(subscriptions_.begin(), subscriptions_.end(),
                       [&](const std::string &p) { return topic.substr(0, p.size()) == p; });
  }

  void waitForSubscriber(SinkContext &ctx) {
    if (wait_for_subscriber_s_ <= 0 || !subscriptions_.empty()) {
      return;
    }
    auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                       std::chrono::duration<double>(wait_for_subscriber_s_));
    while (subscriptions_.empty() && Clock::now() < deadline && !ctx.stopping()) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      zmq::pollitem_t item{sock_->handle(), 0, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1, std::clamp(left, std::chrono::milliseconds(1), std::chrono::milliseconds(100)));
      drainSubscriptions();
    }
    if (subscriptions_.empty()) {
      ctx.log().warn("no subscriber after {} s; publishing anyway", wait_for_subscriber_s_);
    }
  }

  void sendFrames(SinkContext &ctx, std::string_view topic, std::string_view envelope, DeliveryId id) {
    std::optional<Clock::time_point> deadline;
    if (send_timeout_ms_ >= 0) {
      deadline = Clock::now() + std::chrono::milliseconds(send_timeout_ms_);
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
      // EAGAIN: only with ZMQ_XPUB_NODROP, when a subscriber's pipe is full.
      if (!counted_block) {
        blocked_->add();
        counted_block = true;
        drop_log_.warn(ctx, "send_blocked", "a subscriber's pipe is full (hwm {}): waiting (no_drop)", hwm_);
      }
      auto now = Clock::now();
      if (deadline && now >= *deadline) {
        drop_log_.warn(ctx, "send_timeout", "dropped (send_timeout): a subscriber pipe stayed full for {} ms",
                       send_timeout_ms_);
        ctx.done(id, Outcome::Dropped, "send_timeout");
        return;
      }
      if (ctx.stopping()) {
        if (!stop_deadline) {
          stop_deadline = now + std::chrono::milliseconds(std::max(linger_ms_, 0));
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

  std::vector<std::string> endpoints_;
  bool bind_;
  int hwm_;
  bool no_drop_;
  std::int64_t send_timeout_ms_;
  int linger_ms_;
  double wait_for_subscriber_s_;
  SocketTuning tuning_;
  fedmsg::Limits limits_;
  fedmsg::EnvelopeBuilder builder_;

  std::unique_ptr<zmq::context_t> zctx_;
  std::unique_ptr<zmq::socket_t> sock_;
  std::set<std::string, std::less<>> subscriptions_;
  bool first_ = true;
  std::string built_text_;
  DropLog drop_log_;

  Counter *passed_ = nullptr;
  Counter *built_ = nullptr;
  Counter *stale_ = nullptr;
  Counter *blocked_ = nullptr;
  Gauge *subscriptions_gauge_ = nullptr;
};

}  // namespace

SWITCHYARD_PLUGIN(ZmqPubSink, SY_KIND_SINK, "zmq-pub", "1.0.0",
                  "Publishes messages as fedmsg on a ZeroMQ PUB (XPUB) socket", 0, kSchema)
