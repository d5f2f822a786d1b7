// SPDX-License-Identifier: MIT
// Logging: spdlog on stderr, text or JSON lines (internal to libswitchyard).
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include <spdlog/spdlog.h>

#include "switchyard/plugin.hpp"

namespace switchyard::logging {

enum class Format { Text, Json };

/// Configures the process-wide logger. Call once from main (or never: defaults are
/// info level, text format).
void setup(LogLevel level, Format format);

/// Parses "trace|debug|info|warn|error|critical"; returns false on an unknown name.
bool parseLevel(std::string_view name, LogLevel &out);

/// The core's own spdlog logger.
std::shared_ptr<spdlog::logger> core();

/// Logs @p message through core() at @p level. In the JSON format the record also carries
/// @p members: JSON object members without the braces (`"pipeline":"p","counters":{...}`),
/// after "message"; the text format prints only @p message.
void withFields(LogLevel level, std::string_view message, std::string_view members);

/// A Logger that prefixes every line with a context ("pipelines.p.inputs (stdin)").
class ContextLogger final : public Logger {
 public:
  explicit ContextLogger(std::string context) : context_(std::move(context)) {}
  void log(LogLevel level, std::string_view message) noexcept override;
  [[nodiscard]] bool enabled(LogLevel level) const noexcept override;

 private:
  std::string context_;
};

/// The default logger handed to plugins when the embedder gave none.
Logger &root();

}  // namespace switchyard::logging
