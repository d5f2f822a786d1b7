// SPDX-License-Identifier: MIT
// `switchyard test`: the in-memory stand-ins (see cli_test_io.hpp).
#include <pwd.h>
#include <unistd.h>

#include <cstdlib>
#include <ctime>
#include <limits>

#include <fmt/format.h>

#include "cli_test_io.hpp"
#include "switchyard/fedmsg.hpp"
#include "switchyard/fedmsg_carry.hpp"
#include "switchyard/fedora_messaging.hpp"
#include "switchyard/parsed.hpp"
#include "switchyard/sdk.hpp"
// stdin's and stdout's line format, compiled into this program once (as into each plugin).
#include "../../transports/stdio/jsonl_impl.hpp"

namespace switchyard::cli::pipetest {
namespace {

/// "pipelines.P.input (zmq-sub)" -> P; "pipelines.P.outputs[2] (zmq-pub)" -> P and 2.
std::string pipelineOf(const std::string &instance, std::size_t *output) {
  std::string s = instance;
  if (auto paren = s.rfind(" ("); paren != std::string::npos) {
    s.resize(paren);
  }
  if (s.starts_with("pipelines.")) {
    s.erase(0, 10);
  }
  if (auto o = s.rfind(".outputs["); o != std::string::npos && output != nullptr) {
    *output = static_cast<std::size_t>(std::stoull(s.substr(o + 9)));
    s.resize(o);
  } else if (s.ends_with(".input")) {
    s.resize(s.size() - 6);
  }
  return s;
}

json::Value parsedOr(std::string_view text, json::Value fallback) {
  auto v = json::parse(text);
  return v ? std::move(*v) : std::move(fallback);
}

// --- inputs ------------------------------------------------------------------------------

/// Submits the inputs of its pipeline one per poll(), each decoded by decode(), then ends
/// the stream.
class StandInSource : public Source {
 public:
  StandInSource(const sdk::Config &c, const std::shared_ptr<CaseIO> &io) : io_(io) {
    pipeline_ = pipelineOf(c.instance(), nullptr);
  }
  Status start(SourceContext &) noexcept override {
    std::lock_guard lock(io_->mu);
    if (auto it = io_->inputs.find(pipeline_); it != io_->inputs.end()) {
      inputs_ = it->second;
    }
    return Status::ok();
  }
  Status poll(SourceContext &ctx, std::chrono::milliseconds) noexcept override {
    if (next_ >= inputs_.size()) {
      return Status::endOfStream();
    }
    try {
      Message m;
      std::string reason = decode(ctx, inputs_[next_], m);
      if (!reason.empty()) {
        ctx.countDrop(reason);
        refused(ctx, reason);
        ++next_;
        return Status::ok();
      }
      if (ctx.submit(std::move(m), next_) == SourceContext::SubmitResult::Stopping) {
        return Status::endOfStream();
      }
      ++next_;
    } catch (const std::exception &e) {
      return Status::fatal(fmt::format("test input {}: {}", next_ + 1, e.what()));
    }
    return Status::ok();
  }

 protected:
  /// Fills @p m as the real input would; returns a drop reason instead when it would drop it.
  virtual std::string decode(SourceContext &ctx, const RawInput &in, Message &m) = 0;
  virtual void refused(SourceContext &, const std::string &) {}

 private:
  std::shared_ptr<CaseIO> io_;
  std::string pipeline_;
  std::vector<RawInput> inputs_;
  std::size_t next_ = 0;
};

class ZmqSubStandIn final : public StandInSource {
 public:
  ZmqSubStandIn(const sdk::Config &c, const std::shared_ptr<CaseIO> &io) : StandInSource(c, io) {
    limits_.max_bytes = static_cast<std::size_t>(c.integer("max_message_size"));
    limits_.max_depth = static_cast<std::size_t>(c.integer("max_depth"));
    topics_ = c.strings("topics");
  }

