// SPDX-License-Identifier: MIT
// Helpers shared by the subcommands that build a configuration from their arguments.
#pragma once

#include <signal.h>

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "switchyard/engine.hpp"

namespace switchyard::cli {

/// The global options, accepted before or after the subcommand (`switchyard --log-level
/// debug check x.yaml` and `switchyard check x.yaml --log-level debug`).
struct Common {
  std::vector<std::string> plugin_paths;
  std::string log_level = "info";
  std::string log_format = "text";
};

/// Adds the global options to @p app and makes every subcommand added afterwards pass
/// the options it does not know to @p app (CLI11 fall-through). Each option takes exactly
/// one value per use, so `plugins --plugin-path DIR NAME` keeps NAME as the positional.
void addGlobalOptions(CLI::App &app, Common &c);
/// Sets up logging from the global options; false (after a message) for a bad level.
bool setupLogging(const Common &c);
/// The engine options the global options ask for.
EngineOptions engineOptions(const Common &c);

/// The candidate closest to @p word by Damerau-Levenshtein distance (adjacent swaps count
/// one edit), when it is at most @p max_distance edits away; "" otherwise. Ties go to the
/// first candidate.
std::string closestMatch(std::string_view word, const std::vector<std::string> &candidates,
                         std::size_t max_distance = 2);

/// Checks the first word that is not an option of @p argv against the subcommands of
/// @p app: false after printing "unknown command 'chekc'; did you mean 'check'?" (or the
/// list of commands) when it is none of them. Values of the global options are skipped.
bool checkSubcommandName(const CLI::App &app, int argc, const char *const *argv);

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

/// Blocks SIGINT, SIGTERM and SIGHUP for the calling thread and returns them as a set. Call it
/// before any pipeline thread starts: the threads inherit the mask and only the main
/// thread takes the signals, synchronously, in runEngine().
sigset_t blockStopSignals();

/// Prints every diagnostic of @p e on stderr, then their count.
void printDiagnostics(const ConfigError &e);

/// Starts a loaded engine and runs it until every pipeline ended or SIGINT/SIGTERM asked
/// for a stop (drain, then close); a second signal exits at once. SIGHUP reloads the
/// configuration file (cli_reload.hpp), or stops an engine made from the command line. @p on_stats runs every
/// @p stats_interval seconds (never when it is 0), @p on_started once after the start.
/// Returns kExitOk, or kExitFailure when the start or a pipeline failed.
int runEngine(Engine &engine, const sigset_t &signals, double stats_interval = 0,
              const std::function<void()> &on_stats = {},
              const std::function<void()> &on_started = {});

}  // namespace switchyard::cli
