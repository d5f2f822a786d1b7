// SPDX-License-Identifier: MIT
#include "switchyard/engine.hpp"

#include <sched.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
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

/// Host services of one engine: the shared objects of its plugins.
class EngineHost final : public Host {
 public:
  explicit EngineHost(Logger *logger) : logger_(logger) {}
  ~EngineHost() override { clear(); }
  Logger &log() noexcept override { return *logger_; }
  std::shared_ptr<void> shared(std::string_view key,
                               const std::function<std::shared_ptr<void>()> &make) noexcept override {
    std::lock_guard<std::mutex> lock(mu_);
    try {
      auto it = objects_.find(key);
      if (it != objects_.end()) {
        return it->second;
      }
      std::shared_ptr<void> made = make();
      if (made) {
        objects_.emplace(std::string(key), made);
      }
      return made;
    } catch (...) {
      return nullptr;
    }
  }
  /// Releases the host's references, in reverse order of creation would be nicer, but the
  /// objects are independent; called before the plugin libraries are unloaded.
  void clear() noexcept {
    std::lock_guard<std::mutex> lock(mu_);
    objects_.clear();
  }
  void setLogger(Logger *logger) noexcept { logger_ = logger; }

 private:
  Logger *logger_;
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<void>, std::less<>> objects_;
};

/// The factory of an in-process plugin (embedding API): keeps the parsed Config and calls
/// the embedder's function once per instance.
template <typename T>
class InProcessFactory final : public PluginFactory {
 public:
  InProcessFactory(std::unique_ptr<sdk::Config> config, const Factory<T> &make)
      : config_(std::move(config)), make_(make), first_(make_(*config_)) {}
  Plugin *instantiate(const InstanceArgs &args) noexcept override {
    if (first_) {  // made with the factory, so that a bad value is reported at load time
      return first_.release();
    }
    return sdk::barrier(args.error, [&]() -> Plugin * { return make_(*config_).release(); });
  }

 private:
  std::unique_ptr<sdk::Config> config_;
  Factory<T> make_;
  std::unique_ptr<T> first_;
};

}  // namespace

ConfigError::ConfigError(std::vector<Diagnostic> diagnostics)
    : std::runtime_error(joinDiagnostics(diagnostics)), diagnostics_(std::move(diagnostics)) {}

struct Engine::Impl {
  EngineOptions options;
  PluginRegistry registry;
  // After the registry: destroyed (with the objects plugins share) before any library is
  // unloaded, and after the runtime and the plans, which hold the instances and factories.
  EngineHost host{nullptr};
  CounterStore counters;
  Settings settings;
  std::vector<PipelinePlan> plans;
  std::unique_ptr<Runtime> runtime;
  bool loaded = false;
  std::vector<std::unique_ptr<logging::ContextLogger>> loggers;

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

  std::vector<PipelinePlan> built;
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
  // One factory per configured plugin; one instance per filter worker (or one).
  struct Made {
    FactoryPtr factory;
    std::shared_ptr<void> library;
  };
  auto makeFactory = [&](const PluginSpec &spec) -> Made {
    Made made;
    Status error;
    std::string instance = fmt::format("{} ({})", spec.path, spec.type);
    made.factory = registry.create(spec.type, spec.config_json, instance, &logger(), &host, error,
                                   made.library);
    if (!made.factory) {
      report(spec, error);
    }
    return made;
  };
  auto make = [&](const PluginSpec &spec, const Made &made, const std::string &place, std::size_t worker,
                  std::size_t workers) -> StageInstance {
    StageInstance s;
    s.type = spec.type;
    s.place = place;
    const PluginDescriptor *d = registry.find(spec.type);
    s.can_ack = d != nullptr && d->canAck();
    s.retry = spec.retry;
    if (!made.factory) {
      return s;
    }
    Status error;
    std::string instance = fmt::format("{} ({})", spec.path, spec.type);
    s.plugin = instantiate(made.factory, made.library, instance, static_cast<std::uint32_t>(worker),
                           static_cast<std::uint32_t>(workers), error);
    if (!s.plugin) {
      report(spec, error);
    }
    return s;
  };
  for (auto &p : model.pipelines) {
    PipelinePlan plan;
    plan.name = p.name;
    plan.input = make(p.input, makeFactory(p.input), "input", 0, 1);
    std::size_t workers = resolveWorkers(p, registry, file, diags);
    std::vector<Made> filter_factories;
    for (const auto &f : p.filters) {
      filter_factories.push_back(makeFactory(f));
    }
    plan.filters.resize(workers);
    for (std::size_t w = 0; w < workers; ++w) {  // one chain of instances per filter worker
      for (std::size_t i = 0; i < p.filters.size(); ++i) {
        plan.filters[w].push_back(
            make(p.filters[i], filter_factories[i], fmt::format("filters[{}]", i), w, workers));
      }
    }
    for (std::size_t i = 0; i < p.outputs.size(); ++i) {
      plan.outputs.push_back(make(p.outputs[i], makeFactory(p.outputs[i]), fmt::format("outputs[{}]", i), 0, 1));
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
