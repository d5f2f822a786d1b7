// SPDX-License-Identifier: MIT
//
// The runtime with in-process plugins (embedding API): acknowledgement and negative
// acknowledgement flow back to the input, fan-out, backpressure with a slow sink, graceful
// drain and the drain timeout. Fakes are allowed here: this is a unit test of the core.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <ostream>
#include <mutex>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "switchyard/engine.hpp"

using namespace switchyard;
using namespace std::chrono_literals;

namespace switchyard {
inline std::ostream &operator<<(std::ostream &os, Outcome o) { return os << outcomeName(o); }
}  // namespace switchyard

namespace {

/// What the fake source saw, shared with the test body.
struct SourceLog {
  std::mutex m;
  std::map<std::uint64_t, std::pair<Outcome, std::string>> completed;
  std::atomic<std::uint64_t> submitted{0};
  std::atomic<std::size_t> max_in_flight{0};
  std::atomic<bool> intake_stopped{false};
  std::atomic<bool> stopped{false};
  std::atomic<int> stopping_results{0};
  // With want_filtered: every event in arrival order ("f:TAG:pass" / "f:TAG:BY:REASON" /
  // "c:TAG"), to check that filtered() comes once per tag, in order, before complete().
  bool want_filtered = false;
  std::vector<std::string> events;
  std::vector<std::uint64_t> filtered_order;
  int submit_in_stop_intake = 0;  ///< messages to submit from inside stopIntake()
  bool permanent_start = false;

  std::size_t completedCount() {
    std::lock_guard l(m);
    return completed.size();
  }
};

/// Emits `count` messages (topic t.N%3, body {"n":N}, id N); count < 0 = forever.
class MemSource final : public Source {
 public:
  MemSource(SourceLog &log, std::int64_t count, bool end) : log_(log), count_(count), end_(end) {}
  Status start(SourceContext &ctx) noexcept override {
    if (log_.permanent_start) {
      return Status::permanent("credentials refused (test)");
    }
    ctx.wantFiltered(log_.want_filtered);
    return Status::ok();
  }
  void filtered(std::uint64_t tag, bool passed, std::string_view by, std::string_view reason) noexcept override {
    std::lock_guard l(log_.m);
    log_.filtered_order.push_back(tag);
    log_.events.push_back(passed ? fmt::format("f:{}:pass", tag) : fmt::format("f:{}:{}:{}", tag, by, reason));
  }
  Status poll(SourceContext &ctx, std::chrono::milliseconds timeout) noexcept override {
    if (log_.intake_stopped || (count_ >= 0 && next_ >= static_cast<std::uint64_t>(count_))) {
      if (end_ && !log_.intake_stopped) {
        return Status::endOfStream();
      }
      pollfd p{ctx.wakeFd(), POLLIN, 0};
      ::poll(&p, 1, static_cast<int>(std::min<std::int64_t>(timeout.count(), 20)));
      return Status::ok();
    }
    Message m;
    m.setTopic(fmt::format("t.{}", next_ % 3));
    m.setBody(fmt::format("{{\"n\":{}}}", next_));
    m.setId(std::to_string(next_));
    auto r = ctx.submit(std::move(m), next_);
    if (r == SourceContext::SubmitResult::Accepted) {
      ++next_;
      log_.submitted = next_;
    } else {
      ++log_.stopping_results;
    }
    std::size_t inflight = ctx.inFlight();
    std::size_t prev = log_.max_in_flight.load();
    while (inflight > prev && !log_.max_in_flight.compare_exchange_weak(prev, inflight)) {
    }
    return Status::ok();
  }
  void complete(std::uint64_t tag, Outcome o, std::string_view reason) noexcept override {
    std::lock_guard l(log_.m);
    CHECK(log_.completed.count(tag) == 0);  // exactly once per message
    log_.completed[tag] = {o, std::string(reason)};
    if (log_.want_filtered) {
      log_.events.push_back(fmt::format("c:{}", tag));
    }
  }
  void stopIntake(SourceContext &ctx) noexcept override {
    log_.intake_stopped = true;
    for (int i = 0; i < log_.submit_in_stop_intake; ++i) {  // what a socket still held
      Message m;
      m.setTopic("late");
      m.setBody("{}");
      m.setId(std::to_string(next_));
      if (ctx.submit(std::move(m), next_) == SourceContext::SubmitResult::Accepted) {
        ++next_;
        log_.submitted = next_;
      } else {
        ++log_.stopping_results;
      }
    }
  }
  void stop() noexcept override { log_.stopped = true; }

