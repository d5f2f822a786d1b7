// SPDX-License-Identifier: MIT
#include "http_in_body.hpp"

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <chrono>

#include <fmt/format.h>

#include "switchyard/fedmsg.hpp"

namespace switchyard::httpin {

namespace {

std::string write(const rapidjson::Value &v) {
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  v.Accept(w);
  return {sb.GetString(), sb.GetSize()};
}

bool plainText(std::string_view s) {
  for (unsigned char ch : s) {
    if (ch < 0x20 || ch == 0x7f) {
      return false;
    }
  }
  return true;
}

/// The deepest nesting of objects and arrays in @p text (strings skipped). Checked before
/// parsing: the parser is iterative, but serialising the body again (Accept) recurses.
constexpr int kMaxDepth = 512;
int nesting(std::string_view text) {
  int depth = 0, deepest = 0;
  bool in_string = false, escaped = false;
  for (char ch : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (ch == '\\') {
        escaped = true;
      } else if (ch == '"') {
        in_string = false;
      }
    } else if (ch == '"') {
      in_string = true;
    } else if (ch == '{' || ch == '[') {
      deepest = std::max(deepest, ++depth);
    } else if (ch == '}' || ch == ']') {
      --depth;
    }
  }
  return deepest;
}

}  // namespace

bool parseMessage(std::string_view text, Message &out, std::string &err) {
  if (nesting(text) > kMaxDepth) {
    err = fmt::format("nested deeper than {} levels", kMaxDepth);
    return false;
  }
  rapidjson::Document d;
  // Iterative: a deeply nested body cannot exhaust the stack. Validated: UTF-8 only.
  d.Parse<rapidjson::kParseIterativeFlag | rapidjson::kParseValidateEncodingFlag>(text.data(), text.size());
  if (d.HasParseError()) {
    err = fmt::format("not valid JSON at offset {}: {}", d.GetErrorOffset(), rapidjson::GetParseError_En(d.GetParseError()));
    return false;
  }
  if (!d.IsObject()) {
    err = "the message must be a JSON object {\"topic\": ..., \"body\": {...}, \"headers\": {...}, \"id\": ...}";
    return false;
  }
  const rapidjson::Value *topic = nullptr, *body = nullptr, *headers = nullptr, *id = nullptr;
  for (const auto &m : d.GetObject()) {
    std::string_view k(m.name.GetString(), m.name.GetStringLength());
    if (k == "topic") {
      topic = &m.value;
    } else if (k == "body") {
      body = &m.value;
    } else if (k == "headers") {
      headers = &m.value;
    } else if (k == "id") {
      id = &m.value;
    } else {
      err = fmt::format("unknown field \"{}\": a message has topic, body, headers and id", k);
      return false;
    }
  }
  if (topic == nullptr || !topic->IsString() || topic->GetStringLength() == 0) {
    err = "\"topic\" must be a non-empty string";
    return false;
  }
  std::string_view t(topic->GetString(), topic->GetStringLength());
  if (t.size() > 255 || !plainText(t) || t.find(' ') != std::string_view::npos) {
    err = "\"topic\" must be at most 255 bytes without spaces or control characters";
    return false;
  }
  if (body == nullptr) {
    err = "\"body\" is missing: the message's content, a JSON object";
    return false;
  }
  if (!body->IsObject()) {
    err = "\"body\" must be a JSON object";
    return false;
  }
  if (headers != nullptr && !headers->IsObject()) {
    err = "\"headers\" must be a JSON object (or left out)";
    return false;
  }
  std::string msg_id;
  if (id != nullptr) {
    if (!id->IsString() || id->GetStringLength() == 0 || id->GetStringLength() > 255 ||
        !plainText({id->GetString(), id->GetStringLength()})) {
      err = "\"id\" must be a non-empty string of at most 255 bytes without control characters (or left out)";
      return false;
    }
    msg_id.assign(id->GetString(), id->GetStringLength());
  } else {
    msg_id = fedmsg::newMsgId();
  }
  auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                 std::chrono::system_clock::now().time_since_epoch())
                 .count();
  out = Message(std::string(t), write(*body), headers != nullptr ? write(*headers) : std::string("{}"),
                std::move(msg_id), now);
  return true;
}

std::vector<Line> splitLines(std::string_view body) {
  std::vector<Line> out;
  std::size_t number = 0;
  while (!body.empty()) {
    ++number;
    auto nl = body.find('\n');
    std::string_view line = body.substr(0, nl);
    body.remove_prefix(nl == std::string_view::npos ? body.size() : nl + 1);
    if (!line.empty() && line.back() == '\r') {
      line.remove_suffix(1);
    }
    if (line.find_first_not_of(" \t") != std::string_view::npos) {
      out.push_back({number, line});
    }
  }
  return out;
}

std::string responseJson(std::string_view status, std::string_view error, std::string_view detail,
                         const std::vector<std::string> &ids, bool single, const std::vector<LineResult> *results) {
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  auto str = [&](std::string_view s) { w.String(s.data(), static_cast<rapidjson::SizeType>(s.size())); };
  w.StartObject();
  w.Key("status");
  str(status);
  if (!error.empty()) {
    w.Key("error");
    str(error);
  }
  if (!detail.empty()) {
    w.Key("detail");
    str(detail);
  }
  if (single && ids.size() == 1) {
    w.Key("id");
    str(ids[0]);
  }
  if (!ids.empty()) {
    w.Key("ids");
    w.StartArray();
    for (const auto &i : ids) {
      str(i);
    }
    w.EndArray();
  }
  if (results != nullptr) {
    w.Key("results");
    w.StartArray();
    for (const auto &r : *results) {
      w.StartObject();
      if (r.line != 0) {
        w.Key("line");
        w.Uint64(r.line);
      }
      w.Key("id");
      str(r.id);
      w.Key("outcome");
      str(r.outcome);
      if (!r.reason.empty()) {
        w.Key("reason");
        str(r.reason);
      }
      w.EndObject();
    }
    w.EndArray();
  }
  w.EndObject();
  std::string s(sb.GetString(), sb.GetSize());
  s += '\n';
  return s;
}

}  // namespace switchyard::httpin
