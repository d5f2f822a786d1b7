// SPDX-License-Identifier: MIT
// Unit tests of the fedmsg envelope codec (core/include/switchyard/fedmsg.hpp).
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <regex>
#include <string>
#include <string_view>
#include <vector>

#include "switchyard/codec_stats.hpp"
#include "switchyard/fedmsg.hpp"
#include "switchyard/json.hpp"
#include "switchyard/parsed.hpp"

using namespace std::string_literals;
using switchyard::Message;
namespace fm = switchyard::fedmsg;
namespace meta = switchyard::meta;

namespace {

constexpr std::string_view kTopic = "org.fedoraproject.dev.demo.hello";

std::string envelope(std::string_view msg, std::string_view extra = {}) {
  std::string s = R"({"i":7,"msg":)";
  s += msg;
  s += R"(,"msg_id":"2024-abc","timestamp":1700000000,"topic":"org.fedoraproject.dev.demo.hello","username":"root")";
  s += extra;
  s += "}";
  return s;
}

std::string reasonOf(std::string_view topic, std::string_view json, fm::Limits limits = {}) {
  Message m;
  auto r = fm::decode(topic, json, m, limits);
  return r.reason;
}

}  // namespace

namespace {
// What decoding read, as the pre-2.0 metadata exposed it (nullopt when absent).
std::optional<std::string_view> envText(const switchyard::Message &m) {
  return m.envelope() ? std::optional<std::string_view>(m.envelope()->text) : std::nullopt;
}
std::optional<std::string_view> envUser(const switchyard::Message &m) {
  return m.envelope() && m.envelope()->fields.has_username
             ? std::optional<std::string_view>(m.envelope()->fields.username)
             : std::nullopt;
}
std::optional<std::string_view> envSeq(const switchyard::Message &m) {
  return m.envelope() && !m.envelope()->fields.i.empty() ? std::optional<std::string_view>(m.envelope()->fields.i)
                                                         : std::nullopt;
}
}  // namespace

TEST_CASE("decode: a plain envelope becomes a message") {
  Message m;
  std::string env = envelope(R"({"k":"v\u00e9"})");
  auto r = fm::decode(kTopic, env, m);
  REQUIRE(r.ok());
  CHECK(m.topic() == kTopic);
  CHECK(m.body() == R"({"k":"v\u00e9"})");
  CHECK(m.headers() == "{}");
  CHECK(m.id() == "2024-abc");
  CHECK(m.timestampMs() == 1700000000000);
  CHECK(envText(m) == std::optional<std::string_view>(env));
  CHECK(envUser(m) == std::optional<std::string_view>("root"));
  CHECK(envSeq(m) == std::optional<std::string_view>("7"));
}

TEST_CASE("decodeEnvelope: an envelope without its topic frame (a replay reply) decodes in one parse") {
  namespace cd = switchyard::codec;
  auto parses = [] {
    const auto &p = cd::parseStats().parses;
    return p[static_cast<std::size_t>(cd::ParseKind::Envelope)].count +
           p[static_cast<std::size_t>(cd::ParseKind::CanonicalScan)].count;
  };
  std::string env = envelope(R"({"k":1})", R"(,"seq_id":12)");
  Message m;
  Message via_topic;
  REQUIRE(fm::decode(kTopic, env, via_topic).ok());
  auto before = parses();
  REQUIRE(fm::decodeEnvelope(env, m).ok());
  CHECK(parses() == before + 1);
  CHECK(m.topic() == kTopic);
  CHECK(m.body() == via_topic.body());
  CHECK(m.id() == via_topic.id());
  CHECK(m.timestampMs() == via_topic.timestampMs());
  CHECK(envText(m) == std::optional<std::string_view>(env));
  for (std::string_view bad : {R"({"msg":{},"topic":"t"})", "[1]", R"({"msg":{},"msg_id":"x","topic":7})"}) {
    CAPTURE(bad);
    auto reason = fm::decodeEnvelope(bad, m).reason;
    CHECK(!reason.empty());
    CHECK(reason == fm::decode("t", bad, m).reason);
  }
  fm::Limits small;
  small.max_bytes = 8;
  CHECK(fm::decodeEnvelope(env, m, small).reason == "oversize");
}

