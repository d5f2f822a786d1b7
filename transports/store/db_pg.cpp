// SPDX-License-Identifier: MIT
//
// The PostgreSQL backend (`postgresql://...`, libpq). A batch is ONE prepared statement,
//   INSERT INTO messages (...) SELECT ... FROM unnest($1::text[], ...) ON CONFLICT DO NOTHING
// with each column sent as an array: one round trip per batch, whatever its size.
#include <libpq-fe.h>

#include <algorithm>

#include <fmt/format.h>

#include "db_impl.hpp"
#include "sql.hpp"

namespace switchyard::store {
namespace {

struct Result {
  explicit Result(PGresult *res) : r(res) {}
  Result(const Result &) = delete;
  Result &operator=(const Result &) = delete;
  ~Result() { PQclear(r); }
  PGresult *r;
};

void appendArrayItem(std::string &out, std::string_view v) {
  out += '"';
  for (char c : v) {
    if (c == '"' || c == '\\') {
      out += '\\';
    }
    out += c;
  }
  out += '"';
}

constexpr const char *kInsert = "sy_store_insert";

class PgDb final : public Database {
 public:
  PgDb(const std::string &url, int connect_timeout_s)
      : url_(url), name_(redactUrl(url)), timeout_(std::to_string(std::max(1, connect_timeout_s))) {
    connect();
    exec("BEGIN");
    try {
      exec("SELECT pg_advisory_xact_lock(7368392471)");  // one creator at a time
      for (const auto &s : sql::schema(sql::Dialect::Postgres)) {
        exec(s);
      }
      Result v(PQexec(conn_, "SELECT max(version) FROM schema_version"));
      check(v.r, PGRES_TUPLES_OK);
      if (PQgetisnull(v.r, 0, 0) != 0) {
        exec(fmt::format("INSERT INTO schema_version (version) VALUES ({})", kSchemaVersion));
      } else if (std::atoi(PQgetvalue(v.r, 0, 0)) > kSchemaVersion) {
        throw DbError(fmt::format("{}: schema version {} was written by a newer switchyard (this one knows {}); "
                                  "upgrade switchyard or use another database",
                                  name_, PQgetvalue(v.r, 0, 0), kSchemaVersion));
      }
      exec("COMMIT");
    } catch (...) {
      Result(PQexec(conn_, "ROLLBACK"));
      PQfinish(conn_);
      conn_ = nullptr;
      throw;
    }
  }
  ~PgDb() override { PQfinish(conn_); }

  const std::string &name() const noexcept override { return name_; }

  std::size_t insert(const std::vector<Row> &rows) override {
    if (rows.empty()) {
      return 0;
    }
    ensure();
    std::string arr[6];
    for (auto &a : arr) {
      a = "{";
    }
    for (std::size_t i = 0; i < rows.size(); ++i) {
      const Row &r = rows[i];
      if (i > 0) {
        for (auto &a : arr) {
          a += ',';
        }
      }
      appendArrayItem(arr[0], r.id);
      appendArrayItem(arr[1], r.topic);
      arr[2] += fmt::format("{}", r.timestamp);
      if (r.username) {
        appendArrayItem(arr[3], *r.username);
      } else {
        arr[3] += "NULL";
      }
      appendArrayItem(arr[4], r.body);
      appendArrayItem(arr[5], r.headers);
    }
    for (auto &a : arr) {
      a += '}';
    }
    std::string now = fmt::format("{}", nowSeconds());
    const char *values[7] = {arr[0].c_str(), arr[1].c_str(), arr[2].c_str(), arr[3].c_str(),
                             arr[4].c_str(), arr[5].c_str(), now.c_str()};
    // One statement is one transaction: committed when PQexecPrepared returns.
    Result res(PQexecPrepared(conn_, kInsert, 7, values, nullptr, nullptr, 0));
    check(res.r, PGRES_COMMAND_OK);
    return static_cast<std::size_t>(std::strtoull(PQcmdTuples(res.r), nullptr, 10));
  }

