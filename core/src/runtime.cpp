// SPDX-License-Identifier: MIT
//
// Threads: one per input (the source, then the filters, run there) and one per output.
// Between the input and each output sits a bounded queue (messages and bytes). A pipeline
// with `workers` > 1 runs its filters on that many worker threads instead, each with its
// own chain of filter instances; a reorder window puts the results back into the order in
// which the source submitted them before they reach the outputs. Every
// submitted message gets a Tracker that counts the outputs still owing an outcome; when
// the last one reports, the aggregated outcome goes back to the input thread through a
// completion queue and the source settles its delivery (docs/architecture.md).
#include "runtime.hpp"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <cerrno>
#include <condition_variable>
#include <deque>
#include <future>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <unordered_map>

#include <fmt/format.h>

#include "log.hpp"

namespace switchyard {

// ---------------------------------------------------------------------------------------
// CounterStore

Counter &CounterStore::counter(std::string_view pipeline, std::string_view plugin,
                               std::string_view name, std::string_view label) {
  std::lock_guard lock(mutex_);
  auto &slot = counters_[Key{std::string(pipeline), std::string(plugin), std::string(name),
                             std::string(label)}];
  if (!slot) {
    slot = std::make_unique<Counter>();
  }
  return *slot;
}

Gauge &CounterStore::gauge(std::string_view pipeline, std::string_view plugin,
                           std::string_view name) {
  std::lock_guard lock(mutex_);
  auto &slot = gauges_[Key{std::string(pipeline), std::string(plugin), std::string(name), {}}];
  if (!slot) {
    slot = std::make_unique<Gauge>();
  }
  return *slot;
}

std::vector<CounterSample> CounterStore::snapshot() const {
  std::lock_guard lock(mutex_);
  std::vector<CounterSample> out;
  out.reserve(counters_.size() + gauges_.size());
  for (const auto &[k, c] : counters_) {
    out.push_back({std::get<0>(k), std::get<1>(k), std::get<2>(k), std::get<3>(k),
                   static_cast<std::int64_t>(c->value()), false});
  }
  for (const auto &[k, g] : gauges_) {
    out.push_back({std::get<0>(k), std::get<1>(k), std::get<2>(k), std::get<3>(k), g->value(), true});
  }
  return out;
}

std::int64_t CounterStore::sum(std::string_view pipeline, std::string_view name,
                               std::string_view label) const {
  std::lock_guard lock(mutex_);
  std::int64_t total = 0;
  for (const auto &[k, c] : counters_) {
    if (std::get<0>(k) == pipeline && std::get<2>(k) == name &&
        (label.empty() || std::get<3>(k) == label)) {
      total += static_cast<std::int64_t>(c->value());
    }
  }
  for (const auto &[k, g] : gauges_) {
    if (std::get<0>(k) == pipeline && std::get<2>(k) == name) {
      total += g->value();
    }
  }
  return total;
}

namespace {

using Clock = std::chrono::steady_clock;
constexpr std::chrono::milliseconds kIdlePoll{100};
constexpr std::size_t kSinkBatch = 128;

class EventFd {
 public:
  EventFd() : fd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
    if (fd_ < 0) {
      throw std::system_error(errno, std::generic_category(), "eventfd");
    }
  }
  ~EventFd() { ::close(fd_); }
  EventFd(const EventFd &) = delete;
  EventFd &operator=(const EventFd &) = delete;
  void signal() noexcept {
    std::uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(fd_, &one, sizeof one);
  }
  void clear() noexcept {
    std::uint64_t v;
    [[maybe_unused]] auto n = ::read(fd_, &v, sizeof v);
  }
  bool wait(std::chrono::milliseconds timeout) const noexcept {
    pollfd p{fd_, POLLIN, 0};
    return ::poll(&p, 1, static_cast<int>(timeout.count())) > 0;
  }
  [[nodiscard]] int fd() const noexcept { return fd_; }

 private:
  int fd_;
};

struct Completion {
  std::uint64_t tag;
  Outcome outcome;
  std::string reason;
  /// Source::filtered() notice rather than a settlement: @p outcome is unused, @p passed
  /// says whether the filters passed it, @p refused_by names the refusing filter.
  bool filtered = false;
  bool passed = false;
  std::string refused_by;
};

class CompletionQueue {
 public:
  /// Signals only when the queue turns non-empty: the reader drains everything it finds,
  /// so one wake-up per batch is enough and the threads do not ping-pong per message.
  void push(Completion c) {
    bool first;
    {
      std::lock_guard lock(mutex_);
      first = items_.empty();
      items_.push_back(std::move(c));
    }
    if (first) {
      ready_.signal();
    }
  }
  void take(std::vector<Completion> &out) {
    std::lock_guard lock(mutex_);
    ready_.clear();
    out.swap(items_);
  }
  [[nodiscard]] int fd() const noexcept { return ready_.fd(); }
  bool wait(std::chrono::milliseconds t) const noexcept { return ready_.wait(t); }