TEST_CASE("decode: body, headers and envelope keep their exact bytes") {
  const std::vector<std::string> bodies = {
      R"({"big": 123456789012345678901234567890, "neg": -98765432109876543210})",
      R"({"f":[1e+16, 1.0, -0.0, 1E2, 0.00001, 3.14159265358979323846]})",
      "{\"raw\":\"v\xC3\xA9 \xE2\x80\xA8 \xF0\x9F\x98\x80\"}",  // non-ASCII and astral, raw UTF-8
      R"({"esc":"\ud83d\ude00 \u00e9 \/ \"q\""})",              // the same, escaped
      "{ \"deep\" : {\"a\":[[[{\"b\":null}]]], \"t\":true,\"f\":false} }",
      R"("just a string")",
      R"([1,2,3])",
      "12345678901234567890123",
  };
  for (const auto &b : bodies) {
    CAPTURE(b);
    std::string env = R"({"headers": {"x": 18446744073709551616, "y": "z"} , "msg" :  )" + b +
                      R"(  , "topic":"t.x","msg_id":"2020-1","timestamp":1.5})";
    Message m;
    auto r = fm::decode("t.x", env, m);
    REQUIRE_MESSAGE(r.ok(), r.reason << ": " << r.detail);
    CHECK(m.body() == b);
    CHECK(m.headers() == R"({"x": 18446744073709551616, "y": "z"})");
    CHECK(m.timestampMs() == 1500);
    CHECK(std::string(*envText(m)) == env);
    CHECK_FALSE(envSeq(m).has_value());
    CHECK_FALSE(envUser(m).has_value());
  }
}

TEST_CASE("decode: timestamp forms") {
  auto ts = [](std::string_view t) {
    Message m;
    std::string env = R"({"msg":{},"msg_id":"a","topic":"t","timestamp":)" + std::string(t) + "}";
    auto r = fm::decode("t", env, m);
    REQUIRE(r.ok());
    return m.timestampMs();
  };
  CHECK(ts("1700000000") == 1700000000000);
  CHECK(ts("1700000000.123") == 1700000000123);
  CHECK(ts("1.7e9") == 1700000000000);
  CHECK(ts("null") == 0);
  CHECK(ts("123456789012345678901234567890") == 0);  // out of range: unknown, not refused
}

TEST_CASE("decode: the sequence counter i") {
  auto seq = [](std::string_view i) {
    Message m;
    std::string env = R"({"msg":{},"msg_id":"a","topic":"t","i":)" + std::string(i) + "}";
    REQUIRE(fm::decode("t", env, m).ok());
    auto v = envSeq(m);
    return v ? std::string(*v) : "<none>"s;
  };
  CHECK(seq("1") == "1");
  CHECK(seq("99999999999999999999999") == "99999999999999999999999");
  CHECK(seq("-1") == "<none>");
  CHECK(seq("1.5") == "<none>");
  CHECK(seq("\"3\"") == "<none>");
}

