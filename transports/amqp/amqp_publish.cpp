// SPDX-License-Identifier: MIT
//
// amqp-publish (sink): publishes messages to an AMQP 0-9-1 exchange in the fedora-messaging
// format (interop-spec 3.2/3.3) with publisher confirms. A message is reported Delivered
// only when the broker's basic.ack for it arrived; unconfirmed messages are republished
// after a reconnect or a channel closure (so duplicates are possible, never silent loss).
//
//   outputs:
//     - type: amqp-publish
//       url: amqp://bridge:${AMQP_PASSWORD}@broker.example.org/%2F
//       exchange: amq.topic
//       routing_key_prefix: ""
//       confirm_window: 256
//
// Outcomes (docs/delivery.md): basic.ack -> Delivered; basic.return (mandatory) then ack ->
// `unroutable` (Dropped by default; under `unroutable: retry` the message goes back to the
// runtime, which retries this output only, with backoff); basic.nack -> retried the same way
// (`nacked`). Refused before publishing: a body above max_message_size (`too_large`), a
// routing key outside allowed_topics (`forbidden_topic`). A channel closed by the broker for
// one message (403 ACCESS_REFUSED `forbidden`, 406 PRECONDITION_FAILED `too_large` or
// `precondition_failed`) -> Reject of that message only, never republished; the others on
// that channel are republished on a new channel. When the broker's text does not say which
// message it was, the suspects are republished one at a time until the next closure names
// it. Anything else -> reconnect with backoff and republish.
// Start-up: a first connection attempt of at most 5 s; refused credentials, a missing vhost,
// an inequivalent exchange and unusable TLS files are permanent (Status::permanent, exit 3);
// a broker that is down is not (poll() keeps retrying).
//
// Bridge options (docs/bridges.md): message_id_mode (keep | uuid, the full id then in the
// fedmsg_msg_id header), carry_envelope (the original fedmsg envelope's fields as fedmsg_*
// headers, fedmsg_carry.hpp) and require_object_body.
#include <poll.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <deque>
#include <map>
#include <regex>
#include <set>
#include <string>

#include <rapidjson/error/en.h>

#include "amqp_common.hpp"
#include "switchyard/fedmsg_carry.hpp"
#include "switchyard/fedmsg.hpp"
#include "switchyard/json.hpp"
#include "switchyard/sdk.hpp"

namespace {

using namespace switchyard;
using namespace switchyard::amqp;
using Clock = std::chrono::steady_clock;

const sy_config_key kSchema[] = {
    SY_AMQP_COMMON_KEYS,
    {"exchange", SY_CFG_STRING, 0, "\"amq.topic\"", "Exchange to publish to (\"\" is the default exchange).", 0},
    {"exchange_type", SY_CFG_STRING, 0, "\"topic\"", "Type used when the exchange is declared.", 0},
    {"declare_exchange", SY_CFG_BOOL, 0, "true",
     "Declare the exchange (durable) after every connect; false only checks that it exists "
     "(passive), for users without configure permission. amq.* exchanges are always checked "
     "passively.",
     0},
    {"routing_key_prefix", SY_CFG_STRING, 0, "\"\"",
     "Routing key = prefix + \".\" + topic when set (like fedora-messaging's topic_prefix).", 0},
    {"mandatory", SY_CFG_BOOL, 0, "false",
     "Publish with the mandatory flag: messages no queue takes come back (basic.return) and are "
     "counted as unroutable.",
     0},
    {"unroutable", SY_CFG_STRING, 0, "\"drop\"",
     "Outcome of a returned (unroutable) message: drop (Dropped), reject (Reject) or retry (sent to this "
     "output again after a backoff, per the output's retry settings, until a queue takes it or the retry "
     "budget is spent).",
     0},
    {"confirm_window", SY_CFG_INT, 0, "256",
     "Messages published and not yet confirmed at most; send() blocks beyond it (backpressure).", 0},
    {"message_id_mode", SY_CFG_STRING, 0, "\"keep\"",
     "keep: message_id = the message id as it is (a fedmsg msg_id keeps its year prefix, like the "
     "reference bridge); uuid: message_id = a UUID as the fedora-messaging wire format requires (the id "
     "without its YYYY- prefix when that is a UUID, else a new UUID4) and the full id goes in the "
     "fedmsg_msg_id header.",
     0},
    {"carry_envelope", SY_CFG_BOOL, 0, "false",
     "Send the fields of the message's original fedmsg envelope (timestamp, i, username, crypto, "
     "signature, certificate, other keys) as fedmsg_* headers, so that amqp-consume (restore_envelope) "
     "can rebuild the signed envelope and its signature still verifies.",
     0},
    {"require_object_body", SY_CFG_BOOL, 0, "false",
     "Refuse (Reject, reason body_not_object) a body that is not a JSON object: fedora-messaging "
     "consumers reject those (base schema).",
     0},
    {"max_message_size", SY_CFG_INT, 0, "134217728",
     "Largest body in bytes the broker accepts (RabbitMQ's max_message_size; 134217728 = 128 MiB is the "
     "default of RabbitMQ 3.10, newer releases default to 16 MiB). A larger body is refused before "
     "publishing (Reject, reason too_large) instead of making the broker close the channel.",
     0},
    {"allowed_topics", SY_CFG_LIST, 0, "[]",
     "Local topic pre-check: regular expressions in RabbitMQ's topic-permission syntax (a match anywhere in "
     "the routing key unless anchored with ^/$; {username} and {vhost} expand). A message whose routing key "
     "matches none is refused locally (Reject, reason forbidden_topic) and never reaches the broker. Empty: "
     "no check.",
     0},
    {nullptr, 0, 0, nullptr, nullptr, 0},
};

struct Pending {
  DeliveryId id = 0;
  Message msg;
  std::string routing_key;
  std::string message_id;
  std::string sent_at;
  std::string extra_headers;  // JSON object text of fedmsg_* headers, or empty
};

std::string isoNow() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S+00:00", &tm);
  return buf;
}

