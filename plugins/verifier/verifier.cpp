// SPDX-License-Identifier: MIT
#include "verifier.hpp"

#include <algorithm>
#include <ctime>
#include <limits>

#include <openssl/asn1.h>
#include <openssl/err.h>
#include <openssl/x509_vfy.h>

#include "switchyard/fedmsg.hpp"
#include "switchyard/json.hpp"

namespace switchyard::plugins {

// ---------------------------------------------------------------------------------------
// TrustStore

namespace {
/// An ASN1_TIME as seconds since the epoch; @p fallback when absent or unreadable.
std::int64_t epochSeconds(const ASN1_TIME *t, std::int64_t fallback) {
  struct tm tm {};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) {
    ERR_clear_error();
    return fallback;
  }
  return static_cast<std::int64_t>(timegm(&tm));
}
}  // namespace

TrustStore::TrustStore(std::string ca_file, std::optional<std::string> crl_file, int auth_level)
    : ca_file_(std::move(ca_file)), crl_file_(std::move(crl_file)), auth_level_(auth_level) {}

TrustStore::Stamp TrustStore::stampOf(const std::string &path) {
  struct stat st {};
  Stamp s;
  if (::stat(path.c_str(), &st) != 0) {
    return s;
  }
  s.ok = true;
  s.dev = st.st_dev;
  s.ino = st.st_ino;
  s.size = st.st_size;
  s.mtime_ns = static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
  return s;
}

bool TrustStore::filesChanged() const {
  if (stampOf(ca_file_) != ca_stamp_) {
    return true;
  }
  return crl_file_ && stampOf(*crl_file_) != crl_stamp_;
}

bool TrustStore::load(std::string *error) {
  std::lock_guard<std::mutex> lock(mu_);
  return loadLocked(error);
}

bool TrustStore::loaded() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<bool>(store_);
}

bool TrustStore::loadLocked(std::string *error) {
  store_.reset();
  reloads_.fetch_add(1, std::memory_order_acq_rel);
  last_stat_ = std::chrono::steady_clock::now();
  // Stamps first: a file replaced while we read it is then seen as changed next time.
  ca_stamp_ = stampOf(ca_file_);
  if (crl_file_) {
    crl_stamp_ = stampOf(*crl_file_);
  }
  x509::CertPtr ca = x509::loadCertFile(ca_file_, error);
  if (!ca) {
    return false;
  }
  x509::CrlPtr crl;
  if (crl_file_) {
    crl = x509::loadCrlFile(*crl_file_, error);
    if (!crl) {
      return false;
    }
  }
  x509::StorePtr store(X509_STORE_new());
  if (!store || X509_STORE_add_cert(store.get(), ca.get()) != 1) {
    if (error != nullptr) {
      *error = "cannot build the certificate store: " + x509::opensslErrors();
    }
    return false;
  }
  if (crl) {
    if (X509_STORE_add_crl(store.get(), crl.get()) != 1) {
      if (error != nullptr) {
        *error = "cannot add the CRL: " + x509::opensslErrors();
      }
      return false;
    }
    X509_STORE_set_flags(store.get(), X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL);
  }
  store_ = std::move(store);
  ca_not_after_.store(epochSeconds(X509_get0_notAfter(ca.get()), 0), std::memory_order_relaxed);
  crl_next_update_.store(crl ? epochSeconds(X509_CRL_get0_nextUpdate(crl.get()), 0) : 0, std::memory_order_relaxed);
  return true;
}

void TrustStore::refreshLocked(bool force_stat, Logger *log) {
  auto now = std::chrono::steady_clock::now();
  // A missing store is retried at most once a second, like a stat check.
  if (!force_stat && now - last_stat_ < std::chrono::seconds(1)) {
    return;
  }
  last_stat_ = now;
  if (store_ && !filesChanged()) {
    return;
  }
  std::string error;
  if (loadLocked(&error)) {
    if (log != nullptr) {
      log->info("reloaded CA '{}'{}", ca_file_, crl_file_ ? " and CRL '" + *crl_file_ + "'" : std::string());
    }
  } else if (log != nullptr) {
    log->error("cannot load trust material, refusing every signed message until it loads: {}", error);
  }
}

