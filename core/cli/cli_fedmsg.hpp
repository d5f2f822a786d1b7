// SPDX-License-Identifier: MIT
// fedmsg's command-line habits as thin wrappers over pipelines:
//   switchyard tail ENDPOINT...            zmq-sub -> stdout (like fedmsg-tail)
//   switchyard logger --endpoint E --topic T [--message M]
//                                          stdin lines / M -> zmq-pub (like fedmsg-logger)
#pragma once

#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "switchyard/engine.hpp"

namespace switchyard::cli {

struct TailOptions {
  std::vector<std::string> endpoints;
  std::vector<std::string> topics;
  bool bind = false;
};

struct LoggerOptions {
  std::string endpoint;
  std::string topic;
  std::string message;
  bool has_message = false;
  bool bind = false;
  bool json_input = false;
  std::string username;
  double wait_for_subscriber = 2.0;
  int linger_ms = 1000;
};

/// Adds the `tail` subcommand to @p app; options land in @p opts.
CLI::App *addTailCommand(CLI::App &app, TailOptions &opts);
/// Adds the `logger` subcommand to @p app; options land in @p opts.
CLI::App *addLoggerCommand(CLI::App &app, LoggerOptions &opts);

/// The YAML configurations the commands run (exposed for tests and --dry-run style use).
std::string tailConfig(const TailOptions &opts);
std::string loggerConfig(const LoggerOptions &opts);

/// Run the commands; return the process exit code.
int runTail(const TailOptions &opts, const EngineOptions &engine_options);
int runLogger(const LoggerOptions &opts, const EngineOptions &engine_options);

}  // namespace switchyard::cli
