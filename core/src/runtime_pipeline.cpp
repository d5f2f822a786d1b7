// SPDX-License-Identifier: MIT
//
// A pipeline's set-up, its input thread, submit() and the dispatch to the outputs.
//
// Threads: one per input (the source, then the filters, run there) and one per output.
// Between the input and each output sits a bounded queue (messages and bytes). A pipeline
// with `workers` > 1 runs its filters on that many worker threads instead, each with its
// own chain of filter instances (runtime_workers.cpp); a reorder window puts the results
// back into the order in which the source submitted them before they reach the outputs.
// Every submitted message gets a Tracker (runtime_tracker.hpp) that counts the outputs
// still owing an outcome; when the last one reports, the aggregated outcome goes back to
// the input thread through a completion queue and the source settles its delivery
// (docs/architecture.md).
#include <algorithm>
#include <stdexcept>
#include <system_error>

#include "runtime_pipeline.hpp"
#include "runtime_tap.hpp"

namespace switchyard {

namespace {
constexpr std::chrono::milliseconds kIdlePoll{100};
}  // namespace

Pipeline::Pipeline(PipelinePlan plan, CounterStore &counters, const Settings &settings)
    : name_(std::move(plan.name)),
      counters_(counters),
      settings_(settings),
      journal_spec_(std::move(plan.journal)),
      input_(std::move(plan.input)),
      in_flight_gauge_(counters.gauge(name_, "", "in_flight")) {
  source_ = static_cast<Source *>(input_.plugin.get());
  source_ctx_ = std::make_unique<SourceCtx>(*this, input_.place, input_.type);
  received_ = &source_ctx_->counter("received", {});
  latency_ = &counters.histogram(name_, "", "pipeline_latency_seconds");
  for (auto &chain : plan.filters) {
    Lane lane;
    for (auto &f : chain) {
      FilterStage fs;
      fs.filter = static_cast<Filter *>(f.plugin.get());
      // Every instance of one filter entry shares its label, hence its counters.
      fs.ctx = std::make_unique<FilterCtx>(*this, f.place, f.type);
      fs.stage = std::move(f);
      lane.push_back(std::move(fs));
    }
    lanes_.push_back(std::move(lane));
  }
  if (lanes_.empty()) {
    lanes_.emplace_back();
  }
  if (lanes_.size() > 1) {
    // Enough room for every worker to stay busy while a slow message holds the head.
    par_ring_.resize(std::max<std::size_t>(64, 16 * lanes_.size()));
  }
  for (auto &s : plan.outputs) {
    auto o = std::make_unique<Output>();
    o->sink = static_cast<Sink *>(s.plugin.get());
    o->ctx = std::make_unique<SinkCtx>(*this, *o, s.place, s.type);
    o->queue = std::make_unique<OutputQueue>(settings.queue_max_messages, settings.queue_max_bytes,
                                             o->ctx->gauge("queue_depth"),
                                             o->ctx->gauge("queue_bytes"));
    o->sent = &o->ctx->counter("sent", {});
    o->retry_held = &o->ctx->gauge("retry_held");
    // Exponential from initial_backoff, capped at max_backoff, jittered by ±jitter; at the
    // cap never more than one retry a second.
    o->backoff = sdk::Backoff({.initial_s = s.retry.initial_backoff_s,
                               .max_s = s.retry.max_backoff_s,
                               .jitter = s.retry.jitter,
                               .min_at_cap_s = 1.0});
    o->stage = std::move(s);
    outputs_.push_back(std::move(o));
  }
}

Pipeline::~Pipeline() { join(); }

bool Pipeline::giveUp() const noexcept {
  if (abort_.load()) {
    return true;
  }
  if (!stop_requested_.load()) {
    return false;
  }
  auto now = Clock::now().time_since_epoch().count();
  return now > drain_deadline_ns_.load();
}

void Pipeline::settleNow(std::uint64_t tag, Outcome o, std::string_view reason) {
  completions_.push({tag, o, std::string(reason)});
}

SourceContext::SubmitResult Pipeline::submit(Message &&msg, std::uint64_t tag) noexcept {
  // During Source::stopIntake() submissions are still taken (a ZeroMQ source hands over what
  // its socket holds); after it, and when aborting, they are refused.
  if (intake_closed_.load() || abort_.load() || (intake_stopped_.load() && giveUp())) {
    return SourceContext::SubmitResult::Stopping;
  }
  try {
    const std::int64_t now_ns = Clock::now().time_since_epoch().count();
    last_submit_ns_.store(now_ns, std::memory_order_relaxed);
    received_->add();
    in_flight_.fetch_add(1);
    in_flight_gauge_.add(1);
    if (!journal_spec_.enabled && inactive_outputs_.load(std::memory_order_relaxed) > 0) {
      // An output stands by (SinkContext::setActive) and there is no journal to keep it in.
      source_ctx_->countDrop("standby");
      settleNow(tag, Outcome::Dropped, "standby");
    } else if (lanes_.size() > 1) {
      submitParallel(std::move(msg), tag, now_ns);
    } else {
      Refusal why;
      if (runFilters(lanes_.front(), msg, why)) {
        notifyPassed(tag);
        dispatch(std::move(msg), tag, now_ns);
      } else {
        settleRefused(tag, std::move(why));
      }
    }
  } catch (const std::exception &e) {
    source_ctx_->log().error("internal error while submitting: {}", e.what());
    settleNow(tag, Outcome::Retry, "internal_error");
  }
  return SourceContext::SubmitResult::Accepted;
}

bool Pipeline::runFilters(Lane &lane, Message &msg, Refusal &why) {
  for (auto &f : lane) {
    Verdict v = f.filter->process(*f.ctx, msg);
    if (v.kind == Verdict::Kind::Pass) {
      continue;
    }
    why.reason = v.reason.empty() ? "unspecified" : v.reason;
    why.by = f.stage.type;
    if (v.kind == Verdict::Kind::Drop) {
      f.ctx->countDrop(why.reason);
      why.outcome = Outcome::Dropped;
    } else {
      f.ctx->counter("errors", why.reason).add();
      f.ctx->log().debug("message failed: {}", why.reason);
      why.outcome = v.retry ? Outcome::Retry : Outcome::Reject;
    }
    return false;
  }
  return true;
}

void Pipeline::notifyPassed(std::uint64_t tag) {
  if (want_filtered_.load(std::memory_order_relaxed)) {
    Completion c{tag, Outcome::Delivered, {}};
    c.filtered = true;
    c.passed = true;
    completions_.push(std::move(c));
  }
}

void Pipeline::settleRefused(std::uint64_t tag, Refusal &&why) {
  if (want_filtered_.load(std::memory_order_relaxed)) {
    Completion c{tag, Outcome::Delivered, why.reason};
    c.filtered = true;
    c.refused_by = std::move(why.by);
    completions_.push(std::move(c));
  }
  completions_.push({tag, why.outcome, std::move(why.reason)});
}

void Pipeline::dispatch(Message &&msg, std::uint64_t tag, std::int64_t submitted_ns) {
  if (jr_) {
    journalAppend(std::move(msg), tag, submitted_ns);  // the feeder dispatches it
    return;
  }
  dispatchOut(std::move(msg), tag, submitted_ns, false);
}

void Pipeline::dispatchOut(Message &&msg, std::uint64_t tag, std::int64_t submitted_ns, bool journaled) {
  if (tap::active()) [[unlikely]] {  // a tap client is attached (runtime_tap.hpp)
    tap::offer(name_, msg);
  }
  Tracker *tracker = trackers_.acquire(tag, static_cast<int>(outputs_.size()), submitted_ns, journaled);
  for (std::size_t i = 0; i < outputs_.size(); ++i) {
    auto &o = *outputs_[i];
    Item item{i + 1 == outputs_.size() ? std::move(msg) : msg, tracker};
    if (!o.queue->push(std::move(item), [this] { return giveUp(); })) {
      o.ctx->counter("failed", "shutdown").add();
      tracker->settle(Outcome::Retry, "shutdown");
    }
  }
}

void Pipeline::processCompletions(Source &src) {
  completions_.take(completion_buf_);
  const std::int64_t now_ns = completion_buf_.empty() ? 0 : Clock::now().time_since_epoch().count();
  for (auto &c : completion_buf_) {
    if (c.journaled) {
      journalComplete(src, c, now_ns);
      continue;
    }
    if (c.filtered) {
      src.filtered(c.tag, c.passed, c.refused_by, c.reason);
      continue;
    }
    if (c.outcome == Outcome::Delivered && c.submitted_ns != 0) {
      latency_->observe(now_ns - c.submitted_ns);  // end to end: submitted -> settled
    }
    source_ctx_->counter("completed", outcomeName(c.outcome)).add();
    if (c.outcome == Outcome::Retry && !input_.can_ack) {
      // Only an input that can redeliver can act on "retry": for any other input the
      // message is gone. Count it, so that received = delivered + dropped + lost + ...
      source_ctx_->counter("lost", c.reason).add();
    }
    src.complete(c.tag, c.outcome, c.reason);
    in_flight_.fetch_sub(1);
    in_flight_gauge_.add(-1);
  }
  completion_buf_.clear();
}

void Pipeline::failPipeline(std::string_view what, const Status &st) {
  logging::core()->error("pipeline '{}': {}: {}", name_, what, st.message());
  failed_.store(true);
  requestStop();
}

void Pipeline::requestStop() noexcept {
  if (stop_requested_.exchange(true)) {
    return;
  }
  auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                     std::chrono::duration<double>(settings_.drain_timeout_s));
  drain_deadline_ns_.store(deadline.time_since_epoch().count());
  for (auto &o : outputs_) {
    o->queue->wake();
  }
}

