// SPDX-License-Identifier: MIT
#include "amqp_frames.hpp"

#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace switchyard::amqp {

namespace {

// A frame: type (1 byte), channel (2), payload size (4), payload, frame-end (0xCE).
constexpr std::size_t kFrameHeader = 7;
constexpr std::size_t kFrameOverhead = kFrameHeader + 1;
// basic.publish: ticket (2), exchange and routing key (short strings, up to 1 + 255 each),
// the mandatory/immediate bits (1), after the method id (4).
constexpr std::size_t kPublishMethodMax = 4 + 2 + 2 * 256 + 1;
// A content header: class (2), weight (2), body size (8), then the properties.
constexpr std::size_t kContentHeaderFixed = 12;

void put16(std::uint8_t *p, std::uint16_t v) {
  p[0] = static_cast<std::uint8_t>(v >> 8);
  p[1] = static_cast<std::uint8_t>(v);
}

void put32(std::uint8_t *p, std::uint32_t v) {
  put16(p, static_cast<std::uint16_t>(v >> 16));
  put16(p + 2, static_cast<std::uint16_t>(v));
}

void put64(std::uint8_t *p, std::uint64_t v) {
  put32(p, static_cast<std::uint32_t>(v >> 32));
  put32(p + 4, static_cast<std::uint32_t>(v));
}

/// Frame header at @p p, frame-end after @p payload bytes; returns the frame's size.
std::size_t frame(std::uint8_t *p, std::uint8_t type, amqp_channel_t channel, std::size_t payload) {
  p[0] = type;
  put16(p + 1, channel);
  put32(p + 3, static_cast<std::uint32_t>(payload));
  p[kFrameHeader + payload] = AMQP_FRAME_END;
  return payload + kFrameOverhead;
}

}  // namespace

std::uint8_t *FrameBatch::reserve(std::size_t more) {
  if (size_ + more > capacity_) {
    std::size_t cap = std::max({size_ + more, capacity_ * 2, std::size_t{64 * 1024}});
    auto grown = std::make_unique_for_overwrite<std::uint8_t[]>(cap);
    if (size_ > 0) {
      std::memcpy(grown.get(), data_.get(), size_);
    }
    data_ = std::move(grown);
    capacity_ = cap;
  }
  return data_.get() + size_;
}

int FrameBatch::appendPublish(amqp_channel_t channel, amqp_basic_publish_t &method, amqp_basic_properties_t &props,
                              std::string_view body, std::size_t frame_max) {
  if (frame_max <= kFrameOverhead + kContentHeaderFixed) {
    return AMQP_STATUS_INVALID_PARAMETER;
  }
  const std::size_t start = size_;
  const std::size_t payload_max = frame_max - kFrameOverhead;

  // Method frame.
  std::uint8_t *p = reserve(kFrameOverhead + kPublishMethodMax);
  put32(p + kFrameHeader, AMQP_BASIC_PUBLISH_METHOD);
  int n = amqp_encode_method(AMQP_BASIC_PUBLISH_METHOD, &method,
                             amqp_bytes_t{kPublishMethodMax - 4, p + kFrameHeader + 4});
  if (n < 0) {
    return n;
  }
  size_ += frame(p, AMQP_FRAME_METHOD, channel, 4 + static_cast<std::size_t>(n));

  // Content header frame: one frame, as for rabbitmq-c (whose buffer is frame_max long).
  p = reserve(frame_max);
  put16(p + kFrameHeader, AMQP_BASIC_CLASS);
  put16(p + kFrameHeader + 2, 0);
  put64(p + kFrameHeader + 4, body.size());
  n = amqp_encode_properties(AMQP_BASIC_CLASS, &props,
                             amqp_bytes_t{payload_max - kContentHeaderFixed, p + kFrameHeader + kContentHeaderFixed});
  if (n < 0) {
    size_ = start;
    return n;
  }
  size_ += frame(p, AMQP_FRAME_HEADER, channel, kContentHeaderFixed + static_cast<std::size_t>(n));

  // Body frames, each at most frame_max long.
  std::size_t frames = (body.size() + payload_max - 1) / payload_max;
  p = reserve(body.size() + frames * kFrameOverhead);
  for (std::size_t off = 0; off < body.size(); off += payload_max) {
    std::size_t len = std::min(payload_max, body.size() - off);
    std::memcpy(p + kFrameHeader, body.data() + off, len);
    std::size_t written = frame(p, AMQP_FRAME_BODY, channel, len);
    p += written;
    size_ += written;
  }
  return AMQP_STATUS_OK;
}

int FrameBatch::write(int fd, int heartbeat_s) {
  std::size_t off = 0;
  int inbound = -1;  // bytes waiting to be read when the socket was last found full
  while (off < size_) {
    ssize_t n = ::send(fd, data_.get() + off, size_ - off, MSG_NOSIGNAL);
    if (n > 0) {
      off += static_cast<std::size_t>(n);
      inbound = -1;
      continue;
    }
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      // The broker is not reading (resource alarm, flow control, a slow peer): wait for room.
      if (inbound < 0 && ::ioctl(fd, FIONREAD, &inbound) != 0) {
        break;
      }
      pollfd pfd{fd, POLLOUT, 0};
      int r = ::poll(&pfd, 1, heartbeat_s > 0 ? 2000 * heartbeat_s : -1);
      if (r < 0 && errno != EINTR) {
        break;
      }
      if (r == 0) {
        // No room for two heartbeat intervals: alive only if the broker sent something.
        int now = 0;
        if (::ioctl(fd, FIONREAD, &now) != 0 || now <= inbound) {
          size_ = 0;
          return AMQP_STATUS_HEARTBEAT_TIMEOUT;
        }
        inbound = now;
      } else if (r > 0 && (pfd.revents & POLLOUT) == 0 && (pfd.revents & (POLLERR | POLLHUP | POLLNVAL)) != 0) {
        break;
      }
      continue;
    }
    break;  // a socket error (or a send of nothing, which cannot happen)
  }
  bool complete = off == size_;
  size_ = 0;
  return complete ? AMQP_STATUS_OK : AMQP_STATUS_SOCKET_ERROR;
}

}  // namespace switchyard::amqp
