// SPDX-License-Identifier: MIT
//
// The C++ side of the plugin ABI. Objects declared here cross the .so boundary, which is
// safe only because core and plugins are built with the same toolchain; the loader checks
// the build fingerprint in the info record (abi.h) before it maps a plugin.
//
// Rules (docs/plugin-abi.md): every virtual is noexcept (no exception crosses a .so);
// no RTTI on plugin objects (the core dispatches on the info record's kind); a plugin
// never keeps a pointer into a Message after handing it on.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include <poll.h>

#include <fmt/format.h>

#include "switchyard/abi.h"
#include "switchyard/message.hpp"

namespace switchyard {

/// Result of a plugin call that can fail.
class Status {
 public:
  enum class Code : std::uint8_t {
    Ok,
    EndOfStream,  ///< source: no more input will ever come (stdin at EOF)
    Error,        ///< recoverable: logged and counted, the plugin keeps going
    Fatal,        ///< unrecoverable: the pipeline stops and the process exits non-zero
    Permanent,    ///< ABI 1.2, from start() only: a restart cannot help (credentials refused,
                  ///< vhost missing, inequivalent declaration, unusable TLS files); the
                  ///< command exits with status 3, which systemd units do not restart
  };
  Status() = default;
  static Status ok() { return {}; }
  static Status endOfStream() { return Status(Code::EndOfStream, {}, {}); }
  static Status error(std::string message, std::string key = {}) {
    return Status(Code::Error, std::move(message), std::move(key));
  }
  static Status fatal(std::string message, std::string key = {}) {
    return Status(Code::Fatal, std::move(message), std::move(key));
  }
  static Status permanent(std::string message, std::string key = {}) {
    return Status(Code::Permanent, std::move(message), std::move(key));
  }
  [[nodiscard]] bool isOk() const { return code_ == Code::Ok; }
  [[nodiscard]] Code code() const { return code_; }
  [[nodiscard]] const std::string &message() const { return message_; }
  /// The configuration key the error is about, if any ("ca_file"); lets the core point
  /// at the key's file:line:column.
  [[nodiscard]] const std::string &key() const { return key_; }

 private:
  Status(Code c, std::string m, std::string k) : code_(c), message_(std::move(m)), key_(std::move(k)) {}
  Code code_ = Code::Ok;
  std::string message_;
  std::string key_;
};

/// How a message ended at one output, and (aggregated over all outputs) at the input.
/// Ordered by severity: the input is told the most severe outcome of all its outputs.
enum class Outcome : std::uint8_t {
  Delivered = 0,  ///< the next hop has it (AMQP: publisher confirm received)
  Dropped = 1,    ///< deliberately not delivered, counted with a reason; settles the input
  Retry = 2,      ///< transient failure: the input should redeliver (AMQP: nack + requeue)
  Reject = 3,     ///< permanent failure: the input must not redeliver (AMQP: nack, dead-letter)
};
inline const char *outcomeName(Outcome o) noexcept {
  switch (o) {
    case Outcome::Delivered: return "delivered";
    case Outcome::Dropped: return "dropped";
    case Outcome::Retry: return "retry";
    case Outcome::Reject: return "reject";
  }
  return "unknown";
}

/// A filter's decision about one message.
struct Verdict {
  enum class Kind : std::uint8_t { Pass, Drop, Error };
  Kind kind = Kind::Pass;
  std::string reason;  ///< counter label for Drop/Error: short, snake_case ("bad_signature")
  bool retry = false;  ///< Error only: transient (Retry) rather than permanent (Reject)

  static Verdict pass() { return {}; }
  static Verdict drop(std::string reason) { return {Kind::Drop, std::move(reason), false}; }
  static Verdict error(std::string reason, bool retry = false) {
    return {Kind::Error, std::move(reason), retry};
  }
};

enum class LogLevel : std::uint8_t { Trace, Debug, Info, Warn, Error, Critical };

/// Log sink handed to plugins by the host. THREADING: thread-safe.
class Logger {
 public:
  virtual ~Logger() = default;
  virtual void log(LogLevel level, std::string_view message) noexcept = 0;
  [[nodiscard]] virtual bool enabled(LogLevel level) const noexcept = 0;

