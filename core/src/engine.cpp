// SPDX-License-Identifier: MIT
#include "switchyard/engine.hpp"

#include <sched.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>
#include <tuple>

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
  const char *kind = warning ? "warning: " : "";
  if (path.empty()) {
    return fmt::format("{}: {}{}", where, kind, message);
  }
  return fmt::format("{}: {}: {}{}", where, path, kind, message);
}

std::string ProbeResult::str() const {
  if (ok) {
    return fmt::format("{}: {}: ok", place, what);
  }
  return fmt::format("{}: {}: FAILED: {}", place, what, message);
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

/// What one plugin reported about its configuration (CreateArgs::report).
class CollectingReport final : public ConfigReport {
 public:
  struct Item {
    std::string key;
    std::string message;
    bool warning = false;
  };
  void error(std::string_view key, std::string_view message) noexcept override { add(key, message, false); }
  void warning(std::string_view key, std::string_view message) noexcept override { add(key, message, true); }
  [[nodiscard]] const std::vector<Item> &items() const noexcept { return items_; }
  [[nodiscard]] bool hasErrors() const noexcept { return errors_; }

 private:
  void add(std::string_view key, std::string_view message, bool warning) noexcept {
    try {
      items_.push_back({std::string(key), std::string(message), warning});
      errors_ = errors_ || !warning;
    } catch (...) {  // out of memory: the Status still says what failed
    }
  }
  std::vector<Item> items_;
  bool errors_ = false;
};

/// Each diagnostic once (a plugin reporting the same thing from several places, a key
/// reached through several paths), in file order.
void sortUnique(std::vector<Diagnostic> &d) {
  std::stable_sort(d.begin(), d.end(), [](const Diagnostic &a, const Diagnostic &b) {
    return a.line != b.line ? a.line < b.line : a.column < b.column;
  });
  std::vector<Diagnostic> out;
  for (auto &x : d) {
    bool seen = std::any_of(out.begin(), out.end(), [&](const Diagnostic &y) {
      return y.line == x.line && y.column == x.column && y.path == x.path && y.message == x.message &&
             y.file == x.file;
    });
    if (!seen) {
      out.push_back(std::move(x));
    }
  }
  d = std::move(out);
}

/// A created factory and the handle that keeps its library mapped. The library is
/// declared first so that it is released last.
struct FactoryRef {
  std::shared_ptr<void> library;
  FactoryPtr factory;
};

}  // namespace

ConfigError::ConfigError(std::vector<Diagnostic> diagnostics, std::vector<Diagnostic> warnings)
    : std::runtime_error(joinDiagnostics(diagnostics)),
      diagnostics_(std::move(diagnostics)),
      warnings_(std::move(warnings)) {}

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
                            return config ? InProcessFactory<T>::create(config, f, a.report, a.error) : nullptr;
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

void Engine::Impl::load(std::string_view text, const std::string &file) {
  if (loaded) {
    throw std::logic_error("Engine: a configuration is already loaded");
  }
  BuiltConfig b = build(text, file);
  warnings = std::move(b.warnings);
  settings = b.settings;
  plans = std::move(b.plans);
  loaded = true;
}

