// SPDX-License-Identifier: MIT
//
// The runtime with in-process plugins (embedding API): acknowledgement and negative
// acknowledgement flow back to the input, fan-out, backpressure with a slow sink, graceful
// drain and the drain timeout, output retries. Filter workers and factories:
// test_runtime_workers.cpp.
#include <doctest/doctest.h>

#include "runtime_fixture.hpp"

using namespace rtest;

TEST_CASE("every delivered message is acknowledged to the input exactly once, in order") {
  Fixture f{.engine = Engine(isolated())};
  f.registerAll();
  f.engine.loadString(R"(
version: 1
pipelines:
  p:
    input: {type: mem-source}
    outputs: [{type: mem-sink-a}]
)");
  f.engine.start();
  REQUIRE(f.engine.wait(30s));
  CHECK(f.engine.stop());
  REQUIRE(f.src.completedCount() == 1000);
  for (auto &[tag, oc] : f.src.completed) {
    CHECK(oc.first == Outcome::Delivered);
  }
  REQUIRE(f.sink_a.ids.size() == 1000);
  for (std::size_t i = 0; i < 1000; ++i) {
    CHECK(f.sink_a.ids[i] == std::to_string(i));  // one input thread: order is kept
  }
  CHECK(f.engine.counter("p", "received") == 1000);
  CHECK(f.engine.counter("p", "sent") == 1000);
  CHECK(f.engine.counter("p", "in_flight") == 0);
  CHECK(f.src.stopped);
}

TEST_CASE("output failures reach the input as retry or reject with their reason") {
  Fixture f{.engine = Engine(isolated())};
  f.beh_a.retry_every = 7;
  f.beh_a.reject_every = 11;
  f.beh_a.drop_every = 13;
  f.beh_a.async = true;
  f.registerAll();
  f.engine.loadString(R"(
version: 1
pipelines:
  p:
    input: {type: mem-source}
    outputs: [{type: mem-sink-a}]
)");
  f.engine.start();
  REQUIRE(f.engine.wait(30s));
  f.engine.stop();
  REQUIRE(f.src.completedCount() == 1000);
  int retry = 0, reject = 0, dropped = 0, delivered = 0;
  for (auto &[n, oc] : f.src.completed) {
    if (n % 7 == 0) {
      CHECK(oc.first == Outcome::Retry);
      CHECK(oc.second == "broker_nack");
      ++retry;
    } else if (n % 11 == 0) {
      CHECK(oc.first == Outcome::Reject);
      CHECK(oc.second == "refused");
      ++reject;
    } else if (n % 13 == 0) {
      CHECK(oc.first == Outcome::Dropped);
      CHECK(oc.second == "unroutable");
      ++dropped;
    } else {
      CHECK(oc.first == Outcome::Delivered);
      ++delivered;
    }
  }
  CHECK(f.engine.counter("p", "failed", "broker_nack") == retry);
  CHECK(f.engine.counter("p", "failed", "refused") == reject);
  CHECK(f.engine.counter("p", "dropped", "unroutable") == dropped);
  CHECK(f.engine.counter("p", "sent") == delivered);
}

TEST_CASE("a filter drop settles the message and is counted per plugin and reason") {
  Fixture f{.engine = Engine(isolated())};
  f.registerAll();
  f.engine.loadString(R"(
version: 1
pipelines:
  p:
    input: {type: mem-source}
    filters: [{type: drop-every, every: 4}]
    outputs: [{type: mem-sink-a}]
)");
  f.engine.start();
  REQUIRE(f.engine.wait(30s));
  f.engine.stop();
  REQUIRE(f.src.completedCount() == 1000);
  for (auto &[n, oc] : f.src.completed) {
    CHECK(oc.first == (n % 4 == 0 ? Outcome::Dropped : Outcome::Delivered));
  }
  CHECK(f.sink_a.count() == 750);
  CHECK(f.engine.counter("p", "dropped", "test_drop") == 250);
  bool found = false;
  for (const auto &s : f.engine.counters()) {
    if (s.name == "dropped" && s.label == "test_drop") {
      CHECK(s.plugin == "filters[0] (drop-every)");
      found = true;
    }
  }
  CHECK(found);
}

