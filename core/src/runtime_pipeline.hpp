// SPDX-License-Identifier: MIT
// One pipeline of the runtime (internal): its threads, queues and contexts. The methods
// are defined by concern: runtime_pipeline.cpp (set-up, the input thread, submit and
// dispatch), runtime_workers.cpp (filter workers and the reorder window),
// runtime_output.cpp (output threads, the sink context and retries), runtime_journal.cpp
// (the disk journal of an input that cannot redeliver, its feeder thread, standby).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <fmt/format.h>

#include "log.hpp"
#include "runtime.hpp"
#include "runtime_queues.hpp"
#include "runtime_tracker.hpp"
#include "switchyard/backoff.hpp"

namespace switchyard {

class Pipeline {
 public:
  using Clock = rt::Clock;
  using Completion = rt::Completion;
  using CompletionQueue = rt::CompletionQueue;
  using Item = rt::Item;
  using OutputQueue = rt::OutputQueue;
  using PendingDelivery = rt::PendingDelivery;
  using RetryItem = rt::RetryItem;
  using Tracker = rt::Tracker;

  Pipeline(PipelinePlan plan, CounterStore &counters, const Settings &settings);
  ~Pipeline();
  void start();
  void requestStop() noexcept;
  bool done() const noexcept { return done_.load(); }
  bool waitDone(std::optional<Clock::time_point> deadline);
  void join();
  bool failed() const noexcept { return failed_.load(); }
  const std::string &name() const { return name_; }
  /// State, last message time and plugins (runtime_status.cpp). THREADING: any thread.
  PipelineStatus status() const;
  /// Reload (runtime_reload.cpp): marks this pipeline as an old version (true) while its
  /// new version takes its gauges in the store: a gauge it asks for from now on is its own.
  void setRetired(bool retired) noexcept { retired_.store(retired); }
  /// The gauge @p name of plugin @p plugin: the same object for every ask (runtime_reload.cpp).
  Gauge &gauge(const std::string &plugin, std::string_view name) noexcept;

 private:
  /// What every context shares.
  template <typename Iface>
  class Ctx : public Iface {
   public:
    Ctx(Pipeline &p, std::string place, std::string type)
        : p_(p),
          label_(fmt::format("{} ({})", place, type)),
          instance_(fmt::format("pipelines.{}.{} ({})", p.name_, place, type)),
          logger_(instance_) {}
    Logger &log() noexcept override { return logger_; }
    Counter &counter(std::string_view name, std::string_view label) noexcept override {
      return p_.counters_.counter(p_.name_, label_, name, label);
    }
    Gauge &gauge(std::string_view name) noexcept override { return p_.gauge(label_, name); }
    void countDrop(std::string_view reason) noexcept override {
      counter("dropped", reason).add();
      logger_.debug("dropped a message: {}", reason);
    }
    std::string_view pipeline() const noexcept override { return p_.name_; }
    std::string_view instance() const noexcept override { return instance_; }
    bool stopping() const noexcept override { return p_.stop_requested_.load(); }

   protected:
    Pipeline &p_;
    std::string label_;
    std::string instance_;
    logging::ContextLogger logger_;
  };

  class SourceCtx final : public Ctx<SourceContext> {
   public:
    using Ctx::Ctx;
    SubmitResult submit(Message &&msg, std::uint64_t tag) noexcept override {
      return p_.submit(std::move(msg), tag);
    }
    int wakeFd() const noexcept override { return p_.completions_.fd(); }
    std::size_t inFlight() const noexcept override { return p_.in_flight_.load(); }
    void wantFiltered(bool on) noexcept override { p_.want_filtered_.store(on); }
  };

  using FilterCtx = Ctx<PluginContext>;

