// SPDX-License-Identifier: MIT
//
// libswitchyard-store-db against a real database: SQLite in a temp dir, and PostgreSQL when
// SWITCHYARD_TEST_POSTGRES_URL names one (tests/store/test_postgres_db.py starts a private
// server with scripts/postgres-local and runs this binary with it). Idempotent insert,
// queries, the message -> row rule, and the replay store (replay_db.hpp) round trip.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "db.hpp"
#include "replay_db.hpp"
#include "switchyard/fedmsg.hpp"
#include "switchyard/message.hpp"

using namespace switchyard;
using store::Database;
using store::Filter;
using store::Row;

namespace {

std::vector<std::string> databases() {
  static std::vector<std::string> urls = [] {
    std::vector<std::string> v;
    static const auto dir = std::filesystem::temp_directory_path() / ("sy-store-db-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(dir, ec);
    });
    v.push_back("sqlite:" + (dir / "store.db").string());
    if (const char *pg = std::getenv("SWITCHYARD_TEST_POSTGRES_URL"); pg != nullptr && *pg != 0) {
      v.clear();  // the PostgreSQL run checks PostgreSQL only
      v.emplace_back(pg);
    }
    return v;
  }();
  return urls;
}

std::string unique(const std::string &prefix) {
  static int n = 0;
  return prefix + std::to_string(::getpid()) + "-" + std::to_string(++n) + "-";
}

Row row(std::string id, std::string topic, double ts, std::optional<std::string> user) {
  Row r;
  r.id = std::move(id);
  r.topic = std::move(topic);
  r.timestamp = ts;
  r.username = std::move(user);
  r.body = R"({"k": [1, 2.5, "é"]})";
  r.headers = R"({"h": "v"})";
  return r;
}

std::vector<std::string> ids(Database &db, const Filter &f) {
  std::vector<std::string> out;
  db.query(f, [&](Row &&r) { out.push_back(r.id); });
  return out;
}

}  // namespace

TEST_CASE("insert is idempotent and counts what was new") {
  for (const auto &url : databases()) {
    CAPTURE(url);
    auto db = Database::open(url);
    auto p = unique("idem-");
    std::vector<Row> rows;
    for (int i = 0; i < 1000; ++i) {
      rows.push_back(row(p + std::to_string(i), p + "t", 1000 + i, "u"));
    }
    auto before = db->count();
    CHECK(db->insert(rows) == 1000);
    CHECK(db->insert(rows) == 0);
    // A batch holding new ids, stored ones and the same id twice.
    std::vector<Row> mixed = {rows[0], row(p + "new1", p + "t", 1, {}), row(p + "new1", p + "t", 1, {}), rows[999]};
    CHECK(db->insert(mixed) == 1);
    CHECK(db->count() == before + 1001);
    // Reopening keeps the rows and the schema (version row not duplicated).
    db.reset();
    db = Database::open(url);
    CHECK(db->count() == before + 1001);
    Filter f;
    f.topics = {p + "t"};
    f.limit = 0;
    auto got = ids(*db, f);
    CHECK(got.size() == 1001);
    CHECK(std::set<std::string>(got.begin(), got.end()).size() == 1001);
  }
}

