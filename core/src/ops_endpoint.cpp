// SPDX-License-Identifier: MIT
#include "ops_endpoint.hpp"

#include <ctime>
#include <map>
#include <stdexcept>
#include <utility>

#include <fmt/format.h>

#include "log.hpp"
#include "metrics_text.hpp"
#include "switchyard/json.hpp"

namespace switchyard::ops {

namespace {

using Clock = std::chrono::steady_clock;

/// When the router library was loaded: the process's start, for the `switchyard` command.
const double kProcessStart =
    std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();

void jstr(std::string &out, std::string_view s) { json::writeString(s, out, json::Escape::Utf8); }

std::string isoTime(std::chrono::system_clock::time_point t) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  ::gmtime_r(&secs, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                     tm.tm_hour, tm.tm_min, tm.tm_sec, ms % 1000);
}

http::Response json(int status, std::string body) {
  body += '\n';
  return http::Response{status, "application/json", std::move(body), {}};
}

/// The samples of each (pipeline, plugin label).
using ByPlace = std::map<std::pair<std::string, std::string>, std::vector<const CounterSample *>>;

ByPlace byPlace(const std::vector<CounterSample> &samples) {
  ByPlace out;
  for (const auto &s : samples) {
    out[{s.pipeline, s.plugin}].push_back(&s);
  }
  return out;
}

/// Why the plugin whose samples are @p samples is not ready ("" when it is).
std::string notReady(const std::vector<const CounterSample *> *samples) {
  if (samples == nullptr) {
    return {};
  }
  for (const auto *s : *samples) {
    if (!s->gauge) {
      continue;
    }
    if (s->name == "connected" && s->value != 1) {
      return "not connected (gauge connected is 0)";
    }
    if (s->name == "blocked" && s->value == 1) {
      return "blocked by its peer (gauge blocked is 1)";
    }
  }
  return {};
}

void addProblem(std::string &problems, std::string_view pipeline, std::string_view plugin, std::string_view reason) {
  problems += problems.empty() ? "" : ",";
  problems += "{\"pipeline\":";
  jstr(problems, pipeline);
  if (!plugin.empty()) {
    problems += ",\"plugin\":";
    jstr(problems, plugin);
  }
  problems += ",\"reason\":";
  jstr(problems, reason);
  problems += '}';
}

/// {"received":5,"completed":{"delivered":5}} of the counters (or gauges) in @p samples.
std::string values(const std::vector<const CounterSample *> *samples, bool gauges) {
  std::map<std::string, std::map<std::string, std::int64_t>> by_name;
  if (samples != nullptr) {
    for (const auto *s : *samples) {
      if (s->gauge == gauges) {
        by_name[s->name][s->label] = s->value;
      }
    }
  }
  std::string out = "{";
  for (const auto &[name, labels] : by_name) {
    out += out.size() > 1 ? "," : "";
    jstr(out, name);
    out += ':';
    if (labels.size() == 1 && labels.begin()->first.empty()) {
      out += std::to_string(labels.begin()->second);
      continue;
    }
    out += '{';
    bool first = true;
    for (const auto &[label, v] : labels) {
      out += first ? "" : ",";
      first = false;
      jstr(out, label);
      out += ':' + std::to_string(v);
    }
    out += '}';
  }
  return out + "}";
}

}  // namespace

bool ready(const std::vector<PipelineStatus> &status, const std::vector<CounterSample> &samples,
           std::string &problems) {
  ByPlace places = byPlace(samples);
  auto find = [&places](const std::string &pipeline, const std::string &plugin) {
    auto it = places.find({pipeline, plugin});
    return it == places.end() ? nullptr : &it->second;
  };
  bool ok = true;
  for (const auto &p : status) {
    if (p.state != "running") {
      addProblem(problems, p.name, {}, fmt::format("pipeline is {}", p.state));
      ok = false;
    }
    for (const auto &plugin : p.plugins) {
      std::string label = plugin.label();
      if (std::string why = notReady(find(p.name, label)); !why.empty()) {
        addProblem(problems, p.name, label, why);
        ok = false;
      }
    }
  }
  return ok;
}

Endpoint::Endpoint(Engine &engine) : engine_(engine), last_tick_ns_(Clock::now().time_since_epoch().count()) {
  server_.route("/metrics", [this](const http::Request &) { return metrics(); });
  server_.route("/health/live", [this](const http::Request &) { return live(); });
  server_.route("/health/ready", [this](const http::Request &) { return readyResponse(); });
  server_.route("/pipelines", [this](const http::Request &) { return pipelines(); });
}

Endpoint::~Endpoint() { server_.stop(); }

void Endpoint::start(const http::Listen &where) { server_.start(where); }

