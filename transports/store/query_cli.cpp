// SPDX-License-Identifier: MIT
// `switchyard query DATABASE [--topic PATTERN] [--since T] [--until T] [--user U]
// [--limit N] [--order asc|desc]`: one JSON object per line, {"id", "topic", "timestamp",
// "username", "body", "headers"}.
#include "query_cli.hpp"

#include <cstdio>

#include <fmt/format.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "db.hpp"

namespace switchyard::cli {

CLI::App *addQueryCommand(CLI::App &app, QueryOptions &opts) {
  auto *cmd = app.add_subcommand(
      "query", "Print messages kept by the store sink as JSON lines (like datagrepper's raw API)");
  cmd->add_option("database", opts.database,
                  "sqlite:PATH or postgresql://USER:PASSWORD@HOST:PORT/DBNAME (the store's `database:`)")
      ->required()
      ->envname("SWITCHYARD_STORE_DATABASE");
  cmd->add_option("--topic", opts.topics,
                  "Topic, or pattern where * matches any characters, dots included (repeatable: any of them)");
  cmd->add_option("--user", opts.users, "Sender's username (repeatable: any of them)");
  cmd->add_option("--since", opts.since,
                  "Messages at or after this time: epoch seconds or ISO 8601 (2026-12-06T10:00:00Z; no zone = UTC)");
  cmd->add_option("--until", opts.until, "Messages before this time (same forms as --since)");
  cmd->add_option("--limit", opts.limit, "At most this many messages (0: all)")->capture_default_str()->check(
      CLI::NonNegativeNumber);
  cmd->add_option("--order", opts.order, "asc: oldest first; desc: newest first")
      ->capture_default_str()
      ->check(CLI::IsMember({"asc", "desc"}));
  return cmd;
}

int runQuery(const QueryOptions &opts) {
  store::Filter f;
  f.topics = opts.topics;
  f.users = opts.users;
  f.limit = opts.limit;
  f.descending = opts.order == "desc";
  for (auto [text, opt, slot] : {std::tuple{&opts.since, "--since", &f.since}, {&opts.until, "--until", &f.until}}) {
    if (!text->empty()) {
      *slot = store::parseTime(*text);
      if (!*slot) {
        std::fprintf(stderr,
                     "switchyard query: %s '%s' is not a time: write epoch seconds (1733450000) or ISO 8601 "
                     "(2026-12-06, 2026-12-06T10:00:00Z, 2026-12-06T11:00:00+01:00)\n",
                     opt, text->c_str());
        return 2;
      }
    }
  }
  std::unique_ptr<store::Database> db;
  try {
    db = store::Database::open(opts.database);
  } catch (const std::exception &e) {
    std::fprintf(stderr, "switchyard query: %s\n", e.what());
    const auto &u = opts.database;
    bool known = u.rfind("sqlite:", 0) == 0 || u.rfind("postgresql://", 0) == 0 || u.rfind("postgres://", 0) == 0;
    return known ? 1 : 2;  // 2: a bad argument
  }
  try {
    rapidjson::StringBuffer buf;
    db->query(f, [&](store::Row &&r) {
      buf.Clear();
      rapidjson::Writer<rapidjson::StringBuffer> w(buf);
      w.StartObject();
      w.Key("id");
      w.String(r.id.data(), static_cast<rapidjson::SizeType>(r.id.size()));
      w.Key("topic");
      w.String(r.topic.data(), static_cast<rapidjson::SizeType>(r.topic.size()));
      w.Key("timestamp");
      w.Double(r.timestamp);
      w.Key("username");
      if (r.username) {
        w.String(r.username->data(), static_cast<rapidjson::SizeType>(r.username->size()));
      } else {
        w.Null();
      }
      w.Key("body");
      w.RawValue(r.body.data(), r.body.size(), rapidjson::kObjectType);
      w.Key("headers");
      w.RawValue(r.headers.data(), r.headers.size(), rapidjson::kObjectType);
      w.EndObject();
      std::fwrite(buf.GetString(), 1, buf.GetSize(), stdout);
      std::fputc('\n', stdout);
    });
  } catch (const std::exception &e) {
    std::fprintf(stderr, "switchyard query: %s\n", e.what());
    return 1;
  }
  return std::fflush(stdout) == 0 ? 0 : 1;
}

}  // namespace switchyard::cli
