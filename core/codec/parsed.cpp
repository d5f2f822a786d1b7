// SPDX-License-Identifier: MIT
#include "switchyard/parsed.hpp"

#include <string_view>

#include "json_reader.hpp"
#include "switchyard/codec_stats.hpp"

namespace switchyard::codec {

namespace {
bool isEmptyObject(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\n' || s.front() == '\t' || s.front() == '\r')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\n' || s.back() == '\t' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s.empty() || s == "{}";
}
}  // namespace

const json::Value *parsedBody(const Message &msg, std::string *reason) {
  if (const auto &cached = msg.parsedBodyCache()) {
    return cached.get();
  }
  countParse(ParseKind::Body);
  auto v = detail::parseTree(msg.body(), reason, {}, nullptr);
  if (!v) {
    return nullptr;
  }
  auto p = std::make_shared<const json::Value>(std::move(*v));
  msg.cacheParsedBody(p);
  return p.get();
}

const json::Value *parsedHeaders(const Message &msg, std::string *reason) {
  if (const auto &cached = msg.parsedHeadersCache()) {
    return cached.get();
  }
  std::shared_ptr<const json::Value> p;
  if (isEmptyObject(msg.headers())) {
    // Most messages have none: they all share one empty object (it is never changed).
    static const auto kEmpty = std::make_shared<const json::Value>(json::Value::object());
    p = kEmpty;
  } else {
    countParse(ParseKind::Headers);
    auto v = detail::parseTree(msg.headers(), reason, {}, nullptr);
    if (!v || !v->isObject()) {
      if (v && reason != nullptr) {
        *reason = "not_an_object";
      }
      return nullptr;
    }
    p = std::make_shared<const json::Value>(std::move(*v));
  }
  msg.cacheParsedHeaders(p);
  return p.get();
}

void setParsedBody(const Message &msg, json::Value body) {
  msg.cacheParsedBody(std::make_shared<const json::Value>(std::move(body)));
}

}  // namespace switchyard::codec
