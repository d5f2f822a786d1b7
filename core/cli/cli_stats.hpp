// SPDX-License-Identifier: MIT
// The `stats:` log lines of `switchyard run` (docs/operations.md, Logs).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <tuple>

#include "switchyard/engine.hpp"

namespace switchyard::cli {

/// Logs an engine's counters, one line per plugin instance:
///   stats: pipeline=p plugin="outputs[0] (amqp-publish)" sent=10 dropped{reason=oversize}=1
/// A labelled counter is written NAME{LABEL=VALUE} with the label's name from
/// metric_names.hpp. In the JSON log format the record also carries "stats" ("interval" or
/// "totals"), "pipeline", "plugin" and "counters" ({"sent": 10, "dropped{reason=oversize}": 1}).
class StatsLog {
 public:
  explicit StatsLog(const Engine &engine) : engine_(engine) {}

  /// Every counter that changed since the previous call (since zero at the first); no line
  /// for a plugin none of whose counters changed.
  void interval();
  /// At exit: every counter that is not zero, and any that went back to zero since it was
  /// last logged, so that the last value logged for each counter is its final value.
  void totals();

 private:
  using Key = std::tuple<std::string, std::string, std::string, std::string>;
  void log(bool totals);

  const Engine &engine_;
  std::map<Key, std::int64_t> logged_;  ///< the last value logged of each counter
};

/// `name` or `name{label=value}`, as the stats lines and /metrics' docs write a counter.
std::string counterToken(const std::string &name, const std::string &label);

}  // namespace switchyard::cli
