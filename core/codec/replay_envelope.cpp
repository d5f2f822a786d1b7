// SPDX-License-Identifier: MIT
//
// Numbering an envelope for replay (switchyard/replay.hpp, insertSeqId): `"seq_id":N` is
// written into the text without re-serialising the rest, so the bytes a signature was
// computed over stay as they were (a verifier that leaves `seq_id` out still verifies).
//
// The text is one the codec already accepted (zmq-pub numbers envelopes it decoded or
// built), so a light scan of the top level is enough: the keys, where each member starts
// and ends, and the separators in use. Text that is not an object gives nullopt.
#include <string>
#include <vector>

#include "switchyard/json.hpp"
#include "switchyard/replay.hpp"

namespace switchyard::replay {
namespace {

constexpr std::string_view kKey = "seq_id";
constexpr std::size_t kFail = std::string_view::npos;

struct TopMember {
  std::size_t key_begin = 0;    ///< the key's opening quote
  std::size_t key_end = 0;      ///< after the key's closing quote
  std::size_t value_begin = 0;
  std::size_t value_end = 0;    ///< after the value
  std::string key;              ///< decoded
};

bool isWs(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

std::size_t skipWs(std::string_view t, std::size_t i) {
  while (i < t.size() && isWs(t[i])) {
    ++i;
  }
  return i;
}

/// From an opening quote to after the closing one.
std::size_t skipString(std::string_view t, std::size_t i) {
  for (++i; i < t.size(); ++i) {
    if (t[i] == '\\') {
      ++i;
    } else if (t[i] == '"') {
      return i + 1;
    }
  }
  return kFail;
}

std::size_t skipValue(std::string_view t, std::size_t i) {
  if (i >= t.size()) {
    return kFail;
  }
  if (t[i] == '"') {
    return skipString(t, i);
  }
  if (t[i] == '{' || t[i] == '[') {
    std::size_t depth = 0;
    while (i < t.size()) {
      char c = t[i];
      if (c == '"') {
        i = skipString(t, i);
        if (i == kFail) {
          return kFail;
        }
        continue;
      }
      if (c == '{' || c == '[') {
        ++depth;
      } else if (c == '}' || c == ']') {
        if (--depth == 0) {
          return i + 1;
        }
      }
      ++i;
    }
    return kFail;
  }
  std::size_t b = i;
  while (i < t.size() && t[i] != ',' && t[i] != '}' && t[i] != ']' && !isWs(t[i])) {
    ++i;
  }
  return i == b ? kFail : i;
}

std::string decodeKey(std::string_view literal) {
  std::string_view inner = literal.substr(1, literal.size() - 2);
  if (inner.find('\\') == std::string_view::npos) {
    return std::string(inner);
  }
  auto v = json::parse(literal);
  return v && v->isString() ? v->text : std::string(inner);
}

/// The top-level members of the object @p t; false when it is no object.
bool scanTop(std::string_view t, std::vector<TopMember> &out, std::size_t &close) {
  std::size_t i = skipWs(t, 0);
  if (i >= t.size() || t[i] != '{') {
    return false;
  }
  i = skipWs(t, i + 1);
  if (i < t.size() && t[i] == '}') {
    close = i;
    return skipWs(t, i + 1) == t.size();
  }
  while (true) {
    if (i >= t.size() || t[i] != '"') {
      return false;
    }
    TopMember m;
    m.key_begin = i;
    i = skipString(t, i);
    if (i == kFail) {
      return false;
    }
    m.key_end = i;
    m.key = decodeKey(t.substr(m.key_begin, m.key_end - m.key_begin));
    i = skipWs(t, i);
    if (i >= t.size() || t[i] != ':') {
      return false;
    }
    i = skipWs(t, i + 1);
    m.value_begin = i;
    i = skipValue(t, i);
    if (i == kFail) {
      return false;
    }
    m.value_end = i;
    out.push_back(std::move(m));
    i = skipWs(t, i);
    if (i < t.size() && t[i] == ',') {
      i = skipWs(t, i + 1);
      continue;
    }
    if (i < t.size() && t[i] == '}') {
      close = i;
      return skipWs(t, i + 1) == t.size();
    }
    return false;
  }
}

}  // namespace

std::optional<std::string> insertSeqId(std::string_view envelope, std::int64_t seq_id) {
  std::vector<TopMember> members;
  std::size_t close = 0;
  if (!scanTop(envelope, members, close)) {
    return std::nullopt;
  }
  const std::string number = std::to_string(seq_id);
  std::string out;
  out.reserve(envelope.size() + kKey.size() + number.size() + 8);
  for (const TopMember &m : members) {
    if (m.key == kKey) {  // numbered before (e.g. by an upstream store): ours replaces it
      out.append(envelope.substr(0, m.value_begin));
      out.append(number);
      out.append(envelope.substr(m.value_end));
      return out;
    }
  }
  std::string_view colon = ":";
  std::string_view comma = ",";
  if (!members.empty()) {
    colon = envelope.substr(members[0].key_end, members[0].value_begin - members[0].key_end);
  }
  if (members.size() >= 2) {
    comma = envelope.substr(members[0].value_end, members[1].key_begin - members[0].value_end);
  }
  auto member = [&] {
    std::string m = "\"";
    m.append(kKey);
    m += '"';
    m.append(colon);
    m.append(number);
    return m;
  };
  for (const TopMember &m : members) {
    if (m.key > kKey) {
      out.append(envelope.substr(0, m.key_begin));
      out.append(member());
      out.append(comma);
      out.append(envelope.substr(m.key_begin));
      return out;
    }
  }
  std::size_t at = members.empty() ? close : members.back().value_end;
  out.append(envelope.substr(0, at));
  if (!members.empty()) {
    out.append(comma);
  }
  out.append(member());
  out.append(envelope.substr(at));
  return out;
}

}  // namespace switchyard::replay
