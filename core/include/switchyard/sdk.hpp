// SPDX-License-Identifier: MIT
//
// Header-only SDK for plugin authors (docs/writing-a-plugin.md): schema entries with
// allowed values and bounds (sdk::key), a typed view of the validated configuration with
// defaults, enums and ranges (sdk::Config), counters declared beside the schema
// (sdk::CounterSpec, sdk::Counters), and the SWITCHYARD_PLUGIN macro that defines a
// plugin's three exported entry points. The rest of the SDK: switchyard/drop_log.hpp (the
// rate-limited logger), switchyard/backoff.hpp (sdk::Backoff) and switchyard/testkit/
// (MemSource, MemSink, fake contexts and the Harness, for the plugin's own tests).
//
// A plugin names either its instance class (constructed from the Config, once per
// instance: the Config is parsed once and kept by a factory the macro defines) or its own
// factory (a class derived from PluginFactory, constructed from the Config once per place
// the plugin is configured at) that holds what the instances share (ABI 2.0, plugin.hpp).
//
//   constexpr sy_config_key kSchema[] = {
//     switchyard::sdk::key("prefix", SY_CFG_STRING, "\"\"", "Prepended to every topic."),
//     switchyard::sdk::key("case", SY_CFG_STRING, "\"keep\"", "Case of the topic.").oneOf("keep|lower"),
//     switchyard::sdk::kEndOfSchema,
//   };
//   class Prefix final : public switchyard::Filter {
//    public:
//     explicit Prefix(const switchyard::sdk::Config &c) : prefix_(c.str("prefix")) {}
//     switchyard::Verdict process(switchyard::FilterContext &, switchyard::Message &m) noexcept override;
//   };
//   SWITCHYARD_PLUGIN(Prefix, SY_KIND_FILTER, "prefix", "1.0.0", "Prefixes topics", 0, kSchema)
#pragma once

#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <initializer_list>
#include <span>
#include <type_traits>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "switchyard/abi.h"
#include "switchyard/plugin.hpp"

namespace switchyard::sdk {

// --- Schema ------------------------------------------------------------------------------

/// Builds one schema entry (sy_config_key) in a constant expression, with its constraints:
///
///   constexpr sy_config_key kSchema[] = {
///     sdk::key("path", SY_CFG_STRING, nullptr, "File to append to.").required(),
///     sdk::key("format", SY_CFG_STRING, "\"json\"", "Line format.").oneOf("json|text"),
///     sdk::key("fsync_every", SY_CFG_INT, "0", "Sync after N lines (0: never).").range(0, 100000),
///     sdk::key("token", SY_CFG_STRING, "\"\"", "Credential.").secret(),
///     sdk::kEndOfSchema,
///   };
///
/// The positional form `{"path", SY_CFG_STRING, 1, nullptr, "...", 0}` still works (the
/// constraint fields are then zero: none), but GCC's -Wextra warns about the fields it
/// leaves out (-Wmissing-field-initializers); sdk::key() does not.
class key {
 public:
  /// @p default_json is the default's JSON text ("5", "\"abc\"", "true") or nullptr.
  constexpr key(const char *name, sy_config_type type, const char *default_json, const char *description) noexcept
      : k_{name, static_cast<std::uint32_t>(type), 0u, default_json, description, 0u, nullptr, 0u, 0.0, 0.0} {}
  /// Must be given (its default, if any, is unused).
  constexpr key required() const noexcept {
    key c = *this;
    c.k_.required = 1;
    return c;
  }
  /// Never logged or printed.
  constexpr key secret() const noexcept {
    key c = *this;
    c.k_.secret = 1;
    return c;
  }
  /// Allowed values of a string (or of each item of a string list), "a|b|c".
  constexpr key oneOf(const char *values) const noexcept {
    key c = *this;
    c.k_.enum_values = values;
    return c;
  }
  /// Bounds of an integer or a number, inclusive.
  constexpr key range(double min, double max) const noexcept { return atLeast(min).atMost(max); }
  constexpr key atLeast(double min) const noexcept {
    key c = *this;
    c.k_.bounds |= SY_BOUND_MIN;
    c.k_.min = min;
    return c;
  }
  constexpr key atMost(double max) const noexcept {
    key c = *this;
    c.k_.bounds |= SY_BOUND_MAX;
    c.k_.max = max;
    return c;
  }
  constexpr operator sy_config_key() const noexcept { return k_; }  // NOLINT: meant to convert

