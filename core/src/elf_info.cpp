// SPDX-License-Identifier: MIT
//
// Reads a plugin's info record straight from its ELF file, without dlopen: no code of a
// plugin (not even an ELF constructor) runs before the record passed checkPluginInfo().
// The record is plain data (integers and fixed char arrays), so the bytes in the file are
// exactly what the loaded library would see; there is nothing to relocate.
//
// Every offset and size read from the file is bounds-checked: a hostile or truncated file
// yields an error message, never a crash.
#include <elf.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "registry.hpp"

namespace switchyard {
namespace {

#if defined(__x86_64__)
constexpr Elf64_Half kHostMachine = EM_X86_64;
#elif defined(__aarch64__)
constexpr Elf64_Half kHostMachine = EM_AARCH64;
#elif defined(__powerpc64__)
constexpr Elf64_Half kHostMachine = EM_PPC64;
#elif defined(__s390x__)
constexpr Elf64_Half kHostMachine = EM_S390;
#elif defined(__riscv) && __riscv_xlen == 64
constexpr Elf64_Half kHostMachine = EM_RISCV;
#else
constexpr Elf64_Half kHostMachine = EM_NONE;  // unknown host: machine not checked
#endif

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
constexpr unsigned char kHostData = ELFDATA2LSB;
#else
constexpr unsigned char kHostData = ELFDATA2MSB;
#endif

// Symbol tables and string tables of real plugins are a few KiB; anything this large is
// hostile or corrupt and is refused instead of allocated.
constexpr std::uint64_t kMaxTableBytes = 64u << 20;

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd &) = delete;
  Fd &operator=(const Fd &) = delete;
  ~Fd() {
    if (fd_ >= 0) {
      ::close(fd_);
    }
  }
  [[nodiscard]] int get() const { return fd_; }

 private:
  int fd_;
};

