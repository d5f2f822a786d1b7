// SPDX-License-Identifier: MIT
// zmq-sub's sequence tracking glue: see zmq_sub_seq.hpp.
#include "zmq_sub_seq.hpp"

#include <cstdio>

#include "seq_state.hpp"

namespace switchyard::zmqt {

namespace {
std::int64_t nowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
}  // namespace

SeqSettings SeqSettings::fromConfig(const sdk::Config &c) {
  SeqSettings s;
  s.track = boolOr(c, "track_sequence", true);
  std::int64_t count = intOr(c, "reorder_window", 64);
  if (count < 0 || count > static_cast<std::int64_t>(SeqTracker::kMaxReorder)) {
    c.problem("reorder_window", "'reorder_window' must be between 0 and 1024");
  } else {
    s.reorder_window = static_cast<std::uint64_t>(count);
  }
  s.reorder_time_ms = nonNegative(c, "reorder_time", 1000);
  s.state_file = strOr(c, "state_file", "");
  s.state_interval_ms = nonNegative(c, "state_interval", 0);
  if (!s.state_file.empty() && !s.track) {
    c.problem("state_file", "'state_file' needs 'track_sequence: true'");
  }
  return s;
}

SeqGlue::SeqGlue(const SeqSettings &s) : settings_(s), tracker_(s.reorder_window, s.reorder_time_ms) {}

Status SeqGlue::start(SourceContext &ctx) {
  ctx_ = &ctx;
  gaps_ = &ctx.counter("seq_gaps");
  missing_ = &ctx.counter("seq_missing");
  duplicates_ = &ctx.counter("seq_duplicates");
  reordered_ = &ctx.counter("seq_reordered");
  restarts_ = &ctx.counter("seq_restarts");
  untracked_ = &ctx.counter("seq_untracked");
  publishers_ = &ctx.gauge("publishers");
  late_ = &ctx.counter("seq_late");
  unverified_ = &ctx.counter("seq_unverified");
  open_ = &ctx.gauge("seq_open");
  if (!settings_.track) {
    return Status::ok();
  }
  ctx.wantFiltered(true);
  if (settings_.state_file.empty()) {
    return Status::ok();
  }
  try {
    loadState(ctx);
    std::string err;
    if (!writeStateFile(settings_.state_file, tracker_.save(), err)) {
      return Status::permanent(fmt::format("cannot write the sequence state file: {}", err), "state_file");
    }
  } catch (const std::exception &e) {
    return Status::fatal(fmt::format("sequence state file {}: {}", settings_.state_file, e.what()), "state_file");
  }
  last_write_ms_ = nowMs();
  return Status::ok();
}

void SeqGlue::loadState(SourceContext &ctx) {
  const std::string &file = settings_.state_file;
  std::string text;
  std::string err;
  switch (readStateFile(file, text, err)) {
    case StateRead::Missing:
      ctx.log().info("sequence state file {} does not exist yet: starting fresh", file);
      return;
    case StateRead::Error:
      ctx.log().warn("cannot read the sequence state file {}: {}; starting fresh", file, err);
      return;
    case StateRead::Ok: break;
  }
  if (!tracker_.load(text, nowMs(), err)) {
    // Kept for a post-mortem; the next write replaces the file itself.
    std::string aside = file + ".corrupt";
    bool kept = std::rename(file.c_str(), aside.c_str()) == 0;
    ctx.log().warn("the sequence state file {} is unusable ({}); starting fresh{}", file, err,
                   kept ? " (the file was renamed to " + aside + ")" : std::string());
    return;
  }
  publishers_->set(static_cast<std::int64_t>(tracker_.publishers()));
  open_->set(static_cast<std::int64_t>(tracker_.open()));
  ctx.log().info("sequence state of {} publisher(s) loaded from {} ({} skipped value(s) still open)",
                 tracker_.publishers(), file, tracker_.open());
}

/// Observed now (a runtime without filtered()) or kept until filtered(). Also marks a
/// message whose `i` skips values with kMissingMeta (how many), so that a consumer such as
/// verify-missing can tell its own ZeroMQ losses apart. That mark is provisional: it is
/// set on the message that reveals the skip, before the filters and before the reorder
/// window judged anything (the counters are what is exact); it compares with what was
/// read so far, because the tracker only learns of the messages of the current poll when
/// their verdicts come.
void SeqGlue::noteParsed(SourceContext &ctx, Message &m, std::uint64_t tag, std::uint64_t i,
                         std::string key_prefix) {
  Pending p;
  p.tag = tag;
  p.i = i;
  if (i != 0) {
    if (auto it = conn_epoch_.find(key_prefix); it != conn_epoch_.end()) {
      p.epoch = it->second;
    }
    p.key = std::move(key_prefix);
    const auto &fields = m.envelope()->fields;  // i != 0: read from the envelope
    p.key += fields.has_username ? std::string_view(fields.username) : std::string_view("?");
    if (std::uint64_t skipped = readSkip(p); skipped > 0) {
      m.setMeta(kMissingMeta, std::to_string(skipped));
    }
  }
  if (legacy_) {
    settle(ctx, p, true);
  } else {
    pending_.push_back(std::move(p));
  }
}

/// How many values @p p's `i` skips compared with what was read of its publisher (a
/// restart on a new connection or at 1 skips i - 1); updates the read view.
std::uint64_t SeqGlue::readSkip(Pending &p) {
  auto [it, inserted] = read_view_.try_emplace(p.key);
  ReadView &v = it->second;
  std::uint64_t skipped = 0;
  p.prev_high = v.high;
  if (inserted) {
    v.high = p.i;
    p.raised = true;
  } else if (p.i > v.high) {
    skipped = p.i - v.high - 1;
    v.high = p.i;
    p.raised = true;
  } else if (p.epoch != v.epoch || p.i == 1 || v.high - p.i >= SeqTracker::kWindow) {
    skipped = p.i - 1;  // a restart
    v.high = p.i;
    p.raised = true;
  }
  v.epoch = p.epoch;
  return skipped;
}

/// The verifier refused @p p: what it claimed must not move the read view.
void SeqGlue::unread(const Pending &p) {
  if (!p.raised) {
    return;
  }
  auto it = read_view_.find(p.key);
  if (it == read_view_.end() || it->second.high != p.i) {
    return;  // moved on since
  }
  if (p.prev_high == 0) {
    read_view_.erase(it);  // a name only forged messages used: forget it (bounded memory)
  } else {
    it->second.high = p.prev_high;
  }
}

void SeqGlue::notTaken(std::uint64_t tag) {
  if (!pending_.empty() && pending_.back().tag == tag) {
    pending_.pop_back();
  }
}

void SeqGlue::filtered(std::uint64_t tag, bool passed, std::string_view refused_by) noexcept {
  if (ctx_ == nullptr) {
    return;
  }
  try {
    filtered_seen_ = true;
    while (!pending_.empty() && pending_.front().tag <= tag) {
      Pending p = std::move(pending_.front());
      pending_.pop_front();
      if (p.tag != tag) {
        settle(*ctx_, p, true);  // no verdict came for it (not expected): observed as it is
        continue;
      }
      // A message the verifier refused says nothing true about its publisher; one refused
      // by another filter (loop-guard, a topic filter) is genuine and still counts.
      bool genuine = passed || refused_by != "verifier";
      if (!genuine) {
        unread(p);
      }
      settle(*ctx_, p, genuine);
    }
  } catch (const std::exception &e) {
    ctx_->log().error("sequence tracking: {}", e.what());
  }
}

void SeqGlue::complete(std::uint64_t tag) noexcept {
  if (legacy_ || ctx_ == nullptr || pending_.empty() || pending_.front().tag > tag) {
    return;
  }
  // Settled before its verdict came: filtered() is not called by this runtime.
  try {
    if (!filtered_seen_) {
      legacy_ = true;
      ctx_->log().info("the runtime does not report filter verdicts: sequence tracking observes `i` "
                       "before the filters (forged envelopes are counted too)");
    }
    while (!pending_.empty() && (legacy_ || pending_.front().tag <= tag)) {
      Pending p = std::move(pending_.front());
      pending_.pop_front();
      settle(*ctx_, p, true);
    }
  } catch (const std::exception &e) {
    ctx_->log().error("sequence tracking: {}", e.what());
  }
}

void SeqGlue::settle(SourceContext &ctx, const Pending &p, bool track) {
  if (!track) {
    unverified_->add();
    return;
  }
  if (p.i == 0) {
    untracked_->add();
    return;
  }
  SeqEvent ev = tracker_.observe(p.key, p.i, nowMs(), p.epoch);
  if (ev.kind != SeqEvent::Kind::Duplicate) {  // a duplicate changes nothing the state file keeps
    dirty_ = true;
  }
  switch (ev.kind) {
    case SeqEvent::Kind::First: publishers_->set(static_cast<std::int64_t>(tracker_.publishers())); break;
    case SeqEvent::Kind::InOrder:
    case SeqEvent::Kind::Ahead: break;
    case SeqEvent::Kind::Duplicate: duplicates_->add(); break;
    case SeqEvent::Kind::Reordered: reordered_->add(); break;
    case SeqEvent::Kind::Late:
      late_->add();
      drop_log_.warn(ctx, "seq_late", "publisher {}: i={} arrived after it was counted missing", p.key, p.i);
      break;
    case SeqEvent::Kind::Restart:
      restarts_->add();
      drop_log_.warn(ctx, "seq_restart", "publisher {} restarted (i={})", p.key, p.i);
      break;
  }
  judged(ctx, p.key, ev.missing, ev.gaps, p.i);
  open_->set(static_cast<std::int64_t>(tracker_.open()));
}

void SeqGlue::judged(SourceContext &ctx, const std::string &key, std::uint64_t missing, std::uint64_t gaps,
                     std::uint64_t below) {
  if (missing == 0) {
    return;
  }
  gaps_->add(gaps);
  missing_->add(missing);
  // The same per publisher (label `publisher`: "ENDPOINT|username", bind mode
  // "bind|PEER_IP|username"); made at a publisher's first gap only, so a stream without
  // losses adds no series. The lookup takes a lock: gaps are rare.
  ctx.counter("publisher_seq_gaps", key).add(gaps);
  ctx.counter("publisher_seq_missing", key).add(missing);
  drop_log_.warn(ctx, "seq_gap", "publisher {}: {} message(s) missing before i={}", key, missing, below);
}

void SeqGlue::connected(const std::string &key_prefix) noexcept {
  // Messages read from now on carry the next connection generation; a publisher whose `i`
  // then falls to or below its highest is a new process, not a stream of duplicates. The
  // first connection of this process starts at generation 0, like the publishers loaded
  // from the state file: a restart of the router itself is not a restart of its publishers.
  try {
    auto [it, inserted] = conn_epoch_.try_emplace(key_prefix, 0);
    if (!inserted) {
      ++it->second;
    }
  } catch (const std::exception &) {
    // out of memory: the connection just does not count as a possible restart
  }
}

void SeqGlue::housekeeping(SourceContext &ctx) noexcept {
  if (!settings_.track) {
    return;
  }
  try {
    std::int64_t now = nowMs();
    tracker_.expire(now, [&](const std::string &key, std::uint64_t missing, std::uint64_t gaps, std::uint64_t upto) {
      dirty_ = true;
      judged(ctx, key, missing, gaps, upto + 1);
    });
    open_->set(static_cast<std::int64_t>(tracker_.open()));
    if (!settings_.state_file.empty() && dirty_ &&
        (settings_.state_interval_ms == 0 || now - last_write_ms_ >= settings_.state_interval_ms)) {
      saveState(ctx, now);
    }
  } catch (const std::exception &e) {
    ctx.log().error("sequence tracking: {}", e.what());
  }
}

void SeqGlue::saveState(SourceContext &ctx, std::int64_t now) {
  std::string err;
  last_write_ms_ = now;
  if (writeStateFile(settings_.state_file, tracker_.save(), err)) {
    dirty_ = false;
  } else {
    drop_log_.warn(ctx, "state_file", "cannot save the sequence state: {}", err);
  }
}

void SeqGlue::stop() noexcept {
  if (!settings_.track || ctx_ == nullptr) {
    return;
  }
  try {
    if (settings_.state_file.empty()) {
      tracker_.judgeAll([&](const std::string &key, std::uint64_t missing, std::uint64_t gaps, std::uint64_t upto) {
        judged(*ctx_, key, missing, gaps, upto + 1);
      });
    } else {
      saveState(*ctx_, nowMs());
    }
    open_->set(static_cast<std::int64_t>(tracker_.open()));
  } catch (const std::exception &e) {
    ctx_->log().error("sequence tracking: {}", e.what());
  }
}

}  // namespace switchyard::zmqt