TrustStore::Snapshot TrustStore::snapshot(bool force_stat, Logger *log) {
  std::lock_guard<std::mutex> lock(mu_);
  refreshLocked(force_stat, log);
  Snapshot s;
  s.generation = reloads_.load(std::memory_order_acquire);
  // X509_STORE is reference counted and safe to verify against from several threads; the
  // reference keeps it alive while a reload replaces store_.
  if (store_ && X509_STORE_up_ref(store_.get()) == 1) {
    s.store.reset(store_.get());
  }
  return s;
}

TrustStore::Check TrustStore::verifyOnce(X509_STORE *store, X509 *leaf, std::string *detail) const {
  if (store == nullptr) {
    *detail = "CA/CRL not loaded";
    return Check::Untrusted;
  }
  std::unique_ptr<X509_STORE_CTX, decltype(&X509_STORE_CTX_free)> ctx(X509_STORE_CTX_new(),
                                                                       &X509_STORE_CTX_free);
  if (!ctx || X509_STORE_CTX_init(ctx.get(), store, leaf, nullptr) != 1) {
    *detail = x509::opensslErrors();
    return Check::Untrusted;
  }
  if (auth_level_ >= 0) {
    X509_VERIFY_PARAM_set_auth_level(X509_STORE_CTX_get0_param(ctx.get()), auth_level_);
  }
  if (X509_verify_cert(ctx.get()) == 1) {
    return Check::Ok;
  }
  int err = X509_STORE_CTX_get_error(ctx.get());
  *detail = X509_verify_cert_error_string(err);
  x509::opensslErrors();  // drop whatever the failure queued
  switch (err) {
    case X509_V_ERR_CERT_REVOKED:
      return Check::Revoked;
    case X509_V_ERR_CERT_HAS_EXPIRED:
    case X509_V_ERR_CERT_NOT_YET_VALID:
    case X509_V_ERR_CRL_HAS_EXPIRED:
    case X509_V_ERR_CRL_NOT_YET_VALID:
      return Check::Expired;
    default:
      return Check::Untrusted;
  }
}

TrustStore::Check TrustStore::verify(X509 *leaf, std::string *detail, Logger *log, std::uint64_t *generation) {
  Snapshot s = snapshot(false, log);
  Check c = verifyOnce(s.store.get(), leaf, detail);
  if (c != Check::Ok) {
    // As fedmsg does: on failure, pick up new trust material and try once more
    // (a renewed CRL or CA). Only when the files changed: a stream of forged messages must
    // not turn into a stream of file reads.
    Snapshot again = snapshot(true, log);
    if (again.generation != s.generation) {
      c = verifyOnce(again.store.get(), leaf, detail);
      s = std::move(again);
    }
  }
  if (generation != nullptr) {
    *generation = s.generation;
  }
  return c;
}

// ---------------------------------------------------------------------------------------
// CertCache

CertCache::CertCache(std::size_t capacity, std::chrono::steady_clock::duration max_age)
    : capacity_(capacity == 0 ? 1 : capacity), max_age_(max_age) {}

void CertCache::adoptGenerationLocked(std::uint64_t generation) {
  if (generation > generation_) {
    map_.clear();  // new trust material: no earlier result holds
    generation_ = generation;
  }
}

CertCache::Lookup CertCache::find(std::string_view key, std::uint64_t generation,
                                  std::chrono::steady_clock::time_point now, std::int64_t wall_now) {
  std::lock_guard<std::mutex> lock(mu_);
  adoptGenerationLocked(generation);
  auto it = map_.find(key);
  if (it == map_.end()) {
    return {};
  }
  it->second.last_use = ++tick_;
  const CertCheck &c = *it->second.check;
  bool fresh = c.generation == generation && now - c.checked_at < max_age_;
  // An Ok result must not outlive the certificate: past notAfter it is checked (and
  // refused as expired) at once, not up to a second later.
  if (fresh && c.result == TrustStore::Check::Ok) {
    fresh = wall_now >= c.info->not_before && wall_now < c.info->not_after;
  }
  if (fresh) {
    return {it->second.check, nullptr};
  }
  return {nullptr, c.info};
}

