// SPDX-License-Identifier: MIT
#include "switchyard/engine.hpp"

#include <sched.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include <fmt/format.h>

#include "config.hpp"
#include "log.hpp"
#include "registry.hpp"
#include "runtime.hpp"
#include "switchyard/codec_stats.hpp"

namespace switchyard {

std::string Diagnostic::str() const {
  std::string where = file;
  if (line > 0) {
    where += fmt::format(":{}:{}", line, column);
  }
  if (path.empty()) {
    return fmt::format("{}: {}", where, message);
  }
  return fmt::format("{}: {}: {}", where, path, message);
}

namespace {
std::string joinDiagnostics(const std::vector<Diagnostic> &d) {
  std::string out;
  for (const auto &x : d) {
    if (!out.empty()) {
      out += '\n';
    }
    out += x.str();
  }
  return out;
}

/// CPUs this process may run on (its affinity mask, e.g. under taskset or a cgroup cpuset).
std::size_t onlineCpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof set, &set) == 0) {
    return static_cast<std::size_t>(std::max(1, CPU_COUNT(&set)));
  }
  return std::max(1u, std::thread::hardware_concurrency());
}

std::size_t resolveWorkers(const PipelineSpec &p, const PluginRegistry &registry, const std::string &file,
                           std::vector<Diagnostic> &diags) {
  if (p.filters.empty()) {
    return 1;  // nothing to run in parallel
  }
  const PluginSpec *serial = nullptr;
  for (const auto &f : p.filters) {
    const PluginDescriptor *d = registry.find(f.type);
    if (d == nullptr || !d->parallel()) {
      serial = &f;
      break;
    }
  }
  if (p.workers == 0) {  // auto
    return serial != nullptr ? 1 : std::min<std::size_t>(onlineCpus(), 16);
  }
  if (p.workers > 1 && serial != nullptr) {
    diags.push_back({file, p.workers_mark.line, p.workers_mark.column,
                     fmt::format("pipelines.{}.workers", p.name),
                     fmt::format("{} ({}) does not declare that it can run as several parallel instances "
                                 "(SY_FLAG_PARALLEL); use workers: 1 or auto",
                                 serial->path, serial->type)});
    return 1;
  }
  return p.workers;
}

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
/// PerInstanceFactory); an embedder's function that returns null fails the load.
template <typename T>
class InProcessFactory final : public PluginFactory {
 public:
  InProcessFactory(std::unique_ptr<sdk::Config> config, Factory<T> make)
      : config_(std::move(config)), make_(std::move(make)), first_(make_(*config_)) {
    if (!first_) {
      throw std::runtime_error("the plugin's factory function returned no instance");
    }
  }
  Plugin *instantiate(const InstanceArgs &args) noexcept override {
    if (first_) {
      return first_.release();
    }
    return sdk::barrier(args.error, [&]() -> Plugin * {
      std::unique_ptr<T> made = make_(*config_);
      if (!made) {
        throw std::runtime_error("the plugin's factory function returned no instance");
      }
      return made.release();
    });
  }

 private:
  std::unique_ptr<sdk::Config> config_;
  Factory<T> make_;
  std::unique_ptr<T> first_;  ///< after config_: destroyed before the Config it was made from
};

/// A created factory and the handle that keeps its library mapped. The library is
/// declared first so that it is released last.
struct FactoryRef {
  std::shared_ptr<void> library;
  FactoryPtr factory;
};

}  // namespace

ConfigError::ConfigError(std::vector<Diagnostic> diagnostics)
    : std::runtime_error(joinDiagnostics(diagnostics)), diagnostics_(std::move(diagnostics)) {}

// LIFETIME: members are destroyed in reverse order. The runtime (or, before start(), the
// plans) holds every instance, and each instance its factory and library (PluginDeleter):
// they go first. Then the counters they counted in, then the host with the objects the
// plugins shared, and only then the registry, which unloads the plugin libraries.
struct Engine::Impl {
  EngineOptions options;
  PluginRegistry registry;
  EngineHost host;
  CounterStore counters;
  Settings settings;
  std::vector<PipelinePlan> plans;
  std::unique_ptr<Runtime> runtime;
  bool loaded = false;

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
                            return sdk::barrier(a.error, [&]() -> PluginFactory * {
                              return new InProcessFactory<T>(
                                  std::make_unique<sdk::Config>(a.config_json, a.logger,
                                                                std::string(a.instance), a.host),
                                  f);
                            });
                          });
  }

  void load(std::string_view text, const std::string &file);
};

