// SPDX-License-Identifier: MIT
//
// Fuzz target "amqp": the AMQP side of the fedora-messaging mapping, from the bytes a broker
// sends. The input is the property list of a basic.deliver content header (flags, then the
// properties they announce), decoded by rabbitmq-c's own decoder as amqp-consume receives
// it; then what our code does with it (transports/amqp/amqp_table.cpp and the codec's
// fedora_messaging.cpp and fedmsg_carry.cpp):
//  - any timestamp property gives the message its milliseconds, or none when they would
//    not fit (regressions/amqp/timestamp-ms-overflow);
//  - headers table -> JSON tree (tableToJson) -> text (jsonText): the text is JSON and reads
//    back as the same tree; toMessage() takes the delivery;
//  - and back: tree -> field table (TableArena::fromJson) -> AMQP wire bytes
//    (amqp_encode_table) -> decoded -> tree: after one round (types are normalised the way
//    pika writes them), further rounds change nothing;
//  - publishProperties() and publishHeaders() give the same headers, in the same order;
//  - a carried envelope restored from the headers (envelopeFromHeaders) is an envelope the
//    codec decodes, and carrying it again (headersFromEnvelope) restores the same bytes.
// The target never crashes, and a refusal always says why.
#include <amqp.h>
#include <amqp_framing.h>

#include <optional>
#include <string>
#include <vector>

#include "../../transports/amqp/amqp_table.hpp"
#include "fuzz_check.hpp"
#include "switchyard/fedmsg.hpp"
#include "switchyard/fedmsg_carry.hpp"
#include "switchyard/fedora_messaging.hpp"
#include "switchyard/json.hpp"

namespace sy = switchyard;
namespace json = switchyard::json;
namespace fm = switchyard::fedora_messaging;
namespace carry = switchyard::amqp::carry;

