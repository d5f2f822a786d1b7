// SPDX-License-Identifier: MIT
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace switchyard {

namespace fedmsg {
struct WireEnvelope;  // switchyard/fedmsg.hpp (libswitchyard-codec)
}
namespace json {
struct Value;  // switchyard/json.hpp (libswitchyard-codec)
}

/// @brief A protocol-neutral message.
///
/// OWNERSHIP: a Message is a value; stages move it (`std::move`) from one to the next and
/// never share it between threads. Only fan-out to several outputs copies it, once per
/// extra output; what was parsed (the envelope, the parsed headers) is immutable and shared
/// by the copies, not copied.
///
/// `body` and `headers` are JSON text. A stage that does not change them leaves the bytes
/// exactly as the input produced them, so a signed payload is passed on byte-exact.
///
/// ABI 2.0: the fields are private. Every setter of topic, body, headers and id drops the
/// carried envelope (envelope()): a stage that changes the message can no longer send the
/// old signed bytes, by construction. setBody() and setHeaders() also drop what was parsed
/// or checked of the text they replace.
class Message {
 public:
  Message() = default;
  Message(std::string topic, std::string body, std::string headers = "{}", std::string id = {},
          std::int64_t timestamp_ms = 0)
      : topic_(std::move(topic)),
        body_(std::move(body)),
        headers_(std::move(headers)),
        id_(std::move(id)),
        timestamp_ms_(timestamp_ms) {}

  [[nodiscard]] const std::string &topic() const noexcept { return topic_; }
  /// JSON text (any JSON value; in practice an object).
  [[nodiscard]] const std::string &body() const noexcept { return body_; }
  /// JSON object text.
  [[nodiscard]] const std::string &headers() const noexcept { return headers_; }
  /// e.g. fedmsg `msg_id`, AMQP `message_id`.
  [[nodiscard]] const std::string &id() const noexcept { return id_; }
  /// Milliseconds since the epoch; 0 = unknown.
  [[nodiscard]] std::int64_t timestampMs() const noexcept { return timestamp_ms_; }

  void setTopic(std::string v) noexcept {
    topic_ = std::move(v);
    envelope_.reset();
  }
  void setBody(std::string v) noexcept {
    body_ = std::move(v);
    envelope_.reset();
    parsed_body_.reset();
    body_checked_ = false;
  }
  void setHeaders(std::string v) noexcept {
    headers_ = std::move(v);
    envelope_.reset();
    parsed_headers_.reset();
  }
  void setId(std::string v) noexcept {
    id_ = std::move(v);
    envelope_.reset();
  }
  /// Not part of the envelope rule (as before ABI 2.0): an envelope carries its own
  /// `timestamp`, and an input may fill in a time the envelope lacks.
  void setTimestampMs(std::int64_t v) noexcept { timestamp_ms_ = v; }

  /// The fedmsg envelope this message is, byte-exact, with what decoding read from it (see
  /// fedmsg.hpp): set by the codec when a message is decoded from the wire, and by a stage
  /// that makes a new envelope for the same message (the signer). Null when the message
  /// never was an envelope or a setter changed it since. A sink that finds one sends its
  /// bytes as they are, so their signature stays valid.
  [[nodiscard]] const std::shared_ptr<const fedmsg::WireEnvelope> &envelope() const noexcept {
    return envelope_;
  }
  /// Attaches @p e, which holds @p bytes of memory (counted in the runtime's queue limits).
  /// Set the fields first: a later setter drops it again. The codec's fedmsg::attach()
  /// does both.
  void setEnvelope(std::shared_ptr<const fedmsg::WireEnvelope> e, std::size_t bytes) noexcept {
    envelope_ = std::move(e);
    envelope_bytes_ = envelope_ ? bytes : 0;
  }
  void dropEnvelope() noexcept { envelope_.reset(); }
  /// Memory held by the attached envelope (0 when none).
  [[nodiscard]] std::size_t envelopeBytes() const noexcept { return envelope_ ? envelope_bytes_ : 0; }

  /// The body and the headers parsed once (json::Value trees, see switchyard/json.hpp):
  /// filled by the stage that parses them first (the input that checks a body, or
  /// codec::parsedBody() / codec::parsedHeaders() on first use), shared by copies, dropped
  /// by setBody() / setHeaders(). Stages call the codec functions, not these.
  [[nodiscard]] const std::shared_ptr<const json::Value> &parsedBodyCache() const noexcept { return parsed_body_; }
  /// True when the body was checked on entry to be one JSON value under the envelope rules
  /// (UTF-8, no duplicate keys, no NaN, the depth limit): set by the codec's decode, which
  /// read it as the envelope's `msg`, and kept when other fields change; setBody() clears
  /// it. Lets a later stage skip checking it again without parsing it into a tree.
  [[nodiscard]] bool bodyChecked() const noexcept { return body_checked_ || parsed_body_ != nullptr; }
  void markBodyChecked() noexcept { body_checked_ = true; }
  void cacheParsedBody(std::shared_ptr<const json::Value> v) const noexcept { parsed_body_ = std::move(v); }
  [[nodiscard]] const std::shared_ptr<const json::Value> &parsedHeadersCache() const noexcept {
    return parsed_headers_;
  }
  void cacheParsedHeaders(std::shared_ptr<const json::Value> v) const noexcept { parsed_headers_ = std::move(v); }

  /// Protocol metadata that transports and filters may read. Keys are namespaced by
  /// protocol: "amqp.redelivered", "zmq.endpoint", ... (not part of the envelope rule:
  /// setting metadata never drops the envelope).
  std::vector<std::pair<std::string, std::string>> meta;

  /// Returns the metadata value for @p key, if present.
  [[nodiscard]] std::optional<std::string_view> getMeta(std::string_view key) const {
    for (const auto &kv : meta) {
      if (kv.first == key) {
        return std::string_view(kv.second);
      }
    }
    return std::nullopt;
  }
  /// Sets (replaces) the metadata value for @p key.
  void setMeta(std::string_view key, std::string value) {
    for (auto &kv : meta) {
      if (kv.first == key) {
        kv.second = std::move(value);
        return;
      }
    }
    meta.emplace_back(std::string(key), std::move(value));
  }
  /// Removes the metadata value for @p key; returns whether it was there.
  bool eraseMeta(std::string_view key) {
    for (auto it = meta.begin(); it != meta.end(); ++it) {
      if (it->first == key) {
        meta.erase(it);
        return true;
      }
    }
    return false;
  }

  /// Approximate memory held by this message's own strings (the runtime's queues count
  /// the whole footprint, see docs/delivery.md).
  [[nodiscard]] std::size_t byteSize() const {
    std::size_t n = sizeof(Message) + topic_.size() + body_.size() + headers_.size() + id_.size() +
                    envelopeBytes();
    for (const auto &kv : meta) {
      n += kv.first.size() + kv.second.size() + sizeof(kv);
    }
    return n;
  }

 private:
  std::string topic_;
  std::string body_ = "{}";
  std::string headers_ = "{}";
  std::string id_;
  std::int64_t timestamp_ms_ = 0;
  std::shared_ptr<const fedmsg::WireEnvelope> envelope_;
  std::size_t envelope_bytes_ = 0;
  mutable std::shared_ptr<const json::Value> parsed_body_;
  bool body_checked_ = false;
  mutable std::shared_ptr<const json::Value> parsed_headers_;
};

/// Well-known metadata keys.
namespace meta {
inline constexpr std::string_view kAmqpRedelivered = "amqp.redelivered";
inline constexpr std::string_view kSourceLine = "stdin.line";
/// The decimal `i` the signer gave the message's envelope; parallel signer instances number
/// slightly out of the stream's order, and zmq-pub sends such envelopes in `i` order.
inline constexpr std::string_view kSignerSeq = "signer.i";
}  // namespace meta

}  // namespace switchyard
