// SPDX-License-Identifier: MIT
// Unit tests of zmq-sub's loss accounting over the fedmsg `i` counter: gaps, duplicates,
// restarts, the reorder window, new connections (case 10b) and the
// saved state (case 10a).
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <random>
#include <vector>
#include <string>

#include "seq_tracker.hpp"

using switchyard::zmqt::SeqEvent;
using switchyard::zmqt::SeqTracker;
using K = SeqEvent::Kind;

TEST_CASE("without a reorder window: in-order, gaps, duplicates, late arrivals and restarts") {
  SeqTracker t;
  CHECK(t.observe("a", 5).kind == K::First);  // joining late is not a gap
  CHECK(t.observe("a", 6).kind == K::InOrder);
  auto g = t.observe("a", 10);
  CHECK(g.kind == K::Ahead);
  CHECK(g.opened == 3);
  CHECK(g.missing == 3);  // judged at once
  CHECK(g.gaps == 1);
  CHECK(t.open() == 0);
  CHECK(t.observe("a", 10).kind == K::Duplicate);
  CHECK(t.observe("a", 6).kind == K::Duplicate);
  CHECK(t.observe("a", 8).kind == K::Late);  // counted missing, then arrived
  CHECK(t.observe("a", 8).kind == K::Duplicate);
  CHECK(t.observe("a", 4).kind == K::Reordered);  // before the baseline: never counted
  CHECK(t.observe("a", 11).kind == K::InOrder);
  auto r = t.observe("a", 1);
  CHECK(r.kind == K::Restart);
  CHECK(r.missing == 0);
  CHECK(t.observe("a", 2).kind == K::InOrder);
  CHECK(t.observe("a", 1).kind == K::Restart);  // i back to 1 is a restart
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
  CHECK(r.opened == 2);
  CHECK(r.missing == 2);
  CHECK(r.gaps == 1);
  CHECK(t.observe("a", 4).kind == K::InOrder);
}

TEST_CASE("the duplicate window slides") {
  SeqTracker t;
  t.observe("a", 1);
  std::uint64_t missing = 0;
  std::uint64_t gaps = 0;
  for (std::uint64_t i = 3; i <= 3 * SeqTracker::kWindow + 1; i += 2) {  // every other value lost
    auto e = t.observe("a", i);
    CHECK(e.kind == K::Ahead);
    missing += e.missing;
    gaps += e.gaps;
  }
  CHECK(missing == 3 * SeqTracker::kWindow / 2);
  CHECK(gaps == missing);
  std::uint64_t high = 3 * SeqTracker::kWindow + 1;
  CHECK(t.observe("a", high - 2).kind == K::Duplicate);
  CHECK(t.observe("a", high - 1).kind == K::Late);
  auto far = t.observe("a", high + 5 * SeqTracker::kWindow);
  CHECK(far.kind == K::Ahead);
  CHECK(far.missing == 5 * SeqTracker::kWindow - 1);
  CHECK(t.observe("a", high + 5 * SeqTracker::kWindow - 1).kind == K::Late);
}

TEST_CASE("a jump of any size costs O(1)") {
  SeqTracker t(64, 1000);
  t.observe("a", 1);
  auto e = t.observe("a", std::uint64_t{1} << 62, 0);
  CHECK(e.missing == (std::uint64_t{1} << 62) - 2 - 63);  // all but the last 63 judged at once
  CHECK(e.gaps == 1);
  CHECK(t.open() == 63);
  std::uint64_t late = 0;
  t.expire(1000, [&](const std::string &, std::uint64_t m, std::uint64_t g, std::uint64_t) {
    late += m;
    CHECK(g == 0);  // the same run goes on
  });
  CHECK(late == 63);
  CHECK(t.open() == 0);
}

TEST_CASE("reorder window by count: a value filling a gap in time is reordered, not missing") {
  SeqTracker t(4, 0);
  t.observe("a", 1);
  t.observe("a", 2);
  auto e = t.observe("a", 4);
  CHECK(e.kind == K::Ahead);
  CHECK(e.opened == 1);
  CHECK(e.missing == 0);
  CHECK(t.open() == 1);
  auto r = t.observe("a", 3);
  CHECK(r.kind == K::Reordered);
  CHECK(r.missing == 0);
  CHECK(t.open() == 0);
  CHECK(t.observe("a", 3).kind == K::Duplicate);
  // 6 skipped: open while the highest is less than 4 past it.
  CHECK(t.observe("a", 5).kind == K::InOrder);
  CHECK(t.observe("a", 7).opened == 1);
  CHECK(t.observe("a", 8).missing == 0);
  CHECK(t.observe("a", 9).missing == 0);
  auto j = t.observe("a", 10);  // 10 - 4 = 6: judged now
  CHECK(j.kind == K::InOrder);
  CHECK(j.missing == 1);
  CHECK(j.gaps == 1);
  CHECK(t.open() == 0);
  CHECK(t.observe("a", 6).kind == K::Late);
}

