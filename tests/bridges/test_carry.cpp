// SPDX-License-Identifier: MIT
// Unit tests of the envelope carry across AMQP (switchyard/fedmsg_carry.hpp): what
// amqp-publish (carry_envelope) puts in headers and what amqp-consume (restore_envelope)
// rebuilds from them; of the fedora-messaging mapping (switchyard/fedora_messaging.hpp);
// and of the AMQP table <-> JSON tree conversion (transports/amqp/amqp_table.hpp).
// The end-to-end proof is tests/bridges/test_signature.py.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <string>

#include "amqp_table.hpp"
#include "switchyard/fedmsg.hpp"
#include "switchyard/fedmsg_carry.hpp"
#include "switchyard/fedora_messaging.hpp"
#include "switchyard/json.hpp"

namespace carry = switchyard::amqp::carry;
namespace fm = switchyard::fedora_messaging;
namespace fedmsg = switchyard::fedmsg;
namespace json = switchyard::json;

namespace {

// What a delivery looks like on the consuming side: the carry headers merged with other
// AMQP headers (fedora-messaging's, the bridge's), topic, body and message_id.
std::string roundTrip(const std::string &envelope, const std::string &message_id = "some-uuid") {
  std::string headers;
  std::string err;
  REQUIRE(carry::headersFromEnvelope(envelope, headers, err));
  auto h = json::parse(headers);
  REQUIRE(h);
  h->set("fedora_messaging_severity", json::Value::fromInt(20));
  h->set("sent-at", json::Value::fromString("2026-01-01T00:00:00+00:00"));
  h->set("x-switchyard-bridged", json::Value::fromString("zmq-to-amqp"));
  auto env = json::parse(envelope);
  REQUIRE(env);
  std::string body = json::canonical(*env->find("msg"));
  std::string topic(*env->findString("topic"));
  std::string out;
  REQUIRE(carry::envelopeFromHeaders(json::canonical(*h), topic, body, message_id, out, err) == carry::Restore::Ok);
  return out;
}

}  // namespace

TEST_CASE("every envelope key travels once and comes back canonical") {
  const char *cases[] = {
      R"({"crypto":"x509","i":3,"msg":{"k":"v\u00e9"},"msg_id":"2026-a","signature":"c2ln\n","certificate":"Y2VydA==\n","timestamp":1700000000,"topic":"t.a","username":"apache"})",
      R"({"headers":{"f":1.5,"n":3,"x-h":"1"},"i":1,"msg":{},"msg_id":"2026-b","timestamp":1,"topic":"t","username":"u"})",
      R"({"headers":null,"msg":[1,2],"msg_id":"x","topic":"t"})",
      R"({"headers":{},"i":99999999999999999999,"msg":1e-05,"msg_id":"x","timestamp":1700000000.5,"topic":"t"})",
      R"({"msg":{"big":123456789012345678901234567890},"msg_id":"x","seq_id":42,"topic":"t","\u043a":"\ud83d\ude00"})",
  };
  for (const char *c : cases) {
    CAPTURE(c);
    auto canonical = json::canonicalize(c);
    REQUIRE(canonical);
    CHECK(roundTrip(*canonical) == *canonical);
  }
}

TEST_CASE("header layout: own typed headers, the rest in fedmsg_extra, the full id") {
  std::string headers;
  std::string err;
  REQUIRE(carry::headersFromEnvelope(
      R"({"headers":{"a":1},"i":2,"msg":{},"msg_id":"2026-x","timestamp":1.5,"topic":"t","username":"u"})", headers,
      err));
  CHECK(headers ==
        R"({"fedmsg_extra":"{\"headers\":{\"a\":1},\"timestamp\":1.5}","fedmsg_i":2,"fedmsg_msg_id":"2026-x","fedmsg_username":"u"})");
  CHECK_FALSE(carry::headersFromEnvelope(R"({"msg":{},"topic":"t"})", headers, err));  // no msg_id
  CHECK_FALSE(carry::headersFromEnvelope("[1]", headers, err));
}

