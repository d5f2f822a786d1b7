// SPDX-License-Identifier: MIT
// What the operations endpoint reads from the runtime (internal): each pipeline's state,
// last message time and plugin places, and the histograms of the counter store.
#include <mutex>

#include "runtime.hpp"
#include "runtime_pipeline.hpp"

namespace switchyard {

rt::Histogram &CounterStore::histogram(std::string_view pipeline, std::string_view plugin, std::string_view name) {
  std::lock_guard lock(mutex_);
  auto &slot = histograms_[Key{std::string(pipeline), std::string(plugin), std::string(name), {}}];
  if (!slot) {
    slot = std::make_unique<rt::Histogram>();
  }
  return *slot;
}

std::vector<HistogramSample> CounterStore::histograms() const {
  std::lock_guard lock(mutex_);
  std::vector<HistogramSample> out;
  out.reserve(histograms_.size());
  for (const auto &[k, h] : histograms_) {
    HistogramSample s;
    s.pipeline = std::get<0>(k);
    s.plugin = std::get<1>(k);
    s.name = std::get<2>(k);
    s.bounds.assign(rt::Histogram::kBounds.begin(), rt::Histogram::kBounds.end());
    h->read(s.buckets, s.sum);
    for (auto b : s.buckets) {
      s.count += b;
    }
    out.push_back(std::move(s));
  }
  return out;
}

PipelineStatus Pipeline::status() const {
  PipelineStatus s;
  s.name = name_;
  if (failed_.load()) {
    s.state = "failed";
  } else if (done_.load()) {
    s.state = "stopped";
  } else if (stop_requested_.load()) {
    s.state = "stopping";
  } else {
    s.state = "running";
  }
  if (std::int64_t last = last_submit_ns_.load(std::memory_order_relaxed); last != 0) {
    auto ago = Clock::now().time_since_epoch() - Clock::duration(last);
    s.last_message = std::chrono::system_clock::now() -
                     std::chrono::duration_cast<std::chrono::system_clock::duration>(ago);
  }
  s.plugins.push_back({input_.place, input_.type});
  if (!lanes_.empty()) {
    for (const auto &f : lanes_.front()) {  // every lane has the same places
      s.plugins.push_back({f.stage.place, f.stage.type});
    }
  }
  for (const auto &o : outputs_) {
    s.plugins.push_back({o->stage.place, o->stage.type});
  }
  return s;
}

std::vector<PipelineStatus> Runtime::status() const {
  std::lock_guard lock(pipelines_mutex_);
  std::vector<PipelineStatus> out;
  out.reserve(pipelines_.size());
  for (const auto &p : pipelines_) {
    out.push_back(p->status());
  }
  return out;
}

}  // namespace switchyard