void Engine::Impl::load(std::string_view text, const std::string &file) {
  if (loaded) {
    throw std::logic_error("Engine: a configuration is already loaded");
  }
  std::vector<Diagnostic> diags;
  ConfigParser parser;
  ConfigModel model = parser.parse(text, file, diags);
  // Phase-1 problems that leave the document understood (a duplicate key, a bad setting)
  // do not stop phase 2, so that every problem of the file is reported at once.
  if (!diags.empty() && !model.checkable) {
    throw ConfigError(std::move(diags));
  }
  auto dirs = pluginSearchPath(options.plugin_paths, options.use_env_plugin_path,
                               options.use_config_plugin_path ? model.plugin_paths
                                                              : std::vector<std::string>{},
                               options.use_install_dir);
  try {
    registry.scan(dirs);
  } catch (const std::exception &e) {
    diags.push_back(Diagnostic{file, 0, 0, "", e.what()});
    throw ConfigError(std::move(diags));
  }
  parser.validatePlugins(model, registry, diags);
  if (!diags.empty()) {
    // In file order: phase 1 and phase 2 each report in their own order.
    std::stable_sort(diags.begin(), diags.end(), [](const Diagnostic &a, const Diagnostic &b) {
      return a.line != b.line ? a.line < b.line : a.column < b.column;
    });
    throw ConfigError(std::move(diags));
  }

  host.setLogger(&logger());
  auto report = [&](const PluginSpec &spec, const Status &error) {
    Mark m = spec.mark;
    std::string path = spec.path;
    if (!error.key().empty()) {
      if (auto it = spec.key_marks.find(error.key()); it != spec.key_marks.end()) {
        m = it->second;
      }
      path += "." + error.key();
    }
    diags.push_back({file, m.line, m.column, path, error.message()});
  };
  // One factory per configured place (a null factory when creating it failed: reported).
  auto makeFactory = [&](const PluginSpec &spec) -> FactoryRef {
    FactoryRef made;
    Status error;
    made.factory = registry.create(spec.type, spec.config_json, fmt::format("{} ({})", spec.path, spec.type),
                                   &logger(), &host, error, made.library);
    if (!made.factory) {
      report(spec, error);
    }
    return made;
  };
  // One instance of @p made. Without a factory, or when instantiate() fails (reported), the
  // stage has no plugin; the diagnostics then keep the plan from ever running.
  auto instance = [&](const PluginSpec &spec, const FactoryRef &made, std::string place, std::size_t worker,
                      std::size_t workers) -> StageInstance {
    StageInstance s;
    s.type = spec.type;
    s.place = std::move(place);
    const PluginDescriptor *d = registry.find(spec.type);
    s.can_ack = d != nullptr && d->canAck();
    s.retry = spec.retry;
    if (made.factory) {
      Status error;
      s.plugin = instantiate(made.factory, made.library, fmt::format("{} ({})", spec.path, spec.type),
                             static_cast<std::uint32_t>(worker), static_cast<std::uint32_t>(workers), error);
      if (!s.plugin) {
        report(spec, error);
      }
    }
    return s;
  };

  // The plans own the instances; the factories live on in them (PluginDeleter) and go
  // when their last instance goes, here on an error or with the runtime.
  std::vector<PipelinePlan> built;
  for (auto &p : model.pipelines) {
    PipelinePlan plan;
    plan.name = p.name;
    plan.input = instance(p.input, makeFactory(p.input), "input", 0, 1);
    std::size_t workers = resolveWorkers(p, registry, file, diags);
    plan.filters.resize(workers);  // one chain of instances per filter worker
    for (std::size_t i = 0; i < p.filters.size(); ++i) {
      FactoryRef made = makeFactory(p.filters[i]);
      for (std::size_t w = 0; w < workers; ++w) {
        StageInstance s = instance(p.filters[i], made, fmt::format("filters[{}]", i), w, workers);
        if (made.factory && !s.plugin) {
          made.factory.reset();  // reported once, not once per worker
        }
        plan.filters[w].push_back(std::move(s));
      }
    }
    for (std::size_t i = 0; i < p.outputs.size(); ++i) {
      plan.outputs.push_back(
          instance(p.outputs[i], makeFactory(p.outputs[i]), fmt::format("outputs[{}]", i), 0, 1));
    }
    built.push_back(std::move(plan));
  }
  if (!diags.empty()) {
    throw ConfigError(std::move(diags));
  }
  settings = model.settings;
  plans = std::move(built);
  loaded = true;
}

