// SPDX-License-Identifier: MIT
//
// verify-missing (sink): checks that every message shows up on both buses
// (docs/plugins/verify-missing.md). Two pipelines feed it, one per bus:
//
//   zmq-side:  zmq-sub      -> verify-missing {side: zmq,  group: g}
//   amqp-side: amqp-consume -> verify-missing {side: amqp, group: g}
//
// The two instances meet in a group that is an object of the host (Host::shared(
// "verify-missing.group.<group>")), so every pipeline of the engine finds the same one, as
// loop-guard's id window does; it lives until the engine is destroyed. Each instance only
// observes and reports each message Delivered at once (an AMQP input acks it).
//
// THREADING: all state sits in the group's Matcher behind one mutex (the two sides' output
// threads call it), and whichever output thread comes by settles the windows that closed.
// An instance (a sink: one per configured place) is called by its output thread only.
#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "matcher.hpp"
#include "switchyard/json.hpp"
#include "switchyard/parsed.hpp"
#include "switchyard/sdk.hpp"

namespace {

using namespace switchyard;
using switchyard::verify::Matcher;
using switchyard::verify::Report;
using switchyard::verify::Side;
using switchyard::verify::Stat;
using Clock = std::chrono::steady_clock;

// Set by zmq-sub on the message whose `i` revealed a sequence gap: how many messages of
// that publisher were lost on our own subscription.
constexpr std::string_view kZmqSeqMissing = "zmq.seq_missing";
// At most this many "only received via" warnings per sweep; the rest are summarised (the
// report file and the counters still get every one).
constexpr int kMaxWarningsPerSweep = 20;
// At most this many lines per sweep name ids that could not be verified for want of memory.
constexpr std::size_t kMaxUnverifiedLinesPerSweep = 5;

const sy_config_key kSchema[] = {
    {"side", SY_CFG_STRING, 1, nullptr,
     "Which bus this pipeline's input listens to: zmq (a zmq-sub input) or amqp (an amqp-consume input).", 0},
    {"group", SY_CFG_STRING, 0, "\"default\"",
     "Name of the process-wide group where the zmq side and the amqp side meet (one instance of each).", 0},
    {"window", SY_CFG_FLOAT, 0, "60",
     "Seconds a message may wait for its twin on the other bus before it is reported missing there.", 0},
    {"retain", SY_CFG_FLOAT, 0, "60",
     "Seconds a settled id is remembered after its window, to recognise duplicates and late arrivals.", 0},
    {"max_entries", SY_CFG_INT, 0, "100000",
     "Ids held in memory at most (bounded memory under any load); beyond it the oldest are forgotten and "
     "counted as evicted and unverified (never reported).",
     0},
    {"max_evicted", SY_CFG_INT, 0, "0",
     "Traces of ids forgotten before the end of their retention kept at most (about 80 bytes each), so that "
     "their twins are recognised instead of being reported one-sided; 0: as many as max_entries.",
     0},
    {"startup_grace", SY_CFG_FLOAT, 0, "5",
     "Seconds after both sides started during which one-sided messages are not reported (the subscriptions "
     "are still being set up); they are counted as unverifiable.",
     0},
    {"report", SY_CFG_STRING, 0, "\"\"",
     "File that gets one JSON line per message seen on one bus only (appended; empty: log lines only).", 0},
    {"log_matches", SY_CFG_BOOL, 0, "false", "Log every matched message at info level (else debug).", 0},
    {"id_header", SY_CFG_STRING, 0, "\"fedmsg_msg_id\"",
     "amqp side: header holding the full fedmsg msg_id (what amqp-publish writes in message_id_mode uuid); "
     "used instead of message_id when present. Empty: message_id only. Ignored on the zmq side.",
     0},
    {nullptr, 0, 0, nullptr, nullptr, 0},
};

/// The settings both sides of a group must agree on.
struct GroupSettings {
  verify::Settings matcher;
  std::chrono::milliseconds grace{5000};
  std::string report;
  bool log_matches = false;

