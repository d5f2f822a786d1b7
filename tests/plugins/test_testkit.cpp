// SPDX-License-Identifier: MIT
// The plugin test kit (switchyard/testkit.hpp), used the way a plugin author uses it:
// the Harness over the built test-source and test-sink libraries (dlopen, the three entry
// points), over a filter class compiled in, MemSource and MemSink around a filter in a
// real Engine, and the fake contexts and host.
//
//   test_testkit PATH/switchyard-source-test-source.so PATH/switchyard-sink-test-sink.so
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "switchyard/drop_log.hpp"
#include "switchyard/engine.hpp"
#include "switchyard/sdk.hpp"
#include "switchyard/testkit.hpp"

namespace sy = switchyard;
namespace tk = switchyard::testkit;
using sy::Message;
using sy::Outcome;

namespace {

std::string g_source_so;
std::string g_sink_so;

// A filter written with the SDK: counters beside the schema, a rate-limited log.
constexpr sy_config_key kDropSchema[] = {
    sy::sdk::key("drop", SY_CFG_STRING, "\"\"", "Drop messages with this topic.").required(),
    sy::sdk::key("mode", SY_CFG_STRING, "\"drop\"", "drop or fail.").oneOf("drop|fail"),
    sy::sdk::kEndOfSchema,
};
enum : std::size_t { kPassed, kDropped };
constexpr sy::sdk::CounterSpec kDropCounters[] = {{"passed", "Passed on."}, {"matched", "Matched the topic."}};

class DropTopic final : public sy::Filter {
 public:
  explicit DropTopic(const sy::sdk::Config &c) : topic_(c.str("drop")), fail_(c.oneOf("mode", {"drop", "fail"}) == "fail") {}
  sy::Status start(sy::FilterContext &ctx) noexcept override {
    counters_.attach(ctx);
    return sy::Status::ok();
  }
  sy::Verdict process(sy::FilterContext &ctx, Message &m) noexcept override {
    if (m.topic() != topic_) {
      counters_[kPassed].add();
      return sy::Verdict::pass();
    }
    counters_[kDropped].add();
    log_.warn(ctx, "matched", "dropping a message on {}", m.topic());
    return fail_ ? sy::Verdict::error("matched_topic") : sy::Verdict::drop("matched_topic");
  }

 private:
  std::string topic_;
  bool fail_;
  sy::sdk::Counters counters_{kDropCounters};
  sy::DropLog log_{1, std::chrono::hours(1)};
};

}  // namespace

TEST_CASE("Harness over a built sink: outcomes per message, schema defaults and constraints") {
  auto h = tk::Harness::load(g_sink_so, R"({"name":"t","retry_every":3,"reject_every":2})");
  CHECK(h.kind() == SY_KIND_SINK);
  for (int i = 1; i <= 6; ++i) {
    h.send(Message("t", "{}", "{}", std::to_string(i)));
  }
  REQUIRE(h.settle(std::chrono::seconds(5)));
  auto s = h.settled();
  REQUIRE(s.size() == 6);
  CHECK(s[0].outcome == Outcome::Delivered);
  CHECK(s[1].outcome == Outcome::Reject);
  CHECK(s[1].reason == "test_reject");
  CHECK(s[2].outcome == Outcome::Retry);
  CHECK(s[5].outcome == Outcome::Retry);  // 6: retry_every wins
  CHECK(h.logger().contains("test-sink 't' started"));

  auto d = tk::Harness::load(g_sink_so, R"({"name":"t","settle":"dropped"})");
  d.send(Message("t", "{}", "{}", "1"));
  REQUIRE(d.settle());
  CHECK(d.settled().at(0).outcome == Outcome::Dropped);

  CHECK_THROWS_WITH(tk::Harness::load(g_sink_so, R"({"name":"t","settle":"lost"})"),
                    doctest::Contains("'settle' is not one of delivered|dropped"));
  CHECK_THROWS_WITH(tk::Harness::load(g_sink_so, R"({"name":"t","weight":2})"),
                    doctest::Contains("'weight' is out of its bounds"));
  CHECK_THROWS_WITH(tk::Harness::load(g_sink_so, "{}"), doctest::Contains("missing required key 'name'"));
  CHECK_THROWS_WITH(tk::Harness::load(g_sink_so, R"({"name":"t","nme":1})"), doctest::Contains("unknown key 'nme'"));
}

TEST_CASE("Harness over a built source: what it submitted, in order, until its end") {
  auto h = tk::Harness::load(g_source_so, R"({"count":5,"topic":"a.b"})");
  auto got = h.pull(100, std::chrono::seconds(5));
  REQUIRE(got.size() == 5);
  CHECK(h.ended());
  CHECK(got[0].topic() == "a.b");
  CHECK(got[4].body() == R"({"n":4})");
  // The plugin's own check, behind the SDK's exception barrier, names its key.
  CHECK_THROWS_WITH(tk::Harness::load(g_source_so, R"({"count":-1})"), doctest::Contains("out of its bounds"));
}

