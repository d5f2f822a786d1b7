// SPDX-License-Identifier: MIT
// verify-missing's matcher with a fake clock: matching across the year prefix, reports
// after the window, duplicates and late arrivals, the ZeroMQ-loss annotation, and the
// memory bound under a flood.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "matcher.hpp"

using namespace switchyard::verify;
using namespace std::chrono_literals;
using Clock = Matcher::Clock;

namespace {

Settings settings(std::size_t max = 1000) {
  Settings s;
  s.window = 2s;
  s.retain = 2s;
  s.max_entries = max;
  return s;
}

}  // namespace

TEST_CASE("matchKey strips exactly one leading year") {
  CHECK(matchKey("2026-abc") == "abc");
  CHECK(matchKey("abc") == "abc");
  CHECK(matchKey("2026-") == "2026-");
  CHECK(matchKey("20x6-abc") == "20x6-abc");
  CHECK(matchKey("2026-2025-abc") == "2025-abc");
  CHECK(matchKey("") == "");
}

TEST_CASE("a message on both buses is matched, one-sided ones are reported once after the window") {
  Matcher m(settings());
  auto t0 = Clock::time_point{} + 100s;
  CHECK(m.observe(Side::Zmq, "2026-a", "t.a", t0, 1000, true) == Matcher::Result::New);
  CHECK(m.observe(Side::Amqp, "a", "t.a", t0 + 1s, 2000, true) == Matcher::Result::Matched);
  CHECK(m.observe(Side::Zmq, "2026-b", "t.b", t0, 1000, true) == Matcher::Result::New);
  CHECK(m.observe(Side::Amqp, "c", "t.c", t0 + 500ms, 1500, true) == Matcher::Result::New);
  CHECK(m.expire(t0 + 1900ms).empty());  // nothing is older than the window yet
  auto r = m.expire(t0 + 2s);
  REQUIRE(r.size() == 1);
  CHECK(r[0].id == "2026-b");
  CHECK(r[0].side == Side::Zmq);
  CHECK(r[0].topic == "t.b");
  CHECK(r[0].first_seen_ms == 1000);
  r = m.expire(t0 + 3s);
  REQUIRE(r.size() == 1);
  CHECK(r[0].id == "c");
  CHECK(r[0].side == Side::Amqp);
  CHECK(r[0].zmq_gap_missing == 0);
  CHECK(m.expire(t0 + 10s).empty());  // reported once only
  CHECK(m.stat(Side::Zmq, Stat::Matched) == 1);
  CHECK(m.stat(Side::Amqp, Stat::Matched) == 1);
  CHECK(m.stat(Side::Zmq, Stat::Unmatched) == 1);
  CHECK(m.stat(Side::Amqp, Stat::Unmatched) == 1);
  CHECK(m.size() == 0);  // forgotten after window + retain
}

TEST_CASE("duplicates are counted per side, also after the match, and late arrivals are told apart") {
  Matcher m(settings());
  auto t0 = Clock::time_point{} + 100s;
  m.observe(Side::Zmq, "2026-d", "t", t0, 0, true);
  CHECK(m.observe(Side::Zmq, "2026-d", "t", t0, 0, true) == Matcher::Result::Duplicate);
  CHECK(m.observe(Side::Amqp, "d", "t", t0, 0, true) == Matcher::Result::Matched);
  CHECK(m.expire(t0 + 2s).empty());
  // Still remembered during `retain`: a third copy is a duplicate, not a new message.
  CHECK(m.observe(Side::Amqp, "d", "t", t0 + 3s, 0, true) == Matcher::Result::Duplicate);
  CHECK(m.stat(Side::Zmq, Stat::Duplicates) == 1);
  CHECK(m.stat(Side::Amqp, Stat::Duplicates) == 1);

  m.observe(Side::Zmq, "2026-late", "t", t0 + 3s, 0, true);
  REQUIRE(m.expire(t0 + 5s).size() == 1);
  CHECK(m.observe(Side::Amqp, "late", "t", t0 + 5500ms, 0, true) == Matcher::Result::Late);
  CHECK(m.stat(Side::Amqp, Stat::Late) == 1);
  CHECK(m.stat(Side::Zmq, Stat::Matched) == 1);
}

