// SPDX-License-Identifier: MIT
//
// Canonical JSON: byte for byte what fedmsg signs, i.e. Python's
// `json.dumps(json.loads(text), sort_keys=True, separators=(',', ':'))` with the default
// `ensure_ascii=True` and `allow_nan=True`.
//
// Why a value tree of our own: a signature covers the *Python* rendering of the parsed
// value, so the tree must keep integers of any size as their digits, floats as the exact
// double Python would parse, and strings as code points (sorted by code point, not by
// UTF-16 unit). RapidJSON's DOM does none of that, so the parser below drives RapidJSON's
// SAX reader (iterative: no recursion on hostile nesting) with numbers delivered as text.
//
// Deliberate deviations from Python's json.loads, both fail closed:
//  * duplicate object keys are refused ("duplicate_keys") at any depth: Python keeps the
//    last one, so a signature could cover another `topic` than the one a router reads;
//  * a lone *high* surrogate escape ("\ud800" not followed by a low one) is refused
//    ("invalid_json"); RapidJSON cannot represent it. A lone low surrogate is kept and
//    re-emitted as Python does.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace switchyard::json {

struct Member;

/// A parsed JSON value. Strings hold UTF-8 (a lone low surrogate is kept as its 3-byte
/// encoding); object members are kept sorted by key in code-point order (= byte order of
/// the UTF-8 keys) and are unique.
struct Value {
  enum class Type : std::uint8_t { Null, Bool, Integer, Float, String, Array, Object };

  Type type = Type::Null;
  bool boolean = false;
  double number = 0.0;  ///< Float only
  std::string text;     ///< String: the decoded text; Integer: canonical digits ("-12", "0")
  std::vector<Value> items;     ///< Array
  std::vector<Member> members;  ///< Object, sorted by key, unique keys

  static Value null();
  static Value fromBool(bool b);
  static Value fromString(std::string s);
  /// @p digits must be a valid JSON integer token ("-12"); it is normalised ("-0" -> "0").
  static Value fromIntegerText(std::string_view digits);
  static Value fromInt(std::int64_t v);
  static Value fromDouble(double d);
  static Value array();
  static Value object();

  [[nodiscard]] bool isNull() const noexcept { return type == Type::Null; }
  [[nodiscard]] bool isString() const noexcept { return type == Type::String; }
  [[nodiscard]] bool isObject() const noexcept { return type == Type::Object; }
  [[nodiscard]] bool isArray() const noexcept { return type == Type::Array; }

  /// Object only: the member @p key, or null when absent (or when this is no object).
  [[nodiscard]] const Value *find(std::string_view key) const noexcept;
  [[nodiscard]] Value *find(std::string_view key) noexcept;
  /// Object only: the string member @p key, or nullopt when absent or not a string.
  [[nodiscard]] std::optional<std::string_view> findString(std::string_view key) const noexcept;
  /// Object only: inserts or replaces @p key, keeping the members sorted.
  void set(std::string key, Value v);
  /// Object only: removes @p key; returns whether it was there.
  bool erase(std::string_view key);
};

struct Member {
  std::string key;
  Value value;
};

// Out of the class: clang needs Member complete before a Value is returned by value.
inline Value Value::null() { return {}; }

/// Bounds applied while parsing untrusted input.
struct ParseLimits {
  std::size_t max_bytes = 16u << 20;  ///< longer input: "oversize"
  std::size_t max_depth = 128;        ///< deeper nesting: "too_deep"
  /// Python 3.11 refuses to convert integers with more digits than this (int_max_str_digits),
  /// so such a token can never have been signed by Python: "invalid_json".
  std::size_t max_integer_digits = 4300;
};

/// Parses @p json with Python json.loads semantics (see the deviations above). On failure
/// returns nullopt and, if @p error_reason is given, sets it to a snake_case reason of the
/// codec's one vocabulary (docs/codec.md): "invalid_json", "invalid_utf8", "duplicate_keys",
/// "oversize" or "too_deep". If @p error_detail is given it receives a human-readable
/// description (offset and cause) for logs. It reads the text under the same rules as the
/// envelope decode and fedmsg::validateJson() (one reader; NaN/Infinity are accepted here
/// as Python accepts them). Counted as a "json" parse (switchyard/codec_stats.hpp).
[[nodiscard]] std::optional<Value> parse(std::string_view json, std::string *error_reason = nullptr,
                                         const ParseLimits &limits = {},
                                         std::string *error_detail = nullptr);

