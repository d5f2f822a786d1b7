// SPDX-License-Identifier: MIT
//
// Tests of topic-prefix with the INSTALLED test kit: the built plugin is loaded through
// its three entry points. A decoded fedmsg message whose topic the filter changes must no
// longer carry its old envelope (Message::setTopic() drops it), so no sink can send the
// old signed bytes under the new topic.
//
//   test_topic_prefix PATH/switchyard-filter-topic-prefix.so
#include <cstdio>
#include <string>

#include "switchyard/fedmsg.hpp"
#include "switchyard/testkit.hpp"

namespace {

using namespace switchyard;

int failures = 0;

void check(bool ok, const std::string &what) {
  std::printf("%s %s\n", ok ? "ok  " : "FAIL", what.c_str());
  failures += ok ? 0 : 1;
}

}  // namespace

int main(int argc, char **argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s PLUGIN.so\n", argv[0]);
    return 2;
  }
  auto h = testkit::Harness::load(argv[1], R"({"prefix":"org.example."})");

  // A message decoded from the wire carries its envelope.
  const std::string topic = "org.fedoraproject.prod.a.b";
  const std::string wire = R"({"i":1,"msg":{"n":1},"msg_id":"2026-6f1c8a52-2f0e-4d53-9a59-0b5c2f6c2b47",)"
                           R"("timestamp":1767225600,"topic":"org.fedoraproject.prod.a.b","username":"u"})";
  Message decoded;
  auto res = fedmsg::decode(topic, wire, decoded);
  check(res.ok(), "the fedmsg envelope decodes (" + res.reason + " " + res.detail + ")");
  check(decoded.envelope() != nullptr, "the decoded message carries its envelope");

  auto r = h.process(std::move(decoded));
  check(r.verdict.kind == Verdict::Kind::Pass, "passed");
  check(r.message.topic() == "org.example." + topic, "the topic is prefixed: " + r.message.topic());
  check(r.message.envelope() == nullptr, "the old envelope is gone with the old topic");
  check(r.message.body() == R"({"n":1})", "the body is kept");

  // Already prefixed: left alone, envelope and all (skip_prefixed defaults to true).
  Message kept("org.example.c", "{}");
  auto r2 = h.process(std::move(kept));
  check(r2.message.topic() == "org.example.c", "an already prefixed topic is left alone");
  check(h.counter("topics_prefixed") == 1, "topics_prefixed == 1");

  std::printf("%s\n", failures == 0 ? "all checks passed" : "some checks FAILED");
  return failures == 0 ? 0 : 1;
}
