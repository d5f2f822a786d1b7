// SPDX-License-Identifier: MIT
// Unit tests of the envelope carry across AMQP (transports/amqp/fedmsg_carry.hpp): what
// amqp-publish (carry_envelope) puts in headers and what amqp-consume (restore_envelope)
// rebuilds from them. The end-to-end proof is tests/bridges/test_signature.py.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <string>

#include "switchyard/fedmsg_carry.hpp"
#include "switchyard/json.hpp"

namespace carry = switchyard::amqp::carry;
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
