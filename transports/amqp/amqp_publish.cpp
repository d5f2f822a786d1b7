// SPDX-License-Identifier: MIT
//
// amqp-publish (sink): publishes messages to an AMQP 0-9-1 exchange in the fedora-messaging
// format (fedora_messaging.hpp) with publisher confirms. A message is reported Delivered
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
// (`nacked`). Refused before publishing: a body above max_message_size (`oversize`), a
// routing key outside allowed_topics (`forbidden_topic`). A channel closed by the broker for
// one message (403 ACCESS_REFUSED `forbidden`, 406 PRECONDITION_FAILED `oversize` or
// `precondition_failed`) -> Reject of that message only, never republished; the others on
// that channel are republished on a new channel. When the broker's text does not say which
// message it was, the suspects are republished one at a time until the next closure names
// it, and publishing stays one at a time until the broker confirms one. Anything else ->
// reconnect with backoff and republish.
// Start-up: a first connection attempt of at most 5 s; refused credentials, a missing vhost,
// an inequivalent exchange and unusable TLS files are permanent (Status::permanent, exit 3);
// a broker that is down is not (poll() keeps retrying).
//
// Bridge options (docs/bridges.md): message_id_mode (keep | uuid, the full id then in the
// fedmsg_msg_id header), carry_envelope (the original fedmsg envelope's fields as fedmsg_*
// headers, fedmsg_carry.hpp) and require_object_body.
#include <algorithm>
#include <ctime>
#include <regex>
#include <string>

#include "amqp_probe.hpp"
#include "amqp_publish.hpp"
#include "switchyard/fedmsg_carry.hpp"
#include "switchyard/fedmsg.hpp"
#include "switchyard/fedora_messaging.hpp"
#include "switchyard/json.hpp"
#include "switchyard/parsed.hpp"
#include "switchyard/sdk.hpp"

namespace {

using namespace switchyard;
using namespace switchyard::amqp;

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
     0, "drop|reject|retry"},
    {"confirm_window", SY_CFG_INT, 0, "256",
     "Messages published and not yet confirmed at most; send() blocks beyond it (backpressure).", 0, nullptr, SY_BOUND_MIN | SY_BOUND_MAX, 1, 1000000},
    {"message_id_mode", SY_CFG_STRING, 0, "\"keep\"",
     "keep: message_id = the message id as it is (a fedmsg msg_id keeps its year prefix, like the "
     "reference bridge); uuid: message_id = a UUID as the fedora-messaging wire format requires (the id "
     "without its YYYY- prefix when that is a UUID, else a new UUID4) and the full id goes in the "
     "fedmsg_msg_id header.",
     0, "keep|uuid"},
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
     "publishing (Reject, reason oversize) instead of making the broker close the channel.",
     0},
    {"allowed_topics", SY_CFG_LIST, 0, "[]",
     "Local topic pre-check: regular expressions in RabbitMQ's topic-permission syntax (a match anywhere in "
     "the routing key unless anchored with ^/$; {username} and {vhost} expand). A message whose routing key "
     "matches none is refused locally (Reject, reason forbidden_topic) and never reaches the broker. Empty: "
     "no check.",
     0},
    {"lease", SY_CFG_MAP, 0, nullptr,
     "High availability: {queue: NAME, tick_ms: 500, timeout_ms: 2000}. Instances with the same lease.queue "
     "elect one active publisher through RabbitMQ (the single active consumer of a quorum queue NAME that each "
     "ticks every tick_ms); the others stand by and publish nothing. An instance stops publishing when it has "
     "received no tick for timeout_ms (default: the larger of 2000 and 4 x tick_ms). Gauge lease_active.",
     0},
    {nullptr, 0, 0, nullptr, nullptr, 0},
};

}  // namespace

