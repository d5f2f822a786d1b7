// SPDX-License-Identifier: MIT
#include "signer.hpp"

#include <openssl/x509.h>

#include "switchyard/json.hpp"

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

Signer::Signer(const sdk::Config &config)
    : username_(config.str("username")),
      builder_(std::make_shared<SharedBuilder>(username_)),
      keep_signed_(config.has("keep_signed") && config.boolean("keep_signed")) {
  std::string error;
  cert_ = x509::loadCertFile(config.str("cert_file"), &error);
  if (!cert_) {
    throw sdk::ConfigError("cert_file", error);
  }
  key_ = x509::loadPrivateKeyFile(config.str("key_file"), &error);
  if (!key_) {
    throw sdk::ConfigError("key_file", error);
  }
  if (X509_check_private_key(cert_.get(), key_.get()) != 1) {
    x509::opensslErrors();  // clear the queue
    throw sdk::ConfigError("key_file", "key_file does not match the public key of cert_file");
  }
  auto pem = x509::certToPem(cert_.get());
  if (!pem) {
    throw sdk::ConfigError("cert_file", "cannot re-encode cert_file as PEM");
  }
  // fedmsg embeds the certificate re-encoded by its crypto library, not the file bytes.
  cert_field_ = x509::wrap76(x509::base64Encode(*pem));
}

std::shared_ptr<Signer::SharedBuilder> Signer::sharedBuilder(const std::string &key, const std::string &username) {
  static std::mutex mu;
  static std::map<std::string, std::weak_ptr<SharedBuilder>> builders;
  std::lock_guard<std::mutex> lock(mu);
  auto &slot = builders[key];
  auto b = slot.lock();
  if (!b) {
    b = std::make_shared<SharedBuilder>(username);
    slot = b;
  }
  return b;
}

Status Signer::start(FilterContext &ctx) noexcept {
  try {
    // The instances of one entry (one per filter worker) have the same instance name.
    builder_ = sharedBuilder(fmt::format("{}\n{}\n{}", ctx.pipeline(), ctx.instance(), username_), username_);
    kept_signed_count_ = &ctx.counter("kept_signed");
  } catch (const std::exception &e) {
    return Status::fatal(e.what());
  }
  return Status::ok();
}

Verdict Signer::refuse(FilterContext &ctx, const Message &msg, const char *reason,
                       const std::string &detail) noexcept {
  std::uint64_t suppressed = 0;
  if (log_limit_.allow(suppressed)) {
    ctx.log().warn("not signing message '{}' on '{}': {} ({}){}", msg.id(), msg.topic(), reason, detail,
                   suppressed != 0 ? fmt::format(" [{} similar lines suppressed]", suppressed) : std::string());
  }
  return Verdict::drop(reason);
}

Verdict Signer::process(FilterContext &ctx, Message &msg) noexcept {
  try {
    std::string built;
    std::string_view text;
    if (const auto &current = msg.envelope()) {
      text = current->text;
      if (keep_signed_) {
        auto env = json::parse(text);
        const json::Value *crypto = env ? env->find("crypto") : nullptr;
        const json::Value *sig = env ? env->find("signature") : nullptr;
        const json::Value *cert = env ? env->find("certificate") : nullptr;
        if (sig != nullptr && cert != nullptr && sig->isString() && cert->isString() &&
            (crypto == nullptr || (crypto->isString() && crypto->text == "x509"))) {
          if (kept_signed_count_ != nullptr) {
            kept_signed_count_->add();
          }
          return Verdict::pass();  // byte-exact: zmq-pub sends this very envelope
        }
      }
    } else {
      fedmsg::Result r;
      std::uint64_t seq = 0;
      {
        std::lock_guard<std::mutex> lock(builder_->mu);
        r = builder_->builder.build(msg, built);
        seq = builder_->builder.lastSeq();
      }
      if (!r.ok()) {
        return refuse(ctx, msg, r.reason.c_str(), r.detail);
      }
      text = built;
      // Parallel instances take `i` in the order they reach the builder, not quite the
      // stream's order; zmq-pub puts envelopes carrying this back in `i` order.
      msg.setMeta(meta::kSignerSeq, std::to_string(seq));
    }
    std::string reason;
    std::string detail;
    auto envelope = json::parse(text, &reason, {}, &detail);
    if (!envelope) {
      return refuse(ctx, msg, reason == "duplicate_keys" ? "duplicate_keys" : "malformed_envelope", detail);
    }
    if (!envelope->isObject()) {
      return refuse(ctx, msg, "malformed_envelope", "the envelope is not a JSON object");
    }
    // interop-spec 2.3: crypto is part of the signed data; stale credentials are removed
    // first (the reference would sign over them and produce an unverifiable message).
    envelope->set("crypto", json::Value::fromString("x509"));
    envelope->erase("signature");
    envelope->erase("certificate");
    std::string canonical = json::canonical(*envelope);
    std::string error;
    auto sig = x509::signSha1(key_.get(), canonical, &error);
    if (!sig) {
      ctx.log().error("signing failed: {}", error);
      return Verdict::error("sign_failed");
    }
    envelope->set("signature", json::Value::fromString(x509::wrap76(x509::base64Encode(*sig))));
    envelope->set("certificate", json::Value::fromString(cert_field_));
    // The wire form is canonical, so `msg` and `headers` inside it are re-rendered; the
    // message is brought in line with them (same JSON values, new bytes) so that the
    // envelope keeps describing it (fedmsg::envelopeMatches) and zmq-pub sends it as is.
    if (const json::Value *body = envelope->find("msg")) {
      msg.setBody(json::canonical(*body));
    }
    const json::Value *headers = envelope->find("headers");
    msg.setHeaders((headers == nullptr || headers->isNull()) ? std::string("{}") : json::canonical(*headers));
    if (auto id = envelope->findString("msg_id")) {
      msg.setId(std::string(*id));
    }
    fedmsg::Result parsed;
    auto wire = fedmsg::parseWire(json::canonical(*envelope), parsed);
    if (!wire) {
      ctx.log().error("the signed envelope does not decode: {}", parsed.detail);
      return Verdict::error("sign_failed");
    }
    fedmsg::attach(msg, std::move(wire));
    return Verdict::pass();
  } catch (const std::bad_alloc &) {
    return Verdict::error("out_of_memory", true);
  } catch (const std::exception &e) {
    ctx.log().error("signer: {}", e.what());
    return Verdict::error("internal_error");
  }
}

}  // namespace switchyard::plugins
