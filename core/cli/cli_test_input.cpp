// SPDX-License-Identifier: MIT
// `switchyard test`: input messages made ready for their stand-in, and the real signer and
// verifier plugins (see cli_test_run.hpp).
#include <fmt/format.h>

#include "cli_test_run.hpp"
#include "config_detail.hpp"
#include "registry.hpp"
#include "switchyard/fedmsg.hpp"

namespace switchyard::cli::pipetest {
namespace {

using config_detail::joinPath;
using Kind = TNode::Kind;

struct Shape {
  const TestFile &f;
  std::vector<Diagnostic> &diags;
  void add(Mark m, const std::string &path, std::string message) const {
    diags.push_back({f.path, m.line, m.column, path, std::move(message)});
  }
  bool allowOnly(const TNode &n, const std::string &path, const std::vector<std::string> &allowed,
                 std::string_view type) const {
    bool ok = true;
    for (const auto &e : n.entries) {
      if (!config_detail::isKnown(allowed, e.key)) {
        add(e.key_mark, joinPath(path, e.key),
            fmt::format("unknown key '{}' in an input message of {}{}; allowed keys: {}", e.key, type,
                        config_detail::suggestion(e.key, allowed), config_detail::join(allowed)));
        ok = false;
      }
    }
    return ok;
  }
  const TNode *string(const TNode &n, const std::string &path, const char *key, bool required) const {
    const auto *e = n.find(key);
    if (e == nullptr) {
      if (required) {
        add(n.mark, joinPath(path, key), fmt::format("missing: {}", key));
      }
      return nullptr;
    }
    if (e->value->kind != Kind::Scalar) {
      add(e->value->mark, joinPath(path, key), fmt::format("{} must be a string", key));
      return nullptr;
    }
    return e->value.get();
  }
};

bool zmqInput(const Shape &s, const TestInput &in, PluginTools &tools, RawInput &out) {
  const TNode &n = *in.node;
  out.kind = RawInput::Kind::Zmq;
  if (!s.allowOnly(n, in.path, {"frames", "topic", "envelope", "sign", "tamper"}, "zmq-sub")) {
    return false;
  }
  if (const auto *fr = n.find("frames"); fr != nullptr) {
    if (n.entries.size() != 1) {
      s.add(fr->key_mark, joinPath(in.path, "frames"), "frames (the raw multipart message) goes alone");
      return false;
    }
    if (fr->value->kind != Kind::Sequence) {
      s.add(fr->value->mark, joinPath(in.path, "frames"), "frames must be a list of strings");
      return false;
    }
    for (const auto &item : fr->value->items) {
      if (item->kind != Kind::Scalar) {
        s.add(item->mark, joinPath(in.path, "frames"), "each frame must be a string");
        return false;
      }
      out.frames.push_back(item->scalar);
    }
    return true;
  }
  const auto *env = n.find("envelope");
  if (env == nullptr) {
    s.add(n.mark, in.path, "a zmq-sub input message needs envelope (a mapping, or the JSON text) or frames");
    return false;
  }
  std::string topic;
  std::string text;
  if (env->value->kind == Kind::Map) {
    json::Value v = toJson(*env->value);
    text = json::canonical(v);  // what fedmsg publishers send: canonical JSON
    if (auto t = v.findString("topic")) {
      topic = std::string(*t);
    }
  } else if (env->value->kind == Kind::Scalar) {
    text = env->value->scalar;
    if (auto v = json::parse(text); v && v->isObject()) {
      if (auto t = v->findString("topic")) {
        topic = std::string(*t);
      }
    }
  } else {
    s.add(env->value->mark, joinPath(in.path, "envelope"), "envelope must be a mapping or the envelope's JSON text");
    return false;
  }
  std::string frame_topic = topic;  // frame 0 on the wire: the envelope's topic unless given
  if (const TNode *t = s.string(n, in.path, "topic", false)) {
    frame_topic = t->scalar;
  }
  const auto *sign = n.find("sign");
  const auto *tamper = n.find("tamper");
  if ((sign != nullptr || tamper != nullptr) && env->value->kind != Kind::Map) {
    s.add(env->value->mark, joinPath(in.path, "envelope"), "sign and tamper need the envelope as a mapping");
    return false;
  }
  if (sign != nullptr) {
    std::string at = joinPath(in.path, "sign");
    if (sign->value->kind != Kind::Map || !s.allowOnly(*sign->value, at, {"cert_file", "key_file"}, "zmq-sub (sign)")) {
      s.add(sign->value->mark, at, "sign takes {cert_file: ..., key_file: ...}");
      return false;
    }
    const TNode *cert = s.string(*sign->value, at, "cert_file", true);
    const TNode *key = s.string(*sign->value, at, "key_file", true);
    if (cert == nullptr || key == nullptr) {
      return false;
    }
    Message m;
    auto r = fedmsg::decode(topic, text, m);
    if (!r.ok()) {
      s.add(env->value->mark, joinPath(in.path, "envelope"),
            fmt::format("cannot sign an envelope that does not decode ({}: {})", r.reason, r.detail));
      return false;
    }
    try {
      text = tools.sign(resolvePath(s.f, cert->scalar), resolvePath(s.f, key->scalar), std::move(m));
    } catch (const std::exception &e) {
      s.add(sign->value->mark, at, e.what());
      return false;
    }
  }
  if (tamper != nullptr) {
    std::string at = joinPath(in.path, "tamper");
    if (tamper->value->kind != Kind::Map) {
      s.add(tamper->value->mark, at, "tamper must be a mapping of the envelope keys to replace");
      return false;
    }
    auto v = json::parse(text);
    if (!v || !v->isObject()) {
      s.add(tamper->value->mark, at, "cannot tamper with an envelope that is not a JSON object");
      return false;
    }
    for (const auto &e : tamper->value->entries) {
      v->set(e.key, toJson(*e.value));
    }
    text = json::canonical(*v);
  }
  out.frames = {frame_topic, text};
  return true;
}

bool amqpInput(const Shape &s, const TestInput &in, RawInput &out) {
  const TNode &n = *in.node;
  out.kind = RawInput::Kind::Amqp;
  if (!s.allowOnly(n, in.path,
                   {"routing_key", "body", "body_text", "headers", "message_id", "timestamp", "redelivered", "exchange"},
                   "amqp-consume")) {
    return false;
  }
  const TNode *rk = s.string(n, in.path, "routing_key", true);
  if (rk == nullptr) {
    return false;
  }
  out.routing_key = rk->scalar;
  const auto *body = n.find("body");
  const TNode *body_text = s.string(n, in.path, "body_text", false);
  if ((body == nullptr) == (body_text == nullptr)) {
    s.add(n.mark, in.path, "give the body as body (a value, sent as its JSON) or body_text (the bytes as they are)");
    return false;
  }
  out.body = body != nullptr ? json::canonical(toJson(*body->value)) : body_text->scalar;
  if (const auto *h = n.find("headers"); h != nullptr) {
    if (h->value->kind != Kind::Map) {
      s.add(h->value->mark, joinPath(in.path, "headers"), "headers must be a mapping (the AMQP headers table)");
      return false;
    }
    out.headers = toJson(*h->value);
  }
  if (const TNode *id = s.string(n, in.path, "message_id", false)) {
    out.message_id = id->scalar;
  }
  if (const TNode *ex = s.string(n, in.path, "exchange", false)) {
    out.exchange = ex->scalar;
  }
  if (const auto *ts = n.find("timestamp"); ts != nullptr) {
    std::int64_t v = 0;
    if (ts->value->kind != Kind::Scalar || !config_detail::parseInt(ts->value->scalar, v) || v < 0) {
      s.add(ts->value->mark, joinPath(in.path, "timestamp"), "timestamp must be whole seconds since 1970, 0 or more");
      return false;
    }
    out.timestamp_s = static_cast<std::uint64_t>(v);
  }
  if (const auto *rd = n.find("redelivered"); rd != nullptr) {
    if (rd->value->kind != Kind::Scalar || !config_detail::parseBoolWord(rd->value->scalar, out.redelivered)) {
      s.add(rd->value->mark, joinPath(in.path, "redelivered"), "redelivered must be true or false");
      return false;
    }
  }
  return true;
}

bool stdinInput(const Shape &s, const TestInput &in, RawInput &out) {
  const TNode &n = *in.node;
  out.kind = RawInput::Kind::Line;
  if (!s.allowOnly(n, in.path, {"line", "message"}, "stdin")) {
    return false;
  }
  const TNode *line = s.string(n, in.path, "line", false);
  const auto *msg = n.find("message");
  if ((line == nullptr) == (msg == nullptr)) {
    s.add(n.mark, in.path, "give the line as line (the text as it is) or message ({topic, body, headers, id})");
    return false;
  }
  out.line = line != nullptr ? line->scalar : json::canonical(toJson(*msg->value));
  return true;
}

}  // namespace

bool prepareInput(const TestFile &f, const TestInput &in, std::string_view input_type, PluginTools &tools,
                  RawInput &out, std::vector<Diagnostic> &diags) {
  Shape s{f, diags};
  if (in.node->kind != Kind::Map) {
    s.add(in.node->mark, in.path, "an input message must be a mapping");
    return false;
  }
  if (input_type == "zmq-sub") {
    return zmqInput(s, in, tools, out);
  }
  if (input_type == "amqp-consume") {
    return amqpInput(s, in, out);
  }
  return stdinInput(s, in, out);
}

// --- PluginTools ---------------------------------------------------------------------------

std::string PluginTools::pluginFile(const std::string &name) {
  if (auto it = files_.find(name); it != files_.end()) {
    return it->second;
  }
  PluginRegistry registry;
  registry.scan(search_path_);
  const PluginDescriptor *d = registry.find(name);
  if (d == nullptr || d->inProcess()) {
    std::string dirs;
    for (const auto &dir : registry.directories()) {
      dirs += (dirs.empty() ? "" : ":") + dir;
    }
    throw std::runtime_error(fmt::format("the {} plugin is not in the plugin search path ({})", name, dirs));
  }
  files_[name] = d->path;
  return d->path;
}

std::string PluginTools::sign(const std::string &cert_file, const std::string &key_file, Message msg) {
  std::string k = cert_file + '\n' + key_file;
  auto &h = signers_[k];
  if (!h) {
    std::string config = fmt::format(R"({{"cert_file":{},"key_file":{}}})", json::canonical(json::Value::fromString(cert_file)),
                                     json::canonical(json::Value::fromString(key_file)));
    try {
      h = std::make_unique<testkit::Harness>(testkit::Harness::load(pluginFile("signer"), config));
    } catch (const std::exception &e) {
      signers_.erase(k);
      throw std::runtime_error(fmt::format("cannot sign with {} and {}: {}", cert_file, key_file, e.what()));
    }
  }
  auto r = h->process(std::move(msg));
  if (r.verdict.kind != Verdict::Kind::Pass || !r.message.envelope()) {
    throw std::runtime_error(fmt::format("the signer refused the envelope ({})", r.verdict.reason));
  }
  return r.message.envelope()->text;
}

std::string PluginTools::verify(const VerifySpec &spec, Message msg) {
  std::string k = spec.ca_file + '\n' + spec.crl_file;
  auto &h = verifiers_[k];
  if (!h) {
    std::string config = fmt::format(R"({{"ca_file":{},"nitpicky":false,"allow_unsigned":false{}}})",
                                     json::canonical(json::Value::fromString(spec.ca_file)),
                                     spec.crl_file.empty() ? std::string()
                                                           : ",\"crl_file\":" +
                                                                 json::canonical(json::Value::fromString(spec.crl_file)));
    try {
      h = std::make_unique<testkit::Harness>(testkit::Harness::load(pluginFile("verifier"), config));
    } catch (const std::exception &e) {
      verifiers_.erase(k);
      return fmt::format("cannot verify with CA {}: {}", spec.ca_file, e.what());
    }
  }
  auto r = h->process(std::move(msg));
  if (r.verdict.kind == Verdict::Kind::Pass) {
    return {};
  }
  return fmt::format("the verifier {} it ({})", r.verdict.kind == Verdict::Kind::Drop ? "dropped" : "refused",
                     r.verdict.reason);
}

}  // namespace switchyard::cli::pipetest
