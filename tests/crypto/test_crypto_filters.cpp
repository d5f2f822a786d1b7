// SPDX-License-Identifier: MIT
//
// signer, verifier and loop-guard, constructed directly (no loader). Keys, CA and CRLs are
// made with openssl at test time (pyhelper.py pki); the Python side signs and verifies
// with python3-cryptography exactly as fedmsg's x509 backend does.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <sys/stat.h>

#include <chrono>
#include <cstdio>
#include <thread>

#include "../../plugins/loop_guard/loop_guard.hpp"
#include "../../plugins/signer/signer.hpp"
#include "../../plugins/verifier/verifier.hpp"
#include "switchyard/fedmsg.hpp"
#include "switchyard/json.hpp"
#include "test_util.hpp"

using namespace switchyard;
using plugins::LoopGuard;
using plugins::Signer;
using plugins::Verifier;

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

sdk::Config config(const std::string &json) { return sdk::Config(json, nullptr, "test"); }

Signer makeSigner(const std::string &who = "good") {
  return Signer(config("{\"cert_file\":" + quote(path(who + ".crt")) + ",\"key_file\":" +
                       quote(path(who + ".key")) + ",\"username\":\"amqp-bridge\"}"));
}

struct VerifierOptions {
  std::string crl = "crl.pem";  ///< "" for none
  std::string policy = "{\"" + kTopic + "\":[\"good.example.org\"]}";
  bool nitpicky = true;
  bool allow_unsigned = false;
  std::string crl_path;  ///< overrides crl when set
};

