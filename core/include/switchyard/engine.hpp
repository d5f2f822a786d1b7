// SPDX-License-Identifier: MIT
//
// The embedding API: load a configuration, start and stop its pipelines, read counters,
// and add in-process sources, sinks and filters next to the ones loaded from .so files.
//
//   switchyard::Engine engine;
//   engine.loadFile("bridge.yaml");       // throws switchyard::ConfigError with every problem
//   engine.start();
//   ...
//   engine.stop();                          // stop inputs, drain, close outputs
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "switchyard/plugin.hpp"
#include "switchyard/sdk.hpp"

namespace switchyard {

/// One problem found in a configuration, with its place in the file.
struct Diagnostic {
  std::string file;
  int line = 0;    ///< 1-based; 0 when unknown
  int column = 0;  ///< 1-based; 0 when unknown
  std::string path;     ///< key path: "pipelines.zmq-to-amqp.filters[1].ca_file"
  std::string message;  ///< what is wrong and what was expected
  bool warning = false;  ///< a setting that works but is probably a mistake (not an error)
  /// "file:line:column: path: message" ("file:line:column: path: warning: message")
  [[nodiscard]] std::string str() const;
};

/// Every problem of a configuration at once (each once, in file order), and the warnings
/// found on the way.
class ConfigError : public std::runtime_error {
 public:
  explicit ConfigError(std::vector<Diagnostic> diagnostics, std::vector<Diagnostic> warnings = {});
  /// The errors (never empty).
  [[nodiscard]] const std::vector<Diagnostic> &diagnostics() const noexcept { return diagnostics_; }
  [[nodiscard]] const std::vector<Diagnostic> &warnings() const noexcept { return warnings_; }

 private:
  std::vector<Diagnostic> diagnostics_;
  std::vector<Diagnostic> warnings_;
};

/// One thing `switchyard check --connect` checked (Engine::probe()).
struct ProbeResult {
  std::string place;    ///< "pipelines.p.outputs[0] (amqp-publish)"
  std::string what;     ///< the endpoint, URL (no password), file or entity checked
  bool ok = false;
  std::string message;  ///< why it failed (empty when ok)
  /// "place: what: ok" or "place: what: FAILED: message"
  [[nodiscard]] std::string str() const;
};

/// A configuration key of an in-process plugin (the C++ twin of sy_config_key).
struct KeySpec {
  std::string name;
  sy_config_type type = SY_CFG_STRING;
  bool required = false;
  std::optional<std::string> default_json;  ///< JSON text
  std::string description;
  bool secret = false;
  std::vector<std::string> enum_values;  ///< allowed values (strings, string-list items); empty = any
  std::optional<double> min, max;        ///< bounds of an integer or a number (inclusive)
};

/// Makes one instance of an in-process plugin from its validated configuration: called once
/// per instance (once per filter worker for a parallel filter), on the thread that loads
/// the configuration; the first call happens during the load, so a bad value fails it.
/// The Config (and config.host()) stays valid while the instances live. A throw fails the
/// load with the exception's message; so does returning null.
template <typename T>
using Factory = std::function<std::unique_ptr<T>(const sdk::Config &)>;

struct CounterSample {
  std::string pipeline;
  std::string plugin;  ///< instance place, e.g. "outputs[0] (stdout)"; "" for pipeline totals
  std::string name;    ///< "received", "delivered", "dropped", ...
  std::string label;   ///< the reason for "dropped" and other labelled counters
  std::int64_t value = 0;
  bool gauge = false;
};

// --- Operations (the HTTP endpoint: /metrics, /health, /pipelines; docs/operations.md) ---

/// A histogram of a pipeline (the end-to-end latency `pipeline_latency_seconds`).
struct HistogramSample {
  std::string pipeline;
  std::string plugin;  ///< "" for a pipeline's own
  std::string name;    ///< "pipeline_latency_seconds"
  std::vector<double> bounds;          ///< upper bounds, ascending
  std::vector<std::uint64_t> buckets;  ///< per bucket, not cumulative; one more than bounds (above them all)
  double sum = 0;                      ///< of every observed value
  std::uint64_t count = 0;             ///< the sum of buckets
};

/// One plugin instance place of a pipeline.
struct PluginStatus {
  std::string place;  ///< "input", "filters[0]", "outputs[1]"
  std::string type;   ///< plugin name
  /// The counter and gauge key of the instance: "outputs[0] (amqp-publish)".
  [[nodiscard]] std::string label() const { return place + " (" + type + ")"; }
};

/// What a pipeline is doing (Engine::status()).
struct PipelineStatus {
  std::string name;
  /// "starting" (before start() returned), "running", "stopping" (draining), "stopped"
  /// (ended), "failed".
  std::string state;
  /// When its input last submitted a message; none yet: nullopt.
  std::optional<std::chrono::system_clock::time_point> last_message;
  std::vector<PluginStatus> plugins;  ///< input, filters, outputs in configuration order
};

struct EngineOptions {
  std::vector<std::string> plugin_paths;  ///< searched first (--plugin-path)
  bool use_env_plugin_path = true;        ///< then SWITCHYARD_PLUGIN_PATH (colon-separated)
  bool use_config_plugin_path = true;     ///< then the configuration's plugin_path
  bool use_install_dir = true;            ///< then <libdir>/switchyard/plugins
  Logger *logger = nullptr;               ///< null: the default stderr logger
  /// Log the configuration's warnings (Engine::warnings()) once each when it loads. The
  /// `check` command prints them itself instead.
  bool log_config_warnings = true;
};

/// Thrown by Engine::start() when a plugin could not start. permanent(): the plugin said a
/// restart cannot help (Status::permanent: credentials refused, vhost missing, ...); the
/// `switchyard run` command then exits with status 3 instead of 1.
class StartError : public std::runtime_error {
 public:
  StartError(const std::string &what, bool permanent)
      : std::runtime_error(what), permanent_(permanent) {}
  [[nodiscard]] bool permanent() const noexcept { return permanent_; }