 protected:
  std::string decode(SourceContext &, const RawInput &in, Message &m) override {
    if (!in.frames.empty() && !subscribed(in.frames[0])) {
      return "not_subscribed";
    }
    if (in.frames.size() != 2) {
      return "wrong_frame_count";
    }
    auto r = fedmsg::decode(in.frames[0], in.frames[1], m, limits_);
    return r.ok() ? std::string() : r.reason;
  }

 private:
  bool subscribed(std::string_view topic) const {
    if (topics_.empty()) {
      return true;
    }
    for (const auto &t : topics_) {
      if (topic.starts_with(t)) {
        return true;
      }
    }
    return false;
  }
  fedmsg::Limits limits_;
  std::vector<std::string> topics_;
};

class AmqpConsumeStandIn final : public StandInSource {
 public:
  AmqpConsumeStandIn(const sdk::Config &c, const std::shared_ptr<CaseIO> &io)
      : StandInSource(c, io),
        prefix_(c.str("routing_key_prefix")),
        restore_(c.boolean("restore_envelope")),
        require_object_(c.boolean("require_object_body")),
        generate_ids_(c.str("missing_message_id") == "generate") {}

  void complete(std::uint64_t, Outcome outcome, std::string_view) noexcept override {
    if (outcome == Outcome::Retry) {
      ctx_->counter("nacked", "requeue").add();
    } else if (outcome == Outcome::Reject) {
      ctx_->counter("nacked", "reject").add();
    } else {
      ctx_->counter("acked").add();
    }
  }

 protected:
  std::string decode(SourceContext &ctx, const RawInput &in, Message &out) override {
    ctx_ = &ctx;
    ctx.counter("deliveries").add();
    if (in.redelivered) {
      ctx.counter("redelivered").add();
    }
    out.setBody(in.body);
    std::string bad;
    std::optional<json::Value> body;
    if (!fedmsg::isValidUtf8(out.body())) {
      bad = "invalid_utf8";
    } else {
      json::ParseLimits limits;
      limits.max_bytes = std::numeric_limits<std::size_t>::max();
      body = json::parse(out.body(), &bad, limits);
      if (body && require_object_ && !body->isObject()) {
        bad = "not_an_object";
      }
    }
    if (!bad.empty()) {
      return bad;  // rejected without requeue (refused())
    }
    fedora_messaging::Delivery dv;
    dv.routing_key = in.routing_key;
    if (in.headers) {
      dv.headers = *in.headers;
      dv.headers_text = json::canonical(*in.headers);
    }
    if (in.message_id) {
      dv.message_id = *in.message_id;
    }
    dv.timestamp_s = in.timestamp_s;
    fedora_messaging::toMessage(std::move(dv), prefix_, out);
    if (!restore_ || !restoreEnvelope(ctx, out, *body)) {
      codec::setParsedBody(out, std::move(*body));
    }
    if (out.id().empty()) {
      if (!generate_ids_) {
        return "no_message_id";  // acked and dropped, as the real input does
      }
      out.setId(fedmsg::uuid4());
      ctx.counter("generated_ids").add();
    }
    out.setMeta(meta::kAmqpRedelivered, in.redelivered ? "true" : "false");
    out.setMeta("amqp.exchange", in.exchange);
    out.setMeta("amqp.routing_key", in.routing_key);
    return {};
  }
  void refused(SourceContext &ctx, const std::string &reason) override {
    if (reason == "no_message_id") {
      ctx.counter("acked").add();
    } else {
      ctx.counter("nacked", "reject").add();  // a body it cannot take: rejected without requeue
    }
  }

