// SPDX-License-Identifier: MIT
// The pipeline runtime: threads, bounded queues, acknowledgement flow (internal).
#pragma once

#include <atomic>
#include <chrono>
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

 private:
  using Key = std::tuple<std::string, std::string, std::string, std::string>;
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
};

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

 private:
  CounterStore &counters_;
  Settings settings_;
  std::vector<std::unique_ptr<Pipeline>> pipelines_;
  bool started_ = false;
};

}  // namespace switchyard