TEST_CASE("decode: every refusal has its own reason") {
  const std::string good = envelope("{}");
  REQUIRE(reasonOf(kTopic, good).empty());

  SUBCASE("wrong_frame_count") {
    Message m;
    std::array<std::string_view, 1> one{good};
    CHECK(fm::decodeFrames(one, m).reason == "wrong_frame_count");
    std::array<std::string_view, 3> three{kTopic, good, "x"};
    CHECK(fm::decodeFrames(three, m).reason == "wrong_frame_count");
    std::array<std::string_view, 2> two{kTopic, good};
    CHECK(fm::decodeFrames(two, m).ok());
  }
  SUBCASE("oversize") {
    fm::Limits l;
    l.max_bytes = good.size() - 1;
    CHECK(reasonOf(kTopic, good, l) == "oversize");
    l.max_bytes = good.size();
    CHECK(reasonOf(kTopic, good, l).empty());
  }
  SUBCASE("invalid_utf8") {
    CHECK(reasonOf(kTopic, envelope("\"\xC3\x28\"")) == "invalid_utf8");          // bad continuation
    CHECK(reasonOf(kTopic, envelope("\"\xC0\xAF\"")) == "invalid_utf8");          // overlong
    CHECK(reasonOf(kTopic, envelope("\"\xED\xA0\x80\"")) == "invalid_utf8");      // surrogate
    CHECK(reasonOf(kTopic, envelope("\"\xF4\x90\x80\x80\"")) == "invalid_utf8");  // > U+10FFFF
    CHECK(reasonOf(kTopic, envelope("\"\xFF\"")) == "invalid_utf8");
    CHECK(reasonOf(kTopic, envelope("{}") + "\xFF") == "invalid_utf8");           // outside a string
    CHECK(reasonOf("org.\xFF", good) == "invalid_utf8");                          // frame 0
  }
  SUBCASE("invalid_json") {
    CHECK(reasonOf(kTopic, good.substr(0, good.size() - 1)) == "invalid_json");
    CHECK(reasonOf(kTopic, good + "x") == "invalid_json");
    CHECK(reasonOf(kTopic, good + "{}") == "invalid_json");
    CHECK(reasonOf(kTopic, good + std::string(1, '\0') + "x") == "invalid_json");
    CHECK(reasonOf(kTopic, envelope("NaN")) == "invalid_json");
    CHECK(reasonOf(kTopic, envelope("{'a':1}")) == "invalid_json");
    CHECK(reasonOf(kTopic, "") == "invalid_json");
  }
  SUBCASE("not_an_object") {
    CHECK(reasonOf(kTopic, "[1,2]") == "not_an_object");
    CHECK(reasonOf(kTopic, "\"s\"") == "not_an_object");
    CHECK(reasonOf(kTopic, "42") == "not_an_object");
    CHECK(reasonOf(kTopic, "null") == "not_an_object");
  }
  SUBCASE("too_deep") {
    fm::Limits l;
    l.max_depth = 10;
    // The envelope is level 1, so msg may nest 9 levels.
    CHECK(reasonOf(kTopic, envelope(std::string(9, '[') + std::string(9, ']')), l).empty());
    CHECK(reasonOf(kTopic, envelope(std::string(10, '[') + std::string(10, ']')), l) == "too_deep");
    // A hostile depth never reaches the stack: refused at the default limit.
    CHECK(reasonOf(kTopic, envelope(std::string(200000, '[') + std::string(200000, ']'))) == "too_deep");
  }
  SUBCASE("duplicate_keys") {
    CHECK(reasonOf(kTopic, envelope("{}", R"(,"topic":"other")")) == "duplicate_keys");
    CHECK(reasonOf(kTopic, envelope(R"({"a":[{"b":1,"c":{"d":1,"d":2}}]})")) == "duplicate_keys");
    CHECK(reasonOf(kTopic, envelope("{}", R"(,"\u0074opic":"other")")) == "duplicate_keys");
    // The same key in sibling objects is fine.
    CHECK(reasonOf(kTopic, envelope(R"([{"a":1},{"a":2}])")).empty());
  }
  SUBCASE("topic problems") {
    CHECK(reasonOf(kTopic, R"({"msg":{},"msg_id":"a"})") == "missing_topic");
    CHECK(reasonOf("", R"({"msg":{},"msg_id":"a","topic":""})") == "missing_topic");
    CHECK(reasonOf(kTopic, R"({"msg":{},"msg_id":"a","topic":5})") == "bad_topic");
    CHECK(reasonOf("org.fedoraproject.dev.demo.other", good) == "topic_mismatch");
    CHECK(reasonOf("org.fedoraproject.dev.demo.hell", good) == "topic_mismatch");
  }
  SUBCASE("msg_id problems") {
    CHECK(reasonOf("t", R"({"msg":{},"topic":"t"})") == "missing_msg_id");
    CHECK(reasonOf("t", R"({"msg":{},"topic":"t","msg_id":null})") == "missing_msg_id");
    CHECK(reasonOf("t", R"({"msg":{},"topic":"t","msg_id":12})") == "bad_msg_id");
    CHECK(reasonOf("t", R"({"msg":{},"topic":"t","msg_id":""})") == "bad_msg_id");
  }
  SUBCASE("other members") {
    CHECK(reasonOf("t", R"({"topic":"t","msg_id":"a"})") == "missing_msg");
    CHECK(reasonOf("t", R"({"msg":1,"topic":"t","msg_id":"a","headers":[1]})") == "bad_headers");
    CHECK(reasonOf("t", R"({"msg":1,"topic":"t","msg_id":"a","headers":"x"})") == "bad_headers");
    CHECK(reasonOf("t", R"({"msg":1,"topic":"t","msg_id":"a","headers":null})").empty());
    CHECK(reasonOf("t", R"({"msg":1,"topic":"t","msg_id":"a","timestamp":"now"})") == "bad_timestamp");
  }
}

