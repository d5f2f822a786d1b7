// SPDX-License-Identifier: MIT
// The disk journal's implementation class (internal to journal.cpp and journal_recover.cpp).
//
// MEMORY: the backlog's bodies stay on disk. Per segment the journal keeps one bit per
// sequence number (live or not); next() reads forward from a cursor (segment, offset), and
// only a bounded cache of the most recent appends (kCacheBytes) spares the fast path a
// reread of what it just wrote.
#pragma once

#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <limits>
#include <memory>
#include <mutex>
#include <thread>

#include "journal.hpp"

namespace switchyard::journal::detail {

namespace fs = std::filesystem;

constexpr std::size_t kCacheBytes = 1 << 20;

struct Fd {
  int fd = -1;
  explicit Fd(int f) : fd(f) {}
  Fd(const Fd &) = delete;
  Fd &operator=(const Fd &) = delete;
  ~Fd() {
    if (fd >= 0) {
      ::close(fd);
    }
  }
};

struct Segment {
  std::uint64_t first = 0;
  fs::path path;
  std::uint64_t size = 0;
  std::vector<bool> live;  ///< index: seq - first
  std::uint64_t live_count = 0;
  std::uint64_t min_ref = std::numeric_limits<std::uint64_t>::max();  ///< lowest seq its releases name
  [[nodiscard]] std::uint64_t end() const { return first + live.size(); }
};

struct Cached {
  std::uint64_t seg = 0;
  std::uint64_t off = 0;
  std::uint64_t end = 0;
  std::size_t bytes = 0;
  Record rec;
};

class JournalImpl final : public Journal {
 public:
  explicit JournalImpl(const Options &o) : opts_(o) {
    seg_limit_ = std::max<std::uint64_t>(std::min(o.segment_bytes, o.max_bytes / 8), 4096);
  }
  ~JournalImpl() override {
    {
      std::lock_guard lk(mu_);
      stop_ = true;
    }
    tick_.notify_all();
    if (flusher_.joinable()) {
      flusher_.join();
    }
    flush();
    if (rfd_ >= 0) {
      ::close(rfd_);
    }
    if (lock_fd_ >= 0) {
      ::close(lock_fd_);  // releases the flock
    }
  }

  bool start(std::vector<Problem> &problems, std::string &error);

  AppendResult append(const Message &msg) override;
  bool waitForSpace(std::size_t bytes, std::chrono::steady_clock::time_point deadline) override;
  void release(std::uint64_t seq) override;
  std::optional<Record> next() override;
  void flush() override;
  Stats stats() const override;

 private:
  Segment *segmentOf(std::uint64_t seq);
  void clearRange(std::uint64_t first, std::uint64_t count, Segment &writer);
  bool recover(const fs::path &file, std::uint64_t first, std::vector<Problem> &problems);
  bool roll(std::string &error);
  void makeRoom();
  void deleteReleased();
  bool writeLocked(const char *data, std::size_t n, std::string &error);
  bool writePendingLocked(std::string &error);
  void syncLocked();
  void flusherLoop();

  Options opts_;
  std::uint64_t seg_limit_;
  mutable std::mutex mu_;
  std::condition_variable tick_;
  std::condition_variable space_;
  std::thread flusher_;
  bool stop_ = false;

  int lock_fd_ = -1;
  std::deque<Segment> segs_;  // seq order; back() is the one being written
  std::shared_ptr<Fd> wfd_;
  bool dirty_ = false;
  std::uint64_t next_seq_ = 1;
  std::uint64_t last_seq_ = 0;
  std::uint64_t live_total_ = 0;
  std::uint64_t live_bytes_ = 0;
  std::uint64_t backlog_ = 0;
  std::atomic<std::uint64_t> fsyncs_{0};
  std::vector<std::uint64_t> pending_;  // released, release record not yet written
  std::string wbuf_;

  // The read cursor: the segment (by first seq) and the offset of the next record.
  std::uint64_t cur_seg_ = 0;
  std::uint64_t cur_off_ = 0;
  int rfd_ = -1;
  std::uint64_t rfd_seg_ = 0;
  std::uint64_t handed_upto_ = 0;  // every seq up to this one was handed out or skipped
  std::deque<Cached> cache_;
  std::size_t cache_bytes_ = 0;
};

}  // namespace switchyard::journal::detail
