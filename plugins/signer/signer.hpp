// SPDX-License-Identifier: MIT
//
// signer (filter): signs fedmsg envelopes like fedmsg's x509 backend (interop-spec 2.3).
// The message's envelope ("fedmsg.envelope" metadata, or a new one built with the core
// codec when the message has none or it no longer matches) gets `crypto: "x509"`, then
// `signature` (base64 of RSA PKCS#1 v1.5 / SHA-1 over the canonical JSON of the envelope
// minus `signature` and `certificate`) and `certificate` (base64 of the PEM text), both
// cut into 76-column lines. The signed envelope, in canonical form, replaces
// "fedmsg.envelope" so that zmq-pub sends it byte-exact.
#pragma once

#include <string>

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
  fedmsg::EnvelopeBuilder builder_;
  LogLimit log_limit_;
  bool keep_signed_ = false;  ///< pass already signed envelopes unchanged (bridged signatures)
  Counter *kept_signed_count_ = nullptr;
};

}  // namespace switchyard::plugins
