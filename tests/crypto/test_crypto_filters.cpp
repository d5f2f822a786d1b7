// SPDX-License-Identifier: MIT
//
// signer, verifier and loop-guard, made by their factories directly (no loader), with a
// host of the test's own for the objects loop-guards share. Keys, CA and CRLs are
// made with openssl at test time (pyhelper.py pki); the Python side signs and verifies
// with python3-cryptography exactly as fedmsg's x509 backend does.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <functional>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "../../plugins/loop_guard/loop_guard.hpp"
#include "../../plugins/signer/signer.hpp"
#include "../../plugins/verifier/verifier.hpp"
#include "switchyard/fedmsg.hpp"
#include "switchyard/json.hpp"
#include "test_util.hpp"

using namespace switchyard;
using plugins::LoopGuard;
using plugins::LoopGuardFactory;
using plugins::Signer;
using plugins::SignerFactory;
using plugins::Verifier;
using plugins::VerifierFactory;

namespace {

const std::string kTopic = "org.fedoraproject.dev.interop.test";

/// One PKI for the whole run (key generation is slow).
const sytest::TempDir &pki() {
  static sytest::TempDir dir;
  static bool made = [] {
    auto r = sytest::run(sytest::pyHelper() + " pki '" + dir.path() + "'");
    REQUIRE_MESSAGE(r.status == 0, "pyhelper.py pki failed");
    return true;
  }();
  (void)made;
  return dir;
}

std::string path(const std::string &name) { return pki().file(name); }

std::string quote(std::string_view s) {
  std::string out;
  json::writeAsciiString(s, out);
  return out;
}

/// The engine's Host, as far as plugins use it: objects shared under a key.
class FakeHost final : public Host {
 public:
  Logger &log() noexcept override { return logger_; }
  std::shared_ptr<void> shared(std::string_view key,
                               const std::function<std::shared_ptr<void>()> &make) noexcept override {
    std::lock_guard<std::mutex> lock(mu_);
    auto &slot = objects_[std::string(key)];
    if (!slot) {
      try {
        slot = make();
      } catch (...) {
        return nullptr;
      }
    }
    return slot;
  }

 private:
  sytest::CaptureLogger logger_;
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<void>> objects_;
};

FakeHost &host() {
  static FakeHost h;
  return h;
}

sdk::Config config(const std::string &json) { return sdk::Config(json, nullptr, "test", &host()); }

/// A signer's factory, as the core makes one per configured signer.
std::unique_ptr<SignerFactory> makeSignerFactory(const std::string &who = "good") {
  return std::make_unique<SignerFactory>(config("{\"cert_file\":" + quote(path(who + ".crt")) + ",\"key_file\":" +
                                                quote(path(who + ".key")) + ",\"username\":\"amqp-bridge\"}"));
}

/// One instance of a factory of its own (the instance keeps what it shares alive).
std::unique_ptr<Signer> makeSigner(const std::string &who = "good") { return makeSignerFactory(who)->make(); }

struct VerifierOptions {
  std::string crl = "crl.pem";  ///< "" for none
  std::string policy = "{\"" + kTopic + "\":[\"good.example.org\"]}";
  bool nitpicky = true;
  bool allow_unsigned = false;
  std::string crl_path;  ///< overrides crl when set
};

std::unique_ptr<VerifierFactory> makeVerifierFactory(const VerifierOptions &o = {}) {
  std::string crl = !o.crl_path.empty() ? quote(o.crl_path) : o.crl.empty() ? "null" : quote(path(o.crl));
  return std::make_unique<VerifierFactory>(config("{\"ca_file\":" + quote(path("ca.crt")) + ",\"crl_file\":" + crl +
                                           ",\"routing_policy\":" + o.policy + ",\"nitpicky\":" +
                                           (o.nitpicky ? "true" : "false") + ",\"allow_unsigned\":" +
                                           (o.allow_unsigned ? "true" : "false") + ",\"auth_level\":-1}"));
}

std::unique_ptr<Verifier> makeVerifier(const VerifierOptions &o = {}) { return makeVerifierFactory(o)->make(); }

/// An unsigned envelope as a fedmsg publisher would send it (not canonical on purpose).
std::string unsignedEnvelope(const std::string &topic = kTopic) {
  return "{\"topic\": " + quote(topic) +
         ", \"i\": 7, \"timestamp\": 1700000000.25, \"username\": \"apache\", "
         "\"msg_id\": \"2024-5e7b7d8a-0000-4000-8000-000000000042\", "
         "\"msg\": {\"text\": \"h\\u00e9llo \\ud83d\\ude00 \\u2028\", \"n\": 1.50, \"big\": 123456789012345678901234567890, "
         "\"f\": 1e16, \"z\": [], \"a\": {}}}";
}

/// A Message as zmq-sub produces it from frames [topic, envelope].
Message fromWire(const std::string &envelope, const std::string &frame_topic = kTopic) {
  Message m;
  fedmsg::Result r = fedmsg::decode(frame_topic, envelope, m);
  REQUIRE_MESSAGE(r.ok(), r.reason << ": " << r.detail);
  return m;
}

/// A Message carrying @p envelope without going through the codec (for envelopes the codec
/// itself would refuse).
Message rawEnvelope(const std::string &envelope, const std::string &topic = kTopic) {
  Message m;
  m.setTopic(topic);
  auto wire = std::make_shared<fedmsg::WireEnvelope>();  // not decoded: fields left empty
  wire->text = envelope;
  fedmsg::attach(m, std::move(wire));
  return m;
}

std::string pySign(const std::string &who, const std::string &envelope, bool oneline = false) {
  auto r = sytest::run(sytest::pyHelper() + " sign '" + path(who + ".key") + "' '" + path(who + ".crt") + "'" +
                           (oneline ? " --oneline" : ""),
                       envelope);
  REQUIRE(r.status == 0);
  return r.out;
}

struct VerifyResult {
  Verdict::Kind kind;
  std::string reason;
};

VerifyResult verify(Verifier &v, Message m, sytest::FakeContext &ctx) {
  Verdict verdict = v.process(ctx, m);
  return {verdict.kind, verdict.reason};
}

VerifyResult verify(Verifier &v, Message m) {
  sytest::FakeContext ctx;
  REQUIRE(v.start(ctx).isOk());
  return verify(v, std::move(m), ctx);
}

bool passes(const VerifyResult &o) { return o.kind == Verdict::Kind::Pass; }

void checkWrapped76(std::string_view field) {
  REQUIRE(!field.empty());
  CHECK(field.back() == '\n');
  std::size_t start = 0;
  while (start < field.size()) {
    std::size_t nl = field.find('\n', start);
    REQUIRE(nl != std::string_view::npos);
    std::size_t len = nl - start;
    bool last = nl + 1 == field.size();
    CHECK(len <= 76);
    if (!last) {
      CHECK(len == 76);
    }
    start = nl + 1;
  }
}

}  // namespace

