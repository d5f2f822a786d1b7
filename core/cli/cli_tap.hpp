// SPDX-License-Identifier: MIT
// `switchyard tap URL [PIPELINE]`: prints a live sample of the messages passing a running
// instance, read from its operations endpoint (GET /tap, settings.http.tap: true), one JSON
// line per message on standard output; how it ended on standard error.
#pragma once

#include <string>

#include <CLI/CLI.hpp>

namespace switchyard::cli {

struct TapOptions {
  std::string url;       ///< "http://127.0.0.1:9100", "127.0.0.1:9100" or ":9100"
  std::string pipeline;  ///< "" = every pipeline
  unsigned long long limit = 100;
  double seconds = 60;
  unsigned long long body_bytes = 4096;
};

CLI::App *addTapCommand(CLI::App &app, TapOptions &opts);

int runTap(const TapOptions &opts);

}  // namespace switchyard::cli
