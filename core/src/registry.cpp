// SPDX-License-Identifier: MIT
//
// Plugin loading, phase 2 (docs/plugin-abi.md): only when a plugin's schema or factory is
// first needed is its library mapped (Boost.DLL, RTLD_LOCAL|RTLD_NOW), checked to be the
// very file registry_scan.cpp checked, and its two functions resolved. Then its factory
// is created and instantiated. Instances co-own their factory and library
// (PluginDeleter), so a library outlives every object it made.
#include <dlfcn.h>
#include <sys/stat.h>

#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include <boost/dll/shared_library.hpp>
#include <fmt/format.h>

#include "log.hpp"
#include "registry_impl.hpp"

namespace switchyard {

namespace {

bool noDlclose() {
  const char *v = std::getenv("SWITCHYARD_NO_DLCLOSE");
  return v != nullptr && *v != '\0' && std::string_view(v) != "0";
}

using SharedLibrary = boost::dll::shared_library;

}  // namespace

void PluginRegistry::Impl::load(Entry &e) {
  const std::string &name = e.descriptor.name;
  std::shared_ptr<SharedLibrary> lib;
  try {
    // Absolute path only (never a library search); local binding so that plugins cannot
    // shadow each other's symbols; immediate binding so a missing symbol fails here.
    lib = std::make_shared<SharedLibrary>(
        boost::dll::fs::path(e.real_path),
        boost::dll::load_mode::rtld_local | boost::dll::load_mode::rtld_now);
  } catch (const std::exception &ex) {
    throw std::runtime_error(
        fmt::format("cannot load plugin '{}' from {}: {}", name, e.descriptor.path, ex.what()));
  }
  // Narrow the check-then-load window as far as loading by path allows: the mapped
  // library must be the checked inode and carry the checked info record.
  const sy_plugin_info *mapped = nullptr;
  try {
    if (lib->has(SY_SYMBOL_INFO)) {
      mapped = &lib->get<const sy_plugin_info>(SY_SYMBOL_INFO);
    }
  } catch (const std::exception &) {
    mapped = nullptr;
  }
  struct stat st {};
  if (::stat(e.real_path.c_str(), &st) != 0 || !(FileId{st.st_dev, st.st_ino} == e.file_id) ||
      mapped == nullptr || std::memcmp(mapped, &e.info, sizeof e.info) != 0) {
    throw std::runtime_error(fmt::format(
        "plugin '{}': {} changed between its check and its loading; refusing it", name,
        e.descriptor.path));
  }
  sy_plugin_schema_fn *schema_fn = nullptr;
  sy_plugin_create_fn *create_fn = nullptr;
  try {
    schema_fn = &lib->get<sy_plugin_schema_fn>(SY_SYMBOL_SCHEMA);
    create_fn = &lib->get<sy_plugin_create_fn>(SY_SYMBOL_CREATE);
  } catch (const std::exception &ex) {
    throw std::runtime_error(fmt::format("plugin '{}' ({}): cannot resolve its entry points: {}",
                                         name, e.descriptor.path, ex.what()));
  }

  std::vector<KeySpec> schema;
  constexpr std::size_t kMaxKeys = 1024;  // a schema that lost its terminator would run off
  const sy_config_key *keys = schema_fn();
  for (std::size_t i = 0; keys != nullptr && keys[i].name != nullptr; ++i) {
    const sy_config_key &k = keys[i];
    if (i == kMaxKeys) {
      throw std::runtime_error(fmt::format(
          "plugin '{}' has a bad schema: more than {} keys (missing terminator?)", name, kMaxKeys));
    }
    if (k.type < SY_CFG_STRING || k.type > SY_CFG_ANY) {
      throw std::runtime_error(fmt::format(
          "plugin '{}' has a bad schema: key '{}' has unknown type {}", name, k.name, k.type));
    }
    if (std::string_view(k.name).empty() || std::string_view(k.name) == "type") {
      throw std::runtime_error(fmt::format(
          "plugin '{}' has a bad schema: key name '{}' is reserved", name, k.name));
    }
    for (const auto &prev : schema) {
      if (prev.name == k.name) {
        throw std::runtime_error(
            fmt::format("plugin '{}' has a bad schema: key '{}' appears twice", name, k.name));
      }
    }
    KeySpec ks;
    ks.name = k.name;
    ks.type = static_cast<sy_config_type>(k.type);
    ks.required = k.required != 0;
    if (k.default_json != nullptr) {
      ks.default_json = std::string(k.default_json);
    }
    ks.description = k.description != nullptr ? k.description : "";
    ks.secret = k.secret != 0;
    ks.enum_values = sdk::enumValues(k.enum_values);
    if ((k.bounds & SY_BOUND_MIN) != 0) {
      ks.min = k.min;
    }
    if ((k.bounds & SY_BOUND_MAX) != 0) {
      ks.max = k.max;
    }
    schema.push_back(std::move(ks));
  }

  if (noDlclose()) {
    // Mark the library "never unload", so sanitizer and valgrind reports made at exit
    // still resolve the plugin's symbols. This extra handle only carries the flag.
    if (void *h = ::dlopen(e.real_path.c_str(),
                           RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD | RTLD_NODELETE);
        h != nullptr) {
      ::dlclose(h);
    }
  }
  e.schema = std::move(schema);
  e.schema_loaded = true;
  e.create = [create_fn](const CreateArgs &a) -> PluginFactory * { return create_fn(&a); };
  e.library = lib;
  load_order.push_back(lib);
  logging::core()->debug("plugin '{}' loaded from {}", name, e.descriptor.path);
}

PluginRegistry::PluginRegistry() : impl_(std::make_unique<Impl>()) {}
PluginRegistry::~PluginRegistry() = default;

void PluginRegistry::addInProcess(PluginDescriptor descriptor, std::vector<KeySpec> schema,
                                  std::function<PluginFactory *(const CreateArgs &)> create) {
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
  if (!it->second.schema_loaded) {
    impl_->load(it->second);
  }
  return it->second.schema;
}

FactoryPtr PluginRegistry::create(std::string_view name, std::string_view config_json,
                                  std::string_view instance, Logger *logger, Host *host, Status &error,
                                  std::shared_ptr<void> &library, ConfigReport *report) {
  auto it = impl_->entries.find(name);
  if (it == impl_->entries.end()) {
    error = Status::fatal(fmt::format("unknown plugin '{}'", name));
    return nullptr;
  }
  if (!it->second.schema_loaded) {
    try {
      impl_->load(it->second);
    } catch (const std::exception &e) {
      error = Status::fatal(e.what());
      return nullptr;
    }
  }
  CreateArgs args;
  args.config_json = config_json;
  args.instance = instance;
  args.logger = logger;
  args.error = &error;
  args.host = host;
  args.report = report;
  PluginFactory *f = it->second.create(args);
  if (f == nullptr) {
    if (error.isOk()) {
      error = Status::fatal(fmt::format("plugin '{}' failed to create its factory", name));
    }
    return nullptr;
  }
  library = it->second.library;
  // Whoever holds the factory also holds @p library (PluginDeleter, StageInstance).
  return FactoryPtr(f);
}

PluginPtr instantiate(const FactoryPtr &factory, const std::shared_ptr<void> &library,
                      std::string_view instance, std::uint32_t worker, std::uint32_t workers,
                      Status &error) {
  InstanceArgs args;
  args.instance = instance;
  args.worker = worker;
  args.workers = workers;
  args.error = &error;
  Plugin *p = factory->instantiate(args);
  if (p == nullptr && error.isOk()) {
    error = Status::fatal(fmt::format("{}: the plugin failed to create an instance", instance));
  }
  return PluginPtr(p, PluginDeleter{library, p != nullptr ? factory : nullptr});
}

}  // namespace switchyard
