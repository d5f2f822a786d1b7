// SPDX-License-Identifier: MIT
//
// amqp-publish's batched publish frames (transports/amqp/amqp_frames.cpp) read back with
// rabbitmq-c's own decoders: the frames of each publish, their order, the body split at
// frame_max, several publishes in one write, a reader slower than the writer (partial
// writes), a peer that neither reads nor sends (heartbeat timeout), a closed peer, and a
// property table too large for one frame.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <fcntl.h>

#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "amqp_frames.hpp"

using switchyard::amqp::FrameBatch;

namespace {

struct Pair {
  int fd[2] = {-1, -1};
  Pair() {
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM, 0, fd) == 0);
    // Non-blocking, as rabbitmq-c leaves its socket.
    REQUIRE(::fcntl(fd[0], F_SETFL, ::fcntl(fd[0], F_GETFL) | O_NONBLOCK) == 0);
  }
  ~Pair() {
    for (int f : fd) {
      if (f >= 0) {
        ::close(f);
      }
    }
  }
};

/// Everything readable from @p fd until @p n bytes came (blocking reads, with a deadline).
std::string readAll(int fd, std::size_t n) {
  std::string out;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  char buf[65536];
  while (out.size() < n && std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 200) <= 0) {
      continue;
    }
    ssize_t r = ::read(fd, buf, sizeof buf);
    if (r <= 0) {
      break;
    }
    out.append(buf, static_cast<std::size_t>(r));
  }
  return out;
}

struct Frame {
  int type;
  int channel;
  std::string payload;
};

std::uint32_t be32(const std::string &s, std::size_t at) {
  return (std::uint32_t(std::uint8_t(s[at])) << 24) | (std::uint32_t(std::uint8_t(s[at + 1])) << 16) |
         (std::uint32_t(std::uint8_t(s[at + 2])) << 8) | std::uint32_t(std::uint8_t(s[at + 3]));
}

/// Splits @p wire into frames, checking each one's size field and frame-end byte.
std::vector<Frame> frames(const std::string &wire) {
  std::vector<Frame> out;
  std::size_t at = 0;
  while (at < wire.size()) {
    REQUIRE(wire.size() - at >= 8);
    int type = std::uint8_t(wire[at]);
    int channel = (std::uint8_t(wire[at + 1]) << 8) | std::uint8_t(wire[at + 2]);
    std::size_t size = be32(wire, at + 3);
    REQUIRE(wire.size() - at >= size + 8);
    CHECK(std::uint8_t(wire[at + 7 + size]) == AMQP_FRAME_END);
    out.push_back({type, channel, wire.substr(at + 7, size)});
    at += size + 8;
  }
  return out;
}

amqp_bytes_t bytes(const std::string &s) { return amqp_bytes_t{s.size(), const_cast<char *>(s.data())}; }

std::string str(amqp_bytes_t b) { return std::string(static_cast<const char *>(b.bytes), b.len); }

struct Publish {
  std::string exchange = "amq.topic";
  std::string key = "org.example.a";
  std::string message_id = "2026-0a1b2c";
  std::string header_value = "value";
  std::string body;
  amqp_table_entry_t entry{};
  amqp_basic_publish_t method{};
  amqp_basic_properties_t props{};

  explicit Publish(std::string b, bool mandatory = false) : body(std::move(b)) {
    method.exchange = bytes(exchange);
    method.routing_key = bytes(key);
    method.mandatory = mandatory ? 1 : 0;
    entry.key = amqp_cstring_bytes("fedora_messaging_schema");
    entry.value.kind = AMQP_FIELD_KIND_UTF8;
    entry.value.value.bytes = bytes(header_value);
    props._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_MESSAGE_ID_FLAG |
                   AMQP_BASIC_HEADERS_FLAG | AMQP_BASIC_PRIORITY_FLAG;
    props.content_type = amqp_cstring_bytes("application/json");
    props.delivery_mode = 2;
    props.message_id = bytes(message_id);
    props.priority = 7;
    props.headers = amqp_table_t{1, &entry};
  }
};

