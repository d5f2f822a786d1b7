// SPDX-License-Identifier: MIT
// The fedmsg envelope codec; see include/switchyard/fedmsg.hpp for the contract.
#include "switchyard/fedmsg.hpp"

#include <sys/random.h>

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <ctime>
#include <limits>
#include <random>
#include <unordered_set>
#include <vector>

#include <fmt/format.h>
#include <rapidjson/error/en.h>
#include <rapidjson/memorystream.h>
#include <rapidjson/reader.h>

#include "switchyard/json.hpp"

namespace switchyard::fedmsg {
namespace {

enum class Kind : std::uint8_t { None, String, Number, Bool, Null, Object, Array };

/// Where a top-level value of interest starts and ends in the text.
struct Raw {
  std::size_t start = 0;
  std::size_t end = 0;
  Kind kind = Kind::None;
  std::string str;  // decoded, for strings
  [[nodiscard]] bool set() const { return kind != Kind::None; }
};

/// SAX handler: enforces depth and duplicate-key rules and records the raw extent of the
/// top-level members an envelope needs. Aborting (returning false) sets `bad`.
class Scanner : public rapidjson::BaseReaderHandler<rapidjson::UTF8<>, Scanner> {
 public:
  Scanner(const rapidjson::MemoryStream &stream, std::size_t max_depth, bool track_members)
      : stream_(stream), max_depth_(max_depth), track_(track_members) {}

  const char *bad = nullptr;  // refusal reason set by the handler
  std::string bad_detail;
  Raw topic, msg, msg_id, headers, username, seq, timestamp;
  Kind root = Kind::None;

  bool Null() { return scalar(Kind::Null); }
  bool Bool(bool) { return scalar(Kind::Bool); }
  bool Int(int) { return scalar(Kind::Number); }
  bool Uint(unsigned) { return scalar(Kind::Number); }
  bool Int64(std::int64_t) { return scalar(Kind::Number); }
  bool Uint64(std::uint64_t) { return scalar(Kind::Number); }
  bool Double(double) { return scalar(Kind::Number); }
  bool RawNumber(const char *, rapidjson::SizeType, bool) { return scalar(Kind::Number); }
  bool String(const char *s, rapidjson::SizeType n, bool) { return scalar(Kind::String, s, n); }

  /// The slot of a top-level key the envelope needs, or null.
  Raw *slotFor(std::string_view key) {
    if (key == "topic") return &topic;
    if (key == "msg") return &msg;
    if (key == "msg_id") return &msg_id;
    if (key == "headers") return &headers;
    if (key == "username") return &username;
    if (key == "i") return &seq;
    if (key == "timestamp") return &timestamp;
    return nullptr;
  }

  bool Key(const char *s, rapidjson::SizeType n, bool) {
    std::string key(s, n);
    auto &keys = keys_[objects_ - 1];
    if (!keys.insert(key).second) {
      bad = "duplicate_keys";
      bad_detail = fmt::format("duplicate key \"{}\" at depth {}", key, depth_);
      return false;
    }
    if (depth_ == 1 && track_) {
      slot_ = slotFor(key);
      value_start_ = pos();
    }
    return true;
  }
  bool StartObject() { return open(Kind::Object); }
  bool StartArray() { return open(Kind::Array); }
  bool EndObject(rapidjson::SizeType) {
    --objects_;
    return close(Kind::Object);
  }
  bool EndArray(rapidjson::SizeType) { return close(Kind::Array); }

 private:
  std::size_t pos() const { return stream_.Tell(); }

  bool scalar(Kind k, const char *s = nullptr, rapidjson::SizeType n = 0) {
    if (depth_ == 0) {
      root = k;
      return true;
    }
    if (depth_ == 1 && slot_ != nullptr) {
      slot_->start = value_start_;
      slot_->end = pos();
      slot_->kind = k;
      if (k == Kind::String) {
        slot_->str.assign(s, n);
      }
    }
    return true;
  }
  bool open(Kind k) {
    if (depth_ == 0) {
      root = k;
    }
    if (depth_ + 1 > max_depth_) {
      bad = "too_deep";
      bad_detail = fmt::format("nesting deeper than {} levels", max_depth_);
      return false;
    }
    ++depth_;
    if (k == Kind::Object) {
      // Reuse the sets of earlier objects at this nesting level: clear() keeps buckets.
      if (objects_ == keys_.size()) {
        keys_.emplace_back();
      } else {
        keys_[objects_].clear();
      }
      ++objects_;
    }
    return true;
  }
  bool close(Kind k) {
    --depth_;
    if (depth_ == 1 && slot_ != nullptr) {
      // RapidJSON's iterative parser calls EndObject/EndArray before it takes the
      // closing bracket from the stream (reader.h, IterativeParsing*FinishState).
      slot_->start = value_start_;
      slot_->end = pos() + 1;
      slot_->kind = k;
    }
    return true;
  }

