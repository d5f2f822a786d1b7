// SPDX-License-Identifier: MIT
// Loss accounting over fedmsg's per-publisher counter `i` (interop-spec 1.6): turns the
// silent losses of ZeroMQ PUB/SUB (reliability.md 3.1) into numbers. Header-only so the
// unit tests can exercise it without a socket.
#pragma once

#include <bitset>
#include <cstdint>
#include <string>
#include <unordered_map>

namespace switchyard::zmqt {

/// What one observed `i` means for its publisher.
struct SeqEvent {
  enum class Kind : std::uint8_t {
    First,      ///< first message seen from this publisher
    InOrder,    ///< exactly the expected next value
    Gap,        ///< `missing` values were skipped
    Duplicate,  ///< a value seen recently, again
    Reordered,  ///< an older value not seen before (arrived late; it was counted missing)
    Restart,    ///< the counter fell back (to 1, or far below): a new publisher process;
                ///< `missing` = values before it that never arrived (i - 1)
  };
  Kind kind = Kind::First;
  std::uint64_t missing = 0;
};

/// Tracks the highest `i` seen per publisher key and a window of recently seen values.
/// THREADING: one thread (the source's).
class SeqTracker {
 public:
  /// Values this far below the highest one seen are treated as a restart rather than a
  /// late arrival; also the size of the duplicate-detection window.
  static constexpr std::uint64_t kWindow = 4096;

  SeqEvent observe(const std::string &key, std::uint64_t i) {
    auto [it, inserted] = publishers_.try_emplace(key);
    Publisher &p = it->second;
    if (inserted) {
      p.reset(i);
      return {SeqEvent::Kind::First, 0};
    }
    if (i == p.highest + 1) {
      p.advance(i);
      return {SeqEvent::Kind::InOrder, 0};
    }
    if (i > p.highest) {
      std::uint64_t missing = i - p.highest - 1;
      p.advance(i);
      return {SeqEvent::Kind::Gap, missing};
    }
    // i <= highest from here on.
    if (i == 1 || p.highest - i >= kWindow) {
      p.reset(i);
      return {SeqEvent::Kind::Restart, i - 1};
    }
    if (p.seen(i)) {
      return {SeqEvent::Kind::Duplicate, 0};
    }
    p.mark(i);
    return {SeqEvent::Kind::Reordered, 0};
  }

  [[nodiscard]] std::size_t publishers() const noexcept { return publishers_.size(); }

 private:
  struct Publisher {
    std::uint64_t highest = 0;
    std::bitset<kWindow> window;  // bit (v % kWindow) set: v was seen, for v in (highest-kWindow, highest]

    void reset(std::uint64_t i) {
      highest = i;
      window.reset();
      window.set(i % kWindow);
    }
    void advance(std::uint64_t i) {
      // Clear the slots of the values that leave the window (or all when jumping far).
      if (i - highest >= kWindow) {
        window.reset();
      } else {
        for (std::uint64_t v = highest + 1; v <= i; ++v) {
          window.reset(v % kWindow);
        }
      }
      highest = i;
      window.set(i % kWindow);
    }
    [[nodiscard]] bool seen(std::uint64_t i) const { return window.test(i % kWindow); }
    void mark(std::uint64_t i) { window.set(i % kWindow); }
  };
  std::unordered_map<std::string, Publisher> publishers_;
};

}  // namespace switchyard::zmqt
