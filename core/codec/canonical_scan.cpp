// SPDX-License-Identifier: MIT
//
// scanCanonicalObject(): recognises text that is already canonical (json.hpp), so that the
// common case — a fedmsg envelope as its publisher sent it — is checked and split into its
// top-level members in one pass, without building a value tree and without RapidJSON's
// byte-at-a-time string loop (strings are scanned 16 bytes at a time with SSE2, else 8).
// Soundness is all that matters here: accepting only text for which
// canonical(parse(text)) == text; anything unusual is left to parse().
// tests/crypto/test_canonical_json.cpp checks that property on generated, mutated and
// Python-made text; tests/unit/test_envelope_scan.cpp checks the envelope codec's use of it.
#include <charconv>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include <rapidjson/encodings.h>

#include "json_reader.hpp"
#include "switchyard/codec_stats.hpp"
#include "switchyard/json.hpp"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace switchyard::json {

namespace {

constexpr std::uint64_t kOnes = 0x0101010101010101ULL;
constexpr std::uint64_t kHigh = 0x8080808080808080ULL;

/// Non-zero when some byte of @p v is zero (exact as a yes/no answer).
constexpr std::uint64_t zeroByte(std::uint64_t v) { return (v - kOnes) & ~v & kHigh; }

/// Whether all 8 bytes at @p p may appear as they are inside a canonical string:
/// 0x20..0x7E, neither '"' nor '\\'.
inline bool plain8(const char *p) {
  std::uint64_t x = 0;
  std::memcpy(&x, p, 8);
  const std::uint64_t below_space = (x - kOnes * 0x20) & ~x & kHigh;  // some byte < 0x20 (or >= 0x80)
  return ((x & kHigh) | below_space | zeroByte(x ^ (kOnes * 0x7F)) | zeroByte(x ^ (kOnes * '"')) |
          zeroByte(x ^ (kOnes * '\\'))) == 0;
}

/// Skips the bytes from @p p that may appear as they are inside a canonical string;
/// returns the first one that needs a closer look (or a point less than 16 bytes from
/// @p end, for the byte loop to finish).
inline const char *skipPlain(const char *p, const char *end) {
#if defined(__SSE2__)
  // 16 bytes at a time: '"', '\\', 0x7F, and (as signed bytes) anything below 0x20,
  // which also catches every byte >= 0x80.
  const __m128i quote = _mm_set1_epi8('"');
  const __m128i backslash = _mm_set1_epi8('\\');
  const __m128i del = _mm_set1_epi8(0x7F);
  const __m128i space = _mm_set1_epi8(0x20);
  while (end - p >= 16) {
    const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i *>(p));
    const __m128i special = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(x, quote), _mm_cmpeq_epi8(x, backslash)),
                                         _mm_or_si128(_mm_cmpeq_epi8(x, del), _mm_cmplt_epi8(x, space)));
    const int mask = _mm_movemask_epi8(special);
    if (mask != 0) {
      return p + __builtin_ctz(static_cast<unsigned>(mask));
    }
    p += 16;
  }
#endif
  while (end - p >= 8 && plain8(p)) {
    p += 8;
  }
  return p;
}

/// Four lower-case hex digits (the only case Python writes).
inline bool hex4(const char *p, unsigned &out) {
  unsigned v = 0;
  for (int k = 0; k < 4; ++k) {
    char c = p[k];
    unsigned d;
    if (c >= '0' && c <= '9') {
      d = static_cast<unsigned>(c - '0');
    } else if (c >= 'a' && c <= 'f') {
      d = static_cast<unsigned>(c - 'a' + 10);
    } else {
      return false;
    }
    v = (v << 4) | d;
  }
  out = v;
  return true;
}

inline bool isDigit(char c) { return c >= '0' && c <= '9'; }

class Scanner {
 public:
  Scanner(std::string_view text, const ParseLimits &limits)
      : begin_(text.data()), p_(text.data()), end_(text.data() + text.size()), limits_(limits) {}

