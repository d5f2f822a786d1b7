// SPDX-License-Identifier: MIT
#include "registry.hpp"

#include <algorithm>
#include <cstdlib>
#include <stdexcept>

#include <fmt/format.h>

namespace switchyard {

const char *kindName(sy_plugin_kind kind) noexcept {
  switch (kind) {
    case SY_KIND_SOURCE: return "source";
    case SY_KIND_SINK: return "sink";
    case SY_KIND_FILTER: return "filter";
  }
  return "unknown";
}

struct PluginRegistry::Impl {
  struct Entry {
    PluginDescriptor descriptor;
    bool schema_loaded = false;
    std::vector<KeySpec> schema;
    std::function<Plugin *(const CreateArgs &)> create;
    std::shared_ptr<void> library;
  };
  std::map<std::string, Entry, std::less<>> entries;
  std::vector<Refusal> refusals;
  std::vector<std::string> directories;
};

PluginRegistry::PluginRegistry() : impl_(std::make_unique<Impl>()) {}
PluginRegistry::~PluginRegistry() = default;

void PluginRegistry::scan(const std::vector<std::string> &directories) {
  impl_->directories = directories;
  // File discovery lands with the loader (ELF check, Boost.DLL); see docs/plugin-abi.md.
}

void PluginRegistry::addInProcess(PluginDescriptor descriptor, std::vector<KeySpec> schema,
                                  std::function<Plugin *(const CreateArgs &)> create) {
  descriptor.path = "(in-process)";
  if (auto it = impl_->entries.find(descriptor.name); it != impl_->entries.end()) {
    throw std::runtime_error(fmt::format("two plugins are named '{}': {} and {}", descriptor.name,
                                         it->second.descriptor.path, descriptor.path));
  }
  Impl::Entry e;
  e.descriptor = std::move(descriptor);
  e.schema_loaded = true;
  e.schema = std::move(schema);
  e.create = std::move(create);
  std::string name = e.descriptor.name;
  impl_->entries.emplace(std::move(name), std::move(e));
}

const PluginDescriptor *PluginRegistry::find(std::string_view name) const {
  auto it = impl_->entries.find(name);
  return it == impl_->entries.end() ? nullptr : &it->second.descriptor;
}

std::vector<const PluginDescriptor *> PluginRegistry::all() const {
  std::vector<const PluginDescriptor *> out;
  for (const auto &[name, e] : impl_->entries) {
    out.push_back(&e.descriptor);
  }
  return out;
}

const std::vector<Refusal> &PluginRegistry::refusals() const { return impl_->refusals; }
const std::vector<std::string> &PluginRegistry::directories() const { return impl_->directories; }

const std::vector<KeySpec> &PluginRegistry::schema(std::string_view name) {
  auto it = impl_->entries.find(name);
  if (it == impl_->entries.end()) {
    throw std::runtime_error(fmt::format("unknown plugin '{}'", name));
  }
  return it->second.schema;
}

PluginPtr PluginRegistry::create(std::string_view name, std::string_view config_json,
                                 std::string_view instance, Logger *logger, Status &error) {
  auto it = impl_->entries.find(name);
  if (it == impl_->entries.end()) {
    error = Status::fatal(fmt::format("unknown plugin '{}'", name));
    return PluginPtr(nullptr, PluginDeleter{});
  }
  CreateArgs args;
  args.config_json = config_json;
  args.instance = instance;
  args.logger = logger;
  args.error = &error;
  Plugin *p = it->second.create(args);
  if (p == nullptr && error.isOk()) {
    error = Status::fatal(fmt::format("plugin '{}' failed to create an instance", name));
  }
  return PluginPtr(p, PluginDeleter{it->second.library});
}

std::string installedPluginDir() { return SWITCHYARD_PLUGIN_DIR; }

std::vector<std::string> pluginSearchPath(const std::vector<std::string> &cli, bool use_env,
                                          const std::vector<std::string> &config,
                                          bool use_install_dir) {
  std::vector<std::string> out;
  auto add = [&out](const std::string &d) {
    if (!d.empty() && std::find(out.begin(), out.end(), d) == out.end()) {
      out.push_back(d);
    }
  };
  for (const auto &d : cli) {
    add(d);
  }
  if (use_env) {
    if (const char *env = std::getenv("SWITCHYARD_PLUGIN_PATH"); env != nullptr) {
      std::string_view s(env);
      while (!s.empty()) {
        auto pos = s.find(':');
        add(std::string(s.substr(0, pos)));
        if (pos == std::string_view::npos) {
          break;
        }
        s.remove_prefix(pos + 1);
      }
    }
  }
  for (const auto &d : config) {
    add(d);
  }
  if (use_install_dir) {
    add(installedPluginDir());
  }
  return out;
}

ElfInfoResult readPluginInfo(const std::string &path) {
  ElfInfoResult r;
  r.error = "not implemented: " + path;
  return r;
}

std::string checkPluginInfo(const sy_plugin_info &info) {
  (void)info;
  return {};
}

}  // namespace switchyard
