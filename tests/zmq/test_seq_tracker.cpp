// SPDX-License-Identifier: MIT
// Unit tests of zmq-sub's loss accounting over the fedmsg `i` counter.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include "seq_tracker.hpp"

using switchyard::zmqt::SeqEvent;
using switchyard::zmqt::SeqTracker;
using K = SeqEvent::Kind;

TEST_CASE("in-order, gaps, duplicates, reorders and restarts") {
  SeqTracker t;
  CHECK(t.observe("a", 5).kind == K::First);  // joining late is not a gap
  CHECK(t.observe("a", 6).kind == K::InOrder);
  auto g = t.observe("a", 10);
  CHECK(g.kind == K::Gap);
  CHECK(g.missing == 3);
  CHECK(t.observe("a", 10).kind == K::Duplicate);
  CHECK(t.observe("a", 6).kind == K::Duplicate);
  CHECK(t.observe("a", 8).kind == K::Reordered);  // a late arrival from the gap
  CHECK(t.observe("a", 8).kind == K::Duplicate);
  CHECK(t.observe("a", 11).kind == K::InOrder);
  auto r = t.observe("a", 1);
  CHECK(r.kind == K::Restart);
  CHECK(r.missing == 0);
  CHECK(t.observe("a", 2).kind == K::InOrder);
  CHECK(t.observe("a", 1).kind == K::Restart);  // i back to 1 is always a restart
}

TEST_CASE("publishers are independent") {
  SeqTracker t;
  CHECK(t.observe("a", 1).kind == K::First);
  CHECK(t.observe("b", 1).kind == K::First);
  CHECK(t.observe("a", 2).kind == K::InOrder);
  CHECK(t.observe("b", 3).missing == 1);
  CHECK(t.publishers() == 2);
}

TEST_CASE("a counter far below the highest is a restart whose first messages were lost") {
  SeqTracker t;
  t.observe("a", 100000);
  auto r = t.observe("a", 3);
  CHECK(r.kind == K::Restart);
  CHECK(r.missing == 2);
  CHECK(t.observe("a", 4).kind == K::InOrder);
}

TEST_CASE("the duplicate window slides") {
  SeqTracker t;
  t.observe("a", 1);
  std::uint64_t missing = 0;
  for (std::uint64_t i = 3; i <= 3 * SeqTracker::kWindow + 1; i += 2) {  // every other value lost
    auto e = t.observe("a", i);
    CHECK(e.kind == K::Gap);
    missing += e.missing;
  }
  CHECK(missing == 3 * SeqTracker::kWindow / 2);
  std::uint64_t high = 3 * SeqTracker::kWindow + 1;
  CHECK(t.observe("a", high - 2).kind == K::Duplicate);
  CHECK(t.observe("a", high - 1).kind == K::Reordered);
  auto far = t.observe("a", high + 5 * SeqTracker::kWindow);
  CHECK(far.kind == K::Gap);
  CHECK(far.missing == 5 * SeqTracker::kWindow - 1);
  CHECK(t.observe("a", high + 5 * SeqTracker::kWindow - 1).kind == K::Reordered);
}
