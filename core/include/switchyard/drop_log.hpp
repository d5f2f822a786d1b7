// SPDX-License-Identifier: MIT
//
// SDK: a rate-limited log for plugins: a flood of bad input must not flood the log as well.
// Header-only, built on PluginContext's logger; not part of the binary plugin ABI.
// docs/writing-a-plugin.md shows it in use:
//
//   DropLog log_{1, std::chrono::seconds(10)};   // a member: one line per key per 10 s
//   log_.warn(ctx, "bad_json", "dropping a message on {}: {}", msg.topic(), why);
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>

#include <fmt/format.h>

#include "switchyard/plugin.hpp"

namespace switchyard {

/// Logs at most @p per_window lines per key (a drop reason, an event name) in each
/// window; the number of lines held back is reported with the next line that is logged.
/// THREADING: the owning plugin's thread only.
class DropLog {
 public:
  explicit DropLog(unsigned per_window = 1, std::chrono::steady_clock::duration window = std::chrono::seconds(1))
      : per_window_(per_window), window_(window) {}

  template <typename... Args>
  void warn(PluginContext &ctx, std::string_view key, fmt::format_string<Args...> f, Args &&...args) noexcept {
    emit(LogLevel::Warn, ctx, key, f, std::forward<Args>(args)...);
  }
  template <typename... Args>
  void info(PluginContext &ctx, std::string_view key, fmt::format_string<Args...> f, Args &&...args) noexcept {
    emit(LogLevel::Info, ctx, key, f, std::forward<Args>(args)...);
  }

 private:
  template <typename... Args>
  void emit(LogLevel level, PluginContext &ctx, std::string_view key, fmt::format_string<Args...> f,
            Args &&...args) noexcept {
    try {
      auto now = std::chrono::steady_clock::now();
      auto it = entries_.find(key);  // no string built for a key already seen
      if (it == entries_.end()) {
        it = entries_.emplace(std::string(key), Entry{}).first;
      }
      Entry &e = it->second;
      if (e.used == 0 || now - e.start >= window_) {
        e.start = now;
        e.used = 0;
      }
      if (e.used >= per_window_) {
        ++e.suppressed;
        return;
      }
      ++e.used;
      std::string text = fmt::format(f, std::forward<Args>(args)...);
      if (e.suppressed > 0) {
        ctx.log().logf(level, "{} [{} similar line(s) suppressed]", text, e.suppressed);
      } else {
        ctx.log().log(level, text);
      }
      e.suppressed = 0;
    } catch (...) {
      ctx.log().log(level, "(log formatting failed)");
    }
  }

  struct Entry {
    std::chrono::steady_clock::time_point start{};
    unsigned used = 0;
    std::uint64_t suppressed = 0;
  };
  unsigned per_window_;
  std::chrono::steady_clock::duration window_;
  std::map<std::string, Entry, std::less<>> entries_;
};

}  // namespace switchyard
