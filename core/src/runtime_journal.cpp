// SPDX-License-Identifier: MIT
//
// The disk journal of a pipeline whose input cannot redeliver (docs/journal.md).
//
// Without a journal, submit() runs the filters and queues the message for every output,
// blocking while a queue is full. With one, submit() runs the filters (so the source hears
// each verdict at once, as before) and appends what passed to the journal, then returns:
// it blocks only on a full *journal* (`when_full: block`) or drops (`drop`, counted
// dropped{reason=journal_full} on the input). A feeder thread takes the records in order
// (Journal::next(): what a previous run left unreleased first) and dispatches them to the
// outputs, blocking on full queues there: the backlog of an outage lives on disk, and in
// memory only what the output queues hold. A record is released once its message settled at
// every output, whatever the outcome (counted as without a journal); at a stop, what was
// not delivered stays in the journal for the next start instead of being counted lost.
//
// Source tags: the completion of a journaled message carries its journal sequence number;
// the tags of the records appended in this run are kept so that complete() still reaches
// the source, as runs of consecutive (seq, tag) pairs: a few bytes for an outage's whole
// backlog, where both numbers count up together. Records of a previous run have no tag here: they are counted
// journal_replayed{reason=start} and not reported to the source.
//
// Standby (SinkContext::setActive, ABI 2.1): while any output stands by, the feeder
// dispatches nothing; it takes the new records into memory and releases those older than
// `standby_overlap` (journal_standby_trimmed, settled as dropped{reason=standby}: another
// instance delivered them). When every output is active again it dispatches what it held
// first (journal_replayed{reason=takeover}), then goes on with the journal.
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "journal.hpp"
#include "runtime_pipeline.hpp"

namespace switchyard {

namespace {
constexpr std::chrono::milliseconds kFeedWait{50};
constexpr std::chrono::milliseconds kGaugeEvery{200};

std::int64_t wallMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

journal::Fsync fsyncMode(const std::string &s) {
  if (s == "always") {
    return journal::Fsync::Always;
  }
  return s == "never" ? journal::Fsync::Never : journal::Fsync::Batch;
}
}  // namespace

struct Pipeline::JournalRun {
  std::unique_ptr<journal::Journal> j;
  std::uint64_t recovered_last = 0;  ///< highest seq of a previous run (replayed below it)

  /// The source tags of the records appended in this run: runs of n records from seq0
  /// with tags from tag0, in seq order; `done` of them were settled (a record settles once
  /// per run of the pipeline), and a run goes when all of them were.
  struct TagRun {
    std::uint64_t seq0 = 0;
    std::uint64_t tag0 = 0;
    std::uint64_t n = 0;
    std::uint64_t done = 0;
  };
  std::mutex tags_mutex;
  std::deque<TagRun> tags;

  /// Under tags_mutex.
  void addTag(std::uint64_t seq, std::uint64_t tag) {
    if (!tags.empty()) {
      TagRun &b = tags.back();
      if (b.seq0 + b.n == seq && b.tag0 + b.n == tag) {
        ++b.n;
        return;
      }
    }
    tags.push_back({seq, tag, 1, 0});
  }

  std::mutex feed_mutex;
  std::condition_variable feed_cv;
  bool feed_pending = false;  ///< something was appended, or the activity changed
  bool quit = false;          ///< journalStopFeeder()
  std::thread feeder;
  std::atomic<bool> feeder_done{false};
  std::atomic<bool> drained{false};         ///< the input ended and every record was handed out
  std::atomic<std::size_t> outstanding{0};  ///< dispatched (or trimmed), not yet settled
  std::uint64_t kept = 0;                   ///< input thread: left unreleased at the stop

  // Feeder thread only.
  std::deque<journal::Record> held;  ///< taken while standing by
  bool was_active = true;
  std::atomic<std::size_t> held_count{0};  ///< held.size(), for the gauges
  bool full_logged = false;  ///< appending threads (one at a time)
  // The gauges are refreshed by the feeder and by the appending thread (the feeder may
  // wait on a full output queue for the whole of an outage).
  std::mutex gauges_mutex;
  std::uint64_t fsyncs_seen = 0;
  std::atomic<std::int64_t> gauges_ns{0};  ///< when last refreshed (steady clock)