  const rapidjson::MemoryStream &stream_;
  std::size_t max_depth_;
  bool track_;
  std::size_t depth_ = 0;
  std::size_t objects_ = 0;
  std::vector<std::unordered_set<std::string>> keys_;
  Raw *slot_ = nullptr;
  std::size_t value_start_ = 0;
};

// Text that isValidUtf8() accepted is parsed without RapidJSON's own encoding check: it
// validates the raw bytes of strings only, one code point at a time, and was most of the
// cost of decoding large envelopes. The two agree (both are RFC 3629, see
// tests/unit/test_utf8.cpp), and bytes >= 0x80 outside strings are syntax errors either way.
// Text it refuses is parsed WITH the check, exactly as before, so that the reason and the
// detail (offset) of every refusal stay what they were (e.g. a duplicate key that comes
// before the bad byte is still reported as duplicate_keys).
constexpr unsigned kParseFlagsTrusted = rapidjson::kParseIterativeFlag | rapidjson::kParseNumbersAsStringsFlag;
constexpr unsigned kParseFlags = kParseFlagsTrusted | rapidjson::kParseValidateEncodingFlag;

Result checkSize(std::string_view text, const Limits &limits, const char *what) {
  if (text.size() > limits.max_bytes) {
    return Result::fail("oversize", fmt::format("{} has {} bytes, more than the limit of {}", what,
                                                text.size(), limits.max_bytes));
  }
  return {};
}

/// Parses @p text with @p sc. The stream must have been built over @p text.
Result parseWith(std::string_view text, rapidjson::MemoryStream &ms, Scanner &sc, bool require_object) {
  // RapidJSON treats NUL as the end of input; a NUL byte is never legal in JSON text.
  if (std::memchr(text.data(), '\0', text.size()) != nullptr) {
    if (!isValidUtf8(text)) {
      return Result::fail("invalid_utf8", "not valid UTF-8");
    }
    return Result::fail("invalid_json", "NUL byte in JSON text");
  }
  const bool valid_utf8 = isValidUtf8(text);
  rapidjson::Reader reader;
  rapidjson::ParseResult r = valid_utf8 ? reader.Parse<kParseFlagsTrusted>(ms, sc) : reader.Parse<kParseFlags>(ms, sc);
  if (sc.bad != nullptr) {
    return Result::fail(sc.bad, sc.bad_detail);
  }
  if (r.IsError()) {
    if (r.Code() == rapidjson::kParseErrorStringInvalidEncoding || !valid_utf8) {
      return Result::fail("invalid_utf8", fmt::format("not valid UTF-8 (near offset {})", r.Offset()));
    }
    return Result::fail("invalid_json", fmt::format("invalid JSON at offset {}: {}", r.Offset(),
                                                    rapidjson::GetParseError_En(r.Code())));
  }
  if (require_object && sc.root != Kind::Object) {
    return Result::fail("not_an_object", "the JSON value is not an object");
  }
  return {};
}

/// Fast path of parseEnvelope(): text that is already canonical (what fedmsg publishers
/// send, interop-spec 2.2) is valid JSON, ASCII, within the depth limit and free of
/// duplicate keys by construction, so its top-level members are taken from one pass of
/// json::scanCanonicalObject() instead of RapidJSON's SAX reader, whose byte-at-a-time
/// string loop (the certificate alone is 2.3 KB) was most of the cost. Returns false,
/// leaving @p sc untouched, for any other text; that is parsed as before.
bool scanCanonical(std::string_view text, const Limits &limits, Scanner &sc,
                   std::vector<json::RawMember> &members) {
  json::ParseLimits pl;
  pl.max_bytes = limits.max_bytes;
  pl.max_depth = limits.max_depth;
  pl.max_integer_digits = std::numeric_limits<std::size_t>::max();  // the codec takes any length
  if (!json::scanCanonicalObject(text, members, pl)) {
    members.clear();
    return false;
  }
  sc.root = Kind::Object;
  for (const json::RawMember &m : members) {
    Raw *slot = sc.slotFor(m.key);
    if (slot == nullptr) {
      continue;
    }
    slot->start = static_cast<std::size_t>(m.value.data() - text.data());
    slot->end = slot->start + m.value.size();
    switch (m.value.front()) {
      case '"':
        slot->kind = Kind::String;
        slot->str = json::unescapeCanonicalString(m.value);
        break;
      case '{': slot->kind = Kind::Object; break;
      case '[': slot->kind = Kind::Array; break;
      case 'n': slot->kind = Kind::Null; break;
      case 't':
      case 'f': slot->kind = Kind::Bool; break;
      default: slot->kind = Kind::Number; break;
    }
  }
  return true;
}

std::string_view rawText(std::string_view text, const Raw &r) {
  std::string_view v = text.substr(r.start, r.end - r.start);
  // The recorded start is just after the key's closing quote: skip blanks and the colon.
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t' || v.front() == '\r' ||
                        v.front() == '\n' || v.front() == ':')) {
    v.remove_prefix(1);
  }
  return v;
}

