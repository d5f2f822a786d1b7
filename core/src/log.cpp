// SPDX-License-Identifier: MIT
#include "log.hpp"

#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>

#include <fmt/format.h>
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

/// The members withFields() adds to the record it logs; sinks run on the logging thread.
thread_local std::string_view t_members;

/// RFC 3339 in UTC with milliseconds: 2026-12-05T19:18:17.123Z.
std::string rfc3339Millis(std::chrono::system_clock::time_point tp) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(tp.time_since_epoch()).count();
  auto secs = static_cast<std::time_t>(ms / 1000);
  auto frac = ms % 1000;
  if (frac < 0) {  // before 1970: floor, not truncate
    frac += 1000;
    --secs;
  }
  std::tm tm{};
  gmtime_r(&secs, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
}

/// One JSON object per line: {"time":..., "level":..., "logger":..., "message":..., ...}
/// with the members of withFields() last.
class JsonSink final : public spdlog::sinks::base_sink<std::mutex> {
 protected:
  void sink_it_(const spdlog::details::log_msg &msg) override {
    std::string line;
    line.reserve(msg.payload.size() + t_members.size() + 112);
    line += "{\"time\":";
    appendJsonString(line, rfc3339Millis(msg.time));
    line += ",\"level\":";
    auto lv = spdlog::level::to_string_view(msg.level);
    appendJsonString(line, std::string_view(lv.data(), lv.size()));
    line += ",\"logger\":";
    appendJsonString(line, std::string_view(msg.logger_name.data(), msg.logger_name.size()));
    line += ",\"message\":";
    appendJsonString(line, std::string_view(msg.payload.data(), msg.payload.size()));
    if (!t_members.empty()) {
      line += ',';
      line += t_members;
    }
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

void withFields(LogLevel level, std::string_view message, std::string_view members) {
  struct Reset {
    ~Reset() { t_members = {}; }
  } reset;
  t_members = members;
  core()->log(toSpd(level), "{}", message);
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
