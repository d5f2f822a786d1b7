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
//   - from a NUL-terminated copy (Text below) through rapidjson::StringStream: RapidJSON
//     copies the unescaped runs of a string 16 bytes at a time (SSE2, enabled for this
//     library in meson.build) only from that stream, where a MemoryStream goes byte by byte;
//   - the handler's own rules (depth, duplicate keys, number spellings) win over a syntax
//     error found at the same point: the handler sets `bad` (a reason) and `bad_detail`.
#pragma once

#include <cstddef>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>
#include <rapidjson/error/en.h>
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

/// @p text with a NUL after it, for the stream: a copy (the view may end anywhere). A NUL
/// inside the text is refused by readJson() before the stream reads it.
class Text {
 public:
  explicit Text(std::string_view text) : copy_(text) {}
  [[nodiscard]] const char *c_str() const noexcept { return copy_.c_str(); }

 private:
  std::string copy_;
};

/// Reads @p text (the stream @p ms must be over its Text copy) into @p handler under the
/// rules above. @p ExtraFlags: rapidjson::kParseNanAndInfFlag for Python's NaN/Infinity,
/// else 0.
template <unsigned ExtraFlags, class Handler>
Refusal readJson(std::string_view text, rapidjson::StringStream &ms, Handler &handler) {
  if (std::memchr(text.data(), '\0', text.size()) != nullptr) {
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

/// json::parse() without counting it: for codec functions that count the parse as their own kind.
std::optional<json::Value> parseTree(std::string_view text, std::string *error_reason,
                                     const json::ParseLimits &limits, std::string *error_detail);

/// json::scanCanonicalObject() without counting it (the envelope decode's fast path).
bool scanCanonical(std::string_view text, std::vector<json::RawMember> &top_level, const json::ParseLimits &limits);

}  // namespace switchyard::codec::detail