bool isInteger(std::string_view num) {
  return num.find_first_of(".eE") == std::string_view::npos;
}

/// Seconds (integer or float text) to milliseconds; 0 when out of range.
std::int64_t secondsToMs(std::string_view num) {
  if (isInteger(num)) {
    std::int64_t s = 0;
    auto [p, ec] = std::from_chars(num.data(), num.data() + num.size(), s);
    if (ec == std::errc() && p == num.data() + num.size() && s > -9223372036854775LL &&
        s < 9223372036854775LL) {
      return s * 1000;
    }
    return 0;
  }
  double d = 0;
  auto [p, ec] = std::from_chars(num.data(), num.data() + num.size(), d);
  if (ec != std::errc() || !std::isfinite(d) || std::fabs(d) > 9.0e15) {
    return 0;
  }
  return static_cast<std::int64_t>(std::llround(d * 1000.0));
}

void appendHex4(std::string &out, unsigned v) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += "\\u";
  out += kHex[(v >> 12) & 0xF];
  out += kHex[(v >> 8) & 0xF];
  out += kHex[(v >> 4) & 0xF];
  out += kHex[v & 0xF];
}

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

bool isValidUtf8(std::string_view s) noexcept {
  const auto *p = reinterpret_cast<const unsigned char *>(s.data());
  const auto *end = p + s.size();
  constexpr std::uint64_t kHighBits = 0x8080808080808080ULL;
  while (p < end) {
    // ASCII fast path, 16 then 8 bytes at a time (memcpy: unaligned loads without UB).
    while (end - p >= 16) {
      std::uint64_t a = 0;
      std::uint64_t b = 0;
      std::memcpy(&a, p, 8);
      std::memcpy(&b, p + 8, 8);
      if (((a | b) & kHighBits) != 0) {
        break;
      }
      p += 16;
    }
    if (end - p >= 8) {
      std::uint64_t a = 0;
      std::memcpy(&a, p, 8);
      if ((a & kHighBits) == 0) {
        p += 8;
        continue;
      }
    }
    if (p == end) {  // the 16-byte steps may have reached the end: never read past it
      break;
    }
    // One byte or one multi-byte sequence.
    unsigned c = *p;
    if (c < 0x80) {
      ++p;
      continue;
    }
    std::size_t n;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
      n = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
      n = 2;
      if (c == 0xE0) lo = 0xA0;  // overlong
      if (c == 0xED) hi = 0x9F;  // surrogates
    } else if (c >= 0xF0 && c <= 0xF4) {
      n = 3;
      if (c == 0xF0) lo = 0x90;  // overlong
      if (c == 0xF4) hi = 0x8F;  // > U+10FFFF
    } else {
      return false;  // continuation byte, 0xC0/0xC1 (overlong), 0xF5..0xFF
    }
    if (static_cast<std::size_t>(end - p) <= n) {
      return false;  // truncated
    }
    if (p[1] < lo || p[1] > hi) {
      return false;
    }
    for (std::size_t k = 2; k <= n; ++k) {
      if (p[k] < 0x80 || p[k] > 0xBF) {
        return false;
      }
    }
    p += n + 1;
  }
  return true;
}

