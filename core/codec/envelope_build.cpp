// SPDX-License-Identifier: MIT
// Building fedmsg envelopes and the msg_id rules (year prefix, uuid4); see
// include/switchyard/fedmsg.hpp for the contract.
#include <sys/random.h>

#include <cerrno>
#include <cmath>
#include <memory>
#include <ctime>
#include <stdexcept>
#include <string>

#include <fcntl.h>
#include <unistd.h>

#include <fmt/format.h>

#include "switchyard/codec_stats.hpp"
#include "switchyard/fedmsg.hpp"
#include "switchyard/json.hpp"

namespace switchyard::fedmsg {
namespace {

std::string_view trimmed(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r' || s.front() == '\n')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) {
    s.remove_suffix(1);
  }
  return s;
}

/// Whether an object's JSON text has no members ("{}", "{ }").
bool isEmptyObjectText(std::string_view s) {
  s = trimmed(s);
  if (s.size() < 2 || s.front() != '{' || s.back() != '}') {
    return false;
  }
  return trimmed(s.substr(1, s.size() - 2)).empty();
}

}  // namespace

int currentUtcYear() noexcept {
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  return tm.tm_year + 1900;
}

namespace {

/// Fills @p buf from the kernel's CSPRNG: getrandom(2), else /dev/urandom. Never from a
/// predictable source: throws when neither is available.
void secureRandom(unsigned char *buf, std::size_t len) {
  std::size_t got = 0;
  while (got < len) {
    ssize_t n = ::getrandom(buf + got, len - got, 0);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      break;  // ENOSYS (old kernel) or a seccomp filter: try the device
    }
    got += static_cast<std::size_t>(n);
  }
  if (got == len) {
    return;
  }
  int fd = ::open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    throw std::runtime_error("no secure random source (getrandom and /dev/urandom failed)");
  }
  while (got < len) {
    ssize_t n = ::read(fd, buf + got, len - got);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      ::close(fd);
      throw std::runtime_error("reading /dev/urandom failed");
    }
    got += static_cast<std::size_t>(n);
  }
  ::close(fd);
}

/// Whether every float in @p v is finite and it nests at most @p max_depth levels (root =
/// 1): what validateJson() adds to json::parse()'s rules (NaN and Infinity are refused in
/// an envelope; parse() accepts them as Python does, and allows deeper nesting).
bool withinEnvelopeRules(const json::Value &v, std::size_t max_depth) {
  if (max_depth == 0) {
    return false;
  }
  switch (v.type) {
    case json::Value::Type::Float: return std::isfinite(v.number);
    case json::Value::Type::Array:
      for (const auto &e : v.items) {
        if (!withinEnvelopeRules(e, max_depth - 1)) {
          return false;
        }
      }
      return true;
    case json::Value::Type::Object:
      for (const auto &m : v.members) {
        if (!withinEnvelopeRules(m.value, max_depth - 1)) {
          return false;
        }
      }
      return true;
    default: return true;
  }
}

/// The body or headers text checked as validateJson() would, without parsing it again when
/// the message carries its parsed tree (parse once: the text was parsed on entry).
Result checkPart(std::string_view text, const std::shared_ptr<const json::Value> &tree, const Limits &limits,
                 bool require_object) {
  if (tree && text.size() <= limits.max_bytes && (!require_object || tree->isObject()) &&
      withinEnvelopeRules(*tree, limits.max_depth)) {
    return {};
  }
  return validateJson(text, limits, require_object);
}

}  // namespace

std::string uuid4() {
  unsigned char b[16];
  secureRandom(b, sizeof b);
  b[6] = static_cast<unsigned char>((b[6] & 0x0F) | 0x40);  // version 4
  b[8] = static_cast<unsigned char>((b[8] & 0x3F) | 0x80);  // RFC 4122 variant
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s;
  s.reserve(36);
  for (std::size_t k = 0; k < 16; ++k) {
    if (k == 4 || k == 6 || k == 8 || k == 10) {
      s += '-';
    }
    s += kHex[b[k] >> 4];
    s += kHex[b[k] & 0xF];
  }
  return s;
}

bool hasYearPrefix(std::string_view id) noexcept {
  if (id.size() < 5 || id[4] != '-') {
    return false;
  }
  for (std::size_t k = 0; k < 4; ++k) {
    if (id[k] < '0' || id[k] > '9') {
      return false;
    }
  }
  return true;
}

std::string_view stripYearPrefix(std::string_view id) noexcept {
  return id.size() > 5 && hasYearPrefix(id) ? id.substr(5) : id;
}

std::string normalizeMsgId(std::string_view id, int utc_year) {
  if (id.empty()) {
    return fmt::format("{}-{}", utc_year, uuid4());
  }
  if (hasYearPrefix(id)) {
    return std::string(id);
  }
  return fmt::format("{}-{}", utc_year, id);
}

std::string newMsgId() { return normalizeMsgId({}, currentUtcYear()); }

EnvelopeBuilder::EnvelopeBuilder(std::string username, Limits limits)
    : username_(std::move(username)), limits_(limits) {}

Result EnvelopeBuilder::build(const Message &msg, std::string &envelope) {
  if (msg.topic().empty()) {
    return Result::fail("missing_topic", "the message has no topic");
  }
  if (!isValidUtf8(msg.topic()) || !isValidUtf8(msg.id()) || !isValidUtf8(username_)) {
    return Result::fail("invalid_utf8", "topic, id or username is not valid UTF-8");
  }
  std::string_view body = msg.body().empty() ? std::string_view("null") : std::string_view(msg.body());
  // A body the decode checked on entry under these same rules is not read again.
  bool checked = !msg.body().empty() && msg.bodyChecked() && !msg.parsedBodyCache() &&
                 msg.body().size() <= limits_.max_bytes;
  if (auto r = checked ? Result{} : checkPart(body, msg.body().empty() ? nullptr : msg.parsedBodyCache(), limits_, false);
      !r.ok()) {
    return Result::fail("bad_body", "body: " + r.detail);
  }
  bool with_headers = !trimmed(msg.headers()).empty() && !isEmptyObjectText(msg.headers());
  if (with_headers) {
    if (auto r = checkPart(msg.headers(), msg.parsedHeadersCache(), limits_, true); !r.ok()) {
      return Result::fail("bad_headers", "headers: " + r.detail);
    }
  }
  std::int64_t ts = msg.timestampMs() > 0 ? msg.timestampMs() / 1000 : static_cast<std::int64_t>(std::time(nullptr));
  std::string id = normalizeMsgId(msg.id(), currentUtcYear());

  envelope.clear();
  envelope.reserve(body.size() + msg.headers().size() + msg.topic().size() + id.size() + 128);
  envelope += '{';
  if (with_headers) {
    envelope += "\"headers\":";
    envelope += trimmed(msg.headers());
    envelope += ',';
  }
  envelope += fmt::format("\"i\":{},\"msg\":", seq_ + 1);
  envelope += trimmed(body);
  envelope += ",\"msg_id\":";
  json::writeAsciiString(id, envelope);
  envelope += fmt::format(",\"timestamp\":{},\"topic\":", ts);
  json::writeAsciiString(msg.topic(), envelope);
  envelope += ",\"username\":";
  json::writeAsciiString(username_, envelope);
  envelope += '}';
  ++seq_;
  codec::countSerialisation(codec::SerialiseKind::Envelope);
  return {};
}

}  // namespace switchyard::fedmsg
