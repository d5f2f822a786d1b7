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
#include "engine_impl.hpp"

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
    // Pipeline tests (stand-ins substituted) never touch the journal's directory.
    plan.journal = substitutes.empty() ? p.journal : JournalSpec{};
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
  impl_->config_file = path;  // what reload() re-reads
}

void Engine::loadString(std::string_view yaml, const std::string &name) { impl_->load(yaml, name); }

const std::vector<Diagnostic> &Engine::warnings() const noexcept { return impl_->warnings; }

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