TEST_CASE("signer: signed envelopes verify in Python and in the verifier") {
  auto signer = makeSigner();
  sytest::FakeContext ctx;
  REQUIRE(signer->start(ctx).isOk());

  SUBCASE("a message that arrived as fedmsg keeps its envelope content") {
    Message m = fromWire(unsignedEnvelope());
    REQUIRE(signer->process(ctx, m).kind == Verdict::Kind::Pass);
    std::string signed_env(m.envelope()->text);
    auto v = json::parse(signed_env);
    REQUIRE(v);
    CHECK(v->findString("crypto") == std::optional<std::string_view>("x509"));
    CHECK(v->findString("username") == std::optional<std::string_view>("apache"));
    CHECK(json::canonical(*v) == signed_env);  // the wire form is canonical
    checkWrapped76(*v->findString("signature"));
    checkWrapped76(*v->findString("certificate"));
    auto pem = x509::base64Decode(*v->findString("certificate"));
    REQUIRE(pem);
    CHECK(pem->rfind("-----BEGIN CERTIFICATE-----\n", 0) == 0);
    CHECK((m.envelope() != nullptr));  // zmq-pub will send it byte-exact

    auto py = sytest::run(sytest::pyHelper() + " verify", signed_env);
    CHECK(py.status == 0);
    CHECK(py.out == "good.example.org\n");

    auto verifier = makeVerifier();
    CHECK(passes(verify(*verifier, fromWire(signed_env))));

    // PKCS#1 v1.5 is deterministic: Python signing the same envelope gives the same bytes.
    auto pyenv = json::parse(pySign("good", unsignedEnvelope()));
    REQUIRE(pyenv);
    CHECK(pyenv->findString("signature") == v->findString("signature"));
    CHECK(pyenv->findString("certificate") == v->findString("certificate"));
  }

  SUBCASE("a message without envelope gets one built by the codec") {
    Message m;
    m.setTopic(kTopic);
    m.setBody("{\"package\": \"kernel\", \"version\": 6.1, \"who\": \"\\u00e9\"}");
    m.setId("d3b07384-d9a0-4c9b-8f6e-000000000001");
    REQUIRE(signer->process(ctx, m).kind == Verdict::Kind::Pass);
    auto env_text = m.envelope() ? std::optional<std::string_view>(m.envelope()->text) : std::nullopt;
    REQUIRE(env_text);
    auto v = json::parse(*env_text);
    REQUIRE(v);
    CHECK(v->findString("username") == std::optional<std::string_view>("amqp-bridge"));
    CHECK(v->findString("topic") == std::optional<std::string_view>(kTopic));
    CHECK((m.envelope() != nullptr));
    auto py = sytest::run(sytest::pyHelper() + " verify", std::string(*env_text));
    CHECK(py.status == 0);
    auto verifier = makeVerifier();
    CHECK(passes(verify(*verifier, fromWire(std::string(*env_text)))));
  }

  SUBCASE("stale credentials are replaced, not signed over") {
    std::string resigned = pySign("other", unsignedEnvelope());
    Message m = fromWire(resigned);
    REQUIRE(signer->process(ctx, m).kind == Verdict::Kind::Pass);
    auto py = sytest::run(sytest::pyHelper() + " verify", std::string(m.envelope()->text));
    CHECK(py.status == 0);
    CHECK(py.out == "good.example.org\n");
  }
}

TEST_CASE("signer: refuses unsafe or inconsistent key material") {
  sytest::TempDir dir;
  std::string key = dir.file("k.key");
  sytest::writeFile(key, sytest::readFile(path("good.key")));
  ::chmod(key.c_str(), 0644);
  auto make = [&](const std::string &crt, const std::string &k) {
    return SignerFactory(config("{\"cert_file\":" + quote(crt) + ",\"key_file\":" + quote(k) + ",\"username\":\"x\"}"));
  };
  try {
    make(path("good.crt"), key);
    FAIL("a world-readable key was accepted");
  } catch (const sdk::ConfigError &e) {
    CHECK(e.key() == "key_file");
    CHECK(std::string(e.what()).find("group or others") != std::string::npos);
  }
  ::chmod(key.c_str(), 0600);
  CHECK_NOTHROW(make(path("good.crt"), key));
  try {
    make(path("other.crt"), key);
    FAIL("a key that does not match the certificate was accepted");
  } catch (const sdk::ConfigError &e) {
    CHECK(e.key() == "key_file");
  }
  try {
    make(dir.file("missing.crt"), key);
    FAIL("a missing certificate was accepted");
  } catch (const sdk::ConfigError &e) {
    CHECK(e.key() == "cert_file");
  }
}

TEST_CASE("verifier: Python-signed messages verify, signature on one line or split") {
  auto verifier = makeVerifier();
  sytest::FakeContext ctx;
  REQUIRE(verifier->start(ctx).isOk());
  std::string wrapped = pySign("good", unsignedEnvelope());
  std::string oneline = pySign("good", unsignedEnvelope(), true);
  CHECK(wrapped.find("\\n") != std::string::npos);
  CHECK(json::parse(oneline)->findString("signature")->find('\n') == std::string_view::npos);
  CHECK(passes(verify(*verifier, fromWire(wrapped), ctx)));
  CHECK(passes(verify(*verifier, fromWire(oneline), ctx)));
  CHECK(ctx.value("verified") == 2);
}