 private:
  bool restoreEnvelope(SourceContext &ctx, Message &out, json::Value &body) {
    const json::Value *headers = out.parsedHeadersCache().get();
    if (headers == nullptr) {
      return false;
    }
    std::string text;
    std::string err;
    auto r = amqp::carry::envelopeFromHeaders(out.headers(), out.topic(), out.body(), out.id(), text, err);
    if (r == amqp::carry::Restore::NotCarried) {
      return false;
    }
    fedmsg::Result res;
    std::shared_ptr<const fedmsg::WireEnvelope> wire;
    if (r == amqp::carry::Restore::Ok) {
      wire = fedmsg::parseWire(std::move(text), res);
    }
    if (r == amqp::carry::Restore::Failed || !wire) {
      ctx.counter("envelopes_restore_failed").add();
      ctx.log().warn("message '{}' on '{}': cannot restore its fedmsg envelope ({}); passed on as a plain message",
                     out.id(), out.topic(), r == amqp::carry::Restore::Failed ? err : res.reason);
      return false;
    }
    const auto &f = wire->fields;
    Message rebuilt(f.topic, std::string(f.msg), f.headers.empty() ? std::string("{}") : std::string(f.headers),
                    f.msg_id, f.timestamp_ms != 0 ? f.timestamp_ms : out.timestampMs());
    fedmsg::attach(rebuilt, std::move(wire));
    ctx.counter("envelopes_restored").add();
    codec::setParsedBody(rebuilt, std::move(body));
    out = std::move(rebuilt);
    return true;
  }

  std::string prefix_;
  bool restore_;
  bool require_object_;
  bool generate_ids_;
  SourceContext *ctx_ = nullptr;
};

class StdinStandIn final : public StandInSource {
 public:
  using StandInSource::StandInSource;

 protected:
  std::string decode(SourceContext &ctx, const RawInput &in, Message &m) override {
    ctx.counter("lines").add();
    std::string detail;
    std::string line = in.line;  // NUL-terminated storage, as parseLine wants
    return jsonl::parseLine(line, m, detail);
  }
};

// --- outputs -----------------------------------------------------------------------------

class StandInSink : public Sink {
 public:
  StandInSink(const sdk::Config &c, const std::shared_ptr<CaseIO> &io, std::string type) : io_(io) {
    pipeline_ = pipelineOf(c.instance(), &index_);
    std::lock_guard lock(io_->mu);
    io_->outputs[pipeline_][index_].type = std::move(type);
  }
  Status start(SinkContext &) noexcept override { return Status::ok(); }
  void send(SinkContext &ctx, Message &&msg, DeliveryId id) noexcept override {
    try {
      Capture c;
      std::string reason;
      Outcome o = encode(ctx, msg, c, reason);
      if (o == Outcome::Delivered) {
        std::lock_guard lock(io_->mu);
        io_->outputs[pipeline_][index_].sent.push_back(std::move(c));
      }
      ctx.done(id, o, reason);
    } catch (const std::exception &e) {
      ctx.log().error("test output: {}", e.what());
      ctx.done(id, Outcome::Reject, "internal_error");
    }
  }

 protected:
  /// Encodes @p msg as the real output would, into @p c; or refuses it (outcome, reason).
  virtual Outcome encode(SinkContext &ctx, Message &msg, Capture &c, std::string &reason) = 0;

 private:
  std::shared_ptr<CaseIO> io_;
  std::string pipeline_;
  std::size_t index_ = 0;
};

class AmqpPublishStandIn final : public StandInSink {
 public:
  AmqpPublishStandIn(const sdk::Config &c, const std::shared_ptr<CaseIO> &io)
      : StandInSink(c, io, "amqp-publish"),
        exchange_(c.str("exchange")),
        prefix_(c.str("routing_key_prefix")),
        uuid_ids_(c.str("message_id_mode") == "uuid"),
        carry_(c.boolean("carry_envelope")),
        require_object_(c.boolean("require_object_body")),
        max_size_(static_cast<std::size_t>(c.integer("max_message_size"))) {}