 private:
  std::mutex mutex_;
  std::vector<Completion> items_;
  EventFd ready_;
};

/// Shared by every output of one message.
struct Tracker {
  Tracker(std::uint64_t t, int n, CompletionQueue &q) : tag(t), remaining(n), completions(q) {}
  std::uint64_t tag;
  std::atomic<int> remaining;
  CompletionQueue &completions;
  std::mutex mutex;
  Outcome worst = Outcome::Delivered;
  std::string reason;

  /// One output is done; the last one deletes the tracker.
  void settle(Outcome o, std::string_view why) {
    {
      std::lock_guard lock(mutex);
      if (static_cast<int>(o) > static_cast<int>(worst)) {
        worst = o;
        reason.assign(why);
      }
    }
    if (remaining.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      completions.push({tag, worst, std::move(reason)});
      delete this;
    }
  }
};

struct Item {
  Message msg;
  Tracker *tracker;
};

/// Bytes of heap a glibc malloc(@p n) takes: the chunk, header included, 16-byte aligned,
/// 32 at least.
constexpr std::size_t mallocChunk(std::size_t n) noexcept {
  return std::max<std::size_t>(32, (n + 8 + 15) & ~std::size_t{15});
}

/// What one queued message really costs (issue 12, case 6): the object, every string buffer
/// that does not fit its small-string space (by capacity, not size, with the allocator's
/// header), the meta vector's buffer, its share of the tracker and the queue's bookkeeping.
/// Message::byteSize() counts only the text, about half of this for a fedmsg message of a
/// few hundred bytes, so queue_max_bytes did not bound the memory it promised to.
std::size_t footprint(const Message &m) noexcept {
  auto str = [](const std::string &x) -> std::size_t {
    return x.capacity() > 15 ? mallocChunk(x.capacity() + 1) : 0;
  };
  std::size_t n = sizeof(Item) + sizeof(std::size_t) + mallocChunk(sizeof(Tracker)) + str(m.topic()) +
                  str(m.body()) + str(m.headers()) + str(m.id());
  if (m.meta.capacity() > 0) {
    n += mallocChunk(m.meta.capacity() * sizeof(m.meta[0]));
  }
  for (const auto &kv : m.meta) {
    n += str(kv.first) + str(kv.second);
  }
  return n;
}

class OutputQueue {
 public:
  OutputQueue(std::size_t max_messages, std::size_t max_bytes, Gauge &depth, Gauge &bytes)
      : max_messages_(std::max<std::size_t>(1, max_messages)),
        max_bytes_(max_bytes),
        depth_(depth),
        bytes_gauge_(bytes) {}

  /// Blocks while full. Returns false (item not queued) when @p give_up says so. Messages
  /// the output holds for a retry count against the same limits (hold()).
  template <typename GiveUp>
  bool push(Item &&item, GiveUp &&give_up) {
    std::size_t size = footprint(item.msg);
    std::unique_lock lock(mutex_);
    while (items_.size() + held_count_ > 0 &&
           (items_.size() + held_count_ >= max_messages_ || bytes_ + held_bytes_ + size > max_bytes_)) {
      if (give_up()) {
        return false;
      }
      not_full_.wait_for(lock, std::chrono::milliseconds(20));
    }
    bool first = items_.empty();  // see CompletionQueue::push
    bytes_ += size;
    item_sizes_.push_back(size);
    items_.push_back(std::move(item));
    depth_.set(static_cast<std::int64_t>(items_.size()));
    bytes_gauge_.set(static_cast<std::int64_t>(bytes_));
    lock.unlock();
    if (first) {
      ready_.signal();
    }
    return true;
  }

  void popBatch(std::vector<Item> &out, std::size_t max) {
    {
      std::lock_guard lock(mutex_);
      while (!items_.empty() && out.size() < max) {
        out.push_back(std::move(items_.front()));
        items_.pop_front();
        bytes_ -= item_sizes_.front();
        item_sizes_.pop_front();
      }
      if (items_.empty()) {
        ready_.clear();
      }
      depth_.set(static_cast<std::int64_t>(items_.size()));
      bytes_gauge_.set(static_cast<std::int64_t>(bytes_));
    }
    not_full_.notify_all();
  }

  /// A message of @p size bytes waits in the output for a retry: it still takes room.
  void hold(std::size_t size) {
    std::lock_guard lock(mutex_);
    ++held_count_;
    held_bytes_ += size;
  }
  void release(std::size_t size) {
    {
      std::lock_guard lock(mutex_);
      --held_count_;
      held_bytes_ -= size;
    }
    not_full_.notify_all();
  }

  void close() {
    {
      std::lock_guard lock(mutex_);
      closed_ = true;
    }
    ready_.signal();
    not_full_.notify_all();
  }
  bool closedAndEmpty() {
    std::lock_guard lock(mutex_);
    return closed_ && items_.empty();
  }
  bool empty() {
    std::lock_guard lock(mutex_);
    return items_.empty();
  }
  void wake() { not_full_.notify_all(); }
  [[nodiscard]] int fd() const noexcept { return ready_.fd(); }

