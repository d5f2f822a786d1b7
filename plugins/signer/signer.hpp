// SPDX-License-Identifier: MIT
//
// signer (filter): signs fedmsg envelopes like fedmsg's x509 backend. The message's
// envelope (Message::envelope(), or a new one built from the message when it has none)
// gets `crypto: "x509"`, then `signature` (base64 of RSA PKCS#1 v1.5 / SHA-1 over the
// canonical JSON of the envelope minus `signature` and `certificate`) and `certificate`
// (base64 of the PEM text), both cut into 76-column lines. The signed envelope, in
// canonical form, is attached to the message so that zmq-pub sends it byte-exact.
//
// Parse once: a canonical envelope is signed from the members its decode listed
// (WireEnvelope::members), a message without an envelope from its parsed body and headers
// (codec::parsedBody(), codec::parsedHeaders(), cached on the message), and the signed
// WireEnvelope is assembled from those members (fedmsg::assembleWire()) instead of being
// parsed again. Only an envelope that is not canonical is parsed here, once.
//
// FACTORY: SignerFactory loads and checks the key pair once per configured signer and
// makes one Signer per filter worker (SY_FLAG_PARALLEL). They share one SignerKeys.
//
// PARALLEL: the workers share one `i` sequence, so `i` keeps counting 1, 2, 3... per
// pipeline entry, as with one signer. Workers take `i` in the order they reach it, which is
// not quite the stream's order the core restores after the filters, and `i` is under the
// signature, so it cannot be renumbered later. Instead the signer records the `i` it gave in
// metadata "signer.i" (meta::kSignerSeq), and zmq-pub holds an envelope back until every
// lower `i` went out (docs/plugins/signer.md), so subscribers see 1, 2, 3... and count no
// false gaps.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "../fedmsg_crypto/x509.hpp"
#include "switchyard/drop_log.hpp"
#include "switchyard/fedmsg.hpp"
#include "switchyard/sdk.hpp"

namespace switchyard::plugins {

extern const sy_config_key kSignerSchema[];

/// What the instances of one configured signer share, made once by its factory.
/// THREADING: everything but `seq` is immutable after construction (OpenSSL 3 signs with
/// one EVP_PKEY from several threads, each call with its own EVP_MD_CTX); `seq` is taken
/// under `mu`, a few instructions per message.
struct SignerKeys {
  x509::PkeyPtr key;
  x509::CertPtr cert;
  std::string cert_literal;      ///< `certificate` as JSON text: base64 of the PEM, 76-column lines
  std::string username_literal;  ///< `username` of the envelopes the signer builds, as JSON text
  std::string username;
  bool keep_signed = false;  ///< pass already signed envelopes unchanged (bridged signatures)

  /// The next `i` of an envelope the signer builds (1, 2, 3...).
  std::uint64_t nextSeq() {
    std::lock_guard<std::mutex> lock(mu);
    return ++seq;
  }

 private:
  std::mutex mu;
  std::uint64_t seq = 0;  ///< guarded by mu
};

/// One worker's signer. THREADING: one thread at a time (the core gives each filter worker
/// its own instance); it reads the shared SignerKeys, see above.
class Signer final : public Filter {
 public:
  explicit Signer(std::shared_ptr<SignerKeys> keys) : keys_(std::move(keys)) {}
  Status start(FilterContext &ctx) noexcept override;
  Verdict process(FilterContext &ctx, Message &msg) noexcept override;

 private:
  struct Draft;
  Verdict sign(FilterContext &ctx, Message &msg);
  Verdict build(FilterContext &ctx, Message &msg, Draft &draft);
  Verdict finish(FilterContext &ctx, Message &msg, Draft &draft);
  void countKeptSigned() noexcept {
    if (kept_signed_count_ != nullptr) {
      kept_signed_count_->add();
    }
  }
  Verdict refuse(FilterContext &ctx, const Message &msg, std::string_view reason, std::string_view detail) noexcept;

  std::shared_ptr<SignerKeys> keys_;
  DropLog drop_log_{10, std::chrono::seconds(10)};
  Counter *kept_signed_count_ = nullptr;
};

/// Loads and checks the key pair (throws sdk::ConfigError naming the bad key) and makes the
/// instances. THREADING: see PluginFactory.
class SignerFactory final : public PluginFactory {
 public:
  explicit SignerFactory(const sdk::Config &config);
  Plugin *instantiate(const InstanceArgs &args) noexcept override;
  /// One more instance sharing this factory's key pair and `i` sequence.
  [[nodiscard]] std::unique_ptr<Signer> make() const { return std::make_unique<Signer>(keys_); }

 private:
  std::shared_ptr<SignerKeys> keys_;
};

}  // namespace switchyard::plugins
