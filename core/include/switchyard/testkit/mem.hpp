// SPDX-License-Identifier: MIT
//
// Test kit: an in-memory input and output, to put around the plugin under test in a real
// Engine (Engine::registerSource / registerSink, in-process) or to drive a Harness.
//
//   auto in = std::make_shared<testkit::MemSource::State>();
//   in->messages = {Message("a.b", "{}")};
//   engine.registerSource("mem-in", {}, [in](const sdk::Config &) {
//     return std::make_unique<testkit::MemSource>(in);
//   }, /*can_ack=*/true);
//   ...
//   REQUIRE(in->waitCompleted(1, std::chrono::seconds(5)));
//
// THREADING: the plugin methods run on the engine's threads; State is locked, and its
// wait functions block the test's thread until a condition holds or the timeout passed.
#pragma once

#include <poll.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "switchyard/plugin.hpp"

namespace switchyard::testkit {

/// How one message ended, as a source or a sink's context was told.
struct Completion {
  std::uint64_t tag;
  Outcome outcome;
  std::string reason;
};

/// A Source that submits a given list of messages (tag = index), then ends the stream
/// (or, with hold_open, keeps polling until the pipeline stops), and records complete().
class MemSource final : public Source {
 public:
  struct State {
    std::vector<Message> messages;  ///< what to submit, in order (set before start)
    bool hold_open = false;         ///< do not end the stream after the last message
    std::size_t per_poll = 1;       ///< messages submitted per poll() call

    /// Waits until @p n messages were completed; false on timeout.
    bool waitCompleted(std::size_t n, std::chrono::milliseconds timeout) {
      std::unique_lock<std::mutex> lock(mu);
      return cv.wait_for(lock, timeout, [&] { return completions.size() >= n; });
    }
    [[nodiscard]] std::vector<Completion> completed() {
      std::lock_guard<std::mutex> lock(mu);
      return completions;
    }
    [[nodiscard]] std::size_t submitted() {
      std::lock_guard<std::mutex> lock(mu);
      return next;
    }

    std::mutex mu;
    std::condition_variable cv;
    std::vector<Completion> completions;
    std::size_t next = 0;
  };

  explicit MemSource(std::shared_ptr<State> state) : state_(std::move(state)) {}
  explicit MemSource(std::vector<Message> messages) : state_(std::make_shared<State>()) {
    state_->messages = std::move(messages);
  }
  [[nodiscard]] const std::shared_ptr<State> &state() const noexcept { return state_; }

  Status start(SourceContext &) noexcept override { return Status::ok(); }
  Status poll(SourceContext &ctx, std::chrono::milliseconds timeout) noexcept override {
    for (std::size_t k = 0; k < state_->per_poll; ++k) {
      std::size_t i = 0;
      Message m;
      {
        std::lock_guard<std::mutex> lock(state_->mu);
        if (state_->next >= state_->messages.size()) {
          break;
        }
        i = state_->next;
        m = state_->messages[i];
      }
      if (ctx.submit(std::move(m), i) != SourceContext::SubmitResult::Accepted) {
        return Status::ok();
      }
      std::lock_guard<std::mutex> lock(state_->mu);
      state_->next = i + 1;
    }
    bool all_sent = false;
    bool hold_open = false;
    {
      std::lock_guard<std::mutex> lock(state_->mu);
      all_sent = state_->next >= state_->messages.size();
      hold_open = state_->hold_open;
    }
    if (all_sent && !hold_open) {
      return Status::endOfStream();
    }
    if (all_sent) {  // nothing more to say: wait (for completions) instead of spinning
      pollfd pfd{ctx.wakeFd(), POLLIN, 0};
      (void)::poll(&pfd, 1, static_cast<int>(std::min<std::int64_t>(timeout.count(), 100)));
    }
    return Status::ok();
  }
  void complete(std::uint64_t tag, Outcome outcome, std::string_view reason) noexcept override {
    try {
      std::lock_guard<std::mutex> lock(state_->mu);
      state_->completions.push_back({tag, outcome, std::string(reason)});
    } catch (...) {
    }
    state_->cv.notify_all();
  }

 private:
  std::shared_ptr<State> state_;
};

/// A Sink that keeps every message it got and settles each with a chosen outcome.
class MemSink final : public Sink {
 public:
  struct State {
    Outcome outcome = Outcome::Delivered;  ///< how every message is settled
    std::string reason;                    ///< for Dropped, Retry and Reject

    /// Waits until @p n messages arrived; false on timeout.
    bool waitReceived(std::size_t n, std::chrono::milliseconds timeout) {
      std::unique_lock<std::mutex> lock(mu);
      return cv.wait_for(lock, timeout, [&] { return received.size() >= n; });
    }
    [[nodiscard]] std::vector<Message> messages() {
      std::lock_guard<std::mutex> lock(mu);
      return received;
    }

    std::mutex mu;
    std::condition_variable cv;
    std::vector<Message> received;
  };

  explicit MemSink(std::shared_ptr<State> state) : state_(std::move(state)) {}
  explicit MemSink(Outcome outcome = Outcome::Delivered, std::string reason = {})
      : state_(std::make_shared<State>()) {
    state_->outcome = outcome;
    state_->reason = std::move(reason);
  }
  [[nodiscard]] const std::shared_ptr<State> &state() const noexcept { return state_; }

  Status start(SinkContext &) noexcept override { return Status::ok(); }
  void send(SinkContext &ctx, Message &&msg, DeliveryId id) noexcept override {
    Outcome outcome = Outcome::Delivered;
    std::string reason;
    try {
      std::lock_guard<std::mutex> lock(state_->mu);
      outcome = state_->outcome;
      reason = state_->reason;
      state_->received.push_back(std::move(msg));
    } catch (...) {
      outcome = Outcome::Retry;
      reason = "out_of_memory";
    }
    state_->cv.notify_all();
    ctx.done(id, outcome, outcome == Outcome::Delivered ? std::string_view() : std::string_view(reason));
  }

 private:
  std::shared_ptr<State> state_;
};

}  // namespace switchyard::testkit
