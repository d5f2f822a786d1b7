// SPDX-License-Identifier: MIT
//
// zmq-sub's sequence tracking glue (docs/plugins/zmq-sub.md, "Sequence tracking"): what
// connects the source to SeqTracker (seq_tracker.hpp) and to its state file
// (seq_state.hpp): the `i` and `username` of each decoded envelope, the filter verdicts,
// the counters and the log lines.
//
// Where `i` is observed: with ctx.wantFiltered(true) the runtime reports each message's
// filter verdict (Source::filtered) and the tracker observes `i` there, skipping the
// messages that the `verifier` filter refused (forged envelopes carry any name and any
// `i`). A runtime without that support never calls filtered(); the first complete() for a
// message still waiting for it shows this, and from then on `i` is observed before
// submit(). The messages between submit and filtered() are kept in pending_, bounded by
// what the pipeline holds in flight.
//
// THREADING: used by one source instance, on its thread only.
#pragma once

#include <charconv>
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <unordered_map>

#include "seq_tracker.hpp"
#include "zmq_common.hpp"

namespace switchyard::zmqt {

/// The sequence tracking keys of zmq-sub's configuration.
struct SeqSettings {
  bool track = true;
  std::uint64_t reorder_window = 64;
  std::int64_t reorder_time_ms = 1000;
  std::string state_file;
  std::int64_t state_interval_ms = 0;

  static SeqSettings fromConfig(const sdk::Config &c);
};

class SeqGlue {
 public:
  /// Metadata set on the message whose `i` revealed a sequence gap (or a restart above 1):
  /// the number of messages of that publisher that never arrived, in decimal.
  static constexpr std::string_view kMissingMeta = "zmq.seq_missing";

  explicit SeqGlue(const SeqSettings &s);

  /// Registers the counters; with a state file, loads it and writes it once at once: a
  /// state file that cannot be written is a configuration error that a restart cannot fix.
  Status start(SourceContext &ctx);

  [[nodiscard]] bool tracking() const noexcept { return settings_.track; }

  /// Before submit() of @p m (tag @p tag): what the tracker needs of it. @p key_prefix()
  /// names the publisher's connection, "ENDPOINT|" or "bind|PEER|"; it is called only for
  /// a message with a usable `i`. Reads the `i` and `username` decode already read.
  template <typename KeyPrefix>
  void note(SourceContext &ctx, Message &m, std::uint64_t tag, KeyPrefix &&key_prefix) {
    std::uint64_t i = 0;
    const auto &env = m.envelope();
    if (env) {
      std::string_view seq = env->fields.i;
      if (seq.empty() || std::from_chars(seq.data(), seq.data() + seq.size(), i).ec != std::errc()) {
        i = 0;
      }
    }
    noteParsed(ctx, m, tag, i, i != 0 ? key_prefix() : std::string());
  }

  /// submit() answered Stopping for @p tag: it will get no filtered().
  void notTaken(std::uint64_t tag);

  /// Source::filtered() and Source::complete().
  void filtered(std::uint64_t tag, bool passed, std::string_view refused_by) noexcept;
  void complete(std::uint64_t tag) noexcept;

  /// A new connection came up for the publishers whose keys begin with @p key_prefix:
  /// messages read from now on belong to the next connection generation.
  void connected(const std::string &key_prefix) noexcept;

  /// Every poll(): judges what stayed open past reorder_time, saves the state when due.
  void housekeeping(SourceContext &ctx) noexcept;

  /// At stop: with a state file the open values are saved open (the next process judges
  /// them, and can still see them arrive); without one they are judged now.
  void stop() noexcept;

 private:
  struct Pending {
    std::uint64_t tag = 0;
    std::uint64_t i = 0;          // 0: no usable `i`
    std::uint64_t epoch = 0;      // connection generation when it was read
    std::uint64_t prev_high = 0;  // read_view_'s highest before this message raised it
    bool raised = false;          // this message raised read_view_'s highest
    std::string key;
  };
  /// What has been *read* of a publisher (before any verdict), for kMissingMeta only.
  struct ReadView {
    std::uint64_t high = 0;
    std::uint64_t epoch = 0;
  };

  void noteParsed(SourceContext &ctx, Message &m, std::uint64_t tag, std::uint64_t i, std::string key_prefix);
  void loadState(SourceContext &ctx);
  std::uint64_t readSkip(Pending &p);
  void unread(const Pending &p);
  void settle(SourceContext &ctx, const Pending &p, bool track);
  void judged(SourceContext &ctx, const std::string &key, std::uint64_t missing, std::uint64_t gaps,
              std::uint64_t below);
  void saveState(SourceContext &ctx, std::int64_t now);

  SeqSettings settings_;
  SeqTracker tracker_;
  std::int64_t last_write_ms_ = 0;
  bool dirty_ = false;
  bool legacy_ = false;         // the runtime does not call filtered(): observe before submit
  bool filtered_seen_ = false;  // filtered() was called at least once
  std::deque<Pending> pending_;  // submitted, filtered() not yet called; in tag order
  std::unordered_map<std::string, ReadView> read_view_;        // for kMissingMeta
  std::unordered_map<std::string, std::uint64_t> conn_epoch_;  // key prefix -> connection generation
  SourceContext *ctx_ = nullptr;
  DropLog drop_log_;

  Counter *gaps_ = nullptr;
  Counter *missing_ = nullptr;
  Counter *duplicates_ = nullptr;
  Counter *reordered_ = nullptr;
  Counter *restarts_ = nullptr;
  Counter *untracked_ = nullptr;
  Gauge *publishers_ = nullptr;
  Counter *late_ = nullptr;
  Counter *unverified_ = nullptr;
  Gauge *open_ = nullptr;
};

}  // namespace switchyard::zmqt
