// SPDX-License-Identifier: MIT
//
// The SQL both backends share (internal to libswitchyard-store-db): the schema, and the
// statements built from a query (switchyard query) or a replay query, with their parameters.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "db.hpp"

namespace switchyard::store::sql {

enum class Dialect { Sqlite, Postgres };

struct Param {
  enum class Kind { Text, Real, Int } kind = Kind::Text;
  std::string text;
  double real = 0;
  std::int64_t integer = 0;
};

struct Statement {
  std::string text;
  std::vector<Param> params;
};

/// The statements that create schema version 1 (each idempotent: IF NOT EXISTS).
std::vector<std::string> schema(Dialect d);
/// SELECT msg_id, topic, timestamp, username, body, headers FROM messages WHERE ...
Statement select(const Filter &f, Dialect d);
/// SELECT seq_id, msg_id, timestamp, topic, envelope FROM replay_log WHERE publisher = ?
/// AND (any of the query's keys) ORDER BY seq_id LIMIT n.
Statement replaySelect(std::string_view publisher, const replay::Query &q, std::size_t limit, Dialect d);

/// The columns of messages in insert order.
inline constexpr const char *kInsertColumns = "msg_id, topic, timestamp, username, body, headers, stored_at";

}  // namespace switchyard::store::sql