 private:
  std::size_t max_messages_;
  std::size_t max_bytes_;
  Gauge &depth_;
  Gauge &bytes_gauge_;
  std::mutex mutex_;
  std::condition_variable not_full_;
  std::deque<Item> items_;
  std::deque<std::size_t> item_sizes_;
  std::size_t bytes_ = 0;
  std::size_t held_count_ = 0;
  std::size_t held_bytes_ = 0;
  bool closed_ = false;
  EventFd ready_;
};

/// A delivery handed to a sink and not yet settled.
struct PendingDelivery {
  Tracker *tracker = nullptr;
  unsigned attempt = 0;            ///< earlier tries of this message at this output
  Clock::time_point first_failure;  ///< of the first retry (attempt > 0)
};

/// A message an output waits to send again.
struct RetryItem {
  Message msg;
  std::size_t size = 0;  ///< as held in the queue's accounting
  PendingDelivery d;
  std::string reason;
};

}  // namespace

// ---------------------------------------------------------------------------------------
// Pipeline

class Pipeline {
 public:
  Pipeline(PipelinePlan plan, CounterStore &counters, const Settings &settings);
  ~Pipeline();
  void start();
  void requestStop() noexcept;
  bool done() const noexcept { return done_.load(); }
  bool waitDone(std::optional<Clock::time_point> deadline);
  void join();
  bool failed() const noexcept { return failed_.load(); }
  const std::string &name() const { return name_; }

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
    Gauge &gauge(std::string_view name) noexcept override {
      return p_.counters_.gauge(p_.name_, label_, name);
    }
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
    std::uint64_t rng = 0x9e3779b97f4a7c15ULL;  ///< jitter (xorshift; not for secrets)
    Gauge *retry_held = nullptr;
    std::thread thread;
    bool sink_failed = false;
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
  /// Queues @p msg for every output (blocking while a queue is full).
  void dispatch(Message &&msg, std::uint64_t tag);
  void submitParallel(Message &&msg, std::uint64_t tag);
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

  std::string name_;
  CounterStore &counters_;
  Settings settings_;
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
  };
  struct Slot {
    bool ready = false;
    bool pass = false;  ///< false: refused (settled when emitted, in order)
    std::uint64_t tag = 0;
    Message msg;
    Refusal why;
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
  std::vector<std::unique_ptr<Output>> outputs_;
  CompletionQueue completions_;
  std::vector<Completion> completion_buf_;

  std::atomic<std::size_t> in_flight_{0};
  Gauge &in_flight_gauge_;
  Counter *received_ = nullptr;
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
};

Pipeline::Pipeline(PipelinePlan plan, CounterStore &counters, const Settings &settings)
    : name_(std::move(plan.name)),
      counters_(counters),
      settings_(settings),
      input_(std::move(plan.input)),
      in_flight_gauge_(counters.gauge(name_, "", "in_flight")) {
  source_ = static_cast<Source *>(input_.plugin.get());
  source_ctx_ = std::make_unique<SourceCtx>(*this, input_.place, input_.type);
  received_ = &source_ctx_->counter("received", {});
  for (auto &chain : plan.filters) {
    Lane lane;
    for (auto &f : chain) {
      FilterStage fs;
      fs.filter = static_cast<Filter *>(f.plugin.get());
      // Every instance of one filter entry shares its label, hence its counters.
      fs.ctx = std::make_unique<FilterCtx>(*this, f.place, f.type);
      fs.stage = std::move(f);
      lane.push_back(std::move(fs));
    }
    lanes_.push_back(std::move(lane));
  }
  if (lanes_.empty()) {
    lanes_.emplace_back();
  }
  if (lanes_.size() > 1) {
    // Enough room for every worker to stay busy while a slow message holds the head.
    par_ring_.resize(std::max<std::size_t>(64, 16 * lanes_.size()));
  }
  for (auto &s : plan.outputs) {
    auto o = std::make_unique<Output>();
    o->sink = static_cast<Sink *>(s.plugin.get());
    o->ctx = std::make_unique<SinkCtx>(*this, *o, s.place, s.type);
    o->queue = std::make_unique<OutputQueue>(settings.queue_max_messages, settings.queue_max_bytes,
                                             o->ctx->gauge("queue_depth"),
                                             o->ctx->gauge("queue_bytes"));
    o->sent = &o->ctx->counter("sent", {});
    o->retry_held = &o->ctx->gauge("retry_held");
    o->rng ^= reinterpret_cast<std::uintptr_t>(o.get()) * 0xff51afd7ed558ccdULL;
    o->stage = std::move(s);
    outputs_.push_back(std::move(o));
  }
}

Pipeline::~Pipeline() { join(); }

bool Pipeline::SinkCtx::takePending(DeliveryId id, const char *call, PendingDelivery &d) noexcept {
  std::lock_guard lock(out_.pending_mutex);
  auto it = out_.pending.find(id);
  if (it == out_.pending.end()) {
    logger_.error("{}() called for unknown or already settled delivery {}", call, id);
    return false;
  }
  d = it->second;
  out_.pending.erase(it);
  return true;
}