 private:
  SourceLog &log_;
  std::int64_t count_;
  bool end_;
  std::uint64_t next_ = 0;
};

struct SinkLog {
  std::mutex m;
  std::vector<std::string> ids;
  std::map<std::string, std::vector<std::pair<unsigned, std::chrono::steady_clock::time_point>>> tries;
  std::atomic<bool> flushed{false};
  std::size_t count() {
    std::lock_guard l(m);
    return ids.size();
  }
};

/// Behaviour per message id n: retry_every / reject_every / drop_every (0 = never);
/// async: confirm on the next poll instead of in send; never_confirm: hold every message;
/// delay: sleep in send (a slow sink).
struct SinkBehaviour {
  int retry_every = 0;
  int reject_every = 0;
  int drop_every = 0;
  bool async = false;
  bool never_confirm = false;
  std::chrono::microseconds delay{0};
  bool fail_start = false;
  // Hand messages with n % give_back_every == 0 back with ctx.retry() while
  // ctx.attempt() < give_back_times (forever when give_back_times < 0).
  int give_back_every = 0;
  int give_back_times = 0;
};

class MemSink final : public Sink {
 public:
  MemSink(SinkLog &log, SinkBehaviour b) : log_(log), b_(b) {}
  Status start(SinkContext &) noexcept override {
    return b_.fail_start ? Status::fatal("cannot start (test)") : Status::ok();
  }
  void send(SinkContext &ctx, Message &&msg, DeliveryId id) noexcept override {
    if (b_.delay.count() > 0) {
      std::this_thread::sleep_for(b_.delay);
    }
    {
      std::lock_guard l(log_.m);
      log_.ids.push_back(msg.id());
      log_.tries[msg.id()].emplace_back(ctx.attempt(), std::chrono::steady_clock::now());
    }
    int n = std::stoi(msg.id());
    if (b_.give_back_every > 0 && n % b_.give_back_every == 0 &&
        (b_.give_back_times < 0 || static_cast<int>(ctx.attempt()) < b_.give_back_times)) {
      ctx.retry(id, std::move(msg), "not_yet");
      return;
    }
    Outcome o = Outcome::Delivered;
    std::string reason;
    if (b_.retry_every > 0 && n % b_.retry_every == 0) {
      o = Outcome::Retry;
      reason = "broker_nack";
    } else if (b_.reject_every > 0 && n % b_.reject_every == 0) {
      o = Outcome::Reject;
      reason = "refused";
    } else if (b_.drop_every > 0 && n % b_.drop_every == 0) {
      o = Outcome::Dropped;
      reason = "unroutable";
    }
    if (b_.never_confirm) {
      return;
    }
    if (b_.async) {
      held_.push_back({id, o, reason});
      return;
    }
    ctx.done(id, o, reason);
  }
  Status poll(SinkContext &ctx, std::chrono::milliseconds timeout) noexcept override {
    for (auto &h : held_) {
      ctx.done(h.id, h.o, h.reason);
    }
    held_.clear();
    return Sink::poll(ctx, timeout);
  }
  Status flush(SinkContext &ctx, std::chrono::milliseconds) noexcept override {
    for (auto &h : held_) {
      ctx.done(h.id, h.o, h.reason);
    }
    held_.clear();
    log_.flushed = true;
    return Status::ok();
  }

 private:
  struct Held {
    DeliveryId id;
    Outcome o;
    std::string reason;
  };
  SinkLog &log_;
  SinkBehaviour b_;
  std::vector<Held> held_;
};

/// Drops messages whose n is a multiple of `every`, with reason "test_drop".
class DropFilter final : public Filter {
 public:
  explicit DropFilter(int every) : every_(every) {}
  Verdict process(FilterContext &, Message &m) noexcept override {
    if (std::stoi(m.id()) % every_ == 0) {
      return Verdict::drop("test_drop");
    }
    m.setTopic("filtered." + m.topic());
    return Verdict::pass();
  }

 private:
  int every_;
};

struct Fixture {
  SourceLog src, src_b;
  SinkLog sink_a, sink_b;
  SinkBehaviour beh_a, beh_b;
  std::int64_t count = 1000;
  bool end = true;
  Engine engine;

