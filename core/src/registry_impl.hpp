// SPDX-License-Identifier: MIT
// What registry_scan.cpp (finding and checking plugin files) and registry.cpp (mapping
// them and calling their entry points) share (internal).
#pragma once

#include <sys/types.h>

#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "log.hpp"
#include "registry.hpp"

namespace switchyard {

/// Identity of a file: the mapped library must be the very file that passed the checks.
struct FileId {
  dev_t dev = 0;
  ino_t ino = 0;
  bool operator==(const FileId &) const = default;
  bool operator<(const FileId &o) const { return dev != o.dev ? dev < o.dev : ino < o.ino; }
};

/// A fixed-size char array as a string_view, if it holds a NUL terminator.
template <std::size_t N>
std::optional<std::string_view> fixedString(const char (&a)[N]) {
  const void *nul = std::memchr(a, '\0', N);
  if (nul == nullptr) {
    return std::nullopt;
  }
  return std::string_view(a, static_cast<std::size_t>(static_cast<const char *>(nul) - a));
}

struct PluginRegistry::Impl {
  struct Entry {
    PluginDescriptor descriptor;
    bool schema_loaded = false;
    std::vector<KeySpec> schema;
    std::function<PluginFactory *(const CreateArgs &)> create;
    std::shared_ptr<void> library;
    // File plugins only: what passed the checks, compared again once mapped.
    std::string real_path;
    FileId file_id;
    sy_plugin_info info{};
  };
  std::map<std::string, Entry, std::less<>> entries;
  std::vector<Refusal> refusals;
  std::vector<std::string> directories;
  std::vector<std::shared_ptr<void>> load_order;  ///< libraries in the order they were mapped

  Impl() = default;
  Impl(const Impl &) = delete;
  Impl &operator=(const Impl &) = delete;
  ~Impl() {
    // Live instances co-own their library (PluginDeleter) and keep it mapped; the rest
    // unload here, in reverse load order.
    entries.clear();
    while (!load_order.empty()) {
      load_order.pop_back();
    }
  }

  void refuse(const std::string &path, std::string reason) {
    logging::core()->warn("plugin {} refused: {}", path, reason);
    refusals.push_back({path, std::move(reason)});
  }

  /// Checks one candidate file; returns the refusal reason, or "" and fills @p e.
  std::string check(const std::string &path, const std::string &dir_real,
                    const std::string &dir_problem, sy_plugin_kind file_kind,
                    const std::string &file_name, Entry &e);

  /// Maps a checked file plugin (first schema()/create()). Throws std::runtime_error.
  void load(Entry &e);
};

}  // namespace switchyard