void Pipeline::SinkCtx::done(DeliveryId id, Outcome outcome, std::string_view reason) noexcept {
  PendingDelivery d;
  if (!takePending(id, "done", d)) {
    return;
  }
  Tracker *t = d.tracker;
  switch (outcome) {
    case Outcome::Delivered: out_.sent->add(); break;
    case Outcome::Dropped: countDrop(reason.empty() ? "unspecified" : reason); break;
    case Outcome::Retry:
    case Outcome::Reject: counter("failed", reason.empty() ? "unspecified" : reason).add(); break;
  }
  try {
    t->settle(outcome, reason);
  } catch (...) {
    logger_.error("out of memory while settling delivery {}", id);
  }
}

// Output thread. The message waits in this output (counted in its queue's limits) and is
// sent again after a jittered exponential backoff; the other outputs of the message are not
// involved. When the policy's max_duration has passed since the first failure, it is settled
// as Reject: an input that can redeliver dead-letters it, any other input counts it lost.
void Pipeline::SinkCtx::retry(DeliveryId id, Message &&msg, std::string_view reason) noexcept {
  PendingDelivery d;
  if (!takePending(id, "retry", d)) {
    return;
  }
  std::string why(reason.empty() ? "unspecified" : reason);
  try {
    const RetryPolicy &pol = out_.stage.retry;
    auto now = Clock::now();
    if (d.attempt == 0) {
      d.first_failure = now;
    }
    double spent = std::chrono::duration<double>(now - d.first_failure).count();
    bool exhausted = pol.max_duration_s > 0 && spent >= pol.max_duration_s;
    if (exhausted) {
      counter("failed", why).add();
      counter("retry_exhausted", why).add();
      logger_.error("gave up on message '{}' after {} attempt(s) over {:.1f} s ({}); {}", msg.id(),
                    d.attempt + 1, spent, why,
                    p_.input_.can_ack ? "the input rejects it (dead-letter)" : "it is lost");
      d.tracker->settle(Outcome::Reject, why);
      return;
    }
    // Stopping: an input that can redeliver gets it back at once (as dropRetries() does
    // for what already waits); for any other input it keeps its chance until the deadline.
    if (p_.abort_.load() || (p_.stop_requested_.load() && p_.input_.can_ack)) {
      counter("failed", "shutdown").add();
      d.tracker->settle(Outcome::Retry, "shutdown");
      return;
    }
    // Exponential from initial_backoff, capped at max_backoff, jittered by ±jitter.
    double base = pol.initial_backoff_s * std::pow(2.0, std::min(d.attempt, 30u));
    base = std::min(base, pol.max_backoff_s);
    auto &r = out_.rng;
    r ^= r << 13, r ^= r >> 7, r ^= r << 17;
    double u = static_cast<double>(r >> 11) / static_cast<double>(1ULL << 53);  // [0, 1)
    double wait = base * (1.0 + pol.jitter * (2.0 * u - 1.0));
    if (base >= pol.max_backoff_s) {
      wait = std::max(wait, 1.0);  // at the cap: never more than one retry a second
    }
    ++d.attempt;
    counter("retried", why).add();
    if (d.attempt == 1 || d.attempt % 10 == 0) {
      logger_.debug("message '{}' will be retried in {:.2f} s (attempt {}): {}", msg.id(), wait,
                    d.attempt + 1, why);
    }
    RetryItem item;
    item.size = footprint(msg);
    item.msg = std::move(msg);
    item.d = d;
    item.reason = std::move(why);
    out_.queue->hold(item.size);
    auto due = now + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(wait));
    out_.retries.emplace(due, std::move(item));
    out_.retry_held->set(static_cast<std::int64_t>(out_.retries.size()));
  } catch (...) {
    logger_.error("out of memory while scheduling a retry of delivery {}", id);
    d.tracker->settle(Outcome::Retry, "out_of_memory");
  }
}

int Pipeline::SinkCtx::wakeFd() const noexcept { return out_.queue->fd(); }

std::size_t Pipeline::SinkCtx::pending() const noexcept {
  std::lock_guard lock(out_.pending_mutex);
  return out_.pending.size();
}

bool Pipeline::giveUp() const noexcept {
  if (abort_.load()) {
    return true;
  }
  if (!stop_requested_.load()) {
    return false;
  }
  auto now = Clock::now().time_since_epoch().count();
  return now > drain_deadline_ns_.load();
}

void Pipeline::settleNow(std::uint64_t tag, Outcome o, std::string_view reason) {
  completions_.push({tag, o, std::string(reason)});
}

SourceContext::SubmitResult Pipeline::submit(Message &&msg, std::uint64_t tag) noexcept {
  // During Source::stopIntake() submissions are still taken (a ZeroMQ source hands over what
  // its socket holds); after it, and when aborting, they are refused.
  if (intake_closed_.load() || abort_.load() || (intake_stopped_.load() && giveUp())) {
    return SourceContext::SubmitResult::Stopping;
  }
  try {
    received_->add();
    in_flight_.fetch_add(1);
    in_flight_gauge_.add(1);
    if (lanes_.size() > 1) {
      submitParallel(std::move(msg), tag);
    } else {
      Refusal why;
      if (runFilters(lanes_.front(), msg, why)) {
        notifyPassed(tag);
        dispatch(std::move(msg), tag);
      } else {
        settleRefused(tag, std::move(why));
      }
    }
  } catch (const std::exception &e) {
    source_ctx_->log().error("internal error while submitting: {}", e.what());
    settleNow(tag, Outcome::Retry, "internal_error");
  }
  return SourceContext::SubmitResult::Accepted;
}

