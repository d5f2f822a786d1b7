// SPDX-License-Identifier: MIT
// Unit tests of the replay protocol in the codec (switchyard/replay.hpp): the query parser
// and its refusals, the canonical query text, the error frame, the numbering of an
// envelope, and the bounded in-memory store.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "switchyard/replay.hpp"

namespace rp = switchyard::replay;
using namespace std::string_literals;

namespace {

rp::Record rec(std::int64_t seq, std::string msg_id, double ts, std::string env = {}) {
  rp::Record r;
  r.seq_id = seq;
  r.msg_id = std::move(msg_id);
  r.timestamp = ts;
  r.topic = "t";
  r.envelope = env.empty() ? "{\"seq_id\":" + std::to_string(seq) + "}" : std::move(env);
  return r;
}

std::vector<std::int64_t> seqs(const std::vector<rp::Record> &rs) {
  std::vector<std::int64_t> out;
  for (const auto &r : rs) {
    out.push_back(r.seq_id);
  }
  return out;
}

/// A store with seq_ids 1..n, msg_id "m<seq>", timestamp 1000 + seq.
std::unique_ptr<rp::Store> filled(std::size_t n, std::size_t max_messages = 1000, std::size_t max_bytes = 0) {
  auto s = rp::makeMemoryStore(max_messages, max_bytes);
  for (std::size_t i = 1; i <= n; ++i) {
    auto seq = static_cast<std::int64_t>(i);
    s->add(rec(seq, "m" + std::to_string(seq), 1000.0 + static_cast<double>(seq)));
  }
  return s;
}

rp::Query q(std::string_view text) {
  std::string error;
  auto parsed = rp::parseQuery(text, error);
  REQUIRE_MESSAGE(parsed.has_value(), error);
  return *parsed;
}

}  // namespace

TEST_CASE("parseQuery reads every query type") {
  CHECK(*q(R"({"seq_id":7})").seq_id == 7);
  CHECK(q(R"({"seq_ids":[3,1,2]})").seq_ids == std::vector<std::int64_t>{3, 1, 2});
  auto r = q(R"({"seq_id_range":[4,9]})").seq_id_range;
  REQUIRE(r);
  CHECK(r->first == 4);
  CHECK(r->second == 9);
  CHECK(*q(R"({"msg_id":"2026-abc"})").msg_id == "2026-abc");
  CHECK(q(R"({"msg_ids":["a","b"]})").msg_ids == std::vector<std::string>{"a", "b"});
  auto t = q(R"({"time":[1700000000,1700000001.5]})").time;
  REQUIRE(t);
  CHECK(t->first == 1700000000.0);
  CHECK(t->second == 1700000001.5);
  // Several keys at once, with whitespace as Python's json.dumps writes it.
  auto all = q(R"({"seq_id": 1, "msg_id": "x", "time": [1, 2]})");
  CHECK(*all.seq_id == 1);
  CHECK(*all.msg_id == "x");
  CHECK(all.time);
  CHECK(*q(R"({"seq_id":-5})").seq_id == -5);
  CHECK(*q(R"({"seq_id":9223372036854775807})").seq_id == INT64_MAX);
}