  bool operator==(const GroupSettings &) const = default;  // every field: a new one cannot be forgotten
};

/// What one attached instance lends the group: its counters (valid while attached).
struct SideHooks {
  std::array<Counter *, verify::kStats> counters{};
  Gauge *pending = nullptr;
  Gauge *evicted_ids = nullptr;
};

std::string isoTime(std::int64_t ms) {
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[40];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  return fmt::format("{}.{:03}Z", buf, ms % 1000);
}

std::int64_t wallMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string reportLine(const Report &r, const GroupSettings &s) {
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  // id: the key both buses share (one leading YYYY- removed), what an operator looks up on
  // either bus; full_id: the id exactly as it was received.
  std::string_view key = verify::matchKey(r.id);
  w.StartObject();
  w.Key("id");
  w.String(key.data(), static_cast<rapidjson::SizeType>(key.size()));
  w.Key("full_id");
  w.String(r.id.data(), static_cast<rapidjson::SizeType>(r.id.size()));
  w.Key("topic");
  w.String(r.topic.data(), static_cast<rapidjson::SizeType>(r.topic.size()));
  w.Key("side");
  w.String(verify::sideName(r.side));
  w.Key("missing_from");
  w.String(verify::sideName(verify::otherSide(r.side)));
  w.Key("first_seen");
  std::string t = isoTime(r.first_seen_ms);
  w.String(t.data(), static_cast<rapidjson::SizeType>(t.size()));
  w.Key("window_s");
  w.Double(static_cast<double>(s.matcher.window.count()) / 1000.0);
  if (r.side == Side::Amqp) {
    w.Key("zmq_loss_detected");
    w.Bool(r.zmq_gap_missing > 0);
    w.Key("zmq_gap_missing");
    w.Uint64(r.zmq_gap_missing);
  }
  w.EndObject();
  return std::string(sb.GetString(), sb.GetSize()) + "\n";
}

class Group {
 public:
  /// The group called @p name: the host's (a group of its own without a host: unit tests).
  static std::shared_ptr<Group> of(Host *host, const std::string &name) {
    auto make = [&name] { return std::static_pointer_cast<void>(std::make_shared<Group>(name)); };
    if (host == nullptr) {
      return std::static_pointer_cast<Group>(make());
    }
    // One type under this key, so the cast is safe.
    auto g = std::static_pointer_cast<Group>(host->shared("verify-missing.group." + name, make));
    if (!g) {
      throw sdk::ConfigError("group", fmt::format("cannot make the group '{}'", name));
    }
    return g;
  }

  explicit Group(std::string name) : name_(std::move(name)) {}
  ~Group() {
    if (report_ != nullptr) {
      std::fclose(report_);
    }
  }
  Group(const Group &) = delete;
  Group &operator=(const Group &) = delete;

  Status attach(Side side, SideHooks *hooks, const GroupSettings &s) {
    std::lock_guard lock(mu_);
    auto k = static_cast<std::size_t>(side);
    if (sides_[k] != nullptr) {
      return Status::fatal(fmt::format("group '{}' already has a {} side (one instance per side and group)",
                                       name_, verify::sideName(side)),
                           "side");
    }
    if (!matcher_) {
      settings_ = s;
      if (!s.report.empty() && report_ == nullptr) {
        report_ = std::fopen(s.report.c_str(), "a");
        if (report_ == nullptr) {
          return Status::fatal(fmt::format("cannot open report file '{}': {}", s.report, std::strerror(errno)),
                               "report");
        }
      }
      matcher_.emplace(s.matcher);
      matcher_->on_count = [this](Side sd, Stat st, std::uint64_t n) {
        if (auto *h = sides_[static_cast<std::size_t>(sd)]; h != nullptr) {
          h->counters[static_cast<std::size_t>(st)]->add(n);
        }
      };
    } else if (!(settings_ == s)) {
      return Status::fatal(fmt::format("the two sides of group '{}' must have the same window, retain, "
                                       "max_entries, max_evicted, startup_grace, report and log_matches",
                                       name_));
    }
    sides_[k] = hooks;
    if (!first_attach_) {
      first_attach_ = Clock::now();
    }
    if (sides_[0] != nullptr && sides_[1] != nullptr) {
      ever_paired_ = true;
      verifiable_from_ = Clock::now() + settings_.grace;
    }
    return Status::ok();
  }

