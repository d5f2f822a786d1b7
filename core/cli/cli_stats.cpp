// SPDX-License-Identifier: MIT
#include "cli_stats.hpp"

#include <map>
#include <string_view>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "log.hpp"
#include "metric_names.hpp"
#include "switchyard/json.hpp"

namespace switchyard::cli {

std::string counterToken(const std::string &name, const std::string &label) {
  if (label.empty()) {
    return name;
  }
  return fmt::format("{}{{{}={}}}", name, labelName(name), label);
}

namespace {

/// The counters of one plugin instance that go into one line, in the engine's order.
struct Line {
  std::string pipeline;
  std::string plugin;
  std::vector<std::pair<std::string, std::int64_t>> counters;  ///< token, value
};

void emit(const Line &line, bool totals) {
  std::string text = fmt::format("stats: pipeline={} plugin=\"{}\"", line.pipeline, line.plugin);
  std::string members = totals ? R"("stats":"totals","pipeline":)" : R"("stats":"interval","pipeline":)";
  json::writeString(line.pipeline, members, json::Escape::Utf8);
  members += R"(,"plugin":)";
  json::writeString(line.plugin, members, json::Escape::Utf8);
  members += R"(,"counters":{)";
  bool first = true;
  for (const auto &[token, value] : line.counters) {
    text += fmt::format(" {}={}", token, value);
    if (!first) {
      members += ',';
    }
    first = false;
    json::writeString(token, members, json::Escape::Utf8);
    members += fmt::format(":{}", value);
  }
  members += '}';
  logging::withFields(LogLevel::Info, text, members);
}

}  // namespace

void StatsLog::interval() { log(false); }

void StatsLog::totals() { log(true); }

void StatsLog::log(bool totals) {
  // The engine lists counters before gauges: group by plugin, in order of first appearance.
  std::vector<Line> lines;
  std::map<std::pair<std::string, std::string>, std::size_t> index;
  for (const auto &s : engine_.counters()) {
    Key key{s.pipeline, s.plugin, s.name, s.label};
    auto it = logged_.find(key);
    std::int64_t before = it == logged_.end() ? 0 : it->second;
    bool show = totals ? (s.value != 0 || s.value != before) : s.value != before;
    if (!show) {
      continue;
    }
    logged_[key] = s.value;
    auto [at, added] = index.try_emplace({s.pipeline, s.plugin}, lines.size());
    if (added) {
      lines.push_back(Line{s.pipeline, s.plugin, {}});
    }
    lines[at->second].counters.emplace_back(counterToken(s.name, s.label), s.value);
  }
  for (const auto &line : lines) {
    emit(line, totals);
  }
}

}  // namespace switchyard::cli
