// SPDX-License-Identifier: MIT
#include "switchyard/fedora_messaging.hpp"

#include <algorithm>
#include <charconv>
#include <memory>

#include "switchyard/fedmsg.hpp"
#include "switchyard/fedmsg_carry.hpp"

namespace switchyard::fedora_messaging {

namespace {

/// The value of an Integer json::Value when it is within [lo, hi].
std::optional<std::int64_t> intIn(const json::Value &v, std::int64_t lo, std::int64_t hi) {
  if (v.type != json::Value::Type::Integer) {
    return std::nullopt;
  }
  std::int64_t n = 0;
  const char *b = v.text.data();
  const char *e = b + v.text.size();
  auto r = std::from_chars(b, e, n);
  if (r.ec != std::errc() || r.ptr != e || n < lo || n > hi) {
    return std::nullopt;
  }
  return n;
}

}  // namespace

std::string sentAt(std::time_t t) {
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[40];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S+00:00", &tm);
  return buf;
}

Properties publishProperties(const json::Value *headers, const json::Value *carried, std::string message_id,
                             std::string_view sent_at) {
  Properties p;
  p.message_id = std::move(message_id);
  if (headers != nullptr && headers->isObject()) {
    p.headers = *headers;
  }
  if (carried != nullptr && carried->isObject()) {
    for (const auto &m : carried->members) {
      p.headers.set(m.key, m.value);  // the carried values win (one entry per key)
    }
  }
  auto fill = [&](std::string_view key, json::Value v) {
    if (p.headers.find(key) == nullptr) {
      p.headers.set(std::string(key), std::move(v));
    }
  };
  fill(kSchemaHeader, json::Value::fromString(std::string(kDefaultSchema)));
  fill(kSchemaPackageHeader, json::Value::fromString(std::string(kDefaultSchemaPackage)));
  fill(kSeverityHeader, json::Value::fromInt(kDefaultSeverity));
  fill(kSentAtHeader, json::Value::fromString(std::string(sent_at)));
  if (const json::Value *prio = p.headers.find(kPriorityHeader)) {
    if (auto n = intIn(*prio, 0, 255)) {
      p.priority = static_cast<std::uint8_t>(*n);
    }
  } else {
    p.headers.set(std::string(kPriorityHeader), json::Value::fromInt(0));
  }
  return p;
}

std::string messageId(std::string_view id, bool uuid_mode, json::Value &full_id_header) {
  if (!uuid_mode) {
    return id.empty() ? fedmsg::uuid4() : std::string(id);
  }
  std::string out;
  std::string_view bare = fedmsg::stripYearPrefix(id);
  if (amqp::carry::isUuid(bare)) {
    out.assign(bare);
    std::transform(out.begin(), out.end(), out.begin(),
                   [](char c) { return (c >= 'A' && c <= 'F') ? static_cast<char>(c - 'A' + 'a') : c; });
  } else {
    out = fedmsg::uuid4();
  }
  if (!id.empty()) {
    full_id_header = json::Value::object();
    full_id_header.set(std::string(amqp::carry::kMsgIdHeader), json::Value::fromString(std::string(id)));
  }
  return out;
}

std::string routingKey(std::string_view prefix, std::string_view topic) {
  while (!prefix.empty() && prefix.back() == '.') {
    prefix.remove_suffix(1);
  }
  if (prefix.empty()) {
    return std::string(topic);
  }
  std::string rk;
  rk.reserve(prefix.size() + 1 + topic.size());
  rk.append(prefix).append(".").append(topic);
  return rk;
}

std::string topicOf(std::string_view routing_key, std::string_view prefix) {
  while (!prefix.empty() && prefix.back() == '.') {
    prefix.remove_suffix(1);
  }
  if (!prefix.empty() && routing_key.size() > prefix.size() && routing_key.substr(0, prefix.size()) == prefix &&
      routing_key[prefix.size()] == '.') {
    routing_key.remove_prefix(prefix.size() + 1);
  }
  return std::string(routing_key);
}

void toMessage(Delivery d, std::string_view prefix, Message &msg) {
  msg.setTopic(topicOf(d.routing_key, prefix));
  if (d.headers && d.headers->isObject()) {
    auto tree = std::make_shared<const json::Value>(std::move(*d.headers));
    msg.setHeaders(d.headers_text.empty() ? json::canonical(*tree) : std::move(d.headers_text));
    msg.cacheParsedHeaders(std::move(tree));
  }
  if (d.message_id && !d.message_id->empty() && fedmsg::isValidUtf8(*d.message_id)) {
    msg.setId(std::string(*d.message_id));
  }
  if (d.timestamp_s) {
    msg.setTimestampMs(static_cast<std::int64_t>(*d.timestamp_s) * 1000);
  }
}

}  // namespace switchyard::fedora_messaging
