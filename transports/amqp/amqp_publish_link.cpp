// SPDX-License-Identifier: MIT
//
// amqp-publish: the link to the broker. Connect (one bounded attempt at start, then with
// backoff), a channel in confirm mode, publishing within the confirm window, confirms and
// returns, and a channel closed over one message (refuse that one, republish the others).
#include <poll.h>

#include <algorithm>
#include <regex>
#include <string>

#include "amqp_publish.hpp"

namespace switchyard::amqp {

Status AmqpPublish::poll(SinkContext &ctx, std::chrono::milliseconds timeout) noexcept {
  pump(ctx);
  service(ctx, timeout, true);
  return Status::ok();
}

Status AmqpPublish::flush(SinkContext &ctx, std::chrono::milliseconds timeout) noexcept {
  auto deadline = Clock::now() + timeout;
  while (!waiting_.empty() || !unconfirmed_.empty()) {
    if (!mayPublish() && unconfirmed_.empty()) {
      return Status::error(fmt::format("{} message(s) not published at shutdown: this instance stands by (lease)",
                                       waiting_.size()));
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      return Status::error(fmt::format("{} message(s) not confirmed by the broker at shutdown",
                                       waiting_.size() + unconfirmed_.size()));
    }
    pump(ctx);
    service(ctx, std::min(left, std::chrono::milliseconds(100)), false);
  }
  return Status::ok();
}

void AmqpPublish::scheduleRetry(SinkContext &ctx, const ConnectError &err) noexcept {
  next_attempt_ = Clock::now() + retryDelay(ctx, backoff_, settings_, err);
}

void AmqpPublish::connect(SinkContext &ctx) noexcept {
  ConnectError err;
  if (!connect(ctx, err)) {
    scheduleRetry(ctx, err);
  }
}

bool AmqpPublish::connect(SinkContext &ctx, ConnectError &err, double timeout_s) noexcept {
  if (!conn_.open(settings_, err, timeout_s) || !openChannel(ctx, true, err)) {
    conn_.drop();
    cc_.connect_failures->add();
    return false;
  }
  conn_.setRpcTimeout(settings_.connect_timeout);  // the start-up bound is over
  backoff_.reset();
  cc_.connects->add();
  if (ever_connected_) {
    cc_.reconnects->add();
  }
  ever_connected_ = true;
  cc_.up();
  ctx.log().info("connected to {} (exchange '{}', {} message(s) to republish)", settings_.redacted_url,
                 exchange_, waiting_.size());
  return true;
}

bool AmqpPublish::openChannel(SinkContext &ctx, bool fresh_connection, ConnectError &err) {
  auto st = conn_.state();
  if (fresh_connection) {
    channel_ = 0;
  }
  channel_ = static_cast<amqp_channel_t>(channel_ % 60000 + 1);
  amqp_channel_open(st, channel_);
  auto r = amqp_get_rpc_reply(st);
  if (r.reply_type != AMQP_RESPONSE_NORMAL) {
    err.message = "channel.open: " + describe(r);
    return false;
  }
  amqp_confirm_select(st, channel_);
  r = amqp_get_rpc_reply(st);
  if (r.reply_type != AMQP_RESPONSE_NORMAL) {
    err.message = "confirm.select: " + describe(r);
    return false;
  }
  if (fresh_connection && !exchange_.empty()) {
    // Declaring an amq.* exchange is refused (403) even when it matches: check those.
    bool passive = !declare_ || exchange_.rfind("amq.", 0) == 0;
    amqp_exchange_declare(st, channel_, amqp_cstring_bytes(exchange_.c_str()),
                          amqp_cstring_bytes(exchange_type_.c_str()), passive ? 1 : 0, 1, 0, 0,
                          amqp_empty_table);
    r = amqp_get_rpc_reply(st);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
      err.message = fmt::format("{} exchange '{}': {}", passive ? "checking" : "declaring", exchange_, describe(r));
      classifyDeclare(r, "exchange '" + exchange_ + "'", err);
      return false;
    }
  }
  next_seq_ = 1;
  channel_ok_ = true;
  nacking_since_.reset();
  acked_on_channel_ = false;
  (void)ctx;
  return true;
}

