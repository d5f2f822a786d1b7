// SPDX-License-Identifier: MIT
//
// Header-only SDK for plugin authors: a typed view of the validated configuration and the
// SWITCHYARD_PLUGIN macro that defines a plugin's three exported entry points.
//
// A plugin names either its instance class (constructed from the Config, once per
// instance: the Config is parsed once and kept by a factory the macro defines) or its own
// factory (a class derived from PluginFactory, constructed from the Config once per place
// the plugin is configured at) that holds what the instances share (ABI 2.0, plugin.hpp).
//
//   static const sy_config_key kSchema[] = {
//     {"prefix", SY_CFG_STRING, 0, "\"\"", "Prepended to every topic.", 0},
//     {nullptr, 0, 0, nullptr, nullptr, 0},
//   };
//   class Prefix final : public switchyard::Filter {
//    public:
//     explicit Prefix(const switchyard::sdk::Config &c) : prefix_(c.str("prefix")) {}
//     switchyard::Verdict process(switchyard::FilterContext &, switchyard::Message &m) noexcept override;
//   };
//   SWITCHYARD_PLUGIN(Prefix, SY_KIND_FILTER, "prefix", "1.0.0", "Prefixes topics", 0, kSchema)
#pragma once

#include <cstdint>
#include <exception>
#include <type_traits>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "switchyard/abi.h"
#include "switchyard/plugin.hpp"

namespace switchyard::sdk {

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
class Config {
 public:
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

 private:
  rapidjson::Document doc_;
  Logger *logger_;
  std::string instance_;
  Host *host_;
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

/// The factory SWITCHYARD_PLUGIN defines for a plugin that names its instance class: keeps
/// the parsed Config and constructs one T from it per instance. The first instance is made
/// with the factory, so that a bad value is reported when the configuration is loaded.
template <typename T>
class PerInstanceFactory final : public PluginFactory {
 public:
  explicit PerInstanceFactory(std::unique_ptr<Config> config)
      : config_(std::move(config)), first_(std::make_unique<T>(*config_)) {}
  Plugin *instantiate(const InstanceArgs &args) noexcept override {
    if (first_) {
      return first_.release();
    }
    return barrier(args.error, [&]() -> Plugin * { return new T(*config_); });
  }

 private:
  std::unique_ptr<Config> config_;
  std::unique_ptr<T> first_;
};

/// switchyard_plugin_create() of SWITCHYARD_PLUGIN: parses the configuration once and
/// makes the plugin's factory (T itself when T derives from PluginFactory).
template <typename T>
PluginFactory *createFactory(const CreateArgs *args) noexcept {
  if (args == nullptr || args->struct_size < sizeof(CreateArgs)) {
    return nullptr;
  }
  return barrier(args->error, [&]() -> PluginFactory * {
    auto config = std::make_unique<Config>(args->config_json, args->logger, std::string(args->instance),
                                           args->host);
    if constexpr (std::is_base_of_v<PluginFactory, T>) {
      return new T(*config);
    } else {
      return new PerInstanceFactory<T>(std::move(config));
    }
  });
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
