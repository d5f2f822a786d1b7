// SPDX-License-Identifier: MIT
//
// SDK: jittered exponential backoff, the one the runtime uses for output retries and the
// transports use for reconnects. Header-only.
//
//   sdk::Backoff b({.initial_s = 0.5, .max_s = 30, .jitter = 0.25, .first_max_s = 0.9});
//   auto wait = b.next();   // 0.5 s +-25 %, then 1 s, 2 s, ... capped at 30 s
//   b.reset();              // after a success
//
// THREADING: one Backoff per thread (it is a small value; no locking).
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <random>

namespace switchyard::sdk {

struct BackoffPolicy {
  double initial_s = 0.5;    ///< the first delay (before jitter)
  double max_s = 30.0;       ///< the cap
  double jitter = 0.25;      ///< each delay is scaled by a random factor in [1 - jitter, 1 + jitter]
  double min_at_cap_s = 0;   ///< once at the cap, never less than this (e.g. 1 s: at most one try a second)
  double first_max_s = 0;    ///< when > 0, the first delay is at most this (a first retry comes fast)
};

class Backoff {
 public:
  explicit Backoff(BackoffPolicy policy = {}) : policy_(policy), rng_(std::random_device{}()) {}

  /// The delay before attempt number @p attempt (0 = the first retry), without state.
  [[nodiscard]] double delayFor(unsigned attempt) noexcept {
    double base = policy_.initial_s * std::pow(2.0, std::min(attempt, 30u));
    base = std::min(base, policy_.max_s);
    double u = std::uniform_real_distribution<double>(0.0, 1.0)(rng_);
    double d = base * (1.0 + policy_.jitter * (2.0 * u - 1.0));
    if (base >= policy_.max_s) {
      d = std::max(std::min(d, policy_.max_s * (1.0 + policy_.jitter)), policy_.min_at_cap_s);
    }
    if (attempt == 0 && policy_.first_max_s > 0) {
      d = std::min(d, policy_.first_max_s);
    }
    return std::max(d, 0.0);
  }
  /// The delay before the next attempt; grows with every call until reset().
  std::chrono::milliseconds next() noexcept {
    double d = delayFor(attempt_);
    ++attempt_;
    return std::chrono::milliseconds(static_cast<std::int64_t>(d * 1000));
  }
  void reset() noexcept { attempt_ = 0; }
  [[nodiscard]] unsigned attempts() const noexcept { return attempt_; }
  [[nodiscard]] const BackoffPolicy &policy() const noexcept { return policy_; }

 private:
  BackoffPolicy policy_;
  std::minstd_rand rng_;
  unsigned attempt_ = 0;
};

}  // namespace switchyard::sdk