TEST_CASE("fan-out: both outputs get every message; the input hears once, the worst outcome") {
  Fixture f{.engine = Engine(isolated())};
  f.beh_b.retry_every = 10;
  f.beh_b.async = true;
  f.registerAll();
  f.engine.loadString(R"(
version: 1
pipelines:
  p:
    input: {type: mem-source}
    outputs: [{type: mem-sink-a}, {type: mem-sink-b}]
)");
  f.engine.start();
  REQUIRE(f.engine.wait(30s));
  f.engine.stop();
  CHECK(f.sink_a.count() == 1000);
  CHECK(f.sink_b.count() == 1000);
  REQUIRE(f.src.completedCount() == 1000);
  for (auto &[n, oc] : f.src.completed) {
    CHECK(oc.first == (n % 10 == 0 ? Outcome::Retry : Outcome::Delivered));
  }
}

TEST_CASE("backpressure: a slow sink bounds what is in flight instead of growing memory") {
  Fixture f{.engine = Engine(isolated())};
  f.count = 3000;
  f.beh_a.delay = 200us;
  f.registerAll();
  f.engine.loadString(R"(
version: 1
settings: {queue_max_messages: 50}
pipelines:
  p:
    input: {type: mem-source}
    outputs: [{type: mem-sink-a}]
)");
  f.engine.start();
  REQUIRE(f.engine.wait(60s));
  f.engine.stop();
  CHECK(f.sink_a.count() == 3000);
  CHECK(f.src.completedCount() == 3000);
  // Queue (50) + the batch the sink thread holds (at most 128) + the one being submitted.
  CHECK(f.src.max_in_flight.load() <= 50 + 128 + 1);
  CHECK(f.src.max_in_flight.load() >= 50);  // the queue did fill up: the bound was exercised
}

TEST_CASE("byte bound: a queue limited in bytes holds back the input too") {
  Fixture f{.engine = Engine(isolated())};
  f.count = 2000;
  f.beh_a.delay = 100us;
  f.registerAll();
  f.engine.loadString(R"(
version: 1
settings: {queue_max_messages: 100000, queue_max_bytes: 4096}
pipelines:
  p:
    input: {type: mem-source}
    outputs: [{type: mem-sink-a}]
)");
  f.engine.start();
  REQUIRE(f.engine.wait(60s));
  f.engine.stop();
  CHECK(f.sink_a.count() == 2000);
  // A message here is ~100 bytes of Message overhead plus its strings: 4 KiB holds a few dozen.
  CHECK(f.src.max_in_flight.load() <= 4096 / sizeof(Message) + 128 + 2);
}

TEST_CASE("graceful stop: intake stops, in-flight messages drain and are acknowledged") {
  Fixture f{.engine = Engine(isolated())};
  f.count = -1;  // endless
  f.end = false;
  f.beh_a.async = true;
  f.registerAll();
  f.engine.loadString(R"(
version: 1
settings: {drain_timeout: 10}
pipelines:
  p:
    input: {type: mem-source}
    outputs: [{type: mem-sink-a}]
)");
  f.engine.start();
  REQUIRE(eventually([&] { return f.sink_a.count() > 500; }));
  f.engine.requestStop();
  REQUIRE(f.engine.wait(20s));
  CHECK(f.engine.stop());
  CHECK(f.src.intake_stopped);
  CHECK(f.sink_a.flushed);
  CHECK(f.src.stopped);
  // Every message the pipeline accepted was settled, and all of them were delivered.
  CHECK(f.src.completedCount() == f.src.submitted.load());
  for (auto &[n, oc] : f.src.completed) {
    CHECK(oc.first == Outcome::Delivered);
  }
  CHECK(f.engine.counter("p", "in_flight") == 0);
}

