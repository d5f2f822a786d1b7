// SPDX-License-Identifier: MIT
//
// What SQLite and PostgreSQL share: URL handling, the message -> row rule, the SQL built
// from a query and from a replay query.
#include <chrono>

#include <boost/uuid/name_generator_sha1.hpp>
#include <boost/uuid/string_generator.hpp>
#include <boost/uuid/uuid_io.hpp>
#include <fmt/format.h>

#include "db.hpp"
#include "sql.hpp"
#include "switchyard/fedmsg.hpp"
#include "switchyard/json.hpp"
#include "switchyard/message.hpp"
#include "switchyard/parsed.hpp"

namespace switchyard::store {

std::string redactUrl(std::string_view url) {
  auto scheme = url.find("://");
  if (scheme == std::string_view::npos) {
    return std::string(url);
  }
  auto start = scheme + 3;
  auto end = url.find_first_of("/?", start);
  std::string_view auth = url.substr(start, end == std::string_view::npos ? url.npos : end - start);
  auto at = auth.rfind('@');
  if (at == std::string_view::npos) {
    return std::string(url);
  }
  auto colon = auth.substr(0, at).find(':');
  if (colon == std::string_view::npos) {
    return std::string(url);
  }
  std::string out(url.substr(0, start + colon + 1));
  out += "***";
  out += url.substr(start + at);
  return out;
}

std::string likePattern(std::string_view glob) {
  std::string out;
  out.reserve(glob.size() + 4);
  for (char c : glob) {
    if (c == '*') {
      out += '%';
    } else if (c == '%' || c == '_' || c == '\\') {
      out += '\\';
      out += c;
    } else {
      out += c;
    }
  }
  return out;
}

std::string derivedId(std::string_view topic, std::string_view body) {
  // A fixed namespace: the same topic and body always give the same id.
  static const boost::uuids::uuid ns =
      boost::uuids::string_generator()("6f1f7c4e-2d1b-5a8e-9c0e-535749544348");
  boost::uuids::name_generator_sha1 gen(ns);
  std::string name;
  name.reserve(topic.size() + 1 + body.size());
  name.append(topic);
  name += '\0';
  name.append(body);
  return "uuid5-" + boost::uuids::to_string(gen(name.data(), name.size()));
}

namespace {

/// What the headers say about the sender and the time (one parse, and only when they
/// mention one of the keys).
struct HeaderFacts {
  std::optional<std::string> user;
  std::optional<double> sent_at;
};

HeaderFacts headerFacts(const Message &msg) {
  HeaderFacts f;
  const std::string &headers = msg.headers();
  if (headers.size() < 3 || (headers.find("\"sent-") == std::string::npos &&
                             headers.find("\"agent\"") == std::string::npos)) {
    return f;
  }
  // The message's cached tree: an input or filter that read the headers parsed them already.
  const json::Value *h = codec::parsedHeaders(msg);
  if (h == nullptr) {
    return f;
  }
  for (const char *key : {"sent-by", "agent"}) {
    if (auto v = h->findString(key); v && !v->empty()) {
      f.user = std::string(*v);
      break;
    }
  }
  if (auto v = h->findString("sent-at")) {
    f.sent_at = parseTime(std::string(*v));
  }
  return f;
}

}  // namespace

Row rowFromMessage(const Message &msg, double now_s) {
  Row r;
  r.topic = msg.topic();
  r.body = msg.body();
  r.headers = msg.headers().empty() ? std::string("{}") : msg.headers();
  r.id = msg.id().empty() ? derivedId(r.topic, r.body) : msg.id();
  // The publisher's time: the fedmsg envelope's, else fedora-messaging's sent-at header,
  // else the time the input gave the message (its reception, for some), else now.
  const auto &env = msg.envelope();
  const bool env_user = env && env->fields.has_username && !env->fields.username.empty();
  const bool env_time = env && env->fields.timestamp_ms > 0;
  HeaderFacts facts;
  if (!env_user || !env_time) {
    facts = headerFacts(msg);
  }
  if (env_time) {
    r.timestamp = static_cast<double>(env->fields.timestamp_ms) / 1000.0;
  } else if (facts.sent_at) {
    r.timestamp = *facts.sent_at;
  } else {
    r.timestamp = msg.timestampMs() > 0 ? static_cast<double>(msg.timestampMs()) / 1000.0 : now_s;
  }
  if (env_user) {
    r.username = env->fields.username;
  } else {
    r.username = std::move(facts.user);
  }
  return r;
}

namespace sql {

std::vector<std::string> schema(Dialect d) {
  const bool pg = d == Dialect::Postgres;
  const char *real = pg ? "DOUBLE PRECISION" : "REAL";
  const char *json = pg ? "JSON" : "TEXT";
  const char *bigint = pg ? "BIGINT" : "INTEGER";
  return {
      "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)",
      fmt::format("CREATE TABLE IF NOT EXISTS messages (msg_id TEXT PRIMARY KEY, topic TEXT NOT NULL, "
                  "timestamp {0} NOT NULL, username TEXT, body {1} NOT NULL, headers {1} NOT NULL, "
                  "stored_at {0} NOT NULL)",
                  real, json),
      "CREATE INDEX IF NOT EXISTS messages_timestamp ON messages (timestamp)",
      "CREATE INDEX IF NOT EXISTS messages_topic ON messages (topic)",
      "CREATE INDEX IF NOT EXISTS messages_username ON messages (username)",
      fmt::format("CREATE TABLE IF NOT EXISTS replay_log (publisher TEXT NOT NULL, seq_id {0} NOT NULL, "
                  "msg_id TEXT NOT NULL, timestamp {1} NOT NULL, topic TEXT NOT NULL, envelope TEXT NOT NULL, "
                  "PRIMARY KEY (publisher, seq_id))",
                  bigint, real),
      "CREATE INDEX IF NOT EXISTS replay_log_msg_id ON replay_log (publisher, msg_id)",
      "CREATE INDEX IF NOT EXISTS replay_log_timestamp ON replay_log (publisher, timestamp)",
  };
}

namespace {

class Builder {
 public:
  explicit Builder(Dialect d) : d_(d) {}
  std::string text(std::string v) {
    Param p;
    p.text = std::move(v);
    return add(std::move(p));
  }
  std::string real(double v) {
    Param p;
    p.kind = Param::Kind::Real;
    p.real = v;
    return add(std::move(p));
  }
  std::string integer(std::int64_t v) {
    Param p;
    p.kind = Param::Kind::Int;
    p.integer = v;
    return add(std::move(p));
  }
  std::vector<Param> params;