TEST_CASE("verifier: canonical wire text (one-pass path) and re-serialised text (tree path) agree") {
  // fedmsg publishers send the canonical form, which the verifier splits in one pass
  // (json::scanCanonicalObject); anything else is parsed into a tree and canonicalised.
  // A blank after the brace is enough to take the tree path.
  auto verifier = makeVerifier();
  sytest::FakeContext ctx;
  REQUIRE(verifier->start(ctx).isOk());
  // pyhelper writes json.dumps' default layout, as the Python AMQP->ZMQ bridge does.
  const std::string python = pySign("good", unsignedEnvelope());
  const std::string good = json::canonical(*json::parse(python));
  std::vector<json::RawMember> members;
  REQUIRE_FALSE(json::scanCanonicalObject(python, members));
  REQUIRE(json::scanCanonicalObject(good, members));
  CHECK(passes(verify(*verifier, fromWire(python), ctx)));
  auto spaced = [](const std::string &t) { return "{ " + t.substr(1); };
  REQUIRE_FALSE(json::scanCanonicalObject(spaced(good), members));
  CHECK(passes(verify(*verifier, fromWire(good), ctx)));
  CHECK(passes(verify(*verifier, fromWire(spaced(good)), ctx)));
  auto v = json::parse(good);
  REQUIRE(v);
  v->set("i", json::Value::fromInt(8));
  const std::string tampered = json::canonical(*v);
  CHECK(verify(*verifier, fromWire(tampered), ctx).reason == "bad_signature");
  CHECK(verify(*verifier, fromWire(spaced(tampered)), ctx).reason == "bad_signature");
  // A member that spells the others' keys inside a string is one string, on both paths.
  v = json::parse(good);
  v->set("note", json::Value::fromString("\",\"signature\":\"x\",\"certificate\":\"y"));
  const std::string extra = json::canonical(*v);
  REQUIRE(json::scanCanonicalObject(extra, members));
  CHECK(verify(*verifier, fromWire(extra), ctx).reason == "bad_signature");
  CHECK(verify(*verifier, fromWire(spaced(extra)), ctx).reason == "bad_signature");
  CHECK(ctx.value("verified") == 3);
}

TEST_CASE("verifier: every rejection has its own reason") {
  auto verifier = makeVerifier();
  const std::string good = pySign("good", unsignedEnvelope());

  SUBCASE("tampered field") {
    auto v = json::parse(good);
    REQUIRE(v);
    v->set("i", json::Value::fromInt(8));
    CHECK(verify(*verifier, fromWire(json::canonical(*v))).reason == "bad_signature");
  }
  SUBCASE("tampered body") {
    auto v = json::parse(good);
    v->find("msg")->set("text", json::Value::fromString("evil"));
    CHECK(verify(*verifier, fromWire(json::canonical(*v))).reason == "bad_signature");
  }
  SUBCASE("certificate swapped from another signer's message") {
    auto v = json::parse(good);
    auto other = json::parse(pySign("other", unsignedEnvelope()));
    v->set("certificate", *other->find("certificate"));
    CHECK(verify(*verifier, fromWire(json::canonical(*v))).reason == "bad_signature");
  }
  SUBCASE("revoked certificate") {
    CHECK(verify(*verifier, fromWire(pySign("revoked", unsignedEnvelope()))).reason == "revoked");
  }
  SUBCASE("foreign CA") {
    CHECK(verify(*verifier, fromWire(pySign("foreign", unsignedEnvelope()))).reason == "untrusted_certificate");
  }
  SUBCASE("expired certificate") {
    CHECK(verify(*verifier, fromWire(pySign("expired", unsignedEnvelope()))).reason == "expired");
  }
  SUBCASE("policy denial") {
    CHECK(verify(*verifier, fromWire(pySign("other", unsignedEnvelope()))).reason == "policy_denied");
  }
  SUBCASE("nitpicky without a policy entry, and the same without nitpicky") {
    std::string elsewhere = pySign("good", unsignedEnvelope("org.fedoraproject.dev.unlisted"));
    CHECK(verify(*verifier, fromWire(elsewhere, "org.fedoraproject.dev.unlisted")).reason == "policy_denied");
    VerifierOptions lax;
    lax.nitpicky = false;
    auto lenient = makeVerifier(lax);
    CHECK(passes(verify(*lenient, fromWire(elsewhere, "org.fedoraproject.dev.unlisted"))));
  }
  SUBCASE("topic mismatch between frame and signed envelope") {
    Message m = fromWire(good);
    auto signed_envelope = m.envelope();
    m.setTopic("org.fedoraproject.prod.bodhi.update.request");  // drops the envelope (ABI 2.0)...
    CHECK_FALSE(m.envelope());
    fedmsg::attach(m, signed_envelope);  // ...so only a stage that attaches it again on purpose
    CHECK(verify(*verifier, std::move(m)).reason == "topic_mismatch");
  }
  SUBCASE("duplicate keys: an earlier topic prepended to a valid message") {
    std::string forged = "{\"topic\":\"org.fedoraproject.prod.evil\"," + good.substr(1);
    CHECK(verify(*verifier, rawEnvelope(forged)).reason == "duplicate_keys");
    CHECK(verify(*verifier, rawEnvelope(forged, "org.fedoraproject.prod.evil")).reason == "duplicate_keys");
  }
  SUBCASE("crypto gpg, and a signature without certificate") {
    auto v = json::parse(unsignedEnvelope());
    v->set("crypto", json::Value::fromString("gpg"));
    v->set("signature", json::Value::fromString("iQEcBAABAgAGBQJ"));
    CHECK(verify(*verifier, fromWire(json::canonical(*v))).reason == "unsupported_crypto");
    v->erase("crypto");
    CHECK(verify(*verifier, fromWire(json::canonical(*v))).reason == "unsupported_crypto");
  }
  SUBCASE("bad base64") {
    auto v = json::parse(good);
    v->set("signature", json::Value::fromString("@@@@"));
    CHECK(verify(*verifier, fromWire(json::canonical(*v))).reason == "bad_base64");
    v = json::parse(good);
    v->set("certificate", json::Value::fromString("QUJD\nR"));
    CHECK(verify(*verifier, fromWire(json::canonical(*v))).reason == "bad_base64");
  }
  SUBCASE("malformed envelopes") {
    auto v = json::parse(good);
    v->erase("certificate");
    v->set("crypto", json::Value::fromString("x509"));
    CHECK(verify(*verifier, fromWire(json::canonical(*v))).reason == "malformed_envelope");
    CHECK(verify(*verifier, rawEnvelope("[1,2]")).reason == "malformed_envelope");
    CHECK(verify(*verifier, rawEnvelope("{\"topic\":")).reason == "malformed_envelope");
    CHECK(verify(*verifier, rawEnvelope("{\"msg\":{}}")).reason == "malformed_envelope");
  }
  SUBCASE("unsigned, refused by default and passed (counted) with allow_unsigned") {
    CHECK(verify(*verifier, fromWire(unsignedEnvelope())).reason == "unsigned");
    Message amqp;  // from another transport: no envelope at all
    amqp.setTopic(kTopic);
    CHECK(verify(*verifier, amqp).reason == "unsigned");
    VerifierOptions open;
    open.allow_unsigned = true;
    auto lenient = makeVerifier(open);
    sytest::FakeContext ctx;
    REQUIRE(lenient->start(ctx).isOk());
    CHECK(passes(verify(*lenient, fromWire(unsignedEnvelope()), ctx)));
    CHECK(passes(verify(*lenient, amqp, ctx)));
    CHECK(ctx.value("unsigned_passed") == 2);
    // allow_unsigned does not let a bad signature through
    CHECK(verify(*lenient, fromWire(pySign("revoked", unsignedEnvelope())), ctx).reason == "revoked");
  }
  SUBCASE("no CRL configured: revocation is not checked") {
    VerifierOptions nocrl;
    nocrl.crl = "";
    nocrl.nitpicky = false;
    nocrl.policy = "{}";
    auto v = makeVerifier(nocrl);
    CHECK(passes(verify(*v, fromWire(pySign("revoked", unsignedEnvelope())))));
  }
}