TEST_CASE("messages seen while the other side was not listening are never reported") {
  Matcher m(settings());
  auto t0 = Clock::time_point{} + 100s;
  m.observe(Side::Amqp, "early", "t", t0, 0, false);
  m.observe(Side::Zmq, "2026-early2", "t", t0, 0, false);
  CHECK(m.observe(Side::Zmq, "2026-early2x", "t", t0, 0, false) == Matcher::Result::New);
  CHECK(m.observe(Side::Amqp, "early2x", "t", t0, 0, true) == Matcher::Result::Matched);
  CHECK(m.expire(t0 + 2s).empty());
  CHECK(m.stat(Side::Amqp, Stat::Unverifiable) == 1);
  CHECK(m.stat(Side::Zmq, Stat::Unverifiable) == 1);
}

TEST_CASE("an AMQP-only message says whether our ZeroMQ subscription lost messages around it") {
  Matcher m(settings());
  auto t0 = Clock::time_point{} + 100s;
  m.observe(Side::Amqp, "before", "t", t0, 0, true);
  auto r = m.expire(t0 + 2s);
  REQUIRE(r.size() == 1);
  CHECK(r[0].zmq_gap_missing == 0);
  m.noteZmqGap(t0 + 3s, 5);
  m.observe(Side::Amqp, "after", "t", t0 + 4s, 0, true);
  m.observe(Side::Zmq, "2026-zonly", "t", t0 + 4s, 0, true);
  r = m.expire(t0 + 6s);
  REQUIRE(r.size() == 2);
  CHECK(r[0].side == Side::Amqp);
  CHECK(r[0].zmq_gap_missing == 5);
  CHECK(r[1].side == Side::Zmq);
  CHECK(r[1].zmq_gap_missing == 0);  // only meaningful for the ZeroMQ side's misses
  CHECK(m.stat(Side::Amqp, Stat::ZmqLoss) == 1);
  // A gap long before the message's window does not count.
  m.observe(Side::Amqp, "much-later", "t", t0 + 20s, 0, true);
  r = m.expire(t0 + 22s);
  REQUIRE(r.size() == 1);
  CHECK(r[0].zmq_gap_missing == 0);
}

TEST_CASE("memory stays bounded under a flood: the oldest are evicted and counted") {
  Matcher m(settings(100));
  auto t0 = Clock::time_point{} + 100s;
  for (int k = 0; k < 10000; ++k) {
    m.observe(Side::Zmq, "2026-" + std::to_string(k), "t", t0 + std::chrono::microseconds(k), 0, true);
    CHECK(m.size() <= 100);
  }
  CHECK(m.stat(Side::Zmq, Stat::Evicted) == 9900);
  CHECK(m.stat(Side::Zmq, Stat::Unverified) == 9900);
  CHECK(m.evictedSize() == 9900);
  // The newest 100 are still there and still matchable.
  CHECK(m.observe(Side::Amqp, "9999", "t", t0 + 1s, 0, true) == Matcher::Result::Matched);
  auto r = m.expire(t0 + 3s);  // settled, still retained (until t0 + 4 s)
  CHECK(r.size() == 99);
  CHECK(m.size() == 100);
  // Settled entries are dropped first when room is needed, before pending ones.
  for (int k = 0; k < 50; ++k) {
    m.observe(Side::Amqp, "x" + std::to_string(k), "t", t0 + 5s, 0, true);
  }
  CHECK(m.size() == 100);
  CHECK(m.stat(Side::Zmq, Stat::Evicted) == 9900);
  CHECK(m.stat(Side::Amqp, Stat::Evicted) == 0);
  for (int k = 0; k < 10000; ++k) {
    m.noteZmqGap(t0 + 5s, 1);  // the gap history is bounded too (folded, sum kept)
  }
  m.observe(Side::Amqp, "y", "t", t0 + 5s, 0, true);
  r = m.expire(t0 + 7s);
  REQUIRE(r.size() == 51);
  CHECK(r.back().id == "y");
  CHECK(r.back().zmq_gap_missing == 10000);
}

