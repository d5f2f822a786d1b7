// SPDX-License-Identifier: MIT
// Runs the pipelines of an engine; one failed pipeline stops them all.
#include "runtime.hpp"

#include <algorithm>

#include "runtime_pipeline.hpp"

namespace switchyard {

using Clock = rt::Clock;

Runtime::Runtime(CounterStore &counters, Settings settings)
    : counters_(counters), settings_(settings) {}

Runtime::~Runtime() {
  requestStop();
  for (auto &p : pipelines_) {
    p->join();
  }
  reapRetired(true);
}

void Runtime::add(PipelinePlan plan) {
  versions_[plan.name] = {plan.signature, plan.origin};
  std::lock_guard lock(pipelines_mutex_);
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
  std::lock_guard lock(pipelines_mutex_);
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
    reapRetired(false);  // old versions of reloaded pipelines that finished draining
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
  reapRetired(true);
  return !failed();
}

bool Runtime::failed() const noexcept {
  std::lock_guard lock(pipelines_mutex_);
  return std::any_of(pipelines_.begin(), pipelines_.end(), [](const auto &p) { return p->failed(); });
}

}  // namespace switchyard