namespace switchyard::amqp {

AmqpPublish::AmqpPublish(const sdk::Config &c)
    : settings_(Settings::fromConfig(c)),
      exchange_(c.str("exchange")),
      exchange_type_(c.str("exchange_type")),
      declare_(c.boolean("declare_exchange")),
      mandatory_(c.boolean("mandatory")),
      carry_(c.boolean("carry_envelope")),
      require_object_(c.boolean("require_object_body")),
      backoff_(reconnectPolicy(settings_.max_delay)) {
  std::string mode = c.str("message_id_mode");
  if (mode == "uuid") {
    uuid_ids_ = true;
  } else if (mode != "keep") {
    c.problem("message_id_mode", "unknown message_id_mode '" + mode + "': use keep or uuid");
  }
  static constexpr std::string_view kTypes[] = {"direct", "fanout", "topic", "headers"};
  if (std::find(std::begin(kTypes), std::end(kTypes), exchange_type_) == std::end(kTypes) &&
      exchange_type_.rfind("x-", 0) != 0) {
    c.problem("exchange_type", "unknown exchange_type '" + exchange_type_ +
                                   "': use direct, fanout, topic or headers (or a plugin's x-... type)");
  }
  prefix_ = c.str("routing_key_prefix");
  auto w = c.integer("confirm_window");
  if (w < 1 || w > 1000000) {
    c.problem("confirm_window", "confirm_window must be between 1 and 1000000");
  } else {
    window_ = static_cast<std::size_t>(w);
  }
  auto mms = c.integer("max_message_size");
  if (mms < 1) {
    c.problem("max_message_size", "max_message_size must be a positive number of bytes");
  } else {
    max_size_ = static_cast<std::uint64_t>(mms);
  }
  std::size_t n = 0;
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
      c.problem(fmt::format("allowed_topics[{}]", n),
                "'" + pat + "' is not a valid regular expression: " + e.what());
    }
    ++n;
  }
  if (auto ls = LeaseSettings::fromConfig(c); ls.enabled()) {
    lease_.emplace(std::move(ls), settings_);
  }
  std::string u = c.str("unroutable");
  if (u == "drop") {
    unroutable_ = Outcome::Dropped;
  } else if (u == "reject") {
    unroutable_ = Outcome::Reject;
  } else if (u == "retry") {
    unroutable_ = Outcome::Retry;
  } else {
    c.problem("unroutable", "unknown unroutable '" + u + "': use drop, reject or retry");
  }
}

Status AmqpPublish::probe(ProbeReport &report, std::chrono::milliseconds timeout) noexcept {
  try {
    Prober p(settings_, report, timeout);
    if (!p.connect() || exchange_.empty()) {
      return Status::ok();  // the default exchange always exists
    }
    bool declares = declare_ && exchange_.rfind("amq.", 0) != 0;
    p.exchange(exchange_, declares,
               "declare it on the broker, or set declare_exchange: true (and give the user configure permission)");
  } catch (const std::exception &e) {
    return Status::error(fmt::format("probe of {} failed: {}", urlWithoutPassword(settings_), e.what()));
  }
  return Status::ok();
}