TEST_CASE("reorder window by time") {
  SeqTracker t(64, 100);
  t.observe("a", 1, 0);
  auto e = t.observe("a", 6, 0);  // 2..5 open
  CHECK(e.opened == 4);
  CHECK(e.missing == 0);
  CHECK(t.observe("a", 3, 10).kind == K::Reordered);
  CHECK(t.observe("a", 4, 20).kind == K::Reordered);
  int calls = 0;
  t.expire(99, [&](const std::string &, std::uint64_t, std::uint64_t, std::uint64_t) { ++calls; });
  CHECK(calls == 0);
  std::uint64_t missing = 0;
  std::uint64_t gaps = 0;
  t.expire(100, [&](const std::string &key, std::uint64_t m, std::uint64_t g, std::uint64_t upto) {
    CHECK(key == "a");
    CHECK(upto == 5);
    missing += m;
    gaps += g;
  });
  CHECK(missing == 2);  // 2 and 5
  CHECK(gaps == 2);     // two separate runs
  CHECK(t.open() == 0);
  CHECK(t.observe("a", 2, 200).kind == K::Late);
  CHECK(t.observe("a", 5, 200).kind == K::Late);
}

TEST_CASE("a run of missing values judged in pieces is one gap") {
  SeqTracker t(2, 0);
  t.observe("a", 1);
  auto e = t.observe("a", 10);  // 2..8 judged at once (10 - 2), 9 open
  CHECK(e.missing == 7);
  CHECK(e.gaps == 1);
  CHECK(t.open() == 1);
  auto f = t.observe("a", 11);  // 9 judged: the same run
  CHECK(f.missing == 1);
  CHECK(f.gaps == 0);
  auto g = t.observe("a", 13);  // 12 open
  CHECK(g.missing == 0);
  auto h = t.observe("a", 15);  // 12 judged: a new run (10 and 11 were seen), 14 open
  CHECK(h.missing == 1);
  CHECK(h.gaps == 1);
}

TEST_CASE("a new connection makes a low value a restart, not a duplicate") {
  SeqTracker t(64, 1000);
  for (std::uint64_t i = 1; i <= 500; ++i) {
    t.observe("ep|a", i, 0, 0);
  }
  // Same connection: 300 again is a duplicate.
  CHECK(t.observe("ep|a", 300, 0, 0).kind == K::Duplicate);
  // New connection (epoch 1): the publisher restarted; its first 6 messages were lost.
  auto r = t.observe("ep|a", 7, 0, 1);
  CHECK(r.kind == K::Restart);
  CHECK(r.opened == 6);
  CHECK(r.missing == 0);  // open in the reorder window
  CHECK(t.observe("ep|a", 8, 0, 1).kind == K::InOrder);
  std::uint64_t missing = 0;
  t.expire(1000, [&](const std::string &, std::uint64_t m, std::uint64_t, std::uint64_t) { missing += m; });
  CHECK(missing == 6);
  // A reconnect of the same incarnation continues above the highest: no restart.
  CHECK(t.observe("ep|a", 9, 0, 2).kind == K::InOrder);
  CHECK(t.observe("ep|a", 12, 0, 3).kind == K::Ahead);
}

TEST_CASE("a restart judges the old incarnation's open values at once") {
  SeqTracker t(64, 1000);
  t.observe("a", 1, 0);
  t.observe("a", 5, 0);  // 2..4 open
  CHECK(t.open() == 3);
  auto r = t.observe("a", 2, 0, 1);
  CHECK(r.kind == K::Restart);
  CHECK(r.missing == 3);
  CHECK(r.gaps == 1);
  CHECK(r.opened == 1);
  CHECK(t.open() == 1);
  CHECK(t.observe("a", 1, 5, 1).kind == K::Reordered);  // the new one's 1 came late
  CHECK(t.open() == 0);
  std::uint64_t missing = 0;  // the old incarnation's time mark is void, the new one's found 1
  t.expire(5000, [&](const std::string &, std::uint64_t m, std::uint64_t, std::uint64_t) { missing += m; });
  CHECK(missing == 0);
}

