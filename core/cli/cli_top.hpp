// SPDX-License-Identifier: MIT
// `switchyard top URL`: live rates per pipeline and plugin of a running instance, from its
// GET /metrics (docs/operations.md, "Top").
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace switchyard::cli {

struct TopOptions {
  std::string url;
  double interval_s = 2;  ///< --interval: seconds between scrapes
  int iterations = 0;     ///< --iterations: tables to print, then exit (0: until interrupted)
  bool once = false;      ///< --once: --iterations 1
};

/// Adds the `top` subcommand and its options to @p app.
CLI::App *addTopCommand(CLI::App &app, TopOptions &o);

/// Runs `top`. Exit status: 0, 1 when the endpoint cannot be read (with --once or
/// --iterations; without, it says so and tries again), 2 for a bad URL.
int runTop(const TopOptions &o);

namespace top {

/// One sample of the Prometheus text format.
struct Sample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

/// The samples of a Prometheus text exposition (comments skipped). False, with @p why
/// naming the line, when a line is not in the format.
bool parse(const std::string &text, std::vector<Sample> &out, std::string &why);

/// The @p q quantile (0..1) of a histogram given as cumulative counts at the upper bounds
/// @p le (the last +Inf), interpolated linearly inside the bucket, as Prometheus'
/// histogram_quantile() does; negative when the histogram is empty.
double quantile(double q, const std::vector<std::pair<double, double>> &le_cumulative);

}  // namespace top

}  // namespace switchyard::cli
