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

std::optional<std::uint8_t> publishHeaders(const json::Value *headers, const json::Value *carried,
                                           std::string_view sent_at, std::vector<HeaderRef> &out) {
  static const std::vector<json::Member> kNone;
  static const json::Value kSeverity = json::Value::fromInt(kDefaultSeverity);
  static const json::Value kPriority = json::Value::fromInt(0);
  const auto &a = headers != nullptr && headers->isObject() ? headers->members : kNone;
  const auto &b = carried != nullptr && carried->isObject() ? carried->members : kNone;
  out.clear();
  out.reserve(a.size() + b.size() + 5);
  // Both member lists are sorted by key: merge them; the carried value wins a tie.
  std::size_t i = 0;
  std::size_t j = 0;
  while (i < a.size() || j < b.size()) {
    if (j == b.size() || (i < a.size() && a[i].key < b[j].key)) {
      out.push_back({a[i].key, &a[i].value, {}});
      ++i;
    } else {
      if (i < a.size() && a[i].key == b[j].key) {
        ++i;
      }
      out.push_back({b[j].key, &b[j].value, {}});
      ++j;
    }
  }
  const std::size_t merged = out.size();
  auto find = [&](std::string_view key) -> const HeaderRef * {
    auto it = std::lower_bound(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(merged), key,
                               [](const HeaderRef &h, std::string_view k) { return h.key < k; });
    return it != out.begin() + static_cast<std::ptrdiff_t>(merged) && it->key == key ? &*it : nullptr;
  };
  auto fill = [&](std::string_view key, const json::Value *value, std::string_view text) {
    if (find(key) == nullptr) {
      out.push_back({key, value, text});
    }
  };
  fill(kSchemaHeader, nullptr, kDefaultSchema);
  fill(kSchemaPackageHeader, nullptr, kDefaultSchemaPackage);
  fill(kSeverityHeader, &kSeverity, {});
  fill(kSentAtHeader, nullptr, sent_at);
  std::optional<std::uint8_t> priority;
  if (const HeaderRef *prio = find(kPriorityHeader)) {
    if (auto n = intIn(*prio->value, 0, 255)) {
      priority = static_cast<std::uint8_t>(*n);
    }
  } else {
    out.push_back({kPriorityHeader, &kPriority, {}});
  }
  if (out.size() > merged) {
    std::sort(out.begin() + static_cast<std::ptrdiff_t>(merged), out.end(),
              [](const HeaderRef &x, const HeaderRef &y) { return x.key < y.key; });
    std::inplace_merge(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(merged), out.end(),
                       [](const HeaderRef &x, const HeaderRef &y) { return x.key < y.key; });
  }
  return priority;
}

Properties publishProperties(const json::Value *headers, const json::Value *carried, std::string message_id,
                             std::string_view sent_at) {
  Properties p;
  p.message_id = std::move(message_id);
  std::vector<HeaderRef> refs;
  p.priority = publishHeaders(headers, carried, sent_at, refs);
  p.headers.members.reserve(refs.size());
  for (const HeaderRef &h : refs) {  // sorted and unique already
    p.headers.members.push_back(
        {std::string(h.key), h.value != nullptr ? *h.value : json::Value::fromString(std::string(h.text))});
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
  // A timestamp whose milliseconds do not fit an int64 (any 64-bit value a publisher sends)
  // is no time at all: left unknown (0).
  if (d.timestamp_s && *d.timestamp_s <= static_cast<std::uint64_t>(INT64_MAX / 1000)) {
    msg.setTimestampMs(static_cast<std::int64_t>(*d.timestamp_s) * 1000);
  }
}

}  // namespace switchyard::fedora_messaging
