// SPDX-License-Identifier: MIT
//
// Several basic.publish commands in one write. rabbitmq-c 0.11's amqp_basic_publish() makes
// one send(2) per frame: method, content header and each body frame, three system calls for
// a small message. On a plain TCP connection amqp-publish instead encodes the frames of the
// publishes it has ready with rabbitmq-c's own public encoders (amqp_encode_method(),
// amqp_encode_properties()) into one buffer and writes it with one send(2) per batch.
// TLS connections keep amqp_basic_publish(): their socket layer is private to rabbitmq-c.
//
// The rules that make sharing the socket with rabbitmq-c safe:
// - the buffer holds whole frames only, and write() returns only once every byte went out
//   or the connection is to be dropped: rabbitmq-c (heartbeats, close-ok, channel.open)
//   never writes in the middle of one of our frames;
// - the owner calls nothing of rabbitmq-c between append() and write() (one thread);
// - rabbitmq-c keeps sending heartbeats: its send timer is not refreshed by these writes,
//   so it sends one per heartbeat interval from the reading calls (Connection::readMethods).
// THREADING: one per amqp-publish instance, used from its sink thread only.
#pragma once

#include <amqp.h>
#include <amqp_framing.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

namespace switchyard::amqp {

class FrameBatch {
 public:
  /// Appends the frames of one basic.publish (method, content header, body split at
  /// @p frame_max) on @p channel. Returns AMQP_STATUS_OK, or the encoder's error (a property
  /// table too large for one frame, ...) with nothing appended.
  int appendPublish(amqp_channel_t channel, amqp_basic_publish_t &method, amqp_basic_properties_t &props,
                    std::string_view body, std::size_t frame_max);

  /// Writes every byte appended to @p fd (non-blocking, as rabbitmq-c leaves it), whole,
  /// then empties the batch. A socket that stays full waits for room as long as the peer
  /// shows life: with @p heartbeat_s > 0, bytes arriving within 2 × heartbeat (what
  /// rabbitmq-c's own send does); without heartbeats, for ever (the same). Returns
  /// AMQP_STATUS_OK, AMQP_STATUS_HEARTBEAT_TIMEOUT or AMQP_STATUS_SOCKET_ERROR (the
  /// connection is then unusable: drop it).
  int write(int fd, int heartbeat_s);

  void clear() noexcept { size_ = 0; }
  [[nodiscard]] bool empty() const noexcept { return size_ == 0; }
  [[nodiscard]] std::size_t size() const noexcept { return size_; }

 private:
  /// Room for @p more bytes after size_ (never initialised: only written bytes are sent).
  std::uint8_t *reserve(std::size_t more);

  std::unique_ptr<std::uint8_t[]> data_;
  std::size_t size_ = 0;
  std::size_t capacity_ = 0;
};

}  // namespace switchyard::amqp
