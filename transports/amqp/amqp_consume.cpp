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
#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "amqp_consume.hpp"
#include "amqp_probe.hpp"
#include "switchyard/fedmsg_carry.hpp"
#include "switchyard/fedmsg.hpp"
#include "switchyard/fedora_messaging.hpp"
#include "switchyard/json.hpp"
#include "switchyard/parsed.hpp"
#include "switchyard/signed_wire.hpp"
#include "switchyard/sdk.hpp"

namespace {

using namespace switchyard;
using namespace switchyard::amqp;

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
    {"queue_type", SY_CFG_STRING, 0, "\"\"",
     "The queue's type (argument x-queue-type): classic or quorum; \"\" leaves it to the broker (classic). A "
     "quorum queue is replicated on the nodes of a cluster and survives the loss of a minority of them: the "
     "queue of several competing instances on a cluster. It must be named, durable and not auto-delete.",
     0},
    {"single_active_consumer", SY_CFG_BOOL, 0, "false",
     "Declare the queue with x-single-active-consumer: of all the instances consuming it, one gets the "
     "deliveries and the others stand by, the next taking over when it goes (strict order, no parallelism).",
     0},
    {"bindings", SY_CFG_LIST, 0, "[]",
     "List of {exchange, routing_keys} bound to the queue after every (re)connect.", 0},
    {"prefetch", SY_CFG_INT, 0, "10", "basic.qos prefetch count: unacknowledged deliveries at most.", 0, nullptr, SY_BOUND_MIN | SY_BOUND_MAX, 1, 65535},
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
     "Reject (without requeue, dropped{reason=not_an_object}) a body that is valid JSON but not an object, as "
     "fedora-messaging consumers do.",
     0},
    {"missing_message_id", SY_CFG_STRING, 0, "\"drop\"",
     "A delivery without a usable message_id property (absent, empty or not UTF-8): drop = ack it and drop it, "
     "counted as dropped{reason=no_message_id} (what the reference bridge does: such a message can be neither "
     "de-duplicated nor matched by verify-missing); generate = give it a new UUID4 as its id and pass it on.",
     0, "drop|generate"},
    {nullptr, 0, 0, nullptr, nullptr, 0},
};

/// The body's parse limits: the broker already bounded its size (max_message_size).
const json::ParseLimits &bodyLimits() {
  static const json::ParseLimits limits = [] {
    json::ParseLimits l;
    l.max_bytes = std::numeric_limits<std::size_t>::max();
    return l;
  }();
  return limits;
}

/// Nesting of @p v as an envelope decode counts it (an object or array is one level).
std::size_t depthOf(const json::Value &v) {
  std::size_t inner = 0;
  for (const auto &i : v.items) {
    inner = std::max(inner, depthOf(i));
  }
  for (const auto &m : v.members) {
    inner = std::max(inner, depthOf(m.value));
  }
  return v.isObject() || v.isArray() ? inner + 1 : 0;
}

/// `timestamp` in milliseconds, as the envelope decode reads it (0 when absent, null or out
/// of range).
std::int64_t timestampMs(const json::Value *t) {
  if (t == nullptr) {
    return 0;
  }
  if (t->type == json::Value::Type::Integer) {
    std::int64_t s = 0;
    auto [p, ec] = std::from_chars(t->text.data(), t->text.data() + t->text.size(), s);
    bool ok = ec == std::errc() && p == t->text.data() + t->text.size();
    return ok && s > -9223372036854775LL && s < 9223372036854775LL ? s * 1000 : 0;
  }
  if (t->type == json::Value::Type::Float && std::isfinite(t->number) && std::fabs(t->number) <= 9.0e15) {
    return static_cast<std::int64_t>(std::llround(t->number * 1000.0));
  }
  return 0;
}

