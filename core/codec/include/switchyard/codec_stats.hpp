// SPDX-License-Identifier: MIT
//
// Process-wide counts of what the codec parsed and serialised, by kind: the evidence that
// a bridged message is parsed once on entry and serialised once on exit. `switchyard run
// --stats-interval N` prints them (pipeline "", plugin "codec", names codec_parses and
// codec_serialisations, the kind as the label); docs/codec.md lists the kinds.
//
// Counted at the codec's public entry points that read JSON text (one count per call that
// actually reads: a cached tree or an empty "{}" counts nothing) and at those that write
// JSON text for output. Internal calls between them are not counted again.
//
// THREADING: relaxed atomics, no locks; a count is exact, a snapshot of several counts is
// not one instant.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace switchyard::codec {

/// What was parsed.
enum class ParseKind : std::uint8_t {
  Envelope,       ///< fedmsg::parseEnvelope / parseWire / decode: an envelope (frame 1)
  Json,           ///< json::parse / canonicalize: a tree
  Validate,       ///< fedmsg::validateJson: checked, nothing kept
  Body,           ///< codec::parsedBody: the body's tree (first call only)
  Headers,        ///< codec::parsedHeaders: the headers' tree (first call only, not "{}")
  CanonicalScan,  ///< json::scanCanonicalObject called on its own
};
inline constexpr std::size_t kParseKinds = 6;

/// What was serialised.
enum class SerialiseKind : std::uint8_t {
  Envelope,   ///< fedmsg::EnvelopeBuilder::build, fedmsg::assembleWire
  Canonical,  ///< json::writeCanonical / canonical / canonicalize
};
inline constexpr std::size_t kSerialiseKinds = 2;

/// The label of a kind: "envelope", "json", "validate", "body", "headers", "canonical_scan";
/// "envelope", "canonical".
std::string_view kindName(ParseKind k) noexcept;
std::string_view kindName(SerialiseKind k) noexcept;

struct KindCount {
  std::string_view kind;
  std::uint64_t count = 0;
};

struct CodecStats {
  std::array<KindCount, kParseKinds> parses;
  std::array<KindCount, kSerialiseKinds> serialisations;
};

/// The counts since the process started.
CodecStats parseStats() noexcept;

/// Counts one parse / serialisation: for code outside the codec that reads or writes JSON
/// text of a message with a parser of its own.
void countParse(ParseKind k) noexcept;
void countSerialisation(SerialiseKind k) noexcept;

}  // namespace switchyard::codec