  void detach(Side side, Logger &log) {
    std::lock_guard lock(mu_);
    auto k = static_cast<std::size_t>(side);
    if (sides_[k] == nullptr) {
      return;
    }
    if (sides_[0] != nullptr && sides_[1] != nullptr && matcher_) {
      // The first side to stop ends verification: say what could not be checked.
      std::size_t open = matcher_->size();
      if (open > 0) {
        log.info("group '{}': stopping with {} id(s) in memory; those still within their window were not checked",
                 name_, open);
      }
    }
    sides_[k] = nullptr;
    verifiable_from_.reset();
  }

  void observe(Logger &log, Side side, std::string_view id, std::string_view topic,
               std::optional<std::uint64_t> zmq_gap) {
    std::lock_guard lock(mu_);
    auto now = Clock::now();
    if (zmq_gap) {
      matcher_->noteZmqGap(now, *zmq_gap);
    }
    bool verifiable = verifiable_from_ && now >= *verifiable_from_;
    auto r = matcher_->observe(side, id, topic, now, wallMs(), verifiable);
    switch (r) {
      case Matcher::Result::Matched:
        log.logf(settings_.log_matches ? LogLevel::Info : LogLevel::Debug,
                 "matched {} (topic {}): received via ZeroMQ and AMQP", id, topic);
        break;
      case Matcher::Result::Duplicate:
        log.info("duplicate {} via {} (topic {})", id, verify::busName(side), topic);
        break;
      case Matcher::Result::Late:
        log.warn("message {} arrived via {} after it was reported missing there (slow, not lost)", id,
                 verify::busName(side));
        break;
      case Matcher::Result::LateMatched:
        log.info("message {} arrived via {} after its twin had been counted unverified for want of memory: it "
                 "was on both buses after all (late_matched)",
                 id, verify::busName(side));
        break;
      case Matcher::Result::New: break;
    }
    updateGauges();
    sweepLocked(log, now);
  }

  void sweep(Logger &log) {
    std::lock_guard lock(mu_);
    sweepLocked(log, Clock::now());
  }

  [[nodiscard]] std::chrono::milliseconds sweepInterval() const {
    // 20 looks per window keep the report within 5 % of the window; never busier than
    // 20 per second, never lazier than once a second.
    auto w = settings_.matcher.window / 20;
    return std::clamp<std::chrono::milliseconds>(w, std::chrono::milliseconds(50), std::chrono::milliseconds(1000));
  }

 private:
  void updateGauges() {
    for (auto *h : sides_) {
      if (h != nullptr && h->pending != nullptr) {
        h->pending->set(static_cast<std::int64_t>(matcher_->size()));
      }
      if (h != nullptr && h->evicted_ids != nullptr) {
        h->evicted_ids->set(static_cast<std::int64_t>(matcher_->evictedSize()));
      }
    }
  }

  void sweepLocked(Logger &log, Clock::time_point now) {
    if (now < next_sweep_) {
      return;
    }
    next_sweep_ = now + sweepInterval();
    if (!warned_alone_ && !ever_paired_ && first_attach_ &&
        now - *first_attach_ > settings_.grace + settings_.matcher.window) {
      // A configuration with one side only (or the sides in two processes) verifies nothing.
      warned_alone_ = true;
      log.warn("group '{}' has only a {} side: nothing can be verified; the zmq and the amqp side must run in "
               "the same process with the same group",
               name_, sides_[0] != nullptr ? "zmq" : "amqp");
    }
    auto reports = matcher_->expire(now);
    logUnverified(log);
    if (!reports.empty()) {
      int logged = 0;
      for (const auto &r : reports) {
        if (logged < kMaxWarningsPerSweep) {
          ++logged;
          std::string loss;
          if (r.side == Side::Amqp && r.zmq_gap_missing > 0) {
            loss = fmt::format(
                "; our ZeroMQ subscription detected {} lost message(s) (sequence gaps) around that time, so "
                "this may be our own ZeroMQ loss",
                r.zmq_gap_missing);
          }
          log.warn("message {} was only received via {} (full id {}, first seen {}, topic {}){}",
                   verify::matchKey(r.id), verify::busName(r.side), r.id, isoTime(r.first_seen_ms), r.topic,
                   loss);
        }
        writeReport(log, r);
      }
      if (reports.size() > static_cast<std::size_t>(logged)) {
        log.warn("... and {} more message(s) seen on one bus only (see the report file and the unmatched counters)",
                 reports.size() - static_cast<std::size_t>(logged));
      }
      if (report_ != nullptr) {
        std::fflush(report_);
      }
    }
    updateGauges();
  }

