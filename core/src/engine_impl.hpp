// SPDX-License-Identifier: MIT
// The engine's private state (Engine::Impl) and the host and in-process factory it owns,
// shared by engine.cpp (load, start, stop, counters) and engine_ops.cpp (probe, reload,
// pipeline tests, the operations endpoint's queries). Internal: not installed.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config.hpp"
#include "log.hpp"
#include "registry.hpp"
#include "runtime.hpp"
#include "switchyard/engine.hpp"

namespace switchyard {
namespace engine_detail {

/// Host services of one engine: its logger and the objects its plugins share.
///
/// LIFETIME: the engine destroys its runtime and plans (every instance, hence every
/// factory) first, then this host, then the registry that unloads the plugin libraries
/// (see Engine::Impl). Objects made by a plugin's code therefore die while that code is
/// still mapped. The host releases them in the reverse order of their creation, so an
/// object made after another (and perhaps holding on to it) goes first.
class EngineHost final : public Host {
 public:
  EngineHost() = default;
  EngineHost(const EngineHost &) = delete;
  EngineHost &operator=(const EngineHost &) = delete;
  ~EngineHost() override { clear(); }

  Logger &log() noexcept override {
    Logger *l = logger_.load(std::memory_order_acquire);
    return l != nullptr ? *l : logging::root();
  }
  std::shared_ptr<void> shared(std::string_view key,
                               const std::function<std::shared_ptr<void>()> &make) noexcept override {
    std::lock_guard lock(mutex_);
    try {
      for (const auto &[k, object] : objects_) {
        if (k == key) {
          return object;
        }
      }
      std::shared_ptr<void> made = make();
      if (made) {
        objects_.emplace_back(std::string(key), made);
      }
      return made;
    } catch (...) {
      return nullptr;
    }
  }
  /// Drops the host's references, newest first. Objects a live instance still holds
  /// survive until that instance goes.
  void clear() noexcept {
    std::vector<std::pair<std::string, std::shared_ptr<void>>> objects;
    {
      std::lock_guard lock(mutex_);
      objects.swap(objects_);
    }
    while (!objects.empty()) {  // outside the lock: a destructor may call shared()
      objects.pop_back();
    }
  }
  void setLogger(Logger *logger) noexcept { logger_.store(logger, std::memory_order_release); }

 private:
  std::atomic<Logger *> logger_{nullptr};
  std::mutex mutex_;
  /// In creation order; a handful per engine, so a linear search is the fastest lookup.
  std::vector<std::pair<std::string, std::shared_ptr<void>>> objects_;
};

/// The factory of an in-process plugin (embedding API): keeps the parsed Config and calls
/// the embedder's function once per instance. The first instance is made with the factory,
/// so that a bad value is reported when the configuration is loaded (like the SDK's
/// PerInstanceFactory, with the problems and warnings the function records on the Config);
/// an embedder's function that returns null fails the load.
template <typename T>
class InProcessFactory final : public PluginFactory {
 public:
  /// Null (with @p error set and every problem sent to @p report) when the first instance fails.
  static PluginFactory *create(std::shared_ptr<const sdk::Config> config, const Factory<T> &make,
                               ConfigReport *report, Status *error) noexcept {
    T *first = sdk::construct(*config, report, error, [&]() -> T * { return made(make, *config); });
    if (first == nullptr) {
      return nullptr;
    }
    return sdk::barrier(error, [&]() -> PluginFactory * {
      return new InProcessFactory(config, make, std::unique_ptr<T>(first));
    });
  }
  Plugin *instantiate(const InstanceArgs &args) noexcept override {
    if (first_) {
      return first_.release();
    }
    return sdk::construct(*config_, nullptr, args.error, [&]() -> Plugin * { return made(make_, *config_); });
  }

 private:
  InProcessFactory(std::shared_ptr<const sdk::Config> config, Factory<T> make, std::unique_ptr<T> first)
      : config_(std::move(config)), make_(std::move(make)), first_(std::move(first)) {}
  static T *made(const Factory<T> &make, const sdk::Config &config) {
    std::unique_ptr<T> p = make(config);
    if (!p) {
      throw std::runtime_error("the plugin's factory function returned no instance");
    }
    return p.release();
  }

  std::shared_ptr<const sdk::Config> config_;
  Factory<T> make_;
  std::unique_ptr<T> first_;  ///< after config_: destroyed before the Config it was made from
};

}  // namespace engine_detail

// LIFETIME: members are destroyed in reverse order. The runtime (or, before start(), the
// plans) holds every instance, and each instance its factory and library (PluginDeleter):
// they go first. Then the counters they counted in, then the host with the objects the
// plugins shared, and only then the registry, which unloads the plugin libraries.
struct Engine::Impl {
  EngineOptions options;
  PluginRegistry registry;
  engine_detail::EngineHost host;
  CounterStore counters;
  Settings settings;
  std::vector<PipelinePlan> plans;
  std::unique_ptr<Runtime> runtime;
  std::vector<Diagnostic> warnings;
  bool loaded = false;
  /// Pipeline tests: plugin name -> the name of its in-process stand-in (substituteSource/Sink).
  std::map<std::string, std::string, std::less<>> substitutes;
  /// Operations: `switchyard run --http` (setHttpListen), which wins over settings.http.listen.
  std::string http_listen;

  Logger &logger() { return options.logger != nullptr ? *options.logger : logging::root(); }

  template <typename T>
  void registerInProcess(std::string name, sy_plugin_kind kind, std::uint32_t flags,
                         std::vector<KeySpec> schema, Factory<T> factory) {
    PluginDescriptor d;
    d.kind = kind;
    d.flags = flags;
    d.abi_major = SWITCHYARD_ABI_MAJOR;
    d.abi_minor = SWITCHYARD_ABI_MINOR;
    d.name = std::move(name);
    d.version = SWITCHYARD_VERSION;
    d.description = "in-process plugin";
    d.fingerprint = SWITCHYARD_BUILD_FINGERPRINT;
    registry.addInProcess(std::move(d), std::move(schema),
                          [f = std::move(factory)](const CreateArgs &a) -> PluginFactory * {
                            auto config = sdk::barrier(a.error, [&]() -> std::shared_ptr<const sdk::Config> {
                              return std::make_shared<const sdk::Config>(a.config_json, a.logger,
                                                                         std::string(a.instance), a.host);
                            });
                            return config ? engine_detail::InProcessFactory<T>::create(config, f, a.report, a.error) : nullptr;
                          });
  }

  void load(std::string_view text, const std::string &file);
  /// Parses, validates and creates every plugin instance of @p text without touching the
  /// engine's loaded state (load() and reload use it); throws ConfigError.
  BuiltConfig build(std::string_view text, const std::string &file);
  std::string config_file;  ///< given to loadFile(); "" for a string (reload)
  std::vector<ProbeResult> probe(std::chrono::milliseconds timeout,
                                 const std::function<void(const ProbeResult &)> &each);
};

}  // namespace switchyard