  void query(const Filter &f, const std::function<void(Row &&)> &each) override {
    auto st = sql::select(f, sql::Dialect::Postgres);
    run(st, [&](PGresult *r, int i) {
      Row row;
      row.id = PQgetvalue(r, i, 0);
      row.topic = PQgetvalue(r, i, 1);
      row.timestamp = std::strtod(PQgetvalue(r, i, 2), nullptr);
      if (PQgetisnull(r, i, 3) == 0) {
        row.username = PQgetvalue(r, i, 3);
      }
      row.body.assign(PQgetvalue(r, i, 4), static_cast<std::size_t>(PQgetlength(r, i, 4)));
      row.headers.assign(PQgetvalue(r, i, 5), static_cast<std::size_t>(PQgetlength(r, i, 5)));
      each(std::move(row));
    });
  }

  std::int64_t count() override {
    std::int64_t n = 0;
    run({"SELECT count(*) FROM messages", {}}, [&](PGresult *r, int i) { n = std::atoll(PQgetvalue(r, i, 0)); });
    return n;
  }

  ReplayStats replayStats(std::string_view publisher) override {
    ReplayStats st;
    sql::Param p;
    p.text = std::string(publisher);
    run({"SELECT coalesce(max(seq_id), 0), count(*), coalesce(sum(octet_length(envelope)), 0) FROM replay_log "
         "WHERE publisher = $1::text",
         {p}},
        [&](PGresult *r, int i) {
          st.max_seq = std::atoll(PQgetvalue(r, i, 0));
          st.records = std::atoll(PQgetvalue(r, i, 1));
          st.bytes = std::atoll(PQgetvalue(r, i, 2));
        });
    return st;
  }

  void replayAdd(std::string_view publisher, const replay::Record &r) override {
    sql::Statement st;
    st.text =
        "INSERT INTO replay_log (publisher, seq_id, msg_id, timestamp, topic, envelope) "
        "VALUES ($1::text, $2::int8, $3::text, $4::float8, $5::text, $6::text)";
    auto text = [](std::string v) {
      sql::Param p;
      p.text = std::move(v);
      return p;
    };
    sql::Param seq;
    seq.kind = sql::Param::Kind::Int;
    seq.integer = r.seq_id;
    sql::Param ts;
    ts.kind = sql::Param::Kind::Real;
    ts.real = r.timestamp;
    st.params = {text(std::string(publisher)), seq, text(r.msg_id), ts, text(r.topic), text(r.envelope)};
    run(st, [](PGresult *, int) {});
  }

  std::vector<replay::Record> replayQuery(std::string_view publisher, const replay::Query &q,
                                          std::size_t limit) override {
    std::vector<replay::Record> out;
    run(sql::replaySelect(publisher, q, limit, sql::Dialect::Postgres), [&](PGresult *r, int i) {
      replay::Record rec;
      rec.seq_id = std::atoll(PQgetvalue(r, i, 0));
      rec.msg_id = PQgetvalue(r, i, 1);
      rec.timestamp = std::strtod(PQgetvalue(r, i, 2), nullptr);
      rec.topic = PQgetvalue(r, i, 3);
      rec.envelope.assign(PQgetvalue(r, i, 4), static_cast<std::size_t>(PQgetlength(r, i, 4)));
      out.push_back(std::move(rec));
    });
    return out;
  }

