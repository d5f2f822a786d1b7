// SPDX-License-Identifier: MIT
//
// The fedmsg envelope codec, shared by every plugin that speaks fedmsg: zmq-sub, zmq-pub,
// signer, verifier (docs/codec.md). Decoding is in envelope_decode.cpp, building and the
// msg_id rules in envelope_build.cpp, UTF-8 and the JSON string writer in utf8.cpp.
//
// Parsing turns the two ZeroMQ frames [topic, json] into a Message:
//   topic        = envelope `topic` (must equal frame 0 byte for byte)
//   body         = the raw bytes of envelope `msg`, exactly as received (never re-serialised)
//   headers      = the raw bytes of envelope `headers`, or "{}" when absent or null
//   id           = envelope `msg_id`
//   timestamp_ms = envelope `timestamp` (integer or float seconds) * 1000; 0 when absent
//   envelope()   = a WireEnvelope: the WHOLE frame 1, byte-exact, with every field decoding
//                  read from it (`username`, `i`, the top-level members of a canonical
//                  envelope for the verifier), so no later stage parses it again
//
// The JSON is read with RapidJSON's SAX reader in iterative mode (no recursion, so deep
// nesting cannot overflow the stack) with UTF-8 validation, a size limit and a nesting
// limit. Numbers are never converted: integers of any size and floats keep their text,
// because a signature is computed over Python's rendering of them (docs/codec.md).
// Duplicate keys are refused at every depth: Python keeps the last occurrence, another
// parser may keep the first, so a signature could cover a different topic than the one
// a router routes on.
//
// THE ENVELOPE RULE (a type rule since ABI 2.0): Message::envelope() is only kept while it
// describes the message; every Message setter of topic, body, headers and id drops it. A stage that produces a new envelope for the same message (the signer)
// attaches the new one. zmq-pub sends a message that still has its envelope byte-exact,
// so its signature stays valid, and builds a fresh envelope (EnvelopeBuilder) for anything
// else.
//
// Refusal reasons (snake_case, used as drop-counter labels; the codec's one vocabulary,
// shared with json::parse() and documented in docs/codec.md):
//   wrong_frame_count  not exactly two frames
//   oversize           a frame is larger than Limits::max_bytes
//   invalid_utf8       frame 0 or frame 1 is not valid UTF-8
//   invalid_json       frame 1 is not JSON (also: NUL bytes, NaN/Infinity literals)
//   not_an_object      the top-level JSON value is not an object
//   too_deep           nesting deeper than Limits::max_depth
//   duplicate_keys     an object (at any depth) has the same key twice
//   missing_topic      no `topic`, or an empty one
//   bad_topic          `topic` is not a string
//   topic_mismatch     frame 0 differs from the envelope `topic`
//   missing_msg_id     no `msg_id` (or null)
//   bad_msg_id         `msg_id` is not a non-empty string
//   missing_msg        no `msg`
//   bad_headers        `headers` is neither an object nor null
//   bad_timestamp      `timestamp` is neither a number nor null
// Building can also refuse with: bad_body (body is not a JSON value), bad_headers,
// missing_topic, invalid_utf8 (topic, id or username not UTF-8).
//
// THREADING: the free functions are thread-safe; an EnvelopeBuilder is used by one thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "switchyard/json.hpp"
#include "switchyard/message.hpp"

namespace switchyard::fedmsg {

/// Limits applied before and while parsing.
struct Limits {
  std::size_t max_bytes = 16u * 1024u * 1024u;  ///< per frame
  std::size_t max_depth = 64;                   ///< nesting of objects and arrays; root = 1
};

/// Outcome of a parse or build: ok() or a refusal reason plus a human-readable detail.
struct Result {
  std::string reason;  ///< empty on success, else one of the reasons listed above
  std::string detail;  ///< for log lines
  [[nodiscard]] bool ok() const noexcept { return reason.empty(); }
  static Result fail(std::string r, std::string d) { return {std::move(r), std::move(d)}; }
};

/// A parsed envelope. The string_views point into the parsed text and are valid only
/// while that text lives.
struct Envelope {
  std::string topic;           ///< decoded
  std::string msg_id;          ///< decoded
  std::string_view msg;        ///< raw JSON text of `msg`
  std::string_view headers;    ///< raw JSON text of `headers`; empty when absent or null
  std::string username;        ///< decoded; empty when absent or not a string
  bool has_username = false;
  std::string_view i;          ///< raw text of `i` when it is a non-negative integer, else empty
  std::string_view timestamp;  ///< raw number text of `timestamp`; empty when absent/null
  std::int64_t timestamp_ms = 0;
};

/// Parses and checks an envelope (frame 1). Does not compare with frame 0. With
/// @p members, a canonical envelope's top-level members are stored there (views into
/// @p json); it is left empty for any other text.
Result parseEnvelope(std::string_view json, Envelope &out, const Limits &limits = {},
                     std::vector<json::RawMember> *members = nullptr);

/// An envelope as it is on the wire and what decoding read from it: what a Message carries
/// (Message::envelope()). Immutable once made and shared by the copies of a message; the
/// views of `fields` and `members` point into `text`, so it is never copied or moved.
struct WireEnvelope {
  std::string text;  ///< frame 1, byte-exact
  Envelope fields;   ///< views into text
  /// The top-level members in order when `text` is canonical JSON (what fedmsg publishers
  /// send; see json::scanCanonicalObject): the verifier rebuilds the signed bytes from them.
  /// Empty for any other text.
  std::vector<json::RawMember> members;

