// SPDX-License-Identifier: MIT
//
// The runtime's filter workers (parallel instances, order, drain), Source::filtered(), and
// the factories and host objects behind the instances (engine.cpp).
#include <doctest/doctest.h>

#include "runtime_fixture.hpp"

using namespace rtest;

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