void AmqpPublish::service(SinkContext &ctx, std::chrono::milliseconds timeout, bool wake) noexcept {
  int lease_fd = -1;
  if (lease_) {
    // The lease is serviced on every pass (ticks, expiry) and its socket wakes the wait.
    timeout = std::min(timeout, lease_->service(ctx));
    if (lease_->hasBuffered()) {
      timeout = std::chrono::milliseconds(0);
    }
    lease_fd = lease_->fd();
  }
  if (!conn_.isOpen()) {
    auto now = Clock::now();
    if (now >= next_attempt_) {
      connect(ctx);
      pump(ctx);
      return;
    }
    auto until = std::chrono::duration_cast<std::chrono::milliseconds>(next_attempt_ - now);
    pollfd p[2] = {{wake ? ctx.wakeFd() : -1, POLLIN, 0}, {lease_fd, POLLIN, 0}};
    (void)::poll(p, 2, static_cast<int>(std::min(until, timeout).count()) + 1);
    return;
  }
  if (!conn_.hasBuffered()) {
    pollfd fds[3] = {{conn_.fd(), POLLIN, 0}, {wake ? ctx.wakeFd() : -1, POLLIN, 0}, {lease_fd, POLLIN, 0}};
    (void)::poll(fds, 3, static_cast<int>(timeout.count()));
  }
  readFrames(ctx);
  pump(ctx);
}

void AmqpPublish::readFrames(SinkContext &ctx) noexcept {
  int rc = conn_.readMethods(100000, [&](const amqp_frame_t &frame) {
    handleMethod(ctx, frame);
    return true;
  });
  if (rc != AMQP_STATUS_OK) {
    lostConnection(ctx, describeStatus(rc));
  }
}

void AmqpPublish::handleMethod(SinkContext &ctx, const amqp_frame_t &frame) noexcept {
  auto id = frame.payload.method.id;
  void *m = frame.payload.method.decoded;
  if (id == AMQP_CONNECTION_CLOSE_METHOD) {
    auto *c = static_cast<amqp_connection_close_t *>(m);
    std::string why = fmt::format("connection closed by broker: {} {}", c->reply_code,
                                  std::string_view(static_cast<char *>(c->reply_text.bytes), c->reply_text.len));
    sendConnectionCloseOk(conn_.state());
    lostConnection(ctx, why);
    return;
  }
  if (id == AMQP_CONNECTION_BLOCKED_METHOD) {
    auto *b = static_cast<amqp_connection_blocked_t *>(m);
    if (!blocked_) {
      blocked_count_->add();
      ctx.log().warn("broker blocked publishing on this connection: {}",
                     std::string_view(static_cast<char *>(b->reason.bytes), b->reason.len));
    }
    blocked_ = true;
    cc_.blocked->set(1);
    return;
  }
  if (id == AMQP_CONNECTION_UNBLOCKED_METHOD) {
    if (blocked_) {
      ctx.log().info("broker unblocked publishing");
    }
    blocked_ = false;
    cc_.blocked->set(0);
    return;
  }
  if (frame.channel != channel_ || !channel_ok_) {
    return;  // late frames of a channel we already gave up
  }
  switch (id) {
    case AMQP_BASIC_ACK_METHOD: {
      auto *a = static_cast<amqp_basic_ack_t *>(m);
      nacking_since_.reset();
      acked_on_channel_ = true;
      settleConfirms(ctx, a->delivery_tag, a->multiple != 0, true);
      break;
    }
    case AMQP_BASIC_NACK_METHOD: {
      auto *n = static_cast<amqp_basic_nack_t *>(m);
      settleConfirms(ctx, n->delivery_tag, n->multiple != 0, false);
      const auto now = std::chrono::steady_clock::now();
      if (acked_on_channel_) {
        break;
      }
      if (!nacking_since_) {
        nacking_since_ = now;
      } else if (now - *nacking_since_ >= kNackReconnect) {
        // Seen on a 3-node cluster: a channel opened while the leader of a quorum queue
        // was being replaced nacked every publish for good, while a new channel on the
        // same node was confirmed. The nacked messages are already handed back for retry.
        nacking_since_.reset();
        nack_reconnects_->add();
        lostConnection(ctx, fmt::format("every publish nacked for {} s; reconnecting, as a new channel may reach "
                                        "the queues' new leaders",
                                        kNackReconnect.count()));
        return;
      }
      break;
    }
    case AMQP_BASIC_RETURN_METHOD: {
      auto *r = static_cast<amqp_basic_return_t *>(m);
      std::string rk(static_cast<char *>(r->routing_key.bytes), r->routing_key.len);
      int code = r->reply_code;
      amqp_message_t msg;
      auto rr = amqp_read_message(conn_.state(), frame.channel, &msg, 0);
      if (rr.reply_type != AMQP_RESPONSE_NORMAL) {
        lostConnection(ctx, "reading a returned message: " + describe(rr));
        return;
      }
      std::string mid;
      if ((msg.properties._flags & AMQP_BASIC_MESSAGE_ID_FLAG) != 0) {
        mid.assign(static_cast<char *>(msg.properties.message_id.bytes), msg.properties.message_id.len);
      }
      amqp_destroy_message(&msg);
      // The return comes before the ack of the same publish; match them by id + key.
      returned_.insert(mid + '\0' + rk);
      ctx.log().debug("message {} returned by the broker: {} (routing key '{}')", mid, code, rk);
      break;
    }
    case AMQP_CHANNEL_CLOSE_METHOD: {
      auto *c = static_cast<amqp_channel_close_t *>(m);
      int code = c->reply_code;
      std::string text(static_cast<char *>(c->reply_text.bytes), c->reply_text.len);
      sendChannelCloseOk(conn_.state(), frame.channel);
      channelClosed(ctx, code, text);
      break;
    }
    default: break;
  }
}

