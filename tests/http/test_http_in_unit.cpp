// SPDX-License-Identifier: MIT
//
// http-in's pure pieces (transports/http): the senders' topic rules (dotted prefixes and
// globs), the listen address, loopback detection, the x-ndjson line split, and the message
// object's checks with the reason each refusal gives.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <string>

#include "http_in_body.hpp"
#include "http_in_config.hpp"

using namespace switchyard;
using namespace switchyard::httpin;

TEST_CASE("topic rules: a dotted prefix or a glob") {
  TopicRule prefix{"org.example.ci", false};
  CHECK(prefix.matches("org.example.ci"));
  CHECK(prefix.matches("org.example.ci.build.done"));
  CHECK_FALSE(prefix.matches("org.example.cix"));
  CHECK_FALSE(prefix.matches("org.example"));
  CHECK_FALSE(prefix.matches("xorg.example.ci"));
  TopicRule dotted{"org.example.", false};
  CHECK(dotted.matches("org.example.a"));
  TopicRule glob{"org.*.tag", true};
  CHECK(glob.matches("org.buildsys.tag"));
  CHECK(glob.matches("org.a.b.tag"));  // '*' crosses dots
  CHECK_FALSE(glob.matches("org.buildsys.tag.x"));
  TopicRule all{"*", true};
  CHECK(all.matches("anything.at.all"));
  Sender s;
  s.topics = {prefix, glob};
  CHECK(s.allows("org.example.ci.x"));
  CHECK(s.allows("org.koji.tag"));
  CHECK_FALSE(s.allows("org.other"));
}

TEST_CASE("listen: ADDR:PORT, IPv6 in brackets") {
  std::string host, err;
  int port = 0;
  CHECK(parseListen("127.0.0.1:8080", host, port, err));
  CHECK(host == "127.0.0.1");
  CHECK(port == 8080);
  CHECK(parseListen("[::1]:8443", host, port, err));
  CHECK(host == "::1");
  CHECK(port == 8443);
  CHECK_FALSE(parseListen("127.0.0.1", host, port, err));
  CHECK(err.find("is not ADDR:PORT") != std::string::npos);
  CHECK_FALSE(parseListen("::1:8443", host, port, err));
  CHECK(err.find("in brackets") != std::string::npos);
  CHECK_FALSE(parseListen("0.0.0.0:0", host, port, err));
  CHECK_FALSE(parseListen("0.0.0.0:65536", host, port, err));
  CHECK_FALSE(parseListen("0.0.0.0:8x", host, port, err));
  CHECK(err.find("from 1 to 65535") != std::string::npos);
}

TEST_CASE("loopback addresses") {
  CHECK(isLoopback("127.0.0.1"));
  CHECK(isLoopback("127.1.2.3"));
  CHECK(isLoopback("::1"));
  CHECK(isLoopback("localhost"));
  CHECK_FALSE(isLoopback("0.0.0.0"));
  CHECK_FALSE(isLoopback("::"));
  CHECK_FALSE(isLoopback("10.0.0.1"));
  CHECK_FALSE(isLoopback("example.org"));
}

TEST_CASE("x-ndjson: non-blank lines with their numbers, CRLF accepted") {
  auto lines = splitLines("{\"a\":1}\r\n\n  \n{\"b\":2}\n{\"c\":3}");
  REQUIRE(lines.size() == 3);
  CHECK(lines[0].number == 1);
  CHECK(lines[0].text == "{\"a\":1}");
  CHECK(lines[1].number == 4);
  CHECK(lines[2].number == 5);
  CHECK(lines[2].text == "{\"c\":3}");
  CHECK(splitLines("").empty());
  CHECK(splitLines("\n \n").empty());
}

TEST_CASE("message objects: what is taken, and each refusal's reason") {
  Message m;
  std::string err;
  REQUIRE(parseMessage(R"({"topic":"a.b","body":{"x": [1, 2]},"headers":{"h":"v"},"id":"2026-x"})", m, err));
  CHECK(m.topic() == "a.b");
  CHECK(m.body() == R"({"x":[1,2]})");
  CHECK(m.headers() == R"({"h":"v"})");
  CHECK(m.id() == "2026-x");
  CHECK(m.timestampMs() > 0);
  REQUIRE(parseMessage(R"({"topic":"a","body":{}})", m, err));
  CHECK(m.headers() == "{}");
  CHECK(m.id().size() == 41);  // YEAR-UUID
  CHECK(m.id()[4] == '-');
  struct Bad {
    const char *text;
    const char *reason;
  } bad[] = {
      {"{", "not valid JSON at offset 1"},
      {"[]", "must be a JSON object"},
      {R"({"body":{}})", "\"topic\" must be a non-empty string"},
      {R"({"topic":"","body":{}})", "\"topic\" must be a non-empty string"},
      {R"({"topic":"a b","body":{}})", "without spaces"},
      {R"({"topic":"a"})", "\"body\" is missing"},
      {R"({"topic":"a","body":"text"})", "\"body\" must be a JSON object"},
      {R"({"topic":"a","body":{},"headers":[]})", "\"headers\" must be a JSON object"},
      {R"({"topic":"a","body":{},"id":""})", "\"id\" must be a non-empty string"},
      {R"({"topic":"a","body":{},"msg":{}})", "unknown field \"msg\""},
  };
  for (const auto &b : bad) {
    CAPTURE(b.text);
    CHECK_FALSE(parseMessage(b.text, m, err));
    CHECK(err.find(b.reason) != std::string::npos);
  }
  // Nesting deeper than 512 levels is refused, never a crash (1 MiB of '[' would overflow
  // the stack when the body is serialised again); brackets inside strings do not count.
  std::string deep = R"({"topic":"a","body":{"d":)" + std::string(100000, '[') + std::string(100000, ']') + "}}";
  CHECK_FALSE(parseMessage(deep, m, err));
  CHECK(err == "nested deeper than 512 levels");
  std::string ok = R"({"topic":"a","body":{"d":)" + std::string(510, '[') + std::string(510, ']') +
                   R"(,"s":"[[[[\\\"{{{{"}})";
  CHECK(parseMessage(ok, m, err));
}

TEST_CASE("answers") {
  std::vector<LineResult> results{{1, "i1", "delivered", ""}, {2, "i2", "dropped", "loop_header"}};
  CHECK(responseJson("refused", "dropped", "why", {}, false, &results) ==
        R"({"status":"refused","error":"dropped","detail":"why","results":[{"line":1,"id":"i1","outcome":"delivered"},)"
        R"({"line":2,"id":"i2","outcome":"dropped","reason":"loop_header"}]})"
        "\n");
  CHECK(responseJson("accepted", {}, {}, {"a"}, true) == "{\"status\":\"accepted\",\"id\":\"a\",\"ids\":[\"a\"]}\n");
}
