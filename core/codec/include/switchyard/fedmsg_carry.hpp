// SPDX-License-Identifier: MIT
//
// Carrying a signed fedmsg envelope across AMQP (docs/bridges.md, "Signatures survive").
//
// A fedmsg envelope is `msg` + `topic` + `msg_id` + a few transport fields. On AMQP the body
// is `msg`, the routing key is `topic` and `message_id` (or the `fedmsg_msg_id` header) is
// `msg_id`; amqp-publish with `carry_envelope: true` sends the rest as AMQP headers:
//
//   fedmsg_timestamp    integer `timestamp`         (I or l)
//   fedmsg_i            integer `i`                 (I or l)
//   fedmsg_username     string `username`           (S)
//   fedmsg_crypto       string `crypto`             (S)
//   fedmsg_signature    string `signature`          (S)
//   fedmsg_certificate  string `certificate`        (S)
//   fedmsg_extra        (S) canonical JSON object of every other envelope key (`headers`,
//                       `seq_id`, a float timestamp, ...), only when there is one
//   fedmsg_msg_id       (S) the full `msg_id` (also written by message_id_mode: uuid)
//
// Every envelope key therefore travels exactly once and with its JSON type, so amqp-consume
// with `restore_envelope: true` rebuilds the same JSON value; it renders it canonically
// (canonical JSON, docs/codec.md), which is what fedmsg publishers put on the wire: the envelope that
// leaves zmq-pub is byte-identical to the original, and its signature verifies.
//
// The fedmsg `headers` value is carried inside fedmsg_extra (besides being AMQP headers of
// their own, for AMQP consumers): AMQP headers also hold what fedora-messaging and the
// bridge add (schema, severity, sent-at, priority, ...), so they cannot tell which keys the
// signed `headers` had.
#pragma once

#include <string>
#include <string_view>

#include "switchyard/json.hpp"

namespace switchyard::fedmsg {
struct WireEnvelope;
}

namespace switchyard::amqp::carry {

inline constexpr std::string_view kMsgIdHeader = "fedmsg_msg_id";
inline constexpr std::string_view kExtraHeader = "fedmsg_extra";

/// True for the carry header names (fedmsg_timestamp ... fedmsg_extra, fedmsg_msg_id).
bool isCarryHeader(std::string_view name) noexcept;

/// From the envelope text, the carry headers as a JSON object text (integers as JSON
/// integers within int64, strings as strings, fedmsg_extra as a string holding canonical
/// JSON), including fedmsg_msg_id. Returns false with @p error if the envelope cannot be
/// parsed as an object with a string `msg_id`.
bool headersFromEnvelope(std::string_view envelope, std::string &headers_json, std::string &error);

/// As headersFromEnvelope(), from an envelope already decoded (Message::envelope()), into
/// a tree: a canonical envelope (WireEnvelope::members) is not parsed again.
bool headersFromWire(const fedmsg::WireEnvelope &wire, json::Value &headers, std::string &error);

enum class Restore { NotCarried, Ok, Failed };

/// As envelopeFromHeaders(), on trees already parsed (@p headers the AMQP headers, @p body
/// the body): on Ok, @p envelope receives the envelope value, not rendered.
Restore envelopeValueFromHeaders(const json::Value &headers, std::string_view topic, const json::Value &body,
                                 std::string_view message_id, json::Value &envelope, std::string &error);

/// Rebuilds the canonical envelope text from a delivery: @p headers_json is the AMQP
/// headers as a JSON object, @p topic the routing key (topic), @p body the JSON body,
/// @p message_id the AMQP message_id (used when there is no fedmsg_msg_id header).
/// NotCarried when the headers carry none of the envelope fields; Failed with @p error
/// when they do but are unusable (wrong types, fedmsg_extra not an object, no id, ...).
Restore envelopeFromHeaders(std::string_view headers_json, std::string_view topic, std::string_view body,
                            std::string_view message_id, std::string &envelope, std::string &error);

/// True when @p s is a UUID in the 8-4-4-4-12 hex form (either case).
bool isUuid(std::string_view s) noexcept;

}  // namespace switchyard::amqp::carry
