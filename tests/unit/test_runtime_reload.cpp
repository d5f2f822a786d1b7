// SPDX-License-Identifier: MIT
//
// Reload through the embedding API (Engine::reloadString): an unchanged pipeline keeps
// running untouched, a changed one is replaced with nothing left unsettled, a removed one
// drains, and a configuration with a problem changes nothing. The SIGHUP path of the
// command and the broker are tested in tests/amqp/test_reload.py and
// tests/zmq/test_zmq_reload.py.
#include <doctest/doctest.h>

#include "runtime_fixture.hpp"

using namespace rtest;

namespace {
std::string config(bool moving, const char *moving_input, const char *steady_extra = "") {
  std::string text = fmt::format(R"(
version: 1
pipelines:
  steady:
    input: {{type: mem-source-c}}
    outputs: [{{type: mem-sink-b{}}}]
)",
                                 steady_extra);
  if (moving) {
    text += fmt::format(R"(  moving:
    input: {{type: {}}}
    outputs: [{{type: mem-sink-a}}]
)",
                        moving_input);
  }
  return text;
}
}  // namespace

TEST_CASE("reload: unchanged pipelines run on, changed ones are replaced, a bad file changes nothing") {
  Fixture f{.engine = Engine(isolated())};
  f.count = -1;  // forever
  f.end = false;
  f.registerAll();
  SourceLog steady;  // a source of its own: no other pipeline shares its tags
  f.engine.registerSource("mem-source-c", {}, [&](const sdk::Config &) {
    return std::make_unique<MemSource>(steady, -1, false);
  }, true);
  f.engine.loadString(config(true, "mem-source"), "v1.yaml");
  f.engine.start();
  CHECK_FALSE(f.engine.reloadable());  // made from a string: nothing to re-read
  REQUIRE(eventually([&] { return f.engine.counter("steady", "received") > 100 && f.src.submitted > 100; }));

  // A problem anywhere: ConfigError, and everything runs on as it was.
  CHECK_THROWS_AS(f.engine.reloadString(config(true, "mem-source-b", ", bogus: 1"), "bad.yaml"), ConfigError);
  auto before = f.engine.counter("steady", "received");
  CHECK(eventually([&] { return f.engine.counter("steady", "received") > before + 100; }));
  CHECK_FALSE(f.src.intake_stopped);

  // moving changes its input; steady is the same.
  before = f.engine.counter("steady", "received");
  ReloadReport r = f.engine.reloadString(config(true, "mem-source-b"), "v2.yaml");
  CHECK(r.unchanged == std::vector<std::string>{"steady"});
  CHECK(r.changed == std::vector<std::string>{"moving"});
  CHECK(r.added.empty());
  CHECK(r.removed.empty());
  CHECK(r.failed.empty());
  CHECK(r.str() == "1 unchanged (steady), 1 changed (moving), 0 added, 0 removed");
  REQUIRE(eventually([&] { return f.src.stopped.load(); }));  // the old version drained and stopped
  CHECK(f.src.completedCount() == f.src.submitted);           // ... with every message settled
  CHECK(eventually([&] { return f.src_b.submitted > 100; }));  // the new version runs
  CHECK(eventually([&] { return f.engine.counter("steady", "received") > before + 100; }));
  CHECK_FALSE(steady.intake_stopped);  // never stopped: its counters went on from `before`

  // moving goes.
  r = f.engine.reloadString(config(false, ""), "v3.yaml");
  CHECK(r.str() == "1 unchanged (steady), 0 changed, 0 added, 1 removed (moving)");
  REQUIRE(eventually([&] { return f.src_b.stopped.load(); }));
  CHECK(f.src_b.completedCount() == f.src_b.submitted);
  CHECK(f.engine.wait(0ms) == false);  // steady still runs (and the old versions are reaped)
  CHECK_FALSE(steady.stopped);

  CHECK(f.engine.stop());
  CHECK(steady.completedCount() == steady.submitted);
  CHECK(f.engine.counter("steady", "received") == static_cast<std::int64_t>(steady.submitted.load()));
}