  WireEnvelope() = default;
  WireEnvelope(const WireEnvelope &) = delete;
  WireEnvelope &operator=(const WireEnvelope &) = delete;
  /// Memory held, for queue limits.
  [[nodiscard]] std::size_t bytes() const noexcept;
};

/// Parses @p text into a new WireEnvelope (see parseEnvelope()); null with @p result set
/// on a refusal.
std::shared_ptr<const WireEnvelope> parseWire(std::string text, Result &result, const Limits &limits = {});

/// Attaches @p wire to @p msg (Message::setEnvelope() with its size). Set the fields first.
void attach(Message &msg, std::shared_ptr<const WireEnvelope> wire);

/// Decodes one fedmsg message (frame 0 = topic, frame 1 = envelope) into @p out (which
/// is overwritten only on success). The message carries the envelope (attach()) and, when
/// the envelope has non-empty headers, their tree (codec::parsedHeaders() finds it): one
/// "envelope" parse in the codec counters.
Result decode(std::string_view frame_topic, std::string_view frame_json, Message &out,
              const Limits &limits = {});

/// As decode(), for an envelope that comes without its topic frame (a frame of a replay
/// reply): the topic is the envelope's own.
Result decodeEnvelope(std::string_view frame_json, Message &out, const Limits &limits = {});

/// As decode(), for a multipart message of any frame count (wrong_frame_count unless 2).
Result decodeFrames(std::span<const std::string_view> frames, Message &out, const Limits &limits = {});

/// Checks that @p text is exactly one JSON value under the same rules as an envelope
/// (UTF-8, depth, no duplicate keys, no NaN); with @p require_object, that it is an object.
/// The reader is json::parse()'s (json_reader.hpp): the same rules, the same reasons, with
/// NaN/Infinity refused and nothing kept. Counted as a "validate" parse.
Result validateJson(std::string_view text, const Limits &limits = {}, bool require_object = false);

/// Whether @p s is valid UTF-8 (RFC 3629: no overlongs, no surrogates, <= U+10FFFF).
bool isValidUtf8(std::string_view s) noexcept;

/// Appends @p utf8 as a JSON string the way Python's json.dumps(ensure_ascii=True) writes
/// it: json::writeAsciiString() (the project's one JSON string writer), argument order of
/// the fedmsg API.
inline void appendAsciiJsonString(std::string &out, std::string_view utf8) { json::writeAsciiString(utf8, out); }

/// The msg_id rule of the AMQP->ZMQ bridge: an id that already starts
/// with four digits and '-' is kept; any other non-empty id gets "<utc_year>-" prepended;
/// an empty id becomes a fresh "<utc_year>-<uuid4>".
std::string normalizeMsgId(std::string_view id, int utc_year);
/// Whether @p id starts with a year prefix: four ASCII digits and '-' ("2019-72b3",
/// also "2019-"). The one year-prefix rule of the project (normalizeMsgId and
/// stripYearPrefix use it).
bool hasYearPrefix(std::string_view id) noexcept;
/// @p id without its year prefix: "2019-72b3" -> "72b3". An id without one ("72b3",
/// "20a9-x") and a bare prefix ("2019-", which would leave nothing) are returned unchanged.
/// The view points into @p id.
std::string_view stripYearPrefix(std::string_view id) noexcept;
/// "<current UTC year>-<random uuid4>".
std::string newMsgId();
/// A random RFC 4122 version 4 UUID, lowercase.
std::string uuid4();
int currentUtcYear() noexcept;

/// Builds envelopes for messages that did not arrive as fedmsg: keys
/// `headers` (only when the message has non-empty headers), `i`, `msg` (the raw body
/// bytes), `msg_id` (normalizeMsgId), `timestamp` (integer seconds: the message's own
/// timestamp when known, else now), `topic`, `username`; sorted keys and compact
/// separators like fedmsg's canonical encoder (the raw body is embedded unchanged).
/// One builder per publishing socket: `i` counts from 1 per builder.
class EnvelopeBuilder {
 public:
  explicit EnvelopeBuilder(std::string username, Limits limits = {});
  /// Writes the envelope to @p envelope. Increments `i` only on success. The body and the
  /// headers are checked with validateJson() unless the message carries their parsed trees
  /// (Message::parsedBodyCache(), parsedHeadersCache()): then the tree is checked for what
  /// validateJson() adds to json::parse() (no NaN/Infinity, max_depth) and the text is not
  /// read again. Counted as an "envelope" serialisation.
  Result build(const Message &msg, std::string &envelope);
  /// The `i` of the last envelope built (0 before the first).
  [[nodiscard]] std::uint64_t lastSeq() const noexcept { return seq_; }
  [[nodiscard]] const std::string &username() const noexcept { return username_; }

 private:
  std::string username_;
  Limits limits_;
  std::uint64_t seq_ = 0;
};

}  // namespace switchyard::fedmsg
