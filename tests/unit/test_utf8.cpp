// SPDX-License-Identifier: MIT
//
// fedmsg::isValidUtf8 (8-bytes-at-a-time ASCII path) against two oracles: RapidJSON's own
// encoding validation (kParseValidateEncodingFlag on the bytes wrapped in a JSON string),
// which the envelope codec used to rely on and now skips for text isValidUtf8 accepted, and
// a plain code-point decoder written from RFC 3629 here. Also: the codec's refusals (reason
// and detail) are those of a parse with RapidJSON's validation, as before the fast path.
#include <doctest/doctest.h>

#include <chrono>
#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <rapidjson/error/en.h>
#include <rapidjson/memorystream.h>
#include <rapidjson/reader.h>

#include "switchyard/fedmsg.hpp"
#include "switchyard/json.hpp"

namespace fm = switchyard::fedmsg;

namespace {

/// RFC 3629 by decoding: the sequence length comes from the lead byte, the code point must
/// need that length, and must not be a surrogate or above U+10FFFF.
bool referenceValid(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<unsigned char>(s[i]);
    std::size_t len = 0;
    std::uint32_t cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    }
    if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + len > s.size()) {
      return false;
    }
    for (std::size_t k = 1; k < len; ++k) {
      auto t = static_cast<unsigned char>(s[i + k]);
      if ((t & 0xC0) != 0x80) {
        return false;
      }
      cp = (cp << 6) | (t & 0x3F);
    }
    static constexpr std::uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[len] || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) {
      return false;
    }
    i += len;
  }
  return true;
}

/// RapidJSON's verdict on @p bytes as the content of a JSON string. Bytes that are JSON
/// syntax inside a string ('"', '\\', control characters) are replaced by 'a' first: ASCII
/// for ASCII, so the UTF-8 validity is unchanged and only the encoding check can fail.
bool rapidjsonValid(std::string_view bytes) {
  std::string text = "\"";
  for (char ch : bytes) {
    auto c = static_cast<unsigned char>(ch);
    text += (c == '"' || c == '\\' || c < 0x20) ? 'a' : ch;
  }
  text += '"';
  rapidjson::MemoryStream ms(text.data(), text.size());
  rapidjson::BaseReaderHandler<> handler;
  rapidjson::Reader reader;
  rapidjson::ParseResult r = reader.Parse<rapidjson::kParseValidateEncodingFlag>(ms, handler);
  if (r.IsError()) {
    REQUIRE_MESSAGE(r.Code() == rapidjson::kParseErrorStringInvalidEncoding,
                    "unexpected RapidJSON error " << rapidjson::GetParseError_En(r.Code()));
    return false;
  }
  return true;
}

std::string hex(std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    out += kHex[c >> 4];
    out += kHex[c & 0xF];
    out += ' ';
  }
  return out;
}

void checkAgree(std::string_view s) {
  bool ours = fm::isValidUtf8(s);
  bool rj = rapidjsonValid(s);
  bool ref = referenceValid(s);
  if (ours != rj || ours != ref) {
    FAIL_CHECK("disagreement on [" << hex(s) << "]: ours " << ours << ", rapidjson " << rj << ", reference "
                                   << ref);
  }
}

std::string encode(std::uint32_t cp) {
  std::string out;
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    // also used for cp > 0x10FFFF (a well-formed but out-of-range 4-byte sequence)
    out += static_cast<char>(0xF0 | ((cp >> 18) & 0x07));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return out;
}

std::string bytes(std::initializer_list<unsigned> b) {
  std::string out;
  for (unsigned c : b) {
    out += static_cast<char>(c);
  }
  return out;
}

