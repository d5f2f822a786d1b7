// SPDX-License-Identifier: MIT
//
// The fedora-messaging wire format on AMQP 0-9-1, as pure functions on protocol-neutral
// types (no AMQP library here): what amqp-publish sets on a message and what amqp-consume
// reads back. The transports convert Properties::headers to and from their field tables.
//
// A published message (what fedora-messaging's base.message consumers expect):
//   routing key        [routing_key_prefix "."] topic
//   body               the message body (JSON, UTF-8)
//   content_type       "application/json"
//   content_encoding   "utf-8"
//   delivery_mode      2 (persistent)
//   message_id         the message id (keep) or a UUID (uuid mode, see messageIds())
//   priority           the `priority` header when it is an integer 0..255, else not set
//   headers            the message's headers, then the carried fedmsg_* headers (they win
//                      over same-named ones), then, unless already there:
//                        fedora_messaging_schema          "base.message"
//                        fedora_messaging_schema_package  "fedora_messaging"
//                        fedora_messaging_severity        20 (INFO)
//                        sent-at                          ISO 8601 UTC, "+00:00"
//                        priority                         0
// A consumed message: topic = routing key without routing_key_prefix and its dot; headers =
// the AMQP headers; id = message_id when it is valid UTF-8 and not empty; timestamp = the
// timestamp property (seconds) * 1000.
//
// THREADING: every function is thread-safe (no shared state).
#pragma once

#include <cstdint>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "switchyard/json.hpp"
#include "switchyard/message.hpp"

namespace switchyard::fedora_messaging {

inline constexpr std::string_view kContentType = "application/json";
inline constexpr std::string_view kContentEncoding = "utf-8";
inline constexpr std::uint8_t kDeliveryMode = 2;  ///< persistent
inline constexpr std::string_view kSchemaHeader = "fedora_messaging_schema";
inline constexpr std::string_view kSchemaPackageHeader = "fedora_messaging_schema_package";
inline constexpr std::string_view kSeverityHeader = "fedora_messaging_severity";
inline constexpr std::string_view kSentAtHeader = "sent-at";
inline constexpr std::string_view kPriorityHeader = "priority";
inline constexpr std::string_view kDefaultSchema = "base.message";
inline constexpr std::string_view kDefaultSchemaPackage = "fedora_messaging";
inline constexpr int kDefaultSeverity = 20;  ///< logging.INFO

/// The basic properties of a published message (see the table above).
struct Properties {
  std::string_view content_type = kContentType;
  std::string_view content_encoding = kContentEncoding;
  std::uint8_t delivery_mode = kDeliveryMode;
  std::string message_id;
  std::optional<std::uint8_t> priority;  ///< set only from a `priority` header 0..255
  json::Value headers = json::Value::object();
};

/// "YYYY-MM-DDTHH:MM:SS+00:00" for @p t (UTC), the `sent-at` header.
std::string sentAt(std::time_t t);

/// The properties of a publish: @p headers is the message's headers (an object, or null
/// for none), @p carried the fedmsg_* headers of the envelope carry (an object, or null),
/// which replace same-named message headers; the fedora-messaging defaults fill in what is
/// missing; @p sent_at is the `sent-at` value used when the headers have none.
Properties publishProperties(const json::Value *headers, const json::Value *carried, std::string message_id,
                             std::string_view sent_at);

/// One header of a publish, viewed where it already lives (nothing is copied): the value
/// is @p value, or the string @p text when @p value is null (defaults and `sent-at`).
struct HeaderRef {
  std::string_view key;
  const json::Value *value = nullptr;
  std::string_view text;
};

/// The headers publishProperties() makes, as views into @p headers and @p carried (which
/// must outlive @p out), sorted by key and unique, in the same order and with the same
/// values. Returns the priority property (see Properties::priority). What amqp-publish
/// builds its field table from without copying the message's headers.
std::optional<std::uint8_t> publishHeaders(const json::Value *headers, const json::Value *carried,
                                           std::string_view sent_at, std::vector<HeaderRef> &out);

/// The AMQP message_id for a message id. keep (@p uuid_mode false): the id itself (a
/// fresh UUID4 for an empty one). uuid: the id without its year prefix, lower-cased, when
/// that is a UUID, else a fresh UUID4; @p full_id_header then receives the carry header
/// {"fedmsg_msg_id": id} so the full id survives (left untouched for an empty id).
std::string messageId(std::string_view id, bool uuid_mode, json::Value &full_id_header);

/// "prefix.topic" (prefix without trailing dots; just the topic when it is empty).
std::string routingKey(std::string_view prefix, std::string_view topic);

/// The topic of a delivery: @p routing_key without "prefix." at its start (unchanged when
/// it does not start with it).
std::string topicOf(std::string_view routing_key, std::string_view prefix);

/// The properties of a delivery that the mapping reads (what amqp-consume gets).
struct Delivery {
  std::string_view routing_key;
  std::optional<std::string_view> message_id;
  std::optional<std::uint64_t> timestamp_s;
  /// The AMQP headers as a JSON object, or nullopt when the delivery had none.
  std::optional<json::Value> headers;
  /// Their JSON text as the transport wrote it beside the tree; when empty, toMessage()
  /// writes the canonical form.
  std::string headers_text;
};

/// Fills @p msg's topic, headers (text and, for later stages, the parsed tree: nobody
/// parses them again), id and timestamp from @p d (@p prefix as for topicOf()). The body is
/// the caller's (it checks it first).
void toMessage(Delivery d, std::string_view prefix, Message &msg);

}  // namespace switchyard::fedora_messaging
