// SPDX-License-Identifier: MIT
//
// Canonical JSON (fedmsg signing form), see switchyard/json.hpp and docs/codec.md.
#include "switchyard/json.hpp"

#include "json_reader.hpp"
#include "switchyard/codec_stats.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>
#include <system_error>
#include <utility>


namespace switchyard::json {

// ---------------------------------------------------------------------------------------
// Value

Value Value::fromBool(bool b) {
  Value v;
  v.type = Type::Bool;
  v.boolean = b;
  return v;
}

Value Value::fromString(std::string s) {
  Value v;
  v.type = Type::String;
  v.text = std::move(s);
  return v;
}

Value Value::fromIntegerText(std::string_view digits) {
  Value v;
  v.type = Type::Integer;
  // Python's int("-0") is 0, printed without a sign.
  if (digits == "-0") {
    digits = "0";
  }
  v.text.assign(digits);
  return v;
}

Value Value::fromInt(std::int64_t i) {
  Value v;
  v.type = Type::Integer;
  v.text = std::to_string(i);
  return v;
}

Value Value::fromDouble(double d) {
  Value v;
  v.type = Type::Float;
  v.number = d;
  return v;
}

Value Value::array() {
  Value v;
  v.type = Type::Array;
  return v;
}

Value Value::object() {
  Value v;
  v.type = Type::Object;
  return v;
}

namespace {

bool keyLess(const Member &m, std::string_view key) {
  // std::string_view compares bytes as unsigned char: UTF-8 byte order == code-point order.
  return std::string_view(m.key) < key;
}

}  // namespace

const Value *Value::find(std::string_view key) const noexcept {
  if (type != Type::Object) {
    return nullptr;
  }
  auto it = std::lower_bound(members.begin(), members.end(), key, keyLess);
  if (it == members.end() || it->key != key) {
    return nullptr;
  }
  return &it->value;
}

Value *Value::find(std::string_view key) noexcept {
  return const_cast<Value *>(std::as_const(*this).find(key));
}

std::optional<std::string_view> Value::findString(std::string_view key) const noexcept {
  const Value *v = find(key);
  if (v == nullptr || v->type != Type::String) {
    return std::nullopt;
  }
  return std::string_view(v->text);
}

void Value::set(std::string key, Value v) {
  auto it = std::lower_bound(members.begin(), members.end(), std::string_view(key), keyLess);
  if (it != members.end() && it->key == key) {
    it->value = std::move(v);
    return;
  }
  members.insert(it, Member{std::move(key), std::move(v)});
}

bool Value::erase(std::string_view key) {
  auto it = std::lower_bound(members.begin(), members.end(), key, keyLess);
  if (it == members.end() || it->key != key) {
    return false;
  }
  members.erase(it);
  return true;
}

// ---------------------------------------------------------------------------------------
// Parsing

namespace {

/// Decides the value of a float token that std::from_chars reported out of range: the
/// decimal exponent of its first significant digit tells overflow (Python: inf) from
/// underflow (Python: 0.0), both keeping the sign.
double outOfRangeValue(std::string_view tok) {
  bool negative = !tok.empty() && tok.front() == '-';
  if (negative) {
    tok.remove_prefix(1);
  }
  std::size_t epos = tok.find_first_of("eE");
  std::string_view mant = tok.substr(0, epos);
  long long exp = 0;
  if (epos != std::string_view::npos) {
    std::string_view e = tok.substr(epos + 1);
    bool eneg = false;
    if (!e.empty() && (e.front() == '+' || e.front() == '-')) {
      eneg = e.front() == '-';
      e.remove_prefix(1);
    }
    for (char c : e) {
      exp = std::min<long long>(exp * 10 + (c - '0'), 1'000'000'000LL);  // clamp: only the sign matters
    }
    if (eneg) {
      exp = -exp;
    }
  }
  std::size_t dot = mant.find('.');
  std::string_view ip = mant.substr(0, dot);
  std::string_view fp = dot == std::string_view::npos ? std::string_view() : mant.substr(dot + 1);
  long long magnitude = 0;
  bool found = false;
  for (std::size_t i = 0; i < ip.size(); ++i) {
    if (ip[i] != '0') {
      magnitude = static_cast<long long>(ip.size() - i - 1) + exp;
      found = true;
      break;
    }
  }
  if (!found) {
    for (std::size_t j = 0; j < fp.size(); ++j) {
      if (fp[j] != '0') {
        magnitude = -static_cast<long long>(j + 1) + exp;
        found = true;
        break;
      }
    }
  }
  double r = (found && magnitude > 0) ? std::numeric_limits<double>::infinity() : 0.0;
  return negative ? -r : r;
}

class TreeBuilder : public rapidjson::BaseReaderHandler<rapidjson::UTF8<>, TreeBuilder> {
 public:
  explicit TreeBuilder(const ParseLimits &limits) : limits_(limits) {}

  bool Null() { return add(Value()); }
  bool Bool(bool b) { return add(Value::fromBool(b)); }
  // Never called with kParseNumbersAsStringsFlag; refuse rather than guess.
  bool Int(int) { return fail("invalid_json"); }
  bool Uint(unsigned) { return fail("invalid_json"); }
  bool Int64(std::int64_t) { return fail("invalid_json"); }
  bool Uint64(std::uint64_t) { return fail("invalid_json"); }
  bool Double(double) { return fail("invalid_json"); }

  bool RawNumber(const char *str, rapidjson::SizeType len, bool) {
    std::string_view tok(str, len);
    // RapidJSON also accepts "Inf" and "-NaN"; Python accepts exactly these three.
    if (tok == "NaN") {
      return add(Value::fromDouble(std::numeric_limits<double>::quiet_NaN()));
    }
    if (tok == "Infinity") {
      return add(Value::fromDouble(std::numeric_limits<double>::infinity()));
    }
    if (tok == "-Infinity") {
      return add(Value::fromDouble(-std::numeric_limits<double>::infinity()));
    }
    if (tok.empty() || (tok.front() != '-' && (tok.front() < '0' || tok.front() > '9'))) {
      return fail("invalid_json");
    }
    if (tok.find_first_of(".eE") == std::string_view::npos) {
      std::string_view body = tok.front() == '-' ? tok.substr(1) : tok;
      if (body.empty() || !std::all_of(body.begin(), body.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        return fail("invalid_json");  // "-Inf", "-NaN": RapidJSON-only spellings
      }
      if (body.size() > limits_.max_integer_digits) {
        return fail("invalid_json");
      }
      return add(Value::fromIntegerText(tok));
    }
    double d = 0.0;
    auto res = std::from_chars(tok.data(), tok.data() + tok.size(), d);
    if (res.ec == std::errc::result_out_of_range) {
      d = outOfRangeValue(tok);
    } else if (res.ec != std::errc() || res.ptr != tok.data() + tok.size()) {
      return fail("invalid_json");
    }
    return add(Value::fromDouble(d));
  }

  bool String(const char *str, rapidjson::SizeType len, bool) {
    return add(Value::fromString(std::string(str, len)));
  }

  bool StartObject() { return open(Value::object()); }
  bool Key(const char *str, rapidjson::SizeType len, bool) {
    stack_.back().members.push_back(Member{std::string(str, len), Value()});
    return true;
  }
  bool EndObject(rapidjson::SizeType) {
    Value v = std::move(stack_.back());
    stack_.pop_back();
    auto &m = v.members;
    std::sort(m.begin(), m.end(),
              [](const Member &a, const Member &b) { return a.key < b.key; });
    for (std::size_t i = 1; i < m.size(); ++i) {
      if (m[i - 1].key == m[i].key) {
        return fail("duplicate_keys");
      }
    }
    return add(std::move(v));
  }
  bool StartArray() { return open(Value::array()); }
  bool EndArray(rapidjson::SizeType) {
    Value v = std::move(stack_.back());
    stack_.pop_back();
    return add(std::move(v));
  }

  Value takeRoot() { return std::move(root_); }

  const char *bad = nullptr;  // a refusal of the rules above (see json_reader.hpp)
  std::string bad_detail;

 private:
  bool open(Value v) {
    if (stack_.size() >= limits_.max_depth) {
      return fail("too_deep");
    }
    stack_.push_back(std::move(v));
    return true;
  }
  bool add(Value v) {
    if (stack_.empty()) {
      root_ = std::move(v);
      return true;
    }
    Value &top = stack_.back();
    if (top.type == Value::Type::Array) {
      top.items.push_back(std::move(v));
    } else {
      top.members.back().value = std::move(v);
    }
    return true;
  }
  bool fail(const char *reason) {
    bad = reason;
    return false;
  }

  const ParseLimits &limits_;
  std::vector<Value> stack_;
  Value root_;
};

}  // namespace

std::optional<Value> parse(std::string_view json, std::string *error_reason, const ParseLimits &limits,
                           std::string *error_detail) {
  codec::countParse(codec::ParseKind::Json);
  return codec::detail::parseTree(json, error_reason, limits, error_detail);
}

// ---------------------------------------------------------------------------------------
// Emitting

std::string pythonFloatRepr(double d) {
  if (std::isnan(d)) {
    return "NaN";
  }
  if (std::isinf(d)) {
    return d > 0 ? "Infinity" : "-Infinity";
  }
  // Shortest round-trip digits in scientific form ("-1.2345e+17"), reformatted with
  // Python's repr rule: positional when -4 <= exponent < 16, else d[.ddd]e[+-]XX.
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
  std::string_view sci(buf, static_cast<std::size_t>(res.ptr - buf));
  std::string out;
  if (!sci.empty() && sci.front() == '-') {
    out += '-';
    sci.remove_prefix(1);
  }
  std::size_t epos = sci.find('e');
  std::string digits;
  for (char c : sci.substr(0, epos)) {
    if (c != '.') {
      digits += c;
    }
  }
  int exp = 0;
  std::string_view es = sci.substr(epos + 1);
  bool eneg = es.front() == '-';
  es.remove_prefix(1);  // to_chars always writes a sign
  std::from_chars(es.data(), es.data() + es.size(), exp);
  if (eneg) {
    exp = -exp;
  }
  // to_chars never produces trailing zeros in the shortest form except "0e+00".
  if (exp >= -4 && exp < 16) {
    if (exp >= 0) {
      auto n = static_cast<std::size_t>(exp) + 1;
      if (digits.size() <= n) {
        out += digits;
        out.append(n - digits.size(), '0');
        out += ".0";
      } else {
        out += digits.substr(0, n);
        out += '.';
        out += digits.substr(n);
      }
    } else {
      out += "0.";
      out.append(static_cast<std::size_t>(-exp - 1), '0');
      out += digits;
    }
    return out;
  }
  out += digits[0];
  if (digits.size() > 1) {
    out += '.';
    out += digits.substr(1);
  }
  out += 'e';
  out += exp < 0 ? '-' : '+';
  int aexp = exp < 0 ? -exp : exp;
  if (aexp < 10) {
    out += '0';
  }
  out += std::to_string(aexp);
  return out;
}

namespace {

void writeValue(const Value &v, std::string &out, const std::vector<std::string_view> *skip) {
  switch (v.type) {
    case Value::Type::Null:
      out += "null";
      return;
    case Value::Type::Bool:
      out += v.boolean ? "true" : "false";
      return;
    case Value::Type::Integer:
      out += v.text;
      return;
    case Value::Type::Float:
      out += pythonFloatRepr(v.number);
      return;
    case Value::Type::String:
      writeAsciiString(v.text, out);
      return;
    case Value::Type::Array: {
      out += '[';
      bool first = true;
      for (const auto &e : v.items) {
        if (!first) {
          out += ',';
        }
        first = false;
        writeValue(e, out, nullptr);
      }
      out += ']';
      return;
    }
    case Value::Type::Object: {
      out += '{';
      bool first = true;
      for (const auto &m : v.members) {
        if (skip != nullptr && std::find(skip->begin(), skip->end(), std::string_view(m.key)) != skip->end()) {
          continue;
        }
        if (!first) {
          out += ',';
        }
        first = false;
        writeAsciiString(m.key, out);
        out += ':';
        writeValue(m.value, out, nullptr);
      }
      out += '}';
      return;
    }
  }
}

}  // namespace

void writeCanonical(const Value &v, std::string &out, const std::vector<std::string_view> &skip_top_level_keys) {
  codec::countSerialisation(codec::SerialiseKind::Canonical);
  writeValue(v, out, skip_top_level_keys.empty() ? nullptr : &skip_top_level_keys);
}

void appendCanonicalPart(const Value &v, std::string &out) { writeValue(v, out, nullptr); }

std::string canonical(const Value &v, const std::vector<std::string_view> &skip_top_level_keys) {
  std::string out;
  writeCanonical(v, out, skip_top_level_keys);
  return out;
}

std::optional<std::string> canonicalize(std::string_view json, std::string *error_reason,
                                        const ParseLimits &limits) {
  auto v = parse(json, error_reason, limits);
  if (!v) {
    return std::nullopt;
  }
  try {
    return canonical(*v);
  } catch (const std::bad_alloc &) {
    if (error_reason != nullptr) {
      *error_reason = "oversize";
    }
    return std::nullopt;
  }
}

}  // namespace switchyard::json

namespace switchyard::codec::detail {

std::optional<json::Value> parseTree(std::string_view text, std::string *error_reason,
                                     const json::ParseLimits &limits, std::string *error_detail) {
  auto refuse = [&](Refusal r) -> std::optional<json::Value> {
    if (error_reason != nullptr) {
      *error_reason = std::move(r.reason);
    }
    if (error_detail != nullptr) {
      *error_detail = std::move(r.detail);
    }
    return std::nullopt;
  };
  if (auto r = checkSize(text, limits.max_bytes, "the JSON text"); !r.ok()) {
    return refuse(std::move(r));
  }
  try {
    json::TreeBuilder builder(limits);
    if (auto r = readJson<rapidjson::kParseNanAndInfFlag>(text, builder); !r.ok()) {
      return refuse(std::move(r));
    }
    return builder.takeRoot();
  } catch (const std::bad_alloc &) {
    return refuse({"oversize", "out of memory while parsing"});
  }
}

}  // namespace switchyard::codec::detail
