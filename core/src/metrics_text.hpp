// SPDX-License-Identifier: MIT
// The Prometheus text exposition format, version 0.0.4 (internal): what GET /metrics
// answers. docs/operations.md lists the families.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "switchyard/engine.hpp"

namespace switchyard::metrics {

/// Content-Type of the format.
inline constexpr const char *kContentType = "text/plain; version=0.0.4; charset=utf-8";

/// What the process adds to the engine's samples.
struct ProcessInfo {
  std::string version;        ///< switchyard_build_info{version=...} 1
  double start_time_s = 0;    ///< switchyard_process_start_time_seconds (Unix time)
};

/// The metric name of counter or gauge @p name: "switchyard_" + the name with every
/// character outside [a-zA-Z0-9_:] as '_', and "_total" after a counter's.
std::string metricName(std::string_view name, bool counter);

/// A label value escaped for the format (backslash, double quote, newline).
std::string escapeLabel(std::string_view value);

/// The HELP text of counter, gauge or histogram @p name (as the engine names it), from a
/// table; a generic one for names not in it.
std::string help(std::string_view name);

/// Every sample as one text: families sorted by name, each with # HELP and # TYPE; the
/// labels pipeline, plugin (the plugin's name), place ("outputs[0]") and the counter's own
/// label under its name (labelName(): reason, outcome, ...); histograms with _bucket
/// (cumulative, le="+Inf" last), _sum and _count; build info and start time.
std::string render(const std::vector<CounterSample> &samples, const std::vector<HistogramSample> &histograms,
                   const ProcessInfo &process);

}  // namespace switchyard::metrics