TEST_CASE("Harness over a filter class: verdicts, changed messages, counters, rate-limited log") {
  auto h = tk::Harness::of<DropTopic>(kDropSchema, R"({"drop":"bad"})");
  auto results = h.process(std::vector<Message>{Message("ok", "{}"), Message("bad", "{}"), Message("bad", "{}")});
  REQUIRE(results.size() == 3);
  CHECK(results[0].verdict.kind == sy::Verdict::Kind::Pass);
  CHECK(results[1].verdict.kind == sy::Verdict::Kind::Drop);
  CHECK(results[1].verdict.reason == "matched_topic");
  CHECK(h.counter("passed") == 1);
  CHECK(h.counter("matched") == 2);
  CHECK(h.logger().count("dropping a message on bad") == 1);  // DropLog: once per window

  auto f = tk::Harness::of<DropTopic>(kDropSchema, R"({"drop":"bad","mode":"fail"})");
  CHECK(f.process(Message("bad", "{}")).verdict.kind == sy::Verdict::Kind::Error);
}

TEST_CASE("MemSource and MemSink around a filter in a real Engine") {
  for (Outcome outcome : {Outcome::Delivered, Outcome::Reject}) {
    CAPTURE(sy::outcomeName(outcome));
    auto in = std::make_shared<tk::MemSource::State>();
    in->messages = {Message("a", R"({"n":0})"), Message("bad", R"({"n":1})"), Message("c", R"({"n":2})")};
    auto out = std::make_shared<tk::MemSink::State>();
    out->outcome = outcome;
    out->reason = outcome == Outcome::Delivered ? "" : "test_reject";

    sy::EngineOptions o;
    o.use_env_plugin_path = false;
    o.use_config_plugin_path = false;
    o.use_install_dir = false;
    sy::Engine e(o);
    e.registerSource("mem-in", {}, [in](const sy::sdk::Config &) { return std::make_unique<tk::MemSource>(in); },
                     /*can_ack=*/true);
    e.registerSink("mem-out", {}, [out](const sy::sdk::Config &) { return std::make_unique<tk::MemSink>(out); },
                   /*can_ack=*/true);
    e.registerFilter("drop-topic", {{"drop", SY_CFG_STRING, true, std::nullopt, "", false},
                                    {"mode", SY_CFG_STRING, false, R"("drop")", "", false}},
                     [](const sy::sdk::Config &c) { return std::make_unique<DropTopic>(c); });
    e.loadString("version: 1\npipelines:\n  p:\n    input: {type: mem-in}\n"
                 "    filters: [{type: drop-topic, drop: bad}]\n    outputs: [{type: mem-out}]\n");
    e.start();
    REQUIRE(in->waitCompleted(3, std::chrono::seconds(10)));
    REQUIRE(e.wait(std::chrono::seconds(10)));
    e.stop();
    auto got = out->messages();
    REQUIRE(got.size() == 2);
    CHECK(got[0].topic() == "a");
    CHECK(got[1].topic() == "c");
    auto done = in->completed();
    REQUIRE(done.size() == 3);
    for (const auto &c : done) {
      CAPTURE(c.tag);
      CHECK(c.outcome == (c.tag == 1 ? Outcome::Dropped : outcome));
    }
  }
}

TEST_CASE("fake contexts and host") {
  tk::FakeHost host;
  int made = 0;
  auto make = [&] {
    ++made;
    return std::static_pointer_cast<void>(std::make_shared<int>(7));
  };
  auto a = host.shared("x.y", make);
  auto b = host.shared("x.y", make);
  CHECK(a == b);
  CHECK(made == 1);
  CHECK(host.has("x.y"));

  tk::FakeSinkContext sink;
  sink.handed();
  sink.handed();
  CHECK(sink.pending() == 2);
  sink.done(1, Outcome::Delivered);
  sink.retry(2, Message("t", "{}"), "busy");
  CHECK(sink.pending() == 0);
  CHECK(sink.settled().at(1).retried);
  CHECK(sink.returned().at(0).topic() == "t");

  tk::FakeSourceContext src;
  CHECK(src.submit(Message("t", "{}"), 9) == sy::SourceContext::SubmitResult::Accepted);
  CHECK(src.inFlight() == 1);
  src.closeIntake();
  CHECK(src.submit(Message("t", "{}"), 10) == sy::SourceContext::SubmitResult::Stopping);
  CHECK(src.take().at(0).tag == 9);

  tk::FakeFilterContext f("pipe");
  f.countDrop("x");
  f.gauge("depth").set(3);
  CHECK(f.value("dropped", "x") == 1);
  CHECK(f.gaugeValue("depth") == 3);
  CHECK(f.pipeline() == "pipe");
}

int main(int argc, char **argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s SOURCE.so SINK.so [doctest options]\n", argv[0]);
    return 2;
  }
  g_source_so = argv[1];
  g_sink_so = argv[2];
  doctest::Context ctx;
  ctx.applyCommandLine(argc - 2, argv + 2);
  return ctx.run();
}
