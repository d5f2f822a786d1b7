// SPDX-License-Identifier: MIT
// Plugin discovery, checking and loading (internal to libswitchyard).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "switchyard/abi.h"
#include "switchyard/engine.hpp"
#include "switchyard/plugin.hpp"

namespace switchyard {

/// A plugin's factory (ABI 2.0), shared by the instances it made.
using FactoryPtr = std::shared_ptr<PluginFactory>;

/// Keeps a plugin instance's factory alive and its library mapped for as long as the
/// instance lives (members are destroyed in reverse order: the factory before the library).
struct PluginDeleter {
  std::shared_ptr<void> library;
  FactoryPtr factory;
  void operator()(Plugin *p) const noexcept { delete p; }
};
using PluginPtr = std::unique_ptr<Plugin, PluginDeleter>;

/// Makes one instance from @p factory. On failure returns nullptr and fills @p error.
PluginPtr instantiate(const FactoryPtr &factory, const std::shared_ptr<void> &library,
                      std::string_view instance, std::uint32_t worker, std::uint32_t workers,
                      Status &error);

/// Everything the core knows about one plugin, before and after its library is mapped.
struct PluginDescriptor {
  sy_plugin_kind kind = SY_KIND_FILTER;
  std::uint32_t flags = 0;
  std::uint16_t abi_major = 0, abi_minor = 0;
  std::string name, version, description, fingerprint;
  std::string path;  ///< the .so file, or "(in-process)"

  [[nodiscard]] bool canAck() const { return (flags & SY_FLAG_CAN_ACK) != 0; }
  [[nodiscard]] bool parallel() const { return (flags & SY_FLAG_PARALLEL) != 0; }
  [[nodiscard]] bool inProcess() const { return path == "(in-process)"; }
};

const char *kindName(sy_plugin_kind kind) noexcept;  // "source", "sink", "filter"

/// A file in the search path that is not a usable plugin, and why.
struct Refusal {
  std::string path;
  std::string reason;
};

/// Name-keyed registry. Files are checked from their ELF info record when scanned; a
/// library is mapped (dlopen) only when its schema or an instance is first needed.
/// THREADING: main thread only (loading happens at start-up).
class PluginRegistry {
 public:
  PluginRegistry();
  ~PluginRegistry();

  /// Scans directories in order for `switchyard-<kind>-<name>.so` files and registers
  /// every file that passes the checks (permissions, ELF info record, ABI version,
  /// fingerprint, file name). Files that fail are remembered as refusals. Two plugins of
  /// one name (also across directories) throw std::runtime_error naming both files.
  void scan(const std::vector<std::string> &directories);

  /// In-process plugins (embedding API). Throws on a duplicate name.
  void addInProcess(PluginDescriptor descriptor, std::vector<KeySpec> schema,
                    std::function<PluginFactory *(const CreateArgs &)> create);

  [[nodiscard]] const PluginDescriptor *find(std::string_view name) const;
  [[nodiscard]] std::vector<const PluginDescriptor *> all() const;  ///< sorted by name
  [[nodiscard]] const std::vector<Refusal> &refusals() const;
  [[nodiscard]] const std::vector<std::string> &directories() const;

  /// Maps the library if needed and returns the schema. Throws std::runtime_error with a
  /// specific message when mapping or resolving fails.
  const std::vector<KeySpec> &schema(std::string_view name);

  /// Creates the plugin's factory from validated configuration JSON. On failure returns
  /// nullptr and fills @p error (Status::key() names the offending key when the plugin said
  /// so). @p library receives the handle that keeps the plugin's library mapped. Every
  /// problem and warning the plugin reports goes to @p report (CreateArgs::report).
  FactoryPtr create(std::string_view name, std::string_view config_json, std::string_view instance,
                    Logger *logger, Host *host, Status &error, std::shared_ptr<void> &library,
                    ConfigReport *report = nullptr);

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

/// The plugin search path: @p cli dirs, then SWITCHYARD_PLUGIN_PATH (if @p use_env), then
/// @p config dirs, then the install dir (if @p use_install_dir). Duplicates removed.
std::vector<std::string> pluginSearchPath(const std::vector<std::string> &cli, bool use_env,
                                          const std::vector<std::string> &config,
                                          bool use_install_dir);

/// The compiled-in install directory of plugins (<libdir>/switchyard/plugins).
std::string installedPluginDir();

/// Reads a plugin's info record from its ELF file without mapping it. Returns an error
/// message when the file is not a Switchyard plugin or the record is unreadable.
struct ElfInfoResult {
  std::optional<sy_plugin_info> info;
  std::vector<std::string> symbols;  ///< exported (defined, global) dynamic symbols
  std::string error;
};
ElfInfoResult readPluginInfo(const std::string &path);

/// Checks a record against this host: magic, struct size, ABI major/minor, fingerprint,
/// kind, non-empty name and version. Returns an empty string when it is acceptable.
std::string checkPluginInfo(const sy_plugin_info &info);

}  // namespace switchyard
