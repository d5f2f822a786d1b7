// SPDX-License-Identifier: MIT
#include "loop_guard.hpp"

#include "switchyard/fedmsg.hpp"
#include "switchyard/json.hpp"
#include "switchyard/parsed.hpp"

namespace switchyard::plugins {

const sy_config_key kLoopGuardSchema[] = {
    {"username_marker", SY_CFG_STRING, 0, "\"amqp-bridge\"",
     "Envelope `username` that marks a message published by the AMQP->ZeroMQ direction; such messages "
     "are dropped (loop_username). Empty disables the rule.",
     0},
    {"window", SY_CFG_INT, 0, "10000",
     "How many recently passed ids this instance remembers for the other direction's check (loop_id); "
     "0 disables the rule.",
     0},
    {"window_name", SY_CFG_STRING, 0, "\"default\"",
     "Name of the process-wide id window group shared by the loop-guards of the two bridge pipelines.", 0},
    {"direction", SY_CFG_STRING, 0, "\"\"",
     "Name under which this instance records ids; empty means the pipeline's name.", 0},
    {"header", SY_CFG_STRING, 0, "\"x-switchyard-bridged\"",
     "Provenance header: a message carrying it is dropped (loop_header). Empty disables the rule.", 0},
    {"mark", SY_CFG_STRING, 0, "\"\"",
     "When non-empty, set the provenance header to this value on every message that passes "
     "(e.g. zmq-to-amqp).",
     0},
    {"keep_signed", SY_CFG_BOOL, 0, "false",
     "Do not mark a message that still carries its original signed fedmsg envelope: the mark would change "
     "its headers and void the signature (bridges that carry signatures across, see docs/bridges.md).",
     0},
    {nullptr, 0, 0, nullptr, nullptr, 0},
};

// ---------------------------------------------------------------------------------------
// IdWindowGroup

bool IdWindowGroup::seenElsewhere(const std::string &direction, const std::string &id) {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto &[name, dir] : directions_) {
    if (name != direction && dir.ids.count(id) != 0) {
      return true;
    }
  }
  return false;
}

void IdWindowGroup::record(const std::string &direction, const std::string &id, std::size_t capacity) {
  std::lock_guard<std::mutex> lock(mu_);
  Direction &dir = directions_[direction];
  if (!dir.ids.insert(id).second) {
    return;  // already known: keeps its place (a duplicate does not extend its lifetime)
  }
  dir.order.push_back(id);
  while (dir.order.size() > capacity) {
    dir.ids.erase(dir.order.front());
    dir.order.pop_front();
  }
}

std::size_t IdWindowGroup::size(const std::string &direction) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = directions_.find(direction);
  return it == directions_.end() ? 0 : it->second.ids.size();
}

// ---------------------------------------------------------------------------------------
// LoopGuard

LoopGuardFactory::LoopGuardFactory(const sdk::Config &config) {
  auto s = std::make_shared<LoopGuardSettings>();
  s->username_marker = config.str("username_marker");
  s->direction = config.str("direction");
  s->header = config.str("header");
  s->mark = config.str("mark");
  s->keep_signed = config.has("keep_signed") && config.boolean("keep_signed");
  std::int64_t w = config.integer("window");
  if (w < 0) {
    throw sdk::ConfigError("window", "window must not be negative");
  }
  s->window = static_cast<std::size_t>(w);
  if (!s->mark.empty() && s->header.empty()) {
    throw sdk::ConfigError("mark", "mark needs a header name (header is empty)");
  }
  if (s->window > 0) {
    auto make = [] { return std::static_pointer_cast<void>(std::make_shared<IdWindowGroup>()); };
    if (Host *host = config.host(); host != nullptr) {
      // One type under this key, so the cast is safe.
      s->group = std::static_pointer_cast<IdWindowGroup>(host->shared("loop-guard.group." + config.str("window_name"), make));
      if (!s->group) {
        throw sdk::ConfigError("window_name", "cannot make the id window group");
      }
    } else {
      s->group = std::make_shared<IdWindowGroup>();
    }
  }
  settings_ = std::move(s);
}

Plugin *LoopGuardFactory::instantiate(const InstanceArgs &args) noexcept {
  return sdk::barrier(args.error, [&]() -> Plugin * { return make().release(); });
}

