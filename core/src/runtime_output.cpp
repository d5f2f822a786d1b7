// SPDX-License-Identifier: MIT
//
// Output threads: each output takes batches from its queue and hands them to its sink;
// the sink settles each delivery through its context (done(), or retry() to have the
// message sent again after a backoff while it stays counted in the queue's limits).
#include <poll.h>

#include <algorithm>

#include "runtime_pipeline.hpp"

namespace switchyard {

namespace {
constexpr std::chrono::milliseconds kIdlePoll{100};
constexpr std::size_t kSinkBatch = 128;
}  // namespace

bool Pipeline::SinkCtx::takePending(DeliveryId id, const char *call, PendingDelivery &d) noexcept {
  std::lock_guard lock(out_.pending_mutex);
  auto it = out_.pending.find(id);
  if (it == out_.pending.end()) {
    logger_.error("{}() called for unknown or already settled delivery {}", call, id);
    return false;
  }
  d = it->second;
  out_.pending.erase(it);
  return true;
}

void Pipeline::SinkCtx::done(DeliveryId id, Outcome outcome, std::string_view reason) noexcept {
  PendingDelivery d;
  if (!takePending(id, "done", d)) {
    return;
  }
  Tracker *t = d.tracker;
  switch (outcome) {
    case Outcome::Delivered: out_.sent->add(); break;
    case Outcome::Dropped: countDrop(reason.empty() ? "unspecified" : reason); break;
    case Outcome::Retry:
    case Outcome::Reject: counter("failed", reason.empty() ? "unspecified" : reason).add(); break;
  }
  try {
    t->settle(outcome, reason);
  } catch (...) {
    logger_.error("out of memory while settling delivery {}", id);
  }
}

// Output thread. The message waits in this output (counted in its queue's limits) and is
// sent again after a jittered exponential backoff; the other outputs of the message are not
// involved. When the policy's max_duration has passed since the first failure, it is settled
// as Reject: an input that can redeliver dead-letters it, any other input counts it lost.
void Pipeline::SinkCtx::retry(DeliveryId id, Message &&msg, std::string_view reason) noexcept {
  PendingDelivery d;
  if (!takePending(id, "retry", d)) {
    return;
  }
  std::string why(reason.empty() ? "unspecified" : reason);
  try {
    const RetryPolicy &pol = out_.stage.retry;
    auto now = Clock::now();
    if (d.attempt == 0) {
      d.first_failure = now;
    }
    double spent = std::chrono::duration<double>(now - d.first_failure).count();
    bool exhausted = pol.max_duration_s > 0 && spent >= pol.max_duration_s;
    if (exhausted) {
      counter("failed", why).add();
      counter("retry_exhausted", why).add();
      logger_.error("gave up on message '{}' after {} attempt(s) over {:.1f} s ({}); {}", msg.id(),
                    d.attempt + 1, spent, why,
                    p_.input_.can_ack ? "the input rejects it (dead-letter)" : "it is lost");
      d.tracker->settle(Outcome::Reject, why);
      return;
    }
    // Stopping: an input that can redeliver gets it back at once (as dropRetries() does
    // for what already waits); for any other input it keeps its chance until the deadline.
    if (p_.abort_.load() || (p_.stop_requested_.load() && p_.input_.can_ack)) {
      counter("failed", "shutdown").add();
      d.tracker->settle(Outcome::Retry, "shutdown");
      return;
    }
    double wait = out_.backoff.delayFor(d.attempt);  // the policy: Pipeline::Pipeline()
    ++d.attempt;
    counter("retried", why).add();
    if (d.attempt == 1 || d.attempt % 10 == 0) {
      logger_.debug("message '{}' will be retried in {:.2f} s (attempt {}): {}", msg.id(), wait,
                    d.attempt + 1, why);
    }
    RetryItem item;
    item.size = rt::footprint(msg);
    item.msg = std::move(msg);
    item.d = d;
    item.reason = std::move(why);
    out_.queue->hold(item.size);
    auto due = now + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(wait));
    out_.retries.emplace(due, std::move(item));
    out_.retry_held->set(static_cast<std::int64_t>(out_.retries.size()));
  } catch (...) {
    logger_.error("out of memory while scheduling a retry of delivery {}", id);
    d.tracker->settle(Outcome::Retry, "out_of_memory");
  }
}

int Pipeline::SinkCtx::wakeFd() const noexcept { return out_.queue->fd(); }

std::size_t Pipeline::SinkCtx::pending() const noexcept {
  std::lock_guard lock(out_.pending_mutex);
  return out_.pending.size();
}