 private:
  sy_config_key k_;
};

/// The entry that ends a schema array.
inline constexpr sy_config_key kEndOfSchema{nullptr, 0u, 0u, nullptr, nullptr, 0u, nullptr, 0u, 0.0, 0.0};

/// The values of an sy_config_key's enum_values ("a|b|c" -> {"a", "b", "c"}); empty for null.
inline std::vector<std::string> enumValues(const char *values) {
  std::vector<std::string> out;
  if (values == nullptr) {
    return out;
  }
  std::string_view rest(values);
  while (true) {
    auto bar = rest.find('|');
    out.emplace_back(rest.substr(0, bar));
    if (bar == std::string_view::npos) {
      break;
    }
    rest.remove_prefix(bar + 1);
  }
  return out;
}

// --- Configuration ------------------------------------------------------------------------

/// Thrown by Config accessors and plugin constructors for a bad value; the SDK turns it
/// into a Status that names the key, so the core can point at its file:line:column.
class ConfigError : public std::runtime_error {
 public:
  ConfigError(std::string key, const std::string &message)
      : std::runtime_error(message), key_(std::move(key)) {}
  [[nodiscard]] const std::string &key() const noexcept { return key_; }

 private:
  std::string key_;
};

/// Read-only view of a plugin's configuration. The core already checked every key against
/// the schema and filled in defaults, so accessors only fail for keys outside the schema
/// or values a plugin checks further.
///
/// Reporting problems: an accessor (or the plugin) throwing ConfigError stops the
/// constructor at the first problem. To report them all in one `switchyard check` run,
/// record each with problem(key, message) and go on; warning(key, message) records a
/// setting that works but is probably a mistake. After the constructor (of the instance
/// class or the factory) the SDK hands them to the core (CreateArgs::report), which points
/// each at its key's file:line:column; any problem fails the load. collect() runs a piece
/// of the constructor and turns a ConfigError it throws into a problem:
///
///   explicit Tail(const sdk::Config &c) {
///     c.collect([&] { mode_ = c.oneOf<Mode>("mode", {{"fast", Mode::Fast}, {"safe", Mode::Safe}}); });
///     if (c.str("cert_file").empty() != c.str("key_file").empty())
///       c.problem("key_file", "cert_file and key_file go together: set both or neither");
///     if (!c.boolean("verify"))
///       c.warning("verify", "peers are not verified: anyone can send; set verify: true");
///   }
///
/// THREADING: problem(), warning() and collect() on the constructing (loading) thread only.
class Config {
 public:
  /// One recorded problem or warning, about @p key ("" when about the whole entry).
  struct Problem {
    std::string key;
    std::string message;
  };
  Config(std::string_view json, Logger *logger, std::string instance, Host *host = nullptr)
      : logger_(logger), instance_(std::move(instance)), host_(host) {
    doc_.Parse(json.data(), json.size());
    if (doc_.HasParseError() || !doc_.IsObject()) {
      throw ConfigError({}, "internal error: plugin configuration is not a JSON object");
    }
  }
  [[nodiscard]] bool has(const char *key) const {
    auto it = doc_.FindMember(key);
    return it != doc_.MemberEnd() && !it->value.IsNull();
  }
  [[nodiscard]] const rapidjson::Value &value(const char *key) const {
    auto it = doc_.FindMember(key);
    if (it == doc_.MemberEnd()) {
      throw ConfigError(key, std::string("missing key '") + key + "'");
    }
    return it->value;
  }
  [[nodiscard]] std::string str(const char *key) const {
    const auto &v = value(key);
    if (!v.IsString()) {
      throw ConfigError(key, std::string("'") + key + "' must be a string");
    }
    return {v.GetString(), v.GetStringLength()};
  }
  [[nodiscard]] std::int64_t integer(const char *key) const {
    const auto &v = value(key);
    if (!v.IsInt64()) {
      throw ConfigError(key, std::string("'") + key + "' must be an integer");
    }
    return v.GetInt64();
  }
  [[nodiscard]] double number(const char *key) const {
    const auto &v = value(key);
    if (!v.IsNumber()) {
      throw ConfigError(key, std::string("'") + key + "' must be a number");
    }
    return v.GetDouble();
  }
  [[nodiscard]] bool boolean(const char *key) const {
    const auto &v = value(key);
    if (!v.IsBool()) {
      throw ConfigError(key, std::string("'") + key + "' must be true or false");
    }
    return v.GetBool();
  }
  [[nodiscard]] std::vector<std::string> strings(const char *key) const {
    const auto &v = value(key);
    std::vector<std::string> out;
    if (v.IsString()) {
      out.emplace_back(v.GetString(), v.GetStringLength());
      return out;
    }
    if (!v.IsArray()) {
      throw ConfigError(key, std::string("'") + key + "' must be a list of strings");
    }
    for (const auto &e : v.GetArray()) {
      if (!e.IsString()) {
        throw ConfigError(key, std::string("'") + key + "' must be a list of strings");
      }
      out.emplace_back(e.GetString(), e.GetStringLength());
    }
    return out;
  }