Status LoopGuard::start(FilterContext &ctx) noexcept {
  try {
    direction_ = s_->direction.empty() ? std::string(ctx.pipeline()) : s_->direction;
    unmarked_signed_ = &ctx.counter("unmarked_signed");
  } catch (const std::exception &e) {
    return Status::fatal(e.what());
  }
  return Status::ok();
}

Verdict LoopGuard::process(FilterContext &ctx, Message &msg) noexcept {
  try {
    return check(ctx, msg);
  } catch (const std::bad_alloc &) {
    return Verdict::error("out_of_memory", true);
  } catch (const std::exception &e) {
    ctx.log().error("loop-guard: {}", e.what());
    return Verdict::error("internal_error");
  }
}

namespace {

// The message's own envelope (still describing it) with a signature in it.
bool carriesSignedEnvelope(const Message &msg) {
  const auto &env = msg.envelope();
  if (!env) {
    return false;
  }
  if (!env->members.empty()) {  // canonical: the decode already listed its members
    for (const auto &m : env->members) {
      if (m.key == "signature") {
        return true;
      }
    }
    return false;
  }
  auto v = json::parse(env->text);
  return v && v->isObject() && v->find("signature") != nullptr;
}

// The headers' text with `"header":"mark"` added, written without serialising the headers
// again: appended before the closing brace of an object that has members (@p had_members:
// the text parsed as an object with members, and the header is not among them, or the
// message would have been dropped), else the one member alone. Headers whose keys sort
// before the header stay in canonical order.
std::string markedText(std::string_view text, bool had_members, const std::string &header, const std::string &mark) {
  while (!text.empty() && (text.back() == ' ' || text.back() == '\n' || text.back() == '\t' || text.back() == '\r')) {
    text.remove_suffix(1);
  }
  std::string out;
  out.reserve(text.size() + header.size() + mark.size() + 8);
  if (had_members && !text.empty() && text.back() == '}') {
    out.append(text.substr(0, text.size() - 1));
    out += ',';
  } else {
    out += '{';
  }
  json::writeAsciiString(header, out);
  out += ':';
  json::writeAsciiString(mark, out);
  out += '}';
  return out;
}

}  // namespace

Verdict LoopGuard::check(FilterContext &ctx, Message &msg) {
  const LoopGuardSettings &s = *s_;
  if (!s.username_marker.empty()) {
    std::optional<std::string> username;
    if (const auto &env = msg.envelope(); env && env->fields.has_username) {
      username.emplace(env->fields.username);
    } else if (env && env->fields.topic.empty()) {
      // Attached without decoding (the codec always fills `topic`): read the envelope itself.
      if (auto v = json::parse(env->text)) {
        if (auto u = v->findString("username")) {
          username.emplace(*u);
        }
      }
    }
    if (username && *username == s.username_marker) {
      ctx.log().debug("dropping '{}' on '{}': username '{}' marks a message from the other bus", msg.id(),
                      msg.topic(), *username);
      return Verdict::drop("loop_username");
    }
  }
  const json::Value *headers = nullptr;
  if (!s.header.empty()) {
    headers = codec::parsedHeaders(msg);  // parsed once per message, shared with the other stages
    if (headers != nullptr && headers->find(s.header) != nullptr) {
      ctx.log().debug("dropping '{}' on '{}': header '{}' marks a bridged message", msg.id(), msg.topic(), s.header);
      return Verdict::drop("loop_header");
    }
  }
  std::string id(fedmsg::stripYearPrefix(msg.id()));
  if (s.group && !id.empty()) {
    if (s.group->seenElsewhere(direction_, id)) {
      ctx.log().debug("dropping '{}' on '{}': id recently passed the other direction", msg.id(), msg.topic());
      return Verdict::drop("loop_id");
    }
    s.group->record(direction_, id, s.window);
  }
  if (!s.mark.empty() && s.keep_signed && carriesSignedEnvelope(msg)) {
    if (unmarked_signed_ != nullptr) {
      unmarked_signed_->add();
    }
    return Verdict::pass();
  }
  if (!s.mark.empty()) {
    auto marked = std::make_shared<json::Value>(headers != nullptr ? *headers : json::Value::object());
    marked->set(s.header, json::Value::fromString(s.mark));
    msg.setHeaders(markedText(msg.headers(), marked->members.size() > 1, s.header, s.mark));  // drops the envelope
    // The tree of the new text is at hand: later stages (amqp-publish, the signer) need
    // not parse it.
    msg.cacheParsedHeaders(std::move(marked));
  }
  return Verdict::pass();
}

}  // namespace switchyard::plugins
