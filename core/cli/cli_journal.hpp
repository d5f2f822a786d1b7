// SPDX-License-Identifier: MIT
// `switchyard journal inspect DIR [--json]` and `switchyard journal check DIR`: a read-only
// look at a pipeline's disk journal (journal::scan; no lock taken, nothing changed).
#pragma once

#include <string>

#include <CLI/CLI.hpp>

namespace switchyard::cli {

struct JournalOptions {
  std::string dir;
  bool json = false;
  CLI::App *inspect = nullptr;
  CLI::App *check = nullptr;
};

CLI::App *addJournalCommand(CLI::App &app, JournalOptions &opts);
/// inspect: 0 listed (problems are listed too), 2 bad usage (no such dir).
/// check: 0 clean, 1 problems found (each printed with its file and offset), 2 bad usage.
int runJournal(const JournalOptions &opts);

}  // namespace switchyard::cli