void AmqpPublish::settleConfirms(SinkContext &ctx, std::uint64_t tag, bool multiple, bool ack) noexcept {
  auto end = multiple ? unconfirmed_.upper_bound(tag) : unconfirmed_.find(tag);
  auto begin = multiple ? unconfirmed_.begin() : end;
  if (!multiple) {
    if (end == unconfirmed_.end()) {
      return;
    }
    ++end;
  }
  std::size_t settled = 0;
  for (auto it = begin; it != end; ++it) {
    Pending &p = it->second;
    ++settled;
    if (!ack) {
      // Transient (queue full under reject-publish, a queue leader went away, ...): the
      // runtime sends it to this output again after a backoff; the other outputs of the
      // message are not touched.
      nacked_->add();
      drop_log_.warn(ctx, "nacked", "message {} nacked by the broker; it will be retried", p.message_id);
      ctx.retry(p.id, std::move(p.msg), "nacked");
      continue;
    }
    auto r = returned_.find(p.message_id + '\0' + p.routing_key);
    if (r != returned_.end()) {
      returned_.erase(r);
      returned_count_->add();
      if (unroutable_ == Outcome::Retry) {
        ctx.retry(p.id, std::move(p.msg), "unroutable");
      } else {
        ctx.done(p.id, unroutable_, "unroutable");
      }
      continue;
    }
    confirmed_->add();
    ctx.done(p.id, Outcome::Delivered);
  }
  unconfirmed_.erase(begin, end);
  probe_ -= std::min(probe_, settled);
  unconfirmed_gauge_->set(static_cast<std::int64_t>(unconfirmed_.size()));
}

void AmqpPublish::requeueUnconfirmed() {
  // Back to the head of the queue, in their original order.
  for (auto it = unconfirmed_.rbegin(); it != unconfirmed_.rend(); ++it) {
    republished_->add();
    waiting_.push_front(std::move(it->second));
  }
  unconfirmed_.clear();
  unconfirmed_gauge_->set(0);
  returned_.clear();
}

std::map<std::uint64_t, Pending>::iterator  AmqpPublish::findVictim(SinkContext &ctx, int code, const std::string &text,
                                                      const char *&reason) {
  reason = code == 403 ? "forbidden" : "precondition_failed";
  if (code == 403) {
    auto pos = text.find("topic '");
    if (pos != std::string::npos) {
      auto end = text.find('\'', pos + 7);
      if (end != std::string::npos) {
        std::string topic = text.substr(pos + 7, end - pos - 7);
        for (auto it = unconfirmed_.begin(); it != unconfirmed_.end(); ++it) {
          if (it->second.routing_key == topic) {
            return it;
          }
        }
      }
    }
  } else {
    static const std::regex kSize(R"(message size (\d+) is larger than (?:configured )?max size (\d+))");
    std::smatch m;
    if (std::regex_search(text, m, kSize)) {
      reason = "oversize";
      std::uint64_t size = std::stoull(m[1].str());
      std::uint64_t limit = std::stoull(m[2].str());
      if (limit < max_size_) {
        // Learn the broker's limit: the next big body is refused before it costs a channel.
        ctx.log().warn("the broker's max_message_size is {} bytes, below max_message_size {}: larger bodies are "
                       "now refused before publishing (set max_message_size: {} to say so at start)",
                       limit, max_size_, limit);
        max_size_ = limit;
      }
      for (auto it = unconfirmed_.begin(); it != unconfirmed_.end(); ++it) {
        if (it->second.msg.body().size() == size) {
          return it;
        }
      }
    }
  }
  // Alone on the channel (or isolated by probing): it must be the one.
  if (unconfirmed_.size() == 1) {
    return unconfirmed_.begin();
  }
  return unconfirmed_.end();
}

