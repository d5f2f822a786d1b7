// SPDX-License-Identifier: MIT
//
// fedmsg::parseEnvelope() takes a fast path (json::scanCanonicalObject) for envelopes that
// are already canonical, which is how fedmsg publishers send them, and RapidJSON's SAX
// reader for everything else. Both must give the same answer: each generated envelope is
// decoded as canonical text and again with one blank after the opening brace (which only
// the SAX path accepts); the result, the reason and every field must be equal.
#include <doctest/doctest.h>

#include <random>
#include <string>
#include <vector>

#include "switchyard/fedmsg.hpp"
#include "switchyard/json.hpp"

namespace fm = switchyard::fedmsg;
namespace sj = switchyard::json;

namespace {

std::string spaced(const std::string &canonical) { return "{ " + canonical.substr(1); }

bool fastPath(const std::string &text) {
  std::vector<sj::RawMember> m;
  sj::ParseLimits pl;
  pl.max_depth = fm::Limits{}.max_depth;
  pl.max_integer_digits = static_cast<std::size_t>(-1);
  return sj::scanCanonicalObject(text, m, pl);
}

void compare(const std::string &text) {
  INFO(text);
  fm::Envelope a;
  fm::Envelope b;
  const std::string other = spaced(text);
  REQUIRE_FALSE(fastPath(other));
  fm::Result ra = fm::parseEnvelope(text, a);
  fm::Result rb = fm::parseEnvelope(other, b);
  REQUIRE(ra.reason == rb.reason);
  if (!ra.ok()) {
    CHECK(ra.detail == rb.detail);
    return;
  }
  CHECK(a.topic == b.topic);
  CHECK(a.msg_id == b.msg_id);
  CHECK(a.msg == b.msg);  // raw spans: the same bytes, the texts differ only before them
  CHECK(a.headers == b.headers);
  CHECK(a.has_username == b.has_username);
  CHECK(a.username == b.username);
  CHECK(a.i == b.i);
  CHECK(a.timestamp == b.timestamp);
  CHECK(a.timestamp_ms == b.timestamp_ms);
}

}  // namespace

TEST_CASE("parseEnvelope: the canonical fast path and the SAX path agree") {
  std::mt19937 rng(424242);
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<unsigned>(n)); };
  auto str = [&](std::string s) { return sj::Value::fromString(std::move(s)); };
  const std::vector<std::string> texts = {"org.fedoraproject.prod.git.receive", "", "caf\xc3\xa9 \"q\" \\ \n\t\x01",
                                          "\xf0\x9f\x98\x80 astral", "2026-6f1c-\xe2\x80\xa8"};
  int fast = 0;
  for (int n = 0; n < 4000; ++n) {
    sj::Value env = sj::Value::object();
    auto any = [&]() -> sj::Value {
      switch (pick(7)) {
        case 0: return sj::Value::null();
        case 1: return sj::Value::fromInt(pick(2000) - 1000);
        case 2: return sj::Value::fromDouble(1.7e9 + pick(1000000) / 1000.0);
        case 3: return sj::Value::fromBool(pick(2) == 0);
        case 4: return sj::Value::array();
        case 5: {
          sj::Value o = sj::Value::object();
          o.set("k", str(texts[static_cast<std::size_t>(pick(static_cast<int>(texts.size())))]));
          return o;
        }
        default: return str(texts[static_cast<std::size_t>(pick(static_cast<int>(texts.size())))]);
      }
    };
    // Mostly well-formed envelopes, each member sometimes missing or of another type.
    if (pick(20) != 0) env.set("topic", pick(10) != 0 ? str(texts[static_cast<std::size_t>(pick(5))]) : any());
    if (pick(20) != 0) env.set("msg_id", pick(10) != 0 ? str("2026-" + std::to_string(n)) : any());
    if (pick(20) != 0) env.set("msg", any());
    if (pick(2) == 0) env.set("headers", any());
    if (pick(2) == 0) env.set("username", pick(3) != 0 ? str(texts[static_cast<std::size_t>(pick(5))]) : any());
    if (pick(2) == 0) env.set("i", pick(3) != 0 ? sj::Value::fromInt(pick(100) - 10) : any());
    if (pick(2) == 0) env.set("timestamp", pick(3) != 0 ? any() : sj::Value::fromInt(1'700'000'000 + n));
    if (pick(4) == 0) env.set("signature", str("c2ln\\nbmF0dXJl"));
    const std::string text = sj::canonical(env);
    if (fastPath(text)) {
      ++fast;
    }
    compare(text);
  }
  MESSAGE(fast << " of 4000 envelopes took the fast path");
  CHECK(fast == 4000);  // canonical text with plain keys and finite numbers: always
}

TEST_CASE("parseEnvelope: the fast path keeps the codec's limits") {
  fm::Limits limits;
  limits.max_depth = 3;
  fm::Envelope e;
  CHECK(fm::parseEnvelope("{\"msg\":[[]],\"msg_id\":\"x\",\"topic\":\"t\"}", e, limits).ok());
  CHECK(fm::parseEnvelope("{\"msg\":[[[]]],\"msg_id\":\"x\",\"topic\":\"t\"}", e, limits).reason == "too_deep");
  limits.max_bytes = 10;
  CHECK(fm::parseEnvelope("{\"msg\":[],\"msg_id\":\"x\",\"topic\":\"t\"}", e, limits).reason == "oversize");
  // Integers of any length are numbers to the codec on both paths.
  std::string big = "{\"i\":" + std::string(5000, '7') + ",\"msg\":1,\"msg_id\":\"x\",\"topic\":\"t\"}";
  CHECK(fastPath(big));
  REQUIRE(fm::parseEnvelope(big, e).ok());
  CHECK(e.i.size() == 5000);
}