class AmqpPublish final : public Sink {
 public:
  explicit AmqpPublish(const sdk::Config &c)
      : settings_(Settings::fromConfig(c)),
        exchange_(c.str("exchange")),
        exchange_type_(c.str("exchange_type")),
        declare_(c.boolean("declare_exchange")),
        mandatory_(c.boolean("mandatory")),
        carry_(c.boolean("carry_envelope")),
        require_object_(c.boolean("require_object_body")),
        backoff_(settings_.max_delay) {
    std::string mode = c.str("message_id_mode");
    if (mode == "uuid") {
      uuid_ids_ = true;
    } else if (mode != "keep") {
      throw sdk::ConfigError("message_id_mode", "message_id_mode must be keep or uuid");
    }
    std::string prefix = c.str("routing_key_prefix");
    while (!prefix.empty() && prefix.back() == '.') {
      prefix.pop_back();
    }
    prefix_ = prefix.empty() ? "" : prefix + ".";
    auto w = c.integer("confirm_window");
    if (w < 1 || w > 1000000) {
      throw sdk::ConfigError("confirm_window", "confirm_window must be between 1 and 1000000");
    }
    window_ = static_cast<std::size_t>(w);
    auto mms = c.integer("max_message_size");
    if (mms < 1) {
      throw sdk::ConfigError("max_message_size", "max_message_size must be a positive number of bytes");
    }
    max_size_ = static_cast<std::uint64_t>(mms);
    for (const auto &pat : c.strings("allowed_topics")) {
      // RabbitMQ expands these two variables in topic permission patterns.
      std::string expanded = pat;
      for (const auto &[var, val] : {std::pair<std::string, std::string>{"{username}", settings_.user},
                                     std::pair<std::string, std::string>{"{vhost}", settings_.vhost}}) {
        for (auto pos = expanded.find(var); pos != std::string::npos; pos = expanded.find(var, pos + val.size())) {
          expanded.replace(pos, var.size(), val);
        }
      }
      try {
        allowed_topics_.emplace_back(expanded, std::regex::ECMAScript | std::regex::optimize);
      } catch (const std::regex_error &e) {
        throw sdk::ConfigError("allowed_topics", "allowed_topics: '" + pat + "' is not a valid regular expression: " +
                                                     e.what());
      }
    }
    std::string u = c.str("unroutable");
    if (u == "drop") {
      unroutable_ = Outcome::Dropped;
    } else if (u == "reject") {
      unroutable_ = Outcome::Reject;
    } else if (u == "retry") {
      unroutable_ = Outcome::Retry;
    } else {
      throw sdk::ConfigError("unroutable", "unroutable must be drop, reject or retry");
    }
  }