TEST_CASE("parseQuery refuses bad queries, with their reasons") {
  struct Bad {
    std::string bytes;
    std::string reason;
  };
  const std::vector<Bad> table = {
      {"", "not JSON (invalid_json)"},
      {"{", "not JSON (invalid_json)"},
      {"seq_id=1", "not JSON (invalid_json)"},
      {"{\"seq_id\":1}x", "not JSON (invalid_json)"},
      {"\xff\xfe", "not JSON (invalid_utf8)"},
      {"{\"seq_id\":1,\"seq_id\":2}", "not JSON (duplicate_keys)"},
      {"[1,2]", "not a JSON object"},
      {"7", "not a JSON object"},
      {"\"seq_id\"", "not a JSON object"},
      {"null", "not a JSON object"},
      {"{}", "empty query: give one of seq_id, seq_ids, seq_id_range, msg_id, msg_ids, time"},
      {"{\"seq_ids\":[]}", "empty query: give one of seq_id, seq_ids, seq_id_range, msg_id, msg_ids, time"},
      {"{\"msg_ids\":[]}", "empty query: give one of seq_id, seq_ids, seq_id_range, msg_id, msg_ids, time"},
      {"{\"seqid\":1}", "unknown key \"seqid\" (known: seq_id, seq_ids, seq_id_range, msg_id, msg_ids, time)"},
      {"{\"seq_id\":1,\"limit\":5}", "unknown key \"limit\" (known: seq_id, seq_ids, seq_id_range, msg_id, msg_ids, time)"},
      {"{\"x'\\n\":1}", "unknown key \"x'\\n\" (known: seq_id, seq_ids, seq_id_range, msg_id, msg_ids, time)"},
      {"{\"seq_id\":\"1\"}", "seq_id must be an integer"},
      {"{\"seq_id\":1.0}", "seq_id must be an integer"},
      {"{\"seq_id\":true}", "seq_id must be an integer"},
      {"{\"seq_id\":null}", "seq_id must be an integer"},
      {"{\"seq_id\":92233720368547758070}", "seq_id must be an integer"},
      {"{\"seq_ids\":5}", "seq_ids must be a list of integers"},
      {"{\"seq_ids\":[1,\"2\"]}", "seq_ids must be a list of integers"},
      {"{\"seq_id_range\":[1]}", "seq_id_range must be a list of two integers"},
      {"{\"seq_id_range\":[1,2,3]}", "seq_id_range must be a list of two integers"},
      {"{\"seq_id_range\":[1,2.5]}", "seq_id_range must be a list of two integers"},
      {"{\"seq_id_range\":{\"a\":1}}", "seq_id_range must be a list of two integers"},
      {"{\"seq_id_range\":\"1-2\"}", "seq_id_range must be a list of two integers"},
      {"{\"msg_id\":5}", "msg_id must be a string"},
      {"{\"msg_id\":null}", "msg_id must be a string"},
      {"{\"msg_ids\":\"a\"}", "msg_ids must be a list of strings"},
      {"{\"msg_ids\":[\"a\",1]}", "msg_ids must be a list of strings"},
      {"{\"time\":[1]}", "time must be a list of two numbers (epoch seconds)"},
      {"{\"time\":[1,\"2\"]}", "time must be a list of two numbers (epoch seconds)"},
      {"{\"time\":[1,2,3]}", "time must be a list of two numbers (epoch seconds)"},
      {"{\"time\":[NaN,2]}", "time must be a list of two numbers (epoch seconds)"},
      {"{\"time\":1700000000}", "time must be a list of two numbers (epoch seconds)"},
      {"{\"seq_ids\":[[[[[1]]]]]}", "not JSON (too_deep)"},
      {std::string(2u << 20, ' '), "not JSON (oversize)"},
      {"{\"seq_id\":1}\0"s, "not JSON (invalid_json)"},
  };
  for (const Bad &b : table) {
    CAPTURE(b.bytes.substr(0, 60));
    std::string error;
    auto parsed = rp::parseQuery(b.bytes, error);
    CHECK_FALSE(parsed.has_value());
    CHECK(error == b.reason);
  }
}

TEST_CASE("encodeQuery writes canonical JSON that parseQuery reads back") {
  rp::Query a;
  a.seq_id = 3;
  a.seq_ids = {5, 4};
  a.seq_id_range = std::make_pair(std::int64_t{7}, std::int64_t{9});
  a.msg_id = "2026-é";
  a.msg_ids = {"x", "y"};
  a.time = std::make_pair(1.5, 2.0);
  std::string text = rp::encodeQuery(a);
  CHECK(text ==
        R"({"msg_id":"2026-\u00e9","msg_ids":["x","y"],"seq_id":3,"seq_id_range":[7,9],"seq_ids":[5,4],"time":[1.5,2.0]})");
  auto b = q(text);
  CHECK(*b.seq_id == 3);
  CHECK(b.seq_ids == a.seq_ids);
  CHECK(*b.seq_id_range == *a.seq_id_range);
  CHECK(*b.msg_id == *a.msg_id);
  CHECK(b.msg_ids == a.msg_ids);
  CHECK(*b.time == *a.time);
  rp::Query range;
  range.seq_id_range = std::make_pair(std::int64_t{10}, std::int64_t{12});
  CHECK(rp::encodeQuery(range) == R"({"seq_id_range":[10,12]})");
  CHECK(rp::encodeQuery(rp::Query{}) == "{}");
}