  template <typename... Args>
  void logf(LogLevel level, fmt::format_string<Args...> f, Args &&...args) noexcept {
    if (!enabled(level)) {
      return;
    }
    try {
      log(level, fmt::format(f, std::forward<Args>(args)...));
    } catch (...) {  // formatting must never take a message path down
      log(level, "(log formatting failed)");
    }
  }
  template <typename... Args>
  void debug(fmt::format_string<Args...> f, Args &&...args) noexcept {
    logf(LogLevel::Debug, f, std::forward<Args>(args)...);
  }
  template <typename... Args>
  void info(fmt::format_string<Args...> f, Args &&...args) noexcept {
    logf(LogLevel::Info, f, std::forward<Args>(args)...);
  }
  template <typename... Args>
  void warn(fmt::format_string<Args...> f, Args &&...args) noexcept {
    logf(LogLevel::Warn, f, std::forward<Args>(args)...);
  }
  template <typename... Args>
  void error(fmt::format_string<Args...> f, Args &&...args) noexcept {
    logf(LogLevel::Error, f, std::forward<Args>(args)...);
  }
};

/// A monotonically increasing counter owned by the core. References stay valid for the
/// lifetime of the plugin instance. THREADING: thread-safe, lock-free.
class Counter {
 public:
  void add(std::uint64_t n = 1) noexcept { value_.fetch_add(n, std::memory_order_relaxed); }
  [[nodiscard]] std::uint64_t value() const noexcept { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> value_{0};
};

/// A value that goes up and down (queue depth, connection state). THREADING: thread-safe.
class Gauge {
 public:
  void set(std::int64_t v) noexcept { value_.store(v, std::memory_order_relaxed); }
  void add(std::int64_t d) noexcept { value_.fetch_add(d, std::memory_order_relaxed); }
  [[nodiscard]] std::int64_t value() const noexcept { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::int64_t> value_{0};
};

/// Host services common to every plugin instance.
class PluginContext {
 public:
  virtual ~PluginContext() = default;
  [[nodiscard]] virtual Logger &log() noexcept = 0;
  /// A counter of this instance, reported as `NAME{pipeline, plugin}`; with a @p label,
  /// as `NAME{pipeline, plugin, reason=LABEL}`. Cache the reference: lookup takes a lock.
  [[nodiscard]] virtual Counter &counter(std::string_view name, std::string_view label = {}) noexcept = 0;
  /// A gauge of this instance, exported as `switchyard_NAME{pipeline, plugin, place}`. Cache
  /// the reference: lookup takes a lock. Two names are a contract with the HTTP endpoint's
  /// GET /health/ready (docs/operations.md): a plugin with a peer keeps `connected` (1 while
  /// connected, else 0) and, when the peer can refuse messages, `blocked` (1 while it does);
  /// the instance is ready when `connected` is 1 and `blocked` is not.
  [[nodiscard]] virtual Gauge &gauge(std::string_view name) noexcept = 0;
  /// Counts one message dropped by this plugin under @p reason ("dropped{reason}").
  virtual void countDrop(std::string_view reason) noexcept = 0;
  /// The pipeline's name, and this instance's place in it ("pipelines.p.outputs[0] (stdout)").
  [[nodiscard]] virtual std::string_view pipeline() const noexcept = 0;
  [[nodiscard]] virtual std::string_view instance() const noexcept = 0;
  /// True once shutdown began.
  [[nodiscard]] virtual bool stopping() const noexcept = 0;
};

using FilterContext = PluginContext;

class SourceContext : public PluginContext {
 public:
  enum class SubmitResult : std::uint8_t {
    Accepted,  ///< the pipeline owns it; Source::complete() will be called for @p tag
    Stopping,  ///< shutdown is under way and the message was not taken: do not settle it
               ///< as delivered (an AMQP source leaves it unacked so the broker redelivers)
  };
  /// Hands a message to the pipeline: runs the filters on the calling thread, then queues
  /// it for every output; blocks while an output queue is full (backpressure) until space
  /// frees or, once shutdown began, until the drain timeout passed (the message is then
  /// settled as Retry "shutdown"). With several filter workers (see Filter) it only
  /// numbers the message and hands it to them, blocking while the reorder window is full;
  /// the worker that completes the window's head queues it for the outputs.
  /// @p tag is the source's own handle, given back verbatim to Source::complete().
  /// THREADING: source thread only.
  virtual SubmitResult submit(Message &&msg, std::uint64_t tag) noexcept = 0;
  /// A file descriptor that becomes readable when completions are waiting; a source that
  /// blocks in poll(2) adds it to its set so that acks go out without delay.
  [[nodiscard]] virtual int wakeFd() const noexcept = 0;
  /// Number of messages submitted and not yet completed.
  [[nodiscard]] virtual std::size_t inFlight() const noexcept = 0;
  /// ABI 1.2: opt in to Source::filtered() (call from start()).
  virtual void wantFiltered(bool on) noexcept = 0;
};

/// Identifies one message handed to a sink; pass it back to SinkContext::done().
using DeliveryId = std::uint64_t;

class SinkContext : public PluginContext {
 public:
  /// Reports how message @p id ended. Must be called exactly once per id, from the sink
  /// thread. Outcome::Dropped and failures need a short snake_case @p reason.
  virtual void done(DeliveryId id, Outcome outcome, std::string_view reason = {}) noexcept = 0;
  /// Readable when messages are waiting in this output's queue.
  [[nodiscard]] virtual int wakeFd() const noexcept = 0;
  /// Messages handed to the sink and not yet reported done.
  [[nodiscard]] virtual std::size_t pending() const noexcept = 0;

