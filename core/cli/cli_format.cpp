// SPDX-License-Identifier: MIT
#include "cli_format.hpp"

#include <cerrno>
#include <charconv>
#include <cmath>
#include <ctime>

#include <fmt/format.h>

#include "switchyard/fedmsg.hpp"
#include "switchyard/json.hpp"

namespace switchyard::cli {
namespace {

// ANSI colours (only when writing to a terminal and NO_COLOR is unset).
constexpr const char *kReset = "\x1b[0m";
constexpr const char *kBold = "\x1b[1m";
constexpr const char *kKey = "\x1b[34m";     // blue
constexpr const char *kString = "\x1b[32m";  // green
constexpr const char *kNumber = "\x1b[33m";  // yellow
constexpr const char *kLiteral = "\x1b[35m"; // magenta
constexpr const char *kGood = "\x1b[32m";
constexpr const char *kBad = "\x1b[31m";
constexpr const char *kDim = "\x1b[2m";

struct Paint {
  bool on;
  std::string operator()(const char *code, std::string_view text) const {
    if (!on) {
      return std::string(text);
    }
    return fmt::format("{}{}{}", code, text, kReset);
  }
};

/// Appends @p json with every raw line feed turned into a space (a line feed can only be
/// whitespace in valid JSON), so one message stays one line.
void appendOneLine(std::string &out, std::string_view json) {
  for (char c : json) {
    out += c == '\n' || c == '\r' ? ' ' : c;
  }
}

void appendString(std::string &out, std::string_view s) { json::writeString(s, out, json::Escape::Utf8); }

/// "2026-12-05 17:03:12 UTC" from a JSON number of seconds; "" when it is not one.
std::string humanTime(std::string_view ts) {
  if (ts.empty()) {
    return {};
  }
  double secs = 0;
  auto [p, ec] = std::from_chars(ts.data(), ts.data() + ts.size(), secs);
  if (ec != std::errc() || !std::isfinite(secs) || secs < 0 || secs > 253402300799.0) {
    return std::string(ts);
  }
  std::time_t t = static_cast<std::time_t>(secs);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return buf;
}

std::string verdictText(const SignatureVerdict &v) {
  return v.reason.empty() ? v.state : fmt::format("{} ({})", v.state, v.reason);
}

const char *verdictColour(const SignatureVerdict &v) {
  if (v.state == "valid") {
    return kGood;
  }
  if (v.state == "invalid") {
    return kBad;
  }
  return kDim;
}

void prettyValue(const json::Value &v, int indent, const Paint &paint, std::string &out) {
  std::string pad(static_cast<std::size_t>(indent) * 2, ' ');
  switch (v.type) {
    case json::Value::Type::Null:
      out += paint(kLiteral, "null");
      return;
    case json::Value::Type::Bool:
      out += paint(kLiteral, v.boolean ? "true" : "false");
      return;
    case json::Value::Type::Integer:
      out += paint(kNumber, v.text);
      return;
    case json::Value::Type::Float:
      out += paint(kNumber, json::pythonFloatRepr(v.number));
      return;
    case json::Value::Type::String: {
      std::string s;
      appendString(s, v.text);
      out += paint(kString, s);
      return;
    }
    case json::Value::Type::Array:
      if (v.items.empty()) {
        out += "[]";
        return;
      }
      out += "[\n";
      for (std::size_t k = 0; k < v.items.size(); ++k) {
        out += pad + "  ";
        prettyValue(v.items[k], indent + 1, paint, out);
        out += k + 1 < v.items.size() ? ",\n" : "\n";
      }
      out += pad + "]";
      return;
    case json::Value::Type::Object:
      if (v.members.empty()) {
        out += "{}";
        return;
      }
      out += "{\n";
      for (std::size_t k = 0; k < v.members.size(); ++k) {
        std::string key;
        appendString(key, v.members[k].key);
        out += pad + "  " + paint(kKey, key) + ": ";
        prettyValue(v.members[k].value, indent + 1, paint, out);
        out += k + 1 < v.members.size() ? ",\n" : "\n";
      }
      out += pad + "}";
      return;
  }
}

void prettyJson(std::string_view text, int indent, const Paint &paint, std::string &out) {
  auto v = json::parse(text);
  if (!v) {
    out += text;  // not JSON (cannot happen for what the inputs accept): as it is
    return;
  }
  prettyValue(*v, indent, paint, out);
}

}  // namespace

MessageInfo messageInfo(const Message &m) {
  MessageInfo info;
  if (const auto &env = m.envelope()) {
    info.timestamp = std::string(env->fields.timestamp);
    info.username = env->fields.username;
    info.has_username = env->fields.has_username;
    info.i = std::string(env->fields.i);
    if (!env->members.empty()) {
      for (const auto &mem : env->members) {
        if (mem.key == "signature") {
          info.signed_ = true;
        }
      }
    } else if (auto v = json::parse(env->text); v && v->find("signature") != nullptr) {
      info.signed_ = true;
    }
  } else if (m.timestampMs() > 0) {
    info.timestamp = fmt::format("{}.{:03}", m.timestampMs() / 1000, m.timestampMs() % 1000);
  }
  return info;
}

SignatureVerdict unverifiedVerdict(const MessageInfo &info) {
  return {info.signed_ ? "signed" : "unsigned", {}};
}

void formatJsonLine(const Message &m, const MessageInfo &info, const SignatureVerdict &v,
                    std::string &out) {
  out += "{\"topic\":";
  appendString(out, m.topic());
  out += ",\"body\":";
  appendOneLine(out, m.body().empty() ? std::string_view("null") : std::string_view(m.body()));
  out += ",\"headers\":";
  appendOneLine(out, m.headers().empty() ? std::string_view("{}") : std::string_view(m.headers()));
  out += ",\"id\":";
  appendString(out, m.id());
  out += ",\"timestamp\":";
  out += info.timestamp.empty() ? "null" : info.timestamp;
  out += ",\"username\":";
  if (info.has_username) {
    appendString(out, info.username);
  } else {
    out += "null";
  }
  out += ",\"i\":";
  out += info.i.empty() ? "null" : info.i;
  out += ",\"signature\":";
  appendString(out, v.state);
  if (!v.reason.empty()) {
    out += ",\"signature_error\":";
    appendString(out, v.reason);
  }
  out += '}';
}

void formatPretty(const Message &m, const MessageInfo &info, const SignatureVerdict &v, bool colour,
                  std::string &out) {
  Paint paint{colour};
  std::string when = humanTime(info.timestamp);
  out += paint(kBold, m.topic());
  if (!when.empty()) {
    out += "  " + when;
  }
  out += '\n';
  out += fmt::format("  id: {}  username: {}  i: {}  signature: {}\n", m.id().empty() ? "-" : m.id(),
                     info.has_username ? info.username : "-", info.i.empty() ? "-" : info.i,
                     paint(verdictColour(v), verdictText(v)));
  if (!m.headers().empty() && m.headers() != "{}") {
    out += "  headers: ";
    prettyJson(m.headers(), 1, paint, out);
    out += '\n';
  }
  out += "  body: ";
  prettyJson(m.body().empty() ? std::string_view("null") : std::string_view(m.body()), 1, paint, out);
  out += '\n';
}

void formatTerse(const Message &m, const MessageInfo &info, const SignatureVerdict &v, bool colour,
                 std::string &out) {
  Paint paint{colour};
  std::string when = humanTime(info.timestamp);
  constexpr std::size_t kBodyMax = 160;
  std::string body;
  appendOneLine(body, m.body());
  if (body.size() > kBodyMax) {
    std::size_t cut = kBodyMax;
    while (cut > 0 && (static_cast<unsigned char>(body[cut]) & 0xC0) == 0x80) {
      --cut;  // never split a UTF-8 sequence
    }
    body.resize(cut);
    body += "...";
  }
  out += fmt::format("{} {} user={} i={} sig={} id={} {}", when.empty() ? "-" : when, paint(kBold, m.topic()),
                     info.has_username ? info.username : "-", info.i.empty() ? "-" : info.i,
                     paint(verdictColour(v), verdictText(v)), m.id().empty() ? "-" : m.id(), body);
}

bool Printer::print(const Message &m, const SignatureVerdict *verdict) {
  MessageInfo info = messageInfo(m);
  SignatureVerdict v = verdict != nullptr ? *verdict : unverifiedVerdict(info);
  std::lock_guard lock(mu_);
  if (limit_ > 0 && shown_ >= limit_) {
    return false;
  }
  buf_.clear();
  switch (format_) {
    case TailFormat::Json: formatJsonLine(m, info, v, buf_); break;
    case TailFormat::Pretty: formatPretty(m, info, v, colour_, buf_); break;
    case TailFormat::Terse: formatTerse(m, info, v, colour_, buf_); break;
  }
  buf_ += '\n';
  if (std::fwrite(buf_.data(), 1, buf_.size(), out_) != buf_.size() || std::fflush(out_) != 0) {
    healthy_ = false;
  }
  ++shown_;
  return true;
}

std::int64_t Printer::shown() const {
  std::lock_guard lock(mu_);
  return shown_;
}

bool Printer::full() const {
  std::lock_guard lock(mu_);
  return limit_ > 0 && shown_ >= limit_;
}

bool Printer::healthy() const {
  std::lock_guard lock(mu_);
  return healthy_;
}

}  // namespace switchyard::cli