bool Pipeline::runFilters(Lane &lane, Message &msg, Refusal &why) {
  for (auto &f : lane) {
    Verdict v = f.filter->process(*f.ctx, msg);
    if (v.kind == Verdict::Kind::Pass) {
      continue;
    }
    why.reason = v.reason.empty() ? "unspecified" : v.reason;
    why.by = f.stage.type;
    if (v.kind == Verdict::Kind::Drop) {
      f.ctx->countDrop(why.reason);
      why.outcome = Outcome::Dropped;
    } else {
      f.ctx->counter("errors", why.reason).add();
      f.ctx->log().debug("message failed: {}", why.reason);
      why.outcome = v.retry ? Outcome::Retry : Outcome::Reject;
    }
    return false;
  }
  return true;
}

void Pipeline::notifyPassed(std::uint64_t tag) {
  if (want_filtered_.load(std::memory_order_relaxed)) {
    Completion c{tag, Outcome::Delivered, {}};
    c.filtered = true;
    c.passed = true;
    completions_.push(std::move(c));
  }
}

void Pipeline::settleRefused(std::uint64_t tag, Refusal &&why) {
  if (want_filtered_.load(std::memory_order_relaxed)) {
    Completion c{tag, Outcome::Delivered, why.reason};
    c.filtered = true;
    c.refused_by = std::move(why.by);
    completions_.push(std::move(c));
  }
  completions_.push({tag, why.outcome, std::move(why.reason)});
}

void Pipeline::dispatch(Message &&msg, std::uint64_t tag) {
  auto *tracker = new Tracker(tag, static_cast<int>(outputs_.size()), completions_);
  for (std::size_t i = 0; i < outputs_.size(); ++i) {
    auto &o = *outputs_[i];
    Item item{i + 1 == outputs_.size() ? std::move(msg) : msg, tracker};
    if (!o.queue->push(std::move(item), [this] { return giveUp(); })) {
      o.ctx->counter("failed", "shutdown").add();
      tracker->settle(Outcome::Retry, "shutdown");
    }
  }
}

// Input thread. Waits while the reorder window is full: that is the workers' backpressure.
void Pipeline::submitParallel(Message &&msg, std::uint64_t tag) {
  {
    std::unique_lock lock(par_mutex_);
    while (par_next_seq_ - par_next_emit_ >= par_ring_.size()) {
      if (giveUp()) {
        lock.unlock();
        settleRefused(tag, Refusal{Outcome::Retry, "shutdown", {}});
        return;
      }
      par_space_cv_.wait_for(lock, std::chrono::milliseconds(20));
    }
    par_jobs_.push_back(Job{std::move(msg), tag, par_next_seq_++});
  }
  par_work_cv_.notify_one();
}

void Pipeline::workerMain(std::size_t lane) {
  while (true) {
    Job job;
    {
      std::unique_lock lock(par_mutex_);
      par_work_cv_.wait(lock, [this] { return !par_jobs_.empty() || par_closing_; });
      if (par_jobs_.empty()) {
        return;
      }
      job = std::move(par_jobs_.front());
      par_jobs_.pop_front();
    }
    bool pass = false;
    Refusal why;
    try {
      if (abort_.load()) {
        why = Refusal{Outcome::Retry, "shutdown", {}};
      } else {
        pass = runFilters(lanes_[lane], job.msg, why);
      }
    } catch (const std::exception &e) {
      source_ctx_->log().error("internal error in a filter worker: {}", e.what());
      why = Refusal{Outcome::Retry, "internal_error", {}};
      pass = false;
    }
    {
      std::lock_guard lock(par_mutex_);
      Slot &slot = par_ring_[job.seq % par_ring_.size()];
      slot.ready = true;
      slot.pass = pass;
      slot.tag = job.tag;
      if (pass) {
        slot.msg = std::move(job.msg);
      } else {
        slot.why = std::move(why);
      }
    }
    emitReady();
  }
}

// Emits the run of ready slots at the head of the window, in sequence order. Only one
// thread emits at a time; a thread that finds another emitting leaves its slot to it. The
// re-check after letting go closes the race with a slot deposited just before.
void Pipeline::emitReady() {
  while (true) {
    if (par_emitting_.exchange(true)) {
      return;
    }
    while (true) {
      Slot slot;
      {
        std::lock_guard lock(par_mutex_);
        Slot &head = par_ring_[par_next_emit_ % par_ring_.size()];
        if (!head.ready) {
          break;
        }
        slot = std::move(head);
        head = Slot{};
        ++par_next_emit_;
      }
      par_space_cv_.notify_one();
      try {
        if (slot.pass) {
          notifyPassed(slot.tag);
          dispatch(std::move(slot.msg), slot.tag);
        } else {
          settleRefused(slot.tag, std::move(slot.why));
        }
      } catch (const std::exception &e) {
        source_ctx_->log().error("internal error while queueing: {}", e.what());
        settleNow(slot.tag, Outcome::Retry, "internal_error");
      }
    }
    par_emitting_.store(false);
    std::lock_guard lock(par_mutex_);
    if (!par_ring_[par_next_emit_ % par_ring_.size()].ready) {
      return;
    }
  }
}

