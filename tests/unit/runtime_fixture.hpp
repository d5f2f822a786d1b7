// SPDX-License-Identifier: MIT
//
// Fakes shared by the runtime's unit tests (test_runtime.cpp, test_runtime_workers.cpp):
// an in-process source and sink that record what the runtime did, a dropping filter, and
// an engine fixture that registers them. Fakes are allowed here: these are unit tests of
// the core.
#pragma once


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

namespace rtest {

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

inline EngineOptions isolated() {
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

}  // namespace rtest
