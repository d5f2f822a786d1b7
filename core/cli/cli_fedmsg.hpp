// SPDX-License-Identifier: MIT
// `switchyard logger` (like fedmsg-logger, and `fedora-messaging publish` with --amqp) as a
// thin wrapper over a pipeline:
//   stdin lines / --message M -> [signer with --cert/--key] -> zmq-pub | amqp-publish
// (tail and record: cli_tail.hpp)
#pragma once

#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "switchyard/engine.hpp"

namespace switchyard::cli {

struct LoggerOptions {
  std::string endpoint;
  std::string topic;
  std::string message;
  bool has_message = false;
  bool bind = false;
  bool json_input = false;
  bool plain = false;  ///< --plain: --message is always {"log": M}
  std::string cert_file, key_file;  ///< sign with the signer plugin
  std::string amqp_url;             ///< publish to AMQP instead of ZeroMQ
  std::string exchange = "amq.topic";
  std::string password_file;        ///< AMQP: first line replaces the URL's password
  std::string username;
  double wait_for_subscriber = 2.0;
  /// Seconds the messages may take to be published once the input ended (as
  /// fedora-messaging publish's timeout); then the logger gives up, exit status 1.
  double timeout = 30.0;
  int linger_ms = 1000;
};

/// Adds the `logger` subcommand to @p app; options land in @p opts.
CLI::App *addLoggerCommand(CLI::App &app, LoggerOptions &opts);

/// The YAML configurations the commands run (exposed for tests and --dry-run style use).
/// Throws std::invalid_argument for options that do not fit together.
std::string loggerConfig(const LoggerOptions &opts);

/// Run the commands; return the process exit code.
int runLogger(const LoggerOptions &opts, const EngineOptions &engine_options);

}  // namespace switchyard::cli