  bool run(std::vector<RawMember> &top) {
    top.clear();
    if (static_cast<std::size_t>(end_ - begin_) > limits_.max_bytes || p_ == end_ || *p_ != '{') {
      return false;
    }
    bool want_value = true;  // else: a value just ended
    for (;;) {
      if (want_value) {
        if (p_ == end_) {
          return false;
        }
        const char c = *p_;
        if (c == '{' || c == '[') {
          if (stack_.size() >= limits_.max_depth) {
            return false;
          }
          const bool object = c == '{';
          ++p_;
          stack_.push_back(Frame{object, {}, false});
          if (p_ != end_ && *p_ == (object ? '}' : ']')) {
            ++p_;
            stack_.pop_back();
            want_value = false;
          } else if (object && !key(top)) {
            return false;
          }
          continue;
        }
        bool ok;
        switch (c) {
          case '"': ok = string(); break;
          case 't': ok = word("true"); break;
          case 'f': ok = word("false"); break;
          case 'n': ok = word("null"); break;
          default: ok = number(); break;
        }
        if (!ok) {
          return false;
        }
        want_value = false;
        continue;
      }
      // A value has just ended.
      if (stack_.empty()) {
        return p_ == end_;
      }
      if (stack_.size() == 1) {  // it was the value of a top-level member
        RawMember &m = top.back();
        m.value = std::string_view(m.value.data(), static_cast<std::size_t>(p_ - m.value.data()));
        m.member = std::string_view(m.member.data(), static_cast<std::size_t>(p_ - m.member.data()));
      }
      if (p_ == end_) {
        return false;
      }
      const bool object = stack_.back().object;
      if (*p_ == ',') {
        ++p_;
        if (object && !key(top)) {
          return false;
        }
        want_value = true;
      } else if (*p_ == (object ? '}' : ']')) {
        ++p_;
        stack_.pop_back();
      } else {
        return false;
      }
    }
  }

 private:
  struct Frame {
    bool object;
    std::string_view last_key;
    bool has_key;
  };

  /// `"key":` of an object member, keys strictly increasing; p_ ends on the value.
  bool key(std::vector<RawMember> &top) {
    if (p_ == end_ || *p_ != '"') {
      return false;
    }
    const char *member = p_;
    const char *k = ++p_;
    while (p_ != end_ && *p_ != '"') {
      const auto c = static_cast<unsigned char>(*p_);
      if (c < 0x20 || c > 0x7E || c == '\\') {
        return false;  // escapes in keys: the byte order of the text is not the key order
      }
      ++p_;
    }
    if (p_ == end_) {
      return false;
    }
    std::string_view name(k, static_cast<std::size_t>(p_ - k));
    ++p_;
    if (p_ == end_ || *p_ != ':') {
      return false;
    }
    ++p_;
    Frame &f = stack_.back();
    // Printable ASCII: byte order is code-point order. Strictly greater: no duplicates.
    if (f.has_key && !(f.last_key < name)) {
      return false;
    }
    f.last_key = name;
    f.has_key = true;
    if (stack_.size() == 1) {
      top.push_back(RawMember{name, std::string_view(p_, 0), std::string_view(member, 0)});
    }
    return true;
  }

  bool string() {
    ++p_;  // the opening quote
    for (;;) {
      p_ = skipPlain(p_, end_);
      if (p_ == end_) {
        return false;
      }
      const auto c = static_cast<unsigned char>(*p_);
      if (c == '"') {
        ++p_;
        return true;
      }
      if (c != '\\') {
        if (c < 0x20 || c > 0x7E) {
          return false;  // Python escapes these
        }
        ++p_;
        continue;
      }
      if (end_ - p_ < 2) {
        return false;
      }
      const char e = p_[1];
      if (e == '"' || e == '\\' || e == 'b' || e == 'f' || e == 'n' || e == 'r' || e == 't') {
        p_ += 2;
        continue;
      }
      unsigned cp = 0;
      if (e != 'u' || end_ - p_ < 6 || !hex4(p_ + 2, cp)) {
        return false;  // includes "\/", which Python never writes
      }
      p_ += 6;
      if (cp >= 0xD800 && cp <= 0xDBFF) {
        unsigned lo = 0;
        if (end_ - p_ < 6 || p_[0] != '\\' || p_[1] != 'u' || !hex4(p_ + 2, lo) || lo < 0xDC00 || lo > 0xDFFF) {
          return false;  // a lone high surrogate
        }
        p_ += 6;
        continue;
      }
      if (cp >= 0xDC00 && cp <= 0xDFFF) {
        return false;  // a lone low surrogate: valid, but left to the tree parser
      }
      if (cp >= 0x7F) {
        continue;
      }
      // Below 0x7F only control characters without a short escape are written as \u00XX.
      if (cp >= 0x20 || cp == '\b' || cp == '\t' || cp == '\n' || cp == '\f' || cp == '\r') {
        return false;
      }
    }
  }

