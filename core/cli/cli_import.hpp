// SPDX-License-Identifier: MIT
// `switchyard import-fedmsg-config DIR`: a fedmsg.d/ directory to YAML fragments.
//
// fedmsg configuration is Python: fedmsg executes every *.py file of the directory in
// sorted order and merges their `config` dicts recursively. This command does the same
// with /usr/bin/python3 (a short embedded script, no fedmsg needed, no network), then
// writes the keys Switchyard has an equivalent for as plugin entries: a zmq-sub input
// (endpoints), a verifier (ca_cert_location, crl_location, routing_policy,
// routing_nitpicky) and signers (certnames, cert_prefix, ssldir).
#pragma once

#include <string>

#include <CLI/CLI.hpp>

namespace switchyard::cli {

struct ImportOptions {
  std::string directory;
  std::string output;  ///< file to write; "" = standard output
  std::string python = "/usr/bin/python3";
};

CLI::App *addImportCommand(CLI::App &app, ImportOptions &opts);

/// Runs the directory's files through Python and returns the merged config as JSON text.
/// Throws std::runtime_error naming the file (and line) that failed.
std::string evaluateFedmsgConfig(const ImportOptions &opts);

/// The YAML fragments for a merged fedmsg config (JSON text); @p warnings gets what could
/// not be carried over. Throws std::runtime_error when the JSON is not an object.
std::string fragmentsFromConfig(const std::string &merged_json, const std::string &source,
                                std::vector<std::string> &warnings);

int runImport(const ImportOptions &opts);

}  // namespace switchyard::cli