  // With a fallback, for keys the schema gives no default (absent or null: the fallback).
  [[nodiscard]] std::string str(const char *key, std::string_view fallback) const {
    return has(key) ? str(key) : std::string(fallback);
  }
  [[nodiscard]] std::int64_t integer(const char *key, std::int64_t fallback) const {
    return has(key) ? integer(key) : fallback;
  }
  [[nodiscard]] double number(const char *key, double fallback) const { return has(key) ? number(key) : fallback; }
  [[nodiscard]] bool boolean(const char *key, bool fallback) const { return has(key) ? boolean(key) : fallback; }

  /// An integer within [@p min, @p max] (the core checks a schema's own bounds already;
  /// this is for bounds that depend on other keys, or a schema without them).
  [[nodiscard]] std::int64_t integer(const char *key, std::int64_t min, std::int64_t max) const {
    std::int64_t v = integer(key);
    if (v < min || v > max) {
      throw ConfigError(key, fmt::format("'{}' must be between {} and {}, got {}", key, min, max, v));
    }
    return v;
  }
  [[nodiscard]] double number(const char *key, double min, double max) const {
    double v = number(key);
    if (!(v >= min && v <= max)) {
      throw ConfigError(key, fmt::format("'{}' must be between {} and {}, got {}", key, min, max, v));
    }
    return v;
  }
  /// A string that must be one of @p allowed.
  [[nodiscard]] std::string oneOf(const char *key, std::initializer_list<std::string_view> allowed) const {
    std::string v = str(key);
    std::string names;
    for (auto a : allowed) {
      if (v == a) {
        return v;
      }
      names += names.empty() ? std::string(a) : ", " + std::string(a);
    }
    throw ConfigError(key, fmt::format("'{}' must be one of {}, got '{}'", key, names, v));
  }
  /// A string mapped to a value (an enum): `c.oneOf<Mode>("mode", {{"fast", Mode::Fast}, ...})`.
  template <typename E>
  [[nodiscard]] E oneOf(const char *key, std::initializer_list<std::pair<std::string_view, E>> allowed) const {
    std::string v = str(key);
    std::string names;
    for (const auto &[name, value] : allowed) {
      if (v == name) {
        return value;
      }
      names += names.empty() ? std::string(name) : ", " + std::string(name);
    }
    throw ConfigError(key, fmt::format("'{}' must be one of {}, got '{}'", key, names, v));
  }
  /// A duration given in seconds (an integer or a fraction, at least 0), in milliseconds.
  [[nodiscard]] std::chrono::milliseconds seconds(const char *key) const {
    double s = number(key);
    if (!(s >= 0) || s > 1e9) {
      throw ConfigError(key, fmt::format("'{}' must be a number of seconds from 0 to 1e9, got {}", key, s));
    }
    return std::chrono::milliseconds(static_cast<std::int64_t>(std::llround(s * 1000)));
  }

