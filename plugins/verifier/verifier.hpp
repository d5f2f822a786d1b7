// SPDX-License-Identifier: MIT
//
// verifier (filter): validates fedmsg x509 signatures (interop-spec 2.5) and closes the
// holes listed in reliability.md 7.1. Every rejection is a drop under its own reason:
//
//   unsigned               no signature/certificate (passes, counted as unsigned_passed,
//                          with allow_unsigned: true)
//   malformed_envelope     not a JSON object, no string `topic`, or only one of
//                          signature/certificate, or one of them not a string
//   duplicate_keys         an object in the envelope has a key twice
//   topic_mismatch         Message.topic (ZeroMQ frame 0) differs from the signed `topic`
//   unsupported_crypto     `crypto` other than "x509" (e.g. "gpg"), or a signature without
//                          a certificate (fedmsg would pick its gpg backend)
//   bad_base64             signature or certificate is not base64
//   untrusted_certificate  not a certificate, or it does not chain to the CA (also: CA or
//                          CRL unavailable: fail closed)
//   revoked                the CRL lists the certificate
//   expired                the certificate, the CA or the CRL is expired / not yet valid
//   bad_signature          RSA PKCS#1 v1.5 / SHA-1 over the canonical bytes does not match
//   policy_denied          routing_policy lists the topic without the certificate's CN, or
//                          nitpicky and the topic is not listed
//
// The CA (first certificate of ca_file) and the CRL (first CRL of crl_file) are files;
// they are re-read when their inode, size or mtime changes (checked at most once a second,
// and at once when a chain check fails) and after a failed load. Never network.
#pragma once

#include <sys/stat.h>

#include <chrono>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "../fedmsg_crypto/log_limit.hpp"
#include "../fedmsg_crypto/x509.hpp"
#include "switchyard/sdk.hpp"

namespace switchyard::plugins {

extern const sy_config_key kVerifierSchema[];

/// CA + optional CRL loaded from files, reloaded when the files change.
class TrustStore {
 public:
  enum class Check : std::uint8_t { Ok, Untrusted, Revoked, Expired };

  TrustStore(std::string ca_file, std::optional<std::string> crl_file, int auth_level);
  /// (Re)loads both files; on failure the store is empty and every check fails closed.
  bool load(std::string *error);
  /// Chain check of @p leaf at the current time; @p detail gets OpenSSL's reason.
  Check verify(X509 *leaf, std::string *detail, Logger *log);
  [[nodiscard]] bool loaded() const noexcept { return static_cast<bool>(store_); }
  [[nodiscard]] std::uint64_t reloads() const noexcept { return reloads_; }

 private:
  struct Stamp {
    bool ok = false;
    dev_t dev = 0;
    ino_t ino = 0;
    off_t size = 0;
    std::int64_t mtime_ns = 0;
    bool operator==(const Stamp &) const = default;
  };
  static Stamp stampOf(const std::string &path);
  bool filesChanged() const;
  void refresh(bool force_stat, Logger *log);
  Check verifyOnce(X509 *leaf, std::string *detail);

  std::string ca_file_;
  std::optional<std::string> crl_file_;
  int auth_level_;
  x509::StorePtr store_;
  Stamp ca_stamp_;
  Stamp crl_stamp_;
  std::chrono::steady_clock::time_point last_stat_{};
  std::uint64_t reloads_ = 0;
};

class Verifier final : public Filter {
 public:
  /// Parses the configuration and loads the CA/CRL; throws sdk::ConfigError.
  explicit Verifier(const sdk::Config &config);
  Status start(FilterContext &ctx) noexcept override;
  Verdict process(FilterContext &ctx, Message &msg) noexcept override;

  [[nodiscard]] const TrustStore &trust() const noexcept { return trust_; }

 private:
  Verdict reject(FilterContext &ctx, const Message &msg, const char *reason, std::string_view detail) noexcept;
  Verdict check(FilterContext &ctx, Message &msg);

  TrustStore trust_;
  std::unordered_map<std::string, std::vector<std::string>> policy_;
  bool nitpicky_;
  bool allow_unsigned_;
  Counter *unsigned_passed_ = nullptr;
  Counter *verified_ = nullptr;
  LogLimit log_limit_;
};

}  // namespace switchyard::plugins