  Status start(SinkContext &ctx) noexcept override {
    cc_.init(ctx);
    published_ = &ctx.counter("published");
    confirmed_ = &ctx.counter("confirmed");
    nacked_ = &ctx.counter("nacked");
    returned_count_ = &ctx.counter("unroutable");
    forbidden_ = &ctx.counter("forbidden");
    republished_ = &ctx.counter("republished");
    blocked_count_ = &ctx.counter("blocked");
    carried_ = &ctx.counter("envelopes_carried");
    not_carried_ = &ctx.counter("envelopes_not_carried");
    too_large_ = &ctx.counter("too_large");
    forbidden_topic_ = &ctx.counter("forbidden_topic");
    refused_ = &ctx.counter("refused_by_broker");
    unconfirmed_gauge_ = &ctx.gauge("unconfirmed");
    // One bounded attempt: errors that a restart cannot fix end the start-up (exit 3); a
    // broker that is down is not fatal, poll() keeps retrying.
    ConnectError err;
    if (!connect(ctx, err, kStartTimeoutS)) {
      if (err.permanent()) {
        return err.startStatus("amqp-publish", settings_.redacted_url, "exchange");
      }
      scheduleRetry(ctx, err);
    }
    return Status::ok();
  }

  void send(SinkContext &ctx, Message &&msg, DeliveryId id) noexcept override {
    try {
      Pending p;
      p.id = id;
      p.routing_key = prefix_ + msg.topic();
      if (p.routing_key.size() > 255) {
        drop_log_.warn(ctx, "routing_key_too_long", "message {}: routing key longer than 255 bytes; rejected", msg.id());
        ctx.done(id, Outcome::Reject, "routing_key_too_long");
        return;
      }
      if (!allowed_topics_.empty() && !topicAllowed(p.routing_key)) {
        forbidden_topic_->add();
        drop_log_.warn(ctx, "forbidden_topic",
                       "message {}: routing key '{}' matches none of allowed_topics; refused without publishing",
                       msg.id(), p.routing_key);
        ctx.done(id, Outcome::Reject, "forbidden_topic");
        return;
      }
      if (msg.body().size() > max_size_) {
        refuseTooLarge(ctx, id, msg.id(), msg.body().size());
        return;
      }
      rapidjson::Document d;
      d.Parse(msg.headers().data(), msg.headers().size());
      std::vector<amqp_table_entry_t> probe;
      std::string err;
      TableArena arena;
      if (d.HasParseError()) {
        err = fmt::format("not JSON: {} at offset {}", rapidjson::GetParseError_En(d.GetParseError()),
                          d.GetErrorOffset());
      }
      if (!err.empty() || !arena.fromJson(d, probe, err)) {
        ctx.log().warn("message {}: headers cannot be sent as an AMQP table ({}); rejected", msg.id(),
                       err);
        ctx.done(id, Outcome::Reject, "bad_headers");
        return;
      }
      if (require_object_) {
        auto r = fedmsg::validateJson(msg.body(), {}, true);
        if (!r.ok()) {
          bool not_object = r.reason == "not_an_object";
          ctx.log().warn("message {}: body is {}; rejected", msg.id(), not_object ? "not a JSON object" : r.detail);
          ctx.done(id, Outcome::Reject, not_object ? "body_not_object" : "bad_body");
          return;
        }
      }
      if (!chooseIds(ctx, msg, p)) {
        ctx.done(id, Outcome::Reject, "bad_envelope");
        return;
      }
      p.sent_at = isoNow();
      p.msg = std::move(msg);
      waiting_.push_back(std::move(p));
    } catch (const std::exception &e) {
      ctx.log().error("send: {}", e.what());
      ctx.done(id, Outcome::Retry, "internal_error");
      return;
    }
    pump(ctx);
    // Backpressure: hold the caller while the window is full; keep servicing the link.
    while (waiting_.size() + unconfirmed_.size() >= window_ && !ctx.stopping()) {
      service(ctx, std::chrono::milliseconds(100), false);
    }
  }

  Status poll(SinkContext &ctx, std::chrono::milliseconds timeout) noexcept override {
    pump(ctx);
    service(ctx, timeout, true);
    return Status::ok();
  }

