// SPDX-License-Identifier: MIT
//
// Filter workers: a pipeline with `workers` > 1 hands each submitted message, numbered, to
// the next free worker, which runs its own chain of filter instances over it; results wait
// in a ring (the reorder window) until every earlier message is out, so the outputs and
// Source::filtered() see the stream in the order the source submitted it.
#include "runtime_pipeline.hpp"

namespace switchyard {

// Input thread. Waits while the reorder window is full: that is the workers' backpressure.
void Pipeline::submitParallel(Message &&msg, std::uint64_t tag, std::int64_t submitted_ns) {
  {
    std::unique_lock lock(par_mutex_);
    while (par_next_seq_ - par_next_emit_ >= par_ring_.size()) {
      if (giveUp()) {
        lock.unlock();
        settleRefused(tag, Refusal{Outcome::Retry, "shutdown", {}});
        return;
      }
      par_space_cv_.wait_for(lock, std::chrono::milliseconds(20));
    }
    par_jobs_.push_back(Job{std::move(msg), tag, par_next_seq_++, submitted_ns});
  }
  par_work_cv_.notify_one();
}

void Pipeline::workerMain(std::size_t lane) {
  while (true) {
    Job job;
    {
      std::unique_lock lock(par_mutex_);
      par_work_cv_.wait(lock, [this] { return !par_jobs_.empty() || par_closing_; });
      if (par_jobs_.empty()) {
        return;
      }
      job = std::move(par_jobs_.front());
      par_jobs_.pop_front();
    }
    bool pass = false;
    Refusal why;
    try {
      if (abort_.load()) {
        why = Refusal{Outcome::Retry, "shutdown", {}};
      } else {
        pass = runFilters(lanes_[lane], job.msg, why);
      }
    } catch (const std::exception &e) {
      source_ctx_->log().error("internal error in a filter worker: {}", e.what());
      why = Refusal{Outcome::Retry, "internal_error", {}};
      pass = false;
    }
    {
      std::lock_guard lock(par_mutex_);
      Slot &slot = par_ring_[job.seq % par_ring_.size()];
      slot.ready = true;
      slot.pass = pass;
      slot.tag = job.tag;
      slot.submitted_ns = job.submitted_ns;
      if (pass) {
        slot.msg = std::move(job.msg);
      } else {
        slot.why = std::move(why);
      }
    }
    emitReady();
  }
}

// Emits the run of ready slots at the head of the window, in sequence order. Only one
// thread emits at a time; a thread that finds another emitting leaves its slot to it. The
// re-check after letting go closes the race with a slot deposited just before.
void Pipeline::emitReady() {
  while (true) {
    if (par_emitting_.exchange(true)) {
      return;
    }
    while (true) {
      Slot slot;
      {
        std::lock_guard lock(par_mutex_);
        Slot &head = par_ring_[par_next_emit_ % par_ring_.size()];
        if (!head.ready) {
          break;
        }
        slot = std::move(head);
        head = Slot{};
        ++par_next_emit_;
      }
      par_space_cv_.notify_one();
      try {
        if (slot.pass) {
          notifyPassed(slot.tag);
          dispatch(std::move(slot.msg), slot.tag, slot.submitted_ns);
        } else {
          settleRefused(slot.tag, std::move(slot.why));
        }
      } catch (const std::exception &e) {
        source_ctx_->log().error("internal error while queueing: {}", e.what());
        settleNow(slot.tag, Outcome::Retry, "internal_error");
      }
    }
    par_emitting_.store(false);
    std::lock_guard lock(par_mutex_);
    if (!par_ring_[par_next_emit_ % par_ring_.size()].ready) {
      return;
    }
  }
}

void Pipeline::stopWorkers() {
  {
    std::lock_guard lock(par_mutex_);
    par_closing_ = true;
  }
  par_work_cv_.notify_all();
  for (auto &w : workers_) {
    if (w.joinable()) {
      w.join();
    }
  }
  workers_.clear();
}

}  // namespace switchyard