/// The edge cases: every boundary code point, overlongs, surrogates, out of range, stray
/// and missing continuation bytes, and every truncation of every multi-byte boundary.
std::vector<std::pair<std::string, bool>> edgeCases() {
  std::vector<std::pair<std::string, bool>> cases;
  for (std::uint32_t cp : {0x0u, 0x1u, 0x7Fu, 0x80u, 0xFFu, 0x7FFu, 0x800u, 0xFFFu, 0x1000u, 0xCFFFu, 0xD000u,
                           0xD7FFu, 0xE000u, 0xFFFDu, 0xFFFEu, 0xFFFFu, 0x10000u, 0x3FFFFu, 0x40000u, 0xFFFFFu,
                           0x100000u, 0x10FFFFu}) {
    cases.emplace_back(encode(cp), true);
    std::string e = encode(cp);
    for (std::size_t cut = 1; cut < e.size(); ++cut) {
      cases.emplace_back(e.substr(0, cut), false);        // truncated at the end
      cases.emplace_back(e.substr(0, cut) + "a", false);  // cut short by an ASCII byte
    }
  }
  for (std::uint32_t cp : {0xD800u, 0xDBFFu, 0xDC00u, 0xDFFFu}) {
    cases.emplace_back(encode(cp), false);  // surrogates
  }
  cases.emplace_back(encode(0xD83Du) + encode(0xDE00u), false);  // CESU-8 pair
  for (std::uint32_t cp : {0x110000u, 0x13FFFFu, 0x140000u, 0x1FFFFFu}) {
    cases.emplace_back(encode(cp), false);  // > U+10FFFF
  }
  // overlongs of '/', U+0000, U+007F, U+07FF, U+FFFF
  for (const auto &o : {bytes({0xC0, 0xAF}), bytes({0xC0, 0x80}), bytes({0xC1, 0xBF}), bytes({0xE0, 0x80, 0xAF}),
                        bytes({0xE0, 0x9F, 0xBF}), bytes({0xF0, 0x80, 0x80, 0xAF}), bytes({0xF0, 0x8F, 0xBF, 0xBF}),
                        bytes({0xF8, 0x88, 0x80, 0x80, 0x80}), bytes({0xFC, 0x84, 0x80, 0x80, 0x80, 0x80})}) {
    cases.emplace_back(o, false);
  }
  for (unsigned lead = 0xF5; lead <= 0xFF; ++lead) {
    cases.emplace_back(bytes({lead, 0x80, 0x80, 0x80}), false);
  }
  for (unsigned cont = 0x80; cont <= 0xBF; ++cont) {
    cases.emplace_back(bytes({cont}), false);              // stray continuation
    cases.emplace_back(encode(0xE9) + bytes({cont}), false);  // one too many
  }
  cases.emplace_back(bytes({0xE2, 0x82, 0xAC, 0x80}), false);
  cases.emplace_back(bytes({0xED, 0x9F, 0xBF}), true);  // U+D7FF, just below the surrogates
  cases.emplace_back(bytes({0xEE, 0x80, 0x80}), true);  // U+E000
  cases.emplace_back(bytes({0xF4, 0x8F, 0xBF, 0xBF}), true);
  cases.emplace_back(bytes({0xF4, 0x90, 0x80, 0x80}), false);
  cases.emplace_back(bytes({0xF0, 0x90, 0x80, 0x80}), true);
  return cases;
}

}  // namespace

TEST_CASE("utf8: edge cases, alone and at every offset of the 8- and 16-byte ASCII path") {
  for (const auto &[text, valid] : edgeCases()) {
    CHECK_MESSAGE(fm::isValidUtf8(text) == valid, "[" << hex(text) << "]");
    for (std::size_t pre = 0; pre <= 17; ++pre) {
      for (std::size_t post : {0u, 1u, 7u, 8u, 9u, 16u}) {
        std::string s = std::string(pre, 'x') + text + std::string(post, 'y');
        if (fm::isValidUtf8(s) != valid) {
          FAIL_CHECK("[" << hex(text) << "] with " << pre << " bytes before and " << post << " after");
        }
        checkAgree(s);
      }
    }
  }
  CHECK(fm::isValidUtf8(""));
  CHECK(fm::isValidUtf8(std::string(1000, 'a')));
  CHECK(!fm::isValidUtf8(std::string(1000, 'a') + "\xFF"));
  CHECK(!fm::isValidUtf8("\xFF" + std::string(1000, 'a')));
  CHECK(!fm::isValidUtf8(std::string(997, 'a') + "\xC3"));
}

TEST_CASE("utf8: never reads past the end of the view (the byte after it is invalid UTF-8)") {
  // A view into a larger buffer whose next byte is 0xFF: reading it would refuse valid
  // text. (A std::string hides such a bug: its terminating NUL is valid ASCII.) This is
  // how zmq-sub hands ZeroMQ frames to the codec.
  for (std::size_t len = 0; len <= 80; ++len) {
    CAPTURE(len);
    std::string buf(len, 'a');
    buf += '\xff';
    CHECK(fm::isValidUtf8(std::string_view(buf.data(), len)));
    if (len >= 2) {
      std::string two = buf;
      two[len - 2] = '\xc3';  // "...\xc3\xa9" then 0xFF outside the view
      two[len - 1] = '\xa9';
      CHECK(fm::isValidUtf8(std::string_view(two.data(), len)));
    }
  }
}

