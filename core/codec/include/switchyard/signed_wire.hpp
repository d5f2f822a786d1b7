// SPDX-License-Identifier: MIT
//
// A WireEnvelope assembled from top-level members that are already JSON text, without
// parsing the result: for a stage that makes a new envelope for a message it already
// decoded (the signer adds `crypto`, `signature` and `certificate` to the members the
// decode listed, or to the members of a tree it canonicalised). Parsing its own output
// again would be a second parse of the same bytes.
//
// THREADING: thread-safe (no shared state).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

#include "switchyard/fedmsg.hpp"

namespace switchyard::fedmsg {

/// One top-level member of an envelope being assembled.
struct MemberText {
  std::string_view key;    ///< the key, UTF-8, not escaped
  std::string_view value;  ///< the value's canonical JSON text
};

/// Makes the WireEnvelope whose text is `{"key":value,...}` of @p members in the order given.
/// Pass them sorted by key (code point order = byte order of UTF-8) and unique, with
/// canonical values: the text is then the canonical form, and `members` lists them (left
/// empty, as parseWire() would leave it, when a key needs an escape). `fields` are read
/// from the members themselves: `topic`, `msg_id` and `username` decoded from their string
/// literals, `msg`, `headers`, `i` and `timestamp` as views into the text;
/// `fields.timestamp_ms` is @p timestamp_ms (the caller knows it: the decoded envelope's,
/// or the time it wrote). Nothing is parsed. Null with @p result set (missing_topic,
/// bad_topic, missing_msg_id, bad_msg_id, missing_msg, bad_headers, bad_timestamp) when the
/// members do not make a fedmsg envelope.
std::shared_ptr<const WireEnvelope> assembleWire(std::span<const MemberText> members, std::int64_t timestamp_ms,
                                                 Result &result);

/// Appends `{"key":value,...}` of @p members in the order given (see assembleWire()).
void appendMembers(std::span<const MemberText> members, std::string &out);

}  // namespace switchyard::fedmsg