TEST_CASE("verifier: a replaced CRL file is picked up without restart") {
  sytest::TempDir dir;
  std::string crl = dir.file("crl.pem");
  sytest::writeFile(crl, sytest::readFile(path("crl-empty.pem")));
  VerifierOptions o;
  o.crl_path = crl;
  o.nitpicky = false;
  o.policy = "{}";
  auto verifier = makeVerifier(o);
  sytest::FakeContext ctx;
  REQUIRE(verifier->start(ctx).isOk());
  const std::string revoked = pySign("revoked", unsignedEnvelope());
  CHECK(passes(verify(*verifier, fromWire(revoked), ctx)));

  // Replace atomically, the way a CRL updater should.
  sytest::writeFile(dir.file("crl.new"), sytest::readFile(path("crl.pem")));
  REQUIRE(std::rename(dir.file("crl.new").c_str(), crl.c_str()) == 0);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  VerifyResult last{Verdict::Kind::Pass, ""};
  while (std::chrono::steady_clock::now() < deadline) {
    last = verify(*verifier, fromWire(revoked), ctx);
    if (!passes(last)) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // poll interval, not a sync point
  }
  CHECK(last.reason == "revoked");

  // A CRL that becomes unreadable fails closed.
  sytest::writeFile(crl, "garbage");
  const std::string good = pySign("good", unsignedEnvelope());
  deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    last = verify(*verifier, fromWire(good), ctx);
    if (!passes(last)) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  CHECK(last.reason == "untrusted_certificate");
}

// ---------------------------------------------------------------------------------------
// verifier: certificate cache and concurrency

namespace {

/// Signs @p count envelopes that differ in `i` (each one a distinct signed message).
std::vector<std::string> pySignMany(const std::string &who, int count) {
  std::vector<std::string> out;
  for (int k = 0; k < count; ++k) {
    auto v = json::parse(unsignedEnvelope());
    REQUIRE(v);
    v->set("i", json::Value::fromInt(100 + k));
    out.push_back(pySign(who, json::canonical(*v)));
  }
  return out;
}

}  // namespace

TEST_CASE("verifier: one certificate, many messages: parsed and chain-checked once, then cached") {
  auto verifier = makeVerifier();
  sytest::FakeContext ctx;
  REQUIRE(verifier->start(ctx).isOk());
  const auto signed_msgs = pySignMany("good", 3);
  const int rounds = 20;
  auto start = std::chrono::steady_clock::now();
  int passed = 0;
  for (int r = 0; r < rounds; ++r) {
    for (const auto &s : signed_msgs) {
      passed += passes(verify(*verifier, fromWire(s), ctx)) ? 1 : 0;
    }
  }
  auto seconds = [](std::chrono::steady_clock::time_point since) {
    return static_cast<std::int64_t>(
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - since).count());
  };
  auto hits = [&] { return static_cast<std::int64_t>(ctx.value("cert_cache_hits")); };
  const std::int64_t elapsed_s = seconds(start);
  const auto total = static_cast<std::uint64_t>(rounds * static_cast<int>(signed_msgs.size()));
  CHECK(passed == static_cast<int>(total));
  CHECK(ctx.value("verified") == total);
  // One miss for the first message, and at most one more per second of test time (an
  // entry is re-checked once it is a second old).
  CHECK(hits() >= static_cast<std::int64_t>(total) - 1 - elapsed_s);
  CHECK(hits() < static_cast<std::int64_t>(total));

  // The cache holds the chain check only: each message's own signature is still checked.
  auto tampered = json::parse(signed_msgs[0]);
  tampered->set("i", json::Value::fromInt(99999));
  std::int64_t hits_before = hits();
  auto refusals_start = std::chrono::steady_clock::now();
  CHECK(verify(*verifier, fromWire(json::canonical(*tampered)), ctx).reason == "bad_signature");

  // Refusals are cached too, and keep their reason every time.
  const std::string revoked = pySign("revoked", unsignedEnvelope());
  const std::string foreign = pySign("foreign", unsignedEnvelope());
  for (int k = 0; k < 5; ++k) {
    CHECK(verify(*verifier, fromWire(revoked), ctx).reason == "revoked");
    CHECK(verify(*verifier, fromWire(foreign), ctx).reason == "untrusted_certificate");
  }
  // 11 look-ups: two first misses, and at most one miss per certificate per second.
  CHECK(hits() >= hits_before + 11 - 2 - 3 * seconds(refusals_start));
  CHECK(ctx.value("verified") == total);
}