TEST_CASE("query by topic pattern, user, time, limit and order") {
  for (const auto &url : databases()) {
    CAPTURE(url);
    auto db = Database::open(url);
    auto p = unique("q");
    std::vector<Row> rows = {
        row(p + "a", p + "org.fedoraproject.prod.git.receive", 100, "alice"),
        row(p + "b", p + "org.fedoraproject.prod.bodhi.update", 200, "bob"),
        row(p + "c", p + "org.fedoraproject.stg.git.receive", 300, "alice"),
        row(p + "d", p + "org.fedoraproject.prod.git_receive", 400, {}),
        row(p + "e", p + "ORG.fedoraproject.prod.git.receive", 500, "carol"),
        row(p + "f", p + "org.fedoraproject.prod.100%", 600, "bob"),
    };
    REQUIRE(db->insert(rows) == rows.size());
    Filter f;
    f.topics = {p + "org.fedoraproject.prod.*"};
    CHECK(ids(*db, f) == std::vector<std::string>{p + "a", p + "b", p + "d", p + "f"});
    f.topics = {p + "org.*.git.receive"};  // '.' and '_' are literal, case matters
    CHECK(ids(*db, f) == std::vector<std::string>{p + "a", p + "c"});
    f.topics = {p + "*100%"};
    CHECK(ids(*db, f) == std::vector<std::string>{p + "f"});
    f.topics = {p + "org.fedoraproject.prod.git.receive", p + "*bodhi*"};
    CHECK(ids(*db, f) == std::vector<std::string>{p + "a", p + "b"});
    f.topics = {p + "*"};
    f.users = {"alice", "carol"};
    CHECK(ids(*db, f) == std::vector<std::string>{p + "a", p + "c", p + "e"});
    f.users.clear();
    f.since = 200;
    f.until = 500;
    CHECK(ids(*db, f) == std::vector<std::string>{p + "b", p + "c", p + "d"});
    f.descending = true;
    f.limit = 2;
    CHECK(ids(*db, f) == std::vector<std::string>{p + "d", p + "c"});
    // The stored fields come back as they went in.
    f = Filter{};
    f.topics = {p + "org.fedoraproject.prod.git_receive"};
    std::vector<Row> got;
    db->query(f, [&](Row &&r) { got.push_back(std::move(r)); });
    REQUIRE(got.size() == 1);
    CHECK(got[0].timestamp == 400);
    CHECK_FALSE(got[0].username.has_value());
    CHECK(got[0].body == rows[3].body);
    CHECK(got[0].headers == rows[3].headers);
  }
}

TEST_CASE("replay store: numbered per publisher, continued after a reopen, OR semantics") {
  for (const auto &url : databases()) {
    CAPTURE(url);
    auto name = unique("pub");
    std::string err;
    auto st = store::openReplayStore(url, name, err);
    REQUIRE_MESSAGE(st != nullptr, err);
    CHECK(st->nextSeqId() == 1);
    for (int i = 1; i <= 10; ++i) {
      replay::Record r;
      r.seq_id = st->nextSeqId();
      r.msg_id = "2026-m" + std::to_string(i);
      r.timestamp = 1000 + i;
      r.topic = "t";
      r.envelope = R"({"i":1,"msg":{},"msg_id":"2026-m)" + std::to_string(i) + R"(","seq_id":)" + std::to_string(i) + "}";
      st->add(r);
    }
    CHECK(st->size() == 10);
    auto other = store::openReplayStore(url, name + "-other", err);
    REQUIRE(other != nullptr);
    CHECK(other->nextSeqId() == 1);  // each publisher numbers its own
    st.reset();
    st = store::openReplayStore(url, name, err);
    REQUIRE(st != nullptr);
    CHECK(st->nextSeqId() == 11);
    CHECK(st->size() == 10);
    auto seqs = [](const std::vector<replay::Record> &v) {
      std::vector<std::int64_t> s;
      for (const auto &r : v) {
        s.push_back(r.seq_id);
      }
      return s;
    };
    replay::Query q;
    q.seq_id_range = std::pair<std::int64_t, std::int64_t>{3, 5};
    CHECK(seqs(st->query(q, 100)) == std::vector<std::int64_t>{3, 4, 5});
    q.seq_id = 9;
    q.msg_ids = {"2026-m1", "nope"};
    q.time = std::pair<double, double>{1007.0, 1007.0};
    CHECK(seqs(st->query(q, 100)) == std::vector<std::int64_t>{1, 3, 4, 5, 7, 9});
    CHECK(seqs(st->query(q, 2)) == std::vector<std::int64_t>{1, 3});
    replay::Query one;
    one.msg_id = "2026-m6";
    auto r6 = st->query(one, 100);
    REQUIRE(r6.size() == 1);
    CHECK(r6[0].envelope == R"({"i":1,"msg":{},"msg_id":"2026-m6","seq_id":6})");
    CHECK(r6[0].timestamp == 1006);
    replay::Query ids;
    ids.seq_ids = {10, 2, 42};
    CHECK(seqs(st->query(ids, 100)) == std::vector<std::int64_t>{2, 10});
    CHECK(st->query(replay::Query{}, 100).empty());
    CHECK(other->query(q, 100).empty());
  }
}

