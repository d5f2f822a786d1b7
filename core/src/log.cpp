// SPDX-License-Identifier: MIT
#include "log.hpp"

#include <chrono>
#include <cstdio>
#include <mutex>

#include <fmt/chrono.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/stdout_sinks.h>

#include "switchyard/json.hpp"

namespace switchyard::logging {
namespace {

spdlog::level::level_enum toSpd(LogLevel l) {
  switch (l) {
    case LogLevel::Trace: return spdlog::level::trace;
    case LogLevel::Debug: return spdlog::level::debug;
    case LogLevel::Info: return spdlog::level::info;
    case LogLevel::Warn: return spdlog::level::warn;
    case LogLevel::Error: return spdlog::level::err;
    case LogLevel::Critical: return spdlog::level::critical;
  }
  return spdlog::level::info;
}

/// The codec's one JSON string writer, keeping non-ASCII text readable (ensure_ascii=False);
/// bytes that are not UTF-8 become U+FFFD, so every line is valid JSON.
void appendJsonString(std::string &out, std::string_view s) { json::writeString(s, out, json::Escape::Utf8); }

/// One JSON object per line: {"time":..., "level":..., "logger":..., "message":...}
class JsonSink final : public spdlog::sinks::base_sink<std::mutex> {
 protected:
  void sink_it_(const spdlog::details::log_msg &msg) override {
    std::string line;
    line.reserve(msg.payload.size() + 96);
    auto t = std::chrono::time_point_cast<std::chrono::milliseconds>(msg.time);
    line += "{\"time\":";
    appendJsonString(line, fmt::format("{:%Y-%m-%dT%H:%M:%S}Z", t));
    line += ",\"level\":";
    auto lv = spdlog::level::to_string_view(msg.level);
    appendJsonString(line, std::string_view(lv.data(), lv.size()));
    line += ",\"logger\":";
    appendJsonString(line, std::string_view(msg.logger_name.data(), msg.logger_name.size()));
    line += ",\"message\":";
    appendJsonString(line, std::string_view(msg.payload.data(), msg.payload.size()));
    line += "}\n";
    std::fwrite(line.data(), 1, line.size(), stderr);
  }
  void flush_() override { std::fflush(stderr); }
};

std::mutex g_mutex;
std::shared_ptr<spdlog::logger> g_core;

std::shared_ptr<spdlog::logger> makeLogger(Format format) {
  spdlog::sink_ptr sink;
  if (format == Format::Json) {
    sink = std::make_shared<JsonSink>();
  } else {
    sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
    sink->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%-5l%$ %v");
  }
  auto l = std::make_shared<spdlog::logger>("switchyard", sink);
  l->flush_on(spdlog::level::warn);
  return l;
}

}  // namespace

void setup(LogLevel level, Format format) {
  std::lock_guard lock(g_mutex);
  g_core = makeLogger(format);
  g_core->set_level(toSpd(level));
}

bool parseLevel(std::string_view name, LogLevel &out) {
  static constexpr std::pair<std::string_view, LogLevel> kLevels[] = {
      {"trace", LogLevel::Trace}, {"debug", LogLevel::Debug}, {"info", LogLevel::Info},
      {"warn", LogLevel::Warn},   {"warning", LogLevel::Warn}, {"error", LogLevel::Error},
      {"critical", LogLevel::Critical},
  };
  for (const auto &[n, l] : kLevels) {
    if (n == name) {
      out = l;
      return true;
    }
  }
  return false;
}

std::shared_ptr<spdlog::logger> core() {
  std::lock_guard lock(g_mutex);
  if (!g_core) {
    g_core = makeLogger(Format::Text);
    g_core->set_level(spdlog::level::info);
  }
  return g_core;
}

void ContextLogger::log(LogLevel level, std::string_view message) noexcept {
  try {
    if (context_.empty()) {
      core()->log(toSpd(level), "{}", message);
    } else {
      core()->log(toSpd(level), "{}: {}", context_, message);
    }
  } catch (...) {
    // Logging never takes the data path down.
  }
}

bool ContextLogger::enabled(LogLevel level) const noexcept {
  try {
    return core()->should_log(toSpd(level));
  } catch (...) {
    return false;
  }
}

Logger &root() {
  static ContextLogger logger{std::string()};
  return logger;
}

}  // namespace switchyard::logging
