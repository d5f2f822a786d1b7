// SPDX-License-Identifier: MIT
//
// verifier (filter): validates fedmsg x509 signatures (docs/plugins/verifier.md) and closes the
// holes listed in docs/plugins/verifier.md. Every rejection is a drop under its own reason:
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
//
// Certificate cache: parsing a PEM certificate and checking its chain cost far more than
// the message's own signature check, and a bus has a handful of certificates. So the
// parsed certificate, its chain-check result and a prepared RSA/SHA-1 verification context
// are kept per `certificate` field (CertCache, 64 entries, least recently used evicted). A result is reused for at most
// one second, an Ok result only while the certificate's validity window holds, and the
// whole cache is dropped when the trust material reloads; after that the chain is checked
// again, so expiry, a new CRL or a new CA still apply within a second.
//
// Parse once: a canonical envelope (what fedmsg publishers send) is checked from the
// top-level members its decode listed (WireEnvelope::members), so the signed bytes are the
// envelope minus two members and only the members checked below are decoded; any other
// envelope is parsed here, once, into a tree and canonicalised.
//
// FACTORY and THREADING: VerifierFactory parses the configuration and loads the CA/CRL once
// per configured verifier, into one VerifierShared, and makes one Verifier per filter worker
// (SY_FLAG_PARALLEL). The workers share the trust store and the certificate cache, which
// are locked internally (the expensive work, parsing, chain checks and signature checks,
// runs outside the locks); the routing policy and the flags are immutable. Each Verifier
// is called by one thread at a time and keeps its own counters and rate-limited log.
#pragma once

#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <ctime>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "../fedmsg_crypto/x509.hpp"
#include "switchyard/drop_log.hpp"
#include "switchyard/sdk.hpp"

namespace switchyard::plugins {

extern const sy_config_key kVerifierSchema[];

/// CA + optional CRL loaded from files, reloaded when the files change. THREADING: all
/// methods are thread-safe; chain checks run on a reference to the current store, outside
/// the lock, so a reload never frees a store that is in use.
class TrustStore {
 public:
  enum class Check : std::uint8_t { Ok, Untrusted, Revoked, Expired };

  TrustStore(std::string ca_file, std::optional<std::string> crl_file, int auth_level);
  /// (Re)loads both files; on failure the store is empty and every check fails closed.
  bool load(std::string *error);
  /// Chain check of @p leaf at the current time; @p detail gets OpenSSL's reason.
  /// @p generation (optional) receives reloads() of the material the answer is based on.
  Check verify(X509 *leaf, std::string *detail, Logger *log, std::uint64_t *generation = nullptr);
  [[nodiscard]] bool loaded() const;
  /// How many times the material was (re)loaded: a new value means results of earlier
  /// checks may no longer hold.
  [[nodiscard]] std::uint64_t reloads() const noexcept { return reloads_.load(std::memory_order_acquire); }
  /// Expiry of the material last loaded, Unix timestamps (0: not loaded, or no CRL / no
  /// nextUpdate): the CA certificate's notAfter and the CRL's nextUpdate.
  [[nodiscard]] std::int64_t caNotAfter() const noexcept { return ca_not_after_.load(std::memory_order_relaxed); }
  [[nodiscard]] std::int64_t crlNextUpdate() const noexcept {
    return crl_next_update_.load(std::memory_order_relaxed);
  }

 private:
  struct Stamp {
    bool ok = false;
    dev_t dev = 0;
    ino_t ino = 0;
    off_t size = 0;
    std::int64_t mtime_ns = 0;
    bool operator==(const Stamp &) const = default;
  };
  struct Snapshot {
    x509::StorePtr store;  ///< null when the material is not loaded
    std::uint64_t generation = 0;
  };
  static Stamp stampOf(const std::string &path);
  bool filesChanged() const;
  bool loadLocked(std::string *error);
  void refreshLocked(bool force_stat, Logger *log);
  /// refresh() and a reference to the current store, under the lock.
  Snapshot snapshot(bool force_stat, Logger *log);
  Check verifyOnce(X509_STORE *store, X509 *leaf, std::string *detail) const;

  const std::string ca_file_;
  const std::optional<std::string> crl_file_;
  const int auth_level_;
  mutable std::mutex mu_;  ///< guards everything below but reloads_
  x509::StorePtr store_;
  Stamp ca_stamp_;
  Stamp crl_stamp_;
  std::chrono::steady_clock::time_point last_stat_{};
  std::atomic<std::uint64_t> reloads_{0};
  std::atomic<std::int64_t> ca_not_after_{0};
  std::atomic<std::int64_t> crl_next_update_{0};
};

/// A parsed certificate: immutable once built, shared by every thread that uses it
/// (OpenSSL 3 allows concurrent verification with one X509 and its public key).
struct CertInfo {
  x509::CertPtr cert;
  std::optional<std::string> common_name;
  /// Validity window in seconds since the epoch, as X509_verify_cert applies it:
  /// valid while not_before <= now < not_after.
  std::int64_t not_before = 0;
  std::int64_t not_after = 0;
  /// RSA/SHA-1 verification context of the certificate's key (x509::sha1VerifyTemplate);
  /// null when the key is not RSA.
  x509::MdCtxPtr verify_template;
};

/// The chain-check result of one certificate at one time.
struct CertCheck {
  std::shared_ptr<const CertInfo> info;
  TrustStore::Check result = TrustStore::Check::Untrusted;
  std::string detail;
  std::chrono::steady_clock::time_point checked_at{};
  std::uint64_t generation = 0;  ///< TrustStore::reloads() the result is based on
};

/// Bounded map from the `certificate` field (its canonical JSON literal) to its last chain
/// check (see the top of this file). THREADING: thread-safe; a small mutex-guarded map,
/// nothing expensive inside.
class CertCache {
 public:
  explicit CertCache(std::size_t capacity = 64,
                     std::chrono::steady_clock::duration max_age = std::chrono::seconds(1));

