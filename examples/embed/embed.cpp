// SPDX-License-Identifier: MIT
//
// Embedding Switchyard in a service: the service registers an in-process source (its own
// events) and an in-process sink, mixes them with a loaded plugin (stdout) in a pipeline
// given as a YAML string, runs it, and reads the counters.
//
//   embed-example [COUNT]
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <string>

#include <switchyard/engine.hpp>

namespace sy = switchyard;

namespace {

/// The service's own events: `count` messages, then the end of input.
class Events final : public sy::Source {
 public:
  explicit Events(long count) : count_(count) {}
  sy::Status start(sy::SourceContext &) noexcept override { return sy::Status::ok(); }
  sy::Status poll(sy::SourceContext &ctx, std::chrono::milliseconds) noexcept override {
    if (next_ >= count_) {
      return sy::Status::endOfStream();
    }
    sy::Message m;
    m.setTopic("org.example.service.event");
    m.setBody("{\"seq\":" + std::to_string(next_) + "}");
    m.setId("event-" + std::to_string(next_));
    if (ctx.submit(std::move(m), static_cast<std::uint64_t>(next_)) ==
        sy::SourceContext::SubmitResult::Accepted) {
      ++next_;
    }
    return sy::Status::ok();
  }
  void complete(std::uint64_t, sy::Outcome o, std::string_view) noexcept override {
    if (o == sy::Outcome::Delivered) {
      ++acked_;
    }
  }
  static inline std::atomic<long> acked_{0};

 private:
  long count_;
  long next_ = 0;
};

/// The service's own consumer: counts what it receives.
class Collector final : public sy::Sink {
 public:
  sy::Status start(sy::SinkContext &) noexcept override { return sy::Status::ok(); }
  void send(sy::SinkContext &ctx, sy::Message &&, sy::DeliveryId id) noexcept override {
    ++received_;
    ctx.done(id, sy::Outcome::Delivered);
  }
  static inline std::atomic<long> received_{0};
};

}  // namespace

int main(int argc, char **argv) {
  long count = argc > 1 ? std::atol(argv[1]) : 10;
  sy::Engine engine;
  engine.registerSource(
      "service-events", {}, [count](const sy::sdk::Config &) { return std::make_unique<Events>(count); },
      true);
  engine.registerSink("collector", {}, [](const sy::sdk::Config &) { return std::make_unique<Collector>(); },
                      true);
  try {
    engine.loadString(R"(
version: 1
pipelines:
  events:
    input: {type: service-events}
    outputs:
      - {type: collector}
      - {type: stdout}
)",
                      "embedded");
    engine.start();
  } catch (const sy::ConfigError &e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 2;
  } catch (const std::exception &e) {
    std::fprintf(stderr, "start failed: %s\n", e.what());
    return 1;
  }
  engine.wait();
  bool ok = engine.stop();
  std::fprintf(stderr, "received=%ld acked=%ld sent(stdout)=%lld\n", Collector::received_.load(),
               Events::acked_.load(), static_cast<long long>(engine.counter("events", "sent")));
  return ok && Collector::received_ == count && Events::acked_ == count ? 0 : 1;
}