TEST_CASE("drain timeout: messages a sink never confirms come back as retry 'shutdown'") {
  Fixture f{.engine = Engine(isolated())};
  f.count = 20;
  f.end = false;
  f.beh_a.never_confirm = true;
  f.registerAll();
  f.engine.loadString(R"(
version: 1
settings: {drain_timeout: 0.3}
pipelines:
  p:
    input: {type: mem-source}
    outputs: [{type: mem-sink-a}]
)");
  f.engine.start();
  REQUIRE(eventually([&] { return f.sink_a.count() == 20; }));
  auto t0 = std::chrono::steady_clock::now();
  f.engine.requestStop();
  REQUIRE(f.engine.wait(10s));
  f.engine.stop();
  CHECK(std::chrono::steady_clock::now() - t0 < 5s);
  REQUIRE(f.src.completedCount() == 20);
  for (auto &[n, oc] : f.src.completed) {
    CHECK(oc.first == Outcome::Retry);
    CHECK(oc.second == "shutdown");
  }
}

TEST_CASE("a sink that fails to start makes start() throw and nothing runs") {
  Fixture f{.engine = Engine(isolated())};
  f.beh_a.fail_start = true;
  f.registerAll();
  f.engine.loadString(R"(
version: 1
pipelines:
  p:
    input: {type: mem-source}
    outputs: [{type: mem-sink-a}]
)");
  try {
    f.engine.start();
    FAIL("start() did not throw");
  } catch (const StartError &e) {  // a std::runtime_error
    CHECK(std::string(e.what()).find("cannot start (test)") != std::string::npos);
    CHECK_FALSE(e.permanent());  // Status::fatal: a restart may help
  }
  CHECK(f.src.submitted.load() == 0);
}

TEST_CASE("a source that fails with Status::permanent makes start() throw a permanent StartError") {
  Fixture f{.engine = Engine(isolated())};
  f.src.permanent_start = true;
  f.registerAll();
  f.engine.loadString(R"(
version: 1
pipelines:
  p:
    input: {type: mem-source}
    outputs: [{type: mem-sink-a}]
)");
  try {
    f.engine.start();
    FAIL("start() did not throw");
  } catch (const StartError &e) {
    CHECK(e.permanent());
    CHECK(std::string(e.what()).find("credentials refused (test)") != std::string::npos);
  }
}

TEST_CASE("output retry: a message handed back is sent again to that output only, after a backoff") {
  Fixture f{.engine = Engine(isolated())};
  f.count = 200;
  f.beh_a.give_back_every = 5;
  f.beh_a.give_back_times = 2;
  f.registerAll();
  f.engine.loadString(R"(
version: 1
pipelines:
  p:
    input: {type: mem-source}
    outputs:
      - {type: mem-sink-a, retry: {initial_backoff: 0.02, max_backoff: 1}}
      - {type: mem-sink-b}
)");
  f.engine.start();
  REQUIRE(f.engine.wait(30s));
  CHECK(f.engine.stop());
  REQUIRE(f.src.completedCount() == 200);
  for (auto &[tag, oc] : f.src.completed) {
    CHECK(oc.first == Outcome::Delivered);  // retried until the sink took it
  }
  CHECK(f.sink_b.count() == 200);  // the healthy output saw every message once: no duplicates
  std::set<std::string> b_ids(f.sink_b.ids.begin(), f.sink_b.ids.end());
  CHECK(b_ids.size() == 200);
  CHECK(f.sink_a.count() == 200 + 40 * 2);
  CHECK(f.engine.counter("p", "retried") == 80);  // all reasons
  CHECK(f.engine.counter("p", "retried", "not_yet") == 80);
  CHECK(f.engine.counter("p", "sent") == 400);
  CHECK(f.engine.counter("p", "retry_held") == 0);
  for (int n = 0; n < 200; n += 5) {
    auto &t = f.sink_a.tries[std::to_string(n)];
    REQUIRE(t.size() == 3);
    CHECK(t[0].first == 0);
    CHECK(t[1].first == 1);
    CHECK(t[2].first == 2);
    // Backoff 0.02 s then 0.04 s, each jittered by at most 20 %.
    CHECK(t[1].second - t[0].second >= 15ms);
    CHECK(t[2].second - t[1].second >= 31ms);
  }
}

