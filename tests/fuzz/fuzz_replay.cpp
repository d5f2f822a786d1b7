// SPDX-License-Identifier: MIT
//
// Fuzz target "replay": the fedmsg replay protocol's pure parts in the codec
// (core/codec/replay_*.cpp): the query a replay server reads from any client
// (replay::parseQuery), the error replies a client reads (isErrorFrame), seq_id numbering
// (insertSeqId) and the in-memory store answering a query. The envelopes a client reads
// in a reply go through the codec's decode, fuzzed by the "envelope" target.
// Properties: never a crash or an exception; a refused query says why, and its error frame
// reads back with the same reason; an accepted query encodes (encodeQuery) to a query
// that parses to the same encoding; the store answers in seq_id order, within the limit,
// only records the query matches; insertSeqId() on a JSON object gives the same object
// with seq_id set, and nothing for a non-object.
#include <string>
#include <vector>

#include "fuzz_check.hpp"
#include "switchyard/json.hpp"
#include "switchyard/replay.hpp"

namespace json = switchyard::json;
namespace replay = switchyard::replay;

namespace {

replay::Store &store() {
  static replay::Store *s = [] {
    auto st = replay::makeMemoryStore(64, 0);
    for (std::int64_t k = 1; k <= 40; ++k) {
      replay::Record r;
      r.seq_id = st->nextSeqId();
      r.msg_id = "2026-" + std::to_string(k % 7);
      r.timestamp = 1700000000.0 + static_cast<double>(k) * 0.5;
      r.topic = "org.fedoraproject.prod.fuzz";
      r.envelope = R"({"msg":{},"msg_id":")" + r.msg_id + R"(","seq_id":)" + std::to_string(r.seq_id) + "}";
      st->add(std::move(r));
    }
    return st.release();
  }();
  return *s;
}

bool matches(const replay::Query &q, const replay::Record &r) {
  bool m = (q.seq_id && *q.seq_id == r.seq_id) || (q.msg_id && *q.msg_id == r.msg_id);
  for (auto s : q.seq_ids) m = m || s == r.seq_id;
  for (const auto &id : q.msg_ids) m = m || id == r.msg_id;
  m = m || (q.seq_id_range && q.seq_id_range->first <= r.seq_id && r.seq_id <= q.seq_id_range->second);
  m = m || (q.time && q.time->first <= r.timestamp && r.timestamp <= q.time->second);
  return m;
}

void checkQuery(std::string_view frame) {
  std::string error;
  auto q = replay::parseQuery(frame, error);
  if (!q) {
    FUZZ_CHECK(!error.empty());
    const std::string reply = replay::errorFrame(error);
    std::string reason;
    FUZZ_CHECK(replay::isErrorFrame(reply, &reason));
    return;
  }
  const std::string encoded = replay::encodeQuery(*q);
  std::string error2;
  auto q2 = replay::parseQuery(encoded, error2);
  FUZZ_CHECK(q2.has_value());
  FUZZ_CHECK(replay::encodeQuery(*q2) == encoded);
  const std::size_t limit = 16;
  auto records = store().query(*q, limit);
  FUZZ_CHECK(records.size() <= limit);
  for (std::size_t k = 0; k < records.size(); ++k) {
    FUZZ_CHECK(matches(*q, records[k]));
    FUZZ_CHECK(k == 0 || records[k - 1].seq_id < records[k].seq_id);
  }
}

void checkSeqId(std::string_view text) {
  auto before = json::parse(text);
  auto numbered = replay::insertSeqId(text, 4242);
  if (!before || !before->isObject()) {
    if (!before) {
      return;  // not JSON: whatever insertSeqId makes of it is never published
    }
    FUZZ_CHECK(!numbered.has_value());
    return;
  }
  FUZZ_CHECK(numbered.has_value());
  auto after = json::parse(*numbered);
  FUZZ_CHECK(after.has_value() && after->isObject());
  const json::Value *seq = after->find("seq_id");
  FUZZ_CHECK(seq != nullptr && seq->type == json::Value::Type::Integer && seq->text == "4242");
  before->set("seq_id", json::Value::fromInt(4242));
  FUZZ_CHECK(json::canonical(*before) == json::canonical(*after));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
  const std::string_view in = syfuzz::bytes(data, size);
  checkQuery(in);
  std::string reason;
  (void)replay::isErrorFrame(in, &reason);
  checkSeqId(in);
  return 0;
}