  Status flush(SinkContext &ctx, std::chrono::milliseconds timeout) noexcept override {
    auto deadline = Clock::now() + timeout;
    while (!waiting_.empty() || !unconfirmed_.empty()) {
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

  void stop() noexcept override { conn_.close(); }

 private:
  bool connected() const { return conn_.isOpen() && channel_ok_; }

  /// message_id (keep or uuid mode) and the fedmsg_* headers (uuid mode, carry_envelope).
  bool chooseIds(SinkContext &ctx, const Message &msg, Pending &p) {
    std::string full_id = msg.id();
    if (!uuid_ids_) {
      p.message_id = msg.id().empty() ? fedmsg::uuid4() : msg.id();
    } else {
      std::string_view bare = msg.id();
      if (bare.size() > 5 && bare[4] == '-' && std::all_of(bare.begin(), bare.begin() + 4, [](char c) {
            return c >= '0' && c <= '9';
          })) {
        bare.remove_prefix(5);
      }
      if (carry::isUuid(bare)) {
        p.message_id.assign(bare);
        std::transform(p.message_id.begin(), p.message_id.end(), p.message_id.begin(),
                       [](char c) { return (c >= 'A' && c <= 'F') ? static_cast<char>(c - 'A' + 'a') : c; });
      } else {
        p.message_id = fedmsg::uuid4();
      }
    }
    if (carry_) {
      if (const auto &env = msg.envelope()) {
        std::string err;
        if (!carry::headersFromEnvelope(env->text, p.extra_headers, err)) {
          ctx.log().warn("message {}: cannot carry its envelope ({}); rejected", msg.id(), err);
          return false;
        }
        carried_->add();
        return true;
      }
      // Changed on the way (or not from fedmsg): its old signature would not verify.
      not_carried_->add();
    }
    if (uuid_ids_ && !full_id.empty()) {
      json::Value h = json::Value::object();
      h.set(std::string(carry::kMsgIdHeader), json::Value::fromString(std::move(full_id)));
      p.extra_headers = json::canonical(h);
    }
    return true;
  }

  bool topicAllowed(const std::string &rk) const {
    return std::any_of(allowed_topics_.begin(), allowed_topics_.end(),
                       [&](const std::regex &re) { return std::regex_search(rk, re); });
  }

  /// After a failed attempt: the next one at the backoff's pace (retryDelay()).
  void scheduleRetry(SinkContext &ctx, const ConnectError &err) noexcept {
    next_attempt_ = Clock::now() + retryDelay(ctx, backoff_, settings_.redacted_url, err);
  }

  void connect(SinkContext &ctx) noexcept {
    ConnectError err;
    if (!connect(ctx, err)) {
      scheduleRetry(ctx, err);
    }
  }

  bool connect(SinkContext &ctx, ConnectError &err, double timeout_s = 0) noexcept {
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
    cc_.connected->set(1);
    ctx.log().info("connected to {} (exchange '{}', {} message(s) to republish)", settings_.redacted_url,
                   exchange_, waiting_.size());
    return true;
  }

  /// Opens a fresh channel in confirm mode; after a connect also checks the exchange.
  bool openChannel(SinkContext &ctx, bool fresh_connection, ConnectError &err) {
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
    (void)ctx;
    return true;
  }

  /// Waits up to @p timeout for the broker (and ctx.wakeFd() if @p wake), handles what came.
  void service(SinkContext &ctx, std::chrono::milliseconds timeout, bool wake) noexcept {
    if (!conn_.isOpen()) {
      auto now = Clock::now();
      if (now >= next_attempt_) {
        connect(ctx);
        pump(ctx);
        return;
      }
      auto until = std::chrono::duration_cast<std::chrono::milliseconds>(next_attempt_ - now);
      pollfd p{wake ? ctx.wakeFd() : -1, POLLIN, 0};
      (void)::poll(&p, 1, static_cast<int>(std::min(until, timeout).count()) + 1);
      return;
    }
    if (!conn_.hasBuffered()) {
      pollfd fds[2] = {{conn_.fd(), POLLIN, 0}, {wake ? ctx.wakeFd() : -1, POLLIN, 0}};
      (void)::poll(fds, 2, static_cast<int>(timeout.count()));
    }
    readFrames(ctx);
    pump(ctx);
  }

  void readFrames(SinkContext &ctx) noexcept {
    int rc = conn_.readMethods(100000, [&](const amqp_frame_t &frame) {
      handleMethod(ctx, frame);
      return true;
    });
    if (rc != AMQP_STATUS_OK) {
      lostConnection(ctx, describeStatus(rc));
    }
  }

  void handleMethod(SinkContext &ctx, const amqp_frame_t &frame) noexcept {
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
      return;
    }
    if (id == AMQP_CONNECTION_UNBLOCKED_METHOD) {
      if (blocked_) {
        ctx.log().info("broker unblocked publishing");
      }
      blocked_ = false;
      return;
    }
    if (frame.channel != channel_ || !channel_ok_) {
      return;  // late frames of a channel we already gave up
    }
    switch (id) {
      case AMQP_BASIC_ACK_METHOD: {
        auto *a = static_cast<amqp_basic_ack_t *>(m);
        settleConfirms(ctx, a->delivery_tag, a->multiple != 0, true);
        break;
      }
      case AMQP_BASIC_NACK_METHOD: {
        auto *n = static_cast<amqp_basic_nack_t *>(m);
        settleConfirms(ctx, n->delivery_tag, n->multiple != 0, false);
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

  void settleConfirms(SinkContext &ctx, std::uint64_t tag, bool multiple, bool ack) noexcept {
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

  void requeueUnconfirmed() {
    // Back to the head of the queue, in their original order.
    for (auto it = unconfirmed_.rbegin(); it != unconfirmed_.rend(); ++it) {
      republished_->add();
      waiting_.push_front(std::move(it->second));
    }
    unconfirmed_.clear();
    unconfirmed_gauge_->set(0);
    returned_.clear();
  }

  /// The first unconfirmed message the broker's close text names, or end(): 403 names the
  /// topic ("access to topic 'a.b' in exchange ..."), a size 406 the body size ("message size
  /// 2097152 is larger than configured max size 1048576"). The broker closes the channel at
  /// the first offending publish and drops every later one, so the first match is the one.
  std::map<std::uint64_t, Pending>::iterator findVictim(SinkContext &ctx, int code, const std::string &text,
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
        reason = "too_large";
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

  void channelClosed(SinkContext &ctx, int code, const std::string &text) noexcept {
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
        } else if (std::string_view(reason) == "too_large") {
          too_large_->add();
        }
        refused_->add();
        ctx.log().warn("message {} refused by the broker: {} {}", victim->second.message_id, code, text);
        ctx.done(victim->second.id, Outcome::Reject, reason);
        unconfirmed_.erase(victim);
        if (probe_ > 0) {
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

  void lostConnection(SinkContext &ctx, const std::string &why) noexcept {
    conn_.drop();
    channel_ok_ = false;
    blocked_ = false;
    cc_.disconnects->add();
    cc_.connected->set(0);
    std::size_t n = unconfirmed_.size();
    requeueUnconfirmed();
    auto d = backoff_.next();
    next_attempt_ = Clock::now() + d;
    ctx.log().warn("disconnected from {}: {}; {} unconfirmed message(s) will be republished; reconnecting in {} ms",
                   settings_.redacted_url, why, n, d.count());
  }

  /// A body above the broker's limit (max_message_size, or what a 406 taught us): refused
  /// without publishing, so the broker never closes the channel over it.
  void refuseTooLarge(SinkContext &ctx, DeliveryId id, std::string_view message_id, std::size_t size) noexcept {
    too_large_->add();
    drop_log_.warn(ctx, "too_large",
                   "message {}: body of {} bytes is larger than the broker's limit of {} bytes "
                   "(max_message_size); refused without publishing",
                   message_id, size, max_size_);
    ctx.done(id, Outcome::Reject, "too_large");
  }

  void pump(SinkContext &ctx) noexcept {
    // While probing for a refused message, one message in flight at a time.
    while (connected() && !blocked_ && !waiting_.empty() && unconfirmed_.size() < (probe_ > 0 ? 1 : window_)) {
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
        lostConnection(ctx, "publish: " + describeStatus(rc));
        return;
      }
      published_->add();
      unconfirmed_.emplace(next_seq_++, std::move(p));
      waiting_.pop_front();
    }
    unconfirmed_gauge_->set(static_cast<std::int64_t>(unconfirmed_.size()));
  }

  int publish(const Pending &p) {
    arena_.clear();
    entries_.clear();
    rapidjson::Document d;
    d.Parse(p.msg.headers().data(), p.msg.headers().size());
    std::string err;
    rapidjson::Document extra;
    if (!p.extra_headers.empty()) {
      extra.Parse(p.extra_headers.data(), p.extra_headers.size());
      if (d.IsObject() && extra.IsObject()) {
        // The carried values win over same-named headers of the message (one entry per key).
        for (const auto &m : extra.GetObject()) {
          d.RemoveMember(m.name);
        }
      }
    }
    (void)arena_.fromJson(d, entries_, err);  // checked in send()
    if (extra.IsObject()) {
      (void)arena_.fromJson(extra, entries_, err);  // strings and int64 only
    }
    auto has = [&](const char *k) { return d.IsObject() && d.HasMember(k); };
    auto addStr = [&](const char *k, std::string_view v) {
      amqp_table_entry_t e{};
      e.key = amqp_cstring_bytes(k);
      e.value.kind = AMQP_FIELD_KIND_UTF8;
      e.value.value.bytes = arena_.bytes(v);
      entries_.push_back(e);
    };
    auto addInt = [&](const char *k, int v) {
      amqp_table_entry_t e{};
      e.key = amqp_cstring_bytes(k);
      e.value.kind = AMQP_FIELD_KIND_I32;
      e.value.value.i32 = v;
      entries_.push_back(e);
    };
    // fedora-messaging's required headers, unless the message already carries them.
    if (!has("fedora_messaging_schema")) {
      addStr("fedora_messaging_schema", "base.message");
    }
    if (!has("fedora_messaging_schema_package")) {
      addStr("fedora_messaging_schema_package", "fedora_messaging");
    }
    if (!has("fedora_messaging_severity")) {
      addInt("fedora_messaging_severity", 20);
    }
    if (!has("sent-at")) {
      addStr("sent-at", p.sent_at);
    }
    int priority = -1;
    if (has("priority") && d["priority"].IsInt() && d["priority"].GetInt() >= 0 && d["priority"].GetInt() <= 255) {
      priority = d["priority"].GetInt();
    } else if (!has("priority")) {
      addInt("priority", 0);
    }
    amqp_basic_properties_t props{};
    props._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_CONTENT_ENCODING_FLAG | AMQP_BASIC_HEADERS_FLAG |
                   AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_MESSAGE_ID_FLAG;
    props.content_type = amqp_cstring_bytes("application/json");
    props.content_encoding = amqp_cstring_bytes("utf-8");
    props.delivery_mode = 2;
    props.message_id = amqp_bytes_t{p.message_id.size(), const_cast<char *>(p.message_id.data())};
    props.headers = amqp_table_t{static_cast<int>(entries_.size()), entries_.data()};
    if (priority >= 0) {
      props._flags |= AMQP_BASIC_PRIORITY_FLAG;
      props.priority = static_cast<std::uint8_t>(priority);
    }
    amqp_bytes_t body{p.msg.body().size(), const_cast<char *>(p.msg.body().data())};
    amqp_bytes_t rk{p.routing_key.size(), const_cast<char *>(p.routing_key.data())};
    return amqp_basic_publish(conn_.state(), channel_, amqp_cstring_bytes(exchange_.c_str()), rk,
                              mandatory_ ? 1 : 0, 0, &props, body);
  }

  Settings settings_;
  std::string exchange_;
  std::string exchange_type_;
  bool declare_;
  bool mandatory_;
  bool carry_;
  bool require_object_;
  bool uuid_ids_ = false;
  std::string prefix_;
  std::size_t window_ = 256;
  Outcome unroutable_ = Outcome::Dropped;
  std::uint64_t max_size_ = 134217728;
  std::vector<std::regex> allowed_topics_;
  std::size_t probe_ = 0;  ///< suspects of a closure to publish one at a time
  DropLog drop_log_{5, std::chrono::seconds(10)};  // 5 lines per reason per 10 s

  Connection conn_;
  amqp_channel_t channel_ = 0;
  bool channel_ok_ = false;
  bool blocked_ = false;
  bool ever_connected_ = false;
  std::uint64_t next_seq_ = 1;
  Backoff backoff_;
  Clock::time_point next_attempt_{};

  std::deque<Pending> waiting_;                 // not yet published (or to republish)
  std::map<std::uint64_t, Pending> unconfirmed_;  // by publish sequence number
  std::multiset<std::string> returned_;         // message_id '\0' routing key
  TableArena arena_;
  std::vector<amqp_table_entry_t> entries_;

  ConnCounters cc_;
  Counter *published_ = nullptr;
  Counter *confirmed_ = nullptr;
  Counter *nacked_ = nullptr;
  Counter *returned_count_ = nullptr;
  Counter *forbidden_ = nullptr;
  Counter *republished_ = nullptr;
  Counter *blocked_count_ = nullptr;
  Counter *carried_ = nullptr;
  Counter *not_carried_ = nullptr;
  Counter *too_large_ = nullptr;
  Counter *forbidden_topic_ = nullptr;
  Counter *refused_ = nullptr;
  Gauge *unconfirmed_gauge_ = nullptr;
};

}  // namespace

SWITCHYARD_PLUGIN(AmqpPublish, SY_KIND_SINK, "amqp-publish", "1.0.0",
                  "Publishes to an AMQP 0-9-1 exchange (fedora-messaging format) with publisher confirms",
                  SY_FLAG_CAN_ACK, kSchema)
