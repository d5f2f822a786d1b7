// SPDX-License-Identifier: MIT
//
// fedmsg's replay protocol, the wire side (switchyard/replay.hpp): the query a client
// sends (parseQuery, encodeQuery) and the error reply (errorFrame, isErrorFrame).
//
// A query is a JSON object with any subset of seq_id, seq_ids, seq_id_range, msg_id,
// msg_ids and time. Anything else is refused with a short reason, which the server sends
// back as `error: '<reason>'`: a client that made a mistake learns which one.
#include <cerrno>
#include <cstdlib>
#include <limits>
#include <new>
#include <string>

#include "switchyard/json.hpp"
#include "switchyard/replay.hpp"

namespace switchyard::replay {
namespace {

using json::Value;

constexpr const char *kKnownKeys = "seq_id, seq_ids, seq_id_range, msg_id, msg_ids, time";

/// A query frame is small: a list of a few thousand ids at most.
json::ParseLimits queryLimits() {
  json::ParseLimits l;
  l.max_bytes = 1u << 20;
  l.max_depth = 4;
  l.max_integer_digits = 40;
  return l;
}

/// The 64-bit value of an Integer; false when it is another type or does not fit.
bool toInt64(const Value &v, std::int64_t &out) {
  if (v.type != Value::Type::Integer) {
    return false;
  }
  errno = 0;
  char *end = nullptr;
  long long n = std::strtoll(v.text.c_str(), &end, 10);
  if (errno == ERANGE || end == v.text.c_str() || *end != '\0') {
    return false;
  }
  out = static_cast<std::int64_t>(n);
  return true;
}

/// A number (integer or float) as a double; false for any other type or NaN.
bool toDouble(const Value &v, double &out) {
  if (v.type == Value::Type::Float) {
    out = v.number;
  } else if (v.type == Value::Type::Integer) {
    out = std::strtod(v.text.c_str(), nullptr);
  } else {
    return false;
  }
  return out == out;  // NaN never compares: refused
}

bool parseIntList(const Value &v, std::vector<std::int64_t> &out) {
  if (!v.isArray()) {
    return false;
  }
  out.reserve(v.items.size());
  for (const Value &item : v.items) {
    std::int64_t n = 0;
    if (!toInt64(item, n)) {
      return false;
    }
    out.push_back(n);
  }
  return true;
}

std::optional<Query> parseOrThrow(std::string_view frame, std::string &error) {
  std::string reason;
  std::string detail;
  auto doc = json::parse(frame, &reason, queryLimits(), &detail);
  if (!doc) {
    error = "not JSON (" + reason + ")";
    return std::nullopt;
  }
  if (!doc->isObject()) {
    error = "not a JSON object";
    return std::nullopt;
  }
  if (doc->members.empty()) {
    error = std::string("empty query: give one of ") + kKnownKeys;
    return std::nullopt;
  }
  Query q;
  for (const json::Member &m : doc->members) {
    const std::string &k = m.key;
    const Value &v = m.value;
    if (k == "seq_id") {
      std::int64_t n = 0;
      if (!toInt64(v, n)) {
        error = "seq_id must be an integer";
        return std::nullopt;
      }
      q.seq_id = n;
    } else if (k == "seq_ids") {
      if (!parseIntList(v, q.seq_ids)) {
        error = "seq_ids must be a list of integers";
        return std::nullopt;
      }
    } else if (k == "seq_id_range") {
      std::vector<std::int64_t> r;
      if (!parseIntList(v, r) || r.size() != 2) {
        error = "seq_id_range must be a list of two integers";
        return std::nullopt;
      }
      q.seq_id_range = std::make_pair(r[0], r[1]);
    } else if (k == "msg_id") {
      if (!v.isString()) {
        error = "msg_id must be a string";
        return std::nullopt;
      }
      q.msg_id = v.text;
    } else if (k == "msg_ids") {
      bool ok = v.isArray();
      for (std::size_t i = 0; ok && i < v.items.size(); ++i) {
        ok = v.items[i].isString();
      }
      if (!ok) {
        error = "msg_ids must be a list of strings";
        return std::nullopt;
      }
      for (const Value &item : v.items) {
        q.msg_ids.push_back(item.text);
      }
    } else if (k == "time") {
      double a = 0;
      double b = 0;
      if (!v.isArray() || v.items.size() != 2 || !toDouble(v.items[0], a) || !toDouble(v.items[1], b)) {
        error = "time must be a list of two numbers (epoch seconds)";
        return std::nullopt;
      }
      q.time = std::make_pair(a, b);
    } else {
      // The key as JSON text, so that control characters or quotes cannot garble the reply.
      std::string shown;
      json::writeAsciiString(k, shown);
      error = "unknown key " + shown + " (known: " + kKnownKeys + ")";
      return std::nullopt;
    }
  }
  if (q.empty()) {
    error = std::string("empty query: give one of ") + kKnownKeys;
    return std::nullopt;
  }
  return q;
}

Value intList(const std::vector<std::int64_t> &v) {
  Value a = Value::array();
  for (std::int64_t n : v) {
    a.items.push_back(Value::fromInt(n));
  }
  return a;
}

}  // namespace

std::optional<Query> parseQuery(std::string_view frame, std::string &error) noexcept {
  try {
    return parseOrThrow(frame, error);
  } catch (const std::bad_alloc &) {
    error = "out of memory";
  } catch (...) {
    error = "cannot read the query";
  }
  return std::nullopt;
}

std::string encodeQuery(const Query &q) {
  Value o = Value::object();
  if (q.seq_id) {
    o.set("seq_id", Value::fromInt(*q.seq_id));
  }
  if (!q.seq_ids.empty()) {
    o.set("seq_ids", intList(q.seq_ids));
  }
  if (q.seq_id_range) {
    o.set("seq_id_range", intList({q.seq_id_range->first, q.seq_id_range->second}));
  }
  if (q.msg_id) {
    o.set("msg_id", Value::fromString(*q.msg_id));
  }
  if (!q.msg_ids.empty()) {
    Value a = Value::array();
    for (const std::string &id : q.msg_ids) {
      a.items.push_back(Value::fromString(id));
    }
    o.set("msg_ids", std::move(a));
  }
  if (q.time) {
    Value a = Value::array();
    a.items.push_back(Value::fromDouble(q.time->first));
    a.items.push_back(Value::fromDouble(q.time->second));
    o.set("time", std::move(a));
  }
  return json::canonical(o);
}

std::string errorFrame(std::string_view reason) {
  std::string out = "error: '";
  out.append(reason);
  out.push_back('\'');
  return out;
}

bool isErrorFrame(std::string_view frame, std::string *reason) noexcept {
  constexpr std::string_view kPrefix = "error: ";
  if (frame.substr(0, kPrefix.size()) != kPrefix) {
    return false;
  }
  if (reason != nullptr) {
    try {
      std::string_view rest = frame.substr(kPrefix.size());
      if (rest.size() >= 2 && rest.front() == '\'' && rest.back() == '\'') {
        rest = rest.substr(1, rest.size() - 2);
      }
      reason->assign(rest);
    } catch (...) {
      reason->clear();
    }
  }
  return true;
}

}  // namespace switchyard::replay