TEST_CASE("utf8: every 1- and 2-byte string, and every 3-byte string with a lead byte >= 0xC0") {
  for (unsigned a = 0; a < 256; ++a) {
    checkAgree(bytes({a}));
    for (unsigned b = 0; b < 256; ++b) {
      checkAgree(bytes({a, b}));
    }
  }
  // Without RapidJSON here (16 million parses would be slow): the reference decoder.
  std::size_t mismatches = 0;
  char buf[3];
  for (unsigned a = 0xC0; a < 256; ++a) {
    for (unsigned b = 0; b < 256; ++b) {
      for (unsigned c = 0; c < 256; ++c) {
        buf[0] = static_cast<char>(a);
        buf[1] = static_cast<char>(b);
        buf[2] = static_cast<char>(c);
        std::string_view s(buf, 3);
        if (fm::isValidUtf8(s) != referenceValid(s)) {
          ++mismatches;
        }
      }
    }
  }
  CHECK(mismatches == 0);
}

TEST_CASE("utf8: 100,000 random short byte strings agree with RapidJSON's validation") {
  const std::uint32_t seed = 20240607;
  std::mt19937 rng(seed);
  INFO("seed " << seed);
  // Biased towards the interesting bytes, else almost every string is invalid at once.
  static constexpr unsigned kInteresting[] = {0x00, 0x22, 0x5C, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0,
                                              0xC1, 0xC2, 0xDF, 0xE0, 0xE1, 0xEC, 0xED, 0xEE, 0xEF, 0xF0, 0xF1,
                                              0xF3, 0xF4, 0xF5, 0xFF};
  std::size_t valid = 0;
  for (int n = 0; n < 100000; ++n) {
    std::size_t len = rng() % 24;
    std::string s;
    for (std::size_t k = 0; k < len; ++k) {
      unsigned r = rng() % 8;
      if (r < 3) {
        s += static_cast<char>(0x20 + rng() % 0x5F);  // printable ASCII
      } else if (r < 5) {
        s += static_cast<char>(0x80 + rng() % 0x40);  // continuation
      } else if (r < 6) {
        s += static_cast<char>(kInteresting[rng() % std::size(kInteresting)]);
      } else if (r < 7) {
        s += encode(rng() % 0x110000);  // a whole code point (maybe a surrogate)
      } else {
        s += static_cast<char>(rng() % 256);
      }
    }
    valid += fm::isValidUtf8(s) ? 1 : 0;
    checkAgree(s);
  }
  // Both outcomes were exercised in quantity.
  CHECK(valid > 5000);
  CHECK(valid < 95000);
}

namespace {

/// What the codec answered before the fast path: a parse with RapidJSON's encoding check,
/// classified as fedmsg.cpp did (no duplicate keys or deep nesting in these inputs).
fm::Result oldValidateJson(std::string_view text) {
  if (text.find('\0') != std::string_view::npos) {
    if (!referenceValid(text)) {
      return fm::Result::fail("invalid_utf8", "not valid UTF-8");
    }
    return fm::Result::fail("invalid_json", "NUL byte in JSON text");
  }
  rapidjson::MemoryStream ms(text.data(), text.size());
  rapidjson::BaseReaderHandler<> handler;
  rapidjson::Reader reader;
  constexpr unsigned kFlags = rapidjson::kParseIterativeFlag | rapidjson::kParseValidateEncodingFlag |
                              rapidjson::kParseNumbersAsStringsFlag;
  rapidjson::ParseResult r = reader.Parse<kFlags>(ms, handler);
  if (r.IsError()) {
    if (r.Code() == rapidjson::kParseErrorStringInvalidEncoding || !referenceValid(text)) {
      return fm::Result::fail("invalid_utf8", "not valid UTF-8 (near offset " + std::to_string(r.Offset()) + ")");
    }
    return fm::Result::fail("invalid_json", "invalid JSON at offset " + std::to_string(r.Offset()) + ": " +
                                                rapidjson::GetParseError_En(r.Code()));
  }
  return {};
}

}  // namespace