// An id evicted past max_entries must never turn into a false report.
TEST_CASE("case 13: evicted ids are counted unverified, and their twins are late matches, never reports") {
  Settings s;
  s.window = 3s;
  s.retain = 60s;
  s.max_entries = 10;
  s.max_evicted = 10;
  Matcher m(s);
  auto t0 = Clock::time_point{} + 100s;
  // 20 ids on ZeroMQ, then the same 20 on AMQP (one bus running ahead).
  for (int k = 0; k < 20; ++k) {
    CHECK(m.observe(Side::Zmq, "2026-id" + std::to_string(k), "t", t0 + std::chrono::milliseconds(k), 0, true) ==
          Matcher::Result::New);
  }
  CHECK(m.size() == 10);
  CHECK(m.evictedSize() == 10);
  CHECK(m.stat(Side::Zmq, Stat::Evicted) == 10);
  CHECK(m.stat(Side::Zmq, Stat::Unverified) == 10);
  for (int k = 0; k < 20; ++k) {
    auto r = m.observe(Side::Amqp, "id" + std::to_string(k), "t", t0 + 1s + std::chrono::milliseconds(k), 0, true);
    CHECK(r == (k < 10 ? Matcher::Result::LateMatched : Matcher::Result::Matched));
  }
  // A third copy of an evicted id is a duplicate, not a new message.
  CHECK(m.observe(Side::Zmq, "2026-id3", "t", t0 + 2s, 0, true) == Matcher::Result::Duplicate);
  CHECK(m.observe(Side::Amqp, "id3", "t", t0 + 2s, 0, true) == Matcher::Result::Duplicate);
  CHECK(m.expire(t0 + 3s).empty());
  CHECK(m.expire(t0 + 30s).empty());
  CHECK(m.expire(t0 + 100s).empty());
  CHECK(m.size() == 0);
  CHECK(m.evictedSize() == 0);  // traces end with the retention their entries would have had
  for (Side sd : {Side::Zmq, Side::Amqp}) {
    CAPTURE(sideName(sd));
    CHECK(m.stat(sd, Stat::Matched) == 10);
    CHECK(m.stat(sd, Stat::Unmatched) == 0);
    CHECK(m.stat(sd, Stat::Forgotten) == 0);
    CHECK(m.stat(sd, Stat::Duplicates) == 1);
  }
  CHECK(m.stat(Side::Amqp, Stat::LateMatched) == 10);
  CHECK(m.stat(Side::Zmq, Stat::LateMatched) == 0);
  CHECK(m.stat(Side::Amqp, Stat::Unverified) == 0);
  CHECK(m.stat(Side::Amqp, Stat::Evicted) == 0);
  // Each eviction is there to be logged, oldest first.
  std::uint64_t more = 99;
  auto notes = m.takeUnverified(5, more);
  REQUIRE(notes.size() == 5);
  CHECK(more == 5);
  CHECK(notes[0].id == "2026-id0");
  CHECK(notes[4].id == "2026-id4");
  CHECK(notes[0].side == Side::Zmq);
  CHECK(notes[0].why == UnverifiedNote::Why::Evicted);
  CHECK(m.takeUnverified(5, more).empty());
  CHECK(more == 0);
}

TEST_CASE("settled ids forgotten early keep their verdict: a late twin is late, a third copy a duplicate") {
  Settings s = settings(4);
  s.retain = 60s;
  Matcher m(s);
  auto t0 = Clock::time_point{} + 100s;
  m.observe(Side::Zmq, "2026-a", "t", t0, 0, true);  // will be reported missing from AMQP
  m.observe(Side::Zmq, "2026-m", "t", t0, 0, true);
  m.observe(Side::Amqp, "m", "t", t0, 0, true);  // matched
  auto r = m.expire(t0 + 2s);
  REQUIRE(r.size() == 1);
  CHECK(r[0].id == "2026-a");
  // Four new ids push both settled ones out of memory (retained ones go first).
  for (int k = 0; k < 4; ++k) {
    m.observe(Side::Amqp, "x" + std::to_string(k), "t", t0 + 3s, 0, true);
  }
  CHECK(m.size() == 4);
  CHECK(m.evictedSize() == 2);
  CHECK(m.observe(Side::Amqp, "a", "t", t0 + 4s, 0, true) == Matcher::Result::Late);
  CHECK(m.observe(Side::Amqp, "m", "t", t0 + 4s, 0, true) == Matcher::Result::Duplicate);
  CHECK(m.observe(Side::Zmq, "2026-m", "t", t0 + 4s, 0, true) == Matcher::Result::Duplicate);
  r = m.expire(t0 + 10s);
  CHECK(r.size() == 4);  // x0..x3, truly AMQP-only; neither a nor m again
  for (const auto &rep : r) {
    CHECK(rep.id[0] == 'x');
  }
  CHECK(m.stat(Side::Amqp, Stat::Late) == 1);
  CHECK(m.stat(Side::Zmq, Stat::Unverified) == 0);
  CHECK(m.stat(Side::Amqp, Stat::Unverified) == 0);
  CHECK(m.stat(Side::Zmq, Stat::Evicted) == 0);
  CHECK(m.stat(Side::Zmq, Stat::Unmatched) == 1);
  CHECK(m.stat(Side::Amqp, Stat::Unmatched) == 4);
}