Status AmqpPublish::start(SinkContext &ctx) noexcept {
  cc_.init(ctx, settings_);
  published_ = &ctx.counter("published");
  confirmed_ = &ctx.counter("confirmed");
  nacked_ = &ctx.counter("nacked");
  returned_count_ = &ctx.counter("unroutable");
  forbidden_ = &ctx.counter("forbidden");
  republished_ = &ctx.counter("republished");
  nack_reconnects_ = &ctx.counter("nack_reconnects");
  blocked_count_ = &ctx.counter("blocked_episodes");
  carried_ = &ctx.counter("envelopes_carried");
  not_carried_ = &ctx.counter("envelopes_not_carried");
  oversize_ = &ctx.counter("oversize");
  forbidden_topic_ = &ctx.counter("forbidden_topic");
  refused_ = &ctx.counter("refused_by_broker");
  unconfirmed_gauge_ = &ctx.gauge("unconfirmed");
  if (lease_ && ctx.inputCanRedeliver()) {
    // A standby drops what it is handed; an input that can redeliver would lose it for good.
    return Status::permanent(
        "lease is for an input that cannot redeliver (zmq-sub, stdin): a standby drops its input, which an "
        "AMQP input would acknowledge and lose; for several AMQP consumers use amqp-consume's "
        "single_active_consumer instead, and remove lease",
        "lease");
  }
  if (lease_) {
    // Standing by from the start: the runtime dispatches nothing until the lease is ours.
    ConnectError lerr;
    if (!lease_->start(ctx, lerr) && lerr.permanent()) {
      return lerr.startStatus("amqp-publish (lease)", settings_.redacted_url, "lease");
    }
  }
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

void AmqpPublish::send(SinkContext &ctx, Message &&msg, DeliveryId id) noexcept {
  try {
    Pending p;
    p.id = id;
    p.routing_key = fedora_messaging::routingKey(prefix_, msg.topic());
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
    // Parsed once and shared with the other stages (codec::parsedHeaders caches the tree).
    std::string reason;
    const json::Value *headers = codec::parsedHeaders(msg, &reason);
    if (headers == nullptr) {
      rejectHeaders(ctx, msg, id, "not a JSON object: " + reason);
      return;
    }
    if (require_object_ && !bodyIsObject(ctx, msg, id)) {
      return;
    }
    json::Value carried;
    if (!chooseIds(ctx, msg, p, carried)) {
      ctx.done(id, Outcome::Reject, "bad_envelope");
      return;
    }
    if (carried.isObject()) {
      p.carried = std::make_unique<const json::Value>(std::move(carried));
    }
    if (std::time_t now = std::time(nullptr); now != sent_at_second_) {
      sent_at_ = fedora_messaging::sentAt(now);
      sent_at_second_ = now;
    }
    p.sent_at = sent_at_;
    // Checked now (refused here, not at publish time); built again into the shared arena
    // when it is published.
    std::optional<std::uint8_t> priority;
    std::string err;
    if (!buildTable(p, *headers, arena_, entries_, priority, err)) {
      rejectHeaders(ctx, msg, id, err);
      return;
    }
    p.msg = std::move(msg);
    waiting_.push_back(std::move(p));
  } catch (const std::exception &e) {
    ctx.log().error("send: {}", e.what());
    ctx.done(id, Outcome::Retry, "internal_error");
    return;
  }
  // The runtime hands over a batch of messages, then calls poll(), which publishes them
  // all in one write; a long batch is written in parts.
  if (waiting_.size() >= kPublishBatch) {
    pump(ctx);
  }
  // Backpressure: hold the caller while the window is full; keep servicing the link.
  while (waiting_.size() + unconfirmed_.size() >= window_ && !ctx.stopping()) {
    service(ctx, std::chrono::milliseconds(100), false);
  }
}

void AmqpPublish::rejectHeaders(SinkContext &ctx, const Message &msg, DeliveryId id, const std::string &why) {
  ctx.log().warn("message {}: headers cannot be sent as an AMQP table ({}); rejected", msg.id(), why);
  ctx.done(id, Outcome::Reject, "bad_headers");
}

bool AmqpPublish::chooseIds(SinkContext &ctx, const Message &msg, Pending &p, json::Value &carried) {
  json::Value full_id;
  p.message_id = fedora_messaging::messageId(msg.id(), uuid_ids_, full_id);
  if (carry_) {
    if (const auto &env = msg.envelope()) {
      std::string err;
      if (!carry::headersFromWire(*env, carried, err)) {
        ctx.log().warn("message {}: cannot carry its envelope ({}); rejected", msg.id(), err);
        return false;
      }
      carried_->add();
      return true;
    }
    // Changed on the way (or not from fedmsg): its old signature would not verify.
    not_carried_->add();
  }
  if (full_id.isObject()) {
    carried = std::move(full_id);
  }
  return true;
}

bool AmqpPublish::bodyIsObject(SinkContext &ctx, const Message &msg, DeliveryId id) {
  bool object = false;
  std::string detail;
  if (msg.envelope() || (msg.bodyChecked() && !msg.parsedBodyCache())) {
    // Checked on entry as one JSON value (an envelope's `msg`): its first byte tells.
    std::string_view b = msg.body();
    auto first = b.find_first_not_of(" \t\r\n");
    object = first != std::string_view::npos && b[first] == '{';
  } else if (const auto &tree = msg.parsedBodyCache()) {
    object = tree->isObject();
  } else {
    auto r = fedmsg::validateJson(msg.body(), {}, true);
    object = r.ok();
    if (!object && r.reason != "not_an_object") {
      ctx.log().warn("message {}: body is {}; rejected", msg.id(), r.detail);
      ctx.done(id, Outcome::Reject, "bad_body");
      return false;
    }
  }
  if (!object) {
    ctx.log().warn("message {}: body is not a JSON object; rejected", msg.id());
    ctx.done(id, Outcome::Reject, "body_not_object");
  }
  return object;
}

void AmqpPublish::refuseTooLarge(SinkContext &ctx, DeliveryId id, std::string_view message_id, std::size_t size) noexcept {
  oversize_->add();
  drop_log_.warn(ctx, "oversize",
                 "message {}: body of {} bytes is larger than the broker's limit of {} bytes "
                 "(max_message_size); refused without publishing",
                 message_id, size, max_size_);
  ctx.done(id, Outcome::Reject, "oversize");
}

bool AmqpPublish::buildTable(const Pending &p, const json::Value &headers, TableArena &arena,
                             std::vector<amqp_table_entry_t> &entries, std::optional<std::uint8_t> &priority,
                             std::string &error) {
  priority = fedora_messaging::publishHeaders(&headers, p.carried.get(), p.sent_at, header_refs_);
  arena.clear();
  entries.clear();
  return arena.fromHeaders(header_refs_, entries, error);
}

int AmqpPublish::publish(const Pending &p) {
  const json::Value *headers = codec::parsedHeaders(p.msg);  // the tree send() made or found
  std::optional<std::uint8_t> priority;
  std::string err;
  if (headers == nullptr || !buildTable(p, *headers, arena_, entries_, priority, err)) {
    return AMQP_STATUS_BAD_AMQP_DATA;  // cannot happen: send() built the same table
  }
  amqp_basic_properties_t props{};
  props._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_CONTENT_ENCODING_FLAG | AMQP_BASIC_HEADERS_FLAG |
                 AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_MESSAGE_ID_FLAG;
  props.content_type = bytesOf(fedora_messaging::kContentType);
  props.content_encoding = bytesOf(fedora_messaging::kContentEncoding);
  props.delivery_mode = fedora_messaging::kDeliveryMode;
  props.message_id = bytesOf(p.message_id);
  props.headers = amqp_table_t{static_cast<int>(entries_.size()), entries_.data()};
  if (priority) {
    props._flags |= AMQP_BASIC_PRIORITY_FLAG;
    props.priority = *priority;
  }
  if (settings_.tls) {
    return amqp_basic_publish(conn_.state(), channel_, amqp_cstring_bytes(exchange_.c_str()),
                              bytesOf(p.routing_key), mandatory_ ? 1 : 0, 0, &props, bytesOf(p.msg.body()));
  }
  amqp_basic_publish_t m{};
  m.exchange = bytesOf(exchange_);
  m.routing_key = bytesOf(p.routing_key);
  m.mandatory = mandatory_ ? 1 : 0;
  m.immediate = 0;
  return batch_.appendPublish(channel_, m, props, p.msg.body(),
                              static_cast<std::size_t>(amqp_get_frame_max(conn_.state())));
}

}  // namespace switchyard::amqp

using switchyard::amqp::AmqpPublish;

SWITCHYARD_PLUGIN(AmqpPublish, SY_KIND_SINK, "amqp-publish", "1.0.0",
                  "Publishes to an AMQP 0-9-1 exchange (fedora-messaging format) with publisher confirms",
                  SY_FLAG_CAN_ACK, kSchema)