  void registerAll() {
    engine.registerSource("mem-source", {}, [this](const sdk::Config &) {
      return std::make_unique<MemSource>(src, count, end);
    }, true);
    engine.registerSource("mem-source-b", {}, [this](const sdk::Config &) {
      return std::make_unique<MemSource>(src_b, count, end);
    }, true);
    // Like ZeroMQ: cannot redeliver.
    engine.registerSource("mem-source-noack", {}, [this](const sdk::Config &) {
      return std::make_unique<MemSource>(src, count, end);
    }, false);
    engine.registerSink("mem-sink-a", {}, [this](const sdk::Config &) {
      return std::make_unique<MemSink>(sink_a, beh_a);
    }, true);
    engine.registerSink("mem-sink-b", {}, [this](const sdk::Config &) {
      return std::make_unique<MemSink>(sink_b, beh_b);
    }, true);
    engine.registerFilter("drop-every",
                          {KeySpec{"every", SY_CFG_INT, false, std::string("5"), "n", false}},
                          [](const sdk::Config &c) {
                            return std::make_unique<DropFilter>(static_cast<int>(c.integer("every")));
                          });
  }
};

EngineOptions isolated() {
  EngineOptions o;
  o.use_env_plugin_path = false;
  o.use_install_dir = false;
  return o;
}

template <typename Pred>
bool eventually(Pred p, std::chrono::milliseconds limit = 20s) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (p()) {
      return true;
    }
    std::this_thread::sleep_for(5ms);
  }
  return p();
}

}  // namespace

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

// ---------------------------------------------------------------------------------------
// Filter workers

namespace {

/// What the parallel filter's instances saw.
struct ParallelLog {
  std::atomic<int> instances{0};
  std::atomic<int> started{0};
  std::atomic<int> stopped{0};
  std::atomic<int> running{0};      ///< process() calls under way, all instances
  std::atomic<int> max_running{0};  ///< the most seen at once
  std::atomic<int> overlaps{0};     ///< an instance entered while already busy
  std::mutex m;
  std::map<int, int> per_instance;  ///< instance -> messages processed
};

/// Drops n % every == 0, waits a little (longer for some n, so that results finish out of
/// order) and tags the topic with its instance number.
class ParallelFilter final : public Filter {
 public:
  ParallelFilter(ParallelLog &log, int every) : log_(log), every_(every), me_(log.instances++) {}
  Status start(FilterContext &) noexcept override {
    ++log_.started;
    return Status::ok();
  }
  void stop() noexcept override { ++log_.stopped; }
  Verdict process(FilterContext &, Message &m) noexcept override {
    if (busy_.exchange(true)) {
      ++log_.overlaps;
    }
    int now = ++log_.running;
    int prev = log_.max_running.load();
    while (now > prev && !log_.max_running.compare_exchange_weak(prev, now)) {
    }
    int n = std::stoi(m.id());
    std::this_thread::sleep_for(std::chrono::microseconds(n % 7 == 0 ? 400 : 20));
    {
      std::lock_guard l(log_.m);
      ++log_.per_instance[me_];
    }
    --log_.running;
    busy_.store(false);
    if (every_ > 0 && n % every_ == 0) {
      return Verdict::drop("test_drop");
    }
    m.setTopic("by." + std::to_string(me_));
    return Verdict::pass();
  }

 private:
  ParallelLog &log_;
  int every_;
  int me_;
  std::atomic<bool> busy_{false};
};

void registerParallel(Fixture &f, ParallelLog &plog) {
  f.engine.registerFilter(
      "parallel", {KeySpec{"every", SY_CFG_INT, false, std::string("0"), "n", false}},
      [&plog](const sdk::Config &c) { return std::make_unique<ParallelFilter>(plog, static_cast<int>(c.integer("every"))); },
      true);
}

}  // namespace

