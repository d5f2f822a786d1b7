// SPDX-License-Identifier: MIT
//
// What every fuzz target shares: the libFuzzer entry point's signature and FUZZ_CHECK, which
// reports a broken property and aborts (libFuzzer, and the corpus replay, then keep the
// input that did it). docs/security.md lists the targets and their properties.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size);

namespace syfuzz {

[[noreturn]] inline void fail(const char *what, const char *file, int line) {
  std::fprintf(stderr, "%s:%d: fuzz property broken: %s\n", file, line, what);
  std::abort();
}

inline std::string_view bytes(const std::uint8_t *data, std::size_t size) {
  return {reinterpret_cast<const char *>(data), size};
}

}  // namespace syfuzz

#define FUZZ_CHECK(cond)                                 \
  do {                                                   \
    if (!(cond)) {                                       \
      ::syfuzz::fail(#cond, __FILE__, __LINE__);         \
    }                                                    \
  } while (false)