TEST_CASE("verifier: certificate cache unit rules") {
  using Clock = std::chrono::steady_clock;
  plugins::CertCache cache(2, std::chrono::seconds(1));
  auto info = std::make_shared<plugins::CertInfo>();
  info->not_before = 1000;
  info->not_after = 2000;
  auto entry = [&](plugins::TrustStore::Check result, std::uint64_t generation, Clock::time_point at) {
    auto c = std::make_shared<plugins::CertCheck>();
    c->info = info;
    c->result = result;
    c->generation = generation;
    c->checked_at = at;
    return c;
  };
  const auto t0 = Clock::now();
  cache.put("A", entry(plugins::TrustStore::Check::Ok, 1, t0));
  CHECK(cache.find("A", 1, t0, 1500).fresh);
  // older than a second: re-check, reusing the parsed certificate
  auto stale = cache.find("A", 1, t0 + std::chrono::milliseconds(1000), 1500);
  CHECK(!stale.fresh);
  CHECK(stale.reparsed == info);
  // outside the validity window an Ok result is not reused, however young
  CHECK(!cache.find("A", 1, t0, 2000).fresh);
  CHECK(!cache.find("A", 1, t0, 999).fresh);
  // a refusal is kept for its second even outside the window (an expired certificate)
  cache.put("E", entry(plugins::TrustStore::Check::Expired, 1, t0));
  CHECK(cache.find("E", 1, t0, 5000).fresh);
  // bounded: a third key evicts the least recently used one ("A" was used after "E")
  CHECK(cache.find("A", 1, t0, 1500).fresh);
  cache.put("C", entry(plugins::TrustStore::Check::Ok, 1, t0));
  CHECK(cache.size() == 2);
  CHECK(cache.find("A", 1, t0, 1500).fresh);
  CHECK(!cache.find("E", 1, t0, 1500).fresh);
  CHECK(!cache.find("E", 1, t0, 1500).reparsed);
  // new trust material drops every entry
  CHECK(!cache.find("A", 2, t0, 1500).fresh);
  CHECK(cache.size() == 0);
  // a result based on replaced material is not stored
  cache.put("A", entry(plugins::TrustStore::Check::Ok, 1, t0));
  CHECK(cache.size() == 0);
  cache.put("A", entry(plugins::TrustStore::Check::Ok, 2, t0));
  CHECK(cache.find("A", 2, t0, 1500).fresh);
}

TEST_CASE("verifier: a trust reload invalidates cached results") {
  sytest::TempDir dir;
  std::string crl = dir.file("crl.pem");
  sytest::writeFile(crl, sytest::readFile(path("crl-empty.pem")));
  VerifierOptions o;
  o.crl_path = crl;
  o.nitpicky = false;
  o.policy = "{}";
  auto verifier = makeVerifier(o);
  sytest::FakeContext ctx;
  REQUIRE(verifier->start(ctx).isOk());
  const std::string revoked = pySign("revoked", unsignedEnvelope());
  CHECK(passes(verify(*verifier, fromWire(revoked), ctx)));
  CHECK(passes(verify(*verifier, fromWire(revoked), ctx)));
  CHECK(ctx.value("cert_cache_hits") >= 1);  // the certificate is now cached as valid
  const std::uint64_t reloads = verifier->trust().reloads();

  sytest::writeFile(dir.file("crl.new"), sytest::readFile(path("crl.pem")));
  REQUIRE(std::rename(dir.file("crl.new").c_str(), crl.c_str()) == 0);
  auto replaced = std::chrono::steady_clock::now();
  auto deadline = replaced + std::chrono::seconds(10);
  VerifyResult last{Verdict::Kind::Pass, ""};
  while (std::chrono::steady_clock::now() < deadline) {
    last = verify(*verifier, fromWire(revoked), ctx);
    if (!passes(last)) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // poll interval, not a sync point
  }
  auto took = std::chrono::steady_clock::now() - replaced;
  CHECK(last.reason == "revoked");
  CHECK(verifier->trust().reloads() > reloads);
  // Cached for at most a second, then the file check (at most once a second) sees the new CRL.
  CHECK(took < std::chrono::milliseconds(2500));
  // and the refusal sticks (no stale Ok entry survives the reload)
  for (int k = 0; k < 5; ++k) {
    CHECK(verify(*verifier, fromWire(revoked), ctx).reason == "revoked");
  }
}

TEST_CASE("verifier: a certificate cached as valid is refused once it expires") {
  auto r = sytest::run(sytest::pyHelper() + " leaf '" + pki().path() + "' shortlived 5");
  REQUIRE(r.status == 0);
  const std::int64_t not_after = std::stoll(r.out);
  VerifierOptions o;
  o.policy = "{\"" + kTopic + "\":[\"shortlived.example.org\"]}";
  auto verifier = makeVerifier(o);
  sytest::FakeContext ctx;
  REQUIRE(verifier->start(ctx).isOk());
  const std::string msg = pySign("shortlived", unsignedEnvelope());
  REQUIRE(std::time(nullptr) < not_after);  // signing took less than the validity period
  int passed = 0;
  VerifyResult last{Verdict::Kind::Pass, ""};
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
  while (std::chrono::steady_clock::now() < deadline) {
    last = verify(*verifier, fromWire(msg), ctx);
    if (!passes(last)) {
      break;
    }
    ++passed;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // poll interval, not a sync point
  }
  const std::int64_t refused_at = std::time(nullptr);
  CHECK(passed >= 1);
  CHECK(ctx.value("cert_cache_hits") >= 1);  // it was served from the cache while valid
  CHECK(last.reason == "expired");
  CHECK(refused_at >= not_after);
  CHECK(refused_at <= not_after + 1);  // refused at once, not a cache lifetime later
  for (int k = 0; k < 3; ++k) {
    CHECK(verify(*verifier, fromWire(msg), ctx).reason == "expired");
  }
}

