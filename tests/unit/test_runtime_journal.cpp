// SPDX-License-Identifier: MIT
// The disk journal in the pipeline runtime (core/src/runtime_journal.cpp, docs/journal.md):
// delivery through the journal, what a stop leaves for the next start, and standby
// (SinkContext::setActive). In-process fakes as in test_runtime.cpp; the journal is the
// real one, in a fresh directory per test.
#include <doctest/doctest.h>

#include <poll.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "journal.hpp"
#include "runtime_fixture.hpp"

using namespace rtest;
namespace fs = std::filesystem;

namespace {

fs::path freshDir(const char *name) {
  fs::path d = fs::temp_directory_path() / fmt::format("sy-rtjournal-{}-{}", name, ::getpid());
  fs::remove_all(d);
  return d;
}

/// Emits messages n = 0, 1, ... up to `allowed` (raised by the test), never ends; cannot
/// redeliver (like zmq-sub).
struct Gate {
  std::atomic<std::int64_t> allowed{0};
  std::atomic<std::int64_t> submitted{0};
  std::mutex m;
  std::vector<std::uint64_t> completed;  ///< tags, in completion order
};

class GatedSource final : public Source {
 public:
  explicit GatedSource(Gate &g) : g_(g) {}
  Status start(SourceContext &) noexcept override { return Status::ok(); }
  Status poll(SourceContext &ctx, std::chrono::milliseconds timeout) noexcept override {
    if (g_.submitted.load() >= g_.allowed.load()) {
      pollfd p{ctx.wakeFd(), POLLIN, 0};
      ::poll(&p, 1, static_cast<int>(std::min<std::int64_t>(timeout.count(), 10)));
      return Status::ok();
    }
    const auto n = static_cast<std::uint64_t>(g_.submitted.load());
    Message m;
    m.setTopic("t");
    m.setBody(fmt::format("{{\"n\":{}}}", n));
    m.setId(std::to_string(n));
    if (ctx.submit(std::move(m), n) == SourceContext::SubmitResult::Accepted) {
      ++g_.submitted;
    }
    return Status::ok();
  }
  void complete(std::uint64_t tag, Outcome, std::string_view) noexcept override {
    std::lock_guard l(g_.m);
    g_.completed.push_back(tag);
  }

 private:
  Gate &g_;
};

/// Delivers at once while `deliver`; else holds every message unconfirmed (a broker that is
/// down). Says ctx.setActive(active) whenever the test changes `active`.
struct Switch {
  std::atomic<bool> active{true};
  std::atomic<bool> deliver{true};
  std::atomic<bool> said{true};  ///< what the sink last told the runtime (ctx.setActive)
  std::mutex m;
  std::vector<std::string> ids;
  std::size_t count() {
    std::lock_guard l(m);
    return ids.size();
  }
};

class SwitchSink final : public Sink {
 public:
  explicit SwitchSink(Switch &s) : s_(s) {}
  Status start(SinkContext &ctx) noexcept override {
    said_ = s_.active.load();
    ctx.setActive(said_);
    s_.said = said_;
    return Status::ok();
  }
  void send(SinkContext &ctx, Message &&msg, DeliveryId id) noexcept override {
    if (!s_.deliver.load()) {
      return;  // never confirmed: settled as shutdown at the stop
    }
    {
      std::lock_guard l(s_.m);
      s_.ids.push_back(msg.id());
    }
    ctx.done(id, Outcome::Delivered, {});
  }
  Status poll(SinkContext &ctx, std::chrono::milliseconds timeout) noexcept override {
    if (bool a = s_.active.load(); a != said_) {
      said_ = a;
      ctx.setActive(a);
      s_.said = a;
    }
    return Sink::poll(ctx, std::min(timeout, std::chrono::milliseconds(10)));
  }