  struct Output;
  class SinkCtx final : public Ctx<SinkContext> {
   public:
    SinkCtx(Pipeline &p, Output &o, std::string place, std::string type)
        : Ctx(p, std::move(place), std::move(type)), out_(o) {}
    void done(DeliveryId id, Outcome outcome, std::string_view reason) noexcept override;
    int wakeFd() const noexcept override;
    std::size_t pending() const noexcept override;
    void retry(DeliveryId id, Message &&msg, std::string_view reason) noexcept override;
    bool inputCanRedeliver() const noexcept override { return p_.input_.can_ack; }
    unsigned attempt() const noexcept override { return attempt_; }
    void setActive(bool active) noexcept override;  // runtime_journal.cpp
    unsigned attempt_ = 0;  ///< of the message being sent (output thread only)

   private:
    /// Removes delivery @p id from the pending set into @p d; logs and returns false when
    /// it is not there (settled twice, or never handed out).
    bool takePending(DeliveryId id, const char *call, PendingDelivery &d) noexcept;
    Output &out_;
  };

  struct Output {
    StageInstance stage;
    Sink *sink = nullptr;
    std::unique_ptr<SinkCtx> ctx;
    std::unique_ptr<OutputQueue> queue;
    std::mutex pending_mutex;
    std::unordered_map<DeliveryId, PendingDelivery> pending;
    DeliveryId next_id = 0;
    Counter *sent = nullptr;
    // Output retries (output thread only): due time -> message.
    std::multimap<Clock::time_point, RetryItem> retries;
    /// The delays between retries: stage.retry's backoff (output thread only).
    sdk::Backoff backoff;
    Gauge *retry_held = nullptr;
    std::thread thread;
    bool sink_failed = false;
    /// SinkContext::setActive(): false while this output stands by (runtime_journal.cpp).
    std::atomic<bool> active{true};
  };

  struct FilterStage;
  using Lane = std::vector<FilterStage>;

  SourceContext::SubmitResult submit(Message &&msg, std::uint64_t tag) noexcept;
  /// Runs @p lane over @p msg; true when every filter passed it, else it is settled.
  struct Refusal {
    Outcome outcome = Outcome::Dropped;
    std::string reason;
    std::string by;  ///< plugin name of the refusing filter ("" when not a filter's verdict)
  };
  /// Runs @p lane over @p msg; true when every filter passed it, else @p why says how it
  /// ended (counted already; the caller settles it).
  bool runFilters(Lane &lane, Message &msg, Refusal &why);
  /// Settles a message the filters refused, after the filtered() notice when wanted.
  void settleRefused(std::uint64_t tag, Refusal &&why);
  void notifyPassed(std::uint64_t tag);
  /// Sends @p msg to the sink under a fresh delivery id.
  void sendToSink(Output &o, Message &&msg, PendingDelivery d);
  /// Settles every message waiting for a retry as @p outcome (shutdown, failed sink).
  void dropRetries(Output &o, const char *why);
  /// Queues @p msg for every output (blocking while a queue is full); with a journal,
  /// appends it there instead (the feeder dispatches it).
  /// @p submitted_ns: when submit() took it (steady clock), for the latency histogram.
  void dispatch(Message &&msg, std::uint64_t tag, std::int64_t submitted_ns = 0);
  /// Queues @p msg for every output (blocking while a queue is full). @p journaled: @p tag
  /// is a journal sequence number.
  void dispatchOut(Message &&msg, std::uint64_t tag, std::int64_t submitted_ns, bool journaled);
  void submitParallel(Message &&msg, std::uint64_t tag, std::int64_t submitted_ns);
  void workerMain(std::size_t lane);
  void emitReady();
  void stopWorkers();
  void settleNow(std::uint64_t tag, Outcome o, std::string_view reason);
  void inputMain(std::promise<Status> started);
  void outputMain(Output &o, std::promise<Status> started);
  void failPipeline(std::string_view what, const Status &st);
  bool giveUp() const noexcept;
  void processCompletions(Source &src);
  void closeOutputs();

