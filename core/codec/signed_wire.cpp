// SPDX-License-Identifier: MIT
#include "switchyard/signed_wire.hpp"

#include <string>
#include <vector>

#include "switchyard/codec_stats.hpp"
#include "switchyard/json.hpp"

namespace switchyard::fedmsg {

namespace {

/// A key scanCanonicalObject() would list: printable ASCII without `"` or `\`.
bool plainKey(std::string_view key) noexcept {
  for (char c : key) {
    if (c < 0x20 || c > 0x7E || c == '"' || c == '\\') {
      return false;
    }
  }
  return true;
}

bool nonNegativeInteger(std::string_view t) noexcept {
  if (t.empty()) {
    return false;
  }
  for (char c : t) {
    if (c < '0' || c > '9') {
      return false;
    }
  }
  return true;
}

/// Reads what parseEnvelope() would read from the top-level members of a canonical text.
Result readFields(const std::vector<json::RawMember> &members, Envelope &f) {
  bool topic = false;
  bool msg_id = false;
  bool msg = false;
  for (const json::RawMember &m : members) {
    const char c = m.value.empty() ? '\0' : m.value.front();
    if (m.key == "topic") {
      if (c != '"') {
        return Result::fail("bad_topic", "\"topic\" is not a string");
      }
      f.topic = json::unescapeCanonicalString(m.value);
      topic = true;
    } else if (m.key == "msg_id") {
      if (c == 'n') {
        continue;
      }
      if (c != '"' || m.value.size() < 3) {
        return Result::fail("bad_msg_id", "\"msg_id\" is not a non-empty string");
      }
      f.msg_id = json::unescapeCanonicalString(m.value);
      msg_id = true;
    } else if (m.key == "msg") {
      f.msg = m.value;
      msg = true;
    } else if (m.key == "headers") {
      if (c == '{') {
        f.headers = m.value;
      } else if (c != 'n') {
        return Result::fail("bad_headers", "\"headers\" is not an object");
      }
    } else if (m.key == "username") {
      f.has_username = c == '"';
      if (f.has_username) {
        f.username = json::unescapeCanonicalString(m.value);
      }
    } else if (m.key == "i") {
      f.i = nonNegativeInteger(m.value) ? m.value : std::string_view();
    } else if (m.key == "timestamp") {
      if (c == '-' || (c >= '0' && c <= '9')) {
        f.timestamp = m.value;
      } else if (c != 'n') {
        return Result::fail("bad_timestamp", "\"timestamp\" is not a number");
      }
    }
  }
  if (!topic || f.topic.empty()) {
    return Result::fail("missing_topic", "the envelope has no \"topic\"");
  }
  if (!msg_id) {
    return Result::fail("missing_msg_id", "the envelope has no \"msg_id\"");
  }
  if (!msg) {
    return Result::fail("missing_msg", "the envelope has no \"msg\"");
  }
  return {};
}

/// Where one member landed in the text: `"key"` starts at member, the value at value and
/// ends at end.
struct Offsets {
  std::size_t member = 0;
  std::size_t value = 0;
  std::size_t end = 0;
};

void appendMembers(std::span<const MemberText> members, std::string &out, std::vector<Offsets> *offsets) {
  out += '{';
  bool first = true;
  for (const MemberText &m : members) {
    if (!first) {
      out += ',';
    }
    first = false;
    Offsets o;
    o.member = out.size();
    json::writeAsciiString(m.key, out);
    out += ':';
    o.value = out.size();
    out.append(m.value);
    o.end = out.size();
    if (offsets != nullptr) {
      offsets->push_back(o);
    }
  }
  out += '}';
}

}  // namespace

void appendMembers(std::span<const MemberText> members, std::string &out) {
  appendMembers(members, out, nullptr);
}

std::shared_ptr<const WireEnvelope> assembleWire(std::span<const MemberText> members, std::int64_t timestamp_ms,
                                                 Result &result) {
  auto wire = std::make_shared<WireEnvelope>();
  std::size_t size = 2;
  bool plain = true;
  for (const MemberText &m : members) {
    size += m.key.size() + m.value.size() + 4;
    plain = plain && plainKey(m.key);
  }
  wire->text.reserve(size);
  std::vector<Offsets> offsets;
  offsets.reserve(members.size());
  appendMembers(members, wire->text, &offsets);
  std::vector<json::RawMember> found;
  found.reserve(members.size());
  std::string_view t = wire->text;
  for (const Offsets &o : offsets) {
    found.push_back({t.substr(o.member + 1, o.value - o.member - 3), t.substr(o.value, o.end - o.value),
                     t.substr(o.member, o.end - o.member)});
  }
  wire->fields.timestamp_ms = timestamp_ms;
  result = readFields(found, wire->fields);
  if (!result.ok()) {
    return nullptr;
  }
  if (plain) {  // as parseWire(): members only for what scanCanonicalObject() lists
    wire->members = std::move(found);
  }
  codec::countSerialisation(codec::SerialiseKind::Envelope);  // the envelope a stage sends
  return wire;
}

}  // namespace switchyard::fedmsg