  /// JSON text of any value (maps and lists the plugin parses itself).
  [[nodiscard]] std::string json(const char *key) const {
    rapidjson::StringBuffer sb;
    rapidjson::Writer<rapidjson::StringBuffer> w(sb);
    value(key).Accept(w);
    return {sb.GetString(), sb.GetSize()};
  }
  [[nodiscard]] const rapidjson::Document &document() const noexcept { return doc_; }
  /// May be null in tests; prefer the context's logger once started.
  [[nodiscard]] Logger *logger() const noexcept { return logger_; }
  [[nodiscard]] const std::string &instance() const noexcept { return instance_; }
  /// The host's shared services; null only in unit tests that pass none.
  [[nodiscard]] Host *host() const noexcept { return host_; }

  /// Records a value the plugin cannot work with, about @p key (a top-level key, or a path
  /// into it: "tls.ca_file", "bindings[1].exchange"), and lets the constructor go on to
  /// find the next one. The load fails after the constructor returns.
  void problem(std::string key, std::string message) const {
    for (const auto &p : problems_) {
      if (p.key == key && p.message == message) {
        return;
      }
    }
    problems_.push_back({std::move(key), std::move(message)});
  }
  /// Records a setting that works but is probably a mistake; say how to fix it. Each
  /// distinct warning is reported once, however many instances are made.
  void warning(std::string key, std::string message) const {
    for (const auto &w : warnings_) {
      if (w.key == key && w.message == message) {
        return;
      }
    }
    warnings_.push_back({std::move(key), std::move(message)});
  }
  /// Runs @p f; a ConfigError it throws becomes a problem(). True when it threw none.
  template <typename F>
  bool collect(F &&f) const {
    try {
      std::forward<F>(f)();
      return true;
    } catch (const ConfigError &e) {
      problem(e.key(), e.what());
      return false;
    }
  }
  [[nodiscard]] const std::vector<Problem> &problems() const noexcept { return problems_; }
  [[nodiscard]] const std::vector<Problem> &warnings() const noexcept { return warnings_; }

  /// Hands what was recorded since the last call to the host: warnings to @p report (or,
  /// without one, to the logger); problems to @p report and, the first of them, to
  /// @p error (for hosts without a report). True when no problem was ever recorded.
  bool deliver(ConfigReport *report, Status *error) const noexcept {
    try {
      for (; warnings_sent_ < warnings_.size(); ++warnings_sent_) {
        const auto &w = warnings_[warnings_sent_];
        if (report != nullptr) {
          report->warning(w.key, w.message);
        } else if (logger_ != nullptr) {
          logger_->warn("{}: {}{}{}", instance_, w.key, w.key.empty() ? "" : ": ", w.message);
        }
      }
      for (; problems_sent_ < problems_.size(); ++problems_sent_) {
        const auto &p = problems_[problems_sent_];
        if (report != nullptr) {
          report->error(p.key, p.message);
        }
      }
      if (!problems_.empty() && error != nullptr) {
        const auto &first = problems_.front();
        const std::size_t more = problems_.size() - 1;
        *error = Status::fatal(more == 0 ? first.message
                                         : fmt::format("{} (and {} more problem{})", first.message, more,
                                                       more == 1 ? "" : "s"),
                               first.key);
      }
    } catch (...) {  // out of memory: the load fails anyway
      if (error != nullptr) {
        *error = Status::fatal("out of memory while reporting configuration problems");
      }
      return false;
    }
    return problems_.empty();
  }

