// SPDX-License-Identifier: MIT
//
// amqp-consume (source): consumes one AMQP 0-9-1 queue with manual acknowledgements.
// A delivery is acked only once the pipeline settled it (every output confirmed, or it was
// dropped on purpose); Retry -> basic.nack(requeue), Reject -> basic.nack(requeue=false)
// so a dead-letter exchange can take it. The queue and its bindings are declared again
// after every reconnect; acks for deliveries of an old connection are discarded (delivery
// tags are per channel), so those deliveries come back from the broker as redelivered.
// Bridge options (docs/bridges.md): restore_envelope rebuilds a fedmsg envelope carried in
// fedmsg_* headers (fedmsg_carry.hpp); require_object_body rejects non-object bodies.
// A delivery without a message_id is acked and dropped (`no_message_id`, like the reference
// bridge) unless missing_message_id: generate gives it a UUID4.
// Start-up (docs/delivery.md): a first connection attempt of at most 5 s; refused
// credentials, a missing vhost, an inequivalent queue and unusable TLS files are permanent
// (Status::permanent, exit 3); a broker that is down is not (poll() keeps retrying).
//
//   input:
//     type: amqp-consume
//     url: amqp://guest:guest@127.0.0.1:5672/%2F
//     queue: switchyard-a2z
//     bindings:
//       - {exchange: amq.topic, routing_keys: ["org.fedoraproject.#"]}
//     prefetch: 10
#include <poll.h>

#include <algorithm>
#include <chrono>
#include <limits>
#include <set>
#include <string>
#include <vector>

#include <rapidjson/error/en.h>

#include "amqp_common.hpp"
#include "switchyard/fedmsg_carry.hpp"
#include "switchyard/fedmsg.hpp"
#include "switchyard/sdk.hpp"

namespace {

using namespace switchyard;
using namespace switchyard::amqp;
using Clock = std::chrono::steady_clock;

const sy_config_key kSchema[] = {
    SY_AMQP_COMMON_KEYS,
    {"queue", SY_CFG_STRING, 0, "\"\"",
     "Queue to consume. \"\" lets the broker name an exclusive, auto-delete queue (lost on "
     "disconnect: use a name for at-least-once delivery).",
     0},
    {"durable", SY_CFG_BOOL, 0, "true", "Declare the queue durable (ignored for a server-named queue).", 0},
    {"auto_delete", SY_CFG_BOOL, 0, "false",
     "Declare the queue auto-delete: the broker deletes it when its last consumer goes (ignored for a "
     "server-named queue, which always is).",
     0},
    {"arguments", SY_CFG_MAP, 0, "{}",
     "queue.declare arguments, e.g. {x-message-ttl: 60000, x-queue-type: quorum, "
     "x-dead-letter-exchange: dlx}.",
     0},
    {"bindings", SY_CFG_LIST, 0, "[]",
     "List of {exchange, routing_keys} bound to the queue after every (re)connect.", 0},
    {"prefetch", SY_CFG_INT, 0, "10", "basic.qos prefetch count: unacknowledged deliveries at most.", 0},
    {"passive", SY_CFG_BOOL, 0, "false",
     "Only check that the queue exists (no declare, no bindings), for users without configure "
     "permission.",
     0},
    {"routing_key_prefix", SY_CFG_STRING, 0, "\"\"",
     "Removed (with the following dot) from the start of routing keys to form the topic.", 0},
    {"restore_envelope", SY_CFG_BOOL, 0, "false",
     "Rebuild the original fedmsg envelope (metadata fedmsg.envelope) of a message that amqp-publish "
     "sent with carry_envelope (fedmsg_* headers), so that a verifier can check its signature and "
     "zmq-pub re-emits it byte-identical.",
     0},
    {"require_object_body", SY_CFG_BOOL, 0, "false",
     "Reject (without requeue, dropped{not_an_object}) a body that is valid JSON but not an object, as "
     "fedora-messaging consumers do.",
     0},
    {"missing_message_id", SY_CFG_STRING, 0, "\"drop\"",
     "A delivery without a usable message_id property (absent, empty or not UTF-8): drop = ack it and drop it, "
     "counted as dropped{no_message_id} (what the reference bridge does: such a message can be neither "
     "de-duplicated nor matched by verify-missing); generate = give it a new UUID4 as its id and pass it on.",
     0},
    {nullptr, 0, 0, nullptr, nullptr, 0},
};

struct Binding {
  std::string exchange;
  std::vector<std::string> keys;
};

constexpr int kTagBits = 44;  // source tag = generation << 44 | delivery tag

class AmqpConsume final : public Source {
 public:
  explicit AmqpConsume(const sdk::Config &c)
      : settings_(Settings::fromConfig(c)),
        queue_(c.str("queue")),
        durable_(c.boolean("durable")),
        auto_delete_(c.boolean("auto_delete")),
        passive_(c.boolean("passive")),
        restore_(c.boolean("restore_envelope")),
        require_object_(c.boolean("require_object_body")),
        backoff_(settings_.max_delay) {
    auto pf = c.integer("prefetch");
    if (pf < 1 || pf > 65535) {
      throw sdk::ConfigError("prefetch", "prefetch must be between 1 and 65535");
    }
    prefetch_ = static_cast<std::uint16_t>(pf);
    prefix_ = c.str("routing_key_prefix");
    while (!prefix_.empty() && prefix_.back() == '.') {
      prefix_.pop_back();
    }
    const auto &args = c.value("arguments");
    std::string err;
    if (!args.IsObject() || !args_arena_.fromJson(args, args_, err)) {
      throw sdk::ConfigError("arguments", "'arguments' must be a mapping of AMQP-encodable values: " + err);
    }
    const auto &b = c.value("bindings");
    if (!b.IsArray()) {
      throw sdk::ConfigError("bindings", "'bindings' must be a list of {exchange, routing_keys}");
    }
    for (const auto &e : b.GetArray()) {
      if (!e.IsObject() || !e.HasMember("exchange") || !e["exchange"].IsString()) {
        throw sdk::ConfigError("bindings", "each binding needs 'exchange' (a string) and 'routing_keys'");
      }
      Binding bd;
      bd.exchange = e["exchange"].GetString();
      for (const auto &m : e.GetObject()) {
        std::string k = m.name.GetString();
        if (k != "exchange" && k != "routing_keys") {
          throw sdk::ConfigError("bindings", "unknown key '" + k + "' in a binding; allowed: exchange, routing_keys");
        }
      }
      if (!e.HasMember("routing_keys")) {
        throw sdk::ConfigError("bindings", "binding for exchange '" + bd.exchange + "' has no routing_keys");
      }
      const auto &rk = e["routing_keys"];
      if (rk.IsString()) {
        bd.keys.emplace_back(rk.GetString());
      } else if (rk.IsArray()) {
        for (const auto &k : rk.GetArray()) {
          if (!k.IsString()) {
            throw sdk::ConfigError("bindings", "routing_keys must be strings");
          }
          bd.keys.emplace_back(k.GetString());
        }
      } else {
        throw sdk::ConfigError("bindings", "routing_keys must be a string or a list of strings");
      }
      bindings_.push_back(std::move(bd));
    }
    std::string mid = c.str("missing_message_id");
    if (mid == "generate") {
      generate_ids_ = true;
    } else if (mid != "drop") {
      throw sdk::ConfigError("missing_message_id", "missing_message_id must be drop or generate");
    }
    if (passive_ && queue_.empty()) {
      throw sdk::ConfigError("passive", "passive mode needs a queue name");
    }
  }

