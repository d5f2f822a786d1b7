// SPDX-License-Identifier: MIT
//
// UTF-8 and JSON string literals: the one UTF-8 validator (fedmsg::isValidUtf8) and the one
// JSON string writer (json::writeString) of the project, in Python's ensure_ascii=True form
// (what fedmsg signs and what envelopes carry) and its ensure_ascii=False form (what the
// JSON log sink writes: non-ASCII text stays readable).
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "switchyard/fedmsg.hpp"
#include "switchyard/json.hpp"

namespace switchyard {

namespace fedmsg {

bool isValidUtf8(std::string_view s) noexcept {
  const auto *p = reinterpret_cast<const unsigned char *>(s.data());
  const auto *end = p + s.size();
  constexpr std::uint64_t kHighBits = 0x8080808080808080ULL;
  while (p < end) {
    // ASCII fast path, 16 then 8 bytes at a time (memcpy: unaligned loads without UB).
    while (end - p >= 16) {
      std::uint64_t a = 0;
      std::uint64_t b = 0;
      std::memcpy(&a, p, 8);
      std::memcpy(&b, p + 8, 8);
      if (((a | b) & kHighBits) != 0) {
        break;
      }
      p += 16;
    }
    if (end - p >= 8) {
      std::uint64_t a = 0;
      std::memcpy(&a, p, 8);
      if ((a & kHighBits) == 0) {
        p += 8;
        continue;
      }
    }
    if (p == end) {  // the 16-byte steps may have reached the end: never read past it
      break;
    }
    // One byte or one multi-byte sequence.
    unsigned c = *p;
    if (c < 0x80) {
      ++p;
      continue;
    }
    std::size_t n;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
      n = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
      n = 2;
      if (c == 0xE0) lo = 0xA0;  // overlong
      if (c == 0xED) hi = 0x9F;  // surrogates
    } else if (c >= 0xF0 && c <= 0xF4) {
      n = 3;
      if (c == 0xF0) lo = 0x90;  // overlong
      if (c == 0xF4) hi = 0x8F;  // > U+10FFFF
    } else {
      return false;  // continuation byte, 0xC0/0xC1 (overlong), 0xF5..0xFF
    }
    if (static_cast<std::size_t>(end - p) <= n) {
      return false;  // truncated
    }
    if (p[1] < lo || p[1] > hi) {
      return false;
    }
    for (std::size_t k = 2; k <= n; ++k) {
      if (p[k] < 0x80 || p[k] > 0xBF) {
        return false;
      }
    }
    p += n + 1;
  }
  return true;
}

}  // namespace fedmsg

namespace json {
namespace {

void appendU16(unsigned u, std::string &out) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += "\\u";
  out += kHex[(u >> 12) & 0xF];
  out += kHex[(u >> 8) & 0xF];
  out += kHex[(u >> 4) & 0xF];
  out += kHex[u & 0xF];
}

/// Decodes one UTF-8 sequence at @p i (lenient: surrogate code points are accepted, as the
/// parser keeps lone low surrogates; an invalid byte decodes as U+FFFD and advances by one).
std::uint32_t decodeUtf8(std::string_view s, std::size_t &i) {
  auto b0 = static_cast<unsigned char>(s[i]);
  auto cont = [&](std::size_t k) -> int {
    if (i + k >= s.size()) {
      return -1;
    }
    auto b = static_cast<unsigned char>(s[i + k]);
    return (b & 0xC0) == 0x80 ? (b & 0x3F) : -1;
  };
  if (b0 < 0x80) {
    i += 1;
    return b0;
  }
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    int c1 = cont(1);
    if (c1 >= 0) {
      i += 2;
      return ((b0 & 0x1Fu) << 6) | static_cast<unsigned>(c1);
    }
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    int c1 = cont(1);
    int c2 = cont(2);
    if (c1 >= 0 && c2 >= 0) {
      std::uint32_t cp = ((b0 & 0x0Fu) << 12) | (static_cast<unsigned>(c1) << 6) | static_cast<unsigned>(c2);
      if (cp >= 0x800) {
        i += 3;
        return cp;
      }
    }
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    int c1 = cont(1);
    int c2 = cont(2);
    int c3 = cont(3);
    if (c1 >= 0 && c2 >= 0 && c3 >= 0) {
      std::uint32_t cp = ((b0 & 0x07u) << 18) | (static_cast<unsigned>(c1) << 12) |
                         (static_cast<unsigned>(c2) << 6) | static_cast<unsigned>(c3);
      if (cp >= 0x10000 && cp <= 0x10FFFF) {
        i += 4;
        return cp;
      }
    }
  }
  i += 1;
  return 0xFFFD;
}

}  // namespace

void writeString(std::string_view s, std::string &out, Escape escape) {
  out += '"';
  std::size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7F) {
      if (c == '"') {
        out += "\\\"";
      } else if (c == '\\') {
        out += "\\\\";
      } else {
        out += static_cast<char>(c);
      }
      ++i;
      continue;
    }
    const std::size_t start = i;
    std::uint32_t cp = decodeUtf8(s, i);
    switch (cp) {
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (escape == Escape::Utf8 && cp >= 0x7F && (cp < 0xD800 || cp > 0xDFFF)) {
          // What Python leaves as is with ensure_ascii=False: the input's own bytes, or
          // U+FFFD for a byte that is not UTF-8 (decoded as U+FFFD, one byte long).
          if (cp == 0xFFFD && i - start == 1) {
            out += "\xEF\xBF\xBD";
          } else {
            out.append(s, start, i - start);
          }
        } else if (cp > 0xFFFF) {
          std::uint32_t v = cp - 0x10000;
          appendU16(0xD800 + (v >> 10), out);
          appendU16(0xDC00 + (v & 0x3FF), out);
        } else {
          appendU16(cp, out);  // controls, DEL and (ensure_ascii) everything non-ASCII
        }
    }
  }
  out += '"';
}

}  // namespace json

}  // namespace switchyard
