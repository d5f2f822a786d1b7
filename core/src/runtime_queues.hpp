// SPDX-License-Identifier: MIT
// The bounded queue between a pipeline's input and one output, and what waits in an
// output for a retry (internal).
#pragma once

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

#include "runtime_tracker.hpp"
#include "switchyard/json.hpp"
#include "switchyard/message.hpp"

namespace switchyard::rt {

using Clock = std::chrono::steady_clock;

struct Item {
  Message msg;
  Tracker *tracker;
};

/// Bytes of heap a glibc malloc(@p n) takes: the chunk, header included, 16-byte aligned,
/// 32 at least.
constexpr std::size_t mallocChunk(std::size_t n) noexcept {
  return std::max<std::size_t>(32, (n + 8 + 15) & ~std::size_t{15});
}

/// Heap held by the nodes under @p v of a parsed tree (json::Value, switchyard/json.hpp):
/// their vectors and long strings. The codec parses at most 128 levels deep; below 256 a
/// tree some plugin built is not followed (undercounted, never a stack overflow).
inline std::size_t treeBytes(const json::Value &v, unsigned depth = 0) noexcept {
  auto str = [](const std::string &x) -> std::size_t {
    return x.capacity() > 15 ? mallocChunk(x.capacity() + 1) : 0;
  };
  std::size_t n = str(v.text);
  if (depth >= 256) {
    return n;
  }
  if (v.items.capacity() > 0) {
    n += mallocChunk(v.items.capacity() * sizeof(json::Value));
    for (const auto &item : v.items) {
      n += treeBytes(item, depth + 1);
    }
  }
  if (v.members.capacity() > 0) {
    n += mallocChunk(v.members.capacity() * sizeof(json::Member));
    for (const auto &m : v.members) {
      n += str(m.key) + treeBytes(m.value, depth + 1);
    }
  }
  return n;
}

/// What one queued message really costs: the object, every string buffer that does not fit
/// its small-string space (by capacity, not size, with the allocator's header), the carried
/// envelope and parsed trees (counted in every queue that holds a copy, though copies
/// share them), the meta vector's buffer, its share of the tracker and the queue's
/// bookkeeping.
/// Message::byteSize() counts only the text, about half of this for a fedmsg message of a
/// few hundred bytes, so it would not bound the memory queue_max_bytes promises to.
inline std::size_t footprint(const Message &m) noexcept {
  auto str = [](const std::string &x) -> std::size_t {
    return x.capacity() > 15 ? mallocChunk(x.capacity() + 1) : 0;
  };
  std::size_t n = sizeof(Item) + sizeof(std::size_t) + mallocChunk(sizeof(Tracker)) + str(m.topic()) +
                  str(m.body()) + str(m.headers()) + str(m.id()) + m.envelopeBytes();
  // A cached tree: its root, made with make_shared (control block), and its nodes.
  if (const auto &body = m.parsedBodyCache()) {
    n += mallocChunk(sizeof(json::Value) + 16) + treeBytes(*body);
  }
  if (const auto &headers = m.parsedHeadersCache()) {
    n += mallocChunk(sizeof(json::Value) + 16) + treeBytes(*headers);
  }
  if (m.meta.capacity() > 0) {
    n += mallocChunk(m.meta.capacity() * sizeof(m.meta[0]));
  }
  for (const auto &kv : m.meta) {
    n += str(kv.first) + str(kv.second);
  }
  return n;
}

class OutputQueue {
 public:
  OutputQueue(std::size_t max_messages, std::size_t max_bytes, Gauge &depth, Gauge &bytes)
      : max_messages_(std::max<std::size_t>(1, max_messages)),
        max_bytes_(max_bytes),
        depth_(depth),
        bytes_gauge_(bytes) {}

  /// Blocks while full. Returns false (item not queued) when @p give_up says so. Messages
  /// the output holds for a retry count against the same limits (hold()).
  template <typename GiveUp>
  bool push(Item &&item, GiveUp &&give_up) {
    std::size_t size = footprint(item.msg);
    std::unique_lock lock(mutex_);
    while (items_.size() + held_count_ > 0 &&
           (items_.size() + held_count_ >= max_messages_ || bytes_ + held_bytes_ + size > max_bytes_)) {
      if (give_up()) {
        return false;
      }
      not_full_.wait_for(lock, std::chrono::milliseconds(20));
    }
    bool first = items_.empty();  // see CompletionQueue::push
    bytes_ += size;
    item_sizes_.push_back(size);
    items_.push_back(std::move(item));
    depth_.set(static_cast<std::int64_t>(items_.size()));
    bytes_gauge_.set(static_cast<std::int64_t>(bytes_));
    lock.unlock();
    if (first) {
      ready_.signal();
    }
    return true;
  }

  void popBatch(std::vector<Item> &out, std::size_t max) {
    {
      std::lock_guard lock(mutex_);
      while (!items_.empty() && out.size() < max) {
        out.push_back(std::move(items_.front()));
        items_.pop_front();
        bytes_ -= item_sizes_.front();
        item_sizes_.pop_front();
      }
      if (items_.empty()) {
        ready_.clear();
      }
      depth_.set(static_cast<std::int64_t>(items_.size()));
      bytes_gauge_.set(static_cast<std::int64_t>(bytes_));
    }
    not_full_.notify_all();
  }

  /// A message of @p size bytes waits in the output for a retry: it still takes room.
  void hold(std::size_t size) {
    std::lock_guard lock(mutex_);
    ++held_count_;
    held_bytes_ += size;
  }
  void release(std::size_t size) {
    {
      std::lock_guard lock(mutex_);
      --held_count_;
      held_bytes_ -= size;
    }
    not_full_.notify_all();
  }

  void close() {
    {
      std::lock_guard lock(mutex_);
      closed_ = true;
    }
    ready_.signal();
    not_full_.notify_all();
  }
  bool closedAndEmpty() {
    std::lock_guard lock(mutex_);
    return closed_ && items_.empty();
  }
  bool empty() {
    std::lock_guard lock(mutex_);
    return items_.empty();
  }
  void wake() { not_full_.notify_all(); }
  [[nodiscard]] int fd() const noexcept { return ready_.fd(); }

 private:
  std::size_t max_messages_;
  std::size_t max_bytes_;
  Gauge &depth_;
  Gauge &bytes_gauge_;
  std::mutex mutex_;
  std::condition_variable not_full_;
  std::deque<Item> items_;
  std::deque<std::size_t> item_sizes_;
  std::size_t bytes_ = 0;
  std::size_t held_count_ = 0;
  std::size_t held_bytes_ = 0;
  bool closed_ = false;
  EventFd ready_;
};

/// A delivery handed to a sink and not yet settled.
struct PendingDelivery {
  Tracker *tracker = nullptr;
  unsigned attempt = 0;            ///< earlier tries of this message at this output
  Clock::time_point first_failure;  ///< of the first retry (attempt > 0)
};

/// A message an output waits to send again.
struct RetryItem {
  Message msg;
  std::size_t size = 0;  ///< as held in the queue's accounting
  PendingDelivery d;
  std::string reason;
};

}  // namespace switchyard::rt