 protected:
  Outcome encode(SinkContext &ctx, Message &msg, Capture &c, std::string &reason) override {
    std::string routing_key = fedora_messaging::routingKey(prefix_, msg.topic());
    if (msg.body().size() > max_size_) {
      ctx.counter("oversize").add();
      reason = "oversize";
      return Outcome::Reject;
    }
    const json::Value *headers = codec::parsedHeaders(msg, &reason);
    if (headers == nullptr) {
      reason = "bad_headers";
      return Outcome::Reject;
    }
    if (require_object_) {
      const json::Value *body = codec::parsedBody(msg, &reason);
      if (body == nullptr) {
        reason = "bad_body";
        return Outcome::Reject;
      }
      if (!body->isObject()) {
        reason = "body_not_object";
        return Outcome::Reject;
      }
    }
    json::Value full_id;
    json::Value carried;
    std::string message_id = fedora_messaging::messageId(msg.id(), uuid_ids_, full_id);
    bool carrying = false;
    if (carry_ && msg.envelope()) {
      std::string err;
      if (!amqp::carry::headersFromWire(*msg.envelope(), carried, err)) {
        reason = "bad_envelope";
        return Outcome::Reject;
      }
      ctx.counter("envelopes_carried").add();
      carrying = true;
    } else if (carry_) {
      ctx.counter("envelopes_not_carried").add();
    }
    if (!carrying && full_id.isObject()) {
      carried = std::move(full_id);
    }
    std::vector<fedora_messaging::HeaderRef> refs;
    std::string sent_at = fedora_messaging::sentAt(std::time(nullptr));
    auto priority = fedora_messaging::publishHeaders(headers, carried.isObject() ? &carried : nullptr, sent_at, refs);
    json::Value table = json::Value::object();
    for (const auto &h : refs) {
      table.set(std::string(h.key), h.value != nullptr ? *h.value : json::Value::fromString(std::string(h.text)));
    }
    json::Value &v = c.view;
    v.set("exchange", json::Value::fromString(exchange_));
    v.set("routing_key", json::Value::fromString(routing_key));
    v.set("topic", json::Value::fromString(msg.topic()));
    v.set("body", parsedOr(msg.body(), json::Value::null()));
    v.set("body_text", json::Value::fromString(msg.body()));
    v.set("headers", std::move(table));
    v.set("message_id", json::Value::fromString(message_id));
    v.set("id", json::Value::fromString(msg.id()));
    v.set("content_type", json::Value::fromString(std::string(fedora_messaging::kContentType)));
    v.set("content_encoding", json::Value::fromString(std::string(fedora_messaging::kContentEncoding)));
    v.set("delivery_mode", json::Value::fromInt(fedora_messaging::kDeliveryMode));
    v.set("priority", priority ? json::Value::fromInt(*priority) : json::Value::null());
    ctx.counter("published").add();
    ctx.counter("confirmed").add();
    return Outcome::Delivered;
  }

 private:
  std::string exchange_;
  std::string prefix_;
  bool uuid_ids_;
  bool carry_;
  bool require_object_;
  std::size_t max_size_;
};

std::string processUser() {
  if (const passwd *pw = ::getpwuid(::geteuid()); pw != nullptr && pw->pw_name != nullptr) {
    return pw->pw_name;
  }
  return "switchyard";
}

class ZmqPubStandIn final : public StandInSink {
 public:
  ZmqPubStandIn(const sdk::Config &c, const std::shared_ptr<CaseIO> &io)
      : StandInSink(c, io, "zmq-pub"), limits_(limitsOf(c)), builder_(usernameOf(c), limits_) {}