TEST_CASE("saved state: the window a router was down for is a gap, open values stay open") {
  SeqTracker a(8, 1000);
  const std::string key = "tcp://h:9940|us er%\n";
  for (std::uint64_t i = 1; i <= 10; ++i) {
    a.observe(key, i, 0);
  }
  a.observe(key, 12, 0);
  a.observe(key, 14, 0);  // 11 and 13 open
  a.observe("other", 7, 0);
  CHECK(a.open() == 2);
  std::string text = a.save();

  SeqTracker b(8, 1000);
  std::string err;
  REQUIRE(b.load(text, 5000, err));
  CHECK(b.publishers() == 2);
  CHECK(b.open() == 2);
  CHECK(b.observe(key, 13, 5001).kind == K::Reordered);  // reordered across the restart
  CHECK(b.observe(key, 10, 5001).kind == K::Duplicate);  // at or below the saved frontier
  CHECK(b.observe(key, 3, 5001).kind == K::Duplicate);
  auto e = b.observe(key, 20, 5002);  // 15..19 sent while the router was down
  CHECK(e.kind == K::Ahead);
  CHECK(e.opened == 5);
  CHECK(e.missing == 1);  // 11 is now 8 below the highest
  std::uint64_t missing = e.missing;
  b.expire(6002, [&](const std::string &, std::uint64_t m, std::uint64_t, std::uint64_t) { missing += m; });
  CHECK(missing == 6);  // 11 and 15..19
  CHECK(b.open() == 0);
  CHECK(b.observe("other", 8, 6002).kind == K::InOrder);

  // A saved state without open values, and a restart (i = 1) after loading it.
  SeqTracker c;
  REQUIRE(c.load(b.save(), 0, err));
  CHECK(c.open() == 0);
  CHECK(c.observe(key, 21).kind == K::InOrder);
  CHECK(c.observe(key, 1).kind == K::Restart);
}

TEST_CASE("a saved run of missing values goes on after loading") {
  SeqTracker a(4, 0);
  a.observe("a", 1);
  a.observe("a", 10);  // 2..5 missing, 6..9 open
  SeqTracker b(4, 0);
  std::string err;
  REQUIRE(b.load(a.save(), 0, err));
  auto e = b.observe("a", 11);  // 6 judged: same run as 2..5
  CHECK(e.missing == 1);
  CHECK(e.gaps == 0);
}

TEST_CASE("a corrupt state is refused with a reason and leaves the tracker empty") {
  SeqTracker good(8, 0);
  good.observe("a", 1);
  good.observe("a", 4);
  const std::string ok = good.save();
  const char *bad[] = {
      "",
      "hello\n",
      "switchyard-zmq-sub-seq 1",                              // no end of line
      "switchyard-zmq-sub-seq 2\n",                            // other version
      "switchyard-zmq-sub-seq 1\na 1 10 5 0\n",                // fields missing
      "switchyard-zmq-sub-seq 1\na 1 10 5 0 1f 7\n",           // too many
      "switchyard-zmq-sub-seq 1\na 1 10 11 0 -\n",             // judged above highest
      "switchyard-zmq-sub-seq 1\na 0 10 10 0 -\n",             // base 0
      "switchyard-zmq-sub-seq 1\na 1 9999 1 0 -\n",            // window too wide
      "switchyard-zmq-sub-seq 1\na 1 10 6 0 z\n",              // bad hex
      "switchyard-zmq-sub-seq 1\na 1 10 6 0 1\n",              // wrong length
      "switchyard-zmq-sub-seq 1\na 1 10 6 0 7\n",              // highest not seen
      "switchyard-zmq-sub-seq 1\na 1 10 10 2 -\n",             // bad run flag
      "switchyard-zmq-sub-seq 1\na%4 1 10 10 0 -\n",           // bad escape
      "switchyard-zmq-sub-seq 1\na 1 -3 1 0 -\n",              // negative
      "switchyard-zmq-sub-seq 1\na 1 99999999999999999999 1 0 -\n",  // overflow
      "switchyard-zmq-sub-seq 1\na 1 10 10 0 -\na 1 10 10 0 -\n",    // twice
  };
  for (const char *text : bad) {
    SeqTracker t;
    t.observe("x", 1);
    std::string err;
    CHECK_MESSAGE(!t.load(text, 0, err), text);
    CHECK(!err.empty());
    CHECK(t.publishers() == 0);
    CHECK(t.open() == 0);
  }
  // Every truncation and random byte flips of a good state: an answer, never a crash.
  std::mt19937 rng(12);
  for (std::size_t cut = 0; cut < ok.size(); ++cut) {
    SeqTracker t;
    std::string err;
    (void)t.load(std::string_view(ok).substr(0, cut), 0, err);
  }
  for (int k = 0; k < 2000; ++k) {
    std::string s = ok;
    s[rng() % s.size()] = static_cast<char>(rng() % 256);
    SeqTracker t;
    std::string err;
    if (t.load(s, 0, err)) {
      (void)t.observe("a", 5);
    }
  }
}

