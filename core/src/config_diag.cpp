// SPDX-License-Identifier: MIT
//
// Configuration diagnostics helpers: positions and key paths, YAML scalars (integers,
// floats, booleans), ${VAR} interpolation, "did you mean" suggestions, and how values are
// described in messages (never a secret's).
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>

#include <fmt/format.h>

#include "config_detail.hpp"

namespace switchyard::config_detail {

Mark toMark(const YAML::Mark &m) {
  if (m.is_null()) {
    return {};
  }
  return {m.line + 1, m.column + 1};
}

std::string joinPath(const std::string &parent, std::string_view key) {
  if (parent.empty()) {
    return std::string(key);
  }
  return fmt::format("{}.{}", parent, key);
}

std::string join(const std::vector<std::string> &v, std::string_view sep) {
  std::string out;
  for (const auto &s : v) {
    if (!out.empty()) {
      out += sep;
    }
    out += s;
  }
  return out;
}
// ---------------------------------------------------------------------------------------
// Scalars

bool isNullWord(std::string_view s) { return s == "~" || s == "null" || s == "Null" || s == "NULL"; }

bool parseInt(std::string_view s, std::int64_t &out) {
  if (s.empty()) {
    return false;
  }
  bool negative = false;
  std::string_view body = s;
  if (body.front() == '-' || body.front() == '+') {
    negative = body.front() == '-';
    body.remove_prefix(1);
  }
  int base = 10;
  if (body.size() > 2 && body[0] == '0' && (body[1] == 'x' || body[1] == 'X')) {
    base = 16;
    body.remove_prefix(2);
  } else if (body.size() > 2 && body[0] == '0' && (body[1] == 'o' || body[1] == 'O')) {
    base = 8;
    body.remove_prefix(2);
  }
  if (body.empty()) {
    return false;
  }
  std::uint64_t magnitude = 0;
  auto [end, ec] = std::from_chars(body.data(), body.data() + body.size(), magnitude, base);
  if (ec != std::errc() || end != body.data() + body.size()) {
    return false;
  }
  if (negative) {
    if (magnitude > static_cast<std::uint64_t>(INT64_MAX) + 1) {
      return false;
    }
    out = magnitude == static_cast<std::uint64_t>(INT64_MAX) + 1
              ? INT64_MIN
              : -static_cast<std::int64_t>(magnitude);
    return true;
  }
  if (magnitude > static_cast<std::uint64_t>(INT64_MAX)) {
    return false;
  }
  out = static_cast<std::int64_t>(magnitude);
  return true;
}

/// Whether @p s looks like an integer at all (to tell "too large" from "not a number").
bool looksIntegral(std::string_view s) {
  if (!s.empty() && (s.front() == '-' || s.front() == '+')) {
    s.remove_prefix(1);
  }
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

/// YAML 1.2 core-schema floats (finite ones only: JSON has no inf/nan).
bool parseFloat(std::string_view s, double &out) {
  std::size_t i = 0;
  if (i < s.size() && (s[i] == '-' || s[i] == '+')) {
    ++i;
  }
  std::size_t digits = 0;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
    ++i;
    ++digits;
  }
  if (i < s.size() && s[i] == '.') {
    ++i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
      ++i;
      ++digits;
    }
  }
  if (digits == 0) {
    return false;
  }
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '-' || s[i] == '+')) {
      ++i;
    }
    std::size_t exp_digits = 0;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
      ++i;
      ++exp_digits;
    }
    if (exp_digits == 0) {
      return false;
    }
  }
  if (i != s.size()) {
    return false;
  }
  std::string_view body = s;
  if (body.front() == '+') {
    body.remove_prefix(1);
  }
  double v = 0;
  auto [end, ec] = std::from_chars(body.data(), body.data() + body.size(), v);
  if (ec != std::errc() || end != body.data() + body.size() || !std::isfinite(v)) {
    return false;
  }
  out = v;
  return true;
}

/// For boolean keys: YAML 1.1 words as well (yes/no/on/off), in the usual three cases.
bool parseBoolWord(std::string_view s, bool &out) {
  static const char *const kTrue[] = {"true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON"};
  static const char *const kFalse[] = {"false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF"};
  for (const char *w : kTrue) {
    if (s == w) {
      out = true;
      return true;
    }
  }
  for (const char *w : kFalse) {
    if (s == w) {
      out = false;
      return true;
    }
  }
  return false;
}

/// For inference (untyped values): only true/false, as in the YAML 1.2 core schema.
bool parseStrictBool(std::string_view s, bool &out) {
  if (s == "true" || s == "True" || s == "TRUE") {
    out = true;
    return true;
  }
  if (s == "false" || s == "False" || s == "FALSE") {
    out = false;
    return true;
  }
  return false;
}

static bool validVarName(std::string_view n) {
  if (n.empty() || (n[0] >= '0' && n[0] <= '9')) {
    return false;
  }
  return std::all_of(n.begin(), n.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  });
}

