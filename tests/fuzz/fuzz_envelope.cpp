// SPDX-License-Identifier: MIT
//
// Fuzz target "envelope": the fedmsg envelope decoder, the canonical JSON parser and writer
// and the one-pass canonical scanner (libswitchyard-codec only). The input is one frame 1;
// its topic is the envelope's own (or the first line of the input when it has none).
// Properties (abort on violation):
//  - json::parse() accepts  =>  its canonical form parses again to a value whose canonical
//    form is the same bytes (the round trip), and canonicalize() agrees;
//  - scanCanonicalObject() accepts  =>  parse() accepts and the canonical form IS the input,
//    and the members it lists, joined, are the input;
//  - parseEnvelope() accepts  =>  decode() accepts the same frames with the same fields,
//    the body and headers are JSON (validateJson), the canonical form of the envelope decodes
//    to the same topic, msg_id and canonical body, and EnvelopeBuilder rebuilds an envelope
//    that decodes to the same topic and body;
//  - json::writeString() always writes a JSON string literal, which reads back as the input
//    when the input is valid UTF-8 (parse() refuses only the escape of an encoded high
//    surrogate, on purpose).
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.hpp"
#include "switchyard/fedmsg.hpp"
#include "switchyard/json.hpp"
#include "switchyard/message.hpp"

namespace sy = switchyard;
namespace json = switchyard::json;
namespace fedmsg = switchyard::fedmsg;

namespace {

std::string canonicalText(std::string_view text) {
  auto v = json::parse(text);
  FUZZ_CHECK(v.has_value());
  return json::canonical(*v);
}

void checkJson(std::string_view in) {
  std::string reason;
  auto v = json::parse(in, &reason);
  if (!v) {
    FUZZ_CHECK(!reason.empty());
    FUZZ_CHECK(!json::canonicalize(in).has_value());
  } else {
    const std::string c1 = json::canonical(*v);
    std::string reason2;
    auto v2 = json::parse(c1, &reason2);
    FUZZ_CHECK(v2.has_value());
    FUZZ_CHECK(json::canonical(*v2) == c1);
    auto c = json::canonicalize(in);
    FUZZ_CHECK(c.has_value() && *c == c1);
  }
  std::vector<json::RawMember> members;
  if (json::scanCanonicalObject(in, members)) {
    FUZZ_CHECK(v.has_value());
    FUZZ_CHECK(json::canonical(*v) == in);
    std::string joined = "{";
    for (std::size_t k = 0; k < members.size(); ++k) {
      joined += (k == 0 ? "" : ",");
      joined += members[k].member;
      FUZZ_CHECK(members[k].member.size() == members[k].key.size() + 3 + members[k].value.size());
    }
    joined += "}";
    FUZZ_CHECK(joined == in);
  }
}

void checkEnvelope(std::string_view in) {
  fedmsg::Envelope env;
  std::vector<json::RawMember> members;
  const fedmsg::Result r = fedmsg::parseEnvelope(in, env, {}, &members);
  std::string_view topic = in.substr(0, in.find('\n'));
  if (r.ok()) {
    topic = env.topic;
  }
  sy::Message msg;
  const fedmsg::Result d = fedmsg::decode(topic, in, msg);
  FUZZ_CHECK(d.ok() == r.ok());
  if (!r.ok()) {
    FUZZ_CHECK(!r.reason.empty());
    return;
  }
  FUZZ_CHECK(!env.topic.empty() && !env.msg_id.empty());
  FUZZ_CHECK(msg.topic() == env.topic);
  FUZZ_CHECK(msg.id() == env.msg_id);
  FUZZ_CHECK(msg.body() == env.msg);
  FUZZ_CHECK(msg.envelope() != nullptr && msg.envelope()->text == in);
  FUZZ_CHECK(fedmsg::validateJson(env.msg).ok());
  if (!env.headers.empty()) {
    FUZZ_CHECK(fedmsg::validateJson(env.headers, {}, true).ok());
  }
  // The whole envelope is JSON the canonical writer can render, and the canonical
  // rendering decodes to the same message.
  auto whole = json::parse(in);
  FUZZ_CHECK(whole.has_value());
  const std::string canon = json::canonical(*whole);
  fedmsg::Envelope env2;
  const fedmsg::Result r2 = fedmsg::parseEnvelope(canon, env2);
  FUZZ_CHECK(r2.ok());
  FUZZ_CHECK(env2.topic == env.topic && env2.msg_id == env.msg_id);
  FUZZ_CHECK(canonicalText(env2.msg) == canonicalText(env.msg));
  FUZZ_CHECK(env2.timestamp_ms == env.timestamp_ms);
  if (!members.empty()) {
    FUZZ_CHECK(canon == in);  // a canonical envelope lists its members only when it is canonical
  }
  // A message that did not arrive as fedmsg: the builder's envelope decodes to the same.
  sy::Message plain(msg.topic(), std::string(msg.body()));
  plain.setHeaders(std::string(msg.headers()));
  plain.setId(std::string(msg.id()));
  fedmsg::EnvelopeBuilder builder("fuzz");
  std::string built;
  const fedmsg::Result b = builder.build(plain, built);
  if (b.ok()) {
    fedmsg::Envelope env3;
    FUZZ_CHECK(fedmsg::parseEnvelope(built, env3).ok());
    FUZZ_CHECK(env3.topic == env.topic);
    FUZZ_CHECK(env3.msg == env.msg);
  } else {
    // Deeper than the envelope's nesting limit once wrapped, or an id the builder refuses.
    FUZZ_CHECK(b.reason == "too_deep" || b.reason == "invalid_utf8" || b.reason == "oversize");
  }
}

bool hasHighSurrogate(std::string_view s) {
  for (std::size_t k = 0; k + 1 < s.size(); ++k) {
    const auto b1 = static_cast<unsigned char>(s[k + 1]);
    if (static_cast<unsigned char>(s[k]) == 0xED && b1 >= 0xA0 && b1 <= 0xAF) {
      return true;
    }
  }
  return false;
}

void checkStrings(std::string_view in) {
  for (auto escape : {json::Escape::Ascii, json::Escape::Utf8}) {
    std::string lit;
    json::writeString(in, lit, escape);
    std::string reason;
    auto v = json::parse(lit, &reason);
    if (!v) {
      // A UTF-8-encoded high surrogate (ED A0..AF ..) is written as its \uD8xx escape,
      // which is JSON but which parse() refuses on purpose (docs/codec.md).
      FUZZ_CHECK(reason == "invalid_json" && hasHighSurrogate(in));
      continue;
    }
    FUZZ_CHECK(v->isString());
    if (fedmsg::isValidUtf8(in)) {
      FUZZ_CHECK(v->text == in);
    }
    if (escape == json::Escape::Ascii) {
      for (char ch : lit) {
        FUZZ_CHECK(static_cast<unsigned char>(ch) >= 0x20 && static_cast<unsigned char>(ch) < 0x7f);
      }
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
  const std::string_view in = syfuzz::bytes(data, size);
  checkJson(in);
  checkEnvelope(in);
  checkStrings(in);
  return 0;
}
