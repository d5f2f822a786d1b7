// SPDX-License-Identifier: MIT
// `switchyard test FILE...`: pipeline unit tests (docs/testing-pipelines.md). Each test file
// names a pipeline configuration and cases: input messages, the messages each output must
// send (matchers on topic, body, headers, id, the AMQP properties or the fedmsg envelope)
// and the drops, by counter and reason. The pipeline runs with its network inputs and
// outputs replaced by in-memory stand-ins (cli_test_io.hpp) and its filters the real
// plugins. One line per case, a precise difference for a failing one, a summary.
// Exit status: 0 every case passed, 1 a case failed, 2 a test file (or the pipeline it
// names) has errors, reported at file:line:column.
#pragma once

#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "cli_common.hpp"

namespace switchyard::cli {

struct TestOptions {
  std::vector<std::string> files;
  double timeout_s = 10;  ///< --timeout: how long one case may run
  bool verbose = false;   ///< --verbose: the plugins' log lines (else errors only)
};

CLI::App *addTestCommand(CLI::App &app, TestOptions &o);

int runTest(const TestOptions &o, const Common &common);

}  // namespace switchyard::cli
