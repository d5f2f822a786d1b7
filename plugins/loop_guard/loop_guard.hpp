// SPDX-License-Identifier: MIT
//
// loop-guard (filter): drops messages that come back from the other bus, so that a pair of
// bridges (ZeroMQ -> AMQP and AMQP -> ZeroMQ) never ping-pongs a message. Three rules, each
// with its own drop reason:
//
//   loop_username  the fedmsg envelope's `username` equals username_marker ("amqp-bridge",
//                  what the AMQP->ZMQ direction writes, as the reference bridges do)
//   loop_header    the message headers carry the provenance header (default
//                  "x-switchyard-bridged"), whatever its value
//   loop_id        the message id (a leading "YYYY-" stripped) was recently passed by a
//                  loop-guard of ANOTHER direction in the same window group
//
// The id window: every instance records the ids it passes under its own direction (default:
// its pipeline's name) in a bounded FIFO set of `window` ids, inside a process-wide group
// named by `window_name`. Instances of the two bridge pipelines share a group (same
// window_name, the default "default") and each checks incoming ids against the sets of the
// other directions. Groups live in this plugin's registry (one per process, since the
// library is loaded once); a group is freed with its last instance.
//
// With `mark: <value>` the instance also sets the provenance header on every message it
// passes (and, since that changes the headers, erases the "fedmsg.envelope" metadata).
#pragma once

#include <cstddef>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_set>

#include "switchyard/sdk.hpp"

namespace switchyard::plugins {

extern const sy_config_key kLoopGuardSchema[];

/// Recently passed ids, per direction, shared by the loop-guards of one process.
class IdWindowGroup {
 public:
  /// The process-wide group called @p name (created on first use).
  static std::shared_ptr<IdWindowGroup> get(const std::string &name);

  /// True when @p id was recorded under a direction other than @p direction.
  bool seenElsewhere(const std::string &direction, const std::string &id);
  /// Records @p id under @p direction, keeping at most @p capacity ids (oldest leave first).
  void record(const std::string &direction, const std::string &id, std::size_t capacity);
  [[nodiscard]] std::size_t size(const std::string &direction);

 private:
  struct Direction {
    std::deque<std::string> order;
    std::unordered_set<std::string> ids;
  };
  std::mutex mu_;
  std::map<std::string, Direction, std::less<>> directions_;
};

/// "2024-abc" -> "abc"; ids without a four-digit year prefix are returned unchanged.
std::string_view stripYearPrefix(std::string_view id) noexcept;

class LoopGuard final : public Filter {
 public:
  explicit LoopGuard(const sdk::Config &config);
  Status start(FilterContext &ctx) noexcept override;
  Verdict process(FilterContext &ctx, Message &msg) noexcept override;

  [[nodiscard]] const std::string &direction() const noexcept { return direction_; }

 private:
  Verdict check(FilterContext &ctx, Message &msg);

  std::string username_marker_;
  std::size_t window_;
  std::string window_name_;
  std::string direction_;
  std::string header_;
  std::string mark_;
  bool keep_signed_ = false;  ///< do not mark messages whose signed envelope is intact
  std::shared_ptr<IdWindowGroup> group_;
  Counter *unmarked_signed_ = nullptr;
};

}  // namespace switchyard::plugins
