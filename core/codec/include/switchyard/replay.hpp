// SPDX-License-Identifier: MIT
//
// fedmsg's replay protocol (REQ/REP), shared by zmq-pub (the server: it numbers what it
// publishes with `seq_id` and answers queries) and zmq-sub (the client: it asks for the
// messages of a gap in `seq_id`). See docs/plugins/zmq-pub.md and docs/plugins/zmq-sub.md.
//
// The wire: the client sends ONE frame, a JSON object with any subset of the query keys
// below; the server answers with a multipart message, one canonical JSON envelope per
// frame, in seq_id order, or with a single frame of plain text `error: '<reason>'` for a
// bad query or no match.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace switchyard::replay {

/// A replay query. A record matches when it matches ANY of the keys given (OR, as in
/// fedmsg's SQL store). Ranges are inclusive.
struct Query {
  std::optional<std::int64_t> seq_id;
  std::vector<std::int64_t> seq_ids;
  std::optional<std::pair<std::int64_t, std::int64_t>> seq_id_range;  ///< [begin, end]
  std::optional<std::string> msg_id;
  std::vector<std::string> msg_ids;
  std::optional<std::pair<double, double>> time;  ///< [t_begin, t_end], epoch seconds

  /// No key given (a query that can match nothing: answered with an error).
  [[nodiscard]] bool empty() const noexcept {
    return !seq_id && seq_ids.empty() && !seq_id_range && !msg_id && msg_ids.empty() && !time;
  }
};

/// Parses one request frame. On failure returns std::nullopt and sets @p error to a short
/// reason ("not a JSON object", "seq_id_range must be a list of two integers", ...), which
/// the server sends as errorFrame(error). Unknown keys are refused (fedmsg's store raises
/// on them as well). Never throws, whatever the bytes.
std::optional<Query> parseQuery(std::string_view frame, std::string &error) noexcept;
/// The canonical JSON text of @p q: what a client sends.
std::string encodeQuery(const Query &q);
/// The single-frame error reply: `error: '<reason>'`.
std::string errorFrame(std::string_view reason);
/// True when @p frame is an error reply (starts with "error: "); @p reason gets the text
/// between the quotes.
bool isErrorFrame(std::string_view frame, std::string *reason = nullptr) noexcept;

/// One published message as kept for replay.
struct Record {
  std::int64_t seq_id = 0;
  std::string msg_id;
  double timestamp = 0;   ///< the envelope's `timestamp`, epoch seconds (0 = none)
  std::string topic;
  std::string envelope;   ///< the exact JSON text that was published (with its seq_id)
};

/// Where zmq-pub keeps what it published, to answer replay queries.
/// THREADING: add() and nextSeqId() are called from the sink thread, query() from the
/// replay server's thread, at the same time: implementations synchronise.
class Store {
 public:
  virtual ~Store() = default;
  /// The seq_id the next add() must carry: one more than the last one added (also across
  /// restarts, for a persistent store); 1 for an empty store.
  virtual std::int64_t nextSeqId() = 0;
  /// Keeps @p r (r.seq_id == nextSeqId()). A bounded store forgets its oldest records.
  /// Throws std::runtime_error when it cannot (a database error); the caller then
  /// publishes the message without keeping it and counts it.
  virtual void add(Record r) = 0;
  /// The records matching @p q in seq_id order, at most @p limit of them (the first ones).
  /// Throws std::runtime_error on a database error (answered as an error frame).
  virtual std::vector<Record> query(const Query &q, std::size_t limit) = 0;
  /// What the store holds (for the gauges): records and bytes of envelope text.
  virtual std::size_t size() = 0;
  virtual std::size_t bytes() = 0;
};

/// @p envelope (the text of a JSON object, e.g. a fedmsg envelope) numbered with
/// `"seq_id":N`, as fedmsg's store numbers what it publishes, after any signature: every
/// other byte is kept, the member goes where canonical JSON puts it (before the first
/// top-level key that sorts after "seq_id", else last), with the separators the text
/// already uses; an existing top-level `seq_id` gets the new value. nullopt when @p envelope
/// is not a JSON object. (Additive to the protocol above.)
std::optional<std::string> insertSeqId(std::string_view envelope, std::int64_t seq_id);

/// A bounded in-memory store of the last @p max_messages records and at most @p max_bytes of
/// envelope text (0 = no limit on that dimension; at least one of the two is set).
std::unique_ptr<Store> makeMemoryStore(std::size_t max_messages, std::size_t max_bytes);

}  // namespace switchyard::replay
