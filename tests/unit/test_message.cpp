// SPDX-License-Identifier: MIT
#include <doctest/doctest.h>

#include <memory>
#include <string>

#include "switchyard/fedmsg.hpp"
#include "switchyard/json.hpp"
#include "switchyard/message.hpp"

using switchyard::Message;
namespace fedmsg = switchyard::fedmsg;
namespace json = switchyard::json;

TEST_CASE("metadata set, replace, get and erase") {
  Message m;
  CHECK_FALSE(m.getMeta("zmq.endpoint").has_value());
  m.setMeta("zmq.endpoint", "tcp://a:1");
  m.setMeta("amqp.redelivered", "true");
  REQUIRE(m.getMeta("zmq.endpoint").has_value());
  CHECK(*m.getMeta("zmq.endpoint") == "tcp://a:1");
  m.setMeta("zmq.endpoint", "tcp://b:2");
  CHECK(*m.getMeta("zmq.endpoint") == "tcp://b:2");
  CHECK(m.meta.size() == 2);
  CHECK(m.eraseMeta("zmq.endpoint"));
  CHECK_FALSE(m.eraseMeta("zmq.endpoint"));
  CHECK(m.meta.size() == 1);
}

TEST_CASE("moving a message moves its buffers instead of copying them") {
  Message m;
  m.setBody(std::string(4096, 'x'));
  const char *data = m.body().data();
  Message n = std::move(m);
  CHECK(n.body().data() == data);  // the heap buffer changed owner
}

TEST_CASE("byteSize grows with the payload") {
  Message m;
  auto base = m.byteSize();
  m.setBody(std::string(1000, 'x'));
  m.setMeta("k", std::string(100, 'y'));
  CHECK(m.byteSize() >= base + 1100);
}

namespace {
/// A message decoded from an envelope, so that it carries it.
Message decoded() {
  Message m;
  auto r = fedmsg::decode("org.x", R"({"topic":"org.x","msg":{"a":1},"msg_id":"2026-x","i":1})", m);
  REQUIRE(r.ok());
  REQUIRE(m.envelope() != nullptr);
  return m;
}
}  // namespace

TEST_CASE("the envelope rule: every setter of topic, body, headers and id drops the envelope") {
  {
    Message m = decoded();
    m.setTopic("org.y");
    CHECK(m.envelope() == nullptr);
    CHECK(m.envelopeBytes() == 0);
  }
  {
    Message m = decoded();
    m.setBody("{}");
    CHECK(m.envelope() == nullptr);
  }
  {
    Message m = decoded();
    m.setHeaders("{\"h\":1}");
    CHECK(m.envelope() == nullptr);
  }
  {
    Message m = decoded();
    m.setId("other");
    CHECK(m.envelope() == nullptr);
  }
  {
    Message m = decoded();  // neither the time nor metadata is part of the envelope rule
    m.setTimestampMs(1);
    m.setMeta("amqp.redelivered", "true");
    CHECK(m.envelope() != nullptr);
    CHECK(m.envelopeBytes() > 0);
  }
}

TEST_CASE("fan-out copies share the envelope and the parsed trees; setters drop only their own") {
  Message m = decoded();
  m.cacheParsedBody(std::make_shared<const json::Value>(json::Value::object()));
  m.cacheParsedHeaders(std::make_shared<const json::Value>(json::Value::object()));
  Message copy = m;
  CHECK(copy.envelope() == m.envelope());  // the same object, not a copy
  CHECK(copy.parsedBodyCache() == m.parsedBodyCache());
  copy.setHeaders("{}");
  CHECK(copy.parsedHeadersCache() == nullptr);
  CHECK(copy.parsedBodyCache() != nullptr);  // the body did not change
  copy.setBody("{}");
  CHECK(copy.parsedBodyCache() == nullptr);
  CHECK(m.envelope() != nullptr);  // the original keeps what it had
  CHECK(m.parsedBodyCache() != nullptr);
  CHECK(m.parsedHeadersCache() != nullptr);
}