/// Appends the canonical form of @p v to @p out. @p skip_top_level_keys lists object keys
/// left out at the top level only (e.g. {"signature", "certificate"}).
void writeCanonical(const Value &v, std::string &out,
                    const std::vector<std::string_view> &skip_top_level_keys = {});
[[nodiscard]] std::string canonical(const Value &v,
                                    const std::vector<std::string_view> &skip_top_level_keys = {});
/// As writeCanonical(), not counted (switchyard/codec_stats.hpp): for a writer that puts the
/// value into a larger text and counts that one serialisation itself (the signer writes the
/// parts of the envelope it then assembles with fedmsg::assembleWire()).
void appendCanonicalPart(const Value &v, std::string &out);

/// parse() + canonical() in one step.
[[nodiscard]] std::optional<std::string> canonicalize(std::string_view json,
                                                      std::string *error_reason = nullptr,
                                                      const ParseLimits &limits = {});

/// One member of the top-level object found by scanCanonicalObject(): views into the
/// scanned text.
struct RawMember {
  std::string_view key;     ///< the key's characters between its quotes (printable ASCII, no escapes)
  std::string_view value;   ///< the value's JSON text
  std::string_view member;  ///< the whole member, `"key":value`
};

/// Fast path for text that is already in canonical form, as fedmsg publishers send it
/// (docs/codec.md): returns true, and the top-level members in order, only when @p json
/// is an object that parse() accepts under @p limits and canonical(*parse(json)) == json
/// byte for byte. Then removing top-level members gives the canonical form of the rest.
///
/// It proves that with one pass and no allocation per value, and gives up (false) on
/// anything it does not prove: whitespace, bytes outside printable ASCII, a key with an
/// escape, an escape the canonical form would not use (`\/`, upper-case hex, `\u0041`),
/// a lone surrogate, keys out of order or repeated, a float that is not Python's
/// repr of itself, NaN/Infinity, `-0`, integers longer than limits.max_integer_digits, or
/// nesting deeper than limits.max_depth. False says nothing about validity: use parse().
[[nodiscard]] bool scanCanonicalObject(std::string_view json, std::vector<RawMember> &top_level,
                                       const ParseLimits &limits = {});

/// The decoded UTF-8 text of a JSON string literal (with its quotes) that
/// scanCanonicalObject() accepted; other literals give unspecified text.
[[nodiscard]] std::string unescapeCanonicalString(std::string_view literal);

/// Python's float.__repr__ (as used by json.dumps): "1.0", "1e+16", "1e-05", "-0.0",
/// "NaN", "Infinity", "-Infinity".
[[nodiscard]] std::string pythonFloatRepr(double d);

/// How writeString() writes text outside printable ASCII.
enum class Escape : std::uint8_t {
  Ascii,  ///< Python's json.dumps(ensure_ascii=True): \uXXXX (astral: surrogate pairs)
  Utf8,   ///< ensure_ascii=False: kept as UTF-8 (controls still escaped, DEL kept)
};

/// THE JSON string writer of the project: appends @p s (UTF-8) as a JSON string literal
/// the way Python's json.dumps writes it: `"` and `\` escaped, short escapes for \b \f \n
/// \r \t, other control characters as lowercase \u00XX, then as @p escape says. Lenient
/// with its input, always writing valid JSON: a UTF-8-encoded surrogate (a lone low
/// surrogate kept by parse()) is written as its \uXXXX escape, and a byte that is not
/// UTF-8 as U+FFFD.
void writeString(std::string_view s, std::string &out, Escape escape = Escape::Ascii);

/// writeString(s, out, Escape::Ascii): the canonical (signing) form of a string.
inline void writeAsciiString(std::string_view s, std::string &out) { writeString(s, out, Escape::Ascii); }

}  // namespace switchyard::json
