// SPDX-License-Identifier: MIT
// The disk journal: segment files, the read cursor, release and segment deletion, group
// commit. See journal.hpp for the format and the contract, journal_impl.hpp for the state,
// journal_recover.cpp for open() and recovery.
#include "journal.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "journal_codec.hpp"
#include "journal_impl.hpp"

namespace switchyard::journal {

using namespace detail;

namespace {

std::int64_t nowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}


}  // namespace

namespace detail {

Segment *JournalImpl::segmentOf(std::uint64_t seq) {
  auto it = std::upper_bound(segs_.begin(), segs_.end(), seq,
                             [](std::uint64_t s, const Segment &g) { return s < g.first; });
  if (it == segs_.begin()) {
    return nullptr;
  }
  --it;
  return seq < it->end() ? &*it : nullptr;
}


bool JournalImpl::roll(std::string &error) {
  if (wfd_ && dirty_ && opts_.fsync != Fsync::Never) {
    syncLocked();
  }
  std::error_code ec;
  while (fs::exists(segmentPath(opts_.dir, next_seq_), ec)) {
    ++next_seq_;  // an empty segment of an earlier open: a gap in the numbers is harmless
  }
  const fs::path file = segmentPath(opts_.dir, next_seq_);
  int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) {
    error = fmt::format("journal dir {}: cannot create {}: {}", opts_.dir.string(), file.string(),
                        std::strerror(errno));
    return false;
  }
  wfd_ = std::make_shared<Fd>(fd);
  dirty_ = false;
  Segment &g = segs_.emplace_back();
  g.first = next_seq_;
  g.path = file;
  if (opts_.fsync != Fsync::Never) {
    // the new file's directory entry
    int dfd = ::open(opts_.dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
      ::fsync(dfd);
      ::close(dfd);
    }
  }
  return true;
}

void JournalImpl::deleteReleased() {
  bool deleted = false;
  for (std::size_t i = 0; i + 1 < segs_.size();) {
    Segment &g = segs_[i];
    bool can = g.live_count == 0;
    // Its release records must not name a message of an older segment still on disk: that
    // message would come back on the next open.
    for (std::size_t j = 0; can && j < i; ++j) {
      can = segs_[j].end() <= g.min_ref;
    }
    if (!can) {
      ++i;
      continue;
    }
    ::unlink(g.path.c_str());
    live_bytes_ -= g.size;
    if (rfd_ >= 0 && rfd_seg_ == g.first) {
      ::close(rfd_);
      rfd_ = -1;
    }
    segs_.erase(segs_.begin() + static_cast<std::ptrdiff_t>(i));
    deleted = true;
    i = 0;  // a younger segment may be deletable now
  }
  if (deleted) {
    space_.notify_all();
  }
}

void JournalImpl::makeRoom() {
  Segment &cur = segs_.back();
  if (cur.live_count == 0 && cur.size > 0) {
    std::string error;
    if (!pending_.empty()) {
      writePendingLocked(error);  // lands in the segment about to close
    }
    if (roll(error)) {
      deleteReleased();
    }
  }
}

bool JournalImpl::writeLocked(const char *data, std::size_t n, std::string &error) {
  Segment &cur = segs_.back();
  std::size_t done = 0;
  while (done < n) {
    ssize_t w = ::write(wfd_->fd, data + done, n - done);
    if (w < 0 && errno == EINTR) {
      continue;
    }
    if (w <= 0) {
      error = fmt::format("journal segment {}: write failed: {}", cur.path.string(),
                          std::strerror(w < 0 ? errno : ENOSPC));
      if (done > 0 && ::ftruncate(wfd_->fd, static_cast<off_t>(cur.size)) != 0) {
        // a torn record stays; recovery skips it
        cur.size += done;
        live_bytes_ += done;
      }
      return false;
    }
    done += static_cast<std::size_t>(w);
  }
  cur.size += n;
  live_bytes_ += n;
  dirty_ = true;
  return true;
}

bool JournalImpl::writePendingLocked(std::string &error) {
  if (pending_.empty()) {
    return true;
  }
  std::sort(pending_.begin(), pending_.end());
  wbuf_.clear();
  encodeRelease(wbuf_, pending_);
  segs_.back().min_ref = std::min(segs_.back().min_ref, pending_.front());
  pending_.clear();
  return writeLocked(wbuf_.data(), wbuf_.size(), error);
}