TEST_CASE("restoring: not carried, the id's source, unusable headers") {
  std::string out;
  std::string err;
  // plain AMQP message: nothing to restore
  CHECK(carry::envelopeFromHeaders(R"({"fedmsg_msg_id":"2026-x","sent-at":"s"})", "t", "{}", "m", out, err) ==
        carry::Restore::NotCarried);
  CHECK(carry::envelopeFromHeaders("not json", "t", "{}", "m", out, err) == carry::Restore::NotCarried);
  // message_id is the id when there is no fedmsg_msg_id
  REQUIRE(carry::envelopeFromHeaders(R"({"fedmsg_i":1})", "t", "{}", "m-1", out, err) == carry::Restore::Ok);
  CHECK(out == R"({"i":1,"msg":{},"msg_id":"m-1","topic":"t"})");
  CHECK(carry::envelopeFromHeaders(R"({"fedmsg_i":"1"})", "t", "{}", "m", out, err) == carry::Restore::Failed);
  CHECK(carry::envelopeFromHeaders(R"({"fedmsg_username":3})", "t", "{}", "m", out, err) == carry::Restore::Failed);
  CHECK(carry::envelopeFromHeaders(R"({"fedmsg_extra":"[1]"})", "t", "{}", "m", out, err) == carry::Restore::Failed);
  CHECK(carry::envelopeFromHeaders(R"({"fedmsg_extra":{"a":1}})", "t", "{}", "m", out, err) ==
        carry::Restore::Failed);
  CHECK(carry::envelopeFromHeaders(R"({"fedmsg_i":1})", "t", "{}", "", out, err) == carry::Restore::Failed);
  CHECK(carry::envelopeFromHeaders(R"({"fedmsg_i":1})", "t", "{", "m", out, err) == carry::Restore::Failed);
  CHECK(carry::isCarryHeader("fedmsg_signature"));
  CHECK(carry::isCarryHeader("fedmsg_msg_id"));
  CHECK_FALSE(carry::isCarryHeader("fedmsg_other"));
}

TEST_CASE("isUuid") {
  CHECK(carry::isUuid("8c1a7b0e-0000-4000-8000-000000000001"));
  CHECK(carry::isUuid("8C1A7B0E-0000-4000-8000-00000000000F"));
  CHECK_FALSE(carry::isUuid("2019-8c1a7b0e-0000-4000-8000-000000000001"));
  CHECK_FALSE(carry::isUuid("8c1a7b0e00004000800000000000000001"));
  CHECK_FALSE(carry::isUuid("8c1a7b0e-0000-4000-8000-00000000000g"));
  CHECK_FALSE(carry::isUuid(""));
}

TEST_CASE("headersFromWire: the decoded envelope gives the same headers as parsing it") {
  const char *cases[] = {
      // canonical: read from the members, nothing parsed again
      R"({"crypto":"x509","i":3,"msg":{"k":"v\u00e9"},"msg_id":"2026-a","signature":"c2ln\n","timestamp":1700000000,"topic":"t.a","username":"apache"})",
      R"({"headers":{"f":1.5,"n":3},"i":1,"msg":{},"msg_id":"2026-b","timestamp":1.5,"topic":"t","username":"u"})",
      R"({"i":99999999999999999999,"msg":1e-05,"msg_id":"x","seq_id":42,"topic":"t","username":3})",
      R"({"i":-1,"msg":[],"msg_id":"x","topic":"t"})",
      // not canonical (spaces, key order): the fallback parses it once
      R"({"topic": "t", "msg_id": "x", "msg": {}, "i": 2, "crypto": "rsa", "headers": {"b": 1, "a": 2}})",
  };
  for (const char *c : cases) {
    CAPTURE(c);
    fedmsg::Result r;
    auto wire = fedmsg::parseWire(c, r);
    REQUIRE(wire);
    std::string expected;
    std::string err;
    REQUIRE(carry::headersFromEnvelope(c, expected, err));
    json::Value got;
    REQUIRE(carry::headersFromWire(*wire, got, err));
    CHECK(json::canonical(got) == expected);
  }
}

TEST_CASE("envelopeValueFromHeaders: the trees give what the text version gives") {
  auto headers = json::parse(R"({"fedmsg_i":1,"fedmsg_extra":"{\"seq_id\":3}","x":"y"})");
  auto body = json::parse(R"({"k":[1,2.5,"s"]})");
  REQUIRE(headers);
  REQUIRE(body);
  json::Value env;
  std::string err;
  REQUIRE(carry::envelopeValueFromHeaders(*headers, "t", *body, "m-1", env, err) == carry::Restore::Ok);
  std::string text;
  REQUIRE(carry::envelopeFromHeaders(json::canonical(*headers), "t", json::canonical(*body), "m-1", text, err) ==
          carry::Restore::Ok);
  CHECK(json::canonical(env) == text);
  CHECK(text == R"({"i":1,"msg":{"k":[1,2.5,"s"]},"msg_id":"m-1","seq_id":3,"topic":"t"})");
  auto plain = json::parse(R"({"sent-at":"s"})");
  CHECK(carry::envelopeValueFromHeaders(*plain, "t", *body, "m", env, err) == carry::Restore::NotCarried);
}