TEST_CASE("verifier: the instances of one factory on 4 threads (filter workers) give every message its verdict") {
  VerifierOptions o;
  o.policy = "{\"" + kTopic + "\":[\"good.example.org\"],\"org.fedoraproject.dev.other\":[\"other.example.org\"]}";
  auto factory = makeVerifierFactory(o);
  sytest::FakeContext ctx;
  constexpr int kThreads = 4;
  std::vector<std::unique_ptr<Verifier>> workers;  // one per thread, sharing the trust store and cache
  for (int t = 0; t < kThreads; ++t) {
    workers.push_back(factory->make());
    REQUIRE(workers.back()->start(ctx).isOk());
  }

  struct Case {
    Message msg;
    std::string expected;  ///< "" = pass
  };
  std::vector<Case> cases;
  for (const auto &s : pySignMany("good", 3)) {
    cases.push_back({fromWire(s), ""});
  }
  const std::string good = pySign("good", unsignedEnvelope());
  auto tampered = json::parse(good);
  tampered->set("i", json::Value::fromInt(8));
  cases.push_back({fromWire(json::canonical(*tampered)), "bad_signature"});
  cases.push_back({fromWire(pySign("other", unsignedEnvelope())), "policy_denied"});
  cases.push_back({fromWire(pySign("other", unsignedEnvelope("org.fedoraproject.dev.other")),
                            "org.fedoraproject.dev.other"),
                   ""});
  cases.push_back({fromWire(pySign("revoked", unsignedEnvelope())), "revoked"});
  cases.push_back({fromWire(pySign("foreign", unsignedEnvelope())), "untrusted_certificate"});
  cases.push_back({fromWire(pySign("expired", unsignedEnvelope())), "expired"});
  cases.push_back({fromWire(unsignedEnvelope()), "unsigned"});
  auto bad_cert = json::parse(good);
  bad_cert->set("certificate", json::Value::fromString("QUJD\nR"));
  cases.push_back({fromWire(json::canonical(*bad_cert)), "bad_base64"});
  const std::uint64_t passing = static_cast<std::uint64_t>(
      std::count_if(cases.begin(), cases.end(), [](const Case &c) { return c.expected.empty(); }));

  // Long enough for cached entries to age out and be re-checked while other threads use them.
  const auto run_for = std::chrono::milliseconds(1500);
  std::vector<std::uint64_t> done(kThreads, 0);
  std::vector<std::vector<std::string>> wrong(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      auto until = std::chrono::steady_clock::now() + run_for;
      std::size_t k = static_cast<std::size_t>(t);  // each thread starts elsewhere in the list
      while (std::chrono::steady_clock::now() < until || done[t] < 200) {
        const Case &c = cases[k % cases.size()];
        Message m = c.msg;
        Verdict v = workers[static_cast<std::size_t>(t)]->process(ctx, m);
        std::string got = v.kind == Verdict::Kind::Pass ? std::string() : std::string(v.reason);
        if (got != c.expected) {
          wrong[t].push_back("case " + std::to_string(k % cases.size()) + ": got '" + got + "', expected '" +
                             c.expected + "'");
        }
        ++done[t];
        ++k;
      }
    });
  }
  for (auto &th : threads) {
    th.join();
  }
  std::uint64_t expected_verified = 0;
  for (int t = 0; t < kThreads; ++t) {
    CHECK_MESSAGE(wrong[t].empty(), "thread " << t << ": " << (wrong[t].empty() ? "" : wrong[t].front()));
    // thread t processed cases t, t+1, ... done[t] times in a row
    for (std::uint64_t n = 0; n < done[t]; ++n) {
      expected_verified += cases[(static_cast<std::size_t>(t) + n) % cases.size()].expected.empty() ? 1 : 0;
    }
  }
  CHECK(passing == 4);
  CHECK(ctx.value("verified") == expected_verified);
  CHECK(ctx.value("cert_cache_hits") > 0);
}

TEST_CASE("signer: the instances of one factory on 4 threads (filter workers) sign every message once, `i` unique") {
  auto factory = makeSignerFactory();
  sytest::FakeContext ctx;
  constexpr int kThreads = 4;
  std::vector<std::unique_ptr<Signer>> workers;  // one per thread, sharing the key and `i`
  for (int t = 0; t < kThreads; ++t) {
    workers.push_back(factory->make());
    REQUIRE(workers.back()->start(ctx).isOk());
  }
  VerifierOptions o;
  o.policy = "{}";
  o.nitpicky = false;
  auto verifier = makeVerifier(o);
  sytest::FakeContext vctx;
  REQUIRE(verifier->start(vctx).isOk());

  constexpr int kEach = 50;
  std::vector<std::vector<Message>> out(kThreads);
  std::vector<int> failed(kThreads, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int n = 0; n < kEach; ++n) {
        Message m;
        m.setTopic(kTopic);
        m.setId("id-" + std::to_string(t) + "-" + std::to_string(n));
        m.setBody("{\"thread\":" + std::to_string(t) + ",\"n\":" + std::to_string(n) + "}");
        if (workers[static_cast<std::size_t>(t)]->process(ctx, m).kind != Verdict::Kind::Pass) {
          ++failed[t];
          continue;
        }
        out[t].push_back(std::move(m));
      }
    });
  }
  for (auto &th : threads) {
    th.join();
  }
  std::set<std::string> seqs;
  std::size_t verified = 0;
  for (int t = 0; t < kThreads; ++t) {
    CHECK(failed[t] == 0);
    for (auto &m : out[t]) {
      auto env = json::parse(m.envelope()->text);
      REQUIRE(env);
      REQUIRE(env->find("i") != nullptr);
      seqs.insert(env->find("i")->text);
      verified += passes(verify(*verifier, m, vctx)) ? 1 : 0;
    }
  }
  CHECK(verified == kThreads * kEach);
  CHECK(seqs.size() == kThreads * kEach);  // the builder's `i` was not raced
}