  Status start(SourceContext &ctx) noexcept override {
    cc_.init(ctx);
    received_ = &ctx.counter("deliveries");
    redelivered_ = &ctx.counter("redelivered");
    acked_ = &ctx.counter("acked");
    requeued_ = &ctx.counter("nacked", "requeue");
    rejected_ = &ctx.counter("nacked", "reject");
    stale_ = &ctx.counter("stale_acks");
    multiple_acks_ = &ctx.counter("multiple_acks");
    cancels_ = &ctx.counter("consumer_cancelled");
    restored_ = &ctx.counter("envelopes_restored");
    restore_failed_ = &ctx.counter("envelopes_restore_failed");
    generated_ids_ = &ctx.counter("generated_ids");
    // One bounded attempt: errors that a restart cannot fix end the start-up (exit 3); a
    // broker that is down is not fatal, poll() keeps retrying.
    ConnectError err;
    if (!connect(ctx, err, kStartTimeoutS)) {
      if (err.permanent()) {
        return err.startStatus("amqp-consume", settings_.redacted_url, "arguments");
      }
      scheduleRetry(ctx, err);
    }
    return Status::ok();
  }

  Status poll(SourceContext &ctx, std::chrono::milliseconds timeout) noexcept override {
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

  void complete(std::uint64_t tag, Outcome outcome, std::string_view reason) noexcept override {
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

  void stopIntake(SourceContext &ctx) noexcept override {
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

  void stop() noexcept override {
    flushAcks();
    conn_.close();
  }

 private:
  static constexpr amqp_channel_t kChannel = 1;

  /// Sends the acks complete() collected: one basic.ack with multiple=true for those below
  /// the oldest delivery still unsettled (so it never acknowledges a message the pipeline
  /// still holds, nor one left unacked on purpose at shutdown), single acks for the rest.
  void flushAcks() noexcept {
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

  void waitWake(SourceContext &ctx, std::chrono::milliseconds t) {
    pollfd p{ctx.wakeFd(), POLLIN, 0};
    (void)::poll(&p, 1, static_cast<int>(t.count()));
  }

  /// After a failed attempt: the next one at the backoff's pace (retryDelay()).
  void scheduleRetry(SourceContext &ctx, const ConnectError &err) noexcept {
    next_attempt_ = Clock::now() + retryDelay(ctx, backoff_, settings_.redacted_url, err);
  }

  void connect(SourceContext &ctx) noexcept {
    ConnectError err;
    if (!connect(ctx, err)) {
      scheduleRetry(ctx, err);
    }
  }

  bool connect(SourceContext &ctx, ConnectError &err, double timeout_s = 0) noexcept {
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
    cc_.connected->set(1);
    ctx.log().info("connected to {}, consuming queue '{}' (prefetch {})", settings_.redacted_url, active_queue_,
                   prefetch_);
    return true;
  }

  /// Channel, qos, queue, bindings, consume. Repeated after every reconnect: a queue that
  /// is not durable (or was deleted) must be declared again.
  bool setup(ConnectError &err) {
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

  bool declareAndConsume(ConnectError &err) {
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

  void readFrames(SourceContext &ctx) noexcept {
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

  void handleMethod(SourceContext &ctx, const amqp_frame_t &frame) noexcept {
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
      default: break;  // basic.cancel-ok, connection.blocked (we do not publish), ...
    }
  }

  void deliver(SourceContext &ctx, std::uint64_t dtag, bool redelivered, const std::string &rk,
               const std::string &exchange, const amqp_message_t &msg) noexcept {
    received_->add();
    if (redelivered) {
      redelivered_->add();
    }
    std::uint64_t tag = (generation_ << kTagBits) | dtag;
    // Unsettled until complete() or a nack below; one left unacked on purpose (shutdown)
    // stays here, which keeps flushAcks()' multiple ack below it.
    unsettled_.insert(dtag);
    if (intake_stopped_) {
      return;  // left unacked: the broker gives it to the next consumer
    }
    try {
      Message out;
      out.setBody(std::string(static_cast<char *>(msg.body.bytes), msg.body.len));
      const char *bad = nullptr;
      if (!fedmsg::isValidUtf8(out.body())) {
        bad = "invalid_utf8";
      } else {
        rapidjson::Document d;
        d.Parse(out.body().data(), out.body().size());
        if (d.HasParseError()) {
          bad = "malformed_json";
        } else if (require_object_ && !d.IsObject()) {
          bad = "not_an_object";
        }
      }
      if (bad != nullptr) {
        // Permanent: requeueing would loop forever; a dead-letter exchange may take it.
        ctx.countDrop(bad);
        std::string_view why = bad;
        ctx.log().warn("delivery {} (routing key '{}'): body is not {}; rejected without requeue", dtag, rk,
                       why == "invalid_utf8" ? "valid UTF-8" : why == "not_an_object" ? "a JSON object" : "JSON");
        unsettled_.erase(dtag);
        (void)amqp_basic_nack(conn_.state(), kChannel, dtag, 0, 0);
        rejected_->add();
        return;
      }
      out.setTopic(rk);
      if (!prefix_.empty() && rk.size() > prefix_.size() && rk.compare(0, prefix_.size(), prefix_) == 0 &&
          rk[prefix_.size()] == '.') {
        out.setTopic(rk.substr(prefix_.size() + 1));
      }
      const auto &p = msg.properties;
      if ((p._flags & AMQP_BASIC_HEADERS_FLAG) != 0) {
        std::string headers;
        tableToJson(p.headers, headers);
        out.setHeaders(std::move(headers));
      }
      if ((p._flags & AMQP_BASIC_MESSAGE_ID_FLAG) != 0) {
        std::string id(static_cast<char *>(p.message_id.bytes), p.message_id.len);
        if (fedmsg::isValidUtf8(id)) {
          out.setId(std::move(id));
        }
      }
      if ((p._flags & AMQP_BASIC_TIMESTAMP_FLAG) != 0) {
        out.setTimestampMs(static_cast<std::int64_t>(p.timestamp) * 1000);
      }
      if (restore_) {
        restoreEnvelope(ctx, out);  // may take the id from the fedmsg_msg_id header
      }
      if (out.id().empty()) {
        if (!generate_ids_) {
          // Reference parity: ack, log, emit nothing. Such a message can be neither
          // de-duplicated nor matched by verify-missing; missing_message_id: generate keeps it.
          ctx.countDrop("no_message_id");
          drop_log_.warn(ctx, "no_message_id",
                         "delivery {} (routing key '{}') has no usable message_id; acked and dropped "
                         "(missing_message_id: generate would give it one)",
                         dtag, rk);
          complete(tag, Outcome::Dropped, "no_message_id");  // acked with the next batch
          return;
        }
        out.setId(fedmsg::uuid4());
        generated_ids_->add();
      }
      out.setMeta(meta::kAmqpRedelivered, redelivered ? "true" : "false");
      out.setMeta("amqp.exchange", exchange);
      out.setMeta("amqp.routing_key", rk);
      if (ctx.submit(std::move(out), tag) == SourceContext::SubmitResult::Stopping) {
        return;  // not taken: stays unacked and comes back from the broker
      }
    } catch (const std::exception &e) {
      ctx.log().error("delivery {}: {}; requeued", dtag, e.what());
      unsettled_.erase(dtag);
      (void)amqp_basic_nack(conn_.state(), kChannel, dtag, 0, 1);
      requeued_->add();
    }
  }

  /// carry_envelope's fedmsg_* headers -> the original envelope: the message becomes what
  /// zmq-sub made of that envelope (body, headers, id, fedmsg.* metadata), so a verifier
  /// checks the origin signature and zmq-pub sends the envelope byte-identical. A message
  /// without those headers is left alone; unusable ones are counted and left alone too.
  void restoreEnvelope(SourceContext &ctx, Message &out) {
    std::string envelope;
    std::string err;
    auto r = carry::envelopeFromHeaders(out.headers(), out.topic(), out.body(), out.id(), envelope, err);
    if (r == carry::Restore::NotCarried) {
      return;
    }
    Message rebuilt;
    fedmsg::Result res;
    if (r == carry::Restore::Ok) {
      fedmsg::Limits limits;
      limits.max_bytes = std::max(limits.max_bytes, envelope.size());
      res = fedmsg::decode(out.topic(), envelope, rebuilt, limits);
    }
    if (r == carry::Restore::Failed || !res.ok()) {
      restore_failed_->add();
      ctx.log().warn("message '{}' on '{}': cannot restore its fedmsg envelope ({}); passed on as a plain message",
                     out.id(), out.topic(), r == carry::Restore::Failed ? err : res.reason + ": " + res.detail);
      return;
    }
    restored_->add();
    rebuilt.setTimestampMs(rebuilt.timestampMs() != 0 ? rebuilt.timestampMs() : out.timestampMs());
    out = std::move(rebuilt);
  }

  void lostConnection(SourceContext &ctx, const std::string &why) noexcept {
    conn_.drop();
    consuming_ = false;
    ++generation_;  // every ack still owed belongs to the dead channel
    unsettled_.clear();
    ack_ready_.clear();
    cc_.disconnects->add();
    cc_.connected->set(0);
    auto d = backoff_.next();
    next_attempt_ = Clock::now() + d;
    ctx.log().warn("disconnected from {}: {}; {} unacknowledged delivery(ies) will be redelivered by the broker; "
                   "reconnecting in {} ms",
                   settings_.redacted_url, why, ctx.inFlight(), d.count());
  }

  Settings settings_;
  std::string queue_;
  bool durable_;
  bool auto_delete_;
  bool passive_;
  bool restore_;
  bool require_object_;
  bool generate_ids_ = false;
  std::uint16_t prefetch_ = 10;
  std::string prefix_;
  TableArena args_arena_;
  std::vector<amqp_table_entry_t> args_;
  std::vector<Binding> bindings_;

  Connection conn_;
  Backoff backoff_;
  Clock::time_point next_attempt_{};
  std::uint64_t generation_ = 0;
  bool ever_connected_ = false;
  bool consuming_ = false;
  bool intake_stopped_ = false;
  std::string consumer_tag_;
  std::string active_queue_;
  std::string pending_error_;
  std::set<std::uint64_t> unsettled_;     ///< delivery tags of this channel not yet settled
  std::vector<std::uint64_t> ack_ready_;  ///< completed, ack not sent yet (flushAcks)

  ConnCounters cc_;
  Counter *received_ = nullptr;
  Counter *redelivered_ = nullptr;
  Counter *acked_ = nullptr;
  Counter *requeued_ = nullptr;
  Counter *rejected_ = nullptr;
  Counter *stale_ = nullptr;
  Counter *multiple_acks_ = nullptr;
  Counter *cancels_ = nullptr;
  Counter *restored_ = nullptr;
  Counter *restore_failed_ = nullptr;
  Counter *generated_ids_ = nullptr;
  DropLog drop_log_{5, std::chrono::seconds(10)};  // 5 lines per reason per 10 s
};

}  // namespace

SWITCHYARD_PLUGIN(AmqpConsume, SY_KIND_SOURCE, "amqp-consume", "1.0.0",
                  "Consumes an AMQP 0-9-1 queue with manual acknowledgements (fedora-messaging format)",
                  SY_FLAG_CAN_ACK, kSchema)
