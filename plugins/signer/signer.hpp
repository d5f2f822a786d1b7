// SPDX-License-Identifier: MIT
//
// signer (filter): signs fedmsg envelopes like fedmsg's x509 backend (interop-spec 2.3).
// The message's envelope ("fedmsg.envelope" metadata, or a new one built with the core
// codec when the message has none or it no longer matches) gets `crypto: "x509"`, then
// `signature` (base64 of RSA PKCS#1 v1.5 / SHA-1 over the canonical JSON of the envelope
// minus `signature` and `certificate`) and `certificate` (base64 of the PEM text), both
// cut into 76-column lines. The signed envelope, in canonical form, replaces
// "fedmsg.envelope" so that zmq-pub sends it byte-exact.
//
// THREADING: one Signer may be called concurrently from several threads: the key and the
// certificate are read-only (OpenSSL 3 signs with one EVP_PKEY from several threads, each
// call has its own EVP_MD_CTX), the envelope builder (its `i` counter) is locked, the
// counters are atomic and the log limiter is locked.
//
// PARALLEL (SY_FLAG_PARALLEL): with filter workers, the core makes one Signer per worker.
// They share one envelope builder (found by the instance name at start()), so `i` keeps
// counting 1, 2, 3... per pipeline entry, as with one signer. Workers take `i` in the order
// they reach the builder, which is not quite the stream's order the core restores after
// the filters, and `i` is under the signature, so it cannot be renumbered later. Instead
// the signer records the `i` it gave in metadata "signer.i" (meta::kSignerSeq), and zmq-pub
// holds an envelope back until every lower `i` went out (docs/plugins/signer.md), so
// subscribers see 1, 2, 3... and count no false gaps.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "../fedmsg_crypto/log_limit.hpp"
#include "../fedmsg_crypto/x509.hpp"
#include "switchyard/fedmsg.hpp"
#include "switchyard/sdk.hpp"

namespace switchyard::plugins {

extern const sy_config_key kSignerSchema[];


class Signer final : public Filter {
 public:
  /// Loads and checks the key pair; throws sdk::ConfigError naming the bad key.
  explicit Signer(const sdk::Config &config);
  Status start(FilterContext &ctx) noexcept override;
  Verdict process(FilterContext &ctx, Message &msg) noexcept override;

 private:
  Verdict refuse(FilterContext &ctx, const Message &msg, const char *reason, const std::string &detail) noexcept;

  x509::PkeyPtr key_;
  x509::CertPtr cert_;
  std::string cert_field_;  ///< base64 of the PEM, 76-column lines
  /// The builder of envelopes for messages that came without one, and its lock (it is
  /// single-threaded: its `i` sequence). Shared by the instances of one pipeline entry.
  struct SharedBuilder {
    explicit SharedBuilder(std::string username) : builder(std::move(username)) {}
    std::mutex mu;
    fedmsg::EnvelopeBuilder builder;
  };
  static std::shared_ptr<SharedBuilder> sharedBuilder(const std::string &key, const std::string &username);
  std::string username_;
  std::shared_ptr<SharedBuilder> builder_;
  LogLimit log_limit_;
  bool keep_signed_ = false;  ///< pass already signed envelopes unchanged (bridged signatures)
  Counter *kept_signed_count_ = nullptr;
};

}  // namespace switchyard::plugins