 private:
  Switch &s_;
  bool said_ = true;
};

struct JFixture {
  Gate gate;
  Switch sw;
  Engine engine{isolated()};
  JFixture() {
    engine.registerSource("gated", {}, [this](const sdk::Config &) { return std::make_unique<GatedSource>(gate); },
                          false);
    engine.registerSink("switch", {}, [this](const sdk::Config &) { return std::make_unique<SwitchSink>(sw); }, true);
  }
  void load(const fs::path &dir, const std::string &extra = "", bool journal = true) {
    engine.loadString(config(dir, extra, journal));
  }
  static std::string config(const fs::path &dir, const std::string &extra = "", bool journal = true) {
    return fmt::format(R"(
version: 1
settings: {{drain_timeout: 0.3, queue_max_messages: 50}}
pipelines:
  p:
{}    input: {{type: gated}}
    outputs: [{{type: switch}}]
)",
                       journal ? fmt::format("    journal: {{dir: '{}', fsync: never{}}}\n", dir.string(), extra)
                               : std::string());
  }
};

std::uint64_t liveRecords(const fs::path &dir) {
  journal::ScanResult r;
  std::string error;
  REQUIRE(journal::scan(dir, r, error));
  return r.live.size();
}

}  // namespace

TEST_CASE("journal: every message goes through the journal, is delivered once and reaches the source") {
  const fs::path dir = freshDir("deliver");
  JFixture f;
  f.load(dir);
  f.gate.allowed = 500;
  f.engine.start();
  REQUIRE(eventually([&] { return f.sw.count() == 500 && f.engine.counter("p", "completed") == 500; }));
  f.engine.requestStop();
  CHECK(f.engine.stop());
  CHECK(f.engine.counter("p", "journal_appended") == 500);
  CHECK(f.engine.counter("p", "journal_replayed") == 0);
  CHECK(f.engine.counter("p", "lost") == 0);
  CHECK(f.engine.counter("p", "in_flight") == 0);
  for (std::size_t i = 0; i < 500; ++i) {
    CHECK(f.sw.ids[i] == std::to_string(i));  // in order
  }
  std::lock_guard l(f.gate.m);
  REQUIRE(f.gate.completed.size() == 500);  // complete() reaches the source for each tag
  for (std::size_t i = 0; i < 500; ++i) {
    CHECK(f.gate.completed[i] == i);
  }
  CHECK(liveRecords(dir) == 0);
  fs::remove_all(dir);
}

TEST_CASE("journal: input is taken while the output cannot deliver; a stop keeps it for the next start") {
  const fs::path dir = freshDir("restart");
  {
    JFixture f;
    f.sw.deliver = false;  // the broker is down
    f.load(dir);
    f.gate.allowed = 2000;  // 40 times the output queue (50)
    f.engine.start();
    // submit() no longer waits for the output queue: all of it is taken.
    REQUIRE(eventually([&] { return f.gate.submitted.load() == 2000; }));
    CHECK(f.engine.counter("p", "journal_appended") == 2000);
    f.engine.requestStop();
    CHECK(f.engine.stop());
    CHECK(f.engine.counter("p", "lost") == 0);  // not lost{reason=shutdown}: kept
    CHECK(f.engine.counter("p", "completed") == 0);
    CHECK(f.engine.counter("p", "journal_kept") >= 1);
    CHECK(f.sw.count() == 0);
  }
  CHECK(liveRecords(dir) == 2000);
  {
    JFixture f;  // the next start: the backlog first, then new input
    f.load(dir);
    f.gate.allowed = 10;
    f.engine.start();
    REQUIRE(eventually([&] { return f.sw.count() == 2010; }));
    f.engine.requestStop();
    CHECK(f.engine.stop());
    CHECK(f.engine.counter("p", "journal_replayed", "start") == 2000);
    CHECK(f.engine.counter("p", "journal_appended") == 10);
    CHECK(f.engine.counter("p", "completed") == 2010);
    CHECK(f.engine.counter("p", "in_flight") == 0);
    for (std::size_t i = 0; i < 2000; ++i) {
      CHECK(f.sw.ids[i] == std::to_string(i));
    }
    for (std::size_t i = 0; i < 10; ++i) {
      CHECK(f.sw.ids[2000 + i] == std::to_string(i));  // this run's own input after the backlog
    }
    std::lock_guard l(f.gate.m);
    CHECK(f.gate.completed.size() == 10);  // only this run's messages reach its source
  }
  CHECK(liveRecords(dir) == 0);
  fs::remove_all(dir);
}

