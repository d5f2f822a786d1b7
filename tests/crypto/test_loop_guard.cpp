// SPDX-License-Identifier: MIT
//
// loop-guard (username marker, provenance header, id window) and x509 helpers.
#include <doctest/doctest.h>

#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "crypto_fixture.hpp"

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
