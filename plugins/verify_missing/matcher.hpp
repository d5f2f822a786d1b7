// SPDX-License-Identifier: MIT
//
// The matching logic of verify-missing (docs/plugins/verify-missing.md), kept free of
// sockets, threads and the plugin ABI so that unit tests drive it with a fake clock.
//
// Every message id seen on either bus becomes one entry, keyed by the id with a leading
// `YYYY-` removed (the AMQP -> ZeroMQ direction adds a year prefix, docs/bridges.md).
// An entry lives through two phases, in arrival order:
//   pending  (created .. created + window): waiting for the other bus; a sighting on the
//            other bus is a match, a second sighting on the same bus a duplicate;
//   retained (.. created + window + retain): settled (matched, reported missing, or
//            unverifiable), kept only so that duplicates and late arrivals are recognised
//            instead of being counted as new messages (fedmsg-migration-tools forgets a key
//            as soon as it matched, docs/plugins/verify-missing.md).
// Memory is bounded by `max_entries`: when full, the oldest retained entry is forgotten
// first, then the oldest pending one (counted `evicted` and `unverified`: it can no longer be
// verified, and it is never reported missing).
//
// An id forgotten before the end of its retention leaves a compact trace (a "ghost": a hash
// of its key, the buses it was seen on and its state; about 80 bytes instead of about 400)
// for the rest of that time, at most `max_evicted` of them, so that its twin is recognised
// as a late match, a late arrival or a duplicate instead of starting a new entry that would
// be reported one-sided. When even that memory overflows, the oldest ghost is dropped
// (counted `forgotten`) into a filter of forgotten ids: two Bloom filters that take turns,
// each covering window + retain, so a forgotten id stays in for at least the time its entry
// would have lived. A new id that hits the filter is "blind": it may be the twin of a
// forgotten one, so if it is still one-sided when its window closes it is counted
// `unverified` instead of being reported. Bloom filters have no false negatives, so whatever
// the load an id seen on both buses within window + retain is never reported missing, and
// never twice; their false positives (and a saturated filter) only cost reports.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace switchyard::verify {

enum class Side : std::uint8_t { Zmq = 0, Amqp = 1 };

inline constexpr std::size_t kSides = 2;

/// "zmq" / "amqp": the spelling used in configuration and report records.
const char *sideName(Side s) noexcept;
/// "ZeroMQ" / "AMQP": the spelling used in log lines.
const char *busName(Side s) noexcept;
std::optional<Side> parseSide(std::string_view s) noexcept;
inline Side otherSide(Side s) noexcept { return s == Side::Zmq ? Side::Amqp : Side::Zmq; }

/// The id with one leading `^[0-9]{4}-` removed (fedmsg `2026-<uuid>` matches AMQP `<uuid>`).
std::string_view matchKey(std::string_view id) noexcept;

/// Counters kept per side (the side the message was seen on).
enum class Stat : std::uint8_t {
  Seen,          ///< messages with an id received on this side (duplicates included)
  Matched,       ///< messages seen on both buses (the same number on both sides)
  Unmatched,     ///< seen only on this side when the window closed: reported missing on the other
  Duplicates,    ///< an id seen again on this side while still remembered
  Late,          ///< arrived on this side after the message had been reported missing here
  Evicted,       ///< pending messages forgotten because max_entries was reached (also Unverified)
  Unverifiable,  ///< seen while the other side was not listening (start-up, shutdown)
  ZmqLoss,       ///< (AMQP side) unmatched while our ZeroMQ subscription detected sequence gaps
  Unverified,    ///< never verified for want of memory (evicted, or one-sided while blind); never reported
  LateMatched,   ///< (side of the arrival) the twin of an unverified id arrived: on both buses after all
  Forgotten,     ///< traces of evicted ids dropped because max_evicted was reached (makes new ids blind)
};
inline constexpr std::size_t kStats = 11;
const char *statName(Stat s) noexcept;

struct Settings {
  std::chrono::milliseconds window{60000};  ///< how long a message may wait for the other bus
  std::chrono::milliseconds retain{60000};  ///< how long a settled id is remembered after that
  std::size_t max_entries = 100000;         ///< ids held in memory at most (both phases)
  std::size_t max_evicted = 100000;         ///< traces of ids forgotten early held at most (0: none)
  bool operator==(const Settings &) const = default;
};

/// One message seen on a single bus only: a warning line and a report record.
struct Report {
  std::string id;  ///< as first received (year prefix included, if any); reports name matchKey(id)
  std::string topic;
  Side side = Side::Zmq;  ///< the bus it WAS seen on; it is missing from the other
  std::int64_t first_seen_ms = 0;  ///< wall clock, ms since the epoch
  /// Side::Amqp only: messages our own ZeroMQ subscription counted as lost (sequence gaps)
  /// between one window before this message and the report. Non-zero means the miss on the
  /// ZeroMQ side may be our own loss rather than the bridge's.
  std::uint64_t zmq_gap_missing = 0;
};

