// SPDX-License-Identifier: MIT
//
// The SQLite backend (`sqlite:PATH`): WAL journal, synchronous=NORMAL (a commit survives a
// crash of the process; a power cut may lose the last transactions, never corrupt the
// file), one prepared INSERT run per row inside one transaction per batch.
#include <sqlite3.h>

#include <chrono>
#include <cstdlib>

#include <fmt/format.h>

#include "db_impl.hpp"
#include "sql.hpp"

namespace switchyard::store {
namespace {

class Stmt {
 public:
  Stmt() = default;
  Stmt(sqlite3 *db, const std::string &text, const std::string &name) {
    if (sqlite3_prepare_v2(db, text.c_str(), static_cast<int>(text.size()), &s_, nullptr) != SQLITE_OK) {
      throw DbError(fmt::format("{}: cannot prepare a statement: {}", name, sqlite3_errmsg(db)));
    }
  }
  Stmt(const Stmt &) = delete;
  Stmt &operator=(const Stmt &) = delete;
  Stmt(Stmt &&o) noexcept : s_(o.s_) { o.s_ = nullptr; }
  Stmt &operator=(Stmt &&o) noexcept {
    std::swap(s_, o.s_);
    return *this;
  }
  ~Stmt() { sqlite3_finalize(s_); }
  sqlite3_stmt *get() const noexcept { return s_; }

 private:
  sqlite3_stmt *s_ = nullptr;
};

class SqliteDb final : public Database {
 public:
  SqliteDb(const std::string &path, std::string name) : name_(std::move(name)) {
    int rc = sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                             nullptr);
    if (rc != SQLITE_OK) {
      std::string why = db_ != nullptr ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
      sqlite3_close(db_);
      db_ = nullptr;
      throw DbError(fmt::format("{}: cannot open the database file: {} (check that the directory exists and "
                                "is writable by this user)",
                                name_, why));
    }
    sqlite3_busy_timeout(db_, 10000);
    exec("PRAGMA journal_mode=WAL");
    exec("PRAGMA synchronous=NORMAL");
    exec("PRAGMA case_sensitive_like=ON");  // LIKE as in PostgreSQL: topics are case-sensitive
    exec("BEGIN IMMEDIATE");
    try {
      for (const auto &s : sql::schema(sql::Dialect::Sqlite)) {
        exec(s);
      }
      checkVersion();
      exec("COMMIT");
    } catch (...) {
      exec("ROLLBACK", false);
      throw;
    }
    insert_ = Stmt(db_,
                   fmt::format("INSERT INTO messages ({}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) "
                               "ON CONFLICT (msg_id) DO NOTHING",
                               sql::kInsertColumns),
                   name_);
  }
  ~SqliteDb() override {
    insert_ = Stmt();
    sqlite3_close(db_);
  }

  const std::string &name() const noexcept override { return name_; }

  std::size_t insert(const std::vector<Row> &rows) override {
    const double now = nowSeconds();
    exec("BEGIN IMMEDIATE");
    std::size_t added = 0;
    try {
      sqlite3_stmt *s = insert_.get();
      for (const auto &r : rows) {
        sqlite3_reset(s);
        bindText(s, 1, r.id);
        bindText(s, 2, r.topic);
        sqlite3_bind_double(s, 3, r.timestamp);
        if (r.username) {
          bindText(s, 4, *r.username);
        } else {
          sqlite3_bind_null(s, 4);
        }
        bindText(s, 5, r.body);
        bindText(s, 6, r.headers);
        sqlite3_bind_double(s, 7, now);
        step(s);
        added += static_cast<std::size_t>(sqlite3_changes(db_));
      }
      sqlite3_reset(s);
      exec("COMMIT");
    } catch (...) {
      sqlite3_reset(insert_.get());
      exec("ROLLBACK", false);
      throw;
    }
    return added;
  }

  void query(const Filter &f, const std::function<void(Row &&)> &each) override {
    auto st = sql::select(f, sql::Dialect::Sqlite);
    run(st, [&](sqlite3_stmt *s) {
      Row r;
      r.id = col(s, 0);
      r.topic = col(s, 1);
      r.timestamp = sqlite3_column_double(s, 2);
      if (sqlite3_column_type(s, 3) != SQLITE_NULL) {
        r.username = col(s, 3);
      }
      r.body = col(s, 4);
      r.headers = col(s, 5);
      each(std::move(r));
    });
  }

  std::int64_t count() override {
    std::int64_t n = 0;
    run({"SELECT count(*) FROM messages", {}}, [&](sqlite3_stmt *s) { n = sqlite3_column_int64(s, 0); });
    return n;
  }

  ReplayStats replayStats(std::string_view publisher) override {
    ReplayStats st;
    sql::Param p;
    p.text = std::string(publisher);
    run({"SELECT coalesce(max(seq_id), 0), count(*), coalesce(sum(length(CAST(envelope AS BLOB))), 0) "
         "FROM replay_log WHERE publisher = ?1",
         {p}},
        [&](sqlite3_stmt *s) {
          st.max_seq = sqlite3_column_int64(s, 0);
          st.records = sqlite3_column_int64(s, 1);
          st.bytes = sqlite3_column_int64(s, 2);
        });
    return st;
  }