  // ---- the journal (runtime_journal.cpp) ----
  struct JournalRun;
  struct JournalRunDeleter {
    void operator()(JournalRun *j) const noexcept;
  };
  /// start(): opens the journal (throws StartError when its directory cannot be used).
  void journalOpen();
  /// Input thread (or the reorder emitter): appends a message that passed the filters.
  void journalAppend(Message &&msg, std::uint64_t tag, std::int64_t submitted_ns);
  /// processCompletions(): a journaled message settled at every output.
  void journalComplete(Source &src, const Completion &c, std::int64_t now_ns);
  /// The input thread's stop condition with a journal (@p eos: the input ended).
  bool journalIdle(bool eos) const noexcept;
  void journalStartFeeder();
  void journalStopFeeder();
  /// End of the input thread: flushes and closes the journal (what is unreleased stays).
  void journalClose();
  void feederMain();
  std::unique_ptr<JournalRun, JournalRunDeleter> jr_;
  std::size_t journalOutstanding() const noexcept;
  /// Outputs that stand by (SinkContext::setActive(false)).
  std::atomic<int> inactive_outputs_{0};

  std::string name_;
  CounterStore &counters_;
  Settings settings_;
  JournalSpec journal_spec_;
  StageInstance input_;
  Source *source_ = nullptr;
  std::unique_ptr<SourceCtx> source_ctx_;
  struct FilterStage {
    StageInstance stage;
    Filter *filter = nullptr;
    std::unique_ptr<FilterCtx> ctx;
  };
  std::vector<Lane> lanes_;  ///< one chain of filter instances per worker (at least one)

  // Filter workers (lanes_.size() > 1). Messages get a sequence number at submit; a worker
  // deposits its result in the ring slot of that number, and whichever thread finds the
  // next slot ready emits the run of ready slots in order (one emitter at a time).
  struct Job {
    Message msg;
    std::uint64_t tag = 0;
    std::uint64_t seq = 0;
    std::int64_t submitted_ns = 0;
  };
  struct Slot {
    bool ready = false;
    bool pass = false;  ///< false: refused (settled when emitted, in order)
    std::uint64_t tag = 0;
    Message msg;
    Refusal why;
    std::int64_t submitted_ns = 0;
  };
  std::mutex par_mutex_;
  std::condition_variable par_work_cv_;   ///< workers: a job arrived, or closing
  std::condition_variable par_space_cv_;  ///< submit: the window has room
  std::deque<Job> par_jobs_;
  std::vector<Slot> par_ring_;
  std::uint64_t par_next_seq_ = 0;
  std::uint64_t par_next_emit_ = 0;
  bool par_closing_ = false;
  std::atomic<bool> par_emitting_{false};
  std::vector<std::thread> workers_;
  CompletionQueue completions_;
  std::vector<Completion> completion_buf_;
  /// Owns the tracker of every message in flight; queued items and pending deliveries
  /// only point into it. Declared before outputs_, so it outlives them.
  rt::TrackerPool trackers_{completions_};
  std::vector<std::unique_ptr<Output>> outputs_;

  std::atomic<std::size_t> in_flight_{0};
  Gauge &in_flight_gauge_;
  Counter *received_ = nullptr;
  // Operations (runtime_status.cpp): end-to-end latency of delivered messages, observed on
  // the input thread; when the input last submitted (steady clock ns, 0: never).
  rt::Histogram *latency_ = nullptr;
  std::atomic<std::int64_t> last_submit_ns_{0};
  std::atomic<bool> stop_requested_{false};
  std::atomic<bool> intake_stopped_{false};
  std::atomic<bool> want_filtered_{false};
  std::atomic<bool> intake_closed_{false};  ///< stopIntake() returned: submit says Stopping
  std::atomic<std::int64_t> drain_deadline_ns_{0};
  std::atomic<bool> abort_{false};
  std::atomic<bool> failed_{false};
  std::atomic<bool> done_{false};
  std::mutex done_mutex_;
  std::condition_variable done_cv_;
  std::thread input_thread_;
  bool started_ = false;
  // The gauges this pipeline handed out, so that an old version keeps writing to its own
  // after a reload took the store's for the new version (runtime_reload.cpp).
  std::mutex gauges_mutex_;
  std::map<std::pair<std::string, std::string>, Gauge *> gauge_refs_;
  std::deque<Gauge> own_gauges_;  ///< asked for while retired
  std::atomic<bool> retired_{false};
};

}  // namespace switchyard