void Pipeline::stopWorkers() {
  {
    std::lock_guard lock(par_mutex_);
    par_closing_ = true;
  }
  par_work_cv_.notify_all();
  for (auto &w : workers_) {
    if (w.joinable()) {
      w.join();
    }
  }
  workers_.clear();
}

void Pipeline::processCompletions(Source &src) {
  completions_.take(completion_buf_);
  for (auto &c : completion_buf_) {
    if (c.filtered) {
      src.filtered(c.tag, c.passed, c.refused_by, c.reason);
      continue;
    }
    source_ctx_->counter("completed", outcomeName(c.outcome)).add();
    if (c.outcome == Outcome::Retry && !input_.can_ack) {
      // Only an input that can redeliver can act on "retry": for any other input the
      // message is gone. Count it, so that received = delivered + dropped + lost + ...
      source_ctx_->counter("lost", c.reason).add();
    }
    src.complete(c.tag, c.outcome, c.reason);
    in_flight_.fetch_sub(1);
    in_flight_gauge_.add(-1);
  }
  completion_buf_.clear();
}

void Pipeline::failPipeline(std::string_view what, const Status &st) {
  logging::core()->error("pipeline '{}': {}: {}", name_, what, st.message());
  failed_.store(true);
  requestStop();
}

void Pipeline::requestStop() noexcept {
  if (stop_requested_.exchange(true)) {
    return;
  }
  auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                     std::chrono::duration<double>(settings_.drain_timeout_s));
  drain_deadline_ns_.store(deadline.time_since_epoch().count());
  for (auto &o : outputs_) {
    o->queue->wake();
  }
}

void Pipeline::closeOutputs() {
  for (auto &o : outputs_) {
    o->queue->close();
  }
}

void Pipeline::inputMain(std::promise<Status> started) {
  Source &src = *source_;
  Status st = src.start(*source_ctx_);
  for (auto &lane : lanes_) {
    for (std::size_t i = 0; st.isOk() && i < lane.size(); ++i) {
      st = lane[i].filter->start(*lane[i].ctx);
      if (!st.isOk()) {
        st = Status::fatal(fmt::format("{}: {}", lane[i].ctx->instance(), st.message()), st.key());
      }
    }
  }
  if (st.isOk() && lanes_.size() > 1) {
    try {
      for (std::size_t i = 0; i < lanes_.size(); ++i) {
        workers_.emplace_back([this, i] { workerMain(i); });
      }
    } catch (const std::system_error &e) {
      st = Status::fatal(fmt::format("cannot start filter workers: {}", e.what()));
      stopWorkers();
    }
  }
  if (!st.isOk()) {
    src.stop();
    started.set_value(st);
    return;
  }
  started.set_value(Status::ok());
  if (lanes_.size() > 1) {
    logging::core()->debug("pipeline '{}': {} filter workers", name_, lanes_.size());
  }

  bool eos = false;
  auto &errors = source_ctx_->counter("errors", {});
  while (true) {
    processCompletions(src);
    if (stop_requested_.load() && !intake_stopped_.exchange(true)) {
      src.stopIntake(*source_ctx_);
      intake_closed_.store(true);
    }
    if (eos || intake_stopped_.load()) {
      if (in_flight_.load() == 0) {
        break;
      }
      if (giveUp()) {
        logging::core()->warn(
            "pipeline '{}': {} message(s) still in flight when the drain timeout passed; "
            "they were not acknowledged",
            name_, in_flight_.load());
        abort_.store(true);
        break;
      }
    }
    if (eos) {
      completions_.wait(kIdlePoll);
      continue;
    }
    st = src.poll(*source_ctx_, kIdlePoll);
    switch (st.code()) {
      case Status::Code::Ok: break;
      case Status::Code::EndOfStream:
        eos = true;
        intake_stopped_.store(true);
        intake_closed_.store(true);
        logging::core()->info("pipeline '{}': input ended; draining {} message(s)", name_,
                              in_flight_.load());
        break;
      case Status::Code::Error:
        errors.add();
        source_ctx_->log().warn("{}", st.message());
        break;
      case Status::Code::Fatal:
      case Status::Code::Permanent:
        failPipeline(source_ctx_->instance(), st);
        break;
    }
  }
  abort_.store(abort_.load() || failed_.load());
  stopWorkers();  // idle unless aborting: then they settle what they hold as retry
  closeOutputs();
  for (auto &o : outputs_) {
    if (o->thread.joinable()) {
      o->thread.join();
    }
  }
  processCompletions(src);
  for (auto &lane : lanes_) {
    for (auto &f : lane) {
      f.filter->stop();
    }
  }
  src.stop();
  {
    std::lock_guard lock(done_mutex_);
    done_.store(true);
  }
  done_cv_.notify_all();
}

