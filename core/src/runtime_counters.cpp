// SPDX-License-Identifier: MIT
// Every counter and gauge of an engine (internal).
#include <mutex>

#include "runtime.hpp"

namespace switchyard {

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
}  // namespace switchyard