  /// Every id that cannot be verified for want of memory is counted (unverified) and logged:
  /// a few by name per sweep, the rest in one summary line.
  void logUnverified(Logger &log) {
    std::uint64_t more = 0;
    auto notes = matcher_->takeUnverified(kMaxUnverifiedLinesPerSweep, more);
    for (const auto &n : notes) {
      if (n.why == verify::UnverifiedNote::Why::Evicted) {
        log.warn("message {} (seen via {}, topic {}) was evicted before its window closed (max_entries {} "
                 "reached): counted as unverified, not reported",
                 n.id, verify::busName(n.side), n.topic, settings_.matcher.max_entries);
      } else {
        log.warn("message {} was seen only via {} (topic {}) but is not reported: the memory of evicted ids "
                 "overflowed (max_evicted {}), so its twin may have been forgotten; counted as unverified",
                 n.id, verify::busName(n.side), n.topic, settings_.matcher.max_evicted);
      }
    }
    if (more > 0) {
      log.warn("... and {} more id(s) not verified for want of memory (counter unverified): raise max_entries",
               more);
    }
  }

  void writeReport(Logger &log, const Report &r) {
    if (report_ == nullptr) {
      return;
    }
    std::string line = reportLine(r, settings_);
    if (std::fwrite(line.data(), 1, line.size(), report_) != line.size()) {
      log.error("writing the report file '{}' failed: {}", settings_.report, std::strerror(errno));
      std::clearerr(report_);
    }
  }

  std::string name_;
  std::mutex mu_;
  GroupSettings settings_;
  std::optional<Matcher> matcher_;
  std::array<SideHooks *, verify::kSides> sides_{};
  std::optional<Clock::time_point> verifiable_from_;
  std::optional<Clock::time_point> first_attach_;
  bool ever_paired_ = false;
  bool warned_alone_ = false;
  Clock::time_point next_sweep_{};
  std::FILE *report_ = nullptr;
};

std::chrono::milliseconds seconds(const sdk::Config &c, const char *key, double min) {
  double v = c.number(key);
  if (!std::isfinite(v) || v < min || v > 86400.0 * 7) {
    throw sdk::ConfigError(key, fmt::format("'{}' must be between {} and 604800 seconds", key, min));
  }
  return std::chrono::milliseconds(static_cast<std::int64_t>(std::llround(v * 1000.0)));
}

class VerifyMissing final : public Sink {
 public:
  explicit VerifyMissing(const sdk::Config &c)
      : id_header_(c.str("id_header")), group_(Group::of(c.host(), c.str("group"))) {
    auto side = verify::parseSide(c.str("side"));
    if (!side) {
      throw sdk::ConfigError("side", "'side' must be zmq or amqp");
    }
    side_ = *side;
    settings_.matcher.window = seconds(c, "window", 0.001);
    settings_.matcher.retain = seconds(c, "retain", 0.0);
    settings_.grace = seconds(c, "startup_grace", 0.0);
    auto max = c.integer("max_entries");
    if (max < 1) {
      throw sdk::ConfigError("max_entries", "'max_entries' must be at least 1");
    }
    settings_.matcher.max_entries = static_cast<std::size_t>(max);
    auto max_evicted = c.integer("max_evicted");
    if (max_evicted < 0) {
      throw sdk::ConfigError("max_evicted", "'max_evicted' must be 0 (as many as max_entries) or more");
    }
    settings_.matcher.max_evicted = max_evicted == 0 ? settings_.matcher.max_entries
                                                     : static_cast<std::size_t>(max_evicted);
    settings_.report = c.str("report");
    settings_.log_matches = c.boolean("log_matches");
    if (side_ != Side::Amqp) {
      id_header_.clear();  // a fedmsg message's id is its msg_id, always
    }
  }