Engine::Engine(EngineOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->options = std::move(options);
}

Engine::~Engine() {
  if (impl_->runtime) {
    impl_->runtime->stop();
  }
}

void Engine::registerSource(std::string name, std::vector<KeySpec> schema, Factory<Source> factory,
                            bool can_ack) {
  impl_->registerInProcess(std::move(name), SY_KIND_SOURCE, can_ack ? std::uint32_t{SY_FLAG_CAN_ACK} : 0u, std::move(schema),
                           std::move(factory));
}
void Engine::registerSink(std::string name, std::vector<KeySpec> schema, Factory<Sink> factory,
                          bool can_ack) {
  impl_->registerInProcess(std::move(name), SY_KIND_SINK, can_ack ? std::uint32_t{SY_FLAG_CAN_ACK} : 0u, std::move(schema),
                           std::move(factory));
}
void Engine::registerFilter(std::string name, std::vector<KeySpec> schema, Factory<Filter> factory) {
  registerFilter(std::move(name), std::move(schema), std::move(factory), false);
}
void Engine::registerFilter(std::string name, std::vector<KeySpec> schema, Factory<Filter> factory,
                            bool parallel) {
  impl_->registerInProcess(std::move(name), SY_KIND_FILTER, parallel ? std::uint32_t{SY_FLAG_PARALLEL} : 0u,
                           std::move(schema), std::move(factory));
}

void Engine::loadFile(const std::string &path) {
  std::vector<Diagnostic> diags;
  std::string text;
  if (!readConfigText(path, text, diags)) {
    throw ConfigError(std::move(diags));
  }
  impl_->load(text, path);
}

void Engine::loadString(std::string_view yaml, const std::string &name) { impl_->load(yaml, name); }

void Engine::start() {
  if (!impl_->loaded) {
    throw std::logic_error("Engine::start: no configuration loaded");
  }
  if (impl_->runtime) {
    throw std::logic_error("Engine::start: already started");
  }
  impl_->runtime = std::make_unique<Runtime>(impl_->counters, impl_->settings);
  for (auto &p : impl_->plans) {
    impl_->runtime->add(std::move(p));
  }
  impl_->plans.clear();
  impl_->runtime->start();
}

void Engine::requestStop() noexcept {
  if (impl_->runtime) {
    impl_->runtime->requestStop();
  }
}

bool Engine::wait(std::optional<std::chrono::milliseconds> timeout) {
  if (!impl_->runtime) {
    return true;
  }
  return impl_->runtime->wait(timeout);
}

bool Engine::stop() {
  if (!impl_->runtime) {
    return true;
  }
  return impl_->runtime->stop();
}

bool Engine::failed() const noexcept { return impl_->runtime && impl_->runtime->failed(); }

std::vector<CounterSample> Engine::counters() const {
  std::vector<CounterSample> out = impl_->counters.snapshot();
  // The codec's process-wide parse and serialisation counts (switchyard/codec_stats.hpp),
  // not tied to a pipeline: parse-once made visible in `switchyard run --stats-interval`.
  const codec::CodecStats codec = codec::parseStats();
  for (const auto &k : codec.parses) {
    out.push_back(CounterSample{"", "codec", "codec_parses", std::string(k.kind), static_cast<std::int64_t>(k.count)});
  }
  for (const auto &k : codec.serialisations) {
    out.push_back(
        CounterSample{"", "codec", "codec_serialisations", std::string(k.kind), static_cast<std::int64_t>(k.count)});
  }
  return out;
}

std::int64_t Engine::counter(std::string_view pipeline, std::string_view name,
                             std::string_view label) const {
  return impl_->counters.sum(pipeline, name, label);
}

std::vector<std::string> Engine::pluginNames() const {
  std::vector<std::string> out;
  for (const auto *d : impl_->registry.all()) {
    out.push_back(d->name);
  }
  return out;
}

}  // namespace switchyard
