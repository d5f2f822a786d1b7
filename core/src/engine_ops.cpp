// SPDX-License-Identifier: MIT
// Engine methods besides load/start/stop (engine.cpp): `check --connect` probes, reload,
// pipeline-test stand-ins, and what the operations endpoint asks (status, histograms, the
// HTTP settings).
#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "engine_impl.hpp"

namespace switchyard {

namespace {
/// Collects one plugin's probe results.
class CollectingProbe final : public ProbeReport {
 public:
  CollectingProbe(std::string place, std::vector<ProbeResult> &out,
                  const std::function<void(const ProbeResult &)> &each)
      : place_(std::move(place)), out_(out), each_(each) {}
  void result(std::string_view what, const Status &result) noexcept override {
    add(std::string(what), result.isOk(), result.isOk() ? std::string() : result.message());
  }
  void add(std::string what, bool ok, std::string message) noexcept {
    try {
      out_.push_back({place_, std::move(what), ok, std::move(message)});
      if (each_) {
        each_(out_.back());
      }
    } catch (...) {
    }
  }

 private:
  std::string place_;
  std::vector<ProbeResult> &out_;
  const std::function<void(const ProbeResult &)> &each_;
};
}  // namespace

std::vector<ProbeResult> Engine::Impl::probe(std::chrono::milliseconds timeout,
                                             const std::function<void(const ProbeResult &)> &each) {
  if (!loaded || runtime) {
    throw std::logic_error("Engine::probe: only after a load and before start()");
  }
  std::vector<ProbeResult> out;
  auto one = [&](const PipelinePlan &plan, const StageInstance &s) {
    if (!s.plugin) {
      return;
    }
    CollectingProbe report(fmt::format("pipelines.{}.{} ({})", plan.name, s.place, s.type), out, each);
    auto began = std::chrono::steady_clock::now();
    Status st = s.plugin->probe(report, timeout);
    auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - began);
    if (!st.isOk()) {
      report.add("probe", false, st.message());
    }
    if (took > timeout + std::chrono::seconds(1)) {
      report.add("probe", false,
                 fmt::format("took {:.1f} s, more than its timeout of {:.1f} s", took.count() / 1000.0,
                             timeout.count() / 1000.0));
    }
  };
  for (const auto &plan : plans) {
    one(plan, plan.input);
    if (!plan.filters.empty()) {
      for (const auto &f : plan.filters.front()) {  // one instance per place: worker 0's
        one(plan, f);
      }
    }
    for (const auto &o : plan.outputs) {
      one(plan, o);
    }
  }
  return out;
}

std::vector<ProbeResult> Engine::probe(std::chrono::milliseconds timeout,
                                       const std::function<void(const ProbeResult &)> &each) {
  return impl_->probe(timeout, each);
}

// --- Pipeline tests (`switchyard test`) ---------------------------------------------------

void Engine::substituteSource(std::string type, Factory<Source> factory, bool can_ack) {
  std::string name = "test-stand-in:" + type;
  registerSource(name, {}, std::move(factory), can_ack);
  impl_->substitutes[std::move(type)] = std::move(name);
}

void Engine::substituteSink(std::string type, Factory<Sink> factory, bool can_ack) {
  std::string name = "test-stand-in:" + type;
  registerSink(name, {}, std::move(factory), can_ack);
  impl_->substitutes[std::move(type)] = std::move(name);
}

// --- Operations (the HTTP endpoint: /metrics, /health, /pipelines) -------------------------

std::vector<PipelineStatus> Engine::status() const {
  if (impl_->runtime) {
    return impl_->runtime->status();
  }
  std::vector<PipelineStatus> out;  // loaded, not started
  for (const auto &plan : impl_->plans) {
    PipelineStatus s{plan.name, "starting", std::nullopt, {}};
    s.plugins.push_back({plan.input.place, plan.input.type});
    if (!plan.filters.empty()) {
      for (const auto &f : plan.filters.front()) {
        s.plugins.push_back({f.place, f.type});
      }
    }
    for (const auto &o : plan.outputs) {
      s.plugins.push_back({o.place, o.type});
    }
    out.push_back(std::move(s));
  }
  return out;
}

std::vector<HistogramSample> Engine::histograms() const { return impl_->counters.histograms(); }

std::string Engine::httpListen() const {
  return impl_->http_listen.empty() ? impl_->settings.http.listen : impl_->http_listen;
}

void Engine::setHttpListen(std::string listen) { impl_->http_listen = std::move(listen); }

// --- The tap (runtime_tap.hpp) -------------------------------------------------------
bool Engine::httpTap() const { return impl_->settings.http.tap; }

// --- Reload (SIGHUP): the engine's part; the work is Runtime::reload (runtime_reload.cpp) ---

bool Engine::reloadable() const noexcept { return impl_->runtime != nullptr && !impl_->config_file.empty(); }

ReloadReport Engine::reload() {
  if (!reloadable()) {
    throw std::logic_error("Engine::reload: only after loadFile() and start()");
  }
  std::vector<Diagnostic> diags;
  std::string text;
  if (!readConfigText(impl_->config_file, text, diags)) {
    throw ConfigError(std::move(diags));
  }
  return reloadString(text, impl_->config_file);
}

ReloadReport Engine::reloadString(std::string_view yaml, const std::string &name) {
  if (!impl_->runtime) {
    throw std::logic_error("Engine::reload: only after start()");
  }
  BuiltConfig next = impl_->build(yaml, name);  // ConfigError: nothing was touched
  impl_->warnings = next.warnings;
  return impl_->runtime->reload(std::move(next),
                                [this, name](const std::string &text) { return impl_->build(text, name); });
}

}  // namespace switchyard