/// Checks that @p f (from index @p i on) hold exactly publish @p p on @p channel; returns
/// the index after it.
std::size_t checkPublish(const std::vector<Frame> &f, std::size_t i, const Publish &p, int channel,
                         std::size_t frame_max) {
  amqp_pool_t pool;
  init_amqp_pool(&pool, 4096);
  REQUIRE(f.size() > i + 1);
  CHECK(f[i].type == AMQP_FRAME_METHOD);
  CHECK(f[i].channel == channel);
  REQUIRE(be32(f[i].payload, 0) == AMQP_BASIC_PUBLISH_METHOD);
  std::string args = f[i].payload.substr(4);
  void *decoded = nullptr;
  REQUIRE(amqp_decode_method(AMQP_BASIC_PUBLISH_METHOD, &pool, bytes(args), &decoded) == 0);
  auto *m = static_cast<amqp_basic_publish_t *>(decoded);
  CHECK(str(m->exchange) == p.exchange);
  CHECK(str(m->routing_key) == p.key);
  CHECK(m->mandatory == p.method.mandatory);
  CHECK(m->immediate == 0);

  CHECK(f[i + 1].type == AMQP_FRAME_HEADER);
  CHECK(f[i + 1].channel == channel);
  const std::string &h = f[i + 1].payload;
  REQUIRE(h.size() >= 12);
  CHECK(((std::uint8_t(h[0]) << 8) | std::uint8_t(h[1])) == AMQP_BASIC_CLASS);
  CHECK((std::uint64_t(be32(h, 4)) << 32 | be32(h, 8)) == p.body.size());
  std::string encoded_props = h.substr(12);
  REQUIRE(amqp_decode_properties(AMQP_BASIC_CLASS, &pool, bytes(encoded_props), &decoded) == 0);
  auto *props = static_cast<amqp_basic_properties_t *>(decoded);
  CHECK(props->_flags == p.props._flags);
  CHECK(str(props->content_type) == "application/json");
  CHECK(props->delivery_mode == 2);
  CHECK(props->priority == 7);
  CHECK(str(props->message_id) == p.message_id);
  REQUIRE(props->headers.num_entries == 1);
  CHECK(str(props->headers.entries[0].key) == "fedora_messaging_schema");
  CHECK(str(props->headers.entries[0].value.value.bytes) == p.header_value);
  empty_amqp_pool(&pool);

  std::string body;
  i += 2;
  while (body.size() < p.body.size()) {
    REQUIRE(i < f.size());
    CHECK(f[i].type == AMQP_FRAME_BODY);
    CHECK(f[i].channel == channel);
    CHECK(f[i].payload.size() + 8 <= frame_max);
    body += f[i].payload;
    ++i;
  }
  CHECK(body == p.body);
  return i;
}

}  // namespace

TEST_CASE("one publish: method, content header and body frames that rabbitmq-c decodes") {
  Pair s;
  FrameBatch b;
  Publish p(std::string(1024, 'x'), true);
  REQUIRE(b.appendPublish(3, p.method, p.props, p.body, 131072) == AMQP_STATUS_OK);
  std::size_t n = b.size();
  REQUIRE(b.write(s.fd[0], 0) == AMQP_STATUS_OK);
  CHECK(b.empty());
  auto f = frames(readAll(s.fd[1], n));
  CHECK(f.size() == 3);
  CHECK(checkPublish(f, 0, p, 3, 131072) == 3);
}

TEST_CASE("a body longer than a frame is split at frame_max; an empty body has no body frame") {
  Pair s;
  FrameBatch b;
  std::string body(10000, '\0');
  for (std::size_t i = 0; i < body.size(); ++i) {
    body[i] = static_cast<char>('a' + i % 26);
  }
  Publish big(body);
  Publish empty("");
  REQUIRE(b.appendPublish(1, big.method, big.props, big.body, 4096) == AMQP_STATUS_OK);
  REQUIRE(b.appendPublish(1, empty.method, empty.props, empty.body, 4096) == AMQP_STATUS_OK);
  std::size_t n = b.size();
  REQUIRE(b.write(s.fd[0], 0) == AMQP_STATUS_OK);
  auto f = frames(readAll(s.fd[1], n));
  // 10,000 bytes in frames of at most 4096 - 8 = 4088: 4088 + 4088 + 1824.
  REQUIRE(f.size() == 2 + 3 + 2);
  CHECK(f[2].payload.size() == 4088);
  CHECK(f[3].payload.size() == 4088);
  CHECK(f[4].payload.size() == 1824);
  std::size_t next = checkPublish(f, 0, big, 1, 4096);
  CHECK(next == 5);
  CHECK(checkPublish(f, next, empty, 1, 4096) == 7);
}

