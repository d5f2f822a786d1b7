// SPDX-License-Identifier: MIT
// The fedmsg envelope decode and validateJson(); see include/switchyard/fedmsg.hpp for the
// contract and json_reader.hpp for the reading rules they share with json::parse().
#include <charconv>
#include <cmath>
#include <limits>
#include <memory>
#include <unordered_set>
#include <vector>

#include <fmt/format.h>

#include "json_reader.hpp"
#include "switchyard/codec_stats.hpp"
#include "switchyard/fedmsg.hpp"
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
  /// @p stream: the stream the reader reads when @p track_members (positions are taken
  /// from it), else null.
  Scanner(const rapidjson::MemoryStream *stream, std::size_t max_depth, bool track_members)
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
  std::size_t pos() const { return stream_ != nullptr ? stream_->Tell() : 0; }

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

  const rapidjson::MemoryStream *stream_;
  std::size_t max_depth_;
  bool track_;
  std::size_t depth_ = 0;
  std::size_t objects_ = 0;
  std::vector<std::unordered_set<std::string>> keys_;
  Raw *slot_ = nullptr;
  std::size_t value_start_ = 0;
};

Result checkSize(std::string_view text, const Limits &limits, const char *what) {
  auto r = codec::detail::checkSize(text, limits.max_bytes, what);
  return {std::move(r.reason), std::move(r.detail)};
}

/// Reads @p text with @p sc (the stream must be over @p text); NaN/Infinity are refused.
/// @p ms: the MemoryStream over @p text the Scanner takes positions from, or null.
Result parseWith(std::string_view text, rapidjson::MemoryStream *ms, Scanner &sc, bool require_object) {
  if (auto r = ms != nullptr ? codec::detail::readJsonFrom<0>(text, *ms, sc) : codec::detail::readJson<0>(text, sc);
      !r.ok()) {
    return {std::move(r.reason), std::move(r.detail)};
  }
  if (require_object && sc.root != Kind::Object) {
    return Result::fail("not_an_object", "the JSON value is not an object");
  }
  return {};
}

/// Fast path of parseEnvelope(): text that is already canonical (what fedmsg publishers
/// send) is valid JSON, ASCII, within the depth limit and free of
/// duplicate keys by construction, so its top-level members are taken from one pass of
/// codec::detail::scanCanonical() instead of RapidJSON's SAX reader, whose byte-at-a-time
/// string loop (the certificate alone is 2.3 KB) was most of the cost. Returns false,
/// leaving @p sc untouched, for any other text; that is parsed as before.
bool scanCanonicalEnvelope(std::string_view text, const Limits &limits, Scanner &sc,
                   std::vector<json::RawMember> &members) {
  json::ParseLimits pl;
  pl.max_bytes = limits.max_bytes;
  pl.max_depth = limits.max_depth;
  pl.max_integer_digits = std::numeric_limits<std::size_t>::max();  // the codec takes any length
  if (!codec::detail::scanCanonical(text, members, pl)) {
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

}  // namespace

Result validateJson(std::string_view text, const Limits &limits, bool require_object) {
  codec::countParse(codec::ParseKind::Validate);
  if (auto r = checkSize(text, limits, "the JSON text"); !r.ok()) {
    return r;
  }
  Scanner sc(nullptr, limits.max_depth, false);
  return parseWith(text, nullptr, sc, require_object);
}

Result parseEnvelope(std::string_view json, Envelope &out, const Limits &limits,
                     std::vector<json::RawMember> *members) {
  codec::countParse(codec::ParseKind::Envelope);
  if (auto r = checkSize(json, limits, "frame 1 (the envelope)"); !r.ok()) {
    return r;
  }
  // The slow path needs the reader's position (a MemoryStream: see json_reader.hpp).
  rapidjson::MemoryStream ms(json.data(), json.size());
  Scanner sc(&ms, limits.max_depth, true);
  std::vector<json::RawMember> local;
  if (!scanCanonicalEnvelope(json, limits, sc, members != nullptr ? *members : local)) {
    if (auto r = parseWith(json, &ms, sc, true); !r.ok()) {
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

namespace {

/// decode() and decodeEnvelope(): @p frame_topic null when there is no topic frame.
Result decodeWire(const std::string_view *frame_topic, std::string_view frame_json, Message &out,
                  const Limits &limits) {
  if (frame_topic != nullptr) {
    if (auto r = checkSize(*frame_topic, limits, "frame 0 (the topic)"); !r.ok()) {
      return r;
    }
  }
  if (auto r = checkSize(frame_json, limits, "frame 1 (the envelope)"); !r.ok()) {
    return r;
  }
  if (frame_topic != nullptr && !isValidUtf8(*frame_topic)) {
    return Result::fail("invalid_utf8", "frame 0 (the topic) is not valid UTF-8");
  }
  Result r;
  auto wire = parseWire(std::string(frame_json), r, limits);
  if (!wire) {
    return r;
  }
  const Envelope &env = wire->fields;
  if (frame_topic != nullptr && env.topic != *frame_topic) {
    return Result::fail("topic_mismatch", fmt::format("frame 0 \"{}\" differs from the envelope topic \"{}\"",
                                                      *frame_topic, env.topic));
  }
  Message m(env.topic, std::string(env.msg), env.headers.empty() ? std::string("{}") : std::string(env.headers),
            env.msg_id, env.timestamp_ms);
  // The headers travel parsed (every bridge stage reads them as a tree): their tree is
  // built here, as part of this one decode, from the text the decode just checked.
  if (!env.headers.empty() && env.headers != "{}") {
    if (auto tree = codec::detail::parseTree(env.headers, nullptr, {}, nullptr); tree && tree->isObject()) {
      m.cacheParsedHeaders(std::make_shared<const json::Value>(std::move(*tree)));
    }
  }
  m.markBodyChecked();  // the decode read it as `msg` under the envelope rules
  attach(m, std::move(wire));
  out = std::move(m);
  return {};
}

}  // namespace

Result decode(std::string_view frame_topic, std::string_view frame_json, Message &out,
              const Limits &limits) {
  return decodeWire(&frame_topic, frame_json, out, limits);
}

Result decodeEnvelope(std::string_view frame_json, Message &out, const Limits &limits) {
  return decodeWire(nullptr, frame_json, out, limits);
}

std::size_t WireEnvelope::bytes() const noexcept {
  return sizeof(WireEnvelope) + 32 /* control block and allocator headers */ + text.capacity() +
         fields.topic.capacity() + fields.msg_id.capacity() + fields.username.capacity() +
         members.capacity() * sizeof(json::RawMember);
}

std::shared_ptr<const WireEnvelope> parseWire(std::string text, Result &result, const Limits &limits) {
  auto wire = std::make_shared<WireEnvelope>();
  wire->text = std::move(text);
  wire->members.reserve(10);  // an envelope has 6 to 9 members: one allocation, not four
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

}  // namespace switchyard::fedmsg