TEST_CASE("validateJson") {
  CHECK(fm::validateJson("{\"a\":1}", {}, true).ok());
  CHECK(fm::validateJson("[1]", {}, false).ok());
  CHECK(fm::validateJson("[1]", {}, true).reason == "not_an_object");
  CHECK(fm::validateJson("{\"a\":1,\"a\":2}").reason == "duplicate_keys");
  CHECK(fm::validateJson("{\"a\":").reason == "invalid_json");
  CHECK(fm::validateJson("\"\xE2\x82\"").reason == "invalid_utf8");
}

TEST_CASE("isValidUtf8") {
  CHECK(fm::isValidUtf8(""));
  CHECK(fm::isValidUtf8("plain"));
  CHECK(fm::isValidUtf8("\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\xF4\x8F\xBF\xBF"));
  CHECK_FALSE(fm::isValidUtf8("\xC3"));
  CHECK_FALSE(fm::isValidUtf8("\xE0\x80\x80"));
  CHECK_FALSE(fm::isValidUtf8("\xED\xBF\xBF"));
  CHECK_FALSE(fm::isValidUtf8("\xF8\x88\x80\x80\x80"));
}

TEST_CASE("appendAsciiJsonString writes what Python's json.dumps writes") {
  std::string out;
  fm::appendAsciiJsonString(out, "a\"b\\c/\b\f\n\r\t\x01\x7F \xE2\x80\xA8\xC3\xA9\xF0\x9F\x98\x80");
  CHECK(out == R"("a\"b\\c/\b\f\n\r\t\u0001\u007f \u2028\u00e9\ud83d\ude00")");
}

TEST_CASE("json::writeString: the one writer, in both of Python's ensure_ascii modes") {
  namespace js = switchyard::json;
  const std::string text = "a\"b\\c/\b\f\n\r\t\x01\x7F \xE2\x80\xA8\xC3\xA9\xF0\x9F\x98\x80";
  std::string ascii;
  js::writeString(text, ascii);
  CHECK(ascii == R"("a\"b\\c/\b\f\n\r\t\u0001\u007f \u2028\u00e9\ud83d\ude00")");
  std::string same;
  js::writeAsciiString(text, same);
  CHECK(same == ascii);
  // ensure_ascii=False: non-ASCII and DEL stay as they are, controls are still escaped.
  std::string utf8;
  js::writeString(text, utf8, js::Escape::Utf8);
  CHECK(utf8 == "\"a\\\"b\\\\c/\\b\\f\\n\\r\\t\\u0001\x7F \xE2\x80\xA8\xC3\xA9\xF0\x9F\x98\x80\"");
  // Never invalid output: a byte that is not UTF-8 is U+FFFD, an encoded surrogate is escaped.
  std::string bad;
  js::writeString("x\xFFy\xED\xB0\x80", bad, js::Escape::Utf8);
  CHECK(bad == "\"x\xEF\xBF\xBDy\\udc00\"");
  bad.clear();
  js::writeString("x\xFFy", bad);
  CHECK(bad == R"("x\ufffdy")");
  CHECK(fm::isValidUtf8(utf8));
}

