// SPDX-License-Identifier: MIT
// `switchyard query`: prints stored messages as JSON lines, like datagrepper's raw API
// (docs/plugins/store.md). Built into the switchyard command (core/cli/meson.build takes
// sy_store_cli_sources from this folder's meson.build).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace switchyard::cli {

struct QueryOptions {
  std::string database;
  std::vector<std::string> topics;
  std::vector<std::string> users;
  std::string since;
  std::string until;
  std::int64_t limit = 100;
  std::string order = "desc";
};

CLI::App *addQueryCommand(CLI::App &app, QueryOptions &opts);
int runQuery(const QueryOptions &opts);

}  // namespace switchyard::cli
