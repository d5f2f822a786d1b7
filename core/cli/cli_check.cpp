// SPDX-License-Identifier: MIT
#include "cli_check.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <vector>

#include "cli_common.hpp"

namespace switchyard::cli {

CLI::App *addCheckCommand(CLI::App &app, CheckOptions &o) {
  auto *check = app.add_subcommand(
      "check",
      "Validate a configuration and create its plugins without opening a socket; with "
      "--connect, also reach every peer and file it names");
  check->add_option("file", o.file, "Configuration file (YAML)")->required();
  check->add_flag("--strict", o.strict, "Fail (exit 2) on warnings as well as errors");
  check->add_flag("--connect", o.connect,
                  "After a clean check, have every plugin resolve, connect, log in, check TLS "
                  "and the entities it uses, without moving a message; one line per result");
  check->add_option("--timeout", o.timeout_s, "Seconds each plugin's --connect probe may take")
      ->check(CLI::Range(0.1, 3600.0))
      ->capture_default_str();
  return check;
}

namespace {

const char *plural(std::size_t n) { return n == 1 ? "" : "s"; }

/// Errors and warnings in file order, then "N error(s)[, M warning(s)]" on stderr, the last line.
void printAll(std::vector<Diagnostic> errors, const std::vector<Diagnostic> &warnings,
              const char *suffix = "") {
  const std::size_t n_errors = errors.size();
  errors.insert(errors.end(), warnings.begin(), warnings.end());
  std::stable_sort(errors.begin(), errors.end(), [](const Diagnostic &a, const Diagnostic &b) {
    return a.line != b.line ? a.line < b.line : a.column < b.column;
  });
  for (const auto &d : errors) {
    std::fprintf(stderr, "%s\n", d.str().c_str());
  }
  if (warnings.empty()) {
    std::fprintf(stderr, "%zu error(s)%s\n", n_errors, suffix);
  } else {
    std::fprintf(stderr, "%zu error(s), %zu warning(s)%s\n", n_errors, warnings.size(), suffix);
  }
}

}  // namespace

int runCheck(const CheckOptions &o, EngineOptions engine_options) {
  engine_options.log_config_warnings = false;  // printed here, in the same form as errors
  Engine engine(std::move(engine_options));
  try {
    engine.loadFile(o.file);
  } catch (const ConfigError &e) {
    printAll(e.diagnostics(), e.warnings());
    return kExitConfig;
  }
  const auto &warnings = engine.warnings();
  if (!warnings.empty()) {
    printAll({}, warnings, o.strict ? " (--strict: warnings fail the check)" : "");
    if (o.strict) {
      return kExitConfig;
    }
  }
  if (!o.connect) {
    if (warnings.empty()) {
      std::printf("%s: OK\n", o.file.c_str());
    } else {
      std::printf("%s: OK (%zu warning%s)\n", o.file.c_str(), warnings.size(), plural(warnings.size()));
    }
    return kExitOk;
  }
  const auto timeout = std::chrono::milliseconds(std::llround(o.timeout_s * 1000));
  std::size_t failed = 0;
  std::size_t total = 0;
  engine.probe(timeout, [&](const ProbeResult &r) {
    ++total;
    failed += r.ok ? 0 : 1;
    std::printf("%s\n", r.str().c_str());
    std::fflush(stdout);  // a slow probe should not hold back the lines before it
  });
  if (failed > 0) {
    std::printf("%s: %zu of %zu check%s FAILED\n", o.file.c_str(), failed, total, plural(total));
    return kExitFailure;
  }
  std::printf("%s: OK, connected (%zu check%s passed)\n", o.file.c_str(), total, plural(total));
  return kExitOk;
}

}  // namespace switchyard::cli
