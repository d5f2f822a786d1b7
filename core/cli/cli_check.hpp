// SPDX-License-Identifier: MIT
// `switchyard check`: every problem and warning of a configuration in one run, each once,
// at its file:line:column; with --connect, every plugin's probe of its peers and files.
#pragma once

#include <string>

#include <CLI/CLI.hpp>

#include "switchyard/engine.hpp"

namespace switchyard::cli {

struct CheckOptions {
  std::string file;
  bool strict = false;    ///< --strict: warnings fail the check too
  bool connect = false;   ///< --connect: probe peers and files after a clean check
  double timeout_s = 10;  ///< --timeout: each plugin's probe deadline
};

/// Adds the `check` subcommand and its options to @p app.
CLI::App *addCheckCommand(CLI::App &app, CheckOptions &o);

/// Runs `check`. Exit status: 0 clean (warnings printed), 2 errors (or warnings with
/// --strict), 1 a probe failed (--connect).
int runCheck(const CheckOptions &o, EngineOptions engine_options);

}  // namespace switchyard::cli