TEST_CASE("utf8: validateJson's verdicts and details are those of the validating parse") {
  const std::string base =
      "{\"topic\":\"org.fedoraproject.prod.x\",\"msg\":{\"text\":\"h\xC3\xA9llo \xF0\x9F\x98\x80 \\u00e9\","
      "\"list\":[1,2.5,-3e2,true,null,\"\xE2\x80\xA8\"],\"k\xC3\xA9y\":{}},\"i\":1}";
  REQUIRE(fm::validateJson(base).ok());
  std::mt19937 rng(77);
  static constexpr unsigned kBytes[] = {0x80, 0xBF, 0xC0, 0xC3, 0xE2, 0xED, 0xF0, 0xF4, 0xF5, 0xFF,
                                        '"', '\\', '{', '}', ',', ':', 0x01, 0x1F, 'a', ' '};
  std::size_t utf8_refusals = 0;
  std::size_t json_refusals = 0;
  for (int n = 0; n < 20000; ++n) {
    std::string s = base;
    int edits = 1 + static_cast<int>(rng() % 3);
    for (int e = 0; e < edits; ++e) {
      std::size_t at = rng() % (s.size() + 1);
      char b = static_cast<char>(kBytes[rng() % std::size(kBytes)]);
      switch (rng() % 3) {
        case 0: s.insert(at, 1, b); break;                      // insert
        case 1: if (at < s.size()) s[at] = b; break;            // replace
        default: if (at < s.size()) s.erase(at, 1); break;      // delete
      }
    }
    fm::Result now = fm::validateJson(s);
    fm::Result before = oldValidateJson(s);
    if (now.reason != before.reason || now.detail != before.detail) {
      FAIL_CHECK("[" << hex(s) << "]: now " << now.reason << " (" << now.detail << "), before " << before.reason
                     << " (" << before.detail << ")");
    }
    utf8_refusals += now.reason == "invalid_utf8" ? 1 : 0;
    json_refusals += now.reason == "invalid_json" ? 1 : 0;
  }
  CHECK(utf8_refusals > 1000);
  CHECK(json_refusals > 1000);
  // High bytes outside strings: a syntax error for RapidJSON, refused as invalid_utf8 when
  // they are not UTF-8 (as before), as invalid_json when they are.
  CHECK(fm::validateJson("{\"a\":1}\xFF").reason == "invalid_utf8");
  CHECK(fm::validateJson("{\"a\":\xC3\xA9}").reason == "invalid_json");
  CHECK(fm::validateJson("[\"\xED\xA0\x80\"]").reason == "invalid_utf8");
  CHECK(fm::validateJson("[\"\\ud83d\\ude00\"]").ok());  // escapes are not raw bytes
}

TEST_CASE("utf8: a raw control byte in a string is refused at every offset of the 16-byte string scan") {
  // The reader copies unescaped string runs 16 bytes at a time; every control byte must
  // still end the run and be refused, at any position within and across the blocks
  // (RapidJSON 1.1's SIMD scan alone would let 0x1A..0x1F through).
  for (unsigned c = 0x01; c < 0x20; ++c) {
    for (std::size_t at = 0; at < 40; ++at) {
      std::string text = "{\"s\":\"" + std::string(40, 'x') + "\"}";
      text[6 + at] = static_cast<char>(c);
      INFO("byte " << c << " at " << at);
      CHECK(fm::validateJson(text).reason == "invalid_json");
      std::string reason;
      CHECK_FALSE(switchyard::json::parse(text, &reason).has_value());
      CHECK(reason == "invalid_json");
    }
  }
}

TEST_CASE("utf8: timing of a 10 KB envelope (printed, not asserted)") {
  std::string body = "{\"text\":\"";
  while (body.size() < 10 * 1024) {
    body += "Lorem ipsum dolor sit amet, consectetur adipiscing elit ";
  }
  body += "\",\"n\":[1,2,3]}";
  std::string env = "{\"i\":1,\"msg\":" + body +
                    ",\"msg_id\":\"2024-x\",\"timestamp\":1700000000,\"topic\":\"org.x\",\"username\":\"u\"}";
  constexpr int kRounds = 2000;
  auto time = [&](auto &&fn) {
    auto t0 = std::chrono::steady_clock::now();
    for (int k = 0; k < kRounds; ++k) {
      fn();
    }
    return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() / kRounds;
  };
  auto parse = [&](auto flags) {
    rapidjson::MemoryStream ms(env.data(), env.size());
    rapidjson::BaseReaderHandler<> handler;
    rapidjson::Reader reader;
    return !reader.Parse<decltype(flags)::value>(ms, handler).IsError();
  };
  using Validating = std::integral_constant<unsigned, rapidjson::kParseIterativeFlag |
                                                          rapidjson::kParseValidateEncodingFlag |
                                                          rapidjson::kParseNumbersAsStringsFlag>;
  using Trusting =
      std::integral_constant<unsigned, rapidjson::kParseIterativeFlag | rapidjson::kParseNumbersAsStringsFlag>;
  std::size_t ok = 0;
  double validate_us = time([&] { ok += fm::isValidUtf8(env) ? 1 : 0; });
  double old_us = time([&] { ok += parse(Validating{}) ? 1 : 0; });
  double new_us = time([&] { ok += fm::isValidUtf8(env) && parse(Trusting{}) ? 1 : 0; });
  double codec_us = time([&] { ok += fm::validateJson(env).ok() ? 1 : 0; });
  CHECK(ok == 4 * kRounds);
  MESSAGE("10 KB envelope: isValidUtf8 " << validate_us << " us; RapidJSON parse with its encoding check "
                                         << old_us << " us, isValidUtf8 + parse without it " << new_us
                                         << " us; fedmsg::validateJson " << codec_us << " us");
}