  struct Lookup {
    std::shared_ptr<const CertCheck> fresh;     ///< usable as is
    std::shared_ptr<const CertInfo> reparsed;  ///< outdated entry: its parsed certificate
  };
  /// @p generation is the trust store's current reloads(): entries of other generations
  /// are dropped (all of them: the trust material changed). @p wall_now is time(nullptr).
  Lookup find(std::string_view key, std::uint64_t generation, std::chrono::steady_clock::time_point now,
              std::int64_t wall_now);
  /// Stores @p check under @p key (evicting the least recently used entry when full);
  /// ignored when it is based on older trust material than the cache holds.
  void put(std::string_view key, std::shared_ptr<const CertCheck> check);
  [[nodiscard]] std::size_t size() const;

 private:
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  struct Slot {
    std::shared_ptr<const CertCheck> check;
    std::uint64_t last_use = 0;
  };
  void adoptGenerationLocked(std::uint64_t generation);

  const std::size_t capacity_;
  const std::chrono::steady_clock::duration max_age_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, Slot, Hash, std::equal_to<>> map_;
  std::uint64_t generation_ = 0;
  std::uint64_t tick_ = 0;
};

/// What the instances of one configured verifier share (see THREADING above).
struct VerifierShared {
  VerifierShared(std::string ca_file, std::optional<std::string> crl_file, int auth_level)
      : trust(std::move(ca_file), std::move(crl_file), auth_level) {}
  TrustStore trust;  ///< thread-safe
  CertCache cache;   ///< thread-safe
  std::unordered_map<std::string, std::vector<std::string>> policy;  ///< immutable once made
  bool nitpicky = true;
  bool allow_unsigned = false;
};

/// One worker's verifier. THREADING: one thread at a time; the shared state is safe to use
/// from every worker at once.
class Verifier final : public Filter {
 public:
  explicit Verifier(std::shared_ptr<VerifierShared> shared) : shared_(std::move(shared)) {}
  Status start(FilterContext &ctx) noexcept override;
  Verdict process(FilterContext &ctx, Message &msg) noexcept override;

  [[nodiscard]] const TrustStore &trust() const noexcept { return shared_->trust; }

 private:
  Verdict reject(FilterContext &ctx, const Message &msg, const char *reason, std::string_view detail) noexcept;
  Verdict check(FilterContext &ctx, Message &msg);
  /// The chain-checked certificate of a `certificate` field, from the cache or parsed and
  /// checked now. Null after a rejection (then @p verdict holds it).
  /// @p key is the field's canonical JSON literal (quotes included), as it appears in a
  /// canonical envelope: the cache key, decoded only on a cache miss.
  std::shared_ptr<const CertCheck> certificate(FilterContext &ctx, const Message &msg, std::string_view key,
                                               Verdict &verdict);

  std::shared_ptr<VerifierShared> shared_;
  Counter *unsigned_passed_ = nullptr;
  Counter *verified_ = nullptr;
  Counter *cache_hits_ = nullptr;
  /// `ca_not_after_timestamp_seconds`, `crl_next_update_timestamp_seconds` (with a CRL):
  /// set at start and again whenever the trust store reloaded (seen_reloads_ changed).
  Gauge *ca_expiry_ = nullptr;
  Gauge *crl_expiry_ = nullptr;
  std::uint64_t seen_reloads_ = 0;
  void publishExpiry() noexcept;
  DropLog drop_log_{10, std::chrono::seconds(10)};
};

/// Parses the configuration and loads the CA/CRL once (verifier_config.cpp: records every
/// problem and warning, then throws sdk::ConfigError with the first problem); makes the
/// instances, which share them. THREADING: see PluginFactory.
class VerifierFactory final : public PluginFactory {
 public:
  explicit VerifierFactory(const sdk::Config &config);
  Plugin *instantiate(const InstanceArgs &args) noexcept override;
  /// One more instance sharing this factory's trust store and certificate cache.
  [[nodiscard]] std::unique_ptr<Verifier> make() const { return std::make_unique<Verifier>(shared_); }
  [[nodiscard]] const TrustStore &trust() const noexcept { return shared_->trust; }

 private:
  std::shared_ptr<VerifierShared> shared_;
};

}  // namespace switchyard::plugins