TEST_CASE("filter workers: parallel instances share the work, the outputs see the input's order") {
  Fixture f{.engine = Engine(isolated())};
  ParallelLog plog;
  f.registerAll();
  registerParallel(f, plog);
  f.engine.loadString(R"(
version: 1
pipelines:
  p:
    input: {type: mem-source}
    workers: 4
    filters: [{type: parallel, every: 5}, {type: parallel}]
    outputs: [{type: mem-sink-a}]
)");
  CHECK(plog.instances == 8);  // one chain of two instances per worker
  f.engine.start();
  REQUIRE(f.engine.wait(30s));
  CHECK(f.engine.stop());
  CHECK(plog.started == 8);
  CHECK(plog.stopped == 8);
  CHECK(plog.overlaps == 0);        // an instance only ever runs one message at a time
  CHECK(plog.max_running >= 2);     // but instances do run at the same time
  {
    std::lock_guard l(plog.m);
    CHECK(plog.per_instance.size() >= 4);  // more than one chain did work
  }
  // Every message settled once, drops where the filter dropped, the rest in input order.
  REQUIRE(f.src.completedCount() == 1000);
  for (auto &[n, oc] : f.src.completed) {
    CHECK(oc.first == (n % 5 == 0 ? Outcome::Dropped : Outcome::Delivered));
  }
  REQUIRE(f.sink_a.ids.size() == 800);
  std::size_t k = 0;
  for (int n = 0; n < 1000; ++n) {
    if (n % 5 != 0) {
      CHECK(f.sink_a.ids[k++] == std::to_string(n));
    }
  }
  CHECK(f.engine.counter("p", "dropped", "test_drop") == 200);
  CHECK(f.engine.counter("p", "in_flight") == 0);
}

TEST_CASE("filter workers: auto uses one worker unless every filter is parallel; asking for more is an error") {
  // Loads one pipeline with @p workers_line and @p filters; returns the filter instances made.
  auto instancesFor = [](const std::string &workers_line, const std::string &filters) {
    Fixture f{.engine = Engine(isolated())};
    ParallelLog plog;
    f.registerAll();
    registerParallel(f, plog);
    f.engine.loadString(fmt::format(R"(
version: 1
pipelines:
  p:
    input: {{type: mem-source}}
    {}
    filters: {}
    outputs: [{{type: mem-sink-a}}]
)",
                                    workers_line, filters));
    return plog.instances.load();
  };
  CHECK(instancesFor("", "[{type: parallel}, {type: drop-every}]") == 1);  // drop-every is serial: one chain
  CHECK(instancesFor("workers: 3", "[{type: parallel}]") == 3);
  try {
    instancesFor("workers: 2", "[{type: parallel}, {type: drop-every}]");
    FAIL("workers: 2 with a serial filter was accepted");
  } catch (const ConfigError &e) {
    REQUIRE(e.diagnostics().size() == 1);
    const auto &d = e.diagnostics()[0];
    CHECK(d.path == "pipelines.p.workers");
    CHECK(d.line == 6);
    CHECK(d.message.find("pipelines.p.filters[1] (drop-every)") != std::string::npos);
  }
  for (const char *bad : {"0", "257", "many", "[1]"}) {
    CAPTURE(bad);
    CHECK_THROWS_WITH_AS(instancesFor(fmt::format("workers: {}", bad), "[]"), doctest::Contains("pipelines.p.workers"),
                         ConfigError);
  }
}

TEST_CASE("filter workers: at the drain timeout every message still held comes back as retry once") {
  Fixture f{.engine = Engine(isolated())};
  ParallelLog plog;
  f.count = 200;
  f.end = false;
  f.beh_a.never_confirm = true;
  f.registerAll();
  registerParallel(f, plog);
  f.engine.loadString(R"(
version: 1
settings: {drain_timeout: 0.3, queue_max_messages: 10}
pipelines:
  p:
    input: {type: mem-source}
    workers: 2
    filters: [{type: parallel}]
    outputs: [{type: mem-sink-a}]
)");
  f.engine.start();
  // The sink holds everything it got; the queue (10) and the reorder window fill, then
  // the input is held back.
  REQUIRE(eventually([&] { return f.sink_a.count() >= 10; }));
  f.engine.requestStop();
  REQUIRE(f.engine.wait(10s));
  f.engine.stop();
  std::uint64_t submitted = f.src.submitted.load();
  CHECK(submitted > 0);
  REQUIRE(f.src.completedCount() == submitted);  // exactly once each (CHECKed in complete())
  for (auto &[n, oc] : f.src.completed) {
    CHECK(oc.first == Outcome::Retry);
    CHECK(oc.second == "shutdown");
  }
  CHECK(plog.stopped == 2);
}

