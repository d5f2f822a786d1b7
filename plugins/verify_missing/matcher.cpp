// SPDX-License-Identifier: MIT
#include "matcher.hpp"

#include <algorithm>
#include <functional>
#include <utility>

#include "switchyard/fedmsg.hpp"

namespace switchyard::verify {

namespace {
// Gap events remembered for the ZeroMQ-loss annotation; older ones are merged away.
constexpr std::size_t kMaxGapEvents = 4096;
// Unverified ids kept for log lines between two takeUnverified() calls; the rest are counted.
constexpr std::size_t kMaxNotes = 64;

std::uint64_t keyHash(std::string_view key) noexcept {
  return static_cast<std::uint64_t>(std::hash<std::string_view>{}(key));
}

std::uint64_t mix(std::uint64_t x) noexcept {  // splitmix64's finaliser
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// Probes per id in the filter of forgotten ids. With 16 bits per id (the size below at
// max_entries forgotten ids per generation) about 0.2 % of new ids would be blind.
constexpr unsigned kFilterProbes = 4;

/// Calls @p probe(word, bit) for each of the kFilterProbes bits of @p h in a filter of
/// @p words 64-bit words (a power of two bits) until it returns false; returns whether it
/// never did. The one probe sequence of both testing and setting.
template <typename Probe>
bool probeBits(std::size_t words, std::uint64_t h, Probe &&probe) noexcept {
  const std::uint64_t mask = words * 64 - 1;
  const std::uint64_t step = mix(h) | 1;
  for (unsigned k = 0; k < kFilterProbes; ++k) {
    std::uint64_t i = (h + k * step) & mask;
    if (!probe(i / 64, std::uint64_t{1} << (i % 64))) {
      return false;
    }
  }
  return true;
}

bool testBits(const std::vector<std::uint64_t> &bits, std::uint64_t h) noexcept {
  return !bits.empty() &&
         probeBits(bits.size(), h, [&](std::size_t word, std::uint64_t bit) { return (bits[word] & bit) != 0; });
}

void setBits(std::vector<std::uint64_t> &bits, std::uint64_t h) noexcept {
  probeBits(bits.size(), h, [&](std::size_t word, std::uint64_t bit) {
    bits[word] |= bit;
    return true;
  });
}

Side firstSideOf(std::uint8_t sides) noexcept {
  return (sides & (1u << static_cast<unsigned>(Side::Zmq))) != 0 ? Side::Zmq : Side::Amqp;
}
}  // namespace

const char *sideName(Side s) noexcept { return s == Side::Zmq ? "zmq" : "amqp"; }

const char *busName(Side s) noexcept { return s == Side::Zmq ? "ZeroMQ" : "AMQP"; }

std::optional<Side> parseSide(std::string_view s) noexcept {
  if (s == "zmq") {
    return Side::Zmq;
  }
  if (s == "amqp") {
    return Side::Amqp;
  }
  return std::nullopt;
}

std::string_view matchKey(std::string_view id) noexcept { return fedmsg::stripYearPrefix(id); }

const char *statName(Stat s) noexcept {
  switch (s) {
    case Stat::Seen: return "seen";
    case Stat::Matched: return "matched";
    case Stat::Unmatched: return "unmatched";
    case Stat::Duplicates: return "duplicates";
    case Stat::Late: return "late";
    case Stat::Evicted: return "evicted";
    case Stat::Unverifiable: return "unverifiable";
    case Stat::ZmqLoss: return "unmatched_zmq_loss";
    case Stat::Unverified: return "unverified";
    case Stat::LateMatched: return "late_matched";
    case Stat::Forgotten: return "forgotten";
  }
  return "unknown";
}

Matcher::Matcher(Settings s) : settings_(s) {
  if (settings_.max_entries == 0) {
    settings_.max_entries = 1;
  }
}

void Matcher::count(Side side, Stat s, std::uint64_t n) {
  stats_[static_cast<std::size_t>(side)][static_cast<std::size_t>(s)] += n;
  if (on_count) {
    on_count(side, s, n);
  }
}

Side Matcher::firstSide(const Entry &e) noexcept { return firstSideOf(e.sides); }

Matcher::Result Matcher::sighting(Side side, std::uint8_t &sides, State &state) {
  const auto bit = static_cast<std::uint8_t>(1u << static_cast<unsigned>(side));
  if ((sides & bit) != 0) {
    count(side, Stat::Duplicates);
    return Result::Duplicate;
  }
  sides = static_cast<std::uint8_t>(sides | bit);
  switch (state) {
    case State::Pending:
    case State::Unverifiable:
      state = State::Matched;
      count(Side::Zmq, Stat::Matched);
      count(Side::Amqp, Stat::Matched);
      return Result::Matched;
    case State::Reported:
      // Reported missing here, then it came after all: slow, not lost.
      count(side, Stat::Late);
      return Result::Late;
    case State::Unverified:
      // Forgotten unverified (or settled blind), and now its twin came: it was on both
      // buses after all. Counted, never reported; further copies are duplicates.
      count(side, Stat::LateMatched);
      return Result::LateMatched;
    case State::Matched:
      break;  // both bits were set already: handled as a duplicate above
  }
  count(side, Stat::Duplicates);
  return Result::Duplicate;
}

void Matcher::note(const Entry &e, UnverifiedNote::Why why) {
  if (notes_.size() < kMaxNotes) {
    notes_.push_back(UnverifiedNote{e.id, e.topic, firstSide(e), why});
  } else {
    ++notes_more_;
  }
}

std::vector<UnverifiedNote> Matcher::takeUnverified(std::size_t max, std::uint64_t &more) {
  std::vector<UnverifiedNote> out;
  out.swap(notes_);
  more = notes_more_;
  notes_more_ = 0;
  if (out.size() > max) {
    more += out.size() - max;
    out.resize(max);
  }
  return out;
}

Matcher::Result Matcher::observe(Side side, std::string_view id, std::string_view topic,
                                 Clock::time_point now, std::int64_t wall_ms, bool verifiable) {
  const auto bit = static_cast<std::uint8_t>(1u << static_cast<unsigned>(side));
  std::string key(matchKey(id));
  count(side, Stat::Seen);
  if (auto it = entries_.find(key); it != entries_.end()) {
    return sighting(side, it->second.sides, it->second.state);
  }
  const std::uint64_t hash = keyHash(key);
  if (!ghosts_.empty()) {
    if (auto g = ghosts_.find(hash); g != ghosts_.end()) {
      if (g->second.end > now) {
        // Forgotten early for want of room, but its trace is still here: a twin, a late
        // arrival or a duplicate, never a new message.
        return sighting(side, g->second.sides, g->second.state);
      }
      ghosts_.erase(g);  // past the end of its retention: as forgotten as any entry
    }
  }
  makeRoom(now);
  Entry e;
  e.gen = ++next_gen_;
  e.id.assign(id);
  e.topic.assign(topic);
  e.created = now;
  e.first_seen_ms = wall_ms;
  e.sides = bit;
  e.verifiable = verifiable;
  e.blind = mayBeForgotten(hash, now);
  pending_.push_back(Slot{key, e.gen, now});
  entries_.emplace(std::move(key), std::move(e));
  return Result::New;
}

void Matcher::makeRoom(Clock::time_point now) {
  while (entries_.size() >= settings_.max_entries) {
    auto &q = retained_.empty() ? pending_ : retained_;
    if (q.empty()) {
      return;  // cannot happen: every entry is referenced by exactly one slot
    }
    Slot slot = std::move(q.front());
    q.pop_front();
    auto it = entries_.find(slot.key);
    if (it == entries_.end() || it->second.gen != slot.gen) {
      continue;
    }
    Entry &e = it->second;
    if (e.state == State::Pending) {
      // Its window is still open: it can no longer be verified. Never reported missing.
      Side side = firstSide(e);
      count(side, Stat::Evicted);
      count(side, Stat::Unverified);
      e.state = State::Unverified;
      note(e, UnverifiedNote::Why::Evicted);
    }
    addGhost(keyHash(slot.key), e, now);
    entries_.erase(it);
  }
}

void Matcher::addGhost(std::uint64_t hash, const Entry &e, Clock::time_point now) {
  const auto end = e.created + settings_.window + settings_.retain;
  if (end <= now) {
    return;  // it would have been forgotten by now anyway
  }
  Ghost ghost{++next_gen_, end, e.sides, e.state};
  if (settings_.max_evicted == 0) {
    forgetGhost(hash, ghost, now);
    return;
  }
  while (ghosts_.size() >= settings_.max_evicted && !ghost_order_.empty()) {
    auto [h, gen] = ghost_order_.front();
    ghost_order_.pop_front();
    auto g = ghosts_.find(h);
    if (g == ghosts_.end() || g->second.gen != gen) {
      continue;
    }
    forgetGhost(h, g->second, now);
    ghosts_.erase(g);
  }
  if (auto g = ghosts_.find(hash); g != ghosts_.end()) {
    forgetGhost(hash, g->second, now);  // two keys with one 64-bit hash: the older trace goes
    g->second = ghost;
  } else {
    ghosts_.emplace(hash, ghost);
  }
  ghost_order_.emplace_back(hash, ghost.gen);
  if (ghost_order_.size() > 2 * ghosts_.size() + 1024) {
    // Slots of traces gone otherwise (ended and looked up, or replaced) wait for the front;
    // should they ever pile up behind a long-lived one, drop them all at once.
    std::erase_if(ghost_order_, [this](const std::pair<std::uint64_t, std::uint64_t> &slot) {
      auto g = ghosts_.find(slot.first);
      return g == ghosts_.end() || g->second.gen != slot.second;
    });
  }
}

std::size_t Matcher::filterBits() const noexcept {
  // 16 bits per id at max_entries forgotten ids per generation, a power of two, at least
  // 64 Ki bits (8 KiB).
  std::size_t want = 16 * std::max<std::size_t>(settings_.max_entries, 4096);
  std::size_t bits = 64;
  while (bits < want) {
    bits *= 2;
  }
  return bits;
}

void Matcher::rotateFilter(Clock::time_point now) {
  const auto span = settings_.window + settings_.retain;
  if (filter_cur_n_ == 0 && filter_prev_n_ == 0) {
    filter_start_ = now;
    return;
  }
  if (now - filter_start_ < span) {
    return;
  }
  // An id put in at time t stays until the second rotation after it: at least `span`, which
  // is as long as any forgotten entry had left to live.
  if (now - filter_start_ >= 2 * span) {
    std::fill(filter_prev_.begin(), filter_prev_.end(), 0);
    filter_prev_n_ = 0;
  } else {
    filter_prev_.swap(filter_cur_);
    filter_prev_n_ = filter_cur_n_;
  }
  std::fill(filter_cur_.begin(), filter_cur_.end(), 0);
  filter_cur_n_ = 0;
  filter_start_ = now;
}

void Matcher::forgetGhost(std::uint64_t hash, const Ghost &g, Clock::time_point now) {
  if (g.end <= now) {
    return;  // its time was over anyway
  }
  count(firstSideOf(g.sides), Stat::Forgotten);
  rotateFilter(now);
  if (filter_cur_.empty()) {
    filter_cur_.assign(filterBits() / 64, 0);
    filter_prev_.assign(filterBits() / 64, 0);
  }
  setBits(filter_cur_, hash);
  ++filter_cur_n_;
}

bool Matcher::mayBeForgotten(std::uint64_t hash, Clock::time_point now) {
  if (filter_cur_n_ == 0 && filter_prev_n_ == 0) {
    return false;
  }
  rotateFilter(now);
  return (filter_cur_n_ > 0 && testBits(filter_cur_, hash)) || (filter_prev_n_ > 0 && testBits(filter_prev_, hash));
}

void Matcher::noteZmqGap(Clock::time_point now, std::uint64_t missing) {
  if (missing == 0) {
    return;
  }
  if (gaps_.size() >= kMaxGapEvents) {
    // Fold the oldest event into the next one: the sum stays right, the time gets later,
    // which can only widen (never hide) the annotation.
    auto oldest = gaps_.front();
    gaps_.pop_front();
    gaps_.front().second += oldest.second;
  }
  gaps_.emplace_back(now, missing);
}

std::uint64_t Matcher::gapsSince(Clock::time_point since) const {
  std::uint64_t n = 0;
  for (auto it = gaps_.rbegin(); it != gaps_.rend() && it->first >= since; ++it) {
    n += it->second;
  }
  return n;
}

void Matcher::settle(Entry &e, std::vector<Report> &out) {
  if (e.state != State::Pending) {
    return;
  }
  Side side = firstSide(e);
  if (!e.verifiable) {
    e.state = State::Unverifiable;
    count(side, Stat::Unverifiable);
    return;
  }
  if (e.blind) {
    // Created while a forgotten trace's twin could still come: this may be that twin.
    e.state = State::Unverified;
    count(side, Stat::Unverified);
    note(e, UnverifiedNote::Why::Blind);
    return;
  }
  e.state = State::Reported;
  count(side, Stat::Unmatched);
  Report r;
  r.id = e.id;
  r.topic = e.topic;
  r.side = side;
  r.first_seen_ms = e.first_seen_ms;
  if (side == Side::Amqp) {
    r.zmq_gap_missing = gapsSince(e.created - settings_.window);
    if (r.zmq_gap_missing > 0) {
      count(side, Stat::ZmqLoss);
    }
  }
  out.push_back(std::move(r));
}

std::vector<Report> Matcher::expire(Clock::time_point now) {
  std::vector<Report> out;
  while (!pending_.empty() && pending_.front().created + settings_.window <= now) {
    Slot slot = std::move(pending_.front());
    pending_.pop_front();
    auto it = entries_.find(slot.key);
    if (it == entries_.end() || it->second.gen != slot.gen) {
      continue;
    }
    settle(it->second, out);
    retained_.push_back(std::move(slot));
  }
  while (!retained_.empty() && retained_.front().created + settings_.window + settings_.retain <= now) {
    auto it = entries_.find(retained_.front().key);
    if (it != entries_.end() && it->second.gen == retained_.front().gen) {
      entries_.erase(it);
    }
    retained_.pop_front();
  }
  while (!ghost_order_.empty()) {
    auto [h, gen] = ghost_order_.front();
    auto g = ghosts_.find(h);
    if (g != ghosts_.end() && g->second.gen == gen) {
      if (g->second.end > now) {
        break;
      }
      ghosts_.erase(g);
    }
    ghost_order_.pop_front();
  }
  // Gap events are only asked about for entries still pending (created within one window),
  // looking one more window back.
  auto horizon = now - 2 * settings_.window - settings_.retain;
  while (!gaps_.empty() && gaps_.front().first < horizon) {
    gaps_.pop_front();
  }
  return out;
}

}  // namespace switchyard::verify