  void replayAdd(std::string_view publisher, const replay::Record &r) override {
    if (replay_insert_.get() == nullptr) {
      replay_insert_ = Stmt(db_,
                            "INSERT INTO replay_log (publisher, seq_id, msg_id, timestamp, topic, envelope) "
                            "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                            name_);
    }
    sqlite3_stmt *s = replay_insert_.get();
    sqlite3_reset(s);
    bindText(s, 1, publisher);
    sqlite3_bind_int64(s, 2, r.seq_id);
    bindText(s, 3, r.msg_id);
    sqlite3_bind_double(s, 4, r.timestamp);
    bindText(s, 5, r.topic);
    bindText(s, 6, r.envelope);
    try {
      step(s);
    } catch (...) {
      sqlite3_reset(s);
      throw;
    }
    sqlite3_reset(s);
  }

  std::vector<replay::Record> replayQuery(std::string_view publisher, const replay::Query &q,
                                          std::size_t limit) override {
    std::vector<replay::Record> out;
    run(sql::replaySelect(publisher, q, limit, sql::Dialect::Sqlite), [&](sqlite3_stmt *s) {
      replay::Record r;
      r.seq_id = sqlite3_column_int64(s, 0);
      r.msg_id = col(s, 1);
      r.timestamp = sqlite3_column_double(s, 2);
      r.topic = col(s, 3);
      r.envelope = col(s, 4);
      out.push_back(std::move(r));
    });
    return out;
  }

 private:
  static void bindText(sqlite3_stmt *s, int i, std::string_view v) {
    sqlite3_bind_text(s, i, v.data(), static_cast<int>(v.size()), SQLITE_STATIC);
  }
  static std::string col(sqlite3_stmt *s, int i) {
    const auto *p = reinterpret_cast<const char *>(sqlite3_column_text(s, i));
    return p == nullptr ? std::string() : std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(s, i)));
  }
  void step(sqlite3_stmt *s) {
    int rc = sqlite3_step(s);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
      throw DbError(fmt::format("{}: {}", name_, sqlite3_errmsg(db_)));
    }
  }
  void exec(const std::string &text, bool check = true) {
    char *err = nullptr;
    if (sqlite3_exec(db_, text.c_str(), nullptr, nullptr, &err) != SQLITE_OK && check) {
      std::string why = err != nullptr ? err : sqlite3_errmsg(db_);
      sqlite3_free(err);
      throw DbError(fmt::format("{}: {} (in: {})", name_, why, text.substr(0, 60)));
    }
    sqlite3_free(err);
  }
  template <typename F>
  void run(const sql::Statement &st, F &&row) {
    Stmt s(db_, st.text, name_);
    for (std::size_t i = 0; i < st.params.size(); ++i) {
      const auto &p = st.params[i];
      int idx = static_cast<int>(i + 1);
      switch (p.kind) {
        case sql::Param::Kind::Text: bindText(s.get(), idx, p.text); break;
        case sql::Param::Kind::Real: sqlite3_bind_double(s.get(), idx, p.real); break;
        case sql::Param::Kind::Int: sqlite3_bind_int64(s.get(), idx, p.integer); break;
      }
    }
    for (;;) {
      int rc = sqlite3_step(s.get());
      if (rc == SQLITE_ROW) {
        row(s.get());
      } else if (rc == SQLITE_DONE) {
        return;
      } else {
        throw DbError(fmt::format("{}: {}", name_, sqlite3_errmsg(db_)));
      }
    }
  }
  void checkVersion() {
    std::int64_t v = -1;
    run({"SELECT max(version) FROM schema_version", {}}, [&](sqlite3_stmt *s) {
      if (sqlite3_column_type(s, 0) != SQLITE_NULL) {
        v = sqlite3_column_int64(s, 0);
      }
    });
    if (v < 0) {
      exec(fmt::format("INSERT INTO schema_version (version) VALUES ({})", kSchemaVersion));
    } else if (v > kSchemaVersion) {
      throw DbError(fmt::format("{}: schema version {} was written by a newer switchyard (this one knows {}); "
                                "upgrade switchyard or use another database",
                                name_, v, kSchemaVersion));
    }
  }

  std::string name_;
  sqlite3 *db_ = nullptr;
  Stmt insert_;
  Stmt replay_insert_;
};

}  // namespace

std::unique_ptr<Database> openSqlite(const std::string &path, const std::string &url) {
  if (path.empty()) {
    throw DbError(fmt::format("{}: no file name; write sqlite:/var/lib/switchyard/messages.db", url));
  }
  return std::make_unique<SqliteDb>(path, url);
}

double nowSeconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace switchyard::store
