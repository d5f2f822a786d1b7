// SPDX-License-Identifier: MIT
//
// sy-bench-store: the raw ceiling of the store row of scripts/bench (docs/performance.md).
// Reads the same JSON lines the store pipeline reads ({"topic","body","headers","id"}),
// turns them into the same rows (store::rowFromMessage) before the clock starts, then
// inserts them into DATABASE in batches and prints "<rows> <seconds> <rows/s>":
//
//   sy-bench-store DATABASE FILE BATCH            the library's batched insert (what the sink calls)
//   sy-bench-store DATABASE FILE BATCH pg-loop    PostgreSQL only: one prepared INSERT per row
//                                                 in a transaction per batch (the alternative
//                                                 to the one-statement unnest() insert)
#include <libpq-fe.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "db.hpp"
#include "switchyard/message.hpp"

using namespace switchyard;

namespace {

std::string text(const rapidjson::Value &v) {
  rapidjson::StringBuffer b;
  rapidjson::Writer<rapidjson::StringBuffer> w(b);
  v.Accept(w);
  return {b.GetString(), b.GetSize()};
}

std::vector<store::Row> load(const char *path) {
  std::ifstream in(path);
  std::string line;
  std::vector<store::Row> rows;
  double now = 1.8e9;
  while (std::getline(in, line)) {
    rapidjson::Document d;
    d.Parse(line.data(), line.size());
    if (d.HasParseError() || !d.IsObject()) {
      continue;
    }
    Message m(d["topic"].GetString(), text(d["body"]), d.HasMember("headers") ? text(d["headers"]) : "{}",
              d.HasMember("id") ? d["id"].GetString() : "");
    rows.push_back(store::rowFromMessage(m, now));
  }
  return rows;
}

double pgLoop(const std::string &url, const std::vector<store::Row> &rows, std::size_t batch) {
  store::Database::open(url);  // the schema
  PGconn *c = PQconnectdb(url.c_str());
  if (PQstatus(c) != CONNECTION_OK) {
    std::fprintf(stderr, "%s\n", PQerrorMessage(c));
    std::exit(1);
  }
  auto ok = [&](PGresult *r) {
    auto s = PQresultStatus(r);
    if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK) {
      std::fprintf(stderr, "%s\n", PQresultErrorMessage(r));
      std::exit(1);
    }
    PQclear(r);
  };
  ok(PQprepare(c, "ins",
               "INSERT INTO messages (msg_id, topic, timestamp, username, body, headers, stored_at) "
               "VALUES ($1, $2, $3::float8, $4, $5::json, $6::json, $7::float8) ON CONFLICT (msg_id) DO NOTHING",
               7, nullptr));
  auto t0 = std::chrono::steady_clock::now();
  for (std::size_t i = 0; i < rows.size(); i += batch) {
    ok(PQexec(c, "BEGIN"));
    for (std::size_t j = i; j < std::min(rows.size(), i + batch); ++j) {
      const auto &r = rows[j];
      std::string ts = std::to_string(r.timestamp);
      const char *v[7] = {r.id.c_str(), r.topic.c_str(), ts.c_str(), r.username ? r.username->c_str() : nullptr,
                          r.body.c_str(), r.headers.c_str(), "1.8e9"};
      ok(PQexecPrepared(c, "ins", 7, v, nullptr, nullptr, 0));
    }
    ok(PQexec(c, "COMMIT"));
  }
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  PQfinish(c);
  return s;
}

}  // namespace

int main(int argc, char **argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: sy-bench-store DATABASE FILE BATCH [pg-loop]\n");
    return 2;
  }
  std::string url = argv[1];
  auto rows = load(argv[2]);
  std::size_t batch = std::stoul(argv[3]);
  double s = 0;
  try {
    if (argc > 4 && std::string(argv[4]) == "pg-loop") {
      s = pgLoop(url, rows, batch);
    } else {
      auto db = store::Database::open(url);
      std::vector<std::vector<store::Row>> batches;  // split before the clock starts
      for (std::size_t i = 0; i < rows.size(); i += batch) {
        batches.emplace_back(rows.begin() + static_cast<std::ptrdiff_t>(i),
                             rows.begin() + static_cast<std::ptrdiff_t>(std::min(rows.size(), i + batch)));
      }
      auto t0 = std::chrono::steady_clock::now();
      for (const auto &b : batches) {
        db->insert(b);
      }
      s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    }
  } catch (const std::exception &e) {
    std::fprintf(stderr, "sy-bench-store: %s\n", e.what());
    return 1;
  }
  std::printf("%zu %.6f %.1f\n", rows.size(), s, static_cast<double>(rows.size()) / s);
  return 0;
}
