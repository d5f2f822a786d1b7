// SPDX-License-Identifier: MIT
// `switchyard tail` (like fedmsg-tail, and `fedora-messaging consume` with --amqp) and
// `switchyard record FILE` (like `fedora-messaging record`): watch a bus and show or
// record each message with its username, timestamp, `i` and signature verdict.
//
//   ZeroMQ:  zmq-sub -> [tail-select] -> tail-print
//   AMQP:    amqp-consume (private server-named queue) -> [tail-select] -> tail-print
//   --validate adds a second pipeline, so each message's verdict is known, valid or not:
//            input -> [tail-select] -> tail-handoff  ==>  tail-verdicts -> verifier -> tail-discard
//            (the tail-verdicts source prints each message when the verifier is done with it)
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "switchyard/engine.hpp"

namespace switchyard::cli {

struct TailOptions {
  // Where from.
  std::vector<std::string> endpoints;     ///< ZeroMQ addresses (positional)
  std::vector<std::string> topics;        ///< ZeroMQ subscription prefixes
  std::vector<std::string> bind_values;   ///< --bind [VALUE], see resolveBind()
  const CLI::Option *bind_option = nullptr;  ///< counts bare --bind uses too
  bool bind = false;                      ///< ZeroMQ: bind instead of connecting
  std::string amqp_url;                   ///< --amqp URL: consume from AMQP instead
  std::vector<std::pair<std::string, std::string>> amqp_bindings;  ///< EXCHANGE, KEY
  std::string queue;                      ///< "" = server-named, exclusive, auto-delete
  std::string password_file;              ///< AMQP: first line replaces the URL's password
  // Which messages.
  std::vector<std::string> include;  ///< ECMAScript regexes searched in the topic
  std::vector<std::string> exclude;
  std::int64_t limit = 0;            ///< exit after this many messages (0: never)
  // Signatures.
  bool validate = false;
  std::string ca_file, crl_file, policy_file;
  bool nitpicky = false;
  bool valid_only = false;
  // How.
  bool pretty = false, terse = false, json = false;
  std::string colour = "auto";
  std::string record_file;  ///< `record FILE`: JSON lines into FILE instead of stdout
};

/// Adds the `tail` subcommand to @p app; options land in @p opts.
CLI::App *addTailCommand(CLI::App &app, TailOptions &opts);
/// Adds `record FILE`: tail's sources, filters and --validate, JSON lines into FILE.
CLI::App *addRecordCommand(CLI::App &app, TailOptions &opts);

/// Sorts the --bind values into ZeroMQ bind mode (a bare --bind, or --bind ENDPOINT) and
/// AMQP bindings (--bind EXCHANGE=KEY); throws std::invalid_argument for a mix or a bad one.
void resolveBind(TailOptions &opts);

/// The YAML configuration tail runs (in-process plugins tail-select, tail-print, ...).
/// Throws std::invalid_argument for options that do not fit together.
std::string tailConfig(const TailOptions &opts);

/// Runs tail or record; returns the process exit code.
int runTail(TailOptions opts, const EngineOptions &engine_options);

}  // namespace switchyard::cli