  Counter *appended = nullptr;
  Counter *replayed_start = nullptr;
  Counter *replayed_takeover = nullptr;
  Counter *trimmed = nullptr;
  Counter *problems = nullptr;
  Counter *errors = nullptr;
  Counter *kept_counter = nullptr;
  Counter *fsyncs = nullptr;
  Gauge *backlog = nullptr;
  Gauge *bytes = nullptr;
  Gauge *segments = nullptr;
  Gauge *held_gauge = nullptr;

  void wake() {
    {
      std::lock_guard lock(feed_mutex);
      feed_pending = true;
    }
    feed_cv.notify_one();
  }
  /// Feeder: waits for an append (or @p t); false once told to quit.
  bool wait(std::chrono::milliseconds t) {
    std::unique_lock lock(feed_mutex);
    feed_cv.wait_for(lock, t, [this] { return feed_pending || quit; });
    feed_pending = false;
    return !quit;
  }
  /// The source tag of @p seq when it was appended in this run (and forgets it).
  std::optional<std::uint64_t> takeTag(std::uint64_t seq) {
    std::lock_guard lock(tags_mutex);
    auto it = std::upper_bound(tags.begin(), tags.end(), seq,
                               [](std::uint64_t s, const TagRun &r) { return s < r.seq0; });
    if (it == tags.begin()) {
      return std::nullopt;
    }
    --it;
    if (seq >= it->seq0 + it->n) {
      return std::nullopt;
    }
    const std::uint64_t tag = it->tag0 + (seq - it->seq0);
    ++it->done;
    while (tags.size() > 1 && tags.front().done == tags.front().n) {
      tags.pop_front();  // the last run stays: appends may still extend it
    }
    return tag;
  }
  void updateGauges() {
    gauges_ns.store(Clock::now().time_since_epoch().count(), std::memory_order_relaxed);
    journal::Stats s = j->stats();
    const std::size_t h = held_count.load();
    std::lock_guard lock(gauges_mutex);
    backlog->set(static_cast<std::int64_t>(s.backlog + h));
    bytes->set(static_cast<std::int64_t>(s.live_bytes));
    segments->set(static_cast<std::int64_t>(s.segments));
    held_gauge->set(static_cast<std::int64_t>(h));
    if (s.fsyncs > fsyncs_seen) {
      fsyncs->add(s.fsyncs - fsyncs_seen);
      fsyncs_seen = s.fsyncs;
    }
  }
  /// Refreshes the gauges when they are older than kGaugeEvery.
  void maybeUpdateGauges() {
    const auto now = Clock::now().time_since_epoch().count();
    if (now - gauges_ns.load(std::memory_order_relaxed) >=
        std::chrono::duration_cast<Clock::duration>(kGaugeEvery).count()) {
      updateGauges();
    }
  }
};

void Pipeline::JournalRunDeleter::operator()(JournalRun *j) const noexcept {
  if (j->feeder.joinable()) {
    {
      std::lock_guard lock(j->feed_mutex);
      j->quit = true;
    }
    j->feed_cv.notify_all();
    j->feeder.join();
  }
  delete j;
}

void Pipeline::journalOpen() {
  const JournalSpec &spec = journal_spec_;
  journal::Options opts;
  opts.dir = spec.dir;
  opts.max_bytes = spec.max_bytes;
  opts.segment_bytes = std::min<std::uint64_t>(opts.segment_bytes, std::max<std::uint64_t>(spec.max_bytes / 8, 1 << 16));
  opts.fsync = fsyncMode(spec.fsync);
  opts.batch = std::chrono::milliseconds(spec.batch_ms);
  std::vector<journal::Problem> problems;
  std::string error;
  auto j = journal::Journal::open(opts, problems, error);
  auto pc = [&](std::string_view name, std::string_view label = {}) -> Counter & {
    return counters_.counter(name_, "", name, label);
  };
  Counter &problem_count = pc("journal_problems");
  for (const auto &p : problems) {
    problem_count.add();
    logging::core()->warn("pipeline '{}': journal {}: {} at byte {} ({} byte(s) skipped)", name_, p.file.string(),
                          p.what, p.offset, p.skipped_bytes);
  }
  if (!j) {
    // Not permanent: the directory may be held by this pipeline's previous version, which
    // a reload drains first, then starts this one again.
    throw StartError(fmt::format("pipelines.{}.journal: cannot open journal directory '{}': {}", name_, spec.dir,
                                 error),
                     false);
  }
  std::unique_ptr<JournalRun, JournalRunDeleter> run(new JournalRun);
  run->j = std::move(j);
  journal::Stats s = run->j->stats();
  run->recovered_last = s.last_seq;
  run->appended = &pc("journal_appended");
  run->replayed_start = &pc("journal_replayed", "start");
  run->replayed_takeover = &pc("journal_replayed", "takeover");
  run->trimmed = &pc("journal_standby_trimmed");
  run->problems = &problem_count;
  run->errors = &pc("journal_errors");
  run->kept_counter = &pc("journal_kept");
  run->fsyncs = &pc("journal_fsyncs");
  run->backlog = &gauge("", "journal_backlog");
  run->bytes = &gauge("", "journal_bytes");
  run->segments = &gauge("", "journal_segments");
  run->held_gauge = &gauge("", "journal_standby_held");
  run->updateGauges();
  if (s.backlog > 0) {
    logging::core()->info("pipeline '{}': journal {}: {} message(s) left by the previous run are sent first",
                          name_, spec.dir, s.backlog);
  }
  jr_ = std::move(run);
}

void Pipeline::journalAppend(Message &&msg, std::uint64_t tag, std::int64_t submitted_ns) {
  (void)submitted_ns;  // the record's own append time is what the feeder reports from
  JournalRun &jr = *jr_;
  const std::size_t need = journal::recordBytes(msg);
  while (true) {
    journal::Journal::AppendResult r;
    {
      std::lock_guard lock(jr.tags_mutex);  // the tags stay in seq order
      r = jr.j->append(msg);
      if (r.status == journal::Journal::AppendStatus::Ok) {
        jr.addTag(r.seq, tag);
      }
    }
    if (r.status == journal::Journal::AppendStatus::Ok) {
      jr.appended->add();
      jr.full_logged = false;
      jr.wake();
      jr.maybeUpdateGauges();
      return;
    }
    if (r.status == journal::Journal::AppendStatus::IoError) {
      jr.errors->add();
      source_ctx_->log().error("cannot append to the journal: {}; the message is lost", r.error);
      settleNow(tag, Outcome::Retry, "journal_error");
      return;
    }
    if (!journal_spec_.block_when_full) {
      source_ctx_->countDrop("journal_full");
      settleNow(tag, Outcome::Dropped, "journal_full");
      return;
    }
    if (abort_.load() || giveUp()) {
      settleNow(tag, Outcome::Retry, "shutdown");
      return;
    }
    if (!jr.full_logged) {
      jr.full_logged = true;
      source_ctx_->log().warn("the journal is full ({} bytes): the input waits for the outputs to catch up",
                              journal_spec_.max_bytes);
    }
    jr.j->waitForSpace(need, Clock::now() + std::chrono::milliseconds(100));
  }
}

void Pipeline::journalStartFeeder() {
  jr_->feeder = std::thread([this] { feederMain(); });
}

void Pipeline::journalStopFeeder() {
  JournalRun &jr = *jr_;
  {
    std::lock_guard lock(jr.feed_mutex);
    jr.quit = true;
  }
  jr.feed_cv.notify_all();
  if (jr.feeder.joinable()) {
    jr.feeder.join();
  }
}

std::size_t Pipeline::journalOutstanding() const noexcept { return jr_->outstanding.load(); }

bool Pipeline::journalIdle(bool eos) const noexcept {
  const JournalRun &jr = *jr_;
  if (jr.outstanding.load() != 0) {
    return false;
  }
  if (stop_requested_.load() || abort_.load()) {
    return jr.feeder_done.load();  // what the feeder has not dispatched stays in the journal
  }
  return eos && jr.drained.load();  // the input ended: everything it gave is delivered
}

void Pipeline::feederMain() {
  JournalRun &jr = *jr_;
  auto feed = [&](journal::Record &&rec, bool takeover) {
    if (takeover) {
      jr.replayed_takeover->add();
    } else if (rec.seq <= jr.recovered_last) {
      jr.replayed_start->add();
    }
    if (rec.seq <= jr.recovered_last) {  // not counted by a submit() of this run
      in_flight_.fetch_add(1);
      in_flight_gauge_.add(1);
    }
    jr.outstanding.fetch_add(1);
    // End-to-end latency from the append (the wall-clock age turned into the steady clock).
    const std::int64_t age_ns = std::max<std::int64_t>(0, wallMs() - rec.appended_ms) * 1000000;
    const std::int64_t submitted_ns = Clock::now().time_since_epoch().count() - age_ns;
    dispatchOut(std::move(rec.msg), rec.seq, submitted_ns, true);
  };
  while (!stop_requested_.load() && !abort_.load()) {
    jr.maybeUpdateGauges();
    if (inactive_outputs_.load() > 0) {
      // Standing by: keep the last standby_overlap seconds, dispatch nothing.
      if (jr.was_active) {
        jr.was_active = false;
        logging::core()->info("pipeline '{}': standing by: journaling without sending, keeping the last {} s",
                              name_, journal_spec_.standby_overlap_s);
      }
      while (auto r = jr.j->next()) {
        jr.held.push_back(std::move(*r));
      }
      jr.held_count.store(jr.held.size());
      const auto cutoff = wallMs() - static_cast<std::int64_t>(journal_spec_.standby_overlap_s * 1000);
      while (!jr.held.empty() && jr.held.front().appended_ms < cutoff) {
        const std::uint64_t seq = jr.held.front().seq;
        if (seq <= jr.recovered_last) {
          in_flight_.fetch_add(1);
          in_flight_gauge_.add(1);
        }
        jr.held.pop_front();
        jr.held_count.store(jr.held.size());
        jr.trimmed->add();
        jr.outstanding.fetch_add(1);
        Completion c{seq, Outcome::Dropped, "standby"};
        c.journaled = true;
        completions_.push(std::move(c));
      }
      if (!jr.wait(std::chrono::milliseconds(100))) {
        break;
      }
      continue;
    }
    if (!jr.was_active) {
      jr.was_active = true;
      logging::core()->info("pipeline '{}': active: sending the {} message(s) kept while standing by first", name_,
                            jr.held.size());
    }
    if (!jr.held.empty()) {
      journal::Record rec = std::move(jr.held.front());
      jr.held.pop_front();
      jr.held_count.store(jr.held.size());
      feed(std::move(rec), true);
      continue;
    }
    const bool closed = intake_closed_.load();  // read before next(): nothing is appended after
    if (auto rec = jr.j->next()) {
      feed(std::move(*rec), false);
      continue;
    }
    if (closed) {
      jr.drained.store(true);
    }
    if (!jr.wait(kFeedWait)) {
      break;
    }
  }
  jr.updateGauges();
  jr.feeder_done.store(true);
}

void Pipeline::journalComplete(Source &src, const Completion &c, std::int64_t now_ns) {
  JournalRun &jr = *jr_;
  const std::uint64_t seq = c.tag;
  jr.outstanding.fetch_sub(1);
  in_flight_.fetch_sub(1);
  in_flight_gauge_.add(-1);
  auto tag = jr.takeTag(seq);
  if (c.outcome == Outcome::Retry && (stop_requested_.load() || abort_.load())) {
    // Not delivered because the pipeline stops: it stays for the next start, not lost.
    ++jr.kept;
    jr.kept_counter->add();
    return;
  }
  jr.j->release(seq);
  if (c.outcome == Outcome::Delivered && c.submitted_ns != 0) {
    latency_->observe(now_ns - c.submitted_ns);
  }
  source_ctx_->counter("completed", outcomeName(c.outcome)).add();
  if (c.outcome == Outcome::Retry && !input_.can_ack) {
    source_ctx_->counter("lost", c.reason).add();
  }
  if (tag) {
    src.complete(*tag, c.outcome, c.reason);
  }
}

void Pipeline::journalClose() {
  JournalRun &jr = *jr_;
  jr.j->flush();
  journal::Stats s = jr.j->stats();
  jr.backlog->set(static_cast<std::int64_t>(s.backlog));
  // Messages taken in this run that never reached the outputs are no longer in flight
  // here: they wait in the journal.
  const std::size_t left = in_flight_.exchange(0);
  in_flight_gauge_.add(-static_cast<std::int64_t>(left));
  if (s.live_records > 0) {
    logging::core()->info("pipeline '{}': journal {}: {} message(s) not yet delivered stay for the next start", name_,
                          journal_spec_.dir, s.live_records);
  }
  jr_.reset();  // closes the journal and its lock
}

void Pipeline::SinkCtx::setActive(bool active) noexcept {
  if (out_.active.exchange(active) == active) {
    return;
  }
  p_.inactive_outputs_.fetch_add(active ? -1 : 1);
  logger_.info("{}", active ? "active" : "standing by");
  if (p_.jr_) {
    p_.jr_->wake();
  }
}

}  // namespace switchyard
