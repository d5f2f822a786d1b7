// SPDX-License-Identifier: MIT
// The pipeline runtime: threads, bounded queues, acknowledgement flow (internal).
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "config.hpp"
#include "registry.hpp"
#include "runtime_histogram.hpp"
#include "switchyard/engine.hpp"

namespace switchyard {

/// Every counter and gauge of an engine, keyed by (pipeline, plugin, name, label).
/// THREADING: thread-safe; returned references stay valid for the store's lifetime.
class CounterStore {
 public:
  Counter &counter(std::string_view pipeline, std::string_view plugin, std::string_view name,
                   std::string_view label = {});
  Gauge &gauge(std::string_view pipeline, std::string_view plugin, std::string_view name);
  [[nodiscard]] std::vector<CounterSample> snapshot() const;
  [[nodiscard]] std::int64_t sum(std::string_view pipeline, std::string_view name,
                                 std::string_view label) const;
  // ---- histograms (runtime_status.cpp) ----
  /// The histogram @p name of @p pipeline (and @p plugin, "" for the pipeline's own).
  rt::Histogram &histogram(std::string_view pipeline, std::string_view plugin, std::string_view name);
  [[nodiscard]] std::vector<HistogramSample> histograms() const;

  using Key = std::tuple<std::string, std::string, std::string, std::string>;
  /// Gauges taken out of the store (reload): they stay alive for whoever still writes to
  /// them (an old pipeline draining) but are no longer seen by snapshot() or sum().
  using DetachedGauges = std::vector<std::pair<Key, std::unique_ptr<Gauge>>>;
  /// Takes every gauge of @p pipeline out of the store; the next gauge() call makes a
  /// fresh one at 0. Counters stay (they keep counting).
  DetachedGauges detachGauges(std::string_view pipeline);
  /// Puts gauges taken by detachGauges() back, replacing the ones made since (nothing may
  /// still hold those).
  void restoreGauges(std::string_view pipeline, DetachedGauges gauges);

 private:
  mutable std::mutex mutex_;
  std::map<Key, std::unique_ptr<Counter>> counters_;
  std::map<Key, std::unique_ptr<Gauge>> gauges_;
  std::map<Key, std::unique_ptr<rt::Histogram>> histograms_;
};

/// One created plugin instance and where it sits.
struct StageInstance {
  PluginPtr plugin{nullptr, PluginDeleter{}};  ///< keeps its factory and library alive
  std::string type;   ///< plugin name
  std::string place;  ///< "input", "filters[0]", "outputs[1]"
  bool can_ack = false;
  RetryPolicy retry;  ///< outputs only
};

struct PipelinePlan {
  std::string name;
  StageInstance input;
  /// One chain of filter instances per filter worker (always at least one chain; with more
  /// than one, the chains run in parallel and the runtime restores the stream's order).
  std::vector<std::vector<StageInstance>> filters;
  std::vector<StageInstance> outputs;
  /// The pipeline's `journal:` (docs/journal.md; off unless enabled).
  JournalSpec journal;
  /// What the pipeline is made of (pipelineSignature()); a reload restarts the pipeline
  /// only when it differs.
  std::string signature;
  /// The configuration text the plan was built from (a reload can build it again).
  std::shared_ptr<const std::string> origin;
};

/// Every plan of one configuration, built and checked (Engine: load and reload).
struct BuiltConfig {
  std::vector<PipelinePlan> plans;
  Settings settings;
  std::vector<Diagnostic> warnings;
};

/// A canonical text of what pipeline @p p runs: each plugin's type, validated
/// configuration and retry policy, the filter workers, and the settings every pipeline
/// uses (queue limits, drain timeout). Equal texts: the pipeline need not restart.
std::string pipelineSignature(const PipelineSpec &p, std::size_t workers, const Settings &settings);

class Pipeline;

/// Runs pipelines. THREADING: start/requestStop/wait/stop may be called from any one
/// thread; requestStop() from any thread.
class Runtime {
 public:
  Runtime(CounterStore &counters, Settings settings);
  ~Runtime();
  void add(PipelinePlan plan);
  /// Starts every pipeline; throws std::runtime_error (after stopping the started ones)
  /// when a plugin's start() fails.
  void start();
  void requestStop() noexcept;
  bool wait(std::optional<std::chrono::milliseconds> timeout);
  /// requestStop() and join every thread. Returns false if any pipeline failed.
  bool stop();
  [[nodiscard]] bool failed() const noexcept;
  /// Each running pipeline's status (runtime_status.cpp). THREADING: any thread.
  [[nodiscard]] std::vector<PipelineStatus> status() const;

  // ---- reload (runtime_reload.cpp) ----
  /// Builds the plans of a configuration text again (the previous version of a pipeline
  /// after its new version failed to start); throws ConfigError.
  using Rebuild = std::function<BuiltConfig(const std::string &text)>;
  /// Applies @p next to the running pipelines (Engine::reload() says how). Call only from
  /// the thread that calls wait() and stop(), after start().
  ReloadReport reload(BuiltConfig next, const Rebuild &rebuild);

 private:
  /// An old pipeline version draining after a reload, and the gauges it still writes to.
  struct Retired {
    CounterStore::DetachedGauges gauges;  ///< first: outlives the pipeline that writes to them
    std::unique_ptr<Pipeline> pipeline;
  };
  /// Joins and destroys retired pipelines that finished draining (all of them if @p all).
  void reapRetired(bool all);
  std::unique_ptr<Pipeline> startOne(PipelinePlan plan, const Settings &settings);
  /// Index in pipelines_ of the pipeline named @p name, or pipelines_.size().
  std::size_t find(const std::string &name) const;

  CounterStore &counters_;
  Settings settings_;
  /// The running pipelines. THREADING: changed (by reload) only on the thread that calls
  /// wait(); threads that read it from elsewhere (HTTP status) hold pipelines_mutex_, and
  /// so does every change.
  std::vector<std::unique_ptr<Pipeline>> pipelines_;
  mutable std::mutex pipelines_mutex_;
  /// Of each running pipeline (by name): its plan's signature and origin.
  std::map<std::string, std::pair<std::string, std::shared_ptr<const std::string>>> versions_;
  std::vector<Retired> retired_;
  bool started_ = false;
};

}  // namespace switchyard