void CertCache::put(std::string_view key, std::shared_ptr<const CertCheck> check) {
  std::lock_guard<std::mutex> lock(mu_);
  adoptGenerationLocked(check->generation);
  if (check->generation != generation_) {
    return;  // checked against material that has been replaced meanwhile
  }
  auto it = map_.find(key);
  if (it == map_.end()) {
    if (map_.size() >= capacity_) {
      auto oldest = map_.begin();
      for (auto i = map_.begin(); i != map_.end(); ++i) {
        if (i->second.last_use < oldest->second.last_use) {
          oldest = i;
        }
      }
      map_.erase(oldest);
    }
    it = map_.emplace(std::string(key), Slot{}).first;
  }
  it->second.check = std::move(check);
  it->second.last_use = ++tick_;
}

std::size_t CertCache::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return map_.size();
}

// ---------------------------------------------------------------------------------------
// Verifier

Status Verifier::start(FilterContext &ctx) noexcept {
  unsigned_passed_ = &ctx.counter("unsigned_passed");
  verified_ = &ctx.counter("verified");
  cache_hits_ = &ctx.counter("cert_cache_hits");
  if (!shared_->trust.loaded()) {
    return Status::fatal("CA/CRL not loaded", "ca_file");
  }
  ca_expiry_ = &ctx.gauge("ca_not_after_timestamp_seconds");
  if (shared_->trust.crlNextUpdate() != 0) {
    crl_expiry_ = &ctx.gauge("crl_next_update_timestamp_seconds");
  }
  publishExpiry();
  return Status::ok();
}

void Verifier::publishExpiry() noexcept {
  seen_reloads_ = shared_->trust.reloads();
  if (ca_expiry_ != nullptr) {
    ca_expiry_->set(shared_->trust.caNotAfter());
  }
  if (crl_expiry_ != nullptr) {
    crl_expiry_->set(shared_->trust.crlNextUpdate());
  }
}

Verdict Verifier::reject(FilterContext &ctx, const Message &msg, const char *reason,
                         std::string_view detail) noexcept {
  drop_log_.warn(ctx, reason, "rejected message '{}' on '{}': {}{}{}", msg.id(), msg.topic(), reason,
                 detail.empty() ? "" : ": ", detail);
  return Verdict::drop(reason);
}

Verdict Verifier::process(FilterContext &ctx, Message &msg) noexcept {
  try {
    Verdict v = check(ctx, msg);
    if (shared_->trust.reloads() != seen_reloads_) {  // new CA/CRL files were loaded
      publishExpiry();
    }
    return v;
  } catch (const std::bad_alloc &) {
    return Verdict::error("out_of_memory", true);
  } catch (const std::exception &e) {
    return reject(ctx, msg, "malformed_envelope", e.what());
  }
}