Result validateJson(std::string_view text, const Limits &limits, bool require_object) {
  if (auto r = checkSize(text, limits, "the JSON text"); !r.ok()) {
    return r;
  }
  rapidjson::MemoryStream ms(text.data(), text.size());
  Scanner sc(ms, limits.max_depth, false);
  return parseWith(text, ms, sc, require_object);
}

Result parseEnvelope(std::string_view json, Envelope &out, const Limits &limits,
                     std::vector<json::RawMember> *members) {
  if (auto r = checkSize(json, limits, "frame 1 (the envelope)"); !r.ok()) {
    return r;
  }
  rapidjson::MemoryStream ms(json.data(), json.size());
  Scanner sc(ms, limits.max_depth, true);
  std::vector<json::RawMember> local;
  if (!scanCanonical(json, limits, sc, members != nullptr ? *members : local)) {
    if (auto r = parseWith(json, ms, sc, true); !r.ok()) {
      return r;
    }
  }
  if (!sc.topic.set()) {
    return Result::fail("missing_topic", "the envelope has no \"topic\"");
  }
  if (sc.topic.kind != Kind::String) {
    return Result::fail("bad_topic", "\"topic\" is not a string");
  }
  if (sc.topic.str.empty()) {
    return Result::fail("missing_topic", "\"topic\" is empty");
  }
  if (!sc.msg_id.set() || sc.msg_id.kind == Kind::Null) {
    return Result::fail("missing_msg_id", "the envelope has no \"msg_id\"");
  }
  if (sc.msg_id.kind != Kind::String || sc.msg_id.str.empty()) {
    return Result::fail("bad_msg_id", "\"msg_id\" is not a non-empty string");
  }
  if (!sc.msg.set()) {
    return Result::fail("missing_msg", "the envelope has no \"msg\"");
  }
  if (sc.headers.set() && sc.headers.kind != Kind::Object && sc.headers.kind != Kind::Null) {
    return Result::fail("bad_headers", "\"headers\" is not an object");
  }
  if (sc.timestamp.set() && sc.timestamp.kind != Kind::Number && sc.timestamp.kind != Kind::Null) {
    return Result::fail("bad_timestamp", "\"timestamp\" is not a number");
  }
  out.topic = std::move(sc.topic.str);
  out.msg_id = std::move(sc.msg_id.str);
  out.msg = rawText(json, sc.msg);
  out.headers = sc.headers.kind == Kind::Object ? rawText(json, sc.headers) : std::string_view();
  out.has_username = sc.username.kind == Kind::String;
  out.username = out.has_username ? std::move(sc.username.str) : std::string();
  out.i = {};
  if (sc.seq.kind == Kind::Number) {
    std::string_view t = rawText(json, sc.seq);
    if (isInteger(t) && !t.empty() && t.front() != '-') {
      out.i = t;
    }
  }
  out.timestamp = sc.timestamp.kind == Kind::Number ? rawText(json, sc.timestamp) : std::string_view();
  out.timestamp_ms = out.timestamp.empty() ? 0 : secondsToMs(out.timestamp);
  return {};
}

Result decode(std::string_view frame_topic, std::string_view frame_json, Message &out,
              const Limits &limits) {
  if (auto r = checkSize(frame_topic, limits, "frame 0 (the topic)"); !r.ok()) {
    return r;
  }
  if (auto r = checkSize(frame_json, limits, "frame 1 (the envelope)"); !r.ok()) {
    return r;
  }
  if (!isValidUtf8(frame_topic)) {
    return Result::fail("invalid_utf8", "frame 0 (the topic) is not valid UTF-8");
  }
  Result r;
  auto wire = parseWire(std::string(frame_json), r, limits);
  if (!wire) {
    return r;
  }
  const Envelope &env = wire->fields;
  if (env.topic != frame_topic) {
    return Result::fail("topic_mismatch", fmt::format("frame 0 \"{}\" differs from the envelope topic \"{}\"",
                                                      frame_topic, env.topic));
  }
  Message m(env.topic, std::string(env.msg), env.headers.empty() ? std::string("{}") : std::string(env.headers),
            env.msg_id, env.timestamp_ms);
  attach(m, std::move(wire));
  out = std::move(m);
  return {};
}

