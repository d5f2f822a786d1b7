// SPDX-License-Identifier: MIT
// The verifier and replay numbering: an envelope numbered with `seq_id` after it was
// signed (zmq-pub's replay_endpoint, fedmsg's persistent_store) still verifies, on the
// one-pass path (canonical text) and on the tree path (re-serialised text); a numbered
// envelope whose signed part was changed does not.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "../crypto/crypto_fixture.hpp"
#include "switchyard/replay.hpp"

using namespace sycrypto;

TEST_CASE("verifier: a signature verifies once the seq_id added after signing is left out") {
  auto verifier = makeVerifier();
  sytest::FakeContext ctx;
  REQUIRE(verifier->start(ctx).isOk());
  const std::string python = pySign("good", unsignedEnvelope());  // json.dumps' layout: the tree path
  const std::string good = json::canonical(*json::parse(python));  // canonical: the one-pass path
  std::vector<json::RawMember> members;
  REQUIRE(json::scanCanonicalObject(good, members));
  const std::string numbered = *replay::insertSeqId(good, 42);
  REQUIRE(json::scanCanonicalObject(numbered, members));
  CHECK(numbered.find(",\"seq_id\":42,\"signature\":") != std::string::npos);
  CHECK(passes(verify(*verifier, fromWire(numbered), ctx)));
  const std::string numbered_python = *replay::insertSeqId(python, 7);
  REQUIRE_FALSE(json::scanCanonicalObject(numbered_python, members));
  CHECK(passes(verify(*verifier, fromWire(numbered_python), ctx)));
  CHECK(ctx.value("verified") == 2);

  // Numbered, and something signed changed: refused on both paths.
  auto v = json::parse(numbered);
  REQUIRE(v);
  v->set("i", json::Value::fromInt(8));
  const std::string tampered = json::canonical(*v);
  CHECK(verify(*verifier, fromWire(tampered), ctx).reason == "bad_signature");
  CHECK(verify(*verifier, fromWire("{ " + tampered.substr(1)), ctx).reason == "bad_signature");
  // A seq_id inside the signed `msg` is part of what was signed: removing the top-level
  // one only is what makes a numbered envelope verify.
  auto inner = json::parse(good);
  REQUIRE(inner);
  inner->find("msg")->set("seq_id", json::Value::fromInt(1));
  CHECK(verify(*verifier, fromWire(json::canonical(*inner)), ctx).reason == "bad_signature");
  // Signed WITH a seq_id (a publisher that numbers before signing) verifies as it is.
  auto pre = json::parse(unsignedEnvelope());
  REQUIRE(pre);
  pre->set("seq_id", json::Value::fromInt(5));
  CHECK(passes(verify(*verifier, fromWire(pySign("good", json::canonical(*pre))), ctx)));
  CHECK(ctx.value("verified") == 3);
}
