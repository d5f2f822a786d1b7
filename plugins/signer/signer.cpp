// SPDX-License-Identifier: MIT
#include "signer.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <ctime>
#include <deque>
#include <optional>
#include <vector>

#include <openssl/x509.h>

#include "switchyard/json.hpp"
#include "switchyard/parsed.hpp"
#include "switchyard/signed_wire.hpp"

namespace switchyard::plugins {

const sy_config_key kSignerSchema[] = {
    {"cert_file", SY_CFG_STRING, 1, nullptr,
     "PEM certificate of the signing identity (its commonName is what verifiers' routing policies list).", 0},
    {"key_file", SY_CFG_STRING, 1, nullptr,
     "Unencrypted PEM RSA private key matching cert_file; refused when group or others can access it.", 0},
    {"username", SY_CFG_STRING, 0, "\"amqp-bridge\"",
     "`username` of envelopes built for messages that arrive without one (the reference AMQP->ZMQ bridge "
     "uses amqp-bridge, which loop-guard recognises).",
     0},
    {"keep_signed", SY_CFG_BOOL, 0, "false",
     "Pass a message whose original envelope is intact and already signed (x509 signature and certificate) "
     "unchanged instead of re-signing it, so the origin's signature reaches the subscribers (bridged "
     "envelopes restored by amqp-consume's restore_envelope). Put a verifier before the signer to check it.",
     0},
    {nullptr, 0, 0, nullptr, nullptr, 0},
};

// ---------------------------------------------------------------------------------------
// SignerFactory

SignerFactory::SignerFactory(const sdk::Config &config) : keys_(std::make_shared<SignerKeys>()) {
  // Every problem is recorded (sdk::Config::problem) so that one `switchyard check` names
  // them all; the first is thrown at the end for callers that construct directly.
  SignerKeys &k = *keys_;
  k.username = config.str("username");
  if (!fedmsg::isValidUtf8(k.username)) {
    config.problem("username", "username is not valid UTF-8");
  } else {
    json::writeAsciiString(k.username, k.username_literal);
  }
  k.keep_signed = config.has("keep_signed") && config.boolean("keep_signed");
  std::string error;
  k.cert = x509::loadCertFile(config.str("cert_file"), &error);
  if (!k.cert) {
    config.problem("cert_file", error);
  }
  k.key = x509::loadPrivateKeyFile(config.str("key_file"), &error);
  if (!k.key) {
    config.problem("key_file", error);
  }
  if (k.cert && k.key && X509_check_private_key(k.cert.get(), k.key.get()) != 1) {
    x509::opensslErrors();  // clear the queue
    config.problem("key_file", "key_file '" + config.str("key_file") + "' does not match the public key of cert_file '" +
                                   config.str("cert_file") + "': give the key that was made with that certificate");
  }
  if (k.cert) {
    auto pem = x509::certToPem(k.cert.get());
    if (!pem) {
      config.problem("cert_file", "cannot re-encode cert_file as PEM");
    } else {
      // fedmsg embeds the certificate re-encoded by its crypto library, not the file bytes.
      json::writeAsciiString(x509::wrap76(x509::base64Encode(*pem)), k.cert_literal);
    }
  }
  if (!config.problems().empty()) {
    const auto &first = config.problems().front();
    throw sdk::ConfigError(first.key, first.message);
  }
}

Plugin *SignerFactory::instantiate(const InstanceArgs &args) noexcept {
  return sdk::barrier(args.error, [&]() -> Plugin * { return make().release(); });
}

// ---------------------------------------------------------------------------------------
// Signer

namespace {

using fedmsg::MemberText;

constexpr std::string_view kX509Literal = "\"x509\"";

/// Members the signer replaces: they are not part of what it takes over.
bool credential(std::string_view key) { return key == "signature" || key == "certificate" || key == "crypto"; }

/// Inserts @p m into @p parts, which are sorted by key.
void insertSorted(std::vector<MemberText> &parts, MemberText m) {
  auto it = std::lower_bound(parts.begin(), parts.end(), m.key,
                             [](const MemberText &a, std::string_view key) { return a.key < key; });
  parts.insert(it, m);
}

/// A canonical envelope's members carry an x509 signature and certificate (both strings).
bool signedMembers(const std::vector<json::RawMember> &members) {
  bool sig = false;
  bool cert = false;
  for (const json::RawMember &m : members) {
    if (m.key == "signature") {
      sig = m.value.front() == '"';
    } else if (m.key == "certificate") {
      cert = m.value.front() == '"';
    } else if (m.key == "crypto" && m.value != kX509Literal) {
      return false;
    }
  }
  return sig && cert;
}

/// The same for a parsed envelope.
bool signedTree(const json::Value &env) {
  const json::Value *crypto = env.find("crypto");
  const json::Value *sig = env.find("signature");
  const json::Value *cert = env.find("certificate");
  return sig != nullptr && cert != nullptr && sig->isString() && cert->isString() &&
         (crypto == nullptr || (crypto->isString() && crypto->text == "x509"));
}

/// Whether @p v nests objects and arrays deeper than @p limit (root = 1), as the codec's
/// validateJson() counts: such a body would be refused by every fedmsg decoder.
bool deeperThan(const json::Value &v, std::size_t limit) {
  std::vector<std::pair<const json::Value *, std::size_t>> stack{{&v, 1}};
  while (!stack.empty()) {
    auto [p, depth] = stack.back();
    stack.pop_back();
    if (depth > limit) {
      return true;
    }
    for (const json::Value &item : p->items) {
      if (item.isArray() || item.isObject()) {
        stack.emplace_back(&item, depth + 1);
      }
    }
    for (const json::Member &m : p->members) {
      if (m.value.isArray() || m.value.isObject()) {
        stack.emplace_back(&m.value, depth + 1);
      }
    }
  }
  return false;
}

/// `timestamp` of an envelope that was attached without decoding (seconds to ms).
std::int64_t timestampMs(const json::Value *t) {
  if (t == nullptr || t->type == json::Value::Type::Float) {
    return t == nullptr || !std::isfinite(t->number) || std::fabs(t->number) > 9.0e15
               ? 0
               : static_cast<std::int64_t>(std::llround(t->number * 1000.0));
  }
  std::int64_t s = 0;
  if (t->type != json::Value::Type::Integer ||
      std::from_chars(t->text.data(), t->text.data() + t->text.size(), s).ec != std::errc() ||
      std::llabs(s) >= 9223372036854775LL) {
    return 0;
  }
  return s * 1000;
}

}  // namespace

Status Signer::start(FilterContext &ctx) noexcept {
  try {
    kept_signed_count_ = &ctx.counter("kept_signed");
    // When the signing certificate expires (its notAfter, a Unix timestamp): verifiers
    // refuse what it signs from then on.
    std::tm tm{};
    const ASN1_TIME *not_after = keys_->cert ? X509_get0_notAfter(keys_->cert.get()) : nullptr;
    ctx.gauge("cert_not_after_timestamp_seconds")
        .set(not_after != nullptr && ASN1_TIME_to_tm(not_after, &tm) == 1 ? static_cast<std::int64_t>(timegm(&tm))
                                                                          : 0);
  } catch (const std::exception &e) {
    return Status::fatal(e.what());
  }
  return Status::ok();
}

Verdict Signer::refuse(FilterContext &ctx, const Message &msg, std::string_view reason,
                       std::string_view detail) noexcept {
  drop_log_.warn(ctx, reason, "not signing message '{}' on '{}': {} ({})", msg.id(), msg.topic(), reason, detail);
  return Verdict::drop(std::string(reason));
}

Verdict Signer::process(FilterContext &ctx, Message &msg) noexcept {
  try {
    return sign(ctx, msg);
  } catch (const std::bad_alloc &) {
    return Verdict::error("out_of_memory", true);
  } catch (const std::exception &e) {
    ctx.log().error("signer: {}", e.what());
    return Verdict::error("internal_error");
  }
}

/// An envelope being signed: its top-level members sorted by key, and the JSON text the
/// signer wrote for some of them (a deque does not move what it holds).
struct Signer::Draft {
  std::vector<MemberText> parts;
  std::deque<std::string> texts;
  std::int64_t timestamp_ms = 0;
  std::uint64_t seq = 0;  ///< the `i` given to an envelope the signer built; 0 otherwise

