// SPDX-License-Identifier: MIT
// `switchyard query DATABASE [--topic PATTERN] [--since T] [--until T] [--user U]
// [--limit N] [--order asc|desc]`: one JSON object per line, {"id", "topic", "timestamp",
// "username", "body", "headers"}.
#include "query_cli.hpp"

#include <cctype>
#include <cstdio>
#include <ctime>

#include <fmt/format.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "db.hpp"

namespace switchyard::cli {

namespace {

bool allDigits(const std::string &s, std::size_t from, std::size_t n) {
  if (from + n > s.size()) {
    return false;
  }
  for (std::size_t i = from; i < from + n; ++i) {
    if (std::isdigit(static_cast<unsigned char>(s[i])) == 0) {
      return false;
    }
  }
  return true;
}

int num(const std::string &s, std::size_t from, std::size_t n) { return std::stoi(s.substr(from, n)); }

}  // namespace

std::optional<double> parseTime(const std::string &s) {
  if (s.empty()) {
    return std::nullopt;
  }
  // Epoch seconds.
  {
    char *end = nullptr;
    double v = std::strtod(s.c_str(), &end);
    bool plain = s.find_first_not_of("0123456789.") == std::string::npos;
    if (plain && end == s.c_str() + s.size()) {
      return v;
    }
  }
  // ISO 8601: YYYY-MM-DD[(T| )HH:MM[:SS[.fff]]][Z|+HH:MM|-HH:MM|+HHMM]
  if (!allDigits(s, 0, 4) || s.size() < 10 || s[4] != '-' || !allDigits(s, 5, 2) || s[7] != '-' ||
      !allDigits(s, 8, 2)) {
    return std::nullopt;
  }
  std::tm tm{};
  tm.tm_year = num(s, 0, 4) - 1900;
  tm.tm_mon = num(s, 5, 2) - 1;
  tm.tm_mday = num(s, 8, 2);
  double frac = 0;
  std::size_t i = 10;
  if (i < s.size() && (s[i] == 'T' || s[i] == ' ')) {
    if (!allDigits(s, i + 1, 2) || i + 3 >= s.size() || s[i + 3] != ':' || !allDigits(s, i + 4, 2)) {
      return std::nullopt;
    }
    tm.tm_hour = num(s, i + 1, 2);
    tm.tm_min = num(s, i + 4, 2);
    i += 6;
    if (i < s.size() && s[i] == ':') {
      if (!allDigits(s, i + 1, 2)) {
        return std::nullopt;
      }
      tm.tm_sec = num(s, i + 1, 2);
      i += 3;
      if (i < s.size() && (s[i] == '.' || s[i] == ',')) {
        std::size_t j = i + 1;
        while (j < s.size() && std::isdigit(static_cast<unsigned char>(s[j])) != 0) {
          ++j;
        }
        if (j == i + 1) {
          return std::nullopt;
        }
        frac = std::stod("0." + s.substr(i + 1, j - i - 1));
        i = j;
      }
    }
  }
  if (tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60) {
    return std::nullopt;
  }
  long offset = 0;
  if (i < s.size()) {
    if (s[i] == 'Z' && i + 1 == s.size()) {
      i += 1;
    } else if ((s[i] == '+' || s[i] == '-') && allDigits(s, i + 1, 2)) {
      int sign = s[i] == '-' ? -1 : 1;
      int hh = num(s, i + 1, 2);
      int mm = 0;
      std::size_t j = i + 3;
      if (j < s.size() && s[j] == ':') {
        ++j;
      }
      if (j < s.size()) {
        if (!allDigits(s, j, 2) || j + 2 != s.size()) {
          return std::nullopt;
        }
        mm = num(s, j, 2);
      }
      offset = sign * (hh * 3600L + mm * 60L);
      i = s.size();
    } else {
      return std::nullopt;
    }
  }
  if (i != s.size()) {
    return std::nullopt;
  }
  return static_cast<double>(timegm(&tm) - offset) + frac;
}

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
      *slot = parseTime(*text);
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
    return opts.database.find("://") == std::string::npos && opts.database.rfind("sqlite:", 0) != 0 ? 2 : 1;
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
