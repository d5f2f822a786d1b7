// SPDX-License-Identifier: MIT
// Reload (SIGHUP): apply a new configuration to running pipelines. Unchanged pipelines are
// not touched; a changed one is started in its new version before the old one drains
// (make before break), or after it when the two cannot run side by side; the old versions
// drain in the background and Runtime::wait() reaps them.
#include <algorithm>
#include <chrono>
#include <set>
#include <thread>

#include <fmt/format.h>

#include "log.hpp"
#include "runtime.hpp"
#include "runtime_pipeline.hpp"

namespace switchyard {

namespace {

std::string retryText(const RetryPolicy &r) {
  return fmt::format("{},{},{},{}", r.initial_backoff_s, r.max_backoff_s, r.max_duration_s, r.jitter);
}

void addPlugin(std::string &out, const char *place, const PluginSpec &s, bool retry) {
  // Lengths first: no configuration text can make two different pipelines read the same.
  out += fmt::format("{} {}:{} {}:{}", place, s.type.size(), s.type, s.config_json.size(), s.config_json);
  if (retry) {
    out += " retry=" + retryText(s.retry);
  }
  out += '\n';
}

std::string list(const std::vector<std::string> &names) {
  std::string out;
  for (const auto &n : names) {
    out += (out.empty() ? "" : ", ") + n;
  }
  return out;
}

// Standard input and output are one stream each: two versions of a pipeline cannot share
// them (signatures name each plugin as "input 5:stdin ", "output 6:stdout ").
bool readsStdin(const std::string &signature) { return signature.find("\ninput 5:stdin ") != std::string::npos; }
bool writesStdout(const std::string &signature) {
  return signature.find("\noutput 6:stdout ") != std::string::npos;
}

// A journal directory has one writer (a lock): the old version closes it before the new
// one opens it (signatures name it as "journal N:DIR ...").
bool journaled(const std::string &signature) { return signature.find("\njournal ") != std::string::npos; }

/// The plan named @p name out of @p built (it must be there).
PipelinePlan takePlan(BuiltConfig &built, const std::string &name) {
  for (auto &p : built.plans) {
    if (p.name == name) {
      return std::move(p);
    }
  }
  throw std::runtime_error(fmt::format("the configuration has no pipeline '{}'", name));
}

}  // namespace

std::string pipelineSignature(const PipelineSpec &p, std::size_t workers, const Settings &settings) {
  std::string out = fmt::format("workers={} queue_max_messages={} queue_max_bytes={} drain_timeout={}\n", workers,
                                settings.queue_max_messages, settings.queue_max_bytes, settings.drain_timeout_s);
  if (const JournalSpec &j = p.journal; j.enabled) {
    out += fmt::format("journal {}:{} max_bytes={} fsync={} batch_ms={} block={} standby_overlap={}\n", j.dir.size(),
                       j.dir, j.max_bytes, j.fsync, j.batch_ms, j.block_when_full, j.standby_overlap_s);
  }
  addPlugin(out, "input", p.input, false);
  for (const auto &f : p.filters) {
    addPlugin(out, "filter", f, false);
  }
  for (const auto &o : p.outputs) {
    addPlugin(out, "output", o, true);
  }
  return out;
}

std::string ReloadReport::str() const {
  auto part = [](std::size_t n, const char *what, const std::vector<std::string> &names) {
    return names.empty() ? fmt::format("{} {}", n, what) : fmt::format("{} {} ({})", n, what, list(names));
  };
  std::string out = fmt::format("{}, {}, {}, {}", part(unchanged.size(), "unchanged", unchanged),
                                part(changed.size(), "changed", changed), part(added.size(), "added", added),
                                part(removed.size(), "removed", removed));
  if (!failed.empty()) {
    out += fmt::format("; {} failed: {}", failed.size(), fmt::join(failed, "; "));
  }
  return out;
}

// ---- CounterStore: gauges handed from an old pipeline version to the new one ----

CounterStore::DetachedGauges CounterStore::detachGauges(std::string_view pipeline) {
  std::lock_guard lock(mutex_);
  DetachedGauges out;
  for (auto it = gauges_.begin(); it != gauges_.end();) {
    if (std::get<0>(it->first) == pipeline) {
      out.emplace_back(it->first, std::move(it->second));
      it = gauges_.erase(it);
    } else {
      ++it;
    }
  }
  return out;
}

void CounterStore::restoreGauges(std::string_view pipeline, DetachedGauges gauges) {
  std::lock_guard lock(mutex_);
  std::erase_if(gauges_, [&](const auto &kv) { return std::get<0>(kv.first) == pipeline; });
  for (auto &[key, gauge] : gauges) {
    gauges_[key] = std::move(gauge);
  }
}

// ---- Pipeline: the gauges it handed out ----

Gauge &Pipeline::gauge(const std::string &plugin, std::string_view name) noexcept {
  std::lock_guard lock(gauges_mutex_);
  Gauge *&slot = gauge_refs_[{plugin, std::string(name)}];
  if (slot == nullptr) {
    // An old version asking for a gauge after its new version took the store's: its own,
    // so that it never writes into the new version's.
    slot = retired_.load() ? &own_gauges_.emplace_back() : &counters_.gauge(name_, plugin, name);
  }
  return *slot;
}

// ---- Runtime ----

std::size_t Runtime::find(const std::string &name) const {
  for (std::size_t i = 0; i < pipelines_.size(); ++i) {
    if (pipelines_[i]->name() == name) {
      return i;
    }
  }
  return pipelines_.size();
}

std::unique_ptr<Pipeline> Runtime::startOne(PipelinePlan plan, const Settings &settings) {
  auto p = std::make_unique<Pipeline>(std::move(plan), counters_, settings);
  try {
    p->start();
  } catch (const StartError &) {
    throw;
  } catch (const std::exception &e) {
    throw StartError(e.what(), false);
  }
  return p;
}

void Runtime::reapRetired(bool all) {
  for (auto it = retired_.begin(); it != retired_.end();) {
    if (all || it->pipeline->done()) {
      it->pipeline->join();
      if (it->pipeline->failed()) {
        logging::core()->warn("reload: the old version of pipeline '{}' failed while draining",
                              it->pipeline->name());
      } else {
        logging::core()->info("reload: the old version of pipeline '{}' drained and stopped",
                              it->pipeline->name());
      }
      it = retired_.erase(it);  // the pipeline, then the gauges it wrote to
    } else {
      ++it;
    }
  }
}

ReloadReport Runtime::reload(BuiltConfig next, const Rebuild &rebuild) {
  if (!started_) {
    throw std::logic_error("Runtime::reload: not started");
  }
  auto log = logging::core();
  ReloadReport r;
  std::set<std::string> incoming;
  std::vector<PipelinePlan *> changed, added;
  for (auto &plan : next.plans) {
    incoming.insert(plan.name);
    auto v = versions_.find(plan.name);
    if (v == versions_.end()) {
      added.push_back(&plan);
    } else if (v->second.first == plan.signature) {
      r.unchanged.push_back(plan.name);  // its new plan (instances never started) goes unused
    } else {
      changed.push_back(&plan);
    }
  }
  std::vector<std::string> removed;
  for (const auto &p : pipelines_) {
    if (incoming.count(p->name()) == 0) {
      removed.push_back(p->name());
    }
  }

  // The new version runs in slot i: the old one drains in the background.
  auto retire = [&](std::size_t i, std::unique_ptr<Pipeline> fresh, CounterStore::DetachedGauges held) {
    std::unique_ptr<Pipeline> old;
    {
      std::lock_guard lock(pipelines_mutex_);
      old = std::move(pipelines_[i]);
      if (fresh) {
        pipelines_[i] = std::move(fresh);
      } else {
        pipelines_.erase(pipelines_.begin() + static_cast<std::ptrdiff_t>(i));
      }
    }
    old->requestStop();
    retired_.push_back({std::move(held), std::move(old)});
  };

  for (PipelinePlan *plan : changed) {
    const std::string name = plan->name;
    const std::size_t i = find(name);
    const auto previous = versions_[name];
    const auto version = std::make_pair(plan->signature, plan->origin);
    if (readsStdin(previous.first) || readsStdin(version.first)) {
      r.failed.push_back(fmt::format("{}: it reads standard input, which cannot pass from one version to the next "
                                     "(restart to change it); the running version stays",
                                     name));
      continue;
    }
    if (writesStdout(previous.first) || writesStdout(version.first)) {
      // Two versions writing lines to one standard output could interleave them.
      log->info("reload: pipeline '{}' writes to standard output: draining the old version first", name);
    } else if (journaled(previous.first) || journaled(version.first)) {
      // What the old version has not delivered stays in its journal, and the new version
      // sends it first once the old one closed the journal.
      log->info("reload: pipeline '{}' has a journal: draining the old version first", name);
    } else {
      pipelines_[i]->setRetired(true);
      auto held = counters_.detachGauges(name);
      std::string why;
      bool permanent = false;
      try {
        auto fresh = startOne(std::move(*plan), next.settings);
        retire(i, std::move(fresh), std::move(held));
        versions_[name] = version;
        r.changed.push_back(name);
        continue;
      } catch (const StartError &e) {
        counters_.restoreGauges(name, std::move(held));  // the failed version is gone: nothing holds its gauges
        pipelines_[i]->setRetired(false);
        why = e.what();
        permanent = e.permanent();
      }
      if (permanent) {
        r.failed.push_back(fmt::format("{}: the new version cannot start ({}); the previous version keeps running",
                                       name, why));
        continue;
      }
      // It may not start beside the old version (the same address bound): stop the old
      // one first (drain it), then try again; failing that, start the previous version.
      log->warn("reload: pipeline '{}': the new version did not start beside the old one ({}); draining the old "
                "one first",
                name, why);
    }
    std::unique_ptr<Pipeline> old;
    {
      std::lock_guard lock(pipelines_mutex_);
      old = std::move(pipelines_[i]);
      pipelines_.erase(pipelines_.begin() + static_cast<std::ptrdiff_t>(i));
    }
    old->requestStop();
    old.reset();  // drained, joined and destroyed: nothing writes to its gauges any more
    counters_.detachGauges(name);
    // Right after the old version closed its sockets, an address it bound may still be
    // held for a moment (ZeroMQ releases it asynchronously): a few tries, about 1.5 s.
    auto startAfterOld = [&](const std::string &text) -> std::unique_ptr<Pipeline> {
      std::chrono::milliseconds pause{50};
      for (int attempt = 1;; ++attempt) {
        try {
          BuiltConfig built = rebuild(text);
          return startOne(takePlan(built, name), built.settings);
        } catch (const StartError &e) {
          if (e.permanent() || attempt == 6) {
            throw;
          }
          counters_.detachGauges(name);  // what the failed start left behind
          std::this_thread::sleep_for(pause);
          pause *= 2;
        }
      }
    };
    std::unique_ptr<Pipeline> replacement;
    try {
      replacement = startAfterOld(*version.second);
      versions_[name] = version;
      r.changed.push_back(name);
    } catch (const std::exception &e) {
      std::string second = e.what();
      counters_.detachGauges(name);
      try {
        replacement = startAfterOld(*previous.second);
        r.failed.push_back(fmt::format("{}: the new version cannot start ({}); the previous version runs again",
                                       name, second));
      } catch (const std::exception &e2) {
        r.failed.push_back(fmt::format("{}: neither the new version ({}) nor the previous one ({}) starts; the "
                                       "pipeline is stopped",
                                       name, second, e2.what()));
        versions_.erase(name);
      }
    }
    if (replacement) {
      std::lock_guard lock(pipelines_mutex_);
      pipelines_.insert(pipelines_.begin() + static_cast<std::ptrdiff_t>(std::min(i, pipelines_.size())),
                        std::move(replacement));
    }
  }

  for (PipelinePlan *plan : added) {
    const std::string name = plan->name;
    const auto version = std::make_pair(plan->signature, plan->origin);
    try {
      auto fresh = startOne(std::move(*plan), next.settings);
      std::lock_guard lock(pipelines_mutex_);
      pipelines_.push_back(std::move(fresh));
      versions_[name] = version;
      r.added.push_back(name);
    } catch (const StartError &e) {
      r.failed.push_back(fmt::format("{}: the new pipeline cannot start ({}); not added", name, e.what()));
      counters_.detachGauges(name);  // what the failed start left behind
    }
  }

  for (const auto &name : removed) {
    const std::size_t i = find(name);
    pipelines_[i]->setRetired(true);
    retire(i, nullptr, counters_.detachGauges(name));
    versions_.erase(name);
    r.removed.push_back(name);
  }
  return r;
}

}  // namespace switchyard