void Pipeline::outputMain(Output &o, std::promise<Status> started) {
  Sink &sink = *o.sink;
  SinkCtx &ctx = *o.ctx;
  Status st = sink.start(ctx);
  started.set_value(st);
  if (!st.isOk()) {
    return;
  }
  auto &errors = ctx.counter("errors", {});
  std::vector<Item> batch;
  batch.reserve(kSinkBatch);
  while (true) {
    // Messages waiting for a retry go first once due; at shutdown's deadline, or when the
    // sink failed, they are settled for the input to redeliver (or counted lost).
    if (!o.retries.empty()) {
      // An input that can redeliver gets them back as soon as the stop begins (the broker
      // keeps them); for any other input they keep their chance until the drain deadline.
      if (o.sink_failed || abort_.load() || giveUp() || (stop_requested_.load() && input_.can_ack)) {
        dropRetries(o, o.sink_failed ? "output_failed" : "shutdown");
      } else {
        auto now = Clock::now();
        while (!o.retries.empty() && o.retries.begin()->first <= now) {
          auto node = o.retries.extract(o.retries.begin());
          RetryItem &r = node.mapped();
          o.queue->release(r.size);
          sendToSink(o, std::move(r.msg), r.d);
        }
        o.retry_held->set(static_cast<std::int64_t>(o.retries.size()));
      }
    }
    o.queue->popBatch(batch, kSinkBatch);
    for (auto &it : batch) {
      if (o.sink_failed || abort_.load()) {
        const char *why = o.sink_failed ? "output_failed" : "shutdown";
        ctx.counter("failed", why).add();
        it.tracker->settle(Outcome::Retry, why);
        continue;
      }
      sendToSink(o, std::move(it.msg), PendingDelivery{it.tracker, 0, {}});
    }
    batch.clear();
    if (o.queue->closedAndEmpty() && o.retries.empty()) {
      break;
    }
    if (o.sink_failed) {
      pollfd p{o.queue->fd(), POLLIN, 0};
      (void)::poll(&p, 1, static_cast<int>(kIdlePoll.count()));
      continue;
    }
    auto timeout = o.queue->empty() ? kIdlePoll : std::chrono::milliseconds(0);
    if (!o.retries.empty()) {
      auto until = std::chrono::ceil<std::chrono::milliseconds>(o.retries.begin()->first - Clock::now());
      timeout = std::clamp(until, std::chrono::milliseconds(0), timeout);
    }
    st = sink.poll(ctx, timeout);
    if (st.code() == Status::Code::Error) {
      errors.add();
      ctx.log().warn("{}", st.message());
    } else if (st.code() == Status::Code::Fatal || st.code() == Status::Code::Permanent) {
      o.sink_failed = true;
      failPipeline(ctx.instance(), st);
    }
  }
  if (!o.sink_failed) {
    auto left = std::chrono::nanoseconds(drain_deadline_ns_.load() - Clock::now().time_since_epoch().count());
    auto timeout = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::max(left, std::chrono::nanoseconds(0)));
    if (!stop_requested_.load()) {  // end of input: no deadline was set
      timeout = std::chrono::milliseconds(static_cast<std::int64_t>(settings_.drain_timeout_s * 1000));
    }
    st = sink.flush(ctx, timeout);
    if (!st.isOk()) {
      ctx.log().warn("flush: {}", st.message());
    }
  }
  dropRetries(o, "shutdown");
  // Whatever the sink still owes is not known to be delivered: the input must redeliver.
  std::unordered_map<DeliveryId, PendingDelivery> left;
  {
    std::lock_guard lock(o.pending_mutex);
    left.swap(o.pending);
  }
  if (!left.empty()) {
    ctx.log().warn("{} message(s) not confirmed at shutdown", left.size());
  }
  for (auto &[id, d] : left) {
    ctx.counter("failed", "shutdown").add();
    d.tracker->settle(Outcome::Retry, "shutdown");
  }
  sink.stop();
}

void Pipeline::sendToSink(Output &o, Message &&msg, PendingDelivery d) {
  DeliveryId id = ++o.next_id;
  {
    std::lock_guard lock(o.pending_mutex);
    o.pending.emplace(id, d);
  }
  o.ctx->attempt_ = d.attempt;
  o.sink->send(*o.ctx, std::move(msg), id);
  o.ctx->attempt_ = 0;
}

void Pipeline::dropRetries(Output &o, const char *why) {
  if (o.retries.empty()) {
    return;
  }
  o.ctx->log().warn("{} message(s) waiting for a retry settled as '{}'", o.retries.size(), why);
  for (auto &[due, r] : o.retries) {
    o.queue->release(r.size);
    o.ctx->counter("failed", why).add();
    r.d.tracker->settle(Outcome::Retry, why);
  }
  o.retries.clear();
  o.retry_held->set(0);
}

