// SPDX-License-Identifier: MIT
// The disk journal's open(): the lock (one writer per dir) and recovery of the segments,
// bad records reported as Problems and skipped.
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "journal_codec.hpp"
#include "journal_impl.hpp"

namespace switchyard::journal::detail {

namespace {

std::string lockHolder(int fd) {
  char buf[32] = {};
  ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
  std::string pid = n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
  while (!pid.empty() && (pid.back() == '\n' || pid.back() == ' ')) {
    pid.pop_back();
  }
  return pid.empty() ? std::string("another process") : fmt::format("another process (pid {})", pid);
}

}  // namespace

void JournalImpl::clearRange(std::uint64_t first, std::uint64_t count, Segment &writer) {
  writer.min_ref = std::min(writer.min_ref, first);
  const std::uint64_t last = first + count;  // exclusive
  for (auto &g : segs_) {
    const std::uint64_t lo = std::max(first, g.first);
    const std::uint64_t hi = std::min(last, g.end());
    for (std::uint64_t s = lo; s < hi; ++s) {
      if (g.live[s - g.first]) {
        g.live[s - g.first] = false;
        --g.live_count;
        --live_total_;
      }
    }
  }
}

bool JournalImpl::recover(const fs::path &file, std::uint64_t first, std::vector<Problem> &problems) {
  int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  struct stat st {};
  if (fd < 0 || ::fstat(fd, &st) != 0) {
    problems.push_back({file, 0, fmt::format("cannot read it: {}", std::strerror(errno)), 0});
    if (fd >= 0) {
      ::close(fd);
    }
    return false;
  }
  Segment &g = segs_.emplace_back();
  g.first = first;
  g.path = file;
  g.size = static_cast<std::uint64_t>(st.st_size);
  live_bytes_ += g.size;
  SegmentReader rd(fd, g.size);
  Payload p;
  std::string why;
  for (;;) {
    auto status = rd.read();
    if (status == SegmentReader::Status::End) {
      break;
    }
    if (status != SegmentReader::Status::Ok) {
      problems.push_back({file, rd.recordOffset(), rd.problem(), rd.skippedBytes()});
      if (status == SegmentReader::Status::Tail) {
        break;
      }
      continue;
    }
    if (!decodePayload(rd.payload(), p, why, true)) {
      problems.push_back({file, rd.recordOffset(), why, rd.payload().size() + kHeaderBytes});
      continue;
    }
    if (p.type == kTypeRelease) {
      for (const auto &[s, n] : p.ranges) {
        clearRange(s, n, g);
      }
      continue;
    }
    const std::uint64_t seq = p.record.seq;
    if (seq < first || seq <= last_seq_ || seq - first > (std::uint64_t{1} << 40)) {
      problems.push_back({file, rd.recordOffset(),
                          fmt::format("message seq {} out of order (segment starts at {}, last seq {})", seq,
                                      first, last_seq_),
                          rd.payload().size() + kHeaderBytes});
      continue;
    }
    g.live.resize(seq - first + 1, false);
    g.live[seq - first] = true;
    ++g.live_count;
    ++live_total_;
    last_seq_ = seq;
  }
  ::close(fd);
  return true;
}

bool JournalImpl::start(std::vector<Problem> &problems, std::string &error) {
  const fs::path &dir = opts_.dir;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    error = fmt::format("journal dir {}: cannot create it: {}", dir.string(), ec.message());
    return false;
  }
  const fs::path lock = dir / "lock";
  lock_fd_ = ::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock_fd_ < 0) {
    error = fmt::format("journal dir {}: cannot open {}: {}", dir.string(), lock.string(), std::strerror(errno));
    return false;
  }
  if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    const int e = errno;
    error = e == EWOULDBLOCK
                ? fmt::format("journal dir {} is in use by {} (it holds {}): one writer per journal "
                              "dir; stop it, or give each pipeline a journal dir of its own",
                              dir.string(), lockHolder(lock_fd_), lock.string())
                : fmt::format("journal dir {}: cannot lock {}: {}", dir.string(), lock.string(), std::strerror(e));
    return false;
  }
  const std::string pid = fmt::format("{}\n", ::getpid());
  if (::ftruncate(lock_fd_, 0) != 0 || ::pwrite(lock_fd_, pid.data(), pid.size(), 0) < 0) {
    // the pid is only informative
  }

  std::vector<std::pair<std::uint64_t, fs::path>> files;
  if (!listSegments(dir, files, error)) {
    return false;
  }
  std::uint64_t max_name = 0;
  for (const auto &[first, file] : files) {
    recover(file, first, problems);
    max_name = std::max(max_name, first);
  }
  next_seq_ = std::max({last_seq_ + 1, max_name, std::uint64_t{1}});
  backlog_ = live_total_;
  cur_seg_ = segs_.empty() ? 0 : segs_.front().first;
  if (!roll(error)) {
    return false;
  }
  deleteReleased();
  flusher_ = std::thread([this] { flusherLoop(); });
  return true;
}


}  // namespace switchyard::journal::detail
