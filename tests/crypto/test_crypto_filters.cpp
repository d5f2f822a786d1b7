// SPDX-License-Identifier: MIT
//
// signer and verifier: signing, verification, every rejection, trust reloads. Keys, CA and CRLs are
// made with openssl at test time (pyhelper.py pki); the Python side signs and verifies
// with python3-cryptography exactly as fedmsg's x509 backend does.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "crypto_fixture.hpp"

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
  sytest::FakeContext ctx;
  auto verifier = startedVerifierWithCrlFile(crl, ctx);
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