void Endpoint::tick() noexcept { last_tick_ns_.store(Clock::now().time_since_epoch().count()); }

http::Response Endpoint::metrics() const {
  metrics::ProcessInfo info{SWITCHYARD_VERSION, kProcessStart};
  return http::Response{200, metrics::kContentType,
                        metrics::render(engine_.counters(), engine_.histograms(), info), {}};
}

http::Response Endpoint::live() const {
  if (!started_.load()) {
    return json(200, "{\"status\":\"live\",\"state\":\"starting\"}");  // the loop is in Engine::start()
  }
  auto ago = Clock::now().time_since_epoch() - Clock::duration(last_tick_ns_.load());
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(ago).count();
  if (ago > kLiveTimeout) {
    return json(503, fmt::format("{{\"status\":\"stalled\",\"last_turn_ms_ago\":{},\"limit_ms\":{}}}", ms,
                                 std::chrono::duration_cast<std::chrono::milliseconds>(kLiveTimeout).count()));
  }
  return json(200, fmt::format("{{\"status\":\"live\",\"last_turn_ms_ago\":{}}}", ms));
}

http::Response Endpoint::readyResponse() const {
  if (!started_.load()) {
    return json(503, "{\"status\":\"not ready\",\"problems\":[{\"reason\":\"starting\"}]}");
  }
  std::vector<PipelineStatus> status = engine_.status();
  std::string problems;
  if (ready(status, engine_.counters(), problems)) {
    return json(200, fmt::format("{{\"status\":\"ready\",\"pipelines\":{}}}", status.size()));
  }
  return json(503, "{\"status\":\"not ready\",\"problems\":[" + problems + "]}");
}

http::Response Endpoint::pipelines() const {
  if (!started_.load()) {
    return json(200, "{\"state\":\"starting\",\"pipelines\":[]}");
  }
  std::vector<PipelineStatus> status = engine_.status();
  std::vector<CounterSample> samples = engine_.counters();
  std::vector<HistogramSample> histograms = engine_.histograms();
  ByPlace places = byPlace(samples);
  auto find = [&places](const std::string &pipeline, const std::string &plugin) {
    auto it = places.find({pipeline, plugin});
    return it == places.end() ? nullptr : &it->second;
  };
  std::string out = "{\"state\":\"started\",\"pipelines\":[";
  for (std::size_t i = 0; i < status.size(); ++i) {
    const auto &p = status[i];
    std::string problems;
    bool ok = ready({p}, samples, problems);
    out += i > 0 ? "," : "";
    out += "{\"name\":";
    jstr(out, p.name);
    out += ",\"state\":";
    jstr(out, p.state);
    out += fmt::format(",\"ready\":{},\"last_message\":", ok);
    if (p.last_message) {
      jstr(out, isoTime(*p.last_message));
    } else {
      out += "null";
    }
    const auto *own = find(p.name, "");
    out += ",\"counters\":" + values(own, false) + ",\"gauges\":" + values(own, true);
    for (const auto &h : histograms) {
      if (h.pipeline == p.name && h.plugin.empty() && h.name == "pipeline_latency_seconds") {
        out += fmt::format(",\"latency_seconds\":{{\"count\":{},\"sum\":{}}}", h.count, h.sum);
      }
    }
    out += ",\"plugins\":[";
    for (std::size_t k = 0; k < p.plugins.size(); ++k) {
      const auto &pl = p.plugins[k];
      const auto *mine = find(p.name, pl.label());
      std::string why = notReady(mine);
      out += k > 0 ? "," : "";
      out += "{\"place\":";
      jstr(out, pl.place);
      out += ",\"type\":";
      jstr(out, pl.type);
      out += fmt::format(",\"ready\":{}", why.empty());
      if (!why.empty()) {
        out += ",\"reason\":";
        jstr(out, why);
      }
      out += ",\"counters\":" + values(mine, false) + ",\"gauges\":" + values(mine, true) + "}";
    }
    out += "]}";
  }
  return json(200, out + "]}");
}

std::unique_ptr<Endpoint> startEndpoint(Engine &engine, const std::function<void(http::Server &)> &add_routes) {
  std::string text = engine.httpListen();
  if (text.empty()) {
    return nullptr;
  }
  http::Listen where;
  if (auto why = http::parseListen(text, where)) {
    throw std::invalid_argument("http: " + *why);
  }
  auto endpoint = std::make_unique<Endpoint>(engine);
  if (add_routes) {
    add_routes(endpoint->server());
  }
  endpoint->start(where);
  logging::core()->info("http: serving /metrics, /health/live, /health/ready and /pipelines on http://{}/",
                        endpoint->server().address());
  return endpoint;
}

}  // namespace switchyard::ops