Verdict Verifier::check(FilterContext &ctx, Message &msg) {
  const auto &wire = msg.envelope();
  auto passUnsigned = [&]() {
    if (shared_->allow_unsigned) {
      if (unsigned_passed_ != nullptr) {
        unsigned_passed_->add();
      }
      return Verdict::pass();
    }
    return reject(ctx, msg, "unsigned", "");
  };
  if (!wire) {
    return passUnsigned();  // not a fedmsg envelope at all (e.g. from AMQP): nothing signed
  }
  // The signed bytes are the canonical form of the envelope without `signature` and
  // `certificate` (docs/plugins/verifier.md). fedmsg publishers send the canonical form, so
  // in the common case those bytes are the envelope minus two members: the decode proved
  // that and listed the members (WireEnvelope::members), and only the members checked
  // below are decoded. Anything else (re-serialised on the way, e.g. by the Python
  // AMQP->ZMQ bridge) is parsed into a tree and canonicalised from it.
  std::optional<json::Value> env;
  std::string canonical;
  std::string_view cert_literal;
  if (const std::vector<json::RawMember> &members = wire->members; !members.empty()) {
    json::Value fields = json::Value::object();
    canonical.reserve(wire->text.size());
    canonical += '{';
    for (const json::RawMember &m : members) {
      const bool unsigned_part = m.key == "signature" || m.key == "certificate";
      if (!unsigned_part) {
        if (canonical.size() > 1) {
          canonical += ',';
        }
        canonical.append(m.member);
      }
      if (m.key == "certificate" && m.value.front() == '"') {
        // Kept as its literal: the cache key; decoded only when it is not cached.
        cert_literal = m.value;
        fields.set("certificate", json::Value::fromString({}));
      } else if (unsigned_part || m.key == "topic" || m.key == "crypto") {
        json::Value v;
        if (m.value.front() == '"') {
          v = json::Value::fromString(json::unescapeCanonicalString(m.value));
        } else if (auto parsed = json::parse(m.value)) {
          v = std::move(*parsed);
        }
        fields.set(std::string(m.key), std::move(v));
      }
    }
    canonical += '}';
    env = std::move(fields);
  } else {
    std::string reason;
    std::string detail;
    env = json::parse(wire->text, &reason, {}, &detail);
    if (!env) {
      return reject(ctx, msg, reason == "duplicate_keys" ? "duplicate_keys" : "malformed_envelope", detail);
    }
  }
  if (!env->isObject()) {
    return reject(ctx, msg, "malformed_envelope", "the envelope is not a JSON object");
  }
  auto topic = env->findString("topic");
  if (!topic) {
    return reject(ctx, msg, "malformed_envelope", "no string `topic`");
  }
  // Frame 0 is outside the signature.
  if (*topic != msg.topic()) {
    return reject(ctx, msg, "topic_mismatch", fmt::format("envelope topic '{}'", *topic));
  }
  // Backend dispatch as fedmsg does it, pinned to x509.
  const json::Value *crypto = env->find("crypto");
  const json::Value *sig = env->find("signature");
  const json::Value *cert = env->find("certificate");
  if (crypto != nullptr) {
    if (!crypto->isString() || crypto->text != "x509") {
      return reject(ctx, msg, "unsupported_crypto",
                    crypto->isString() ? std::string_view(crypto->text) : std::string_view("non-string crypto"));
    }
  } else if (cert == nullptr && sig != nullptr) {
    return reject(ctx, msg, "unsupported_crypto", "signature without certificate (gpg)");
  }
  if (sig == nullptr && cert == nullptr) {
    return passUnsigned();
  }
  if (sig == nullptr || cert == nullptr || !sig->isString() || !cert->isString()) {
    return reject(ctx, msg, "malformed_envelope", "signature and certificate must both be strings");
  }
  auto sig_bytes = x509::base64Decode(sig->text);
  if (!sig_bytes) {
    return reject(ctx, msg, "bad_base64", "signature");
  }
  Verdict refused = Verdict::pass();
  std::string literal;
  if (cert_literal.empty()) {  // tree path: the same key as the one-pass path would use
    json::writeAsciiString(cert->text, literal);
    cert_literal = literal;
  }
  std::shared_ptr<const CertCheck> checked = certificate(ctx, msg, cert_literal, refused);
  if (!checked) {
    return refused;
  }
  switch (checked->result) {
    case TrustStore::Check::Ok: break;
    case TrustStore::Check::Revoked: return reject(ctx, msg, "revoked", checked->detail);
    case TrustStore::Check::Expired: return reject(ctx, msg, "expired", checked->detail);
    case TrustStore::Check::Untrusted: return reject(ctx, msg, "untrusted_certificate", checked->detail);
  }
  X509 *leaf = checked->info->cert.get();
  std::string error;
  if (canonical.empty()) {
    canonical = json::canonical(*env, {"signature", "certificate"});
  }
  const EVP_MD_CTX *tmpl = checked->info->verify_template.get();
  auto verifies = [&](const std::string &bytes) {
    return tmpl != nullptr ? x509::verifySha1(tmpl, bytes, *sig_bytes, &error)
                           : x509::verifySha1(leaf, bytes, *sig_bytes, &error);
  };
  if (!verifies(canonical)) {
    // A replay store (zmq-pub's replay_endpoint, fedmsg's persistent_store) numbers the
    // envelope with `seq_id` after it was signed: it verifies without that key.
    bool numbered = false;
    std::string unnumbered = "{";
    for (const json::RawMember &m : wire->members) {
      numbered = numbered || m.key == "seq_id";
      if (m.key != "seq_id" && m.key != "signature" && m.key != "certificate") {
        unnumbered.append(unnumbered.size() > 1 ? "," : "").append(m.member);
      }
    }
    unnumbered += '}';
    if (wire->members.empty()) {  // the tree path: env is the whole envelope
      numbered = env->find("seq_id") != nullptr;
      unnumbered = numbered ? json::canonical(*env, {"signature", "certificate", "seq_id"}) : std::string();
    }
    if (!numbered || !verifies(unnumbered)) {
      return reject(ctx, msg, "bad_signature", error);
    }
  }
  const std::optional<std::string> &cn = checked->info->common_name;
  if (!cn) {
    return reject(ctx, msg, "policy_denied", "the certificate has no commonName");
  }
  auto it = shared_->policy.find(std::string(*topic));
  if (it != shared_->policy.end()) {
    if (std::find(it->second.begin(), it->second.end(), *cn) == it->second.end()) {
      return reject(ctx, msg, "policy_denied", fmt::format("'{}' may not publish this topic", *cn));
    }
  } else if (shared_->nitpicky) {
    return reject(ctx, msg, "policy_denied", fmt::format("topic not in routing_policy (signer '{}')", *cn));
  }
  if (verified_ != nullptr) {
    verified_->add();
  }
  return Verdict::pass();
}