  // ABI 1.2 (docs/delivery.md) -------------------------------------------------------
  /// A transient failure of delivery @p id (broker nack, unroutable under
  /// `unroutable: retry`, no subscriber yet, ...): hands @p msg back so that the runtime
  /// sends it to this output again after a backoff (the output's `retry:` settings),
  /// without touching the message's other outputs. Settles @p id: call exactly one of
  /// done() and retry() per id, from the sink thread. When the output's retry budget is
  /// spent the runtime settles the message as Reject under @p reason (an input that can
  /// redeliver rejects it without requeue, so it is dead-lettered; for any other input it
  /// is dropped, counted as retry_exhausted{reason}). done(id, Outcome::Retry) without the
  /// message hands the retry to the input instead, which only an input that can redeliver
  /// can honour (any other counts it as lost{reason}).
  virtual void retry(DeliveryId id, Message &&msg, std::string_view reason) noexcept = 0;
  /// True when the pipeline's input can redeliver (it has SY_FLAG_CAN_ACK, e.g. AMQP):
  /// a sink may then hold back or retry what it cannot deliver yet instead of dropping it.
  [[nodiscard]] virtual bool inputCanRedeliver() const noexcept = 0;
  /// How many times the message being sent was tried before at this output (0 on its
  /// first send). Valid inside send() only.
  [[nodiscard]] virtual unsigned attempt() const noexcept = 0;

  // ABI 2.1 ------------------------------------------------------------------------------
  /// For a sink that holds a lease (amqp-publish with `lease:`, docs/scale-out.md): says
  /// whether this instance is the active one. While any output of a pipeline says false,
  /// a pipeline with a journal keeps taking and journaling its input but dispatches
  /// nothing, keeping only the last `journal.standby_overlap` seconds; when every output
  /// is active again it dispatches that backlog first (counted as replayed). A pipeline
  /// without a journal drops its input while standing by (dropped{reason=standby}).
  /// Callable from the sink thread; the default (an older core) ignores it.
  virtual void setActive(bool active) noexcept { (void)active; }
};

/// Base of every plugin instance. OWNERSHIP: the core owns instances; they never outlive
/// their factory nor the library that created them.
///
/// THREADING: an instance is constructed by PluginFactory::instantiate() on the core's
/// loading thread, then used only from the thread(s) its kind names below (never the one
/// that made it), and destroyed after its stop() returned and its pipeline's threads were
/// joined, on the thread that destroys the engine. Make thread-affine resources (a socket
/// of a library that binds it to its creating thread) in start(), not in the constructor.
/// Instances of different stages run at the same time: the source and the filters on the
/// input thread (or filter workers) while every sink runs on its own output thread.
/// ABI 2.0: where Plugin::probe() reports what it checked, one result per thing
/// (`switchyard check --connect` prints one line for each). THREADING: the probing thread.
class ProbeReport {
 public:
  virtual ~ProbeReport() = default;
  /// One thing checked. @p what names it for an operator, without secrets: an endpoint
  /// ("tcp://127.0.0.1:9940"), a URL without its password ("amqp://user@host:5671/%2F"),
  /// a file, "exchange 'amq.topic' on amqp://host/%2F". @p result is Status::ok() or says
  /// what failed and how to fix it.
  virtual void result(std::string_view what, const Status &result) noexcept = 0;
};

class Plugin {
 public:
  Plugin() = default;
  Plugin(const Plugin &) = delete;
  Plugin &operator=(const Plugin &) = delete;
  virtual ~Plugin() = default;