TEST_CASE("errorFrame and isErrorFrame") {
  CHECK(rp::errorFrame("no match") == "error: 'no match'");
  std::string reason;
  CHECK(rp::isErrorFrame("error: 'no match'", &reason));
  CHECK(reason == "no match");
  CHECK(rp::isErrorFrame(rp::errorFrame("it's odd"), &reason));
  CHECK(reason == "it's odd");
  CHECK(rp::isErrorFrame("error: unquoted", &reason));
  CHECK(reason == "unquoted");
  CHECK(rp::isErrorFrame("error: "));
  CHECK_FALSE(rp::isErrorFrame("{\"error\":1}"));
  CHECK_FALSE(rp::isErrorFrame("error:'x'"));
  CHECK_FALSE(rp::isErrorFrame(""));
}

TEST_CASE("insertSeqId: canonical position, the rest byte-exact") {
  const std::string env =
      R"({"certificate":"Q0VSVA==","i":1,"msg":{"seq_id":"inner"},"msg_id":"2026-a","signature":"U0lH","timestamp":1700000000,"topic":"t","username":"u"})";
  CHECK(*rp::insertSeqId(env, 42) ==
        R"({"certificate":"Q0VSVA==","i":1,"msg":{"seq_id":"inner"},"msg_id":"2026-a","seq_id":42,"signature":"U0lH","timestamp":1700000000,"topic":"t","username":"u"})");
  // Last when every key sorts before it; first when every key sorts after it.
  CHECK(*rp::insertSeqId(R"({"a":1,"msg":[1,{"b":"}"}]})", 1) == R"({"a":1,"msg":[1,{"b":"}"}],"seq_id":1})");
  CHECK(*rp::insertSeqId(R"({"topic":"x","username":"u"})", 7) == R"({"seq_id":7,"topic":"x","username":"u"})");
  CHECK(*rp::insertSeqId("{}", 3) == R"({"seq_id":3})");
  CHECK(*rp::insertSeqId("{ }", 3) == R"({ "seq_id":3})");
  // Python's default separators are kept.
  CHECK(*rp::insertSeqId(R"({"msg": {"a": 1}, "msg_id": "x", "topic": "t"})", 5) ==
        R"({"msg": {"a": 1}, "msg_id": "x", "seq_id": 5, "topic": "t"})");
  // An existing seq_id is renumbered in place.
  CHECK(*rp::insertSeqId(R"({"msg":1,"seq_id":9,"topic":"t"})", 10) == R"({"msg":1,"seq_id":10,"topic":"t"})");
  CHECK(*rp::insertSeqId(R"({"msg":1,"seq_id": 9 ,"topic":"t"})", 10) == R"({"msg":1,"seq_id": 10 ,"topic":"t"})");
  // Keys with escapes and strings with quotes and brackets.
  CHECK(*rp::insertSeqId(R"({"m\u0073g":"a\"}{[","x":"\\"})", 2) == R"({"m\u0073g":"a\"}{[","seq_id":2,"x":"\\"})");
  CHECK_FALSE(rp::insertSeqId("[1]", 1));
  CHECK_FALSE(rp::insertSeqId("", 1));
  CHECK_FALSE(rp::insertSeqId(R"({"a":1)", 1));
  CHECK_FALSE(rp::insertSeqId(R"({"a":1}x)", 1));
  CHECK_FALSE(rp::insertSeqId(R"({"a":"1})", 1));
}

