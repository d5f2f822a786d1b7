// SPDX-License-Identifier: MIT
//
// Plugin discovery and checking, phase 1 of loading (docs/plugin-abi.md): file name,
// permissions (file, directory, symlink target), then the info record read from the ELF
// file (elf_info.cpp) and checked against this host. No plugin code runs in this phase;
// registry.cpp maps a plugin only when its schema or factory is first needed.
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include <fmt/format.h>

#include "log.hpp"
#include "registry_impl.hpp"

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

std::string modeString(mode_t mode) { return fmt::format("{:04o}", mode & 07777); }

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

}  // namespace

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
    // A plugin of an older major calls into the host through a different C++ interface
    // (ABI 1.x: switchyard_plugin_create() returned the instance, not a PluginFactory).
    return fmt::format("{}: built for ABI {}.{}, this host has ABI {}.{} (major versions must be "
                       "equal; {})",
                       who, info.abi_major, info.abi_minor, SWITCHYARD_ABI_MAJOR,
                       SWITCHYARD_ABI_MINOR,
                       info.abi_major < SWITCHYARD_ABI_MAJOR
                           ? fmt::format("port the plugin to ABI {} and rebuild it, see "
                                         "docs/plugin-abi.md",
                                         SWITCHYARD_ABI_MAJOR)
                           : std::string("rebuild the plugin against this host's headers"));
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