TEST_CASE("validateJson and json::parse read with the same rules and the same reasons") {
  namespace js = switchyard::json;
  auto parseReason = [](std::string_view t) {
    std::string reason;
    return js::parse(t, &reason) ? std::string() : reason;
  };
  for (std::string_view t : {"{\"a\":", "[1,]", "{} {}", "\"\xFF\"", "{\"a\":1,\"a\":2}", "[\"\xED\xA0\x80\"]", "01"}) {
    CAPTURE(t);
    CHECK(parseReason(t) == fm::validateJson(t).reason);
    CHECK_FALSE(parseReason(t).empty());
  }
  CHECK(parseReason(std::string("{}\0{}", 5)) == "invalid_json");
  CHECK(fm::validateJson(std::string("{}\0{}", 5)).reason == "invalid_json");
  js::ParseLimits small;
  small.max_bytes = 3;
  std::string reason;
  CHECK_FALSE(js::parse("[1,2]", &reason, small));
  CHECK(reason == "oversize");
  fm::Limits lsmall;
  lsmall.max_bytes = 3;
  CHECK(fm::validateJson("[1,2]", lsmall).reason == "oversize");
  // The one difference, on purpose: Python's NaN and Infinity are JSON to parse() only.
  CHECK(parseReason("[NaN]").empty());
  CHECK(fm::validateJson("[NaN]").reason == "invalid_json");
}

TEST_CASE("codec counters: one count per parse and per serialisation, by kind") {
  namespace cd = switchyard::codec;
  auto parses = [](cd::ParseKind k) { return cd::parseStats().parses[static_cast<std::size_t>(k)].count; };
  auto sers = [](cd::SerialiseKind k) { return cd::parseStats().serialisations[static_cast<std::size_t>(k)].count; };
  CHECK(cd::parseStats().parses[0].kind == "envelope");
  CHECK(cd::kindName(cd::SerialiseKind::Canonical) == "canonical");

  auto env0 = parses(cd::ParseKind::Envelope);
  auto scan0 = parses(cd::ParseKind::CanonicalScan);
  Message m;
  REQUIRE(fm::decode(kTopic, envelope(R"({"a":1})"), m).ok());  // canonical: the fast path
  CHECK(parses(cd::ParseKind::Envelope) == env0 + 1);
  REQUIRE(fm::decode(kTopic, envelope(R"({"a": 1})"), m).ok());  // not canonical: RapidJSON
  CHECK(parses(cd::ParseKind::Envelope) == env0 + 2);
  CHECK(parses(cd::ParseKind::CanonicalScan) == scan0);  // the decode's own scan is not counted again

  auto body0 = parses(cd::ParseKind::Body);
  auto json0 = parses(cd::ParseKind::Json);
  REQUIRE(cd::parsedBody(m) != nullptr);
  REQUIRE(cd::parsedBody(m) != nullptr);  // cached: not parsed again
  CHECK(parses(cd::ParseKind::Body) == body0 + 1);
  CHECK(parses(cd::ParseKind::Json) == json0);  // counted once, as "body"

  auto hdr0 = parses(cd::ParseKind::Headers);
  REQUIRE(cd::parsedHeaders(m) != nullptr);  // "{}": no parse
  CHECK(parses(cd::ParseKind::Headers) == hdr0);

  // The decode gives the headers' tree with the message: no second parse for them.
  Message h;
  REQUIRE(fm::decode(kTopic, envelope("{}", R"(,"headers":{"x":[1,"y"]})"), h).ok());
  CHECK(parses(cd::ParseKind::Envelope) == env0 + 3);
  const switchyard::json::Value *tree = cd::parsedHeaders(h);
  REQUIRE(tree != nullptr);
  CHECK(switchyard::json::canonical(*tree) == R"({"x":[1,"y"]})");
  CHECK(parses(cd::ParseKind::Headers) == hdr0);

  auto canon0 = sers(cd::SerialiseKind::Canonical);
  REQUIRE(switchyard::json::canonicalize("{\"b\": 1}"));
  CHECK(parses(cd::ParseKind::Json) == json0 + 1);
  CHECK(sers(cd::SerialiseKind::Canonical) == canon0 + 1);

  auto val0 = parses(cd::ParseKind::Validate);
  CHECK(fm::validateJson("{}").ok());
  CHECK(parses(cd::ParseKind::Validate) == val0 + 1);
}