void AmqpPublish::channelClosed(SinkContext &ctx, int code, const std::string &text) noexcept {
  channel_ok_ = false;
  ctx.counter("channel_closures", std::to_string(code)).add();
  if ((code == 403 || code == 406) && !unconfirmed_.empty()) {
    // A refusal of one message (topic authorisation, size, a property the broker will not
    // take): the broker closed the channel at the first refused publish and discarded every
    // later one. Refuse only that message, for good, and republish the rest on a new
    // channel at once: republishing the refused one would close the channel again forever.
    const char *reason = nullptr;
    auto victim = findVictim(ctx, code, text, reason);
    if (victim != unconfirmed_.end()) {
      if (code == 403) {
        forbidden_->add();
      } else if (std::string_view(reason) == "oversize") {
        oversize_->add();
      }
      refused_->add();
      ctx.log().warn("message {} refused by the broker: {} {}", victim->second.message_id, code, text);
      ctx.done(victim->second.id, Outcome::Reject, reason);
      unconfirmed_.erase(victim);
      // While probing, a refusal keeps the next message alone as well: only a confirm ends
      // the probe. Messages that came in meanwhile (a second read of the input) are likely
      // refused too; sent as a batch they would cost another ambiguous closure.
      if (probe_ > 1) {
        --probe_;
      }
    } else {
      // The text does not say which message it was: send the suspects one at a time, so
      // the next closure has a single candidate.
      probe_ = unconfirmed_.size();
      ctx.log().warn("channel closed by the broker: {} {}; republishing the {} unconfirmed message(s) one at a "
                     "time to find the refused one",
                     code, text, probe_);
    }
    requeueUnconfirmed();
    ConnectError err;
    if (!openChannel(ctx, false, err)) {
      lostConnection(ctx, err.message);
    }
    return;
  }
  // Anything else (404 exchange gone, a closure with nothing in flight, ...): start over
  // with a fresh connection, at the backoff's pace so a persistent error does not become a
  // hot loop.
  ctx.log().error("channel closed by the broker: {} {}", code, text);
  conn_.close();
  lostConnection(ctx, fmt::format("channel error {}", code));
}

void AmqpPublish::lostConnection(SinkContext &ctx, const std::string &why) noexcept {
  conn_.drop();
  channel_ok_ = false;
  blocked_ = false;
  cc_.disconnects->add();
  cc_.down();
  std::size_t n = unconfirmed_.size();
  requeueUnconfirmed();
  auto d = nextDelay(backoff_);
  next_attempt_ = Clock::now() + d;
  ctx.log().warn("disconnected from {}: {}; {} unconfirmed message(s) will be republished; reconnecting in {} ms",
                 settings_.redacted_url, why, n, d.count());
}

void AmqpPublish::pump(SinkContext &ctx) noexcept {
  // While probing for a refused message, one message in flight at a time. A standby
  // (lease) publishes nothing.
  while (mayPublish() && connected() && !blocked_ && !waiting_.empty() && unconfirmed_.size() < (probe_ > 0 ? 1 : window_)) {
    Pending &p = waiting_.front();
    if (p.msg.body().size() > max_size_) {
      // Accepted before a 406 taught us the broker's lower limit: refuse it here rather
      // than close the channel again.
      refuseTooLarge(ctx, p.id, p.message_id, p.msg.body().size());
      waiting_.pop_front();
      continue;
    }
    int rc = publish(p);
    if (rc != AMQP_STATUS_OK) {
      batch_.clear();  // the connection goes: what it holds is republished on the next one
      lostConnection(ctx, "publish: " + describeStatus(rc));
      return;
    }
    published_->add();
    unconfirmed_.emplace(next_seq_++, std::move(p));
    waiting_.pop_front();
    if (batch_.size() >= kBatchBytes && !writeBatch(ctx)) {
      return;
    }
  }
  if (!batch_.empty() && !writeBatch(ctx)) {
    return;
  }
  unconfirmed_gauge_->set(static_cast<std::int64_t>(unconfirmed_.size()));
}

bool AmqpPublish::writeBatch(SinkContext &ctx) noexcept {
  int rc = batch_.write(conn_.fd(), amqp_get_heartbeat(conn_.state()));
  if (rc != AMQP_STATUS_OK) {
    lostConnection(ctx, "publish: " + describeStatus(rc));
    return false;
  }
  return true;
}

}  // namespace switchyard::amqp