 private:
  rapidjson::Document doc_;
  Logger *logger_;
  std::string instance_;
  Host *host_;
  mutable std::vector<Problem> problems_;
  mutable std::vector<Problem> warnings_;
  mutable std::size_t problems_sent_ = 0;
  mutable std::size_t warnings_sent_ = 0;
};

/// One counter of a plugin, declared beside its schema:
///
///   enum : std::size_t { kWritten, kFailed };
///   constexpr sdk::CounterSpec kCounters[] = {
///       {"lines_written", "Lines appended to the file."},
///       {"write_failed", "Writes that failed (the message was retried)."},
///   };
///
/// The core reports each as `NAME{pipeline, plugin}` (with `reason=LABEL` when a label is
/// given), like the counters PluginContext::counter() returns.
struct CounterSpec {
  const char *name;
  const char *help;
  const char *label = nullptr;
};

/// An instance's counters from their CounterSpec array: attach(ctx) in start() looks every
/// one up once; then counters[kWritten].add() costs one atomic add. Before attach() (in a
/// unit test that never starts the instance) the counters count into local storage.
/// THREADING: attach() on the instance's thread; the counters themselves are thread-safe.
class Counters {
 public:
  template <std::size_t N>
  explicit Counters(const CounterSpec (&specs)[N]) : Counters(std::span<const CounterSpec>(specs, N)) {}
  explicit Counters(std::span<const CounterSpec> specs)
      : specs_(specs), local_(std::make_unique<Counter[]>(specs.size())), refs_(specs.size()) {
    for (std::size_t i = 0; i < specs_.size(); ++i) {
      refs_[i] = &local_[i];
    }
  }
  /// Looks every counter up in @p ctx (call from start(); references stay valid for the
  /// instance's life).
  void attach(PluginContext &ctx) noexcept {
    for (std::size_t i = 0; i < specs_.size(); ++i) {
      std::string_view label = specs_[i].label != nullptr ? specs_[i].label : std::string_view();
      refs_[i] = &ctx.counter(specs_[i].name, label);
    }
  }
  [[nodiscard]] Counter &operator[](std::size_t i) const noexcept { return *refs_[i]; }
  /// By name (a linear search: for tests and rare paths; use the index on hot paths).
  [[nodiscard]] Counter *find(std::string_view name) const noexcept {
    for (std::size_t i = 0; i < specs_.size(); ++i) {
      if (name == specs_[i].name) {
        return refs_[i];
      }
    }
    return nullptr;
  }
  [[nodiscard]] std::span<const CounterSpec> specs() const noexcept { return specs_; }

 private:
  std::span<const CounterSpec> specs_;
  std::unique_ptr<Counter[]> local_;
  std::vector<Counter *> refs_;
};

/// Runs @p make (which returns a new object) behind the exception barrier: no exception
/// leaves the .so; a ConfigError becomes a Status naming its key.
template <typename Make>
auto barrier(Status *error, Make &&make) noexcept -> decltype(make()) {
  try {
    return make();
  } catch (const ConfigError &e) {
    if (error != nullptr) {
      *error = Status::fatal(e.what(), e.key());
    }
  } catch (const std::exception &e) {
    if (error != nullptr) {
      *error = Status::fatal(e.what());
    }
  } catch (...) {
    if (error != nullptr) {
      *error = Status::fatal("unknown exception in plugin constructor");
    }
  }
  return nullptr;
}

/// Runs @p make (which constructs an object from @p config) behind the exception barrier,
/// then delivers what the constructor recorded (Config::problem(), Config::warning(); a
/// thrown ConfigError counts as one more problem) to @p report and @p error. Returns the
/// object, or null (the object deleted) when a problem was recorded or thrown.
template <typename Make>
auto construct(const Config &config, ConfigReport *report, Status *error, Make &&make) noexcept
    -> decltype(make()) {
  using Ptr = decltype(make());
  Ptr made = nullptr;
  bool thrown = false;
  try {
    made = make();
  } catch (const ConfigError &e) {
    thrown = true;
    try {
      config.problem(e.key(), e.what());
    } catch (...) {
    }
  } catch (const std::exception &e) {
    thrown = true;
    try {
      config.problem({}, e.what());
    } catch (...) {
    }
  } catch (...) {
    thrown = true;
    try {
      config.problem({}, "unknown exception in plugin constructor");
    } catch (...) {
    }
  }
  bool clean = config.deliver(report, error) && !thrown;
  if (!clean) {
    delete made;
    if (error != nullptr && error->isOk()) {
      *error = Status::fatal("the plugin's constructor failed");
    }
    return nullptr;
  }
  return made;
}

/// The factory SWITCHYARD_PLUGIN defines for a plugin that names its instance class: keeps
/// the parsed Config and constructs one T from it per instance. The first instance is made
/// with the factory, so that a bad value is reported when the configuration is loaded.
template <typename T>
class PerInstanceFactory final : public PluginFactory {
 public:
  PerInstanceFactory(std::shared_ptr<const Config> config, std::unique_ptr<T> first)
      : config_(std::move(config)), first_(std::move(first)) {}
  Plugin *instantiate(const InstanceArgs &args) noexcept override {
    if (first_) {
      return first_.release();
    }
    // Further instances: a problem is the same as the first instance's, which passed, so
    // anything new fails this instance only; a repeated warning is not reported again.
    return construct(*config_, nullptr, args.error, [&]() -> Plugin * { return new T(*config_); });
  }