TEST_CASE("when the memory of evicted ids overflows too, their twins are unverified, never reported") {
  Settings s;
  s.window = 2s;
  s.retain = 10s;
  s.max_entries = 2;
  s.max_evicted = 1;
  Matcher m(s);
  auto t0 = Clock::time_point{} + 100s;
  m.observe(Side::Zmq, "2026-a", "t", t0, 0, true);
  m.observe(Side::Zmq, "2026-b", "t", t0 + 1ms, 0, true);
  m.observe(Side::Zmq, "2026-c", "t", t0 + 2ms, 0, true);  // evicts a (trace kept)
  CHECK(m.stat(Side::Zmq, Stat::Forgotten) == 0);
  m.observe(Side::Zmq, "2026-d", "t", t0 + 3ms, 0, true);  // evicts b; a's trace is dropped
  CHECK(m.stat(Side::Zmq, Stat::Forgotten) == 1);
  CHECK(m.evictedSize() == 1);
  // a's twin cannot be recognised as such any more: it starts a new entry, but a blind one,
  // because a is in the filter of forgotten ids.
  CHECK(m.observe(Side::Amqp, "a", "t", t0 + 1s, 0, true) == Matcher::Result::New);  // evicts c
  CHECK(m.stat(Side::Zmq, Stat::Evicted) == 3);
  CHECK(m.stat(Side::Zmq, Stat::Forgotten) == 2);
  // d is truly ZeroMQ-only and was never forgotten: reported as usual.
  auto r = m.expire(t0 + 2s + 3ms);
  REQUIRE(r.size() == 1);
  CHECK(r[0].id == "2026-d");
  CHECK(m.expire(t0 + 3s).empty());  // a on AMQP: one-sided but blind, so not reported
  CHECK(m.stat(Side::Zmq, Stat::Unverified) == 3);  // a, b, c evicted
  CHECK(m.stat(Side::Amqp, Stat::Unverified) == 1);  // a's twin, blind
  CHECK(m.stat(Side::Zmq, Stat::Unmatched) == 1);
  CHECK(m.stat(Side::Amqp, Stat::Unmatched) == 0);
  std::uint64_t more = 0;
  auto notes = m.takeUnverified(10, more);
  REQUIRE(notes.size() == 4);
  CHECK(more == 0);
  CHECK(notes[3].id == "a");
  CHECK(notes[3].side == Side::Amqp);
  CHECK(notes[3].why == UnverifiedNote::Why::Blind);
  // b's and c's traces were forgotten at t0 + 1 s; their twins stay blind for at least
  // window + retain (12 s) from then, while a plain new id is reported.
  m.observe(Side::Amqp, "b", "t", t0 + 12s, 0, true);
  m.observe(Side::Amqp, "e", "t", t0 + 12s, 0, true);
  r = m.expire(t0 + 14s);
  REQUIRE(r.size() == 1);
  CHECK(r[0].id == "e");
  CHECK(m.stat(Side::Amqp, Stat::Unverified) == 2);
  // Long after, the filter has been emptied: c arriving now is simply a new message.
  m.observe(Side::Amqp, "c", "t", t0 + 40s, 0, true);
  r = m.expire(t0 + 42s);
  REQUIRE(r.size() == 1);
  CHECK(r[0].id == "c");
}