/// The envelope @p env (an object, members sorted) as a WireEnvelope, rendered canonically
/// member by member and assembled without parsing the text again (fedmsg::assembleWire,
/// which counts the one serialisation);
/// refused like the decode would (too_deep over 64 levels, missing_topic, ...).
std::shared_ptr<const fedmsg::WireEnvelope> assembleEnvelope(const json::Value &env, fedmsg::Result &res) {
  fedmsg::Limits limits;
  if (depthOf(env) > limits.max_depth) {
    res = fedmsg::Result::fail("too_deep", fmt::format("nested deeper than {} levels", limits.max_depth));
    return nullptr;
  }
  if (auto topic = env.findString("topic"); topic && !fedmsg::isValidUtf8(*topic)) {
    res = fedmsg::Result::fail("invalid_utf8", "the routing key (topic) is not valid UTF-8");
    return nullptr;
  }
  std::vector<std::string> texts;
  std::vector<fedmsg::MemberText> members;
  texts.reserve(env.members.size());
  members.reserve(env.members.size());
  for (const auto &m : env.members) {
    texts.emplace_back();
    json::appendCanonicalPart(m.value, texts.back());  // parts of the one text assembleWire counts
    members.push_back({m.key, texts.back()});
  }
  return fedmsg::assembleWire(members, timestampMs(env.find("timestamp")), res);
}

}  // namespace