TEST_CASE("EnvelopeBuilder does not read the body and headers again when the message carries their trees") {
  namespace cd = switchyard::codec;
  auto validations = [] { return cd::parseStats().parses[static_cast<std::size_t>(cd::ParseKind::Validate)].count; };
  auto builds = [] { return cd::parseStats().serialisations[static_cast<std::size_t>(cd::SerialiseKind::Envelope)].count; };
  fm::EnvelopeBuilder b("u");
  Message m;
  m.setTopic("t");
  m.setBody(R"({"x": [1, 2.5]})");
  m.setHeaders(R"({"h": "v"})");
  std::string env;
  auto v0 = validations();
  auto b0 = builds();
  REQUIRE(b.build(m, env).ok());  // text only: body and headers validated
  CHECK(validations() == v0 + 2);
  CHECK(builds() == b0 + 1);
  REQUIRE(cd::parsedBody(m) != nullptr);
  REQUIRE(cd::parsedHeaders(m) != nullptr);
  std::string again;
  REQUIRE(b.build(m, again).ok());  // parsed on entry: not read again
  CHECK(validations() == v0 + 2);
  CHECK(builds() == b0 + 2);
  CHECK(again.find(R"("headers":{"h": "v"},"i":2,"msg":{"x": [1, 2.5]},)") == 1);

  // What validateJson() refuses beyond parse() is still refused with a tree.
  m.setBody("[NaN]");
  REQUIRE(cd::parsedBody(m) != nullptr);
  CHECK(b.build(m, env).reason == "bad_body");
  fm::Limits shallow;
  shallow.max_depth = 2;
  fm::EnvelopeBuilder s("u", shallow);
  m.setBody("[[[1]]]");
  REQUIRE(cd::parsedBody(m) != nullptr);
  CHECK(s.build(m, env).reason == "bad_body");
  m.setBody("[[1]]");
  REQUIRE(cd::parsedBody(m) != nullptr);
  CHECK(s.build(m, env).ok());
}

TEST_CASE("uuid4: version 4, RFC 4122 variant, never repeated") {
  std::regex uuid_re("[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}");
  std::vector<std::string> seen;
  for (int k = 0; k < 1000; ++k) {
    std::string u = fm::uuid4();
    REQUIRE(std::regex_match(u, uuid_re));
    seen.push_back(std::move(u));
  }
  std::sort(seen.begin(), seen.end());
  CHECK(std::adjacent_find(seen.begin(), seen.end()) == seen.end());
}

TEST_CASE("msg_id rules") {
  CHECK(fm::normalizeMsgId("2019-72b3456e", 2026) == "2019-72b3456e");
  CHECK(fm::normalizeMsgId("72b3456e", 2026) == "2026-72b3456e");
  CHECK(fm::normalizeMsgId("201-x", 2026) == "2026-201-x");
  CHECK(fm::normalizeMsgId("2019x", 2026) == "2026-2019x");
  std::regex uuid_re("2026-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}");
  CHECK(std::regex_match(fm::normalizeMsgId("", 2026), uuid_re));
  CHECK(fm::uuid4() != fm::uuid4());
  CHECK(fm::newMsgId().substr(0, 5) == std::to_string(fm::currentUtcYear()) + "-");
}

TEST_CASE("the year-prefix rule: hasYearPrefix and stripYearPrefix") {
  CHECK(fm::hasYearPrefix("2019-72b3"));
  CHECK(fm::hasYearPrefix("2019-"));
  CHECK_FALSE(fm::hasYearPrefix("72b3"));
  CHECK_FALSE(fm::hasYearPrefix("20a9-x"));
  CHECK_FALSE(fm::hasYearPrefix("2019x"));
  CHECK_FALSE(fm::hasYearPrefix("201-x"));
  CHECK_FALSE(fm::hasYearPrefix(""));
  CHECK(fm::stripYearPrefix("2019-72b3") == "72b3");
  CHECK(fm::stripYearPrefix("72b3") == "72b3");
  CHECK(fm::stripYearPrefix("20a9-x") == "20a9-x");
  CHECK(fm::stripYearPrefix("2019-") == "2019-");
  CHECK(fm::stripYearPrefix("2019-2020-x") == "2020-x");  // one prefix only
  CHECK(fm::stripYearPrefix("") == "");
}

