// SPDX-License-Identifier: MIT
// Helpers shared by the subcommands that build a configuration from their arguments.
#pragma once

#include <signal.h>

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "switchyard/engine.hpp"

namespace switchyard::cli {

/// A YAML double-quoted scalar holding @p s literally: quotes and backslashes escaped,
/// control characters as \xXX, and `$` doubled because the configuration loader expands
/// `${VAR}` in values while command-line text must stay as typed.
inline std::string yamlQuote(std::string_view s) {
  std::string out = "\"";
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += ch;
    } else if (c == '$') {
      out += "$$";
    } else if (c < 0x20 || c == 0x7F) {
      out += fmt::format("\\x{:02x}", c);
    } else {
      out += ch;
    }
  }
  out += '"';
  return out;
}

/// A YAML flow sequence of quoted scalars.
inline std::string yamlList(const std::vector<std::string> &items) {
  std::string out = "[";
  for (std::size_t k = 0; k < items.size(); ++k) {
    if (k > 0) {
      out += ", ";
    }
    out += yamlQuote(items[k]);
  }
  out += ']';
  return out;
}

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitConfig = 2;
/// A plugin could not start and said a restart cannot help (wrong credentials, missing
/// vhost, inequivalent declaration, unusable TLS files): systemd units list it in
/// RestartPreventExitStatus=.
inline constexpr int kExitPermanent = 3;

/// Blocks SIGINT and SIGTERM for the calling thread and returns them as a set. Call it
/// before any pipeline thread starts: the threads inherit the mask and only the main
/// thread takes the signals, synchronously, in runEngine().
sigset_t blockStopSignals();

/// Prints every diagnostic of @p e on stderr, then their count.
void printDiagnostics(const ConfigError &e);

/// Starts a loaded engine and runs it until every pipeline ended or SIGINT/SIGTERM asked
/// for a stop (drain, then close); a second signal exits at once. @p on_stats runs every
/// @p stats_interval seconds (never when it is 0), @p on_started once after the start.
/// Returns kExitOk, or kExitFailure when the start or a pipeline failed.
int runEngine(Engine &engine, const sigset_t &signals, double stats_interval = 0,
              const std::function<void()> &on_stats = {},
              const std::function<void()> &on_started = {});

}  // namespace switchyard::cli
