// SPDX-License-Identifier: MIT
//
// What the signer, verifier and loop-guard tests share: one PKI made with openssl at test
// time, factories made directly (no loader), a host of the tests' own, and helpers that
// sign with the Python side (pyhelper.py) as fedmsg's x509 backend does.
#pragma once

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

namespace sycrypto {


inline const std::string kTopic = "org.fedoraproject.dev.interop.test";

/// One PKI for the whole run (key generation is slow).
inline const sytest::TempDir &pki() {
  static sytest::TempDir dir;
  static bool made = [] {
    auto r = sytest::run(sytest::pyHelper() + " pki '" + dir.path() + "'");
    REQUIRE_MESSAGE(r.status == 0, "pyhelper.py pki failed");
    return true;
  }();
  (void)made;
  return dir;
}

inline std::string path(const std::string &name) { return pki().file(name); }

inline std::string quote(std::string_view s) {
  std::string out;
  json::writeAsciiString(s, out);
  return out;
}

/// The engine's Host, as far as plugins use it: the test kit's (objects shared under a key).
using FakeHost = switchyard::testkit::FakeHost;

inline FakeHost &host() {
  static FakeHost h;
  return h;
}

inline sdk::Config config(const std::string &json) { return sdk::Config(json, nullptr, "test", &host()); }

/// A signer's factory, as the core makes one per configured signer.
inline std::unique_ptr<SignerFactory> makeSignerFactory(const std::string &who = "good") {
  return std::make_unique<SignerFactory>(config("{\"cert_file\":" + quote(path(who + ".crt")) + ",\"key_file\":" +
                                                quote(path(who + ".key")) + ",\"username\":\"amqp-bridge\"}"));
}

/// One instance of a factory of its own (the instance keeps what it shares alive).
inline std::unique_ptr<Signer> makeSigner(const std::string &who = "good") { return makeSignerFactory(who)->make(); }

struct VerifierOptions {
  std::string crl = "crl.pem";  ///< "" for none
  std::string policy = "{\"" + kTopic + "\":[\"good.example.org\"]}";
  bool nitpicky = true;
  bool allow_unsigned = false;
  std::string crl_path;  ///< overrides crl when set
};

inline std::unique_ptr<VerifierFactory> makeVerifierFactory(const VerifierOptions &o = {}) {
  std::string crl = !o.crl_path.empty() ? quote(o.crl_path) : o.crl.empty() ? "null" : quote(path(o.crl));
  return std::make_unique<VerifierFactory>(config("{\"ca_file\":" + quote(path("ca.crt")) + ",\"crl_file\":" + crl +
                                           ",\"routing_policy\":" + o.policy + ",\"nitpicky\":" +
                                           (o.nitpicky ? "true" : "false") + ",\"allow_unsigned\":" +
                                           (o.allow_unsigned ? "true" : "false") + ",\"auth_level\":-1}"));
}

inline std::unique_ptr<Verifier> makeVerifier(const VerifierOptions &o = {}) { return makeVerifierFactory(o)->make(); }

/// An unsigned envelope as a fedmsg publisher would send it (not canonical on purpose).
inline std::string unsignedEnvelope(const std::string &topic = kTopic) {
  return "{\"topic\": " + quote(topic) +
         ", \"i\": 7, \"timestamp\": 1700000000.25, \"username\": \"apache\", "
         "\"msg_id\": \"2024-5e7b7d8a-0000-4000-8000-000000000042\", "
         "\"msg\": {\"text\": \"h\\u00e9llo \\ud83d\\ude00 \\u2028\", \"n\": 1.50, \"big\": 123456789012345678901234567890, "
         "\"f\": 1e16, \"z\": [], \"a\": {}}}";
}

/// A Message as zmq-sub produces it from frames [topic, envelope].
inline Message fromWire(const std::string &envelope, const std::string &frame_topic = kTopic) {
  Message m;
  fedmsg::Result r = fedmsg::decode(frame_topic, envelope, m);
  REQUIRE_MESSAGE(r.ok(), r.reason << ": " << r.detail);
  return m;
}

/// A Message carrying @p envelope without going through the codec (for envelopes the codec
/// itself would refuse).
inline Message rawEnvelope(const std::string &envelope, const std::string &topic = kTopic) {
  Message m;
  m.setTopic(topic);
  auto wire = std::make_shared<fedmsg::WireEnvelope>();  // not decoded: fields left empty
  wire->text = envelope;
  fedmsg::attach(m, std::move(wire));
  return m;
}

inline std::string pySign(const std::string &who, const std::string &envelope, bool oneline = false) {
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

inline VerifyResult verify(Verifier &v, Message m, sytest::FakeContext &ctx) {
  Verdict verdict = v.process(ctx, m);
  return {verdict.kind, verdict.reason};
}

inline VerifyResult verify(Verifier &v, Message m) {
  sytest::FakeContext ctx;
  REQUIRE(v.start(ctx).isOk());
  return verify(v, std::move(m), ctx);
}

/// A started verifier (nitpicky off, empty policy) whose CRL is the file @p crl, filled with
/// the empty CRL; a test replaces the file to revoke.
inline std::unique_ptr<Verifier> startedVerifierWithCrlFile(const std::string &crl, sytest::FakeContext &ctx) {
  sytest::writeFile(crl, sytest::readFile(path("crl-empty.pem")));
  VerifierOptions o;
  o.crl_path = crl;
  o.nitpicky = false;
  o.policy = "{}";
  auto verifier = makeVerifier(o);
  REQUIRE(verifier->start(ctx).isOk());
  return verifier;
}

inline bool passes(const VerifyResult &o) { return o.kind == Verdict::Kind::Pass; }

inline void checkWrapped76(std::string_view field) {
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


}  // namespace sycrypto
using namespace sycrypto;
