// SPDX-License-Identifier: MIT
// `switchyard verify-missing`: the replacement of `fedmsg-migration-tools verify_missing`
// as a thin wrapper: it builds a two-pipeline configuration (zmq-sub -> verify-missing,
// amqp-consume -> verify-missing, docs/plugins/verify-missing.md) and runs it.
//
// It lives beside the verify-missing sink it configures, and is built into the switchyard
// command (core/cli/meson.build takes sy_verify_cli_sources from this folder's meson.build).
#pragma once

#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "switchyard/engine.hpp"

namespace switchyard::cli {

struct VerifyOptions {
  std::vector<std::string> zmq_endpoints;
  std::vector<std::string> topics;
  std::string amqp_url;
  std::string password_file;
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
  std::string queue = "switchyard_verify_missing";
  std::vector<std::string> bindings = {"zmq.topic:#", "amq.topic:#"};
  std::int64_t queue_ttl_ms = 60000;
  double window = 60;
  double retain = 60;
  double startup_grace = 5;
  std::int64_t max_entries = 100000;
  std::string report;
  std::string id_header = "fedmsg_msg_id";
  bool log_matches = false;
  double stats_interval = 60;
  bool print_config = false;
};

/// Adds the `verify-missing` subcommand to @p app; options land in @p opts.
CLI::App *addVerifyCommand(CLI::App &app, VerifyOptions &opts);

/// The YAML configuration the command runs (also printed by --print-config).
/// Throws std::invalid_argument for a malformed --binding.
std::string verifyConfig(const VerifyOptions &opts);

/// Runs the command; returns the process exit code.
int runVerify(const VerifyOptions &opts, const EngineOptions &engine_options);

}  // namespace switchyard::cli