std::size_t WireEnvelope::bytes() const noexcept {
  return sizeof(WireEnvelope) + 32 /* control block and allocator headers */ + text.capacity() +
         fields.topic.capacity() + fields.msg_id.capacity() + fields.username.capacity() +
         members.capacity() * sizeof(json::RawMember);
}

std::shared_ptr<const WireEnvelope> parseWire(std::string text, Result &result, const Limits &limits) {
  auto wire = std::make_shared<WireEnvelope>();
  wire->text = std::move(text);
  result = parseEnvelope(wire->text, wire->fields, limits, &wire->members);
  if (!result.ok()) {
    return nullptr;
  }
  return wire;
}

void attach(Message &msg, std::shared_ptr<const WireEnvelope> wire) {
  std::size_t bytes = wire ? wire->bytes() : 0;
  msg.setEnvelope(std::move(wire), bytes);
}

Result decodeFrames(std::span<const std::string_view> frames, Message &out, const Limits &limits) {
  if (frames.size() != 2) {
    return Result::fail("wrong_frame_count", fmt::format("{} frame(s) instead of 2", frames.size()));
  }
  return decode(frames[0], frames[1], out, limits);
}

void appendAsciiJsonString(std::string &out, std::string_view utf8) {
  out += '"';
  const auto *p = reinterpret_cast<const unsigned char *>(utf8.data());
  const auto *end = p + utf8.size();
  while (p < end) {
    unsigned c = *p;
    if (c < 0x80) {
      ++p;
      switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\b': out += "\\b"; break;
        case '\f': out += "\\f"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        default:
          if (c < 0x20 || c == 0x7F) {
            appendHex4(out, c);
          } else {
            out += static_cast<char>(c);
          }
      }
      continue;
    }
    std::size_t n = c >= 0xF0 ? 3 : c >= 0xE0 ? 2 : 1;
    if (static_cast<std::size_t>(end - p) <= n) {
      break;  // truncated sequence: callers pass valid UTF-8
    }
    unsigned cp = c & (n == 1 ? 0x1F : n == 2 ? 0x0F : 0x07);
    for (std::size_t k = 1; k <= n; ++k) {
      cp = (cp << 6) | (p[k] & 0x3F);
    }
    p += n + 1;
    if (cp >= 0x10000) {
      cp -= 0x10000;
      appendHex4(out, 0xD800 + (cp >> 10));
      appendHex4(out, 0xDC00 + (cp & 0x3FF));
    } else {
      appendHex4(out, cp);
    }
  }
  out += '"';
}

int currentUtcYear() noexcept {
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  return tm.tm_year + 1900;
}

std::string uuid4() {
  unsigned char b[16];
  std::size_t got = 0;
  while (got < sizeof b) {
    ssize_t n = ::getrandom(b + got, sizeof b - got, 0);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      // No getrandom: fall back to the standard library's entropy source.
      std::random_device rd;
      for (auto &x : b) {
        x = static_cast<unsigned char>(rd());
      }
      got = sizeof b;
      break;
    }
    got += static_cast<std::size_t>(n);
  }
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
  if (auto r = validateJson(body, limits_, false); !r.ok()) {
    return Result::fail("bad_body", "body: " + r.detail);
  }
  bool with_headers = !trimmed(msg.headers()).empty() && !isEmptyObjectText(msg.headers());
  if (with_headers) {
    if (auto r = validateJson(msg.headers(), limits_, true); !r.ok()) {
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
  appendAsciiJsonString(envelope, id);
  envelope += fmt::format(",\"timestamp\":{},\"topic\":", ts);
  appendAsciiJsonString(envelope, msg.topic());
  envelope += ",\"username\":";
  appendAsciiJsonString(envelope, username_);
  envelope += '}';
  ++seq_;
  return {};
}

}  // namespace switchyard::fedmsg