/// An id that will never be verified for want of memory (counted `unverified`, logged, never
/// reported): why.
struct UnverifiedNote {
  enum class Why : std::uint8_t {
    Evicted,  ///< still pending when max_entries forced it out
    Blind,    ///< one-sided when its window closed, but its twin may have been forgotten
  };
  std::string id;
  std::string topic;
  Side side = Side::Zmq;  ///< the bus it was seen on
  Why why = Why::Evicted;
};

class Matcher {
 public:
  using Clock = std::chrono::steady_clock;
  enum class Result : std::uint8_t {
    New,
    Matched,
    Duplicate,
    Late,         ///< arrived on this bus after it had been reported missing here
    LateMatched,  ///< the twin of an id that was evicted (or settled blind) unverified
  };

  explicit Matcher(Settings s);

  /// Called for every counter increment (the plugin forwards them to core counters).
  std::function<void(Side, Stat, std::uint64_t)> on_count;

  /// One message seen on @p side. @p verifiable is false while the other side is not
  /// listening: such a message is matched if its twin comes, but never reported missing.
  Result observe(Side side, std::string_view id, std::string_view topic, Clock::time_point now,
                 std::int64_t wall_ms, bool verifiable);

  /// Our ZeroMQ subscription detected @p missing lost messages (zmq-sub sequence gaps).
  void noteZmqGap(Clock::time_point now, std::uint64_t missing);

  /// Settles every entry whose window closed by @p now; returns the ones seen on one bus
  /// only, oldest first.
  std::vector<Report> expire(Clock::time_point now);

  /// The unverified ids since the last call, at most @p max of them (oldest first); @p more
  /// gets how many others there were. Bounded: only the first kMaxNotes are kept.
  std::vector<UnverifiedNote> takeUnverified(std::size_t max, std::uint64_t &more);

  [[nodiscard]] std::size_t size() const noexcept { return entries_.size(); }
  /// Traces of ids forgotten early (at most max_evicted).
  [[nodiscard]] std::size_t evictedSize() const noexcept { return ghosts_.size(); }
  /// Bits of one generation of the filter of forgotten ids.
  [[nodiscard]] std::size_t filterBits() const noexcept;
  [[nodiscard]] std::uint64_t stat(Side side, Stat s) const noexcept {
    return stats_[static_cast<std::size_t>(side)][static_cast<std::size_t>(s)];
  }
  [[nodiscard]] const Settings &settings() const noexcept { return settings_; }

 private:
  enum class State : std::uint8_t { Pending, Matched, Reported, Unverifiable, Unverified };
  struct Entry {
    std::uint64_t gen = 0;
    std::string id;
    std::string topic;
    Clock::time_point created;
    std::int64_t first_seen_ms = 0;
    std::uint8_t sides = 0;  ///< bit (1 << side) per bus it was seen on
    State state = State::Pending;
    bool verifiable = true;
    bool blind = false;  ///< created while a forgotten ghost's twin could still come
  };
  struct Slot {
    std::string key;
    std::uint64_t gen;
    Clock::time_point created;
  };
  /// What is left of an entry forgotten before the end of its retention.
  struct Ghost {
    std::uint64_t gen = 0;
    Clock::time_point end;  ///< when the entry would have been forgotten anyway
    std::uint8_t sides = 0;
    State state = State::Unverified;
  };

  void count(Side side, Stat s, std::uint64_t n = 1);
  Result sighting(Side side, std::uint8_t &sides, State &state);
  void makeRoom(Clock::time_point now);
  void addGhost(std::uint64_t hash, const Entry &e, Clock::time_point now);
  void forgetGhost(std::uint64_t hash, const Ghost &g, Clock::time_point now);
  void rotateFilter(Clock::time_point now);
  bool mayBeForgotten(std::uint64_t hash, Clock::time_point now);
  void note(const Entry &e, UnverifiedNote::Why why);
  void settle(Entry &e, std::vector<Report> &out);
  std::uint64_t gapsSince(Clock::time_point since) const;
  static Side firstSide(const Entry &e) noexcept;

  Settings settings_;
  std::unordered_map<std::string, Entry> entries_;
  std::deque<Slot> pending_;   ///< in creation order
  std::deque<Slot> retained_;  ///< in creation order
  std::deque<std::pair<Clock::time_point, std::uint64_t>> gaps_;  ///< bounded, oldest first
  std::unordered_map<std::uint64_t, Ghost> ghosts_;  ///< by hash of the key
  std::deque<std::pair<std::uint64_t, std::uint64_t>> ghost_order_;  ///< (hash, gen), oldest first
  /// The filter of forgotten ids: a Bloom filter per generation of window + retain, the
  /// current one and the previous one; allocated at the first forgotten id.
  std::vector<std::uint64_t> filter_cur_, filter_prev_;
  std::size_t filter_cur_n_ = 0, filter_prev_n_ = 0;
  Clock::time_point filter_start_{};
  std::vector<UnverifiedNote> notes_;
  std::uint64_t notes_more_ = 0;
  std::uint64_t next_gen_ = 0;
  std::array<std::array<std::uint64_t, kStats>, kSides> stats_{};
};

}  // namespace switchyard::verify