TEST_CASE("random streams: missing is exactly what never arrived, reordering within the window is free") {
  for (std::uint64_t window : {std::uint64_t{0}, std::uint64_t{4}, std::uint64_t{64}}) {
    for (unsigned seed = 1; seed <= 20; ++seed) {
      std::mt19937 rng(seed);
      const std::uint64_t n = 5000;
      // Drop ~10 % (never the first value: it is the baseline), hold ~8 % back by 1..8 places,
      // repeat ~2 %.
      std::vector<std::uint64_t> order;
      std::uint64_t dropped = 0;
      for (std::uint64_t v = 1; v <= n; ++v) {
        if (v > 1 && rng() % 10 == 0) {
          ++dropped;
        } else {
          order.push_back(v);
        }
      }
      for (std::size_t k = 1; k + 9 < order.size(); ++k) {
        if (rng() % 100 < 8) {
          std::size_t d = 1 + rng() % 8;
          std::uint64_t v = order[k];
          order.erase(order.begin() + static_cast<std::ptrdiff_t>(k));
          order.insert(order.begin() + static_cast<std::ptrdiff_t>(k + d), v);
          k += d;
        }
      }
      std::vector<std::uint64_t> stream;
      std::uint64_t repeats = 0;
      for (std::uint64_t v : order) {
        stream.push_back(v);
        if (rng() % 100 < 2) {
          stream.push_back(v);
          ++repeats;
        }
      }
      std::uint64_t held_back = 0;
      std::uint64_t top = 0;
      for (std::uint64_t v : order) {
        held_back += v < top ? 1 : 0;
        top = std::max(top, v);
      }
      dropped -= n - top;  // dropped after the last value that arrived: nothing reveals them
      SeqTracker t(window, 0);
      std::uint64_t missing = 0;
      std::uint64_t reordered = 0;
      std::uint64_t late = 0;
      std::uint64_t dups = 0;
      for (std::uint64_t v : stream) {
        auto e = t.observe("p", v);
        missing += e.missing;
        reordered += e.kind == K::Reordered ? 1 : 0;
        late += e.kind == K::Late ? 1 : 0;
        dups += e.kind == K::Duplicate ? 1 : 0;
        CHECK(e.kind != K::Restart);
      }
      t.judgeAll([&](const std::string &, std::uint64_t m, std::uint64_t, std::uint64_t) { missing += m; });
      CAPTURE(window);
      CAPTURE(seed);
      CHECK(dups == repeats);
      CHECK(t.open() == 0);
      CHECK(missing - late == dropped);  // net loss, whatever the window
      if (window >= 64) {                // held back by far less than the window
        CHECK(missing == dropped);
        CHECK(late == 0);
        CHECK(reordered == held_back);
      } else if (window == 0) {
        CHECK(reordered == 0);
        CHECK(late == held_back);
      }
      // The state survives a save/load at any point without changing the outcome.
      SeqTracker a(window, 0);
      SeqTracker b(window, 0);
      std::uint64_t ma = 0;
      std::uint64_t mb = 0;
      std::size_t cut = rng() % stream.size();
      for (std::size_t k = 0; k < stream.size(); ++k) {
        if (k == cut) {
          std::string err;
          REQUIRE(b.load(a.save(), 0, err));
          mb = ma;
        }
        auto ea = a.observe("p", stream[k]);
        ma += ea.missing;
        if (k >= cut) {
          auto eb = b.observe("p", stream[k]);
          mb += eb.missing;
        }
      }
      CHECK(ma == mb);
    }
  }
}