TEST_CASE("memory store: every query type, OR, inclusive ranges, order, limit") {
  auto s = filled(20);
  CHECK(s->nextSeqId() == 21);
  CHECK(s->size() == 20);
  CHECK(seqs(s->query(q(R"({"seq_id":5})"), 100)) == std::vector<std::int64_t>{5});
  CHECK(seqs(s->query(q(R"({"seq_ids":[9,2,9,40]})"), 100)) == std::vector<std::int64_t>{2, 9});
  CHECK(seqs(s->query(q(R"({"seq_id_range":[3,6]})"), 100)) == std::vector<std::int64_t>{3, 4, 5, 6});
  CHECK(seqs(s->query(q(R"({"seq_id_range":[18,30]})"), 100)) == std::vector<std::int64_t>{18, 19, 20});
  CHECK(seqs(s->query(q(R"({"seq_id_range":[6,6]})"), 100)) == std::vector<std::int64_t>{6});
  CHECK(s->query(q(R"({"seq_id_range":[6,3]})"), 100).empty());
  CHECK(seqs(s->query(q(R"({"msg_id":"m7"})"), 100)) == std::vector<std::int64_t>{7});
  CHECK(seqs(s->query(q(R"({"msg_ids":["m12","nope","m1"]})"), 100)) == std::vector<std::int64_t>{1, 12});
  CHECK(seqs(s->query(q(R"({"time":[1010,1012.0]})"), 100)) == std::vector<std::int64_t>{10, 11, 12});
  CHECK(seqs(s->query(q(R"({"time":[1010.5,1011.5]})"), 100)) == std::vector<std::int64_t>{11});
  // OR: the union, in seq_id order, each record once.
  CHECK(seqs(s->query(q(R"({"seq_id":15,"msg_id":"m2","seq_id_range":[4,5],"time":[1004,1004]})"), 100)) ==
        std::vector<std::int64_t>{2, 4, 5, 15});
  // limit: the first ones.
  CHECK(seqs(s->query(q(R"({"seq_id_range":[1,20]})"), 3)) == std::vector<std::int64_t>{1, 2, 3});
  CHECK(seqs(s->query(q(R"({"seq_id":1,"seq_id_range":[10,20],"time":[1000,2000]})"), 4)) ==
        std::vector<std::int64_t>{1, 2, 3, 4});
  CHECK(s->query(q(R"({"seq_id":999})"), 100).empty());
  CHECK(s->query(q(R"({"msg_id":"zz"})"), 100).empty());
  auto one = s->query(q(R"({"seq_id":3})"), 100);
  REQUIRE(one.size() == 1);
  CHECK(one[0].envelope == R"({"seq_id":3})");
  CHECK(one[0].msg_id == "m3");
  CHECK(one[0].timestamp == 1003.0);
  CHECK_THROWS(s->add(rec(5, "late", 0)));  // out of order
  CHECK(s->nextSeqId() == 21);
}

TEST_CASE("memory store: bounded by count") {
  auto s = filled(25, 10);
  CHECK(s->size() == 10);
  CHECK(s->nextSeqId() == 26);
  CHECK(s->query(q(R"({"seq_id":15})"), 100).empty());
  CHECK(s->query(q(R"({"msg_id":"m3"})"), 100).empty());
  CHECK(seqs(s->query(q(R"({"seq_id_range":[1,17]})"), 100)) == std::vector<std::int64_t>{16, 17});
  CHECK(seqs(s->query(q(R"({"time":[0,1017]})"), 100)) == std::vector<std::int64_t>{16, 17});
  CHECK(s->bytes() == 10 * std::string(R"({"seq_id":20})").size());
}

