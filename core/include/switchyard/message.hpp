// SPDX-License-Identifier: MIT
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace switchyard {

/// @brief A protocol-neutral message.
///
/// OWNERSHIP: a Message is a value; stages move it (`std::move`) from one to the next and
/// never share it between threads. Only fan-out to several outputs copies it, once per
/// extra output.
///
/// `body` and `headers` are JSON text. A stage that does not change them leaves the bytes
/// exactly as the input produced them, so a signed payload is passed on byte-exact.
struct Message {
  std::string topic;
  std::string body = "{}";     ///< JSON text (any JSON value; in practice an object)
  std::string headers = "{}";  ///< JSON object text
  std::string id;              ///< e.g. fedmsg `msg_id`, AMQP `message_id`
  std::int64_t timestamp_ms = 0;  ///< milliseconds since the epoch; 0 = unknown

  /// Protocol metadata that transports and filters may read. Keys are namespaced by
  /// protocol: "fedmsg.envelope" (the original envelope bytes, kept only while the
  /// message is unchanged), "amqp.redelivered", "zmq.endpoint", ...
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

  /// Approximate memory held by this message, used for byte-bounded queues.
  [[nodiscard]] std::size_t byteSize() const {
    std::size_t n = sizeof(Message) + topic.size() + body.size() + headers.size() + id.size();
    for (const auto &kv : meta) {
      n += kv.first.size() + kv.second.size() + sizeof(kv);
    }
    return n;
  }
};

/// Well-known metadata keys.
namespace meta {
inline constexpr std::string_view kFedmsgEnvelope = "fedmsg.envelope";
inline constexpr std::string_view kAmqpRedelivered = "amqp.redelivered";
inline constexpr std::string_view kSourceLine = "stdin.line";
/// The decimal `i` the signer gave the message's envelope; parallel signer instances number
/// slightly out of the stream's order, and zmq-pub sends such envelopes in `i` order.
inline constexpr std::string_view kSignerSeq = "signer.i";
}  // namespace meta

}  // namespace switchyard
