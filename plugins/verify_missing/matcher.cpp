// SPDX-License-Identifier: MIT
#include "matcher.hpp"

#include <utility>

namespace switchyard::verify {

namespace {
// Gap events remembered for the ZeroMQ-loss annotation; older ones are merged away.
constexpr std::size_t kMaxGapEvents = 4096;
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

std::string_view matchKey(std::string_view id) noexcept {
  if (id.size() > 5 && id[4] == '-') {
    for (std::size_t k = 0; k < 4; ++k) {
      if (id[k] < '0' || id[k] > '9') {
        return id;
      }
    }
    return id.substr(5);
  }
  return id;
}

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

Side Matcher::firstSide(const Entry &e) noexcept {
  return (e.sides & (1u << static_cast<unsigned>(Side::Zmq))) != 0 ? Side::Zmq : Side::Amqp;
}

Matcher::Result Matcher::observe(Side side, std::string_view id, std::string_view topic,
                                 Clock::time_point now, std::int64_t wall_ms, bool verifiable) {
  const auto bit = static_cast<std::uint8_t>(1u << static_cast<unsigned>(side));
  std::string key(matchKey(id));
  count(side, Stat::Seen);
  if (auto it = entries_.find(key); it != entries_.end()) {
    Entry &e = it->second;
    if ((e.sides & bit) != 0) {
      count(side, Stat::Duplicates);
      return Result::Duplicate;
    }
    e.sides = static_cast<std::uint8_t>(e.sides | bit);
    switch (e.state) {
      case State::Pending:
      case State::Unverifiable:
        e.state = State::Matched;
        count(Side::Zmq, Stat::Matched);
        count(Side::Amqp, Stat::Matched);
        return Result::Matched;
      case State::Reported:
        // Reported missing here, then it came after all: slow, not lost.
        count(side, Stat::Late);
        return Result::Late;
      case State::Matched:
        break;  // both bits were set already: handled as a duplicate above
    }
    count(side, Stat::Duplicates);
    return Result::Duplicate;
  }
  makeRoom();
  Entry e;
  e.gen = ++next_gen_;
  e.id.assign(id);
  e.topic.assign(topic);
  e.created = now;
  e.first_seen_ms = wall_ms;
  e.sides = bit;
  e.verifiable = verifiable;
  pending_.push_back(Slot{key, e.gen, now});
  entries_.emplace(std::move(key), std::move(e));
  return Result::New;
}

void Matcher::makeRoom() {
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
    if (&q == &pending_ && it->second.state == State::Pending) {
      count(firstSide(it->second), Stat::Evicted);
    }
    entries_.erase(it);
  }
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
  // Gap events are only asked about for entries still pending (created within one window),
  // looking one more window back.
  auto horizon = now - 2 * settings_.window - settings_.retain;
  while (!gaps_.empty() && gaps_.front().first < horizon) {
    gaps_.pop_front();
  }
  return out;
}

}  // namespace switchyard::verify