TEST_CASE("memory store: bounded by bytes") {
  auto s = rp::makeMemoryStore(0, 100);
  for (std::int64_t i = 1; i <= 10; ++i) {
    s->add(rec(i, "m" + std::to_string(i), 0, std::string(30, 'x')));
  }
  CHECK(s->size() == 3);
  CHECK(s->bytes() == 90);
  CHECK(seqs(s->query(q(R"({"seq_id_range":[1,10]})"), 100)) == std::vector<std::int64_t>{8, 9, 10});
  // A record larger than the whole budget is not kept, but its number is used.
  s->add(rec(11, "big", 0, std::string(101, 'x')));
  CHECK(s->size() == 0);
  CHECK(s->bytes() == 0);
  CHECK(s->nextSeqId() == 12);
  CHECK(s->query(q(R"({"seq_id":11})"), 100).empty());
  s->add(rec(12, "m12", 0, std::string(10, 'x')));
  CHECK(seqs(s->query(q(R"({"seq_id_range":[1,20]})"), 100)) == std::vector<std::int64_t>{12});
  CHECK_THROWS(rp::makeMemoryStore(0, 0));
}

TEST_CASE("memory store: the same msg_id twice, one forgotten") {
  auto s = rp::makeMemoryStore(2, 0);
  s->add(rec(1, "dup", 0));
  s->add(rec(2, "dup", 0));
  CHECK(seqs(s->query(q(R"({"msg_id":"dup"})"), 100)) == std::vector<std::int64_t>{1, 2});
  s->add(rec(3, "other", 0));
  CHECK(seqs(s->query(q(R"({"msg_id":"dup"})"), 100)) == std::vector<std::int64_t>{2});
}

TEST_CASE("memory store: queries while adding (two threads)") {
  auto s = rp::makeMemoryStore(500, 0);
  std::thread writer([&] {
    for (std::int64_t i = 1; i <= 20000; ++i) {
      s->add(rec(i, "m" + std::to_string(i), static_cast<double>(i)));
    }
  });
  std::size_t checked = 0;
  while (s->nextSeqId() <= 20000) {
    auto got = s->query(q(R"({"seq_id_range":[1,30000]})"), 1000);
    for (std::size_t k = 1; k < got.size(); ++k) {
      REQUIRE(got[k].seq_id == got[k - 1].seq_id + 1);
    }
    CHECK(got.size() <= 500);
    ++checked;
  }
  writer.join();
  CHECK(checked > 0);
  CHECK(s->size() == 500);
  CHECK(seqs(s->query(q(R"({"seq_id_range":[19999,30000]})"), 1000)) == std::vector<std::int64_t>{19999, 20000});
}

TEST_CASE("parseQuery and insertSeqId on mutated bytes: an answer or a reason, never a crash") {
  const std::vector<std::string> seeds = {
      R"({"seq_id":7})", R"({"seq_ids":[1,2,3]})", R"({"seq_id_range":[4,9]})", R"({"msg_id":"2026-a\u00e9"})",
      R"({"msg_ids":["a","b"]})", R"({"time":[1.5,2e3]})", R"({"seq_id": 1, "msg_id": "x", "time": [1, 2]})"};
  std::uint32_t state = 12345;
  auto next = [&] {
    state = state * 1664525u + 1013904223u;
    return state >> 8;
  };
  std::size_t accepted = 0;
  for (int round = 0; round < 30000; ++round) {
    std::string s = seeds[next() % seeds.size()];
    for (int k = 0, n = static_cast<int>(next() % 4) + 1; k < n; ++k) {
      std::size_t at = next() % (s.size() + 1);
      switch (next() % 3) {
        case 0: s.insert(s.begin() + static_cast<std::ptrdiff_t>(at), static_cast<char>(next() & 0xff)); break;
        case 1: if (at < s.size()) s.erase(at, 1); break;
        default: if (at < s.size()) s[at] = "{}[],:\"\\0-1e.x "[next() % 16]; break;
      }
    }
    std::string error;
    auto parsed = rp::parseQuery(s, error);
    if (parsed) {
      CHECK_FALSE(parsed->empty());
      ++accepted;
      // What was accepted encodes to a query that reads back the same.
      std::string again_error;
      CHECK(rp::parseQuery(rp::encodeQuery(*parsed), again_error).has_value());
    } else {
      CHECK_FALSE(error.empty());
    }
    (void)rp::insertSeqId(s, 1);
  }
  CHECK(accepted > 0);
}