namespace switchyard::amqp {

AmqpConsume::AmqpConsume(const sdk::Config &c)
    : settings_(Settings::fromConfig(c)),
      queue_(c.str("queue")),
      durable_(c.boolean("durable")),
      auto_delete_(c.boolean("auto_delete")),
      passive_(c.boolean("passive")),
      restore_(c.boolean("restore_envelope")),
      require_object_(c.boolean("require_object_body")),
      backoff_(reconnectPolicy(settings_.max_delay)) {
  auto pf = c.integer("prefetch");
  if (pf < 1 || pf > 65535) {
    c.problem("prefetch", "prefetch must be between 1 and 65535");
  } else {
    prefetch_ = static_cast<std::uint16_t>(pf);
  }
  prefix_ = c.str("routing_key_prefix");
  // The configuration's JSON text of `arguments`, parsed into a tree once, at load.
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  c.value("arguments").Accept(w);
  std::string err;
  auto args = json::parse(std::string_view(sb.GetString(), sb.GetSize()), &err);
  if (args && args->isObject()) {
    queueOptions(c, *args);
  }
  if (!args || !args->isObject() || !args_arena_.fromJson(*args, args_, err)) {
    c.problem("arguments", "'arguments' must be a mapping of AMQP-encodable values: " + err);
  }
  readBindings(c);
  std::string mid = c.str("missing_message_id");
  if (mid == "generate") {
    generate_ids_ = true;
  } else if (mid != "drop") {
    c.problem("missing_message_id", "unknown missing_message_id '" + mid + "': use drop or generate");
  }
  if (passive_ && queue_.empty()) {
    c.problem("passive", "passive: true only checks a named queue: set queue (or passive: false)");
  }
}

/// queue_type and single_active_consumer into the queue.declare @p args, which may already
/// say the same (not otherwise).
void AmqpConsume::queueOptions(const sdk::Config &c, json::Value &args) {
  std::string type = c.str("queue_type");
  if (!type.empty()) {
    if (type != "classic" && type != "quorum") {
      c.problem("queue_type", "unknown queue_type '" + type + "': use classic or quorum");
    } else if (auto given = args.findString("x-queue-type"); given && *given != type) {
      c.problem("queue_type", fmt::format("queue_type: {} contradicts arguments.x-queue-type: {}; keep one of them",
                                          type, *given));
    } else {
      args.set("x-queue-type", json::Value::fromString(type));
    }
  }
  if (c.boolean("single_active_consumer")) {
    const json::Value *given = args.find("x-single-active-consumer");
    if (given != nullptr && !(given->type == json::Value::Type::Bool && given->boolean)) {
      c.problem("single_active_consumer",
                "single_active_consumer: true contradicts arguments.x-single-active-consumer; keep one of them");
    } else {
      args.set("x-single-active-consumer", json::Value::fromBool(true));
    }
  }
  if (args.findString("x-queue-type") == std::string_view("quorum")) {
    const char *key = type.empty() ? "arguments" : "queue_type";
    if (queue_.empty()) {
      c.problem(key, "a quorum queue needs a name: set queue (the broker names only exclusive classic queues)");
    } else if (!durable_) {
      c.problem(key, "a quorum queue is always durable: remove durable: false");
    } else if (auto_delete_) {
      c.problem(key, "a quorum queue cannot be auto-delete: remove auto_delete: true");
    }
  }
}

/// `bindings`: a list of {exchange, routing_keys}; every problem recorded at its item.
void AmqpConsume::readBindings(const sdk::Config &c) {
  const auto &b = c.value("bindings");
  if (!b.IsArray()) {
    c.problem("bindings", "'bindings' must be a list of {exchange, routing_keys}");
    return;
  }
  std::size_t n = 0;
  for (const auto &e : b.GetArray()) {
    std::string at = fmt::format("bindings[{}]", n++);
    if (!e.IsObject() || !e.HasMember("exchange") || !e["exchange"].IsString()) {
      c.problem(at, "each binding needs 'exchange' (a string) and 'routing_keys'");
      continue;
    }
    Binding bd;
    bd.exchange = e["exchange"].GetString();
    bool ok = true;
    for (const auto &m : e.GetObject()) {
      std::string k = m.name.GetString();
      if (k != "exchange" && k != "routing_keys") {
        c.problem(at + "." + k, "unknown key '" + k + "' in a binding; allowed: exchange, routing_keys");
        ok = false;
      }
    }
    if (!e.HasMember("routing_keys")) {
      c.problem(at, "binding for exchange '" + bd.exchange + "' has no routing_keys");
      continue;
    }
    const auto &rk = e["routing_keys"];
    if (rk.IsString()) {
      bd.keys.emplace_back(rk.GetString());
    } else if (rk.IsArray()) {
      for (const auto &k : rk.GetArray()) {
        if (!k.IsString()) {
          c.problem(at + ".routing_keys", "routing_keys must be strings");
          ok = false;
          break;
        }
        bd.keys.emplace_back(k.GetString());
      }
    } else {
      c.problem(at + ".routing_keys", "routing_keys must be a string or a list of strings");
      ok = false;
    }
    if (ok) {
      bindings_.push_back(std::move(bd));
    }
  }
}

Status AmqpConsume::probe(ProbeReport &report, std::chrono::milliseconds timeout) noexcept {
  try {
    Prober p(settings_, report, timeout);
    if (!p.connect()) {
      return Status::ok();
    }
    if (!queue_.empty()) {  // a server-named queue is made at start-up
      p.queue(queue_, !passive_,
              "declare it on the broker (passive: true only checks that it exists), or set passive: false");
    }
    std::vector<std::string> seen;
    for (const auto &b : bindings_) {
      if (b.exchange.empty() || std::find(seen.begin(), seen.end(), b.exchange) != seen.end()) {
        continue;  // the default exchange binds every queue by itself
      }
      seen.push_back(b.exchange);
      p.exchange(b.exchange, false, "declare it on the broker (the consumer binds to it but never declares it)");
    }
  } catch (const std::exception &e) {
    return Status::error(fmt::format("probe of {} failed: {}", urlWithoutPassword(settings_), e.what()));
  }
  return Status::ok();
}

Status AmqpConsume::start(SourceContext &ctx) noexcept {
  cc_.init(ctx, settings_);
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

void AmqpConsume::deliver(SourceContext &ctx, std::uint64_t dtag, bool redelivered, const std::string &rk,
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
    // The one parse of the body: its tree stays on the message for the later stages.
    std::string bad;
    std::optional<json::Value> body;
    if (!fedmsg::isValidUtf8(out.body())) {
      bad = "invalid_utf8";
    } else {
      body = json::parse(out.body(), &bad, bodyLimits());
      if (body && require_object_ && !body->isObject()) {
        bad = "not_an_object";
      }
    }
    if (!bad.empty()) {
      // Permanent: requeueing would loop forever; a dead-letter exchange may take it.
      ctx.countDrop(bad);
      ctx.log().warn("delivery {} (routing key '{}'): body is not {} ({}); rejected without requeue", dtag, rk,
                     bad == "invalid_utf8" ? "valid UTF-8" : bad == "not_an_object" ? "a JSON object" : "JSON",
                     bad);
      unsettled_.erase(dtag);
      (void)amqp_basic_nack(conn_.state(), kChannel, dtag, 0, 0);
      rejected_->add();
      return;
    }
    const auto &p = msg.properties;
    fedora_messaging::Delivery dv;
    dv.routing_key = rk;
    if ((p._flags & AMQP_BASIC_HEADERS_FLAG) != 0) {
      dv.headers = tableToJson(p.headers);
      dv.headers_text = jsonText(*dv.headers);  // beside the tree; nobody parses it again
    }
    if ((p._flags & AMQP_BASIC_MESSAGE_ID_FLAG) != 0) {
      dv.message_id = std::string_view(static_cast<char *>(p.message_id.bytes), p.message_id.len);
    }
    if ((p._flags & AMQP_BASIC_TIMESTAMP_FLAG) != 0) {
      dv.timestamp_s = p.timestamp;
    }
    fedora_messaging::toMessage(std::move(dv), prefix_, out);
    if (!restore_ || !restoreEnvelope(ctx, out, *body)) {  // may take the id from fedmsg_msg_id
      codec::setParsedBody(out, std::move(*body));
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

bool AmqpConsume::restoreEnvelope(SourceContext &ctx, Message &out, json::Value &body) {
  const json::Value *headers = out.parsedHeadersCache().get();
  if (headers == nullptr) {
    return false;
  }
  json::Value env;
  std::string err;
  auto r = carry::envelopeValueFromHeaders(*headers, out.topic(), body, out.id(), env, err);
  if (r == carry::Restore::NotCarried) {
    return false;
  }
  fedmsg::Result res;
  std::shared_ptr<const fedmsg::WireEnvelope> wire;
  if (r == carry::Restore::Ok) {
    wire = assembleEnvelope(env, res);
  }
  if (r == carry::Restore::Failed || !res.ok()) {
    restore_failed_->add();
    ctx.log().warn("message '{}' on '{}': cannot restore its fedmsg envelope ({}); passed on as a plain message",
                   out.id(), out.topic(), r == carry::Restore::Failed ? err : res.reason + ": " + res.detail);
    return false;
  }
  const auto &f = wire->fields;
  Message rebuilt(f.topic, std::string(f.msg), f.headers.empty() ? std::string("{}") : std::string(f.headers),
                  f.msg_id, f.timestamp_ms);
  fedmsg::attach(rebuilt, std::move(wire));
  restored_->add();
  rebuilt.setTimestampMs(rebuilt.timestampMs() != 0 ? rebuilt.timestampMs() : out.timestampMs());
  if (json::Value *h = env.find("headers"); h != nullptr && h->isObject()) {
    rebuilt.cacheParsedHeaders(std::make_shared<const json::Value>(std::move(*h)));
  }
  codec::setParsedBody(rebuilt, std::move(body));
  out = std::move(rebuilt);
  return true;
}

}  // namespace switchyard::amqp

using switchyard::amqp::AmqpConsume;

SWITCHYARD_PLUGIN(AmqpConsume, SY_KIND_SOURCE, "amqp-consume", "1.0.0",
                  "Consumes an AMQP 0-9-1 queue with manual acknowledgements (fedora-messaging format)",
                  SY_FLAG_CAN_ACK, kSchema)
