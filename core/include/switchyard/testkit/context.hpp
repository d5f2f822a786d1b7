// SPDX-License-Identifier: MIT
//
// Test kit: the host side of the plugin API without a core -- a logger that records
// lines, a Host with shared(), and Source/Sink/Filter contexts whose counters, gauges,
// submissions and settlements a test reads back. Header-only; installed with the SDK.
//
//   switchyard::testkit::FakeFilterContext ctx;
//   REQUIRE(filter.start(ctx).isOk());
//   filter.process(ctx, msg);
//   CHECK(ctx.value("dropped", "bad_topic") == 1);
//
// THREADING: every method may be called from any thread (the plugin's, the test's).
#pragma once

#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "switchyard/plugin.hpp"

namespace switchyard::testkit {

/// A Logger that keeps every line (and its level).
class RecordingLogger final : public Logger {
 public:
  struct Line {
    LogLevel level;
    std::string text;
  };
  void log(LogLevel level, std::string_view message) noexcept override {
    try {
      std::lock_guard<std::mutex> lock(mu_);
      lines_.push_back({level, std::string(message)});
    } catch (...) {
    }
  }
  [[nodiscard]] bool enabled(LogLevel level) const noexcept override { return level >= min_level_; }
  void setLevel(LogLevel min_level) noexcept { min_level_ = min_level; }
  /// The text of every line so far.
  [[nodiscard]] std::vector<std::string> lines() const {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<std::string> out;
    for (const auto &l : lines_) {
      out.push_back(l.text);
    }
    return out;
  }
  [[nodiscard]] std::vector<Line> entries() const {
    std::lock_guard<std::mutex> lock(mu_);
    return lines_;
  }
  /// How many lines contain @p text.
  [[nodiscard]] std::size_t count(std::string_view text) const {
    std::lock_guard<std::mutex> lock(mu_);
    std::size_t n = 0;
    for (const auto &l : lines_) {
      n += l.text.find(text) != std::string::npos ? 1 : 0;
    }
    return n;
  }
  [[nodiscard]] bool contains(std::string_view text) const { return count(text) > 0; }
  void clear() {
    std::lock_guard<std::mutex> lock(mu_);
    lines_.clear();
  }

 private:
  mutable std::mutex mu_;
  std::vector<Line> lines_;
  std::atomic<LogLevel> min_level_{LogLevel::Trace};
};

/// A Host: shared() keeps one object per key, as the engine does, until the host dies.
class FakeHost final : public Host {
 public:
  Logger &log() noexcept override { return log_; }
  std::shared_ptr<void> shared(std::string_view key,
                               const std::function<std::shared_ptr<void>()> &make) noexcept override {
    try {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = objects_.find(std::string(key));
      if (it != objects_.end()) {
        return it->second;
      }
      auto obj = make();
      if (obj) {
        objects_.emplace(std::string(key), obj);
      }
      return obj;
    } catch (...) {
      return nullptr;
    }
  }
  [[nodiscard]] RecordingLogger &logger() noexcept { return log_; }
  /// Whether an object was made under @p key.
  [[nodiscard]] bool has(std::string_view key) const {
    std::lock_guard<std::mutex> lock(mu_);
    return objects_.count(std::string(key)) != 0;
  }

 private:
  RecordingLogger log_;
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<void>> objects_;
};

/// What every fake context shares: a RecordingLogger, counters and gauges kept in maps.
template <typename Base>
class FakeContextBase : public Base {
 public:
  explicit FakeContextBase(std::string pipeline = "test", std::string instance = "filters[0]")
      : pipeline_(std::move(pipeline)), instance_(std::move(instance)) {}
  Logger &log() noexcept override { return logger_; }
  Counter &counter(std::string_view name, std::string_view label = {}) noexcept override {
    std::lock_guard<std::mutex> lock(mu_);
    auto &slot = counters_[key(name, label)];
    if (!slot) {
      slot = std::make_unique<Counter>();
    }
    return *slot;
  }
  Gauge &gauge(std::string_view name) noexcept override {
    std::lock_guard<std::mutex> lock(mu_);
    auto &slot = gauges_[std::string(name)];
    if (!slot) {
      slot = std::make_unique<Gauge>();
    }
    return *slot;
  }
  void countDrop(std::string_view reason) noexcept override { counter("dropped", reason).add(); }
  [[nodiscard]] std::string_view pipeline() const noexcept override { return pipeline_; }
  [[nodiscard]] std::string_view instance() const noexcept override { return instance_; }
  [[nodiscard]] bool stopping() const noexcept override { return stopping_.load(); }

  /// The value of counter @p name (with @p label); 0 when it was never looked up.
  [[nodiscard]] std::uint64_t value(std::string_view name, std::string_view label = {}) const {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = counters_.find(key(name, label));
    return it == counters_.end() ? 0 : it->second->value();
  }
  [[nodiscard]] std::int64_t gaugeValue(std::string_view name) const {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = gauges_.find(std::string(name));
    return it == gauges_.end() ? 0 : it->second->value();
  }
  /// Every counter, as "name" or "name{label}" -> value.
  [[nodiscard]] std::map<std::string, std::uint64_t> counters() const {
    std::lock_guard<std::mutex> lock(mu_);
    std::map<std::string, std::uint64_t> out;
    for (const auto &[k, c] : counters_) {
      out[k] = c->value();
    }
    return out;
  }
  [[nodiscard]] RecordingLogger &logger() noexcept { return logger_; }
  void setStopping(bool on) noexcept { stopping_.store(on); }