  bool word(std::string_view w) {
    if (static_cast<std::size_t>(end_ - p_) < w.size() || std::string_view(p_, w.size()) != w) {
      return false;
    }
    p_ += w.size();
    return true;
  }

  bool number() {
    const char *s = p_;
    while (p_ != end_ && (isDigit(*p_) || *p_ == '-' || *p_ == '+' || *p_ == '.' || *p_ == 'e' || *p_ == 'E')) {
      ++p_;
    }
    std::string_view tok(s, static_cast<std::size_t>(p_ - s));
    if (tok.empty()) {
      return false;
    }
    if (tok.find_first_of(".eE") == std::string_view::npos) {
      std::string_view body = tok.front() == '-' ? tok.substr(1) : tok;
      if (body.empty() || body.size() > limits_.max_integer_digits) {
        return false;
      }
      for (char c : body) {
        if (!isDigit(c)) {
          return false;
        }
      }
      // No leading zeros; "-0" is written "0".
      return !(body.front() == '0' && (body.size() > 1 || tok.front() == '-'));
    }
    double d = 0.0;
    auto res = std::from_chars(tok.data(), tok.data() + tok.size(), d);
    if (res.ec != std::errc() || res.ptr != tok.data() + tok.size()) {
      return false;
    }
    return pythonFloatRepr(d) == tok;
  }

  const char *begin_;
  const char *p_;
  const char *end_;
  const ParseLimits &limits_;
  std::vector<Frame> stack_;
};

/// RapidJSON output stream over a std::string, for rapidjson::UTF8<>::Encode.
struct StringOut {
  using Ch = char;
  std::string &s;
  void Put(char c) { s += c; }
};

}  // namespace

bool scanCanonicalObject(std::string_view json, std::vector<RawMember> &top_level, const ParseLimits &limits) {
  codec::countParse(codec::ParseKind::CanonicalScan);
  return codec::detail::scanCanonical(json, top_level, limits);
}

std::string unescapeCanonicalString(std::string_view literal) {
  std::string out;
  if (literal.size() < 2) {
    return out;
  }
  std::string_view s = literal.substr(1, literal.size() - 2);
  out.reserve(s.size());
  while (!s.empty()) {
    const auto *bs = static_cast<const char *>(std::memchr(s.data(), '\\', s.size()));
    if (bs == nullptr) {
      out.append(s);
      break;
    }
    const auto run = static_cast<std::size_t>(bs - s.data());
    out.append(s.data(), run);
    s.remove_prefix(run);
    if (s.size() < 2) {
      break;
    }
    const char e = s[1];
    unsigned cp = 0;
    if (e == 'u' && s.size() >= 6 && hex4(s.data() + 2, cp)) {
      s.remove_prefix(6);
      unsigned lo = 0;
      if (cp >= 0xD800 && cp <= 0xDBFF && s.size() >= 6 && s[0] == '\\' && s[1] == 'u' && hex4(s.data() + 2, lo) &&
          lo >= 0xDC00 && lo <= 0xDFFF) {
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        s.remove_prefix(6);
      }
      StringOut os{out};
      rapidjson::UTF8<>::Encode(os, cp);
      continue;
    }
    switch (e) {
      case 'b': out += '\b'; break;
      case 'f': out += '\f'; break;
      case 'n': out += '\n'; break;
      case 'r': out += '\r'; break;
      case 't': out += '\t'; break;
      default: out += e; break;  // '"', '\\'
    }
    s.remove_prefix(2);
  }
  return out;
}

}  // namespace switchyard::json

namespace switchyard::codec::detail {

bool scanCanonical(std::string_view text, std::vector<json::RawMember> &top_level, const json::ParseLimits &limits) {
  json::Scanner scanner(text, limits);
  if (!scanner.run(top_level)) {
    top_level.clear();
    return false;
  }
  return true;
}

}  // namespace switchyard::codec::detail