namespace {

constexpr json::ParseLimits kDeep{64u << 20, 1u << 20, 1u << 20};

std::string_view sv(amqp_bytes_t b) { return {static_cast<const char *>(b.bytes), b.len}; }

/// One round: tree -> table -> wire bytes -> table -> tree. nullopt when AMQP cannot carry
/// the tree (then the arena said why).
std::optional<json::Value> roundTrip(const json::Value &tree) {
  sy::amqp::TableArena arena;
  std::vector<amqp_table_entry_t> entries;
  std::string error;
  if (!arena.fromJson(tree, entries, error)) {
    FUZZ_CHECK(!error.empty());
    return std::nullopt;
  }
  amqp_table_t table{static_cast<int>(entries.size()), entries.data()};
  std::vector<char> buf(1u << 20);
  std::size_t offset = 0;
  if (amqp_encode_table(amqp_bytes_t{buf.size(), buf.data()}, &table, &offset) != AMQP_STATUS_OK) {
    return json::Value();  // larger than the buffer: compare the table itself
  }
  amqp_pool_t pool;
  init_amqp_pool(&pool, 4096);
  amqp_table_t decoded{};
  std::size_t read = 0;
  const int rc = amqp_decode_table(amqp_bytes_t{offset, buf.data()}, &pool, &decoded, &read);
  FUZZ_CHECK(rc == AMQP_STATUS_OK && read == offset);
  json::Value out = sy::amqp::tableToJson(decoded);
  FUZZ_CHECK(json::canonical(out) == json::canonical(sy::amqp::tableToJson(table)));
  empty_amqp_pool(&pool);
  return out;
}

void checkHeaders(const json::Value &tree, const std::string &text) {
  FUZZ_CHECK(tree.isObject());
  auto back = json::parse(text, nullptr, kDeep);
  FUZZ_CHECK(back.has_value());
  FUZZ_CHECK(json::canonical(*back) == json::canonical(tree));
  auto once = roundTrip(tree);
  if (once && once->isObject()) {
    auto twice = roundTrip(*once);
    FUZZ_CHECK(twice.has_value());
    if (twice->isObject()) {
      FUZZ_CHECK(json::canonical(*twice) == json::canonical(*once));
    }
  }
  // What amqp-publish would send for these headers: both forms agree.
  const std::string sent_at = fm::sentAt(1700000000);
  fm::Properties props = fm::publishProperties(&tree, nullptr, "id-1", sent_at);
  std::vector<fm::HeaderRef> refs;
  const auto priority = fm::publishHeaders(&tree, nullptr, sent_at, refs);
  FUZZ_CHECK(priority == props.priority);
  FUZZ_CHECK(refs.size() == props.headers.members.size());
  for (std::size_t k = 0; k < refs.size(); ++k) {
    const auto &m = props.headers.members[k];
    FUZZ_CHECK(refs[k].key == m.key);
    const json::Value v = refs[k].value != nullptr ? *refs[k].value : json::Value::fromString(std::string(refs[k].text));
    FUZZ_CHECK(json::canonical(v) == json::canonical(m.value));
  }
}

void checkCarry(const std::string &headers_text, std::string_view topic, std::string_view message_id) {
  const std::string body = R"({"n":1})";
  std::string envelope;
  std::string error;
  const auto r = carry::envelopeFromHeaders(headers_text, topic, body, message_id, envelope, error);
  if (r == carry::Restore::Failed) {
    FUZZ_CHECK(!error.empty());
    return;
  }
  if (r == carry::Restore::NotCarried) {
    return;
  }
  auto v = json::parse(envelope);
  FUZZ_CHECK(v.has_value() && json::canonical(*v) == envelope);
  std::string again_headers;
  std::string error2;
  FUZZ_CHECK(carry::headersFromEnvelope(envelope, again_headers, error2));
  std::string again;
  const auto r2 = carry::envelopeFromHeaders(again_headers, topic, body, "", again, error2);
  FUZZ_CHECK(r2 == carry::Restore::Ok);
  FUZZ_CHECK(again == envelope);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
  amqp_pool_t pool;
  init_amqp_pool(&pool, 4096);
  void *decoded = nullptr;
  amqp_bytes_t in{size, const_cast<std::uint8_t *>(data)};
  if (amqp_decode_properties(AMQP_BASIC_CLASS, &pool, in, &decoded) != AMQP_STATUS_OK || decoded == nullptr) {
    empty_amqp_pool(&pool);
    return 0;
  }
  const auto *p = static_cast<const amqp_basic_properties_t *>(decoded);
  fm::Delivery d;
  std::string routing_key = "fuzz.org.fedoraproject.prod.bodhi.update";
  if ((p->_flags & AMQP_BASIC_TYPE_FLAG) != 0) {
    routing_key.assign(sv(p->type));  // the routing key comes with basic.deliver; vary it too
  }
  d.routing_key = routing_key;
  if ((p->_flags & AMQP_BASIC_MESSAGE_ID_FLAG) != 0) {
    d.message_id = sv(p->message_id);
  }
  if ((p->_flags & AMQP_BASIC_TIMESTAMP_FLAG) != 0) {
    d.timestamp_s = p->timestamp;
  }
  if ((p->_flags & AMQP_BASIC_HEADERS_FLAG) != 0) {
    json::Value tree = sy::amqp::tableToJson(p->headers);
    d.headers_text = sy::amqp::jsonText(tree);
    checkHeaders(tree, d.headers_text);
    d.headers = std::move(tree);
  }
  const std::string headers_text = d.headers_text.empty() ? "{}" : d.headers_text;
  const std::string message_id(d.message_id.value_or(""));
  const std::optional<std::uint64_t> timestamp_s = d.timestamp_s;
  sy::Message msg;
  fm::toMessage(std::move(d), "fuzz", msg);
  FUZZ_CHECK(msg.topic() == fm::topicOf(routing_key, "fuzz"));
  FUZZ_CHECK(json::parse(msg.headers(), nullptr, kDeep).has_value());
  // Any 64-bit timestamp: its milliseconds when they fit, else unknown (no overflow).
  if (timestamp_s && *timestamp_s <= static_cast<std::uint64_t>(INT64_MAX / 1000)) {
    FUZZ_CHECK(msg.timestampMs() == static_cast<std::int64_t>(*timestamp_s) * 1000);
  } else {
    FUZZ_CHECK(msg.timestampMs() == 0);
  }
  checkCarry(headers_text, msg.topic(), message_id);
  empty_amqp_pool(&pool);
  return 0;
}