/// Reads exactly @p size bytes at @p offset; false when the file is shorter.
bool readAt(int fd, std::uint64_t offset, void *out, std::size_t size) {
  auto *p = static_cast<char *>(out);
  while (size > 0) {
    ssize_t n = ::pread(fd, p, size, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      return false;
    }
    p += n;
    offset += static_cast<std::uint64_t>(n);
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

/// True when [offset, offset + size) lies inside a file of @p file_size bytes.
bool inFile(std::uint64_t offset, std::uint64_t size, std::uint64_t file_size) {
  return offset <= file_size && size <= file_size - offset;
}

}  // namespace

ElfInfoResult readPluginInfo(const std::string &path) {
  ElfInfoResult r;
  auto fail = [&r](std::string message) {
    r.info.reset();
    r.error = std::move(message);
    return r;
  };

  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
  if (fd.get() < 0) {
    return fail(fmt::format("cannot open: {}", std::strerror(errno)));
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return fail("not a switchyard plugin: not a regular file");
  }
  const auto file_size = static_cast<std::uint64_t>(st.st_size);

  Elf64_Ehdr eh{};
  if (file_size < sizeof eh || !readAt(fd.get(), 0, &eh, sizeof eh) ||
      std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0) {
    return fail("not a switchyard plugin: not an ELF file");
  }
  if (eh.e_ident[EI_CLASS] != ELFCLASS64) {
    return fail("not a switchyard plugin: not a 64-bit ELF file");
  }
  if (eh.e_ident[EI_DATA] != kHostData) {
    return fail("not a switchyard plugin: ELF byte order differs from this host");
  }
  if (eh.e_type != ET_DYN) {
    return fail("not a switchyard plugin: not an ELF shared object");
  }
  if (kHostMachine != EM_NONE && eh.e_machine != kHostMachine) {
    return fail(fmt::format("not a switchyard plugin for this host: ELF machine {} (host {})",
                            eh.e_machine, kHostMachine));
  }

  // Section headers (the dynamic symbol table is found through them).
  if (eh.e_shoff == 0 || eh.e_shentsize != sizeof(Elf64_Shdr)) {
    return fail("not a switchyard plugin: ELF file has no usable section headers");
  }
  std::uint64_t shnum = eh.e_shnum;
  if (shnum == 0) {  // more than SHN_LORESERVE sections: the count sits in section 0
    Elf64_Shdr first{};
    if (!inFile(eh.e_shoff, sizeof first, file_size) ||
        !readAt(fd.get(), eh.e_shoff, &first, sizeof first)) {
      return fail("not a switchyard plugin: malformed ELF section headers");
    }
    shnum = first.sh_size;
  }
  if (shnum == 0 || shnum > kMaxTableBytes / sizeof(Elf64_Shdr) ||
      !inFile(eh.e_shoff, shnum * sizeof(Elf64_Shdr), file_size)) {
    return fail("not a switchyard plugin: malformed ELF section headers");
  }
  std::vector<Elf64_Shdr> sections(shnum);
  if (!readAt(fd.get(), eh.e_shoff, sections.data(), shnum * sizeof(Elf64_Shdr))) {
    return fail("not a switchyard plugin: malformed ELF section headers");
  }

  const Elf64_Shdr *dynsym = nullptr;
  for (const auto &s : sections) {
    if (s.sh_type == SHT_DYNSYM) {
      dynsym = &s;
      break;
    }
  }
  if (dynsym == nullptr) {
    return fail("not a switchyard plugin: no dynamic symbol table");
  }
  if (dynsym->sh_entsize != sizeof(Elf64_Sym) || dynsym->sh_link >= shnum ||
      dynsym->sh_size > kMaxTableBytes || !inFile(dynsym->sh_offset, dynsym->sh_size, file_size)) {
    return fail("not a switchyard plugin: malformed dynamic symbol table");
  }
  const Elf64_Shdr &strsec = sections[dynsym->sh_link];
  if (strsec.sh_type != SHT_STRTAB || strsec.sh_size > kMaxTableBytes ||
      !inFile(strsec.sh_offset, strsec.sh_size, file_size)) {
    return fail("not a switchyard plugin: malformed dynamic string table");
  }
  std::vector<Elf64_Sym> symbols(dynsym->sh_size / sizeof(Elf64_Sym));
  std::vector<char> strtab(strsec.sh_size);
  if (!readAt(fd.get(), dynsym->sh_offset, symbols.data(), symbols.size() * sizeof(Elf64_Sym)) ||
      !readAt(fd.get(), strsec.sh_offset, strtab.data(), strtab.size())) {
    return fail("not a switchyard plugin: unreadable dynamic symbol table");
  }

  const Elf64_Sym *info_sym = nullptr;
  for (std::size_t i = 1; i < symbols.size(); ++i) {  // entry 0 is the null symbol
    const Elf64_Sym &sym = symbols[i];
    if (sym.st_shndx == SHN_UNDEF || ELF64_ST_BIND(sym.st_info) == STB_LOCAL ||
        sym.st_name >= strtab.size()) {
      continue;
    }
    const char *begin = strtab.data() + sym.st_name;
    const void *nul = std::memchr(begin, '\0', strtab.size() - sym.st_name);
    if (nul == nullptr || begin == nul) {
      continue;  // unterminated or empty name: not one of ours
    }
    std::string name(begin, static_cast<const char *>(nul));
    if (name == SY_SYMBOL_INFO) {
      info_sym = &sym;
    }
    const auto type = ELF64_ST_TYPE(sym.st_info);
    if (type == STT_FUNC || type == STT_OBJECT || type == STT_GNU_IFUNC || type == STT_TLS ||
        type == STT_NOTYPE || type == STT_COMMON) {
      r.symbols.push_back(std::move(name));
    }
  }
  if (info_sym == nullptr) {
    return fail("not a switchyard plugin: it does not export " SY_SYMBOL_INFO);
  }
  if (ELF64_ST_TYPE(info_sym->st_info) != STT_OBJECT) {
    return fail("not a switchyard plugin: " SY_SYMBOL_INFO " is not a data object");
  }
  // The fields up to struct_size must be there to read anything at all.
  constexpr std::uint64_t kMinRecord =
      offsetof(sy_plugin_info, struct_size) + sizeof(std::uint32_t);
  if (info_sym->st_size < kMinRecord) {
    return fail(fmt::format("not a switchyard plugin: " SY_SYMBOL_INFO " is only {} bytes",
                            info_sym->st_size));
  }
  if (info_sym->st_shndx >= shnum) {  // SHN_ABS, SHN_COMMON, ...: no bytes in the file
    return fail("not a switchyard plugin: " SY_SYMBOL_INFO " has no data in the file");
  }
  const Elf64_Shdr &sec = sections[info_sym->st_shndx];
  if (sec.sh_type == SHT_NOBITS || info_sym->st_value < sec.sh_addr ||
      info_sym->st_value - sec.sh_addr > sec.sh_size ||
      info_sym->st_size > sec.sh_size - (info_sym->st_value - sec.sh_addr)) {
    return fail("not a switchyard plugin: " SY_SYMBOL_INFO " lies outside its section");
  }
  const std::uint64_t offset = sec.sh_offset + (info_sym->st_value - sec.sh_addr);
  const std::uint64_t wanted = std::min<std::uint64_t>(info_sym->st_size, sizeof(sy_plugin_info));
  sy_plugin_info info{};  // bytes a short (older, smaller) record lacks stay zero
  if (offset < sec.sh_offset || !inFile(offset, wanted, file_size) ||
      !readAt(fd.get(), offset, &info, static_cast<std::size_t>(wanted))) {
    return fail("not a switchyard plugin: " SY_SYMBOL_INFO " lies outside the file");
  }
  if (info.magic == SWITCHYARD_INFO_MAGIC && info.struct_size > info_sym->st_size) {
    return fail(fmt::format(
        "incompatible switchyard plugin: the info record claims {} bytes but the symbol has {}",
        info.struct_size, info_sym->st_size));
  }
  r.info = info;
  r.error.clear();
  return r;
}

}  // namespace switchyard