void Pipeline::outputMain(Output &o, std::promise<Status> started) {
  Sink &sink = *o.sink;
  SinkCtx &ctx = *o.ctx;
  Status st = sink.start(ctx);
  started.set_value(st);
  if (!st.isOk()) {
    return;
  }
  auto &errors = ctx.counter("errors", {});
  std::vector<Item> batch;
  batch.reserve(kSinkBatch);
  while (true) {
    // Messages waiting for a retry go first once due; at shutdown's deadline, or when the
    // sink failed, they are settled for the input to redeliver (or counted lost).
    if (!o.retries.empty()) {
      // An input that can redeliver gets them back as soon as the stop begins (the broker
      // keeps them); for any other input they keep their chance until the drain deadline.
      if (o.sink_failed || abort_.load() || giveUp() || (stop_requested_.load() && input_.can_ack)) {
        dropRetries(o, o.sink_failed ? "output_failed" : "shutdown");
      } else {
        auto now = Clock::now();
        while (!o.retries.empty() && o.retries.begin()->first <= now) {
          auto node = o.retries.extract(o.retries.begin());
          RetryItem &r = node.mapped();
          o.queue->release(r.size);
          sendToSink(o, std::move(r.msg), r.d);
        }
        o.retry_held->set(static_cast<std::int64_t>(o.retries.size()));
      }
    }
    o.queue->popBatch(batch, kSinkBatch);
    for (auto &it : batch) {
      if (o.sink_failed || abort_.load()) {
        const char *why = o.sink_failed ? "output_failed" : "shutdown";
        ctx.counter("failed", why).add();
        it.tracker->settle(Outcome::Retry, why);
        continue;
      }
      sendToSink(o, std::move(it.msg), PendingDelivery{it.tracker, 0, {}});
    }
    batch.clear();
    if (o.queue->closedAndEmpty() && o.retries.empty()) {
      break;
    }
    if (o.sink_failed) {
      pollfd p{o.queue->fd(), POLLIN, 0};
      (void)::poll(&p, 1, static_cast<int>(kIdlePoll.count()));
      continue;
    }
    auto timeout = o.queue->empty() ? kIdlePoll : std::chrono::milliseconds(0);
    if (!o.retries.empty()) {
      auto until = std::chrono::ceil<std::chrono::milliseconds>(o.retries.begin()->first - Clock::now());
      timeout = std::clamp(until, std::chrono::milliseconds(0), timeout);
    }
    st = sink.poll(ctx, timeout);
    if (st.code() == Status::Code::Error) {
      errors.add();
      ctx.log().warn("{}", st.message());
    } else if (st.code() == Status::Code::Fatal || st.code() == Status::Code::Permanent) {
      o.sink_failed = true;
      failPipeline(ctx.instance(), st);
    }
  }
  if (!o.sink_failed) {
    auto left = std::chrono::nanoseconds(drain_deadline_ns_.load() - Clock::now().time_since_epoch().count());
    auto timeout = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::max(left, std::chrono::nanoseconds(0)));
    if (!stop_requested_.load()) {  // end of input: no deadline was set
      timeout = std::chrono::milliseconds(static_cast<std::int64_t>(settings_.drain_timeout_s * 1000));
    }
    st = sink.flush(ctx, timeout);
    if (!st.isOk()) {
      ctx.log().warn("flush: {}", st.message());
    }
  }
  dropRetries(o, "shutdown");
  // Whatever the sink still owes is not known to be delivered: the input must redeliver.
  std::unordered_map<DeliveryId, PendingDelivery> left;
  {
    std::lock_guard lock(o.pending_mutex);
    left.swap(o.pending);
  }
  if (!left.empty()) {
    ctx.log().warn("{} message(s) not confirmed at shutdown", left.size());
  }
  for (auto &[id, d] : left) {
    ctx.counter("failed", "shutdown").add();
    d.tracker->settle(Outcome::Retry, "shutdown");
  }
  sink.stop();
}

void Pipeline::sendToSink(Output &o, Message &&msg, PendingDelivery d) {
  DeliveryId id = ++o.next_id;
  {
    std::lock_guard lock(o.pending_mutex);
    o.pending.emplace(id, d);
  }
  o.ctx->attempt_ = d.attempt;
  o.sink->send(*o.ctx, std::move(msg), id);
  o.ctx->attempt_ = 0;
}

void Pipeline::dropRetries(Output &o, const char *why) {
  if (o.retries.empty()) {
    return;
  }
  o.ctx->log().warn("{} message(s) waiting for a retry settled as '{}'", o.retries.size(), why);
  for (auto &[due, r] : o.retries) {
    o.queue->release(r.size);
    o.ctx->counter("failed", why).add();
    r.d.tracker->settle(Outcome::Retry, why);
  }
  o.retries.clear();
  o.retry_held->set(0);
}

}  // namespace switchyard