std::shared_ptr<const CertCheck> Verifier::certificate(FilterContext &ctx, const Message &msg, std::string_view key,
                                                       Verdict &verdict) {
  auto now = std::chrono::steady_clock::now();
  std::int64_t wall_now = static_cast<std::int64_t>(std::time(nullptr));
  CertCache::Lookup found = shared_->cache.find(key, shared_->trust.reloads(), now, wall_now);
  if (found.fresh) {
    if (cache_hits_ != nullptr) {
      cache_hits_->add();
    }
    return found.fresh;
  }
  // Parse (unless an outdated entry already holds the parsed certificate) and check the
  // chain outside the cache lock: other threads keep verifying meanwhile. Two threads that
  // miss on the same certificate at once both do the work; the later result wins.
  std::shared_ptr<const CertInfo> info = std::move(found.reparsed);
  if (!info) {
    auto pem = x509::base64Decode(json::unescapeCanonicalString(key));
    if (!pem) {
      verdict = reject(ctx, msg, "bad_base64", "certificate");
      return nullptr;
    }
    std::string error;
    auto parsed = std::make_shared<CertInfo>();
    parsed->cert = x509::certFromPem(*pem, &error);
    if (!parsed->cert) {
      verdict = reject(ctx, msg, "untrusted_certificate", error);
      return nullptr;
    }
    parsed->common_name = x509::commonName(parsed->cert.get());
    std::string not_rsa;
    parsed->verify_template = x509::sha1VerifyTemplate(parsed->cert.get(), &not_rsa);  // null: refused later
    // An unreadable date leaves an empty window, so an Ok result is never reused.
    parsed->not_before = epochSeconds(X509_get0_notBefore(parsed->cert.get()), std::numeric_limits<std::int64_t>::max());
    parsed->not_after = epochSeconds(X509_get0_notAfter(parsed->cert.get()), std::numeric_limits<std::int64_t>::min());
    info = std::move(parsed);
  }
  auto check = std::make_shared<CertCheck>();
  check->info = info;
  check->result = shared_->trust.verify(info->cert.get(), &check->detail, &ctx.log(), &check->generation);
  check->checked_at = std::chrono::steady_clock::now();
  shared_->cache.put(key, check);
  return check;
}

}  // namespace switchyard::plugins
