// SPDX-License-Identifier: MIT
// GET /tap: the runtime tap over the operations HTTP endpoint (see runtime_tap.hpp).
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "http_endpoint.hpp"
#include "runtime_tap.hpp"
#include "switchyard/engine.hpp"
#include "switchyard/json.hpp"

namespace switchyard::tap {

namespace {

using Clock = std::chrono::steady_clock;

constexpr auto kSlice = std::chrono::milliseconds(250);  // how often a waiting stream looks at the server
constexpr auto kKeepAlive = std::chrono::seconds(5);

http::Response jsonError(int status, const std::string &message) {
  std::string body = "{\"error\":";
  json::writeString(message, body, json::Escape::Utf8);
  body += "}\n";
  return http::Response{status, "application/json", std::move(body), {}};
}

/// A whole number in [lo, hi], or an error message naming the parameter.
std::optional<std::string> readUint(const http::Request &req, const char *name, std::uint64_t lo, std::uint64_t hi,
                                    std::uint64_t &out) {
  auto it = req.params.find(name);
  if (it == req.params.end()) {
    return std::nullopt;
  }
  const std::string &v = it->second;
  std::uint64_t n = 0;
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (v.empty() || ec != std::errc() || end != v.data() + v.size() || n < lo || n > hi) {
    return fmt::format("{}={}: expected a whole number from {} to {}", name, v, lo, hi);
  }
  out = n;
  return std::nullopt;
}

std::optional<std::string> readSeconds(const http::Request &req, double &out) {
  auto it = req.params.find("seconds");
  if (it == req.params.end()) {
    return std::nullopt;
  }
  const std::string &v = it->second;
  char *end = nullptr;
  double s = std::strtod(v.c_str(), &end);
  if (v.empty() || end != v.c_str() + v.size() || !std::isfinite(s) || s <= 0 || s > kMaxSeconds) {
    return fmt::format("seconds={}: expected a number of seconds above 0 and at most {}", v, kMaxSeconds);
  }
  out = s;
  return std::nullopt;
}

std::string endLine(const char *reason, Client &c) {
  return fmt::format("{{\"end\":{{\"reason\":\"{}\",\"sampled\":{},\"skipped\":{}}}}}\n", reason, c.sampled(),
                     c.skipped());
}

/// Streams @p client's lines until its limit, the deadline, the client going away or the
/// server stopping.
void stream(const http::Server &server, Client &client, Clock::time_point deadline, const http::ChunkWriter &write) {
  auto last_write = Clock::now();
  std::string line;
  while (true) {
    if (server.stopping()) {
      (void)write(endLine("server_stopping", client));
      return;
    }
    if (client.finished()) {
      (void)write(endLine("limit", client));
      return;
    }
    auto now = Clock::now();
    if (now >= deadline) {
      (void)write(endLine("seconds", client));
      return;
    }
    if (client.next(line, std::min(deadline, now + kSlice))) {
      line += '\n';
      if (!write(line)) {
        return;  // the client went away
      }
      last_write = Clock::now();
    } else if (Clock::now() - last_write >= kKeepAlive) {
      // Nothing to send for a while: a blank line finds out whether the client is still there.
      if (!write("\n")) {
        return;
      }
      last_write = Clock::now();
    }
  }
}

}  // namespace

void addRoute(http::Server &server, const Engine &engine) {
  // The pipelines from the counters (thread-safe at any time, also while the engine starts
  // or reloads): every pipeline has its input's `received` from its construction on.
  addRoute(server, engine.httpTap(), [&engine] {
    std::vector<std::string> names;
    for (const auto &c : engine.counters()) {
      if (!c.pipeline.empty() && std::find(names.begin(), names.end(), c.pipeline) == names.end()) {
        names.push_back(c.pipeline);
      }
    }
    return names;
  });
}

void addRoute(http::Server &server, bool enabled, std::function<std::vector<std::string>()> pipelines) {
  server.route("/tap", [&server, enabled, pipelines = std::move(pipelines)](const http::Request &req) {
    if (!enabled) {
      return jsonError(404, "the tap is off: set `tap: true` under settings.http in the configuration to enable it");
    }
    Client::Options opts;
    opts.pipeline = req.param("pipeline");
    std::uint64_t body = kDefaultBodyBytes;
    double seconds = kDefaultSeconds;
    if (auto e = readUint(req, "limit", 1, kMaxLimit, opts.limit)) {
      return jsonError(400, *e);
    }
    if (auto e = readUint(req, "body_bytes", 0, kMaxBodyBytes, body)) {
      return jsonError(400, *e);
    }
    if (auto e = readSeconds(req, seconds)) {
      return jsonError(400, *e);
    }
    opts.body_bytes = static_cast<std::size_t>(body);
    if (!opts.pipeline.empty()) {
      auto known = pipelines();
      if (std::find(known.begin(), known.end(), opts.pipeline) == known.end()) {
        return jsonError(404, fmt::format("no pipeline '{}' is running; the pipelines are: {}", opts.pipeline,
                                          known.empty() ? std::string("(none)") : fmt::format("{}", fmt::join(known, ", "))));
      }
    }
    std::shared_ptr<Client> client = Client::attach(std::move(opts));
    if (!client) {
      return jsonError(503, fmt::format("{} tap clients are attached already, the most at once; try again when one "
                                        "ends",
                                        kMaxClients));
    }
    auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
    http::Response r;
    r.content_type = "application/x-ndjson";
    r.stream = [&server, client, deadline](const http::ChunkWriter &write) { stream(server, *client, deadline, write); };
    return r;
  });
}

}  // namespace switchyard::tap