 private:
  std::string add(Param p) {
    params.push_back(std::move(p));
    auto n = params.size();
    if (d_ == Dialect::Postgres) {
      const char *cast = params.back().kind == Param::Kind::Real  ? "::float8"
                         : params.back().kind == Param::Kind::Int ? "::int8"
                                                                  : "::text";
      return fmt::format("${}{}", n, cast);
    }
    return fmt::format("?{}", n);
  }
  Dialect d_;
};

std::string joinOr(const std::vector<std::string> &parts) {
  std::string s = "(";
  for (std::size_t i = 0; i < parts.size(); ++i) {
    s += i == 0 ? "" : " OR ";
    s += parts[i];
  }
  return s + ")";
}

}  // namespace

Statement select(const Filter &f, Dialect d) {
  Builder b(d);
  std::vector<std::string> where;
  if (!f.topics.empty()) {
    std::vector<std::string> ors;
    for (const auto &t : f.topics) {
      if (t.find('*') == std::string::npos) {
        ors.push_back("topic = " + b.text(t));
      } else {
        ors.push_back("topic LIKE " + b.text(likePattern(t)) + " ESCAPE '\\'");
      }
    }
    where.push_back(joinOr(ors));
  }
  if (!f.users.empty()) {
    std::vector<std::string> ors;
    for (const auto &u : f.users) {
      ors.push_back("username = " + b.text(u));
    }
    where.push_back(joinOr(ors));
  }
  if (f.since) {
    where.push_back("timestamp >= " + b.real(*f.since));
  }
  if (f.until) {
    where.push_back("timestamp < " + b.real(*f.until));
  }
  Statement s;
  s.text = "SELECT msg_id, topic, timestamp, username, body, headers FROM messages";
  for (std::size_t i = 0; i < where.size(); ++i) {
    s.text += i == 0 ? " WHERE " : " AND ";
    s.text += where[i];
  }
  const char *dir = f.descending ? "DESC" : "ASC";
  s.text += fmt::format(" ORDER BY timestamp {0}, msg_id {0}", dir);
  if (f.limit > 0) {
    s.text += " LIMIT " + b.integer(f.limit);
  }
  s.params = std::move(b.params);
  return s;
}

Statement replaySelect(std::string_view publisher, const replay::Query &q, std::size_t limit, Dialect d) {
  Builder b(d);
  std::string pub = b.text(std::string(publisher));
  std::vector<std::string> ors;
  if (q.seq_id) {
    ors.push_back("seq_id = " + b.integer(*q.seq_id));
  }
  if (!q.seq_ids.empty()) {
    std::string in = "seq_id IN (";
    for (std::size_t i = 0; i < q.seq_ids.size(); ++i) {
      in += (i == 0 ? "" : ", ") + b.integer(q.seq_ids[i]);
    }
    ors.push_back(in + ")");
  }
  if (q.seq_id_range) {
    ors.push_back("(seq_id >= " + b.integer(q.seq_id_range->first) + " AND seq_id <= " +
                  b.integer(q.seq_id_range->second) + ")");
  }
  if (q.msg_id) {
    ors.push_back("msg_id = " + b.text(*q.msg_id));
  }
  if (!q.msg_ids.empty()) {
    std::string in = "msg_id IN (";
    for (std::size_t i = 0; i < q.msg_ids.size(); ++i) {
      in += (i == 0 ? "" : ", ") + b.text(q.msg_ids[i]);
    }
    ors.push_back(in + ")");
  }
  if (q.time) {
    ors.push_back("(timestamp >= " + b.real(q.time->first) + " AND timestamp <= " + b.real(q.time->second) + ")");
  }
  Statement s;
  s.text = "SELECT seq_id, msg_id, timestamp, topic, envelope FROM replay_log WHERE publisher = " + pub;
  s.text += ors.empty() ? std::string(" AND 1 = 0") : " AND " + joinOr(ors);
  s.text += " ORDER BY seq_id";
  if (limit > 0) {
    s.text += " LIMIT " + b.integer(static_cast<std::int64_t>(limit));
  }
  s.params = std::move(b.params);
  return s;
}

}  // namespace sql
}  // namespace switchyard::store