 private:
  bool permanent_;
};

/// What Engine::reload() did, pipeline by pipeline (names in the new file's order).
struct ReloadReport {
  std::vector<std::string> unchanged;  ///< left running untouched
  std::vector<std::string> changed;    ///< new version started, the old one draining
  std::vector<std::string> added;      ///< started
  std::vector<std::string> removed;    ///< draining, then gone
  /// "name: why" for each pipeline whose new version could not start; the previous
  /// version of a changed pipeline keeps running when it can (the message says).
  std::vector<std::string> failed;
  /// "2 unchanged (a, b), 1 changed (c), 0 added, 0 removed" (plus the failures)
  [[nodiscard]] std::string str() const;
};

class Engine {
 public:
  explicit Engine(EngineOptions options = {});
  ~Engine();
  Engine(const Engine &) = delete;
  Engine &operator=(const Engine &) = delete;

  /// In-process plugins, usable in configurations under @p name like any loaded plugin.
  void registerSource(std::string name, std::vector<KeySpec> schema, Factory<Source> factory,
                      bool can_ack = false);
  void registerSink(std::string name, std::vector<KeySpec> schema, Factory<Sink> factory,
                    bool can_ack = false);
  void registerFilter(std::string name, std::vector<KeySpec> schema, Factory<Filter> factory);
  /// @p parallel: the filter keeps no state that must see the whole stream, so a pipeline
  /// may run one instance per filter worker (SY_FLAG_PARALLEL; `workers` in the pipeline).
  void registerFilter(std::string name, std::vector<KeySpec> schema, Factory<Filter> factory,
                      bool parallel);

  /// Parse and validate a configuration and create every plugin instance (no sockets are
  /// opened until start()). Throws ConfigError listing every problem.
  void loadFile(const std::string &path);
  void loadString(std::string_view yaml, const std::string &name = "<string>");
  /// The warnings of the loaded configuration (plugins' sdk::Config::warning() and the
  /// core's own), each once, in file order.
  [[nodiscard]] const std::vector<Diagnostic> &warnings() const noexcept;