TEST_CASE("message -> row: id, username and time rules") {
  double now = 1.5e9;
  Message m("t.a", R"({"x":1})", R"({"sent-by":"alice","agent":"bob"})", "id-1", 0);
  auto r = store::rowFromMessage(m, now);
  CHECK(r.id == "id-1");
  CHECK(r.username == "alice");
  CHECK(r.timestamp == now);
  Message a("t.a", R"({"x":1})", R"({"agent":"bob","sent-at":"2019-07-30T19:12:22+00:00"})", "", 0);
  r = store::rowFromMessage(a, now);
  CHECK(r.username == "bob");
  CHECK(r.timestamp == 1564513942.0);
  CHECK(r.id == store::derivedId("t.a", R"({"x":1})"));
  CHECK(r.id.rfind("uuid5-", 0) == 0);
  CHECK(store::derivedId("t.a", R"({"x":1})") != store::derivedId("t.b", R"({"x":1})"));
  Message t("t.a", "{}", "{}", "id", 1733450000250);
  r = store::rowFromMessage(t, now);
  CHECK(r.timestamp == doctest::Approx(1733450000.25));
  CHECK_FALSE(r.username.has_value());
  // A fedmsg envelope's username wins.
  Message f;
  auto res = fedmsg::decode("org.x", R"({"i":1,"msg":{},"msg_id":"2026-e","timestamp":1700000000,"topic":"org.x","username":"apache"})", f);
  REQUIRE(res.ok());
  r = store::rowFromMessage(f, now);
  CHECK(r.username == "apache");
  CHECK(r.timestamp == 1700000000);
}

TEST_CASE("urls, patterns and times") {
  CHECK(store::redactUrl("postgresql://u:secret@h:5432/db") == "postgresql://u:***@h:5432/db");
  CHECK(store::redactUrl("postgresql://u@h/db") == "postgresql://u@h/db");
  CHECK(store::redactUrl("sqlite:/x/y.db") == "sqlite:/x/y.db");
  CHECK(store::likePattern("a.*_%\\") == "a.%\\_\\%\\\\");
  CHECK(store::parseTime("1733450000.5") == 1733450000.5);
  CHECK(store::parseTime("2026-12-06") == 1796515200.0);
  CHECK(store::parseTime("2026-12-06T01:00:00Z") == 1796518800.0);
  CHECK(store::parseTime("2026-12-06T02:00:00+01:00") == 1796518800.0);
  CHECK(store::parseTime("2026-12-06 01:00:00.25") == 1796518800.25);
  CHECK_FALSE(store::parseTime("yesterday").has_value());
  CHECK_FALSE(store::parseTime("2026-13-01").has_value());
  CHECK_FALSE(store::parseTime("2026-12-06T01:00:00Q").has_value());
  CHECK_THROWS_AS(Database::open("mysql://x"), store::DbError);
  CHECK_THROWS_WITH_AS(Database::open("sqlite:/nonexistent-dir/x/y.db"),
                       doctest::Contains("/nonexistent-dir/x/y.db"), store::DbError);
  std::string err;
  CHECK(store::openReplayStore("postgresql://u:pw@127.0.0.1:1/db", "p", err) == nullptr);
  CHECK(err.find("pw") == std::string::npos);
  CHECK(err.find("127.0.0.1:1") != std::string::npos);
}
