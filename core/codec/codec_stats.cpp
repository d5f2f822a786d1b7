// SPDX-License-Identifier: MIT
#include "switchyard/codec_stats.hpp"

#include <atomic>

namespace switchyard::codec {
namespace {

// One cache line per counter: threads counting different kinds do not share a line.
struct alignas(64) Slot {
  std::atomic<std::uint64_t> n{0};
};

Slot g_parses[kParseKinds];
Slot g_serialisations[kSerialiseKinds];

constexpr std::string_view kParseNames[kParseKinds] = {"envelope", "json", "validate",
                                                       "body",     "headers", "canonical_scan"};
constexpr std::string_view kSerialiseNames[kSerialiseKinds] = {"envelope", "canonical"};

}  // namespace

std::string_view kindName(ParseKind k) noexcept { return kParseNames[static_cast<std::size_t>(k)]; }
std::string_view kindName(SerialiseKind k) noexcept { return kSerialiseNames[static_cast<std::size_t>(k)]; }

void countParse(ParseKind k) noexcept {
  g_parses[static_cast<std::size_t>(k)].n.fetch_add(1, std::memory_order_relaxed);
}

void countSerialisation(SerialiseKind k) noexcept {
  g_serialisations[static_cast<std::size_t>(k)].n.fetch_add(1, std::memory_order_relaxed);
}

CodecStats parseStats() noexcept {
  CodecStats s;
  for (std::size_t k = 0; k < kParseKinds; ++k) {
    s.parses[k] = {kParseNames[k], g_parses[k].n.load(std::memory_order_relaxed)};
  }
  for (std::size_t k = 0; k < kSerialiseKinds; ++k) {
    s.serialisations[k] = {kSerialiseNames[k], g_serialisations[k].n.load(std::memory_order_relaxed)};
  }
  return s;
}

}  // namespace switchyard::codec