TEST_CASE("under any memory pressure, only truly one-sided ids are reported, each at most once") {
  // 3,000 ids, 10 % of them on one bus only; the other bus lags up to half a window behind,
  // so every two-sided id has its twin within the window. Memory far below the load (64)
  // and somewhat below it (1,500 of the about 2,000 ids a window holds).
  for (std::size_t max_entries : {std::size_t{64}, std::size_t{1500}})
  for (std::size_t max_evicted : {std::size_t{0}, std::size_t{1}, std::size_t{40}, std::size_t{100000}}) {
    CAPTURE(max_entries);
    CAPTURE(max_evicted);
    Settings s;
    s.window = 2s;
    s.retain = 2s;
    s.max_entries = max_entries;
    s.max_evicted = max_evicted;
    Matcher m(s);
    auto t0 = Clock::time_point{} + 100s;
    std::uint64_t rng = 12345;
    auto next = [&rng] {
      rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
      return rng >> 33;
    };
    struct Ev {
      Clock::duration at;
      Side side;
      std::string id;
    };
    std::vector<Ev> evs;
    std::set<std::string> one_sided;
    for (int k = 0; k < 3000; ++k) {
      auto at = std::chrono::milliseconds(k);
      Side lead = next() % 2 == 0 ? Side::Zmq : Side::Amqp;
      std::string key = "k" + std::to_string(k);
      auto name = [&](Side sd) { return sd == Side::Zmq ? "2026-" + key : key; };
      evs.push_back({at, lead, name(lead)});
      if (next() % 10 == 0) {
        one_sided.insert(name(lead));
      } else {
        evs.push_back({at + std::chrono::milliseconds(next() % 1000), otherSide(lead), name(otherSide(lead))});
      }
    }
    std::stable_sort(evs.begin(), evs.end(), [](const Ev &a, const Ev &b) { return a.at < b.at; });
    std::vector<Report> reports;
    for (const auto &e : evs) {
      m.observe(e.side, e.id, "t", t0 + e.at, 0, true);
      for (auto &r : m.expire(t0 + e.at)) {
        reports.push_back(std::move(r));
      }
    }
    for (auto &r : m.expire(t0 + 100s)) {
      reports.push_back(std::move(r));
    }
    std::set<std::string> seen;
    for (const auto &r : reports) {
      CHECK(one_sided.count(r.id) == 1);  // never a false report
      CHECK(seen.insert(r.id).second);    // never twice
    }
    CHECK(m.stat(Side::Zmq, Stat::Unmatched) + m.stat(Side::Amqp, Stat::Unmatched) == reports.size());
    if (max_evicted == 100000) {
      CHECK(m.stat(Side::Zmq, Stat::Forgotten) + m.stat(Side::Amqp, Stat::Forgotten) == 0);
    }
    MESSAGE("max_entries=", max_entries, " max_evicted=", max_evicted, " reports=", reports.size(), " of ", one_sided.size(), " one-sided, unverified=",
            m.stat(Side::Zmq, Stat::Unverified) + m.stat(Side::Amqp, Stat::Unverified),
            " late_matched=", m.stat(Side::Zmq, Stat::LateMatched) + m.stat(Side::Amqp, Stat::LateMatched));
  }
}

TEST_CASE("the integration test's overflow figures: 20 ids on ZeroMQ then on AMQP and a sentinel, max_entries 10, max_evicted 5") {
  Settings s;
  s.window = 6s;
  s.retain = 60s;
  s.max_entries = 10;
  s.max_evicted = 5;
  Matcher m(s);
  auto t0 = Clock::time_point{} + 100s;
  for (int k = 0; k < 20; ++k) {
    m.observe(Side::Zmq, "2026-id" + std::to_string(k), "t", t0, 0, true);
  }
  for (int k = 0; k < 20; ++k) {
    CHECK(m.observe(Side::Amqp, "id" + std::to_string(k), "t", t0 + 1s, 0, true) == Matcher::Result::New);
  }
  // A ZeroMQ-only sentinel: truly one-sided, never forgotten, so reported.
  m.observe(Side::Zmq, "2026-sentinel", "t", t0 + 2s, 0, true);
  CHECK(m.expire(t0 + 7s).empty());
  auto r = m.expire(t0 + 8s);
  REQUIRE(r.size() == 1);
  CHECK(r[0].id == "2026-sentinel");
  CHECK(m.expire(t0 + 100s).empty());
  CHECK(m.stat(Side::Zmq, Stat::Evicted) == 20);
  CHECK(m.stat(Side::Zmq, Stat::Unverified) == 20);
  CHECK(m.stat(Side::Zmq, Stat::Forgotten) == 20);
  CHECK(m.stat(Side::Zmq, Stat::Unmatched) == 1);
  CHECK(m.stat(Side::Amqp, Stat::Evicted) == 11);
  CHECK(m.stat(Side::Amqp, Stat::Unverified) == 20);
  CHECK(m.stat(Side::Amqp, Stat::Forgotten) == 6);
  CHECK(m.stat(Side::Amqp, Stat::Unmatched) == 0);
  for (Side sd : {Side::Zmq, Side::Amqp}) {
    CHECK(m.stat(sd, Stat::Matched) == 0);
    CHECK(m.stat(sd, Stat::LateMatched) == 0);
  }
}