TEST_CASE("output retry: a spent budget settles as reject; at the cap at most one retry a second") {
  Fixture f{.engine = Engine(isolated())};
  f.count = 3;
  f.beh_a.give_back_every = 1000;  // only message 0, forever
  f.beh_a.give_back_times = -1;
  f.registerAll();
  f.engine.loadString(R"(
version: 1
pipelines:
  p:
    input: {type: mem-source}
    outputs:
      - {type: mem-sink-a, retry: {initial_backoff: 0.1, max_backoff: 1, max_duration: 3.5}}
)");
  f.engine.start();
  REQUIRE(f.engine.wait(30s));
  CHECK(f.engine.stop());
  REQUIRE(f.src.completedCount() == 3);
  CHECK(f.src.completed[0].first == Outcome::Reject);  // an AMQP input dead-letters it
  CHECK(f.src.completed[0].second == "not_yet");
  CHECK(f.src.completed[1].first == Outcome::Delivered);
  CHECK(f.src.completed[2].first == Outcome::Delivered);
  CHECK(f.engine.counter("p", "retry_exhausted", "not_yet") == 1);
  CHECK(f.engine.counter("p", "failed", "not_yet") == 1);
  auto &t = f.sink_a.tries["0"];
  // 0.1, 0.2, 0.4, 0.8, then 1 s at the cap: about 8 tries in 3.5 s, never a hot loop.
  CHECK(t.size() >= 6);
  CHECK(t.size() <= 9);
  for (std::size_t i = 1; i < t.size(); ++i) {
    CHECK(t[i].second - t[i - 1].second >= 79ms);  // 0.1 s - 20 % jitter
    if (i >= 5) {
      CHECK(t[i].second - t[i - 1].second >= 1000ms);  // at the cap: one retry a second at most
    }
  }
}

TEST_CASE("an input that cannot redeliver counts a retry outcome as lost, by reason") {
  Fixture f{.engine = Engine(isolated())};
  f.beh_a.retry_every = 7;  // done(Retry) without handing the message back
  f.registerAll();
  f.engine.loadString(R"(
version: 1
pipelines:
  p:
    input: {type: mem-source-noack}
    outputs: [{type: mem-sink-a}]
)");
  f.engine.start();
  REQUIRE(f.engine.wait(30s));
  f.engine.stop();
  REQUIRE(f.src.completedCount() == 1000);
  CHECK(f.engine.counter("p", "lost", "broker_nack") == 143);  // 0, 7, ..., 994
  CHECK(f.engine.counter("p", "completed", "retry") == 143);
}

TEST_CASE("messages submitted during stopIntake() are accepted and delivered; later ones are refused") {
  Fixture f{.engine = Engine(isolated())};
  f.count = -1;
  f.end = false;
  f.src.submit_in_stop_intake = 50;
  f.registerAll();
  f.engine.loadString(R"(
version: 1
pipelines:
  p:
    input: {type: mem-source-noack}
    outputs: [{type: mem-sink-a}]
)");
  f.engine.start();
  REQUIRE(eventually([&] { return f.src.submitted.load() >= 100; }));
  f.engine.requestStop();
  REQUIRE(f.engine.wait(30s));
  CHECK(f.engine.stop());
  CHECK(f.src.stopping_results == 0);  // none of the 50 refused
  CHECK(f.src.completedCount() == f.src.submitted.load());
  CHECK(f.sink_a.count() == f.src.submitted.load());
  std::lock_guard l(f.sink_a.m);
  CHECK(std::count(f.sink_a.ids.begin(), f.sink_a.ids.end(), std::to_string(f.src.submitted.load() - 1)) == 1);
}

TEST_CASE("several pipelines run side by side, each with its own counters") {
  Fixture f{.engine = Engine(isolated())};
  f.registerAll();
  f.engine.loadString(R"(
version: 1
pipelines:
  one:
    input: {type: mem-source}
    outputs: [{type: mem-sink-a}]
  two:
    input: {type: mem-source-b}
    filters: [{type: drop-every, every: 2}]
    outputs: [{type: mem-sink-b}]
)");
  f.engine.start();
  REQUIRE(f.engine.wait(30s));
  f.engine.stop();
  CHECK(f.engine.counter("one", "received") == 1000);
  CHECK(f.engine.counter("two", "received") == 1000);
  CHECK(f.engine.counter("two", "dropped") == 500);
  CHECK(f.engine.counter("one", "dropped") == 0);
  CHECK(f.sink_a.count() == 1000);
  CHECK(f.sink_b.count() == 500);
}