  /// ABI 2.0, for `switchyard check --connect`: checks, without moving a message, what
  /// start() will need -- resolves and connects to the peers, logs in, checks the TLS
  /// handshake and files, checks declared entities passively -- and reports each result
  /// to @p report. Finish within @p timeout (each connection attempt included) and close
  /// everything opened here before returning. Called at most once per configured place,
  /// on the loading thread, on an instance whose start() has not run (it may never run).
  /// Return a non-ok Status only when the probe itself could not be carried out. The
  /// default checks nothing: a plugin without peers or files has nothing to report.
  virtual Status probe(ProbeReport &report, std::chrono::milliseconds timeout) noexcept {
    (void)report, (void)timeout;
    return Status::ok();
  }
};

/// An input. THREADING: every method (start, poll, complete, stopIntake, filtered, stop) is
/// called on the pipeline's own input thread, one call at a time; start() only after every
/// sink of the pipeline started.
class Source : public Plugin {
 public:
  /// Prepare; may open connections. An error here is fatal for the pipeline. A source
  /// that can reconnect should not fail when its peer is down: it retries in poll().
  virtual Status start(SourceContext &ctx) noexcept = 0;
  /// Wait up to @p timeout for input (and for ctx.wakeFd()), submit what arrived, return.
  /// Status::endOfStream() ends the pipeline after it drained; Error is logged and counted.
  virtual Status poll(SourceContext &ctx, std::chrono::milliseconds timeout) noexcept = 0;
  /// The pipeline finished with the message submitted under @p tag.
  virtual void complete(std::uint64_t tag, Outcome outcome, std::string_view reason) noexcept {
    (void)tag, (void)outcome, (void)reason;
  }
  /// Shutdown began: take no new input (AMQP: cancel the consumer). Messages submitted
  /// during this call are still accepted (within the drain timeout), so a source that
  /// cannot redeliver reads what its sockets already hold and submits it here; after it
  /// returns, submit() answers Stopping. poll() and complete() keep being called while
  /// in-flight messages drain.
  virtual void stopIntake(SourceContext &ctx) noexcept { (void)ctx; }
  /// ABI 1.2, only after ctx.wantFiltered(true): the filters are done with the message
  /// submitted under @p tag. Called on the input thread, in submission order, before
  /// complete() for the same tag. @p passed: every filter passed it (it is on its way to
  /// the outputs); otherwise @p refused_by is the plugin name of the filter that dropped or
  /// failed it ("verifier") and @p reason its reason.
  virtual void filtered(std::uint64_t tag, bool passed, std::string_view refused_by,
                        std::string_view reason) noexcept {
    (void)tag, (void)passed, (void)refused_by, (void)reason;
  }
  /// Release everything; last call.
  virtual void stop() noexcept {}
};

/// An output. THREADING: every method is called on the output's own thread, one call at a
/// time; start() runs before the pipeline's input and filters start.
class Sink : public Plugin {
 public:
  virtual Status start(SinkContext &ctx) noexcept = 0;
  /// Take one message. Call ctx.done(id, ...) now or later (e.g. on a publisher confirm).
  /// May block to apply backpressure (confirm window full).
  virtual void send(SinkContext &ctx, Message &&msg, DeliveryId id) noexcept = 0;
  /// Service the connection (confirms, heartbeats): wait up to @p timeout for the peer or
  /// for ctx.wakeFd(). The default only waits for ctx.wakeFd().
  virtual Status poll(SinkContext &ctx, std::chrono::milliseconds timeout) noexcept {
    pollfd pfd{ctx.wakeFd(), POLLIN, 0};
    (void)::poll(&pfd, 1, static_cast<int>(timeout.count()));
    return Status::ok();
  }
  /// Shutdown: wait until every message handed over is done, or @p timeout passed.
  virtual Status flush(SinkContext &ctx, std::chrono::milliseconds timeout) noexcept {
    (void)ctx, (void)timeout;
    return Status::ok();
  }
  virtual void stop() noexcept {}
};

/// A filter. THREADING: start() and stop() are called on the input thread of its pipeline;
/// process() one message at a time, on that thread — or, for a filter built with
/// SY_FLAG_PARALLEL in a pipeline with several `workers`, on a filter worker thread: the
/// core then creates one instance per worker (the factory's instantiate() with
/// InstanceArgs::worker), always calls one instance from the same worker thread, and each
/// sees only its share of the messages. The instances of one factory then run
/// concurrently; the core restores the stream's order after the filters. start() of every
/// instance runs before the workers start, stop() after they were joined.
class Filter : public Plugin {
 public:
  virtual Status start(FilterContext &ctx) noexcept {
    (void)ctx;
    return Status::ok();
  }
  virtual Verdict process(FilterContext &ctx, Message &msg) noexcept = 0;
  virtual void stop() noexcept {}
};

/// Services of the host that outlive single instances (CreateArgs::host, sdk::Config::host()).
/// THREADING: thread-safe; callable from any thread (factory constructors, instantiate(),
/// instance threads) until the engine is destroyed.
class Host {
 public:
  virtual ~Host() = default;
  [[nodiscard]] virtual Logger &log() noexcept = 0;
  /// The object every plugin of this engine shares under @p key ("zmq.context",
  /// "loop-guard.window.<name>"), made by @p make on the first request. @p make runs under
  /// the host's lock and must not call shared(). The host keeps the object until every
  /// instance and factory is destroyed and destroys it before it unloads any plugin
  /// library. Returns null when @p make throws or returns null. Keys are namespaced by
  /// the plugin (or protocol) that defines the object's type; one key, one type.
  virtual std::shared_ptr<void> shared(std::string_view key,
                                       const std::function<std::shared_ptr<void>()> &make) noexcept = 0;
};

/// What a factory is asked to make.
struct InstanceArgs {
  std::uint32_t struct_size = sizeof(InstanceArgs);
  std::string_view instance;  ///< "pipelines.p.filters[0] (verifier)", for messages
  std::uint32_t worker = 0;   ///< filter worker of this instance (0 for sources and sinks)
  std::uint32_t workers = 1;  ///< filter workers of the pipeline (1 for sources and sinks)
  Status *error = nullptr;    ///< set when instantiate() returns nullptr
};

/// ABI 2.0: what switchyard_plugin_create() returns, once per place a plugin is configured
/// at ("pipelines.p.filters[0]"). It holds what every instance shares: the validated and
/// parsed configuration, loaded keys and certificates, caches, objects of the host.
///
/// THREADING: the factory is constructed by switchyard_plugin_create() on the core's loading
/// thread. The core calls instantiate() on that thread, one call at a time, before any
/// instance starts: once for a source or a sink, once per filter worker for a filter
/// (SY_FLAG_PARALLEL, see abi.h; one for other filters). After an instantiate() that fails
/// the core asks that factory for nothing more, and the configuration fails to load.
/// Instances run on their own threads (see Plugin, Source, Sink, Filter) and may read the
/// factory's state at the same time: what they share must be immutable after construction
/// or synchronised by the factory.
///
/// LIFETIME: every instance co-owns its factory, so the factory outlives every instance it
/// made; it is destroyed with its last instance (or at once, when it made none), always
/// before its library is unloaded and before the host drops its shared objects.
class PluginFactory {
 public:
  PluginFactory() = default;
  PluginFactory(const PluginFactory &) = delete;
  PluginFactory &operator=(const PluginFactory &) = delete;
  virtual ~PluginFactory() = default;
  virtual Plugin *instantiate(const InstanceArgs &args) noexcept = 0;
};

/// ABI 2.0: where switchyard_plugin_create() reports every problem it finds in its
/// configuration, each with the key it is about ("ca_file", "tls.cert_file",
/// "bindings[1].exchange"), so that the core points at the key's file:line:column and
/// `switchyard check` lists them all in one run. The SDK's sdk::Config::problem() and
/// sdk::Config::warning() end up here. THREADING: during switchyard_plugin_create() only,
/// on its thread.
class ConfigReport {
 public:
  virtual ~ConfigReport() = default;
  /// A value the plugin cannot work with: create then returns nullptr (and sets
  /// CreateArgs::error to one of the problems, for hosts that pass no report).
  virtual void error(std::string_view key, std::string_view message) noexcept = 0;
  /// A value the plugin works with but that is probably a mistake (a verifier that lets
  /// unsigned messages through, no CRL): printed by `switchyard check` (which still
  /// passes, unless --strict) and logged once at start-up.
  virtual void warning(std::string_view key, std::string_view message) noexcept = 0;
};

/// Arguments of switchyard_plugin_create().
struct CreateArgs {
  std::uint32_t struct_size = sizeof(CreateArgs);
  std::string_view config_json;  ///< validated config with defaults applied (a JSON object)
  std::string_view instance;     ///< "pipelines.p.filters[0] (verifier)", for messages
  Logger *logger = nullptr;
  Status *error = nullptr;  ///< set when create returns nullptr
  Host *host = nullptr;     ///< never null when called by the core
  /// ABI 2.0: every problem and warning about the configuration; never null when called
  /// by the core (without it, warnings go to the logger and errors to *error).
  ConfigReport *report = nullptr;
};

}  // namespace switchyard

extern "C" {
/// Exported by every plugin; see SWITCHYARD_PLUGIN in sdk.hpp.
using sy_plugin_schema_fn = const sy_config_key *() noexcept;
using sy_plugin_create_fn = switchyard::PluginFactory *(const switchyard::CreateArgs *) noexcept;
}