  Status start(SinkContext &ctx) noexcept override {
    try {
      for (std::size_t k = 0; k < verify::kStats; ++k) {
        hooks_.counters[k] = &ctx.counter(verify::statName(static_cast<Stat>(k)));
      }
      hooks_.pending = &ctx.gauge("pending");
      hooks_.evicted_ids = &ctx.gauge("evicted_ids");
      Status st = group_->attach(side_, &hooks_, settings_);
      if (!st.isOk()) {
        return st;
      }
      attached_ = true;
      log_ = &ctx.log();
      interval_ = group_->sweepInterval();
      return Status::ok();
    } catch (const std::exception &e) {
      return Status::fatal(fmt::format("verify-missing: {}", e.what()));
    }
  }

  void send(SinkContext &ctx, Message &&msg, DeliveryId id) noexcept override {
    try {
      std::string mid = messageId(msg);
      if (mid.empty()) {
        ctx.countDrop("no_id");
        ctx.log().debug("message without an id via {} (topic {}): cannot be matched", verify::busName(side_),
                        msg.topic());
        ctx.done(id, Outcome::Dropped, "no_id");
        return;
      }
      std::optional<std::uint64_t> gap;
      if (auto g = msg.getMeta(kZmqSeqMissing); g && side_ == Side::Zmq) {
        std::uint64_t n = 0;
        if (std::from_chars(g->data(), g->data() + g->size(), n).ec == std::errc()) {
          gap = n;
        }
      }
      group_->observe(ctx.log(), side_, mid, msg.topic(), gap);
      ctx.done(id, Outcome::Delivered);
    } catch (const std::exception &e) {
      ctx.countDrop("internal_error");
      ctx.log().error("verify-missing: {}", e.what());
      ctx.done(id, Outcome::Dropped, "internal_error");
    }
  }

  Status poll(SinkContext &ctx, std::chrono::milliseconds timeout) noexcept override {
    try {
      group_->sweep(ctx.log());
    } catch (const std::exception &e) {
      ctx.log().error("verify-missing: {}", e.what());
    }
    pollfd pfd{ctx.wakeFd(), POLLIN, 0};
    (void)::poll(&pfd, 1, static_cast<int>(std::min(timeout, interval_).count()));
    return Status::ok();
  }

  void stop() noexcept override {
    if (attached_ && group_) {
      group_->detach(side_, *log_);
    }
    attached_ = false;
  }

  ~VerifyMissing() override {
    if (attached_ && group_) {  // stop() was not called: the context may be gone already
      group_->detach(side_, null_logger_);
    }
  }

 private:
  /// The id to match: fedmsg msg_id (zmq side), AMQP message_id or the id header (amqp side).
  std::string messageId(const Message &m) const {
    if (!id_header_.empty()) {
      // Parsed once per message (amqp-consume may have done it already).
      if (const json::Value *headers = codec::parsedHeaders(m)) {
        if (auto v = headers->findString(id_header_); v && !v->empty()) {
          return std::string(*v);
        }
      }
    }
    return m.id();
  }

  /// For a detach from the destructor, when the context's logger may be gone.
  class NullLogger final : public Logger {
   public:
    void log(LogLevel, std::string_view) noexcept override {}
    [[nodiscard]] bool enabled(LogLevel) const noexcept override { return false; }
  };

  std::string id_header_;
  Side side_ = Side::Zmq;
  GroupSettings settings_;
  SideHooks hooks_;
  std::shared_ptr<Group> group_;
  bool attached_ = false;
  std::chrono::milliseconds interval_{1000};
  NullLogger null_logger_;
  Logger *log_ = &null_logger_;  ///< the context's logger from start() on
};

}  // namespace

SWITCHYARD_PLUGIN(VerifyMissing, SY_KIND_SINK, "verify-missing", "1.0.0",
                  "Reports messages seen on only one of the two buses (ZeroMQ, AMQP) within a time window", 0,
                  kSchema)