void JournalImpl::syncLocked() {
  if (wfd_ && ::fdatasync(wfd_->fd) == 0) {
    fsyncs_.fetch_add(1, std::memory_order_relaxed);
  }
  dirty_ = false;
}

Journal::AppendResult JournalImpl::append(const Message &msg) {
  AppendResult res;
  const std::size_t bytes = kHeaderBytes + messagePayloadBytes(msg);
  std::lock_guard lk(mu_);
  if (live_bytes_ + bytes > opts_.max_bytes) {
    makeRoom();
    if (live_bytes_ + bytes > opts_.max_bytes) {
      res.status = AppendStatus::Full;
      return res;
    }
  }
  if (segs_.back().size > 0 && segs_.back().size + bytes > seg_limit_) {
    if (!pending_.empty() && !writePendingLocked(res.error)) {
      res.status = AppendStatus::IoError;
      return res;
    }
    if (!roll(res.error)) {
      res.status = AppendStatus::IoError;
      return res;
    }
    deleteReleased();
  }
  Segment &cur = segs_.back();
  wbuf_.clear();
  if (!pending_.empty()) {
    std::sort(pending_.begin(), pending_.end());
    encodeRelease(wbuf_, pending_);
    cur.min_ref = std::min(cur.min_ref, pending_.front());
  }
  const std::uint64_t off = cur.size + wbuf_.size();
  const std::uint64_t seq = next_seq_;
  const std::int64_t now = nowMs();
  encodeMessage(wbuf_, seq, now, msg);
  if (!writeLocked(wbuf_.data(), wbuf_.size(), res.error)) {
    res.status = AppendStatus::IoError;
    return res;
  }
  pending_.clear();
  ++next_seq_;
  last_seq_ = seq;
  cur.live.resize(seq - cur.first + 1, false);
  cur.live[seq - cur.first] = true;
  ++cur.live_count;
  ++live_total_;
  ++backlog_;
  if (opts_.fsync == Fsync::Always) {
    syncLocked();
  }
  const std::size_t mem = msg.byteSize();
  if (cache_bytes_ + mem <= kCacheBytes) {
    cache_.push_back(Cached{cur.first, off, cur.size, mem, Record{seq, now, msg}});
    cache_bytes_ += mem;
  }
  res.seq = seq;
  return res;
}

bool JournalImpl::waitForSpace(std::size_t bytes, std::chrono::steady_clock::time_point deadline) {
  std::unique_lock lk(mu_);
  for (;;) {
    if (live_bytes_ + bytes <= opts_.max_bytes) {
      return true;
    }
    makeRoom();
    if (live_bytes_ + bytes <= opts_.max_bytes) {
      return true;
    }
    if (space_.wait_until(lk, deadline) == std::cv_status::timeout) {
      return live_bytes_ + bytes <= opts_.max_bytes;
    }
  }
}

void JournalImpl::release(std::uint64_t seq) {
  std::lock_guard lk(mu_);
  Segment *g = segmentOf(seq);
  if (g == nullptr || !g->live[seq - g->first]) {
    return;
  }
  g->live[seq - g->first] = false;
  --g->live_count;
  --live_total_;
  if (seq > handed_upto_) {
    --backlog_;
  }
  pending_.push_back(seq);
  if (g->live_count == 0 && g != &segs_.back()) {
    deleteReleased();
  }
}