 private:
  std::shared_ptr<const Config> config_;
  std::unique_ptr<T> first_;  ///< after config_: destroyed before the Config it was made from
};

/// switchyard_plugin_create() of SWITCHYARD_PLUGIN: parses the configuration once and
/// makes the plugin's factory (T itself when T derives from PluginFactory), then reports
/// every problem and warning the constructor recorded (CreateArgs::report).
template <typename T>
PluginFactory *createFactory(const CreateArgs *args) noexcept {
  if (args == nullptr || args->struct_size < sizeof(CreateArgs)) {
    return nullptr;
  }
  std::shared_ptr<const Config> config = barrier(args->error, [&]() -> std::shared_ptr<const Config> {
    return std::make_shared<const Config>(args->config_json, args->logger, std::string(args->instance),
                                          args->host);
  });
  if (!config) {
    return nullptr;
  }
  if constexpr (std::is_base_of_v<PluginFactory, T>) {
    return construct(*config, args->report, args->error, [&]() -> PluginFactory * { return new T(*config); });
  } else {
    T *first = construct(*config, args->report, args->error, [&]() -> T * { return new T(*config); });
    if (first == nullptr) {
      return nullptr;
    }
    return barrier(args->error, [&]() -> PluginFactory * {
      return new PerInstanceFactory<T>(config, std::unique_ptr<T>(first));
    });
  }
}

}  // namespace switchyard::sdk

#define SY_EXPORT __attribute__((visibility("default")))

// Declarations of the entry points, so that SWITCHYARD_PLUGIN's definitions match them.
extern "C" {
SY_EXPORT extern const sy_plugin_info switchyard_plugin_info;
SY_EXPORT const sy_config_key *switchyard_plugin_schema() noexcept;
SY_EXPORT switchyard::PluginFactory *switchyard_plugin_create(const switchyard::CreateArgs *args) noexcept;
}

/// Defines the three exported entry points of a plugin. Use once per plugin, at namespace
/// scope. KIND is SY_KIND_SOURCE, SY_KIND_SINK or SY_KIND_FILTER; FLAGS is 0,
/// SY_FLAG_CAN_ACK (sources, sinks) or SY_FLAG_PARALLEL (filters, see abi.h); SCHEMA is a `const sy_config_key[]` ending with a null name.
/// CLASS needs a constructor taking `const switchyard::sdk::Config &`; it is either the
/// instance class or a factory (derived from switchyard::PluginFactory).
#define SWITCHYARD_PLUGIN(CLASS, KIND, NAME, VERSION, DESCRIPTION, FLAGS, SCHEMA)            \
  extern "C" SY_EXPORT const sy_plugin_info switchyard_plugin_info = {                       \
      SWITCHYARD_INFO_MAGIC, sizeof(sy_plugin_info), SWITCHYARD_ABI_MAJOR,                   \
      SWITCHYARD_ABI_MINOR,  (KIND),                 (FLAGS),                                \
      0u,                    NAME,                   VERSION,                                \
      DESCRIPTION,           SWITCHYARD_BUILD_FINGERPRINT};                                  \
  extern "C" SY_EXPORT const sy_config_key *switchyard_plugin_schema() noexcept {            \
    return (SCHEMA);                                                                         \
  }                                                                                          \
  extern "C" SY_EXPORT switchyard::PluginFactory *switchyard_plugin_create(                  \
      const switchyard::CreateArgs *args) noexcept {                                         \
    return switchyard::sdk::createFactory<CLASS>(args);                                      \
  }