TEST_CASE("fedora-messaging properties: defaults, what the message has, the carried headers win") {
  auto p = fm::publishProperties(nullptr, nullptr, "id-1", "2026-01-01T00:00:00+00:00");
  CHECK(p.content_type == "application/json");
  CHECK(p.content_encoding == "utf-8");
  CHECK(p.delivery_mode == 2);
  CHECK(p.message_id == "id-1");
  CHECK_FALSE(p.priority);
  CHECK(json::canonical(p.headers) ==
        R"({"fedora_messaging_schema":"base.message","fedora_messaging_schema_package":"fedora_messaging",)"
        R"("fedora_messaging_severity":20,"priority":0,"sent-at":"2026-01-01T00:00:00+00:00"})");

  auto h = json::parse(R"({"fedora_messaging_schema":"anitya.x","priority":4,"fedmsg_i":"mine","sent-at":"then"})");
  auto carried = json::parse(R"({"fedmsg_i":7})");
  p = fm::publishProperties(&*h, &*carried, "id-2", "now");
  REQUIRE(p.priority);
  CHECK(*p.priority == 4);
  CHECK(p.headers.findString("fedora_messaging_schema") == "anitya.x");
  CHECK(p.headers.findString("sent-at") == "then");
  CHECK(p.headers.find("fedmsg_i")->text == "7");
  for (const char *bad : {R"({"priority":300})", R"({"priority":-1})", R"({"priority":"4"})", R"({"priority":1.5})"}) {
    CAPTURE(bad);
    auto b = json::parse(bad);
    p = fm::publishProperties(&*b, nullptr, "x", "now");
    CHECK_FALSE(p.priority);
    CHECK(json::canonical(*p.headers.find("priority")) == json::canonical(*b->find("priority")));  // kept as is
  }
  CHECK(fm::sentAt(0) == "1970-01-01T00:00:00+00:00");
}

TEST_CASE("fedora-messaging message_id: keep and uuid modes") {
  json::Value full;
  CHECK(fm::messageId("2026-abc", false, full) == "2026-abc");
  CHECK(full.isNull());
  CHECK(carry::isUuid(fm::messageId("", false, full)));
  CHECK(fm::messageId("2019-8C1A7B0E-0000-4000-8000-00000000000F", true, full) ==
        "8c1a7b0e-0000-4000-8000-00000000000f");
  REQUIRE(full.isObject());
  CHECK(full.findString("fedmsg_msg_id") == "2019-8C1A7B0E-0000-4000-8000-00000000000F");
  full = json::Value();
  std::string id = fm::messageId("not-a-uuid", true, full);
  CHECK(carry::isUuid(id));
  CHECK(full.findString("fedmsg_msg_id") == "not-a-uuid");
  full = json::Value();
  CHECK(carry::isUuid(fm::messageId("", true, full)));
  CHECK(full.isNull());
}

TEST_CASE("fedora-messaging routing keys and deliveries") {
  CHECK(fm::routingKey("", "a.b") == "a.b");
  CHECK(fm::routingKey("org.fp..", "a.b") == "org.fp.a.b");
  CHECK(fm::topicOf("org.fp.a.b", "org.fp.") == "a.b");
  CHECK(fm::topicOf("org.fpx.a", "org.fp") == "org.fpx.a");
  CHECK(fm::topicOf("org.fp", "org.fp") == "org.fp");

  switchyard::Message m;
  fm::Delivery d;
  d.routing_key = "p.t";
  d.message_id = "id\xff";  // not UTF-8: no id
  d.timestamp_s = 1700000000;
  d.headers = json::parse(R"({"b":1,"a":"x"})");
  fm::toMessage(std::move(d), "p", m);
  CHECK(m.topic() == "t");
  CHECK(m.id().empty());
  CHECK(m.timestampMs() == 1700000000000);
  CHECK(m.headers() == R"({"a":"x","b":1})");
  REQUIRE(m.parsedHeadersCache());  // the tree travels: nobody parses the headers again
  CHECK(m.parsedHeadersCache()->findString("a") == "x");
}

TEST_CASE("AMQP table <-> JSON tree") {
  auto v = json::parse(
      R"({"s":"é","i":-7,"l":1099511627776,"huge":123456789012345678901234567890,"f":1.5,"g":1e300,)"
      R"("t":true,"n":null,"o":{"a":[1,"b",false]}})");
  REQUIRE(v);
  switchyard::amqp::TableArena arena;
  std::vector<amqp_table_entry_t> entries;
  std::string err;
  REQUIRE(arena.fromJson(*v, entries, err));
  auto back = switchyard::amqp::tableToJson(amqp_table_t{static_cast<int>(entries.size()), entries.data()});
  CHECK(json::canonical(back) ==
        R"({"f":1.5,"g":"1e+300","huge":"123456789012345678901234567890","i":-7,"l":1099511627776,"n":null,)"
        R"("o":{"a":[1,"b",false]},"s":"\u00e9","t":true})");
  auto bad = json::parse("[1]");
  CHECK_FALSE(arena.fromJson(*bad, entries, err));
  auto text = json::parse(R"({"b":[1,2.5,null,{"c":true}],"a":"\u00e9"})");
  CHECK(switchyard::amqp::jsonText(*text) == "{\"a\":\"\xc3\xa9\",\"b\":[1,2.5,null,{\"c\":true}]}");
}
