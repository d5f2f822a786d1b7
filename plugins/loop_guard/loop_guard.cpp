// SPDX-License-Identifier: MIT
#include "loop_guard.hpp"

#include "switchyard/fedmsg.hpp"
#include "switchyard/json.hpp"

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

std::shared_ptr<IdWindowGroup> IdWindowGroup::get(const std::string &name) {
  static std::mutex mu;
  static std::map<std::string, std::weak_ptr<IdWindowGroup>> groups;
  std::lock_guard<std::mutex> lock(mu);
  auto &slot = groups[name];
  auto group = slot.lock();
  if (!group) {
    group = std::make_shared<IdWindowGroup>();
    slot = group;
  }
  return group;
}

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

std::string_view stripYearPrefix(std::string_view id) noexcept {
  if (id.size() > 5 && id[4] == '-') {
    for (std::size_t i = 0; i < 4; ++i) {
      if (id[i] < '0' || id[i] > '9') {
        return id;
      }
    }
    return id.substr(5);
  }
  return id;
}

// ---------------------------------------------------------------------------------------
// LoopGuard

LoopGuard::LoopGuard(const sdk::Config &config)
    : username_marker_(config.str("username_marker")),
      window_(0),
      window_name_(config.str("window_name")),
      direction_(config.str("direction")),
      header_(config.str("header")),
      mark_(config.str("mark")),
      keep_signed_(config.has("keep_signed") && config.boolean("keep_signed")) {
  std::int64_t w = config.integer("window");
  if (w < 0) {
    throw sdk::ConfigError("window", "window must not be negative");
  }
  window_ = static_cast<std::size_t>(w);
  if (!mark_.empty() && header_.empty()) {
    throw sdk::ConfigError("mark", "mark needs a header name (header is empty)");
  }
}

Status LoopGuard::start(FilterContext &ctx) noexcept {
  try {
    if (direction_.empty()) {
      direction_.assign(ctx.pipeline());
    }
    if (window_ > 0) {
      group_ = IdWindowGroup::get(window_name_);
    }
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

}  // namespace

Verdict LoopGuard::check(FilterContext &ctx, Message &msg) {
  if (!username_marker_.empty()) {
    std::optional<std::string> username;
    if (const auto &env = msg.envelope(); env && env->fields.has_username) {
      username.emplace(env->fields.username);
    } else if (env && env->fields.topic.empty()) {
      // Attached without decoding (the codec always fills `topic`): read the envelope itself.
      if (auto v = json::parse(env->text)) {
        if (auto s = v->findString("username")) {
          username.emplace(*s);
        }
      }
    }
    if (username && *username == username_marker_) {
      ctx.log().debug("dropping '{}' on '{}': username '{}' marks a message from the other bus", msg.id(),
                      msg.topic(), *username);
      return Verdict::drop("loop_username");
    }
  }
  std::optional<json::Value> headers;
  if (!header_.empty()) {
    headers = json::parse(msg.headers());
    if (headers && headers->find(header_) != nullptr) {
      ctx.log().debug("dropping '{}' on '{}': header '{}' marks a bridged message", msg.id(), msg.topic(), header_);
      return Verdict::drop("loop_header");
    }
  }
  std::string id(stripYearPrefix(msg.id()));
  if (group_ && !id.empty()) {
    if (group_->seenElsewhere(direction_, id)) {
      ctx.log().debug("dropping '{}' on '{}': id recently passed the other direction", msg.id(), msg.topic());
      return Verdict::drop("loop_id");
    }
    group_->record(direction_, id, window_);
  }
  if (!mark_.empty() && keep_signed_ && carriesSignedEnvelope(msg)) {
    unmarked_signed_->add();
    return Verdict::pass();
  }
  if (!mark_.empty()) {
    if (!headers || !headers->isObject()) {
      headers = json::Value::object();
    }
    headers->set(header_, json::Value::fromString(mark_));
    msg.setHeaders(json::canonical(*headers));  // drops the envelope, which no longer describes it
  }
  return Verdict::pass();
}

}  // namespace switchyard::plugins