TEST_CASE("signer: the instances of one entry (filter workers) share one `i` sequence") {
  auto seqOf = [](Signer &signer, sytest::FakeContext &ctx, int n) {
    Message m;
    m.setTopic(kTopic);
    m.setId("id-" + std::to_string(n));
    m.setBody("{\"n\":" + std::to_string(n) + "}");
    REQUIRE(signer.process(ctx, m).kind == Verdict::Kind::Pass);
    return std::stoull(json::parse(m.envelope()->text)->find("i")->text);
  };
  // Two workers' instances of pipelines.shared.filters[0] (one factory): one sequence
  // between them.
  auto shared = makeSignerFactory();
  auto a = shared->make();
  auto b = shared->make();
  sytest::FakeContext ctx_a("shared");
  sytest::FakeContext ctx_b("shared");
  REQUIRE(a->start(ctx_a).isOk());
  REQUIRE(b->start(ctx_b).isOk());
  std::vector<unsigned long long> seen;
  for (int n = 0; n < 6; ++n) {
    seen.push_back(n % 2 == 0 ? seqOf(*a, ctx_a, n) : seqOf(*b, ctx_b, n));
  }
  CHECK(seen == std::vector<unsigned long long>{1, 2, 3, 4, 5, 6});
  // Another pipeline's signer (another factory) counts on its own.
  auto c = makeSigner();
  sytest::FakeContext ctx_c("other");
  REQUIRE(c->start(ctx_c).isOk());
  CHECK(seqOf(*c, ctx_c, 0) == 1);
  CHECK(seqOf(*a, ctx_a, 7) == 7);
}

TEST_CASE("verifier: timing with and without the certificate cache (printed, not asserted)") {
  auto verifier = makeVerifier();
  sytest::FakeContext ctx;
  REQUIRE(verifier->start(ctx).isOk());
  const std::string signed_msg = pySign("good", unsignedEnvelope());
  const Message msg = fromWire(signed_msg);
  constexpr int kRounds = 500;
  auto t0 = std::chrono::steady_clock::now();
  for (int k = 0; k < kRounds; ++k) {
    Message m = msg;
    REQUIRE(verifier->process(ctx, m).kind == Verdict::Kind::Pass);
  }
  auto t1 = std::chrono::steady_clock::now();
  // What every message paid before the cache: decode, parse and chain-check the certificate.
  auto field = std::string(*json::parse(signed_msg)->findString("certificate"));
  plugins::TrustStore trust(path("ca.crt"), path("crl.pem"), -1);
  REQUIRE(trust.load(nullptr));
  for (int k = 0; k < kRounds; ++k) {
    auto pem = x509::base64Decode(field);
    REQUIRE(pem);
    x509::CertPtr cert = x509::certFromPem(*pem, nullptr);
    REQUIRE(cert);
    std::string detail;
    REQUIRE(trust.verify(cert.get(), &detail, nullptr) == plugins::TrustStore::Check::Ok);
  }
  auto t2 = std::chrono::steady_clock::now();
  auto us = [](auto d) { return std::chrono::duration<double, std::micro>(d).count() / kRounds; };
  CHECK(ctx.value("verified") == static_cast<std::uint64_t>(kRounds));
  MESSAGE("verify one message (cached certificate): " << us(t1 - t0) << " us; certificate decode + parse + "
                                                        "chain check, saved per cache hit: "
                                                     << us(t2 - t1) << " us");
}

// ---------------------------------------------------------------------------------------
// loop-guard

namespace {

std::unique_ptr<LoopGuard> makeGuardIn(const std::string &window_name, const std::string &mark = {}) {
  return LoopGuardFactory(config("{\"username_marker\":\"amqp-bridge\",\"window\":3,\"window_name\":" +
                          quote(window_name) + ",\"direction\":\"\",\"header\":\"x-switchyard-bridged\",\"mark\":" +
                          quote(mark) + "}"))
      .make();
}

/// The window group loop-guards named @p window_name share (an object of the host).
std::shared_ptr<plugins::IdWindowGroup> windowGroup(const std::string &window_name) {
  return std::static_pointer_cast<plugins::IdWindowGroup>(
      host().shared("loop-guard.group." + window_name, [] { return std::shared_ptr<void>(); }));
}

Message plain(const std::string &id, const std::string &headers = "{}") {
  Message m;
  m.setTopic("org.fedoraproject.prod.x");
  m.setId(id);
  m.setHeaders(headers);
  return m;
}

}  // namespace

TEST_CASE("loop-guard: username marker") {
  auto guard = makeGuardIn("user");
  sytest::FakeContext ctx;
  REQUIRE(guard->start(ctx).isOk());
  Message bridged = fromWire(
      "{\"topic\":\"t.a\",\"msg\":{},\"msg_id\":\"2024-a\",\"i\":1,\"timestamp\":1,\"username\":\"amqp-bridge\"}",
      "t.a");
  CHECK(guard->process(ctx, bridged).reason == "loop_username");
  Message native = fromWire(
      "{\"topic\":\"t.a\",\"msg\":{},\"msg_id\":\"2024-b\",\"i\":1,\"timestamp\":1,\"username\":\"apache\"}", "t.a");
  CHECK(guard->process(ctx, native).kind == Verdict::Kind::Pass);
  // Without the codec's metadata, the envelope itself is read.
  Message raw = rawEnvelope("{\"topic\":\"t.a\",\"username\":\"amqp-bridge\"}", "t.a");
  CHECK(guard->process(ctx, raw).reason == "loop_username");
}

