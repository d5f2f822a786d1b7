// SPDX-License-Identifier: MIT
// The runtime tap: the process-wide hub of attached clients (see runtime_tap.hpp).
#include "runtime_tap.hpp"

#include <algorithm>
#include <ctime>
#include <vector>

#include <fmt/format.h>

#include "switchyard/fedmsg.hpp"
#include "switchyard/json.hpp"

namespace switchyard::tap {

namespace detail {
std::atomic<int> g_clients{0};
}  // namespace detail

namespace {

/// The attached clients. Clients register and unregister themselves; offers walk the list.
struct Hub {
  std::mutex mu;
  std::vector<Client *> clients;
};

Hub &hub() {
  static Hub h;
  return h;
}

/// "2026-12-05T19:21:03.123Z"
std::string utcNow() {
  auto now = std::chrono::system_clock::now();
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                     tm.tm_hour, tm.tm_min, tm.tm_sec, ms % 1000);
}

/// @p text cut to at most @p max bytes, at a UTF-8 character boundary.
std::string_view cutUtf8(std::string_view text, std::size_t max) {
  if (text.size() <= max) {
    return text;
  }
  std::size_t end = max;
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) {
    --end;  // text[end] continues a character that began before it
  }
  return text.substr(0, end);
}

void member(std::string &out, std::string_view key) {
  out += out.size() > 1 ? ",\"" : "\"";
  out += key;
  out += "\":";
}

void stringMember(std::string &out, std::string_view key, std::string_view value) {
  member(out, key);
  json::writeString(value, out, json::Escape::Utf8);
}

bool isJson(std::string_view text) { return !text.empty() && fedmsg::validateJson(text).ok(); }

}  // namespace

std::string render(std::string_view pipeline, const Message &msg, std::size_t body_bytes) {
  std::string out = "{";
  stringMember(out, "time", utcNow());
  stringMember(out, "pipeline", pipeline);
  stringMember(out, "topic", msg.topic());
  stringMember(out, "id", msg.id());
  if (msg.timestampMs() != 0) {
    member(out, "timestamp_ms");
    out += std::to_string(msg.timestampMs());
  }
  member(out, "headers");
  const std::string &headers = msg.headers();
  if (headers.empty()) {
    out += "{}";
  } else if (isJson(headers)) {
    out += headers;
  } else {
    json::writeString(headers, out, json::Escape::Utf8);  // not JSON: shown as text
  }
  const std::string &body = msg.body();
  bool truncated = body.size() > body_bytes;
  member(out, "body");
  if (!truncated && isJson(body)) {
    out += body;
  } else {
    json::writeString(cutUtf8(body, body_bytes), out, json::Escape::Utf8);
  }
  member(out, "body_bytes");
  out += std::to_string(body.size());
  member(out, "truncated");
  out += truncated ? "true" : "false";
  out += '}';
  return out;
}

namespace detail {

void offerSlow(std::string_view pipeline, const Message &msg) noexcept {
  try {
    Hub &h = hub();
    std::lock_guard lock(h.mu);
    std::string line;  // rendered once for the clients that ask for the same body limit
    std::size_t line_body_bytes = 0;
    for (Client *c : h.clients) {
      c->take(pipeline, msg, line, line_body_bytes);
    }
  } catch (...) {
    // out of memory: the sample is just smaller
  }
}

}  // namespace detail

std::shared_ptr<Client> Client::attach(Options opts) {
  opts.limit = std::clamp<std::uint64_t>(opts.limit, 1, kMaxLimit);
  opts.body_bytes = std::min(opts.body_bytes, kMaxBodyBytes);
  auto c = std::make_shared<Client>(std::move(opts));
  Hub &h = hub();
  std::lock_guard lock(h.mu);
  if (h.clients.size() >= static_cast<std::size_t>(kMaxClients)) {
    return nullptr;
  }
  h.clients.push_back(c.get());
  detail::g_clients.fetch_add(1, std::memory_order_relaxed);
  return c;
}

Client::~Client() {
  Hub &h = hub();
  std::lock_guard lock(h.mu);
  auto it = std::find(h.clients.begin(), h.clients.end(), this);
  if (it != h.clients.end()) {
    h.clients.erase(it);
    detail::g_clients.fetch_sub(1, std::memory_order_relaxed);
  }
}

void Client::take(std::string_view pipeline, const Message &msg, std::string &line, std::size_t &line_body_bytes) {
  if (!opts_.pipeline.empty() && opts_.pipeline != pipeline) {
    return;
  }
  std::lock_guard lock(mu_);
  if (taken_ >= opts_.limit) {
    return;
  }
  if (lines_.size() >= kBufferLines) {
    ++skipped_;
    return;
  }
  if (line.empty() || line_body_bytes != opts_.body_bytes) {
    line = render(pipeline, msg, opts_.body_bytes);
    line_body_bytes = opts_.body_bytes;
  }
  lines_.push_back(line);
  ++taken_;
  cv_.notify_one();
}

bool Client::next(std::string &line, std::chrono::steady_clock::time_point deadline) {
  std::unique_lock lock(mu_);
  if (!cv_.wait_until(lock, deadline, [&] { return !lines_.empty(); })) {
    return false;
  }
  line = std::move(lines_.front());
  lines_.pop_front();
  return true;
}

bool Client::finished() {
  std::lock_guard lock(mu_);
  return taken_ >= opts_.limit && lines_.empty();
}

std::uint64_t Client::sampled() {
  std::lock_guard lock(mu_);
  return taken_;
}

std::uint64_t Client::skipped() {
  std::lock_guard lock(mu_);
  return skipped_;
}

}  // namespace switchyard::tap