 private:
  static std::string key(std::string_view name, std::string_view label) {
    return label.empty() ? std::string(name) : std::string(name) + "{" + std::string(label) + "}";
  }
  std::string pipeline_;
  std::string instance_;
  RecordingLogger logger_;
  mutable std::mutex mu_;
  std::map<std::string, std::unique_ptr<Counter>> counters_;
  std::map<std::string, std::unique_ptr<Gauge>> gauges_;
  std::atomic<bool> stopping_{false};
};

/// An eventfd a fake context hands out as its wakeFd().
class WakeFd {
 public:
  WakeFd() : fd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {}
  ~WakeFd() {
    if (fd_ >= 0) {
      ::close(fd_);
    }
  }
  WakeFd(const WakeFd &) = delete;
  WakeFd &operator=(const WakeFd &) = delete;
  [[nodiscard]] int fd() const noexcept { return fd_; }
  void signal() const noexcept {
    std::uint64_t one = 1;
    (void)!::write(fd_, &one, sizeof one);
  }
  void drain() const noexcept {
    std::uint64_t v = 0;
    (void)!::read(fd_, &v, sizeof v);
  }

 private:
  int fd_;
};

using FakeFilterContext = FakeContextBase<FilterContext>;

/// A SourceContext that keeps what the source submitted (no filters, no outputs).
class FakeSourceContext final : public FakeContextBase<SourceContext> {
 public:
  struct Submitted {
    Message message;
    std::uint64_t tag;
  };
  explicit FakeSourceContext(std::string pipeline = "test", std::string instance = "input")
      : FakeContextBase(std::move(pipeline), std::move(instance)) {}
  SubmitResult submit(Message &&msg, std::uint64_t tag) noexcept override {
    if (!accepting_.load()) {
      return SubmitResult::Stopping;
    }
    std::lock_guard<std::mutex> lock(mu_);
    submitted_.push_back({std::move(msg), tag});
    ++in_flight_;
    return SubmitResult::Accepted;
  }
  [[nodiscard]] int wakeFd() const noexcept override { return wake_.fd(); }
  [[nodiscard]] std::size_t inFlight() const noexcept override {
    std::lock_guard<std::mutex> lock(mu_);
    return in_flight_;
  }
  void wantFiltered(bool on) noexcept override { want_filtered_ = on; }

  /// Takes the messages submitted so far (in order).
  std::vector<Submitted> take() {
    std::lock_guard<std::mutex> lock(mu_);
    return std::exchange(submitted_, {});
  }
  [[nodiscard]] std::size_t submittedCount() const {
    std::lock_guard<std::mutex> lock(mu_);
    return submitted_.size();
  }
  /// The test settled one submitted message (the source's complete() is the caller's).
  void completed() {
    std::lock_guard<std::mutex> lock(mu_);
    if (in_flight_ > 0) {
      --in_flight_;
    }
    wake_.signal();
  }
  /// After this, submit() answers Stopping (as after Source::stopIntake()).
  void closeIntake() noexcept { accepting_.store(false); }
  [[nodiscard]] bool wantsFiltered() const noexcept { return want_filtered_; }

 private:
  mutable std::mutex mu_;
  std::vector<Submitted> submitted_;
  std::size_t in_flight_ = 0;
  std::atomic<bool> accepting_{true};
  bool want_filtered_ = false;
  WakeFd wake_;
};

/// A SinkContext that records how the sink settled each delivery.
class FakeSinkContext final : public FakeContextBase<SinkContext> {
 public:
  struct Settled {
    DeliveryId id;
    Outcome outcome;
    std::string reason;
    bool retried = false;  ///< settled by retry() (the message came back)
  };
  explicit FakeSinkContext(std::string pipeline = "test", std::string instance = "outputs[0]")
      : FakeContextBase(std::move(pipeline), std::move(instance)) {}
  void done(DeliveryId id, Outcome outcome, std::string_view reason = {}) noexcept override {
    std::lock_guard<std::mutex> lock(mu_);
    settled_.push_back({id, outcome, std::string(reason), false});
  }
  void retry(DeliveryId id, Message &&msg, std::string_view reason) noexcept override {
    std::lock_guard<std::mutex> lock(mu_);
    settled_.push_back({id, Outcome::Retry, std::string(reason), true});
    returned_.push_back(std::move(msg));
  }
  [[nodiscard]] int wakeFd() const noexcept override { return wake_.fd(); }
  [[nodiscard]] std::size_t pending() const noexcept override {
    std::lock_guard<std::mutex> lock(mu_);
    return handed_ >= settled_.size() ? handed_ - settled_.size() : 0;
  }
  [[nodiscard]] bool inputCanRedeliver() const noexcept override { return can_redeliver_; }
  [[nodiscard]] unsigned attempt() const noexcept override { return attempt_; }

  /// The harness (or a test calling send() itself) counts each message it hands over.
  void handed() {
    std::lock_guard<std::mutex> lock(mu_);
    ++handed_;
  }
  void setInputCanRedeliver(bool on) noexcept { can_redeliver_ = on; }
  void setAttempt(unsigned n) noexcept { attempt_ = n; }
  [[nodiscard]] std::vector<Settled> settled() const {
    std::lock_guard<std::mutex> lock(mu_);
    return settled_;
  }
  /// Messages the sink handed back through retry().
  [[nodiscard]] std::vector<Message> returned() const {
    std::lock_guard<std::mutex> lock(mu_);
    return returned_;
  }

 private:
  mutable std::mutex mu_;
  std::vector<Settled> settled_;
  std::vector<Message> returned_;
  std::size_t handed_ = 0;
  bool can_redeliver_ = true;
  unsigned attempt_ = 0;
  WakeFd wake_;
};

}  // namespace switchyard::testkit
