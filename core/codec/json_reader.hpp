// SPDX-License-Identifier: MIT
//
// Internal to libswitchyard-codec (not installed): the ONE way the codec reads JSON text
// with RapidJSON. Every reader (the envelope decode and validateJson() in envelope_decode.cpp,
// json::parse() in canonical_json.cpp) goes through readJson(), so they share the same
// rules and the same refusal vocabulary (docs/codec.md):
//   - the size limit (oversize), checked by checkSize() before anything is read;
//   - a NUL byte anywhere is invalid_json (RapidJSON would take it for the end of input),
//     or invalid_utf8 when the text is not UTF-8 either;
//   - UTF-8 per RFC 3629 (invalid_utf8). Text isValidUtf8() accepts is read without
//     RapidJSON's per-code-point encoding check (same rules, far slower); other text is read
//     WITH it, so that every refusal keeps the reason and offset it had;
//   - RapidJSON's iterative reader (no recursion: hostile nesting cannot overflow the
//     stack), numbers delivered as text (never rounded);
//   - from a NUL-terminated copy through rapidjson::StringStream: RapidJSON copies the
//     unescaped runs of a string 16 bytes at a time (SSE2, enabled for this library in
//     meson.build) only from that stream, where a MemoryStream goes byte by byte. Two
//     exceptions read from a MemoryStream: text with a byte 0x1A..0x1F, which RapidJSON
//     1.1's SIMD scan takes for ordinary string content (it compares with 0x19) where the
//     JSON grammar refuses it, and a handler that needs the reader's position while it
//     reads (the envelope decode's slow path), since RapidJSON reads a StringStream
//     through a local copy of it;
//   - the handler's own rules (depth, duplicate keys, number spellings) win over a syntax
//     error found at the same point: the handler sets `bad` (a reason) and `bad_detail`.
#pragma once

#include <cstddef>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <fmt/format.h>
#include <rapidjson/error/en.h>
#include <rapidjson/memorystream.h>
#include <rapidjson/reader.h>
#include <rapidjson/stream.h>

#include "switchyard/fedmsg.hpp"

namespace switchyard::codec::detail {

/// A refusal: reason empty when the text was read.
struct Refusal {
  std::string reason;
  std::string detail;
  [[nodiscard]] bool ok() const noexcept { return reason.empty(); }
};

inline Refusal checkSize(std::string_view text, std::size_t max_bytes, const char *what) {
  if (text.size() > max_bytes) {
    return {"oversize", fmt::format("{} has {} bytes, more than the limit of {}", what, text.size(), max_bytes)};
  }
  return {};
}

/// Whether @p text has a NUL or a byte 0x1A..0x1F, in one pass: text without either is read
/// through the fast stream (see above); the rest, rare and always refused in the end, is
/// read byte by byte, where the NUL check and RapidJSON's own rules give the refusal.
inline bool hasNulOrLateControl(std::string_view text) noexcept {
  std::size_t i = 0;
#if defined(__SSE2__)
  const __m128i zero = _mm_setzero_si128();
  const __m128i above = _mm_set1_epi8(0x19);
  const __m128i below = _mm_set1_epi8(0x20);
  for (; i + 16 <= text.size(); i += 16) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i *>(text.data() + i));
    // Signed compares: bytes 0x80..0xFF are negative and so never in range.
    const __m128i late = _mm_and_si128(_mm_cmpgt_epi8(v, above), _mm_cmplt_epi8(v, below));
    if (_mm_movemask_epi8(_mm_or_si128(late, _mm_cmpeq_epi8(v, zero))) != 0) {
      return true;
    }
  }
#endif
  for (; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c == 0 || (c >= 0x1A && c <= 0x1F)) {
      return true;
    }
  }
  return false;
}

/// Reads @p text into @p handler under the rules above, from the stream @p ms over it
/// (a MemoryStream over @p text, or a StringStream over a NUL-terminated copy).
/// @p ExtraFlags: rapidjson::kParseNanAndInfFlag for Python's NaN/Infinity, else 0.
/// @p may_have_nul false: the caller scanned @p text already and found no NUL.
template <unsigned ExtraFlags, class Stream, class Handler>
Refusal readJsonFrom(std::string_view text, Stream &ms, Handler &handler, bool may_have_nul = true) {
  if (may_have_nul && std::memchr(text.data(), '\0', text.size()) != nullptr) {
    if (!fedmsg::isValidUtf8(text)) {
      return {"invalid_utf8", "not valid UTF-8"};
    }
    return {"invalid_json", "NUL byte in JSON text"};
  }
  constexpr unsigned kTrusted = rapidjson::kParseIterativeFlag | rapidjson::kParseNumbersAsStringsFlag | ExtraFlags;
  constexpr unsigned kChecked = kTrusted | rapidjson::kParseValidateEncodingFlag;
  const bool valid_utf8 = fedmsg::isValidUtf8(text);
  rapidjson::Reader reader;
  rapidjson::ParseResult r = valid_utf8 ? reader.Parse<kTrusted>(ms, handler) : reader.Parse<kChecked>(ms, handler);
  if (handler.bad != nullptr) {
    return {handler.bad, handler.bad_detail.empty() ? fmt::format("{} near offset {}", handler.bad, r.Offset())
                                                    : handler.bad_detail};
  }
  if (r.IsError()) {
    if (r.Code() == rapidjson::kParseErrorStringInvalidEncoding || !valid_utf8) {
      return {"invalid_utf8", fmt::format("not valid UTF-8 (near offset {})", r.Offset())};
    }
    return {"invalid_json",
            fmt::format("invalid JSON at offset {}: {}", r.Offset(), rapidjson::GetParseError_En(r.Code()))};
  }
  return {};
}

/// readJsonFrom() through the fastest stream that reads @p text correctly (see above).
template <unsigned ExtraFlags, class Handler>
Refusal readJson(std::string_view text, Handler &handler) {
  if (hasNulOrLateControl(text)) {
    rapidjson::MemoryStream ms(text.data(), text.size());
    return readJsonFrom<ExtraFlags>(text, ms, handler);
  }
  // NUL-terminated, with no NUL inside; 15 more NULs: RapidJSON's UTF-8 validation reads
  // all of a multi-byte sequence's continuation bytes, even past the terminator, when the
  // text ends inside one (seen with valgrind on a truncated sequence), and its SSE2 string
  // scan loads the whole aligned 16-byte block that holds the terminator (up to 15 bytes
  // after it; seen with AddressSanitizer). 16 bytes and more are on the heap, 16-aligned.
  std::string copy;
  copy.reserve(text.size() + 16);
  copy.append(text).append(15, '\0');
  rapidjson::StringStream ss(copy.c_str());
  return readJsonFrom<ExtraFlags>(text, ss, handler, false);
}

/// json::parse() without counting it: for codec functions that count the parse as their own kind.
std::optional<json::Value> parseTree(std::string_view text, std::string *error_reason,
                                     const json::ParseLimits &limits, std::string *error_detail);

/// json::scanCanonicalObject() without counting it (the envelope decode's fast path).
bool scanCanonical(std::string_view text, std::vector<json::RawMember> &top_level, const json::ParseLimits &limits);

}  // namespace switchyard::codec::detail
