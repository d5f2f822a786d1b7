// SPDX-License-Identifier: MIT
// A latency histogram with fixed buckets (internal): observed on a pipeline's input thread,
// read by the HTTP endpoint's threads. Atomic buckets, no lock on the observing side.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <vector>

namespace switchyard::rt {

class Histogram {
 public:
  /// Upper bounds of the buckets in seconds (Prometheus `le`), ascending; one more bucket
  /// counts what is above the last. From half a millisecond (a local hop) to a minute (a
  /// message held by retries).
  static constexpr std::array<double, 16> kBounds{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                  0.25,   0.5,   1,      2.5,   5,     10,    30,    60};

  Histogram() {
    for (std::size_t i = 0; i < kBounds.size(); ++i) {
      bounds_ns_[i] = static_cast<std::int64_t>(kBounds[i] * 1e9);
    }
  }

  /// Counts one value of @p ns nanoseconds (negative values count as 0).
  void observe(std::int64_t ns) noexcept {
    ns = std::max<std::int64_t>(ns, 0);
    auto it = std::lower_bound(bounds_ns_.begin(), bounds_ns_.end(), ns);  // le: bound >= value
    buckets_[static_cast<std::size_t>(it - bounds_ns_.begin())].fetch_add(1, std::memory_order_relaxed);
    sum_ns_.fetch_add(ns, std::memory_order_relaxed);
  }

  /// The count of each bucket (not cumulative; the last one is above every bound) and the
  /// sum in seconds. The count is the sum of the buckets, so a reader never sees a total
  /// that its buckets do not add up to.
  void read(std::vector<std::uint64_t> &buckets, double &sum_s) const {
    buckets.resize(buckets_.size());
    for (std::size_t i = 0; i < buckets_.size(); ++i) {
      buckets[i] = buckets_[i].load(std::memory_order_relaxed);
    }
    sum_s = static_cast<double>(sum_ns_.load(std::memory_order_relaxed)) / 1e9;
  }

 private:
  std::array<std::int64_t, kBounds.size()> bounds_ns_{};
  std::array<std::atomic<std::uint64_t>, kBounds.size() + 1> buckets_{};
  std::atomic<std::int64_t> sum_ns_{0};
};

}  // namespace switchyard::rt
