// SPDX-License-Identifier: MIT
// The acknowledgement path of a pipeline (internal): the completion queue that carries
// outcomes back to the input thread, and the Tracker that counts the outputs still owing
// an outcome for one message, allocated from a pool the pipeline owns.
#pragma once

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "switchyard/plugin.hpp"

namespace switchyard::rt {

/// An eventfd used as a level-triggered "something is waiting" flag.
class EventFd {
 public:
  EventFd() : fd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
    if (fd_ < 0) {
      throw std::system_error(errno, std::generic_category(), "eventfd");
    }
  }
  ~EventFd() { ::close(fd_); }
  EventFd(const EventFd &) = delete;
  EventFd &operator=(const EventFd &) = delete;
  void signal() noexcept {
    std::uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(fd_, &one, sizeof one);
  }
  void clear() noexcept {
    std::uint64_t v;
    [[maybe_unused]] auto n = ::read(fd_, &v, sizeof v);
  }
  bool wait(std::chrono::milliseconds timeout) const noexcept {
    pollfd p{fd_, POLLIN, 0};
    return ::poll(&p, 1, static_cast<int>(timeout.count())) > 0;
  }
  [[nodiscard]] int fd() const noexcept { return fd_; }

 private:
  int fd_;
};

struct Completion {
  std::uint64_t tag;
  Outcome outcome;
  std::string reason;
  /// Source::filtered() notice rather than a settlement: @p outcome is unused, @p passed
  /// says whether the filters passed it, @p refused_by names the refusing filter.
  bool filtered = false;
  bool passed = false;
  std::string refused_by;
  /// When the message was submitted (steady clock ns; 0: unknown), for the latency histogram.
  std::int64_t submitted_ns = 0;
  /// @p tag is a journal sequence number, not the source's tag (runtime_journal.cpp).
  bool journaled = false;
};

/// Outcomes on their way back to the input thread. THREADING: push() from any thread;
/// take() from the input thread.
class CompletionQueue {
 public:
  /// Signals only when the queue turns non-empty: the reader drains everything it finds,
  /// so one wake-up per batch is enough and the threads do not ping-pong per message.
  void push(Completion c) {
    bool first;
    {
      std::lock_guard lock(mutex_);
      first = items_.empty();
      items_.push_back(std::move(c));
    }
    if (first) {
      ready_.signal();
    }
  }
  void take(std::vector<Completion> &out) {
    std::lock_guard lock(mutex_);
    ready_.clear();
    out.swap(items_);
  }
  [[nodiscard]] int fd() const noexcept { return ready_.fd(); }
  bool wait(std::chrono::milliseconds t) const noexcept { return ready_.wait(t); }

 private:
  std::mutex mutex_;
  std::vector<Completion> items_;
  EventFd ready_;
};

class TrackerPool;

/// Shared by every output of one message: the worst outcome so far and how many outputs
/// still owe one. Lives in its pipeline's TrackerPool; the last settle() hands the
/// aggregated outcome to the completion queue and gives the tracker back to the pool.
class Tracker {
 public:
  Tracker() = default;
  Tracker(const Tracker &) = delete;
  Tracker &operator=(const Tracker &) = delete;

  /// One output is done. The tracker must not be used by that output afterwards.
  void settle(Outcome o, std::string_view why);

 private:
  friend class TrackerPool;
  TrackerPool *pool_ = nullptr;
  Tracker *next_ = nullptr;  ///< free-list link while in the pool
  std::uint64_t tag_ = 0;
  std::int64_t submitted_ns_ = 0;
  bool journaled_ = false;
  std::atomic<int> remaining_{0};
  std::mutex mutex_;
  Outcome worst_ = Outcome::Delivered;
  std::string reason_;
};

/// Owns every Tracker of one pipeline. Trackers come in slabs that live as long as the
/// pool (so the pool holds as many as the pipeline ever had in flight at once) and are
/// reused. THREADING: acquire() from one thread at a time (the thread that dispatches: the
/// input thread, or the single reorder emitter, which hands over through an atomic);
/// release() (through Tracker::settle) from any output thread. Released trackers go onto
/// a lock-free stack that acquire() empties in one exchange, so neither side ever waits
/// for the other (and the pop-all leaves no ABA window).
class TrackerPool {
 public:
  explicit TrackerPool(CompletionQueue &completions) : completions_(completions) {}
  TrackerPool(const TrackerPool &) = delete;
  TrackerPool &operator=(const TrackerPool &) = delete;

  /// A tracker for message @p tag that @p outputs outputs will settle (at least one),
  /// submitted at @p submitted_ns (steady clock; 0: unknown). @p journaled: @p tag is a
  /// journal sequence number (runtime_journal.cpp).
  Tracker *acquire(std::uint64_t tag, int outputs, std::int64_t submitted_ns = 0, bool journaled = false) {
    if (free_ == nullptr) {
      free_ = returned_.exchange(nullptr, std::memory_order_acquire);
      if (free_ == nullptr) {
        grow();
      }
    }
    Tracker *t = free_;
    free_ = t->next_;
    t->next_ = nullptr;
    t->tag_ = tag;
    t->submitted_ns_ = submitted_ns;
    t->journaled_ = journaled;
    t->worst_ = Outcome::Delivered;
    t->reason_.clear();
    t->remaining_.store(outputs, std::memory_order_relaxed);
    return t;
  }

 private:
  friend class Tracker;
  static constexpr std::size_t kSlab = 256;

  void grow() {
    slabs_.push_back(std::make_unique<Tracker[]>(kSlab));
    Tracker *slab = slabs_.back().get();
    for (std::size_t i = 0; i < kSlab; ++i) {
      slab[i].pool_ = this;
      slab[i].next_ = i + 1 < kSlab ? &slab[i + 1] : nullptr;
    }
    free_ = slab;
  }
  void release(Tracker *t) noexcept {
    Tracker *head = returned_.load(std::memory_order_relaxed);
    do {
      t->next_ = head;
    } while (!returned_.compare_exchange_weak(head, t, std::memory_order_release,
                                              std::memory_order_relaxed));
  }

  CompletionQueue &completions_;
  std::vector<std::unique_ptr<Tracker[]>> slabs_;  ///< acquire()'s thread only
  Tracker *free_ = nullptr;                         ///< acquire()'s thread only
  std::atomic<Tracker *> returned_{nullptr};
};

inline void Tracker::settle(Outcome o, std::string_view why) {
  {
    std::lock_guard lock(mutex_);
    if (static_cast<int>(o) > static_cast<int>(worst_)) {
      worst_ = o;
      reason_.assign(why);
    }
  }
  if (remaining_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    // The last output: nobody else touches this tracker until the pool hands it out again.
    pool_->completions_.push({tag_, worst_, std::move(reason_), false, false, {}, submitted_ns_, journaled_});
    pool_->release(this);
  }
}

}  // namespace switchyard::rt