void Pipeline::start() {
  // A delivery held longer than RabbitMQ's consumer_timeout (30 min by default) makes the
  // broker close the consumer's channel: retries must give up well before.
  if (input_.can_ack) {
    for (auto &o : outputs_) {
      const RetryPolicy &r = o->stage.retry;
      if (r.max_duration_s == 0 || r.max_duration_s > 1500) {
        o->ctx->log().warn(
            "retry.max_duration is {}: a message the input cannot settle for 30 minutes makes "
            "RabbitMQ close the consumer's channel (consumer_timeout); keep it below 1500 s",
            r.max_duration_s == 0 ? std::string("0 (no limit)") : fmt::format("{} s", r.max_duration_s));
      }
    }
  }
  std::vector<std::future<Status>> starts;
  for (auto &o : outputs_) {
    std::promise<Status> p;
    starts.push_back(p.get_future());
    o->thread = std::thread([this, out = o.get(), pr = std::move(p)]() mutable {
      outputMain(*out, std::move(pr));
    });
  }
  std::string failure;
  bool permanent = false;
  for (std::size_t i = 0; i < starts.size(); ++i) {
    Status st = starts[i].get();
    if (!st.isOk()) {
      failure = fmt::format("{}: {}", outputs_[i]->ctx->instance(), st.message());
      permanent = permanent || st.code() == Status::Code::Permanent;
    }
  }
  if (failure.empty()) {
    std::promise<Status> p;
    auto f = p.get_future();
    input_thread_ = std::thread([this, pr = std::move(p)]() mutable { inputMain(std::move(pr)); });
    Status st = f.get();
    if (!st.isOk()) {
      failure = fmt::format("{}: {}", source_ctx_->instance(), st.message());
      permanent = st.code() == Status::Code::Permanent;
      input_thread_.join();
    }
  }
  if (!failure.empty()) {
    failed_.store(true);
    stop_requested_.store(true);
    abort_.store(true);
    closeOutputs();
    for (auto &o : outputs_) {
      if (o->thread.joinable()) {
        o->thread.join();
      }
    }
    done_.store(true);
    throw StartError(failure, permanent);
  }
  started_ = true;
}

bool Pipeline::waitDone(std::optional<Clock::time_point> deadline) {
  std::unique_lock lock(done_mutex_);
  if (deadline) {
    return done_cv_.wait_until(lock, *deadline, [this] { return done_.load(); });
  }
  done_cv_.wait(lock, [this] { return done_.load(); });
  return true;
}

void Pipeline::join() {
  if (input_thread_.joinable()) {
    input_thread_.join();
  }
  for (auto &o : outputs_) {
    if (o->thread.joinable()) {
      o->queue->close();
      o->thread.join();
    }
  }
}

// ---------------------------------------------------------------------------------------
// Runtime

Runtime::Runtime(CounterStore &counters, Settings settings)
    : counters_(counters), settings_(settings) {}

Runtime::~Runtime() {
  requestStop();
  for (auto &p : pipelines_) {
    p->join();
  }
}

void Runtime::add(PipelinePlan plan) {
  pipelines_.push_back(std::make_unique<Pipeline>(std::move(plan), counters_, settings_));
}

void Runtime::start() {
  for (std::size_t i = 0; i < pipelines_.size(); ++i) {
    try {
      pipelines_[i]->start();
    } catch (...) {
      for (std::size_t j = 0; j < i; ++j) {
        pipelines_[j]->requestStop();
      }
      for (std::size_t j = 0; j < i; ++j) {
        pipelines_[j]->join();
      }
      throw;
    }
  }
  started_ = true;
}

void Runtime::requestStop() noexcept {
  for (auto &p : pipelines_) {
    p->requestStop();
  }
}

bool Runtime::wait(std::optional<std::chrono::milliseconds> timeout) {
  std::optional<Clock::time_point> deadline;
  if (timeout) {
    deadline = Clock::now() + *timeout;
  }
  // One failed pipeline stops them all: a bridge that lost a direction must exit non-zero
  // so its supervisor restarts it.
  while (true) {
    bool all_done = true;
    for (auto &p : pipelines_) {
      if (p->failed()) {
        requestStop();
      }
      all_done = all_done && p->done();
    }
    if (all_done) {
      return true;
    }
    auto step = Clock::now() + std::chrono::milliseconds(100);
    if (deadline && *deadline < step) {
      step = *deadline;
    }
    for (auto &p : pipelines_) {
      if (!p->done()) {
        p->waitDone(step);
        break;
      }
    }
    if (deadline && Clock::now() >= *deadline) {
      return std::all_of(pipelines_.begin(), pipelines_.end(), [](const auto &p) { return p->done(); });
    }
  }
}

bool Runtime::stop() {
  requestStop();
  for (auto &p : pipelines_) {
    p->join();
  }
  return !failed();
}

bool Runtime::failed() const noexcept {
  return std::any_of(pipelines_.begin(), pipelines_.end(), [](const auto &p) { return p->failed(); });
}

}  // namespace switchyard
