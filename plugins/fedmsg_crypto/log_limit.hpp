// SPDX-License-Identifier: MIT
//
// Rate limit for per-message warnings: a flood of forged or looping messages must not
// turn into a flood of log lines (the drop counters carry the totals).
//
// THREADING: thread-safe (a filter instance may be called from several worker threads);
// the lock is only taken on the rejection path, never for messages that pass.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>

namespace switchyard {

class LogLimit {
 public:
  explicit LogLimit(unsigned per_window = 10, std::chrono::seconds window = std::chrono::seconds(10))
      : per_window_(per_window), window_(window) {}
  /// True when a line may be written now. @p suppressed receives how many lines were held
  /// back since the last line that was allowed.
  bool allow(std::uint64_t &suppressed) noexcept {
    auto now = std::chrono::steady_clock::now();
    std::lock_guard<std::mutex> lock(mu_);
    if (now - start_ >= window_) {
      start_ = now;
      used_ = 0;
    }
    if (used_ < per_window_) {
      ++used_;
      suppressed = suppressed_;
      suppressed_ = 0;
      return true;
    }
    ++suppressed_;
    return false;
  }

 private:
  unsigned per_window_;
  std::chrono::steady_clock::duration window_;
  std::chrono::steady_clock::time_point start_{};
  unsigned used_ = 0;
  std::uint64_t suppressed_ = 0;
  std::mutex mu_;
};

}  // namespace switchyard