std::optional<Record> JournalImpl::next() {
  std::lock_guard lk(mu_);
  Payload p;
  std::string why;
  for (;;) {
    while (!cache_.empty() && std::pair(cache_.front().seg, cache_.front().off) < std::pair(cur_seg_, cur_off_)) {
      cache_bytes_ -= cache_.front().bytes;
      cache_.pop_front();
    }
    if (!cache_.empty() && cache_.front().seg == cur_seg_ && cache_.front().off == cur_off_) {
      Cached c = std::move(cache_.front());
      cache_.pop_front();
      cache_bytes_ -= c.bytes;
      cur_off_ = c.end;
      const Segment *g = segmentOf(c.rec.seq);
      if (g != nullptr && g->live[c.rec.seq - g->first] && c.rec.seq > handed_upto_) {
        handed_upto_ = c.rec.seq;
        --backlog_;
        return std::move(c.rec);
      }
      continue;
    }
    auto it = std::lower_bound(segs_.begin(), segs_.end(), cur_seg_,
                               [](const Segment &g, std::uint64_t s) { return g.first < s; });
    if (it == segs_.end()) {
      return std::nullopt;
    }
    if (it->first != cur_seg_) {
      cur_seg_ = it->first;  // the cursor's segment was deleted or read: on to the next one
      cur_off_ = 0;
      continue;  // its first record may be in the cache
    }
    if (cur_off_ >= it->size) {
      if (&*it == &segs_.back()) {
        return std::nullopt;
      }
      cur_seg_ = it->first + 1;
      cur_off_ = 0;
      continue;
    }
    if (rfd_ < 0 || rfd_seg_ != it->first) {
      if (rfd_ >= 0) {
        ::close(rfd_);
      }
      rfd_ = ::open(it->path.c_str(), O_RDONLY | O_CLOEXEC);
      rfd_seg_ = it->first;
      if (rfd_ < 0) {
        cur_off_ = it->size;  // unreadable now: nothing to hand out from it
        continue;
      }
    }
    SegmentReader rd(rfd_, it->size);
    rd.seek(cur_off_);
    auto status = rd.read();
    cur_off_ = rd.offset();
    if (status != SegmentReader::Status::Ok || !decodePayload(rd.payload(), p, why, true) ||
        !isMessageType(p.type)) {
      continue;  // release records; bad records were reported by open()
    }
    const std::uint64_t seq = p.record.seq;
    const Segment *g = segmentOf(seq);
    if (g == nullptr || !g->live[seq - g->first] || seq <= handed_upto_ ||
        !decodePayload(rd.payload(), p, why, false)) {
      continue;
    }
    handed_upto_ = seq;
    --backlog_;
    return std::move(p.record);
  }
}

void JournalImpl::flush() {
  std::lock_guard lk(mu_);
  std::string error;
  writePendingLocked(error);
  if (dirty_ && opts_.fsync != Fsync::Never) {
    syncLocked();
  }
}

void JournalImpl::flusherLoop() {
  std::unique_lock lk(mu_);
  while (!stop_) {
    tick_.wait_for(lk, opts_.batch, [this] { return stop_; });
    if (stop_) {
      break;
    }
    std::string error;
    writePendingLocked(error);
    if (!dirty_ || opts_.fsync == Fsync::Never) {
      continue;
    }
    auto fd = wfd_;
    dirty_ = false;
    lk.unlock();
    if (::fdatasync(fd->fd) == 0) {  // group commit: appends go on meanwhile
      fsyncs_.fetch_add(1, std::memory_order_relaxed);
    }
    lk.lock();
  }
}

Stats JournalImpl::stats() const {
  std::lock_guard lk(mu_);
  Stats s;
  s.live_records = live_total_;
  s.live_bytes = live_bytes_;
  s.segments = segs_.size();
  s.backlog = backlog_;
  s.last_seq = last_seq_;
  s.fsyncs = fsyncs_.load(std::memory_order_relaxed);
  for (const auto &g : segs_) {
    if (g.live_count > 0) {
      auto it = std::find(g.live.begin(), g.live.end(), true);
      s.first_seq = g.first + static_cast<std::uint64_t>(it - g.live.begin());
      break;
    }
  }
  return s;
}

}  // namespace detail

std::unique_ptr<Journal> Journal::open(const Options &opts, std::vector<Problem> &problems, std::string &error) {
  try {
    auto j = std::make_unique<JournalImpl>(opts);
    if (!j->start(problems, error)) {
      return nullptr;
    }
    return j;
  } catch (const std::exception &e) {
    error = fmt::format("journal dir {}: {}", opts.dir.string(), e.what());
    return nullptr;
  }
}

std::size_t recordBytes(const Message &msg) { return kHeaderBytes + messagePayloadBytes(msg); }

}  // namespace switchyard::journal
