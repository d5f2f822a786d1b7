// SPDX-License-Identifier: MIT
#include "switchyard/fedmsg_carry.hpp"

#include <array>
#include <charconv>
#include <cstdint>
#include <optional>

#include "switchyard/fedmsg.hpp"
#include "switchyard/json.hpp"

namespace switchyard::amqp::carry {

namespace {

struct Field {
  std::string_view key;     // envelope key
  std::string_view header;  // AMQP header
  bool integer;             // integer (else string)
};

constexpr std::array<Field, 6> kFields = {{
    {"timestamp", "fedmsg_timestamp", true},
    {"i", "fedmsg_i", true},
    {"username", "fedmsg_username", false},
    {"crypto", "fedmsg_crypto", false},
    {"signature", "fedmsg_signature", false},
    {"certificate", "fedmsg_certificate", false},
}};

// Keys the AMQP message itself carries: routing key, body, message id.
bool isStructural(std::string_view key) { return key == "topic" || key == "msg" || key == "msg_id"; }

// An integer that an AMQP I/l field holds exactly (rapidjson reads it back as int64).
bool fitsInt64(const json::Value &v) {
  if (v.type != json::Value::Type::Integer) {
    return false;
  }
  std::int64_t n = 0;
  const char *b = v.text.data();
  const char *e = b + v.text.size();
  auto r = std::from_chars(b, e, n);
  return r.ec == std::errc() && r.ptr == e;
}

}  // namespace

bool isCarryHeader(std::string_view name) noexcept {
  if (name == kMsgIdHeader || name == kExtraHeader) {
    return true;
  }
  for (const auto &f : kFields) {
    if (f.header == name) {
      return true;
    }
  }
  return false;
}

namespace {

// The carry headers of a parsed envelope.
bool headersTree(std::string_view envelope, json::Value &out, std::string &error) {
  std::string reason;
  auto env = json::parse(envelope, &reason, {}, &error);
  if (!env || !env->isObject()) {
    if (error.empty()) {
      error = env ? "the envelope is not an object" : reason;
    }
    return false;
  }
  auto id = env->findString("msg_id");
  if (!id) {
    error = "the envelope has no string msg_id";
    return false;
  }
  out = json::Value::object();
  json::Value extra = json::Value::object();
  for (const auto &m : env->members) {
    if (isStructural(m.key)) {
      continue;
    }
    const Field *field = nullptr;
    for (const auto &f : kFields) {
      if (f.key == m.key) {
        field = &f;
      }
    }
    bool own = field != nullptr && (field->integer ? fitsInt64(m.value) : m.value.isString());
    if (own) {
      out.set(std::string(field->header), m.value);
    } else {
      extra.set(m.key, m.value);  // any other key, or a known one of an unusual type
    }
  }
  if (!extra.members.empty()) {
    out.set(std::string(kExtraHeader), json::Value::fromString(json::canonical(extra)));
  }
  out.set(std::string(kMsgIdHeader), json::Value::fromString(std::string(*id)));
  return true;
}

}  // namespace

bool headersFromEnvelope(std::string_view envelope, std::string &headers_json, std::string &error) {
  json::Value out;
  if (!headersTree(envelope, out, error)) {
    return false;
  }
  headers_json = json::canonical(out);
  return true;
}

bool headersFromWire(const fedmsg::WireEnvelope &wire, json::Value &headers, std::string &error) {
  if (wire.members.empty()) {
    return headersTree(wire.text, headers, error);  // not canonical: parsed once here
  }
  // Canonical text: every member's value is canonical, and the members are in order, so
  // the typed fields are read from their literals and fedmsg_extra is their concatenation.
  json::Value out = json::Value::object();
  std::string extra;
  for (const auto &m : wire.members) {
    if (isStructural(m.key)) {
      continue;
    }
    const Field *field = nullptr;
    for (const auto &f : kFields) {
      if (f.key == m.key) {
        field = &f;
      }
    }
    if (field != nullptr && !field->integer && !m.value.empty() && m.value.front() == '"') {
      out.set(std::string(field->header), json::Value::fromString(json::unescapeCanonicalString(m.value)));
      continue;
    }
    if (field != nullptr && field->integer) {
      std::int64_t n = 0;
      auto r = std::from_chars(m.value.data(), m.value.data() + m.value.size(), n);
      if (r.ec == std::errc() && r.ptr == m.value.data() + m.value.size()) {
        out.set(std::string(field->header), json::Value::fromIntegerText(m.value));
        continue;
      }
    }
    extra += extra.empty() ? '{' : ',';
    extra.append(m.member);
  }
  if (!extra.empty()) {
    out.set(std::string(kExtraHeader), json::Value::fromString(extra + '}'));
  }
  out.set(std::string(kMsgIdHeader), json::Value::fromString(wire.fields.msg_id));
  headers = std::move(out);
  return true;
}

Restore envelopeFromHeaders(std::string_view headers_json, std::string_view topic, std::string_view body,
                            std::string_view message_id, std::string &envelope, std::string &error) {
  auto headers = json::parse(headers_json);
  if (!headers || !headers->isObject()) {
    return Restore::NotCarried;
  }
  std::string reason;
  auto msg = json::parse(body, &reason);
  json::Value env;
  Restore r = envelopeValueFromHeaders(*headers, topic, msg ? *msg : json::Value(), message_id, env, error);
  if (r == Restore::Ok && !msg) {
    error = "body: " + reason;
    return Restore::Failed;
  }
  if (r == Restore::Ok) {
    envelope = json::canonical(env);
  }
  return r;
}

Restore envelopeValueFromHeaders(const json::Value &headers, std::string_view topic, const json::Value &body,
                                 std::string_view message_id, json::Value &envelope, std::string &error) {
  if (!headers.isObject()) {
    return Restore::NotCarried;
  }
  bool carried = headers.find(kExtraHeader) != nullptr;
  for (const auto &f : kFields) {
    carried = carried || headers.find(f.header) != nullptr;
  }
  if (!carried) {
    return Restore::NotCarried;
  }
  json::Value env = json::Value::object();
  if (const json::Value *extra = headers.find(kExtraHeader)) {
    std::optional<json::Value> parsed;
    if (extra->isString()) {
      parsed = json::parse(extra->text);
    }
    if (!parsed || !parsed->isObject()) {
      error = "fedmsg_extra is not a JSON object text";
      return Restore::Failed;
    }
    env = std::move(*parsed);
  }
  for (const auto &f : kFields) {
    const json::Value *v = headers.find(f.header);
    if (v == nullptr) {
      continue;
    }
    bool ok = f.integer ? v->type == json::Value::Type::Integer : v->isString();
    if (!ok) {
      error = std::string(f.header) + (f.integer ? " is not an integer" : " is not a string");
      return Restore::Failed;
    }
    env.set(std::string(f.key), *v);
  }
  std::string id(message_id);
  if (const json::Value *v = headers.find(kMsgIdHeader)) {
    if (!v->isString()) {
      error = "fedmsg_msg_id is not a string";
      return Restore::Failed;
    }
    id = v->text;
  }
  if (id.empty()) {
    error = "no message id (neither fedmsg_msg_id nor message_id)";
    return Restore::Failed;
  }
  env.set("msg", body);
  env.set("msg_id", json::Value::fromString(std::move(id)));
  env.set("topic", json::Value::fromString(std::string(topic)));
  envelope = std::move(env);
  return Restore::Ok;
}

bool isUuid(std::string_view s) noexcept {
  if (s.size() != 36) {
    return false;
  }
  for (std::size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (c != '-') {
        return false;
      }
    } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
      return false;
    }
  }
  return true;
}

}  // namespace switchyard::amqp::carry
