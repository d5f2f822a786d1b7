// SPDX-License-Identifier: MIT
#include <doctest/doctest.h>

#include "switchyard/message.hpp"

using switchyard::Message;

TEST_CASE("metadata set, replace, get and erase") {
  Message m;
  CHECK_FALSE(m.getMeta("fedmsg.envelope").has_value());
  m.setMeta("fedmsg.envelope", "{\"a\":1}");
  m.setMeta("amqp.redelivered", "true");
  REQUIRE(m.getMeta("fedmsg.envelope").has_value());
  CHECK(*m.getMeta("fedmsg.envelope") == "{\"a\":1}");
  m.setMeta("fedmsg.envelope", "{}");
  CHECK(*m.getMeta("fedmsg.envelope") == "{}");
  CHECK(m.meta.size() == 2);
  CHECK(m.eraseMeta("fedmsg.envelope"));
  CHECK_FALSE(m.eraseMeta("fedmsg.envelope"));
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