void Pipeline::closeOutputs() {
  for (auto &o : outputs_) {
    o->queue->close();
  }
}

void Pipeline::inputMain(std::promise<Status> started) {
  Source &src = *source_;
  Status st = src.start(*source_ctx_);
  for (auto &lane : lanes_) {
    for (std::size_t i = 0; st.isOk() && i < lane.size(); ++i) {
      st = lane[i].filter->start(*lane[i].ctx);
      if (!st.isOk()) {
        st = Status::fatal(fmt::format("{}: {}", lane[i].ctx->instance(), st.message()), st.key());
      }
    }
  }
  if (st.isOk() && lanes_.size() > 1) {
    try {
      for (std::size_t i = 0; i < lanes_.size(); ++i) {
        workers_.emplace_back([this, i] { workerMain(i); });
      }
    } catch (const std::system_error &e) {
      st = Status::fatal(fmt::format("cannot start filter workers: {}", e.what()));
      stopWorkers();
    }
  }
  if (!st.isOk()) {
    src.stop();
    started.set_value(st);
    return;
  }
  started.set_value(Status::ok());
  if (lanes_.size() > 1) {
    logging::core()->debug("pipeline '{}': {} filter workers", name_, lanes_.size());
  }
  if (jr_) {
    journalStartFeeder();
  }

  bool eos = false;
  auto &errors = source_ctx_->counter("errors", {});
  while (true) {
    processCompletions(src);
    if (stop_requested_.load() && !intake_stopped_.exchange(true)) {
      src.stopIntake(*source_ctx_);
      intake_closed_.store(true);
    }
    if (eos || intake_stopped_.load()) {
      if (jr_ ? journalIdle(eos) : in_flight_.load() == 0) {
        break;
      }
      if (giveUp()) {
        logging::core()->warn(
            "pipeline '{}': {} message(s) still in flight when the drain timeout passed; {}",
            name_, jr_ ? journalOutstanding() : in_flight_.load(),
            jr_ ? "they stay in the journal for the next start" : "they were not acknowledged");
        abort_.store(true);
        break;
      }
    }
    if (eos) {
      completions_.wait(kIdlePoll);
      continue;
    }
    st = src.poll(*source_ctx_, kIdlePoll);
    switch (st.code()) {
      case Status::Code::Ok: break;
      case Status::Code::EndOfStream:
        eos = true;
        intake_stopped_.store(true);
        intake_closed_.store(true);
        logging::core()->info("pipeline '{}': input ended; draining {} message(s)", name_,
                              in_flight_.load());
        break;
      case Status::Code::Error:
        errors.add();
        source_ctx_->log().warn("{}", st.message());
        break;
      case Status::Code::Fatal:
      case Status::Code::Permanent:
        failPipeline(source_ctx_->instance(), st);
        break;
    }
  }
  abort_.store(abort_.load() || failed_.load());
  if (jr_) {
    journalStopFeeder();  // it dispatches nothing more; what it has not is kept
  }
  stopWorkers();  // idle unless aborting: then they settle what they hold as retry
  closeOutputs();
  for (auto &o : outputs_) {
    if (o->thread.joinable()) {
      o->thread.join();
    }
  }
  processCompletions(src);
  for (auto &lane : lanes_) {
    for (auto &f : lane) {
      f.filter->stop();
    }
  }
  src.stop();
  if (jr_) {
    journalClose();  // before done: a new version of the pipeline may open the directory
  }
  {
    std::lock_guard lock(done_mutex_);
    done_.store(true);
  }
  done_cv_.notify_all();
}