 protected:
  Outcome encode(SinkContext &ctx, Message &msg, Capture &c, std::string &reason) override {
    std::string envelope;
    if (const auto &env = msg.envelope()) {
      envelope = env->text;
      ctx.counter("envelopes_passed_through").add();
    } else {
      auto r = builder_.build(msg, envelope);
      if (!r.ok()) {
        reason = r.reason;
        return Outcome::Dropped;
      }
      ctx.counter("envelopes_built").add();
    }
    if (envelope.size() > limits_.max_bytes) {
      reason = "oversize";
      return Outcome::Dropped;
    }
    json::Value &v = c.view;
    json::Value env = parsedOr(envelope, json::Value::null());
    v.set("topic", json::Value::fromString(msg.topic()));
    v.set("envelope_text", json::Value::fromString(envelope));
    const json::Value *f = env.find("msg");
    v.set("body", f != nullptr ? *f : json::Value::null());
    f = env.find("headers");
    v.set("headers", f != nullptr ? *f : json::Value::null());
    f = env.find("msg_id");
    v.set("id", f != nullptr ? *f : json::Value::null());
    v.set("signed", json::Value::fromBool(env.find("signature") != nullptr && env.find("certificate") != nullptr));
    v.set("envelope", std::move(env));
    if (auto seq = msg.getMeta(meta::kSignerSeq)) {
      c.signer_seq = std::strtoull(std::string(*seq).c_str(), nullptr, 10);
    }
    Message wire;
    if (fedmsg::decode(msg.topic(), envelope, wire).ok()) {  // as a subscriber receives it
      c.wire = std::move(wire);
    }
    return Outcome::Delivered;
  }

 private:
  static std::string usernameOf(const sdk::Config &c) {
    std::string u = c.str("username");
    return u.empty() ? processUser() : u;
  }
  static fedmsg::Limits limitsOf(const sdk::Config &c) {
    fedmsg::Limits l;
    l.max_bytes = static_cast<std::size_t>(c.integer("max_message_size"));
    l.max_depth = static_cast<std::size_t>(c.integer("max_depth"));
    return l;
  }
  fedmsg::Limits limits_;
  fedmsg::EnvelopeBuilder builder_;
};

class StdoutStandIn final : public StandInSink {
 public:
  StdoutStandIn(const sdk::Config &c, const std::shared_ptr<CaseIO> &io) : StandInSink(c, io, "stdout") {}

 protected:
  Outcome encode(SinkContext &, Message &msg, Capture &c, std::string &) override {
    std::string line;
    jsonl::formatLine(msg, line);
    json::Value &v = c.view;
    v.set("line", json::Value::fromString(line));
    v.set("topic", json::Value::fromString(msg.topic()));
    v.set("body", parsedOr(msg.body(), json::Value::null()));
    v.set("headers", parsedOr(msg.headers(), json::Value::object()));
    v.set("id", json::Value::fromString(msg.id()));
    return Outcome::Delivered;
  }
};

}  // namespace

bool hasInputStandIn(std::string_view type) {
  return type == "zmq-sub" || type == "amqp-consume" || type == "stdin";
}
bool hasOutputStandIn(std::string_view type) {
  return type == "zmq-pub" || type == "amqp-publish" || type == "stdout";
}

void installStandIns(Engine &engine, const std::shared_ptr<CaseIO> &io) {
  engine.substituteSource("zmq-sub", [io](const sdk::Config &c) { return std::make_unique<ZmqSubStandIn>(c, io); });
  engine.substituteSource(
      "amqp-consume", [io](const sdk::Config &c) { return std::make_unique<AmqpConsumeStandIn>(c, io); }, true);
  engine.substituteSource("stdin", [io](const sdk::Config &c) { return std::make_unique<StdinStandIn>(c, io); });
  engine.substituteSink(
      "amqp-publish", [io](const sdk::Config &c) { return std::make_unique<AmqpPublishStandIn>(c, io); }, true);
  engine.substituteSink("zmq-pub", [io](const sdk::Config &c) { return std::make_unique<ZmqPubStandIn>(c, io); });
  engine.substituteSink("stdout", [io](const sdk::Config &c) { return std::make_unique<StdoutStandIn>(c, io); });
}

}  // namespace switchyard::cli::pipetest