/// Expands ${VAR} and ${VAR:-default} (default used when VAR is unset or empty); "$$" is a
/// literal "$", any other "$" is kept as it is. Returns an empty string on success, else
/// the problem. Never quotes an expanded value: it may be a secret.
std::string expandVariables(std::string_view in, std::string &out) {
  out.clear();
  out.reserve(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c != '$' || i + 1 >= in.size()) {
      out += c;
      continue;
    }
    if (in[i + 1] == '$') {
      out += '$';
      ++i;
      continue;
    }
    if (in[i + 1] != '{') {
      out += '$';
      continue;
    }
    auto close = in.find('}', i + 2);
    if (close == std::string_view::npos) {
      return "unterminated '${': expected ${NAME} or ${NAME:-default} (write $$ for a literal $)";
    }
    std::string_view body = in.substr(i + 2, close - i - 2);
    std::string_view name = body;
    std::string_view fallback;
    bool has_default = false;
    if (auto p = body.find(":-"); p != std::string_view::npos) {
      name = body.substr(0, p);
      fallback = body.substr(p + 2);
      has_default = true;
    }
    if (!validVarName(name)) {
      return fmt::format(
          "'${{{}}}' is not a valid placeholder: a variable name is letters, digits and _ "
          "(write $$ for a literal $)",
          name);
    }
    std::string var(name);
    const char *env = std::getenv(var.c_str());
    std::string_view value;
    if (env != nullptr && (*env != '\0' || !has_default)) {
      value = env;
    } else if (has_default) {
      value = fallback;
    } else {
      return fmt::format(
          "environment variable {} is not set (write ${{{}:-default}} to give a default)", var,
          var);
    }
    if (value.find_first_of("\r\n") != std::string_view::npos) {
      return fmt::format("the value of ${{{}}} contains a newline, which is not allowed", var);
    }
    out.append(value);
    i = close;
  }
  return {};
}

std::size_t invalidUtf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t len = 0;
    std::uint32_t cp = 0;
    std::uint32_t min = 0;
    if ((c & 0xE0) == 0xC0) {
      len = 2, cp = c & 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3, cp = c & 0x0F, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4, cp = c & 0x07, min = 0x10000;
    } else {
      return i;
    }
    if (i + len > s.size()) {
      return i;
    }
    for (std::size_t k = 1; k < len; ++k) {
      auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) {
        return i;
      }
      cp = (cp << 6) | (cc & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
      return i;
    }
    i += len;
  }
  return std::string_view::npos;
}

std::string utf8Problem(std::string_view s, std::size_t at, bool key) {
  return fmt::format("the {} is not valid UTF-8 (byte 0x{:02X} at byte {} of it); configurations are UTF-8 "
                     "text: re-encode the file (iconv -t UTF-8) or fix the value",
                     key ? "key" : "value", static_cast<unsigned char>(s[at]), at + 1);
}

/// Whether a key holds an unescaped "${".
bool hasPlaceholder(std::string_view s) {
  for (std::size_t i = 0; i + 1 < s.size(); ++i) {
    if (s[i] == '$') {
      if (s[i + 1] == '$') {
        ++i;
      } else if (s[i + 1] == '{') {
        return true;
      }
    }
  }
  return false;
}

static std::size_t editDistance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) {
    row[j] = j;
  }
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diag = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

/// " (did you mean 'x'?)" for a close candidate, else "".
std::string suggestion(std::string_view word, const std::vector<std::string> &candidates) {
  std::string best;
  std::size_t best_d = 3;
  for (const auto &c : candidates) {
    std::size_t d = editDistance(word, c);
    if (d < best_d && d < std::max<std::size_t>(c.size(), 2)) {
      best_d = d;
      best = c;
    }
  }
  return best.empty() ? std::string() : fmt::format(" (did you mean '{}'?)", best);
}

std::string shortValue(std::string_view s) {
  if (s.size() > 40) {
    return fmt::format("'{}...'", s.substr(0, 37));
  }
  return fmt::format("'{}'", s);
}

/// "a mapping", "a list", "null", "'abc'" -- never the value of a secret key.
std::string describe(const ConfigNode &n, bool secret) {
  switch (n.kind) {
    case Kind::Null: return "null (no value)";
    case Kind::Sequence: return "a list";
    case Kind::Map: return "a mapping";
    case Kind::Scalar: break;
  }
  if (secret) {
    return n.plain ? "a scalar" : "a quoted string";
  }
  return n.plain ? shortValue(n.scalar) : fmt::format("the quoted string {}", shortValue(n.scalar));
}

const char *typeWord(sy_config_type t) {
  switch (t) {
    case SY_CFG_STRING: return "a string";
    case SY_CFG_INT: return "an integer";
    case SY_CFG_FLOAT: return "a number";
    case SY_CFG_BOOL: return "true or false";
    case SY_CFG_STRING_LIST: return "a list of strings";
    case SY_CFG_MAP: return "a mapping";
    case SY_CFG_LIST: return "a list";
    case SY_CFG_ANY: return "any value";
  }
  return "a value";
}

bool isKnown(const std::vector<std::string> &v, const std::string &s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

}  // namespace switchyard::config_detail
