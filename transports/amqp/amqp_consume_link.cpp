// SPDX-License-Identifier: MIT
//
// amqp-consume: the link to the broker. Connect (one bounded attempt at start, then with
// backoff), channel, qos, the queue and its bindings (declared again after every reconnect),
// basic.consume, reading frames, and settling deliveries: batched basic.ack (multiple=true
// below the oldest unsettled delivery), basic.nack with or without requeue.
#include <poll.h>

#include <algorithm>
#include <limits>
#include <string>

#include "amqp_consume.hpp"

namespace switchyard::amqp {

Status AmqpConsume::poll(SourceContext &ctx, std::chrono::milliseconds timeout) noexcept {
  if (!conn_.isOpen()) {
    if (intake_stopped_) {
      waitWake(ctx, timeout);
      return Status::ok();
    }
    auto now = Clock::now();
    if (now >= next_attempt_) {
      connect(ctx);
      return Status::ok();
    }
    waitWake(ctx, std::min(timeout, std::chrono::duration_cast<std::chrono::milliseconds>(next_attempt_ - now) +
                                        std::chrono::milliseconds(1)));
    return Status::ok();
  }
  flushAcks();
  if (!pending_error_.empty()) {
    readFrames(ctx);  // reports the failed ack as a lost connection
    return Status::ok();
  }
  if (!conn_.hasBuffered()) {
    pollfd fds[2] = {{conn_.fd(), POLLIN, 0}, {ctx.wakeFd(), POLLIN, 0}};
    (void)::poll(fds, 2, static_cast<int>(timeout.count()));
  }
  readFrames(ctx);
  return Status::ok();
}

void AmqpConsume::complete(std::uint64_t tag, Outcome outcome, std::string_view reason) noexcept {
  std::uint64_t gen = tag >> kTagBits;
  std::uint64_t dtag = tag & ((std::uint64_t{1} << kTagBits) - 1);
  if (!conn_.isOpen() || gen != generation_) {
    // Delivered on a connection or channel that is gone: the broker requeued it already.
    stale_->add();
    return;
  }
  unsettled_.erase(dtag);
  int rc = AMQP_STATUS_OK;
  switch (outcome) {
    case Outcome::Delivered:
    case Outcome::Dropped:
      // Sent by flushAcks(), batched: completions arrive in batches (the runtime drains
      // its completion queue before each poll), and one basic.ack with multiple=true
      // settles a run of them.
      ack_ready_.push_back(dtag);
      acked_->add();
      break;
    case Outcome::Retry:
      rc = amqp_basic_nack(conn_.state(), kChannel, dtag, 0, 1);
      requeued_->add();
      break;
    case Outcome::Reject:
    default:
      rc = amqp_basic_nack(conn_.state(), kChannel, dtag, 0, 0);
      rejected_->add();
      break;
  }
  (void)reason;
  if (rc != AMQP_STATUS_OK) {
    pending_error_ = "ack: " + describeStatus(rc);
  }
}

void AmqpConsume::stopIntake(SourceContext &ctx) noexcept {
  intake_stopped_ = true;
  if (conn_.isOpen() && consuming_) {
    // Fire and forget: basic.cancel-ok arrives among the frames poll() reads; deliveries
    // already in flight are left unacked and go back to the queue when we disconnect.
    amqp_basic_cancel_t req{};
    req.consumer_tag = amqp_bytes_t{consumer_tag_.size(), consumer_tag_.data()};
    req.nowait = 0;
    (void)amqp_send_method(conn_.state(), kChannel, AMQP_BASIC_CANCEL_METHOD, &req);
    consuming_ = false;
    ctx.log().info("consumer cancelled; draining {} in-flight message(s)", ctx.inFlight());
  }
}

void AmqpConsume::stop() noexcept {
  flushAcks();
  conn_.close();
}

void AmqpConsume::flushAcks() noexcept {
  if (ack_ready_.empty()) {
    return;
  }
  if (!conn_.isOpen()) {
    ack_ready_.clear();
    return;
  }
  std::sort(ack_ready_.begin(), ack_ready_.end());
  std::uint64_t low = unsettled_.empty() ? std::numeric_limits<std::uint64_t>::max() : *unsettled_.begin();
  auto split = std::lower_bound(ack_ready_.begin(), ack_ready_.end(), low);
  int rc = AMQP_STATUS_OK;
  if (split != ack_ready_.begin()) {
    bool several = split - ack_ready_.begin() > 1;
    rc = amqp_basic_ack(conn_.state(), kChannel, *(split - 1), several ? 1 : 0);
    if (several) {
      multiple_acks_->add();
    }
  }
  for (auto it = split; it != ack_ready_.end() && rc == AMQP_STATUS_OK; ++it) {
    rc = amqp_basic_ack(conn_.state(), kChannel, *it, 0);
  }
  ack_ready_.clear();
  if (rc != AMQP_STATUS_OK && pending_error_.empty()) {
    pending_error_ = "ack: " + describeStatus(rc);
  }
}

void AmqpConsume::waitWake(SourceContext &ctx, std::chrono::milliseconds t) {
  pollfd p{ctx.wakeFd(), POLLIN, 0};
  (void)::poll(&p, 1, static_cast<int>(t.count()));
}

void AmqpConsume::scheduleRetry(SourceContext &ctx, const ConnectError &err) noexcept {
  next_attempt_ = Clock::now() + retryDelay(ctx, backoff_, settings_, err);
}

void AmqpConsume::connect(SourceContext &ctx) noexcept {
  ConnectError err;
  if (!connect(ctx, err)) {
    scheduleRetry(ctx, err);
  }
}

bool AmqpConsume::connect(SourceContext &ctx, ConnectError &err, double timeout_s) noexcept {
  if (!conn_.open(settings_, err, timeout_s) || !setup(err)) {
    conn_.drop();
    cc_.connect_failures->add();
    return false;
  }
  conn_.setRpcTimeout(settings_.connect_timeout);  // the start-up bound is over
  ++generation_;
  unsettled_.clear();
  ack_ready_.clear();
  backoff_.reset();
  cc_.connects->add();
  if (ever_connected_) {
    cc_.reconnects->add();
  }
  ever_connected_ = true;
  cc_.up();
  ctx.log().info("connected to {}, consuming queue '{}' (prefetch {})", settings_.redacted_url, active_queue_,
                 prefetch_);
  return true;
}

bool AmqpConsume::setup(ConnectError &err) {
  auto st = conn_.state();
  amqp_channel_open(st, kChannel);
  auto r = amqp_get_rpc_reply(st);
  if (r.reply_type != AMQP_RESPONSE_NORMAL) {
    err.message = "channel.open: " + describe(r);
    return false;
  }
  amqp_basic_qos(st, kChannel, 0, prefetch_, 0);
  r = amqp_get_rpc_reply(st);
  if (r.reply_type != AMQP_RESPONSE_NORMAL) {
    err.message = "basic.qos: " + describe(r);
    return false;
  }
  return declareAndConsume(err);
}

bool AmqpConsume::declareAndConsume(ConnectError &err) {
  auto st = conn_.state();
  bool server_named = queue_.empty();
  amqp_table_t args{static_cast<int>(args_.size()), args_.data()};
  auto *ok = amqp_queue_declare(st, kChannel, amqp_cstring_bytes(queue_.c_str()), passive_ ? 1 : 0,
                                server_named ? 0 : (durable_ ? 1 : 0), server_named ? 1 : 0,
                                server_named ? 1 : (auto_delete_ ? 1 : 0), passive_ ? amqp_empty_table : args);
  auto r = amqp_get_rpc_reply(st);
  if (ok == nullptr || r.reply_type != AMQP_RESPONSE_NORMAL) {
    err.message = fmt::format("{} queue '{}': {}", passive_ ? "checking" : "declaring", queue_, describe(r));
    classifyDeclare(r, "queue '" + queue_ + "'", err);
    return false;
  }
  active_queue_.assign(static_cast<char *>(ok->queue.bytes), ok->queue.len);
  if (!passive_) {
    for (const auto &b : bindings_) {
      for (const auto &k : b.keys) {
        amqp_queue_bind(st, kChannel, amqp_cstring_bytes(active_queue_.c_str()),
                        amqp_cstring_bytes(b.exchange.c_str()), amqp_cstring_bytes(k.c_str()), amqp_empty_table);
        r = amqp_get_rpc_reply(st);
        if (r.reply_type != AMQP_RESPONSE_NORMAL) {
          err.message = fmt::format("binding '{}' on exchange '{}': {}", k, b.exchange, describe(r));
          classifyDeclare(r, "exchange '" + b.exchange + "'", err);
          return false;
        }
      }
    }
  }
  auto *cok = amqp_basic_consume(st, kChannel, amqp_cstring_bytes(active_queue_.c_str()), amqp_empty_bytes, 0,
                                 0, 0, amqp_empty_table);
  r = amqp_get_rpc_reply(st);
  if (cok == nullptr || r.reply_type != AMQP_RESPONSE_NORMAL) {
    err.message = "basic.consume: " + describe(r);
    classifyDeclare(r, "queue '" + active_queue_ + "'", err);
    return false;
  }
  consumer_tag_.assign(static_cast<char *>(cok->consumer_tag.bytes), cok->consumer_tag.len);
  consuming_ = true;
  return true;
}

void AmqpConsume::readFrames(SourceContext &ctx) noexcept {
  // Bounded per call so that completions (acks) are processed between batches.
  int rc = AMQP_STATUS_OK;
  if (pending_error_.empty()) {
    rc = conn_.readMethods(512, [&](const amqp_frame_t &frame) {
      handleMethod(ctx, frame);
      return pending_error_.empty();
    });
  }
  if (!pending_error_.empty()) {
    std::string e;
    e.swap(pending_error_);
    lostConnection(ctx, e);
  } else if (rc != AMQP_STATUS_OK) {
    lostConnection(ctx, describeStatus(rc));
  }
}

void AmqpConsume::handleMethod(SourceContext &ctx, const amqp_frame_t &frame) noexcept {
  void *m = frame.payload.method.decoded;
  switch (frame.payload.method.id) {
    case AMQP_BASIC_DELIVER_METHOD: {
      auto *d = static_cast<amqp_basic_deliver_t *>(m);
      std::uint64_t dtag = d->delivery_tag;
      bool redelivered = d->redelivered != 0;
      std::string rk(static_cast<char *>(d->routing_key.bytes), d->routing_key.len);
      std::string exchange(static_cast<char *>(d->exchange.bytes), d->exchange.len);
      amqp_message_t msg;
      auto r = amqp_read_message(conn_.state(), frame.channel, &msg, 0);
      if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        lostConnection(ctx, "reading a delivery: " + describe(r));
        return;
      }
      deliver(ctx, dtag, redelivered, rk, exchange, msg);
      amqp_destroy_message(&msg);
      break;
    }
    case AMQP_BASIC_CANCEL_METHOD: {
      // consumer_cancel_notify: the queue was deleted or its node went away. Subscribe
      // again (declaring the queue anew); if that fails, reconnect with backoff.
      cancels_->add();
      consuming_ = false;
      ctx.log().warn("the broker cancelled the consumer on queue '{}'; subscribing again", active_queue_);
      if (!intake_stopped_) {
        ConnectError err;
        if (!declareAndConsume(err)) {
          conn_.close();
          lostConnection(ctx, "re-subscribing: " + err.text());
        }
      }
      break;
    }
    case AMQP_CHANNEL_CLOSE_METHOD: {
      auto *c = static_cast<amqp_channel_close_t *>(m);
      std::string why = fmt::format("channel closed by broker: {} {}", c->reply_code,
                                    std::string_view(static_cast<char *>(c->reply_text.bytes), c->reply_text.len));
      sendChannelCloseOk(conn_.state(), frame.channel);
      conn_.close();
      lostConnection(ctx, why);
      break;
    }
    case AMQP_CONNECTION_CLOSE_METHOD: {
      auto *c = static_cast<amqp_connection_close_t *>(m);
      std::string why = fmt::format("connection closed by broker: {} {}", c->reply_code,
                                    std::string_view(static_cast<char *>(c->reply_text.bytes), c->reply_text.len));
      sendConnectionCloseOk(conn_.state());
      lostConnection(ctx, why);
      break;
    }
    case AMQP_CONNECTION_BLOCKED_METHOD:
      // RabbitMQ blocks connections that publish; this one does not, but a broker that
      // says so anyway is reported as it is (the `blocked` gauge).
      cc_.blocked->set(1);
      break;
    case AMQP_CONNECTION_UNBLOCKED_METHOD: cc_.blocked->set(0); break;
    default: break;  // basic.cancel-ok, ...
  }
}

void AmqpConsume::lostConnection(SourceContext &ctx, const std::string &why) noexcept {
  conn_.drop();
  consuming_ = false;
  ++generation_;  // every ack still owed belongs to the dead channel
  unsettled_.clear();
  ack_ready_.clear();
  cc_.disconnects->add();
  cc_.down();
  auto d = nextDelay(backoff_);
  next_attempt_ = Clock::now() + d;
  ctx.log().warn("disconnected from {}: {}; {} unacknowledged delivery(ies) will be redelivered by the broker; "
                 "reconnecting in {} ms",
                 settings_.redacted_url, why, ctx.inFlight(), d.count());
}

}  // namespace switchyard::amqp
