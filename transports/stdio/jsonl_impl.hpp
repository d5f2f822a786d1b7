// SPDX-License-Identifier: MIT
// Implementation of jsonl.hpp, included by exactly one translation unit per plugin (each
// plugin is one .so with hidden symbols, so the code is compiled into both).
#pragma once

#include <rapidjson/error/en.h>
#include <rapidjson/memorystream.h>

#include <fmt/format.h>

#include "jsonl.hpp"

namespace switchyard::jsonl {
namespace {

/// Records where the top-level values of interest start and end in the line.
/// The recursive reader is used because its callbacks come right after each token, which
/// is what the raw-substring positions need; the depth guard below stops it long before
/// the recursion could exhaust the stack.
constexpr int kMaxDepth = 512;

/// RapidJSON copies a GenericStringStream into a local while it parses a string or a
/// number and writes it back only after the handler ran, so positions read in Key/String
/// callbacks would lag. A derived stream type has the default StreamTraits (no copy
/// optimisation): the reader then advances this very object.
struct PosStream : rapidjson::StringStream {
  using rapidjson::StringStream::StringStream;
};

struct Scanner : rapidjson::BaseReaderHandler<rapidjson::UTF8<>, Scanner> {
  int depth = 0;
  std::string key;           // current top-level key
  std::size_t value_start = 0;
  const PosStream *stream = nullptr;
  const char *begin = nullptr;
  struct Raw {
    std::size_t start = 0, end = 0;
    bool set = false;
    bool is_string = false;
    bool is_object = false;
    std::string str;
  } topic, body, headers, id;
  std::string bad;

  Raw *slot() {
    if (key == "topic") return &topic;
    if (key == "body") return &body;
    if (key == "headers") return &headers;
    if (key == "id") return &id;
    return nullptr;
  }
  std::size_t pos() const { return static_cast<std::size_t>(stream->src_ - begin); }
  bool scalarEnd(bool is_string, const char *s = nullptr, rapidjson::SizeType n = 0) {
    if (depth == 1) {
      if (Raw *r = slot()) {
        r->start = value_start;
        r->end = pos();
        r->set = true;
        r->is_string = is_string;
        if (is_string) {
          r->str.assign(s, n);
        }
      }
    }
    return true;
  }
  bool Default() { return scalarEnd(false); }
  bool String(const char *s, rapidjson::SizeType n, bool) { return scalarEnd(true, s, n); }
  bool Key(const char *s, rapidjson::SizeType n, bool) {
    if (depth == 1) {
      key.assign(s, n);
      value_start = pos();
    }
    return true;
  }
  bool StartObject() {
    if (++depth > kMaxDepth) {
      bad = "too_deep";
      return false;
    }
    return true;
  }
  bool EndObject(rapidjson::SizeType) {
    --depth;
    if (depth == 1) {
      if (Raw *r = slot()) {
        r->start = value_start;
        r->end = pos();
        r->set = true;
        r->is_object = true;
      }
    }
    return true;
  }
  bool StartArray() {
    if (depth == 0) {
      bad = "not_an_object";
      return false;
    }
    if (++depth > kMaxDepth) {
      bad = "too_deep";
      return false;
    }
    return true;
  }
  bool EndArray(rapidjson::SizeType) {
    --depth;
    return scalarEnd(false);
  }
};

std::string_view rawValue(std::string_view line, const Scanner::Raw &r) {
  std::string_view v = line.substr(r.start, r.end - r.start);
  // The recorded start is just after the key: skip whitespace and the colon.
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t' || v.front() == ':' ||
                        v.front() == '\r' || v.front() == '\n')) {
    v.remove_prefix(1);
  }
  return v;
}

}  // namespace

std::string parseLine(std::string_view line, Message &out, std::string &detail) {
  Scanner sc;
  PosStream ss(line.data());
  sc.stream = &ss;
  sc.begin = line.data();
  rapidjson::Reader reader;
  // The line is NUL-terminated by the caller (std::string storage); embedded NULs end it.
  auto result = reader.Parse<rapidjson::kParseValidateEncodingFlag>(ss, sc);
  if (!sc.bad.empty()) {
    detail = sc.bad == "too_deep" ? fmt::format("nested deeper than {} levels", kMaxDepth)
                                  : std::string("the line is not a JSON object");
    return sc.bad;
  }
  if (result.IsError()) {
    detail = fmt::format("invalid JSON at offset {}: {}", result.Offset(),
                         rapidjson::GetParseError_En(result.Code()));
    return result.Code() == rapidjson::kParseErrorStringInvalidEncoding ? "invalid_utf8" : "invalid_json";
  }
  if (!sc.topic.set && !sc.body.set && !sc.headers.set && !sc.id.set) {
    // A scalar or an object with none of our keys.
    std::string_view t = line;
    while (!t.empty() && (t.front() == ' ' || t.front() == '\t')) {
      t.remove_prefix(1);
    }
    if (t.empty() || t.front() != '{') {
      detail = "the line is not a JSON object";
      return "not_an_object";
    }
  }
  if (!sc.topic.set || !sc.topic.is_string || sc.topic.str.empty()) {
    detail = "\"topic\" must be a non-empty string";
    return "missing_topic";
  }
  if (sc.headers.set && !sc.headers.is_object) {
    detail = "\"headers\" must be a JSON object";
    return "bad_headers";
  }
  if (sc.id.set && !sc.id.is_string) {
    detail = "\"id\" must be a string";
    return "bad_id";
  }
  out.setTopic(std::move(sc.topic.str));
  out.setBody(sc.body.set ? std::string(rawValue(line, sc.body)) : std::string("{}"));
  out.setHeaders(sc.headers.set ? std::string(rawValue(line, sc.headers)) : std::string("{}"));
  out.setId(sc.id.set ? std::move(sc.id.str) : std::string());
  return {};
}

namespace {
/// Appends JSON text on one line. A raw line feed can only be whitespace in valid JSON
/// (strings hold it escaped), so replacing it with a space keeps the value and the
/// one-message-per-line framing; every other byte is kept.
void appendOneLine(std::string &out, std::string_view json) {
  std::size_t start = out.size();
  out += json;
  if (json.find('\n') != std::string_view::npos) {
    for (std::size_t i = start; i < out.size(); ++i) {
      if (out[i] == '\n') {
        out[i] = ' ';
      }
    }
  }
}
}  // namespace

void formatLine(const Message &m, std::string &out) {
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  out += "{\"topic\":";
  w.String(m.topic().data(), static_cast<rapidjson::SizeType>(m.topic().size()));
  out.append(sb.GetString(), sb.GetSize());
  out += ",\"body\":";
  appendOneLine(out, m.body().empty() ? std::string_view("null") : std::string_view(m.body()));
  out += ",\"headers\":";
  appendOneLine(out, m.headers().empty() ? std::string_view("{}") : std::string_view(m.headers()));
  out += ",\"id\":";
  sb.Clear();
  w.Reset(sb);
  w.String(m.id().data(), static_cast<rapidjson::SizeType>(m.id().size()));
  out.append(sb.GetString(), sb.GetSize());
  out += '}';
}

}  // namespace switchyard::jsonl