  /// `switchyard check --connect`: after a load, before start(), asks every configured
  /// plugin (one instance per place) to probe its peers and files (Plugin::probe()), each
  /// with @p timeout, one after another; returns every result in configuration order, and
  /// hands each to @p each as soon as it is known. A probe that overruns its timeout by
  /// more than a second is reported as a failure of its own.
  std::vector<ProbeResult> probe(std::chrono::milliseconds timeout,
                                 const std::function<void(const ProbeResult &)> &each = {});

  /// Start every pipeline, each input on its own thread. Throws StartError when a plugin
  /// fails to start (the others are stopped again).
  void start();
  /// Ask every pipeline to stop (thread-safe, returns at once).
  void requestStop() noexcept;
  /// Wait until every pipeline ended (inputs at end of stream, or stop requested) or the
  /// timeout passed; returns whether they all ended.
  bool wait(std::optional<std::chrono::milliseconds> timeout = std::nullopt);
  /// requestStop() + wait() + close outputs. Returns false when a pipeline failed.
  bool stop();
  /// True when some pipeline hit a fatal error.
  [[nodiscard]] bool failed() const noexcept;

  [[nodiscard]] std::vector<CounterSample> counters() const;
  /// Sum of one counter over every plugin of a pipeline (all labels).
  [[nodiscard]] std::int64_t counter(std::string_view pipeline, std::string_view name,
                                     std::string_view label = {}) const;

  /// The plugins that are known (loaded files and in-process ones).
  [[nodiscard]] std::vector<std::string> pluginNames() const;

  // --- Pipeline tests (`switchyard test`) -------------------------------------------------
  /// Runs every entry of plugin @p type in the configuration loaded next through an
  /// in-process stand-in made by @p factory (an in-memory input or output). The entry is
  /// still checked against @p type's own schema, and @p type's own factory is still made
  /// from it and then put aside, so a configuration fails to load exactly as it would for
  /// `run` (and nothing of @p type is ever instantiated or started); @p factory gets the
  /// validated configuration with the defaults of @p type's schema. Counters keep the
  /// entry's place and type. Call before loadFile().
  void substituteSource(std::string type, Factory<Source> factory, bool can_ack = false);
  void substituteSink(std::string type, Factory<Sink> factory, bool can_ack = false);

  // ---- reload (engine.cpp, runtime_reload.cpp) ----
  /// Whether reload() can run: the configuration came from a file and start() ran.
  [[nodiscard]] bool reloadable() const noexcept;
  /// Re-reads the file given to loadFile() and applies it to the running engine: the
  /// whole file is parsed, validated and its plugins created first, and on any problem
  /// ConfigError is thrown with the running pipelines untouched. Then pipelines whose
  /// definition (their plugins' settings, workers, the queue and drain settings) is the
  /// same keep running untouched, counters and all; a changed pipeline's new version is
  /// started and then the old one drained and stopped (when the new one cannot start
  /// beside the old, e.g. it binds the same address, the old one is drained first; when it
  /// cannot start at all, the old version keeps or goes back to running); new pipelines are
  /// started and removed ones drained and stopped. Old versions drain in the background
  /// (wait() reaps them). Call it from the thread that runs wait(); only after start().
  ReloadReport reload();
  /// reload() from a string instead of the file (embedders, tests).
  ReloadReport reloadString(std::string_view yaml, const std::string &name = "<string>");

  // --- Operations (the HTTP endpoint, docs/operations.md) ---------------------------------
  /// Each pipeline's state, last message time and plugin places. THREADING: after start()
  /// returned, from any thread; before, only from the thread that loads and starts.
  [[nodiscard]] std::vector<PipelineStatus> status() const;
  /// Every histogram (each pipeline's end-to-end latency). Thread-safe.
  [[nodiscard]] std::vector<HistogramSample> histograms() const;
  /// Where the operations HTTP endpoint listens: settings.http.listen of the loaded
  /// configuration, or what setHttpListen() gave; "" when it is off.
  [[nodiscard]] std::string httpListen() const;
  /// Overrides settings.http.listen (`switchyard run --http`); "" keeps the file's.
  void setHttpListen(std::string listen);

  // --- The tap (GET /tap, `switchyard tap`; runtime_tap.hpp) ---------------------------
  /// settings.http.tap of the loaded configuration: whether GET /tap may sample messages.
  [[nodiscard]] bool httpTap() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace switchyard
