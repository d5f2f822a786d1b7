// SPDX-License-Identifier: MIT
//
// libswitchyard-store-db: the message store's database (docs/plugins/store.md), one API over
// SQLite (`sqlite:PATH`, the embedded default) and PostgreSQL (`postgresql://...`). Used by
// the `store` sink, `switchyard query`, zmq-pub's replay database (replay_db.hpp) and the
// benchmark.
//
// Schema (created when missing, version 1 in `schema_version`):
//   messages(msg_id PRIMARY KEY, topic, timestamp, username, body, headers, stored_at)
//   replay_log(publisher, seq_id, msg_id, timestamp, topic, envelope; PRIMARY KEY(publisher, seq_id))
//
// THREADING: a Database is one connection, used by one thread at a time (callers lock).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "switchyard/replay.hpp"

namespace switchyard {
class Message;
}

namespace switchyard::store {

inline constexpr int kSchemaVersion = 1;

/// A database failure. The message names the database (without its password).
class DbError : public std::runtime_error {
 public:
  explicit DbError(const std::string &what, bool data_error = false)
      : std::runtime_error(what), data_error_(data_error) {}
  /// The database refused the data itself (PostgreSQL: a body that is not JSON), not the
  /// connection: trying again cannot help.
  [[nodiscard]] bool dataError() const noexcept { return data_error_; }

 private:
  bool data_error_;
};

/// One stored message.
struct Row {
  std::string id;
  std::string topic;
  double timestamp = 0;                 ///< epoch seconds
  std::optional<std::string> username;  ///< null when the message names no sender
  std::string body = "{}";              ///< JSON text
  std::string headers = "{}";           ///< JSON object text
};

/// The row a message is stored as (docs/plugins/store.md): id = the message's id, or a
/// UUID version 5 of its topic and body when it has none; timestamp = the fedmsg envelope's
/// `timestamp`, else the headers' `sent-at` (ISO 8601, as fedora-messaging sets it), else
/// the message's time as its input set it, else @p now_s; username = the fedmsg envelope's `username`, else the
/// headers' `sent-by`, else `agent` (strings only), else null.
Row rowFromMessage(const Message &msg, double now_s);
/// The id given to a message without one: "uuid5-" + UUID v5(topic NUL body).
std::string derivedId(std::string_view topic, std::string_view body);

/// What `switchyard query` asks for. Topics and users: OR within each list, AND between
/// the criteria. Topic patterns: `*` matches any run of characters (dots included).
struct Filter {
  std::vector<std::string> topics;
  std::vector<std::string> users;
  std::optional<double> since;  ///< timestamp >= since
  std::optional<double> until;  ///< timestamp < until
  std::int64_t limit = 0;       ///< 0 = no limit
  bool descending = false;      ///< newest first
};

class Database {
 public:
  /// Opens @p url (`sqlite:PATH`, `sqlite://PATH`, `postgresql://...` or `postgres://...`)
  /// and creates the schema when missing, waiting at most @p connect_timeout_s seconds for
  /// a PostgreSQL server to answer. Throws DbError saying what to fix.
  static std::unique_ptr<Database> open(std::string_view url, int connect_timeout_s = 10);

  virtual ~Database() = default;
  /// The URL without its password, for messages.
  [[nodiscard]] virtual const std::string &name() const noexcept = 0;
  /// Inserts @p rows in one transaction, each once (an id already stored is skipped).
  /// Returns how many were new. Throws DbError (the transaction is rolled back).
  virtual std::size_t insert(const std::vector<Row> &rows) = 0;
  /// Calls @p each for every matching row, in timestamp order (then id).
  virtual void query(const Filter &f, const std::function<void(Row &&)> &each) = 0;
  /// Rows in `messages`.
  virtual std::int64_t count() = 0;

  // zmq-pub's replay log (replay_db.hpp) ---------------------------------------------
  /// The highest seq_id kept for @p publisher (0 when none), its record count and bytes.
  struct ReplayStats {
    std::int64_t max_seq = 0;
    std::int64_t records = 0;
    std::int64_t bytes = 0;
  };
  virtual ReplayStats replayStats(std::string_view publisher) = 0;
  virtual void replayAdd(std::string_view publisher, const replay::Record &r) = 0;
  virtual std::vector<replay::Record> replayQuery(std::string_view publisher, const replay::Query &q,
                                                  std::size_t limit) = 0;
};

/// A time given as epoch seconds ("1733450000", "1733450000.25") or ISO 8601 ("2026-12-06",
/// "2026-12-06T01:02:03", with ".fff" and "Z" or "+HH:MM"; no zone = UTC); nullopt otherwise.
std::optional<double> parseTime(const std::string &s);

/// @p url with any password replaced by "***".
std::string redactUrl(std::string_view url);
/// A `*` glob as a SQL LIKE pattern with '\' as the escape character.
std::string likePattern(std::string_view glob);

}  // namespace switchyard::store
