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
// its pipeline's name) in a bounded FIFO set of `window` ids, inside an engine-wide group
// named by `window_name`. Instances of the two bridge pipelines share a group (same
// window_name, the default "default") and each checks incoming ids against the sets of the
// other directions. The group is an object of the host (Host::shared("loop-guard.group.
// <window_name>")), so every pipeline of the engine finds the same one, and it lives until
// the engine is destroyed.
//
// With `mark: <value>` the instance also sets the provenance header on every message it
// passes (and, since that changes the headers, the message's envelope is dropped).
//
// Parse once: the headers are read with codec::parsedHeaders() (parsed at most once per
// message, whatever the pipeline), `username` from the decoded envelope's fields.
//
// FACTORY and THREADING: LoopGuardFactory reads the configuration and takes the group once
// per configured loop-guard and makes one LoopGuard per filter worker (SY_FLAG_PARALLEL).
// The settings are immutable after construction; the group is thread-safe (one mutex); a
// LoopGuard is called by one thread at a time.
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

/// Recently passed ids, per direction, shared by the loop-guards of one window group.
/// THREADING: thread-safe (one mutex, held for a hash look-up or insert).
class IdWindowGroup {
 public:
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

/// The settings of one configured loop-guard, immutable once made, and its window group.
struct LoopGuardSettings {
  std::string username_marker;
  std::size_t window = 0;
  std::string direction;  ///< empty: the pipeline's name
  std::string header;
  std::string mark;
  bool keep_signed = false;  ///< do not mark messages whose signed envelope is intact
  std::shared_ptr<IdWindowGroup> group;  ///< null when window is 0
};

/// One worker's loop-guard. THREADING: one thread at a time.
class LoopGuard final : public Filter {
 public:
  explicit LoopGuard(std::shared_ptr<const LoopGuardSettings> settings) : s_(std::move(settings)) {}
  Status start(FilterContext &ctx) noexcept override;
  Verdict process(FilterContext &ctx, Message &msg) noexcept override;

  [[nodiscard]] const std::string &direction() const noexcept { return direction_; }

 private:
  Verdict check(FilterContext &ctx, Message &msg);

  std::shared_ptr<const LoopGuardSettings> s_;
  std::string direction_;
  Counter *unmarked_signed_ = nullptr;
};

/// Reads the configuration (throws sdk::ConfigError naming the bad key), takes the window
/// group from the host (a group of its own when there is no host: unit tests) and makes
/// the instances. THREADING: see PluginFactory.
class LoopGuardFactory final : public PluginFactory {
 public:
  explicit LoopGuardFactory(const sdk::Config &config);
  Plugin *instantiate(const InstanceArgs &args) noexcept override;
  [[nodiscard]] std::unique_ptr<LoopGuard> make() const { return std::make_unique<LoopGuard>(settings_); }
  /// The window group (null when window is 0).
  [[nodiscard]] const std::shared_ptr<IdWindowGroup> &group() const noexcept { return settings_->group; }

 private:
  std::shared_ptr<const LoopGuardSettings> settings_;
};

}  // namespace switchyard::plugins
