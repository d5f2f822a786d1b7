// SPDX-License-Identifier: MIT
// zmq-pub's replay side: numbering, the store, the endpoint (see zmq_pub_replay.hpp).
#include "zmq_pub_replay.hpp"

#include <cstdlib>
#include <vector>

#ifdef SY_HAVE_STORE_DB
#include "replay_db.hpp"
#endif

namespace switchyard::zmqt {
namespace {

double secondsOf(std::string_view number_text) {
  if (number_text.empty()) {
    return 0;
  }
  return std::strtod(std::string(number_text).c_str(), nullptr);
}

/// msg_id and timestamp of an envelope the sink built (canonical JSON, so the one-pass
/// scan reads it without building a tree).
void readBuilt(std::string_view envelope, replay::Record &r) {
  std::vector<json::RawMember> members;
  if (!json::scanCanonicalObject(envelope, members)) {
    return;
  }
  for (const json::RawMember &m : members) {
    if (m.key == "msg_id" && !m.value.empty() && m.value.front() == '"') {
      r.msg_id = json::unescapeCanonicalString(m.value);
    } else if (m.key == "timestamp") {
      r.timestamp = secondsOf(m.value);
    }
  }
}

}  // namespace

Status PubReplay::start(SinkContext &ctx) noexcept {
  try {
    store_failed_ = &ctx.counter("replay_store_failed");
    messages_gauge_ = &ctx.gauge("replay_store_messages");
    bytes_gauge_ = &ctx.gauge("replay_store_bytes");
    if (!settings_.replay_database.empty()) {
#ifdef SY_HAVE_STORE_DB
      std::string name = settings_.replay_name.empty() ? std::string(ctx.pipeline()) : settings_.replay_name;
      std::string error;
      store_ = store::openReplayStore(settings_.replay_database, name, error);
      if (!store_) {
        return Status::fatal(fmt::format("cannot open the replay database (replay_database): {}", error),
                             "replay_database");
      }
      ctx.log().info("replay records kept in the message store's database as publisher '{}', next seq_id {}", name,
                     store_->nextSeqId());
#else
      return Status::fatal("this build has no message store: remove replay_database", "replay_database");
#endif
    } else {
      store_ = replay::makeMemoryStore(settings_.replay_max_messages, settings_.replay_max_bytes);
    }
    server_ = std::make_unique<ReplayServer>(zctx_, store_, settings_.replay_max_reply, ReplayCounters::from(ctx),
                                             ctx.log());
    Status s = server_->start(settings_.replay_endpoint);
    if (!s.isOk()) {
      server_.reset();
      store_.reset();
      return s;
    }
    refreshGauges(true);
    return Status::ok();
  } catch (const std::exception &e) {
    server_.reset();
    store_.reset();
    return Status::fatal(fmt::format("cannot set up the replay store: {}", e.what()), "replay_endpoint");
  }
}

void PubReplay::stop() noexcept {
  if (server_) {
    server_->stop();
    server_.reset();
  }
  store_.reset();
}

std::string_view PubReplay::number(SinkContext &ctx, const Message &msg, std::string_view envelope, bool built,
                                   std::size_t max_bytes) {
  replay::Record r;
  try {
    r.seq_id = store_->nextSeqId();
    auto text = replay::insertSeqId(envelope, r.seq_id);
    if (!text) {
      throw std::runtime_error("the envelope is not a JSON object");
    }
    numbered_ = std::move(*text);
    if (numbered_.size() > max_bytes) {
      return numbered_;
    }
    r.topic = msg.topic();
    if (const auto &wire = msg.envelope(); wire && !built) {
      r.msg_id = wire->fields.msg_id;
      r.timestamp = secondsOf(wire->fields.timestamp);
    } else {
      readBuilt(envelope, r);
    }
    r.envelope = numbered_;
    store_->add(std::move(r));
  } catch (const std::exception &e) {
    store_failed_->add();
    drop_log_.warn(ctx, "replay_store_failed", "replay: cannot keep the message (published without seq_id): {}",
                   e.what());
    return envelope;
  }
  refreshGauges(false);
  return numbered_;
}

void PubReplay::refreshGauges(bool force) noexcept {
  if (!store_ || messages_gauge_ == nullptr) {
    return;
  }
  auto now = Clock::now();
  if (!force && now < next_gauges_) {
    return;
  }
  next_gauges_ = now + std::chrono::milliseconds(250);
  try {
    messages_gauge_->set(static_cast<std::int64_t>(store_->size()));
    bytes_gauge_->set(static_cast<std::int64_t>(store_->bytes()));
  } catch (...) {  // a database that cannot count now: the gauges keep their last value
  }
}

}  // namespace switchyard::zmqt
