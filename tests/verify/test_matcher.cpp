// SPDX-License-Identifier: MIT
// verify-missing's matcher with a fake clock: matching across the year prefix, reports
// after the window, duplicates and late arrivals, the ZeroMQ-loss annotation, and the
// memory bound under a flood.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <string>

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