 private:
  void connect() {
    const char *keys[] = {"dbname", "connect_timeout", "application_name", nullptr};
    const char *vals[] = {url_.c_str(), timeout_.c_str(), "switchyard", nullptr};
    conn_ = PQconnectdbParams(keys, vals, 1);
    if (conn_ == nullptr || PQstatus(conn_) != CONNECTION_OK) {
      std::string why = conn_ != nullptr ? PQerrorMessage(conn_) : "out of memory";
      while (!why.empty() && (why.back() == '\n' || why.back() == ' ')) {
        why.pop_back();
      }
      PQfinish(conn_);
      conn_ = nullptr;
      throw DbError(fmt::format("{}: cannot connect: {} (check the host, port, user, password and database "
                                "name of the URL, and that the server accepts this client)",
                                name_, why));
    }
    PQsetNoticeProcessor(conn_, [](void *, const char *) {}, nullptr);  // "already exists, skipping"
    prepared_ = false;
  }
  /// Reconnects a connection that broke, and prepares the insert.
  void ensure() {
    if (conn_ == nullptr || PQstatus(conn_) != CONNECTION_OK) {
      PQfinish(conn_);
      conn_ = nullptr;
      connect();
    }
    if (!prepared_) {
      std::string text = fmt::format(
          "INSERT INTO messages ({}) SELECT u.i, u.t, u.ts, u.un, u.b::json, u.h::json, $7::float8 "
          "FROM unnest($1::text[], $2::text[], $3::float8[], $4::text[], $5::text[], $6::text[]) "
          "AS u(i, t, ts, un, b, h) ON CONFLICT (msg_id) DO NOTHING",
          sql::kInsertColumns);
      Result r(PQprepare(conn_, kInsert, text.c_str(), 7, nullptr));
      check(r.r, PGRES_COMMAND_OK);
      prepared_ = true;
    }
  }
  void check(PGresult *r, ExecStatusType want) {
    if (PQresultStatus(r) != want) {
      std::string why = r != nullptr ? PQresultErrorMessage(r) : "";
      if (why.empty()) {
        why = PQerrorMessage(conn_);
      }
      if (why.empty()) {
        why = std::string("unexpected result ") + PQresStatus(PQresultStatus(r));
      }
      while (!why.empty() && (why.back() == '\n' || why.back() == ' ')) {
        why.pop_back();
      }
      const char *state = r != nullptr ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr;
      bool data = state != nullptr && (std::string_view(state).substr(0, 2) == "22" ||
                                       std::string_view(state).substr(0, 2) == "23");
      throw DbError(fmt::format("{}: {}", name_, why), data);
    }
  }
  void exec(const std::string &text) {
    Result r(PQexec(conn_, text.c_str()));
    check(r.r, PQresultStatus(r.r) == PGRES_TUPLES_OK ? PGRES_TUPLES_OK : PGRES_COMMAND_OK);
  }
  template <typename F>
  void run(const sql::Statement &st, F &&row) {
    ensure();
    std::vector<std::string> texts(st.params.size());
    std::vector<const char *> values(st.params.size());
    for (std::size_t i = 0; i < st.params.size(); ++i) {
      const auto &p = st.params[i];
      switch (p.kind) {
        case sql::Param::Kind::Text: texts[i] = p.text; break;
        case sql::Param::Kind::Real: texts[i] = fmt::format("{}", p.real); break;
        case sql::Param::Kind::Int: texts[i] = std::to_string(p.integer); break;
      }
      values[i] = texts[i].c_str();
    }
    Result r(PQexecParams(conn_, st.text.c_str(), static_cast<int>(values.size()), nullptr, values.data(), nullptr,
                          nullptr, 0));
    ExecStatusType s = PQresultStatus(r.r);
    if (s != PGRES_TUPLES_OK && s != PGRES_COMMAND_OK) {
      check(r.r, PGRES_TUPLES_OK);
    }
    int n = PQntuples(r.r);
    for (int i = 0; i < n; ++i) {
      row(r.r, i);
    }
  }

  std::string url_;
  std::string name_;
  std::string timeout_;  ///< connect_timeout, seconds
  PGconn *conn_ = nullptr;
  bool prepared_ = false;
};

}  // namespace

std::unique_ptr<Database> openPostgres(const std::string &url, int connect_timeout_s) {
  return std::make_unique<PgDb>(url, connect_timeout_s);
}

}  // namespace switchyard::store
