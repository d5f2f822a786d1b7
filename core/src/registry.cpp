// SPDX-License-Identifier: MIT
//
// Plugin discovery, checking and loading. The order matters (docs/plugin-abi.md):
//   1. scan(): file name, permissions (file, directory, symlink target), then the info
//      record read from the ELF file (elf_info.cpp) and checked against this host. No
//      plugin code runs in this phase.
//   2. schema()/create(): only now is the library mapped (Boost.DLL, RTLD_LOCAL|RTLD_NOW),
//      checked to be the same file, and its two functions resolved.
// Instances co-own their library (PluginDeleter), so a library outlives every object it made.
#include "registry.hpp"

#include <dirent.h>
#include <dlfcn.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include <boost/dll/shared_library.hpp>
#include <fmt/format.h>

#include "log.hpp"

namespace switchyard {

const char *kindName(sy_plugin_kind kind) noexcept {
  switch (kind) {
    case SY_KIND_SOURCE: return "source";
    case SY_KIND_SINK: return "sink";
    case SY_KIND_FILTER: return "filter";
  }
  return "unknown";
}

namespace {

/// Identity of a file: the mapped library must be the very file that passed the checks.
struct FileId {
  dev_t dev = 0;
  ino_t ino = 0;
  bool operator==(const FileId &) const = default;
  bool operator<(const FileId &o) const { return dev != o.dev ? dev < o.dev : ino < o.ino; }
};

std::string modeString(mode_t mode) { return fmt::format("{:04o}", mode & 07777); }

/// A fixed-size char array as a string_view, if it holds a NUL terminator.
template <std::size_t N>
std::optional<std::string_view> fixedString(const char (&a)[N]) {
  const void *nul = std::memchr(a, '\0', N);
  if (nul == nullptr) {
    return std::nullopt;
  }
  return std::string_view(a, static_cast<std::size_t>(static_cast<const char *>(nul) - a));
}

std::optional<std::string> realPath(const std::string &path) {
  char *r = ::realpath(path.c_str(), nullptr);
  if (r == nullptr) {
    return std::nullopt;
  }
  std::string out(r);
  std::free(r);  // realpath() allocates with malloc
  return out;
}

std::string parentOf(const std::string &path) {
  auto pos = path.find_last_of('/');
  if (pos == std::string::npos) {
    return ".";
  }
  return pos == 0 ? "/" : path.substr(0, pos);
}

/// Ownership rule for plugin files and their directories: root or the user running us.
std::string ownerProblem(const struct stat &st, const std::string &what) {
  if (st.st_uid != 0 && st.st_uid != ::geteuid()) {
    return fmt::format("{} is owned by uid {}, neither root nor the current user (uid {})", what,
                       st.st_uid, ::geteuid());
  }
  return {};
}

/// Why a (real, absolute) directory must not hold plugins, or "" when it may. Whoever can
/// write to it can swap a plugin file under us; a world-writable ancestor without the
/// sticky bit lets anyone rename the whole subtree away.
std::string directoryProblem(const std::string &real_dir) {
  struct stat st {};
  if (::stat(real_dir.c_str(), &st) != 0) {
    return fmt::format("cannot stat directory {}: {}", real_dir, std::strerror(errno));
  }
  if ((st.st_mode & S_IWOTH) != 0) {
    return fmt::format("directory {} is world-writable (mode {})", real_dir,
                       modeString(st.st_mode));
  }
  if (auto p = ownerProblem(st, "directory " + real_dir); !p.empty()) {
    return p;
  }
  std::string up = real_dir;
  while (up != "/" && up != ".") {
    up = parentOf(up);
    struct stat ast {};
    if (::stat(up.c_str(), &ast) != 0) {
      return fmt::format("cannot stat directory {}: {}", up, std::strerror(errno));
    }
    if ((ast.st_mode & S_IWOTH) != 0 && (ast.st_mode & S_ISVTX) == 0) {
      return fmt::format("ancestor directory {} is world-writable without the sticky bit (mode {})",
                         up, modeString(ast.st_mode));
    }
  }
  return {};
}

/// Splits `switchyard-<kind>-<name>.so`. Returns false for files that do not claim to be
/// plugins (they are ignored); sets @p bad for files that claim to be plugins but whose
/// name is malformed (they are refused).
bool parseFileName(const std::string &file, sy_plugin_kind &kind, std::string &name,
                   std::string &bad) {
  constexpr std::string_view kPrefix = "switchyard-";
  constexpr std::string_view kSuffix = ".so";
  std::string_view f(file);
  if (f.size() <= kPrefix.size() + kSuffix.size() || !f.starts_with(kPrefix) ||
      !f.ends_with(kSuffix)) {
    return false;
  }
  f.remove_prefix(kPrefix.size());
  f.remove_suffix(kSuffix.size());
  struct KindPrefix {
    std::string_view prefix;
    sy_plugin_kind kind;
  };
  for (const auto &k : {KindPrefix{"source-", SY_KIND_SOURCE}, KindPrefix{"sink-", SY_KIND_SINK},
                        KindPrefix{"filter-", SY_KIND_FILTER}}) {
    if (f.starts_with(k.prefix)) {
      f.remove_prefix(k.prefix.size());
      if (f.empty() || f.front() == '.') {
        bad = "file name has an empty or hidden plugin name";
        return true;
      }
      kind = k.kind;
      name = std::string(f);
      return true;
    }
  }
  bad = "file name is not switchyard-<source|sink|filter>-<name>.so";
  return true;
}

bool noDlclose() {
  const char *v = std::getenv("SWITCHYARD_NO_DLCLOSE");
  return v != nullptr && *v != '\0' && std::string_view(v) != "0";
}

using SharedLibrary = boost::dll::shared_library;

}  // namespace

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

std::string PluginRegistry::Impl::check(const std::string &path, const std::string &dir_real,
                                        const std::string &dir_problem, sy_plugin_kind file_kind,
                                        const std::string &file_name, Entry &e) {
  if (!dir_problem.empty()) {
    return "unsafe: " + dir_problem;
  }
  struct stat lst {};
  if (::lstat(path.c_str(), &lst) != 0) {
    return fmt::format("cannot stat: {}", std::strerror(errno));
  }
  auto real = realPath(path);
  if (!real) {
    return S_ISLNK(lst.st_mode) ? std::string("dangling symbolic link")
                                : fmt::format("cannot resolve path: {}", std::strerror(errno));
  }
  // A symlink may lead out of the checked directory: its target's directory must pass too.
  if (std::string target_dir = parentOf(*real); target_dir != dir_real) {
    if (auto p = directoryProblem(target_dir); !p.empty()) {
      return fmt::format("unsafe: symbolic link target {}: {}", *real, p);
    }
  }
  struct stat st {};
  if (::stat(real->c_str(), &st) != 0) {
    return fmt::format("cannot stat {}: {}", *real, std::strerror(errno));
  }
  if (!S_ISREG(st.st_mode)) {
    return "not a regular file";
  }
  if ((st.st_mode & S_IWOTH) != 0) {
    return fmt::format("unsafe: file {} is world-writable (mode {})", *real,
                       modeString(st.st_mode));
  }
  if (auto p = ownerProblem(st, "file " + *real); !p.empty()) {
    return "unsafe: " + p;
  }

  ElfInfoResult elf = readPluginInfo(*real);
  if (!elf.info) {
    return elf.error;
  }
  if (std::string problem = checkPluginInfo(*elf.info); !problem.empty()) {
    return problem;
  }
  const sy_plugin_info &info = *elf.info;
  std::string name(*fixedString(info.name));  // checkPluginInfo() made sure it is terminated
  for (const char *sym : {SY_SYMBOL_SCHEMA, SY_SYMBOL_CREATE}) {
    if (std::find(elf.symbols.begin(), elf.symbols.end(), sym) == elf.symbols.end()) {
      return fmt::format("incompatible switchyard plugin '{}': it does not export {}", name, sym);
    }
  }
  const auto kind = static_cast<sy_plugin_kind>(info.kind);
  if (kind != file_kind || name != file_name) {
    return fmt::format(
        "file name does not match its info record ({} '{}'): the file must be named "
        "switchyard-{}-{}.so",
        kindName(kind), name, kindName(kind), name);
  }

  e.descriptor.kind = kind;
  e.descriptor.flags = info.flags;
  e.descriptor.abi_major = info.abi_major;
  e.descriptor.abi_minor = info.abi_minor;
  e.descriptor.name = name;
  e.descriptor.version = std::string(*fixedString(info.version));
  e.descriptor.description = std::string(*fixedString(info.description));
  e.descriptor.fingerprint = std::string(*fixedString(info.build_fingerprint));
  e.descriptor.path = path;
  e.real_path = *real;
  e.file_id = FileId{st.st_dev, st.st_ino};
  e.info = info;
  return {};
}

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

void PluginRegistry::scan(const std::vector<std::string> &directories) {
  for (const auto &d : directories) {
    impl_->directories.push_back(d);
  }
  // The same file reached twice (a directory listed under two names, a symlink to a file
  // of another listed directory) is one plugin, not a duplicate.
  std::map<FileId, std::string> seen;
  for (const auto &[name, e] : impl_->entries) {
    if (!e.descriptor.inProcess()) {
      seen.emplace(e.file_id, e.descriptor.path);
    }
  }
  for (const auto &dir : directories) {
    struct stat dst {};
    if (::stat(dir.c_str(), &dst) != 0) {
      if (errno == ENOENT) {
        logging::core()->debug("plugin directory {} does not exist", dir);
      } else {
        logging::core()->warn("plugin directory {}: {}", dir, std::strerror(errno));
      }
      continue;
    }
    if (!S_ISDIR(dst.st_mode)) {
      logging::core()->warn("plugin directory {} is not a directory", dir);
      continue;
    }
    std::vector<std::string> files;
    DIR *dp = ::opendir(dir.c_str());
    if (dp == nullptr) {
      logging::core()->warn("plugin directory {}: {}", dir, std::strerror(errno));
      continue;
    }
    while (const dirent *de = ::readdir(dp)) {
      files.emplace_back(de->d_name);
    }
    ::closedir(dp);
    std::sort(files.begin(), files.end());  // a stable order: refusals and errors repeat

    const std::string dir_real = realPath(dir).value_or(dir);
    std::string dir_problem;
    bool dir_checked = false;
    for (const auto &file : files) {
      sy_plugin_kind kind = SY_KIND_FILTER;
      std::string name, bad;
      if (!parseFileName(file, kind, name, bad)) {
        continue;
      }
      std::string path = dir;
      if (path.empty() || path.back() != '/') {
        path += '/';
      }
      path += file;
      if (!bad.empty()) {
        impl_->refuse(path, bad);
        continue;
      }
      if (!dir_checked) {  // judged once, and only when it holds candidates
        dir_problem = directoryProblem(dir_real);
        dir_checked = true;
      }
      Impl::Entry e;
      if (std::string reason = impl_->check(path, dir_real, dir_problem, kind, name, e);
          !reason.empty()) {
        impl_->refuse(path, std::move(reason));
        continue;
      }
      if (auto it = seen.find(e.file_id); it != seen.end()) {
        logging::core()->debug("plugin {} is the same file as {}; skipped", path, it->second);
        continue;
      }
      if (auto it = impl_->entries.find(e.descriptor.name); it != impl_->entries.end()) {
        throw std::runtime_error(fmt::format("two plugins are named '{}': {} and {}",
                                             e.descriptor.name, it->second.descriptor.path, path));
      }
      seen.emplace(e.file_id, path);
      std::string key = e.descriptor.name;
      impl_->entries.emplace(std::move(key), std::move(e));
    }
  }
}

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
                                  std::shared_ptr<void> &library) {
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

std::string checkPluginInfo(const sy_plugin_info &info) {
  if (info.magic != SWITCHYARD_INFO_MAGIC) {
    return fmt::format("not a switchyard plugin: info record magic is 0x{:08x}, expected 0x{:08x}",
                       info.magic, SWITCHYARD_INFO_MAGIC);
  }
  if (info.struct_size < sizeof(sy_plugin_info)) {
    return fmt::format(
        "incompatible switchyard plugin: its info record is {} bytes, ABI {}.{} needs at least {}",
        info.struct_size, SWITCHYARD_ABI_MAJOR, SWITCHYARD_ABI_MINOR, sizeof(sy_plugin_info));
  }
  auto name = fixedString(info.name);
  if (!name || name->empty()) {
    return "incompatible switchyard plugin: its name is empty or not NUL-terminated";
  }
  const std::string who = fmt::format("incompatible switchyard plugin '{}'", *name);
  if (info.abi_major != SWITCHYARD_ABI_MAJOR) {
    return fmt::format("{}: built for ABI {}.{}, this host has ABI {}.{} (major versions must be "
                       "equal; rebuild the plugin)",
                       who, info.abi_major, info.abi_minor, SWITCHYARD_ABI_MAJOR,
                       SWITCHYARD_ABI_MINOR);
  }
  if (info.abi_minor > SWITCHYARD_ABI_MINOR) {
    return fmt::format("{}: built for ABI {}.{}, newer than this host's ABI {}.{} (upgrade "
                       "switchyard or rebuild the plugin)",
                       who, info.abi_major, info.abi_minor, SWITCHYARD_ABI_MAJOR,
                       SWITCHYARD_ABI_MINOR);
  }
  auto fp = fixedString(info.build_fingerprint);
  if (!fp) {
    return who + ": its build fingerprint is not NUL-terminated";
  }
  if (*fp != SWITCHYARD_BUILD_FINGERPRINT) {
    return fmt::format("{}: build fingerprint '{}' differs from this host's '{}' (build the plugin "
                       "with the same compiler, standard library and -std as switchyard)",
                       who, *fp, SWITCHYARD_BUILD_FINGERPRINT);
  }
  if (info.kind != SY_KIND_SOURCE && info.kind != SY_KIND_SINK && info.kind != SY_KIND_FILTER) {
    return fmt::format("{}: unknown kind {}", who, info.kind);
  }
  constexpr std::uint32_t kKnownFlags = SY_FLAG_CAN_ACK | SY_FLAG_PARALLEL;
  if ((info.flags & ~kKnownFlags) != 0) {
    return fmt::format("{}: unknown flags 0x{:x}", who, info.flags & ~kKnownFlags);
  }
  if ((info.flags & SY_FLAG_PARALLEL) != 0 && info.kind != SY_KIND_FILTER) {
    return who + ": SY_FLAG_PARALLEL is only for filters";
  }
  auto version = fixedString(info.version);
  if (!version || version->empty()) {
    return who + ": its version is empty or not NUL-terminated";
  }
  if (!fixedString(info.description)) {
    return who + ": its description is not NUL-terminated";
  }
  return {};
}

}  // namespace switchyard