  void add(std::string_view key, std::string text) { parts.push_back({key, texts.emplace_back(std::move(text))}); }
  /// Adds @p tree in canonical form: a part of the envelope, whose one serialisation
  /// fedmsg::assembleWire() counts.
  void add(std::string_view key, const json::Value &tree) {
    std::string &text = texts.emplace_back();
    json::appendCanonicalPart(tree, text);
    parts.push_back({key, text});
  }
};

Verdict Signer::sign(FilterContext &ctx, Message &msg) {
  const std::shared_ptr<const fedmsg::WireEnvelope> wire = msg.envelope();  // the setters drop it from msg
  Draft draft;
  if (wire && !wire->members.empty()) {
    // Canonical, as fedmsg publishers send it: the decode already listed the members.
    if (keys_->keep_signed && signedMembers(wire->members)) {
      countKeptSigned();
      return Verdict::pass();  // byte-exact: zmq-pub sends this very envelope
    }
    for (const json::RawMember &m : wire->members) {
      if (!credential(m.key)) {
        draft.parts.push_back({m.key, m.value});
      }
    }
    draft.timestamp_ms = wire->fields.timestamp_ms;
    return finish(ctx, msg, draft);
  }
  if (!wire) {
    if (Verdict v = build(ctx, msg, draft); v.kind != Verdict::Kind::Pass) {
      return v;
    }
    return finish(ctx, msg, draft);
  }
  // Not canonical (re-serialised on the way): parsed here, once, and canonicalised.
  std::string reason;
  std::string detail;
  auto env = json::parse(wire->text, &reason, {}, &detail);
  if (!env) {
    return refuse(ctx, msg, reason == "duplicate_keys" ? "duplicate_keys" : "malformed_envelope", detail);
  }
  if (!env->isObject()) {
    return refuse(ctx, msg, "malformed_envelope", "the envelope is not a JSON object");
  }
  if (keys_->keep_signed && signedTree(*env)) {
    countKeptSigned();
    return Verdict::pass();
  }
  for (const json::Member &m : env->members) {  // sorted by key; `parts` points into `env`
    if (!credential(m.key)) {
      draft.add(m.key, m.value);
    }
  }
  // The codec fills `topic` of every envelope it decodes; one attached without decoding
  // has no fields to take the time from.
  draft.timestamp_ms = wire->fields.topic.empty() ? timestampMs(env->find("timestamp")) : wire->fields.timestamp_ms;
  return finish(ctx, msg, draft);
}

// The envelope of a message that came without one, as fedmsg::EnvelopeBuilder writes it
// (`headers` only when not empty, `i`, `msg` = the body, `msg_id` year-prefixed,
// `timestamp` in integer seconds, `topic`, `username`), from the body and headers parsed
// once for the message (codec::parsedBody(), which amqp-consume already filled).
Verdict Signer::build(FilterContext &ctx, Message &msg, Draft &draft) {
  if (msg.topic().empty()) {
    return refuse(ctx, msg, "missing_topic", "the message has no topic");
  }
  if (!fedmsg::isValidUtf8(msg.topic()) || !fedmsg::isValidUtf8(msg.id())) {
    return refuse(ctx, msg, "invalid_utf8", "topic or id is not valid UTF-8");
  }
  const std::size_t max_depth = fedmsg::Limits{}.max_depth;
  std::string reason;
  const json::Value *body = nullptr;  // null: an empty body, which the codec's builder reads as null
  if (!msg.body().empty()) {
    body = codec::parsedBody(msg, &reason);
    if (body == nullptr || deeperThan(*body, max_depth)) {
      return refuse(ctx, msg, "bad_body", body == nullptr ? "body: " + reason : std::string("body: too deep"));
    }
  }
  const json::Value *headers = codec::parsedHeaders(msg, &reason);
  if (headers == nullptr || deeperThan(*headers, max_depth)) {
    return refuse(ctx, msg, "bad_headers", headers == nullptr ? "headers: " + reason : std::string("headers: too deep"));
  }
  if (!headers->members.empty()) {
    draft.add("headers", *headers);
  }
  draft.seq = keys_->nextSeq();
  draft.add("i", std::to_string(draft.seq));
  if (body != nullptr) {
    draft.add("msg", *body);
  } else {
    draft.add("msg", std::string("null"));
  }
  std::string id;
  json::writeAsciiString(fedmsg::normalizeMsgId(msg.id(), fedmsg::currentUtcYear()), id);
  draft.add("msg_id", std::move(id));
  std::int64_t seconds = msg.timestampMs() > 0 ? msg.timestampMs() / 1000 : static_cast<std::int64_t>(std::time(nullptr));
  draft.timestamp_ms = seconds * 1000;
  draft.add("timestamp", std::to_string(seconds));
  std::string topic;
  json::writeAsciiString(msg.topic(), topic);
  draft.add("topic", std::move(topic));
  draft.parts.push_back({"username", keys_->username_literal});
  return Verdict::pass();
}

// crypto is part of the signed data; stale credentials were left out
// (the reference would sign over them and produce an unverifiable message).
Verdict Signer::finish(FilterContext &ctx, Message &msg, Draft &draft) {
  insertSorted(draft.parts, {"crypto", kX509Literal});
  std::string canonical;
  std::size_t size = 2;
  for (const MemberText &m : draft.parts) {
    size += m.key.size() + m.value.size() + 4;
  }
  canonical.reserve(size);
  fedmsg::appendMembers(draft.parts, canonical);
  std::string error;
  auto sig = x509::signSha1(keys_->key.get(), canonical, &error);
  if (!sig) {
    ctx.log().error("signing failed: {}", error);
    return Verdict::error("sign_failed");
  }
  std::string sig_literal;
  json::writeAsciiString(x509::wrap76(x509::base64Encode(*sig)), sig_literal);
  insertSorted(draft.parts, {"certificate", keys_->cert_literal});
  insertSorted(draft.parts, {"signature", sig_literal});
  fedmsg::Result r;
  auto signed_wire = fedmsg::assembleWire(draft.parts, draft.timestamp_ms, r);
  if (!signed_wire) {
    ctx.log().error("the signed envelope does not decode: {}", r.detail);
    return Verdict::error("sign_failed");
  }
  // The wire form is canonical, so `msg` and `headers` inside it may be re-rendered; the
  // message is brought in line with them (same JSON values, new bytes) so that the
  // envelope describes it and zmq-pub sends it as is. Unchanged text is left alone.
  const fedmsg::Envelope &f = signed_wire->fields;
  if (msg.body() != f.msg) {
    msg.setBody(std::string(f.msg));
  }
  const std::string_view headers = f.headers.empty() ? std::string_view("{}") : f.headers;
  if (msg.headers() != headers) {
    msg.setHeaders(std::string(headers));
  }
  if (msg.id() != f.msg_id) {
    msg.setId(f.msg_id);
  }
  if (draft.seq != 0) {
    // Parallel instances take `i` in the order they reach it, not quite the stream's
    // order; zmq-pub puts envelopes carrying this back in `i` order.
    msg.setMeta(meta::kSignerSeq, std::to_string(draft.seq));
  }
  fedmsg::attach(msg, std::move(signed_wire));
  return Verdict::pass();
}

}  // namespace switchyard::plugins