TEST_CASE("loop-guard: provenance header, and marking") {
  auto to_amqp = makeGuardIn("hdr", "zmq-to-amqp");
  sytest::FakeContext ctx("zmq-to-amqp");
  REQUIRE(to_amqp->start(ctx).isOk());
  Message m = fromWire(
      "{\"topic\":\"t.a\",\"msg\":{},\"msg_id\":\"2024-c\",\"i\":1,\"timestamp\":1,\"username\":\"apache\","
      "\"headers\":{\"k\":\"v\"}}",
      "t.a");
  REQUIRE(to_amqp->process(ctx, m).kind == Verdict::Kind::Pass);
  CHECK(m.headers() == "{\"k\":\"v\",\"x-switchyard-bridged\":\"zmq-to-amqp\"}");
  CHECK_FALSE(m.envelope());  // changed headers: the envelope is stale

  auto back = makeGuardIn("hdr2");
  sytest::FakeContext ctx2("amqp-to-zmq");
  REQUIRE(back->start(ctx2).isOk());
  CHECK(back->process(ctx2, m).reason == "loop_header");
  Message other = plain("id-1", "{\"x-switchyard-bridged\":\"anything\"}");
  CHECK(back->process(ctx2, other).reason == "loop_header");
  Message clean = plain("id-2", "{\"x-other\":1}");
  CHECK(back->process(ctx2, clean).kind == Verdict::Kind::Pass);
}

TEST_CASE("loop-guard: ids passed by the other direction are dropped, year prefix ignored") {
  auto zmq_to_amqp = makeGuardIn("ids");
  auto amqp_to_zmq = makeGuardIn("ids");
  sytest::FakeContext a("zmq-to-amqp");
  sytest::FakeContext b("amqp-to-zmq");
  REQUIRE(zmq_to_amqp->start(a).isOk());
  REQUIRE(amqp_to_zmq->start(b).isOk());
  CHECK(zmq_to_amqp->direction() == "zmq-to-amqp");

  Message m1 = plain("2024-72b3456e-431c-461e-a61e-22a4847b2a46");
  REQUIRE(zmq_to_amqp->process(a, m1).kind == Verdict::Kind::Pass);
  // Comes back from AMQP without the year prefix (AMQP message_id), or re-prefixed.
  Message back1 = plain("72b3456e-431c-461e-a61e-22a4847b2a46");
  CHECK(amqp_to_zmq->process(b, back1).reason == "loop_id");
  Message back2 = plain("2025-72b3456e-431c-461e-a61e-22a4847b2a46");
  CHECK(amqp_to_zmq->process(b, back2).reason == "loop_id");
  // The same direction seeing an id twice is not a loop.
  Message again = plain("2024-72b3456e-431c-461e-a61e-22a4847b2a46");
  CHECK(zmq_to_amqp->process(a, again).kind == Verdict::Kind::Pass);
  // The other way round too.
  Message from_amqp = plain("aaaa");
  REQUIRE(amqp_to_zmq->process(b, from_amqp).kind == Verdict::Kind::Pass);
  Message echoed = plain("2024-aaaa");
  CHECK(zmq_to_amqp->process(a, echoed).reason == "loop_id");

  // Another window group does not see these ids.
  auto unrelated = makeGuardIn("ids-elsewhere");
  sytest::FakeContext c("amqp-to-zmq");
  REQUIRE(unrelated->start(c).isOk());
  Message m3 = plain("72b3456e-431c-461e-a61e-22a4847b2a46");
  CHECK(unrelated->process(c, m3).kind == Verdict::Kind::Pass);
}

TEST_CASE("loop-guard: the id window is bounded") {
  auto one = makeGuardIn("bounded");
  auto two = makeGuardIn("bounded");
  sytest::FakeContext a("a");
  sytest::FakeContext b("b");
  REQUIRE(one->start(a).isOk());
  REQUIRE(two->start(b).isOk());
  for (const char *id : {"1", "2", "3", "4"}) {  // window is 3: "1" falls out
    Message m = plain(id);
    REQUIRE(one->process(a, m).kind == Verdict::Kind::Pass);
  }
  CHECK(windowGroup("bounded")->size("a") == 3);
  Message oldest = plain("1");
  CHECK(two->process(b, oldest).kind == Verdict::Kind::Pass);
  Message newest = plain("4");
  CHECK(two->process(b, newest).reason == "loop_id");
}

TEST_CASE("loop-guard: the codec's stripYearPrefix, which it compares ids with") {
  CHECK(fedmsg::stripYearPrefix("2019-72b3") == "72b3");
  CHECK(fedmsg::stripYearPrefix("72b3") == "72b3");
  CHECK(fedmsg::stripYearPrefix("20a9-x") == "20a9-x");
  CHECK(fedmsg::stripYearPrefix("2019-") == "2019-");
}

TEST_CASE("x509::base64Decode: round trips, fedmsg's wrapped layout, and refusals") {
  std::mt19937 rng(99);
  for (int n = 0; n < 300; ++n) {
    std::string bytes(static_cast<std::size_t>(rng() % 300), '\0');
    for (char &c : bytes) {
      c = static_cast<char>(rng() & 0xFF);
    }
    const std::string b64 = x509::base64Encode(bytes);
    if (bytes.empty()) {
      CHECK_FALSE(x509::base64Decode(b64));  // nothing to decode is refused, as before
    } else {
      CHECK(x509::base64Decode(b64) == bytes);
      CHECK(x509::base64Decode(x509::wrap76(b64)) == bytes);  // newlines skipped
      std::string unpadded = b64;
      while (!unpadded.empty() && unpadded.back() == '=') {
        unpadded.pop_back();
      }
      CHECK(x509::base64Decode(unpadded) == bytes);  // padding is optional
    }
  }
  CHECK(x509::base64Decode(" Q U J D \r\n") == "ABC");  // anything outside the alphabet is skipped
  CHECK(x509::base64Decode("QUI=") == "AB");
  CHECK(x509::base64Decode("QQ==") == "A");
  CHECK_FALSE(x509::base64Decode(""));
  CHECK_FALSE(x509::base64Decode("@@@@"));
  CHECK_FALSE(x509::base64Decode("QUJDR"));      // 5 sextets: impossible length
  CHECK_FALSE(x509::base64Decode("QQ=A"));       // '=' before the end
  CHECK_FALSE(x509::base64Decode("QQ==QUJD"));
  CHECK_FALSE(x509::base64Decode("QQ==="));      // three pad characters
  CHECK_FALSE(x509::base64Decode("QUJD="));      // padding that does not complete a quad
}