void Pipeline::start() {
  // A delivery held longer than RabbitMQ's consumer_timeout (30 min by default) makes the
  // broker close the consumer's channel: retries must give up well before.
  if (input_.can_ack) {
    for (auto &o : outputs_) {
      const RetryPolicy &r = o->stage.retry;
      if (r.max_duration_s == 0 || r.max_duration_s > 1500) {
        o->ctx->log().warn(
            "retry.max_duration is {}: a message the input cannot settle for 30 minutes makes "
            "RabbitMQ close the consumer's channel (consumer_timeout); keep it below 1500 s",
            r.max_duration_s == 0 ? std::string("0 (no limit)") : fmt::format("{} s", r.max_duration_s));
      }
    }
  }
  if (journal_spec_.enabled) {
    journalOpen();  // throws StartError: nothing is running yet
  }
  std::vector<std::future<Status>> starts;
  for (auto &o : outputs_) {
    std::promise<Status> p;
    starts.push_back(p.get_future());
    o->thread = std::thread([this, out = o.get(), pr = std::move(p)]() mutable {
      outputMain(*out, std::move(pr));
    });
  }
  std::string failure;
  bool permanent = false;
  for (std::size_t i = 0; i < starts.size(); ++i) {
    Status st = starts[i].get();
    if (!st.isOk()) {
      failure = fmt::format("{}: {}", outputs_[i]->ctx->instance(), st.message());
      permanent = permanent || st.code() == Status::Code::Permanent;
    }
  }
  if (failure.empty()) {
    std::promise<Status> p;
    auto f = p.get_future();
    input_thread_ = std::thread([this, pr = std::move(p)]() mutable { inputMain(std::move(pr)); });
    Status st = f.get();
    if (!st.isOk()) {
      failure = fmt::format("{}: {}", source_ctx_->instance(), st.message());
      permanent = st.code() == Status::Code::Permanent;
      input_thread_.join();
    }
  }
  if (!failure.empty()) {
    failed_.store(true);
    stop_requested_.store(true);
    abort_.store(true);
    closeOutputs();
    for (auto &o : outputs_) {
      if (o->thread.joinable()) {
        o->thread.join();
      }
    }
    done_.store(true);
    throw StartError(failure, permanent);
  }
  started_ = true;
}

bool Pipeline::waitDone(std::optional<Clock::time_point> deadline) {
  std::unique_lock lock(done_mutex_);
  if (deadline) {
    return done_cv_.wait_until(lock, *deadline, [this] { return done_.load(); });
  }
  done_cv_.wait(lock, [this] { return done_.load(); });
  return true;
}

void Pipeline::join() {
  if (input_thread_.joinable()) {
    input_thread_.join();
  }
  for (auto &o : outputs_) {
    if (o->thread.joinable()) {
      o->queue->close();
      o->thread.join();
    }
  }
}

}  // namespace switchyard