BuiltConfig Engine::Impl::build(std::string_view text, const std::string &file) {
  const auto origin = std::make_shared<const std::string>(text);  // what a reload can rebuild from
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
  // Directories scanned by an earlier load (a reload) are not scanned again.
  std::erase_if(dirs, [&](const std::string &d) {
    return std::find(registry.directories().begin(), registry.directories().end(), d) != registry.directories().end();
  });
  try {
    registry.scan(dirs);
  } catch (const std::exception &e) {
    diags.push_back(Diagnostic{file, 0, 0, "", e.what()});
    throw ConfigError(std::move(diags));
  }
  parser.validatePlugins(model, registry, diags);
  // Every plugin whose entry passed its schema is created even when other entries (or
  // phase 1) had problems, so that one `check` run reports the problems of every plugin.

  host.setLogger(&logger());
  std::vector<Diagnostic> warns;
  // One problem with one setting used at several places (the CA file that the verifiers
  // of both directions of a bridge read through one ${FEDMSG_CA}, or one YAML anchor) is
  // one diagnostic, at the first place, that names the others. Problems of settings
  // written separately stay apart, even when they read the same.
  struct Seen {
    const PluginSpec *spec;
    std::size_t index;  ///< in diags or warns
  };
  std::map<std::tuple<std::string, std::string, std::string, bool>, std::vector<Seen>> seen;
  auto reportItem = [&](const PluginSpec &spec, const std::string &key, const std::string &message,
                        bool warning) {
    for (const auto &bad : spec.bad_keys) {
      if (key.starts_with(bad) && (key.size() == bad.size() || key[bad.size()] == '.' || key[bad.size()] == '[')) {
        return;  // the key's value was reported already; the plugin saw its default instead
      }
    }
    Mark m = keyMark(spec, key);
    std::string path = key.empty() ? spec.path
                       : key.front() == '[' ? spec.path + key
                                            : spec.path + "." + key;
    auto &list = warning ? warns : diags;
    auto &same = seen[{spec.type, key, message, warning}];
    for (const auto &earlier : same) {
      if (earlier.spec == &spec || sameSetting(*earlier.spec, spec, key)) {
        Diagnostic &first = list[earlier.index];
        if (first.line != m.line || first.column != m.column || first.path != path) {
          first.message += fmt::format(" (also at {}:{} {})", m.line, m.column, path);
        }
        return;
      }
    }
    same.push_back({&spec, list.size()});
    list.push_back({file, m.line, m.column, path, message, warning});
  };
  auto report = [&](const PluginSpec &spec, const Status &error) {
    reportItem(spec, error.key(), error.message(), false);
  };
  // One factory per configured place (a null factory when creating it failed: reported).
  auto makeFactory = [&](const PluginSpec &spec) -> FactoryRef {
    FactoryRef made;
    if (spec.config_json.empty()) {
      return made;  // its entry has problems (reported): the plugin never sees it
    }
    Status error;
    CollectingReport problems;
    made.factory = registry.create(spec.type, spec.config_json, fmt::format("{} ({})", spec.path, spec.type),
                                   &logger(), &host, error, made.library, &problems);
    for (const auto &item : problems.items()) {
      reportItem(spec, item.key, item.message, item.warning);
    }
    if (!made.factory && !problems.hasErrors()) {
      report(spec, error);  // the plugin reported nothing itself: its Status says why
    }
    if (auto sub = substitutes.find(spec.type); sub != substitutes.end() && made.factory) {
      // Pipeline tests: the plugin's own factory checked the entry; a stand-in runs it.
      made = FactoryRef{};
      made.factory = registry.create(sub->second, spec.config_json, fmt::format("{} ({})", spec.path, spec.type),
                                     &logger(), &host, error, made.library, nullptr);
      if (!made.factory) {
        report(spec, error);
      }
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
      FactoryRef made = makeFactory(p.filters[i]);  // once per place, whatever the workers
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
    plan.signature = pipelineSignature(p, workers, model.settings);
    plan.origin = origin;
    built.push_back(std::move(plan));
  }
  sortUnique(warns);
  if (!diags.empty()) {
    sortUnique(diags);
    throw ConfigError(std::move(diags), std::move(warns));
  }
  if (options.log_config_warnings) {
    for (const auto &w : warns) {
      Diagnostic plain = w;
      plain.warning = false;  // the log line's level says it already
      logger().log(LogLevel::Warn, plain.str());
    }
  }
  BuiltConfig out;
  out.warnings = std::move(warns);
  out.settings = model.settings;
  out.plans = std::move(built);
  return out;
}

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

Engine::Engine(EngineOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->options = std::move(options);
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
  impl_->config_file = path;  // what reload() re-reads
}

void Engine::loadString(std::string_view yaml, const std::string &name) { impl_->load(yaml, name); }

const std::vector<Diagnostic> &Engine::warnings() const noexcept { return impl_->warnings; }

std::vector<ProbeResult> Engine::probe(std::chrono::milliseconds timeout,
                                       const std::function<void(const ProbeResult &)> &each) {
  return impl_->probe(timeout, each);
}

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

std::vector<std::string> Engine::pluginNames() const {
  std::vector<std::string> out;
  for (const auto *d : impl_->registry.all()) {
    out.push_back(d->name);
  }
  return out;
}

}  // namespace switchyard