std::unique_ptr<Verifier> makeVerifier(const VerifierOptions &o = {}) {
  std::string crl = !o.crl_path.empty() ? quote(o.crl_path) : o.crl.empty() ? "null" : quote(path(o.crl));
  return std::make_unique<Verifier>(config("{\"ca_file\":" + quote(path("ca.crt")) + ",\"crl_file\":" + crl +
                                           ",\"routing_policy\":" + o.policy + ",\"nitpicky\":" +
                                           (o.nitpicky ? "true" : "false") + ",\"allow_unsigned\":" +
                                           (o.allow_unsigned ? "true" : "false") + ",\"auth_level\":-1}"));
}

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
  m.topic = topic;
  m.setMeta(meta::kFedmsgEnvelope, envelope);
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
  Signer signer = makeSigner();
  sytest::FakeContext ctx;
  REQUIRE(signer.start(ctx).isOk());

  SUBCASE("a message that arrived as fedmsg keeps its envelope content") {
    Message m = fromWire(unsignedEnvelope());
    REQUIRE(signer.process(ctx, m).kind == Verdict::Kind::Pass);
    std::string signed_env(*m.getMeta(meta::kFedmsgEnvelope));
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
    CHECK(fedmsg::envelopeMatches(m));  // zmq-pub will send it byte-exact

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
    m.topic = kTopic;
    m.body = "{\"package\": \"kernel\", \"version\": 6.1, \"who\": \"\\u00e9\"}";
    m.id = "d3b07384-d9a0-4c9b-8f6e-000000000001";
    REQUIRE(signer.process(ctx, m).kind == Verdict::Kind::Pass);
    auto env_text = m.getMeta(meta::kFedmsgEnvelope);
    REQUIRE(env_text);
    auto v = json::parse(*env_text);
    REQUIRE(v);
    CHECK(v->findString("username") == std::optional<std::string_view>("amqp-bridge"));
    CHECK(v->findString("topic") == std::optional<std::string_view>(kTopic));
    CHECK(fedmsg::envelopeMatches(m));
    auto py = sytest::run(sytest::pyHelper() + " verify", std::string(*env_text));
    CHECK(py.status == 0);
    auto verifier = makeVerifier();
    CHECK(passes(verify(*verifier, fromWire(std::string(*env_text)))));
  }

  SUBCASE("stale credentials are replaced, not signed over") {
    std::string resigned = pySign("other", unsignedEnvelope());
    Message m = fromWire(resigned);
    REQUIRE(signer.process(ctx, m).kind == Verdict::Kind::Pass);
    auto py = sytest::run(sytest::pyHelper() + " verify", std::string(*m.getMeta(meta::kFedmsgEnvelope)));
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
    return Signer(config("{\"cert_file\":" + quote(crt) + ",\"key_file\":" + quote(k) + ",\"username\":\"x\"}"));
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
    m.topic = "org.fedoraproject.prod.bodhi.update.request";
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
    amqp.topic = kTopic;
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
// loop-guard

namespace {

LoopGuard makeGuardIn(const std::string &window_name, const std::string &mark = {}) {
  return LoopGuard(config("{\"username_marker\":\"amqp-bridge\",\"window\":3,\"window_name\":" +
                          quote(window_name) + ",\"direction\":\"\",\"header\":\"x-switchyard-bridged\",\"mark\":" +
                          quote(mark) + "}"));
}

Message plain(const std::string &id, const std::string &headers = "{}") {
  Message m;
  m.topic = "org.fedoraproject.prod.x";
  m.id = id;
  m.headers = headers;
  return m;
}

}  // namespace

TEST_CASE("loop-guard: username marker") {
  LoopGuard guard_obj = makeGuardIn("user");
  LoopGuard *guard = &guard_obj;
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
  LoopGuard to_amqp = makeGuardIn("hdr", "zmq-to-amqp");
  sytest::FakeContext ctx("zmq-to-amqp");
  REQUIRE(to_amqp.start(ctx).isOk());
  Message m = fromWire(
      "{\"topic\":\"t.a\",\"msg\":{},\"msg_id\":\"2024-c\",\"i\":1,\"timestamp\":1,\"username\":\"apache\","
      "\"headers\":{\"k\":\"v\"}}",
      "t.a");
  REQUIRE(to_amqp.process(ctx, m).kind == Verdict::Kind::Pass);
  CHECK(m.headers == "{\"k\":\"v\",\"x-switchyard-bridged\":\"zmq-to-amqp\"}");
  CHECK_FALSE(m.getMeta(meta::kFedmsgEnvelope));  // changed headers: the envelope is stale

  LoopGuard back = makeGuardIn("hdr2");
  sytest::FakeContext ctx2("amqp-to-zmq");
  REQUIRE(back.start(ctx2).isOk());
  CHECK(back.process(ctx2, m).reason == "loop_header");
  Message other = plain("id-1", "{\"x-switchyard-bridged\":\"anything\"}");
  CHECK(back.process(ctx2, other).reason == "loop_header");
  Message clean = plain("id-2", "{\"x-other\":1}");
  CHECK(back.process(ctx2, clean).kind == Verdict::Kind::Pass);
}

TEST_CASE("loop-guard: ids passed by the other direction are dropped, year prefix ignored") {
  LoopGuard zmq_to_amqp = makeGuardIn("ids");
  LoopGuard amqp_to_zmq = makeGuardIn("ids");
  sytest::FakeContext a("zmq-to-amqp");
  sytest::FakeContext b("amqp-to-zmq");
  REQUIRE(zmq_to_amqp.start(a).isOk());
  REQUIRE(amqp_to_zmq.start(b).isOk());
  CHECK(zmq_to_amqp.direction() == "zmq-to-amqp");

  Message m1 = plain("2024-72b3456e-431c-461e-a61e-22a4847b2a46");
  REQUIRE(zmq_to_amqp.process(a, m1).kind == Verdict::Kind::Pass);
  // Comes back from AMQP without the year prefix (AMQP message_id), or re-prefixed.
  Message back1 = plain("72b3456e-431c-461e-a61e-22a4847b2a46");
  CHECK(amqp_to_zmq.process(b, back1).reason == "loop_id");
  Message back2 = plain("2025-72b3456e-431c-461e-a61e-22a4847b2a46");
  CHECK(amqp_to_zmq.process(b, back2).reason == "loop_id");
  // The same direction seeing an id twice is not a loop.
  Message again = plain("2024-72b3456e-431c-461e-a61e-22a4847b2a46");
  CHECK(zmq_to_amqp.process(a, again).kind == Verdict::Kind::Pass);
  // The other way round too.
  Message from_amqp = plain("aaaa");
  REQUIRE(amqp_to_zmq.process(b, from_amqp).kind == Verdict::Kind::Pass);
  Message echoed = plain("2024-aaaa");
  CHECK(zmq_to_amqp.process(a, echoed).reason == "loop_id");

  // Another window group does not see these ids.
  LoopGuard unrelated = makeGuardIn("ids-elsewhere");
  sytest::FakeContext c("amqp-to-zmq");
  REQUIRE(unrelated.start(c).isOk());
  Message m3 = plain("72b3456e-431c-461e-a61e-22a4847b2a46");
  CHECK(unrelated.process(c, m3).kind == Verdict::Kind::Pass);
}

TEST_CASE("loop-guard: the id window is bounded") {
  LoopGuard one = makeGuardIn("bounded");
  LoopGuard two = makeGuardIn("bounded");
  sytest::FakeContext a("a");
  sytest::FakeContext b("b");
  REQUIRE(one.start(a).isOk());
  REQUIRE(two.start(b).isOk());
  for (const char *id : {"1", "2", "3", "4"}) {  // window is 3: "1" falls out
    Message m = plain(id);
    REQUIRE(one.process(a, m).kind == Verdict::Kind::Pass);
  }
  CHECK(plugins::IdWindowGroup::get("bounded")->size("a") == 3);
  Message oldest = plain("1");
  CHECK(two.process(b, oldest).kind == Verdict::Kind::Pass);
  Message newest = plain("4");
  CHECK(two.process(b, newest).reason == "loop_id");
}

TEST_CASE("loop-guard: stripYearPrefix") {
  CHECK(plugins::stripYearPrefix("2019-72b3") == "72b3");
  CHECK(plugins::stripYearPrefix("72b3") == "72b3");
  CHECK(plugins::stripYearPrefix("20a9-x") == "20a9-x");
  CHECK(plugins::stripYearPrefix("2019-") == "2019-");
}