TEST_CASE("journal: standing by keeps the last standby_overlap seconds and sends them on becoming active") {
  const fs::path dir = freshDir("standby");
  JFixture f;
  f.sw.active = false;
  f.load(dir, ", standby_overlap: 2");
  f.engine.start();
  f.gate.allowed = 100;  // older than the overlap by the time it is checked: trimmed
  REQUIRE(eventually([&] { return f.engine.counter("p", "journal_standby_trimmed") == 100; }));
  CHECK(f.sw.count() == 0);  // nothing dispatched while standing by
  f.gate.allowed = 130;      // within the overlap when the output becomes active
  REQUIRE(eventually([&] { return f.engine.counter("p", "journal_appended") == 130; }));
  f.sw.active = true;
  REQUIRE(eventually([&] { return f.sw.count() == 30; }));
  f.gate.allowed = 140;  // then new input as usual
  REQUIRE(eventually([&] { return f.sw.count() == 40; }));
  f.engine.requestStop();
  CHECK(f.engine.stop());
  CHECK(f.engine.counter("p", "journal_replayed", "takeover") == 30);
  CHECK(f.engine.counter("p", "journal_standby_trimmed") == 100);
  CHECK(f.engine.counter("p", "lost") == 0);
  for (std::size_t i = 0; i < 40; ++i) {
    CHECK(f.sw.ids[i] == std::to_string(100 + i));
  }
  CHECK(liveRecords(dir) == 0);
  fs::remove_all(dir);
}

TEST_CASE("standby without a journal: the input is dropped, counted dropped{reason=standby}") {
  JFixture f;
  f.sw.active = false;
  f.load({}, "", false);
  f.engine.start();
  f.gate.allowed = 20;
  REQUIRE(eventually([&] { return f.engine.counter("p", "completed") == 20; }));
  CHECK(f.engine.counter("p", "dropped", "standby") == 20);
  CHECK(f.sw.count() == 0);
  f.sw.active = true;
  // Without a journal, what arrives before the output says it is active is dropped: wait
  // for the sink to have said so.
  REQUIRE(eventually([&] { return f.sw.said.load(); }));
  f.gate.allowed = 25;
  REQUIRE(eventually([&] { return f.sw.count() == 5; }));
  f.engine.requestStop();
  CHECK(f.engine.stop());
}

TEST_CASE("journal: when_full drop counts dropped{reason=journal_full} on the input") {
  const fs::path dir = freshDir("full");
  JFixture f;
  f.sw.deliver = false;
  f.load(dir, ", max_bytes: 1048576, when_full: drop");
  f.engine.start();
  f.gate.allowed = 30000;  // about 2.4 MB of records: more than max_bytes
  REQUIRE(eventually([&] { return f.gate.submitted.load() == 30000; }, 60s));
  const auto dropped = f.engine.counter("p", "dropped", "journal_full");
  const auto appended = f.engine.counter("p", "journal_appended");
  CHECK(dropped > 0);
  CHECK(appended + dropped == 30000);
  f.engine.requestStop();
  CHECK(f.engine.stop());
  fs::remove_all(dir);
}

TEST_CASE("journal: a reload drains the old version, which closes the journal, and the new one sends the rest") {
  const fs::path dir = freshDir("reload");
  JFixture f;
  f.sw.deliver = false;  // the old version's output cannot deliver: a backlog builds
  f.load(dir);
  f.gate.allowed = 300;
  f.engine.start();
  REQUIRE(eventually([&] { return f.engine.counter("p", "journal_appended") == 300; }));
  f.sw.deliver = true;
  ReloadReport r = f.engine.reloadString(JFixture::config(dir, ", batch_ms: 20"), "v2.yaml");
  CHECK(r.changed == std::vector<std::string>{"p"});
  CHECK(r.failed.empty());
  auto distinct = [&] {
    std::lock_guard l(f.sw.m);
    return std::set<std::string>(f.sw.ids.begin(), f.sw.ids.end()).size();
  };
  REQUIRE(eventually([&] { return distinct() == 300; }));
  f.engine.requestStop();
  CHECK(f.engine.stop());
  CHECK(f.engine.counter("p", "lost") == 0);
  CHECK(f.engine.counter("p", "journal_replayed", "start") >= 1);  // the new version sent what the old kept
  CHECK(liveRecords(dir) == 0);
  fs::remove_all(dir);
}