TEST_CASE("filtered(): the source hears, in submission order and before complete(), what the filters decided") {
  for (const char *workers : {"1", "4"}) {
    CAPTURE(workers);
    Fixture f{.engine = Engine(isolated())};
    ParallelLog plog;
    f.src.want_filtered = true;
    f.count = 500;
    f.registerAll();
    registerParallel(f, plog);
    f.engine.loadString(fmt::format(R"(
version: 1
pipelines:
  p:
    input: {{type: mem-source}}
    workers: {}
    filters: [{{type: parallel, every: 4}}]
    outputs: [{{type: mem-sink-a}}]
)", workers));
    f.engine.start();
    REQUIRE(f.engine.wait(30s));
    CHECK(f.engine.stop());
    REQUIRE(f.src.completedCount() == 500);
    REQUIRE(f.src.filtered_order.size() == 500);
    for (std::uint64_t i = 0; i < 500; ++i) {
      CHECK(f.src.filtered_order[i] == i);
    }
    std::map<std::uint64_t, std::string> first;  // tag -> first event seen for it
    for (auto &e : f.src.events) {
      auto tag = std::stoull(e.substr(2, e.find(':', 2) - 2));
      first.try_emplace(tag, e);
    }
    for (auto &[tag, e] : first) {
      CHECK(e[0] == 'f');  // filtered() before complete()
      if (tag % 4 == 0) {
        CHECK(e.find(":parallel:") != std::string::npos);
      } else {
        CHECK(e.find(":pass") != std::string::npos);
      }
    }
  }
}

namespace {

class CountedFilter final : public Filter {
 public:
  explicit CountedFilter(std::atomic<int> &alive) : alive_(alive) { ++alive_; }
  ~CountedFilter() override { --alive_; }
  Verdict process(FilterContext &, Message &) noexcept override { return Verdict::pass(); }

 private:
  std::atomic<int> &alive_;
};

/// An object the plugins share through the host; notes when it goes.
struct SharedThing {
  std::vector<std::string> &log;
  ~SharedThing() { log.emplace_back("shared"); }
};

class HostUser final : public Filter {
 public:
  HostUser(const sdk::Config &c, std::vector<std::string> &log, std::vector<const void *> &seen)
      : log_(log),
        thing_(c.host()->shared("test.shared", [&log] { return std::make_shared<SharedThing>(log); })) {
    seen.push_back(thing_.get());
  }
  ~HostUser() override { log_.emplace_back("instance"); }
  Verdict process(FilterContext &, Message &) noexcept override { return Verdict::pass(); }

 private:
  std::vector<std::string> &log_;
  std::shared_ptr<void> thing_;
};

}  // namespace

TEST_CASE("factories: an instantiate() that fails is reported once, and what was made is destroyed") {
  std::atomic<int> calls{0}, alive{0};
  Fixture f{.engine = Engine(isolated())};
  f.registerAll();
  f.engine.registerFilter(
      "flaky", {},
      [&](const sdk::Config &) -> std::unique_ptr<Filter> {
        if (++calls == 3) {
          throw std::runtime_error("no third instance");
        }
        return std::make_unique<CountedFilter>(alive);
      },
      true);
  try {
    f.engine.loadString(R"(
version: 1
pipelines:
  p:
    input: {type: mem-source}
    workers: 4
    filters: [{type: flaky}]
    outputs: [{type: mem-sink-a}]
)");
    FAIL("a failing instantiate() was accepted");
  } catch (const ConfigError &e) {
    REQUIRE(e.diagnostics().size() == 1);  // not once per worker
    CHECK(e.diagnostics()[0].path == "pipelines.p.filters[0]");
    CHECK(e.diagnostics()[0].message == "no third instance");
  }
  CHECK(calls == 3);  // the factory was not asked again after it failed
  CHECK(alive == 0);  // the two instances it made are gone with the failed load
}

TEST_CASE("factories: objects shared through the host are shared, and outlive every instance") {
  std::vector<std::string> log;
  std::vector<const void *> seen;
  {
    Fixture f{.engine = Engine(isolated())};
    f.registerAll();
    f.engine.registerFilter(
        "host-user", {}, [&](const sdk::Config &c) { return std::make_unique<HostUser>(c, log, seen); }, true);
    f.engine.loadString(R"(
version: 1
pipelines:
  p:
    input: {type: mem-source}
    workers: 2
    filters: [{type: host-user}]
    outputs: [{type: mem-sink-a}]
)");
    f.engine.start();
    REQUIRE(f.engine.wait(30s));
    CHECK(f.engine.stop());
    REQUIRE(seen.size() == 2);
    CHECK(seen[0] != nullptr);
    CHECK(seen[0] == seen[1]);  // one object for every instance
    CHECK(log.empty());
  }
  CHECK(log == std::vector<std::string>{"instance", "instance", "shared"});
}