TEST_CASE("EnvelopeBuilder builds sorted, compact envelopes with a per-builder counter") {
  fm::EnvelopeBuilder b("amqp-bridge");
  Message m;
  m.setTopic("org.fedoraproject.dev.demo.amqp");
  m.setBody(R"({"hello": "w\u00f6rld", "n": [1, 2], "big": 123456789012345678901234567890})");
  m.setId("25b30d7a-ee29-4258-a5aa-b2adb3eb1deb");
  m.setTimestampMs(1795348400123);
  std::string env;
  REQUIRE(b.build(m, env).ok());
  std::string year = std::to_string(fm::currentUtcYear());
  CHECK(env == R"({"i":1,"msg":)" + m.body() + R"(,"msg_id":")" + year +
                   R"(-25b30d7a-ee29-4258-a5aa-b2adb3eb1deb","timestamp":1795348400,)"
                   R"("topic":"org.fedoraproject.dev.demo.amqp","username":"amqp-bridge"})");
  CHECK(b.lastSeq() == 1);

  // The envelope decodes back to the same message.
  Message back;
  REQUIRE(fm::decode(m.topic(), env, back).ok());
  CHECK(back.body() == m.body());
  CHECK(back.id() == year + "-" + m.id());
  CHECK(envSeq(back) == std::optional<std::string_view>("1"));

  m.setHeaders(R"({"custom": "x"})");
  m.setId("2020-keep");
  m.setTimestampMs(0);
  REQUIRE(b.build(m, env).ok());
  CHECK(env.rfind(R"({"headers":{"custom": "x"},"i":2,"msg":)", 0) == 0);
  CHECK(env.find(R"("msg_id":"2020-keep")") != std::string::npos);
  CHECK(std::regex_search(env, std::regex(R"("timestamp":[0-9]{10},)")));

  m.setHeaders(" { } ");
  REQUIRE(b.build(m, env).ok());
  CHECK(env.rfind(R"({"i":3,)", 0) == 0);

  // Refusals do not consume a sequence number.
  m.setBody("{not json");
  CHECK(b.build(m, env).reason == "bad_body");
  m.setBody("{}");
  m.setHeaders("[1]");
  CHECK(b.build(m, env).reason == "bad_headers");
  m.setHeaders("{}");
  m.setTopic({});
  CHECK(b.build(m, env).reason == "missing_topic");
  m.setTopic("t\xFF");
  CHECK(b.build(m, env).reason == "invalid_utf8");
  CHECK(b.lastSeq() == 3);

  // Non-ASCII in topic and username is escaped the Python way; an empty body is null.
  fm::EnvelopeBuilder u("j\xC3\xB6rg");
  m.setTopic("t.\xC3\xA9");
  m.setBody({});
  m.setId({});
  REQUIRE(u.build(m, env).ok());
  CHECK(env.find(R"("msg":null,)") != std::string::npos);
  CHECK(env.find(R"("topic":"t.\u00e9","username":"j\u00f6rg"})") != std::string::npos);
}

TEST_CASE("the envelope rule: a message keeps its envelope only while unchanged") {
  std::string env = envelope(R"({"a": 1})", R"(,"headers":{"h":1})");
  Message m;
  REQUIRE(fm::decode(kTopic, env, m).ok());
  CHECK((m.envelope() != nullptr));
  Message changed = m;
  changed.setBody(R"({"a":1})");
  CHECK_FALSE((changed.envelope() != nullptr));
  changed = m;
  changed.setTopic("other");
  CHECK_FALSE((changed.envelope() != nullptr));
  changed = m;
  changed.setId("x");
  CHECK_FALSE((changed.envelope() != nullptr));
  changed = m;
  changed.setHeaders("{}");
  CHECK_FALSE((changed.envelope() != nullptr));
  changed = m;
  changed.dropEnvelope();
  CHECK_FALSE((changed.envelope() != nullptr));
}