TEST_CASE("many publishes go out in order through a reader slower than the writer") {
  Pair s;
  int small = 4096;
  REQUIRE(::setsockopt(s.fd[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small) == 0);
  FrameBatch b;
  std::vector<Publish> ps;
  ps.reserve(300);
  for (int i = 0; i < 300; ++i) {
    ps.emplace_back(std::string(2000 + i, static_cast<char>('A' + i % 26)));
    ps.back().message_id = "id-" + std::to_string(i);
    ps.back().props.message_id = bytes(ps.back().message_id);
  }
  for (auto &p : ps) {
    REQUIRE(b.appendPublish(5, p.method, p.props, p.body, 131072) == AMQP_STATUS_OK);
  }
  std::size_t n = b.size();
  CHECK(n > 600000);
  std::string wire;
  std::thread reader([&] {
    // Slow: small reads with pauses, so the writer finds the socket full many times.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    char buf[8192];
    while (wire.size() < n && std::chrono::steady_clock::now() < deadline) {
      ssize_t r = ::read(s.fd[1], buf, sizeof buf);
      if (r <= 0) {
        break;
      }
      wire.append(buf, static_cast<std::size_t>(r));
      if (wire.size() % 7 == 0) {
        std::this_thread::sleep_for(std::chrono::microseconds(200));
      }
    }
  });
  int rc = b.write(s.fd[0], 5);
  reader.join();
  REQUIRE(rc == AMQP_STATUS_OK);
  REQUIRE(wire.size() == n);
  auto f = frames(wire);
  std::size_t i = 0;
  for (auto &p : ps) {
    i = checkPublish(f, i, p, 5, 131072);
  }
  CHECK(i == f.size());
}

TEST_CASE("a peer that neither reads nor sends for two heartbeat intervals: heartbeat timeout") {
  Pair s;
  int small = 4096;
  REQUIRE(::setsockopt(s.fd[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small) == 0);
  FrameBatch b;
  Publish p(std::string(1 << 20, 'z'));
  REQUIRE(b.appendPublish(1, p.method, p.props, p.body, 131072) == AMQP_STATUS_OK);
  auto t0 = std::chrono::steady_clock::now();
  CHECK(b.write(s.fd[0], 1) == AMQP_STATUS_HEARTBEAT_TIMEOUT);
  auto took = std::chrono::steady_clock::now() - t0;
  CHECK(took >= std::chrono::milliseconds(1900));
  CHECK(took < std::chrono::seconds(10));
  CHECK(b.empty());
}

TEST_CASE("a peer that sends (heartbeats) while it does not read: the write waits for it") {
  Pair s;
  int small = 4096;
  REQUIRE(::setsockopt(s.fd[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small) == 0);
  FrameBatch b;
  Publish p(std::string(256 * 1024, 'h'));
  REQUIRE(b.appendPublish(1, p.method, p.props, p.body, 131072) == AMQP_STATUS_OK);
  std::size_t n = b.size();
  std::string wire;
  std::thread peer([&] {
    // 3 s of heartbeat frames every 0.5 s without reading (3 heartbeat-1 windows of 2 s
    // would have timed out without them), then it reads everything.
    const char hb[8] = {AMQP_FRAME_HEARTBEAT, 0, 0, 0, 0, 0, 0, static_cast<char>(AMQP_FRAME_END)};
    for (int k = 0; k < 6; ++k) {
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
      REQUIRE(::write(s.fd[1], hb, sizeof hb) == 8);
    }
    wire = readAll(s.fd[1], n);
  });
  int rc = b.write(s.fd[0], 1);
  peer.join();
  CHECK(rc == AMQP_STATUS_OK);
  CHECK(wire.size() == n);
}

TEST_CASE("a closed peer: socket error, the batch is emptied") {
  Pair s;
  ::close(s.fd[1]);
  s.fd[1] = -1;
  FrameBatch b;
  Publish p("{}");
  REQUIRE(b.appendPublish(1, p.method, p.props, p.body, 131072) == AMQP_STATUS_OK);
  CHECK(b.write(s.fd[0], 0) == AMQP_STATUS_SOCKET_ERROR);
  CHECK(b.empty());
}

TEST_CASE("properties too large for one frame: the encoder's error, nothing appended") {
  FrameBatch b;
  Publish first("{}");
  REQUIRE(b.appendPublish(1, first.method, first.props, first.body, 4096) == AMQP_STATUS_OK);
  std::size_t before = b.size();
  Publish p("{}");
  p.header_value.assign(5000, 'v');
  p.entry.value.value.bytes = bytes(p.header_value);
  CHECK(b.appendPublish(1, p.method, p.props, p.body, 4096) < 0);
  CHECK(b.size() == before);
}
