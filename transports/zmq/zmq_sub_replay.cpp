// SPDX-License-Identifier: MIT
// zmq-sub's gap backfill from replay endpoints (see zmq_sub_replay.hpp).
#include "zmq_sub_replay.hpp"

#include <sys/epoll.h>

#include <algorithm>
#include <charconv>
#include <set>

#include <rapidjson/document.h>

#include "switchyard/replay.hpp"

namespace switchyard::zmqt {
namespace {

std::optional<std::int64_t> parseInt(std::string_view v) {
  std::int64_t n = 0;
  auto r = std::from_chars(v.data(), v.data() + v.size(), n);
  if (r.ec != std::errc() || r.ptr != v.data() + v.size()) {
    return std::nullopt;
  }
  return n;
}

std::int64_t span(const std::pair<std::int64_t, std::int64_t> &r) { return r.second - r.first + 1; }

}  // namespace

std::optional<std::int64_t> seqIdOf(const Message &m) {
  const auto &env = m.envelope();
  if (!env) {
    return std::nullopt;
  }
  if (!env->members.empty()) {  // canonical text: the members are known already
    for (const auto &mem : env->members) {
      if (mem.key == "seq_id") {
        return parseInt(mem.value);
      }
    }
    return std::nullopt;
  }
  rapidjson::Document d;
  d.Parse(env->text.data(), env->text.size());
  if (d.HasParseError() || !d.IsObject()) {
    return std::nullopt;
  }
  auto it = d.FindMember("seq_id");
  if (it == d.MemberEnd() || !it->value.IsInt64()) {
    return std::nullopt;
  }
  return it->value.GetInt64();
}

ReplayClient::ReplayClient(const ReplaySettings &s, const fedmsg::Limits &limits) : settings_(s), limits_(limits) {
  for (const auto &[name, endpoint] : settings_.endpoints) {
    by_name_[name] = static_cast<std::uint32_t>(pubs_.size());
    Pub p;
    p.name = name;
    p.endpoint = endpoint;
    pubs_.push_back(std::move(p));
  }
}

ReplayClient::~ReplayClient() { close(); }

void ReplayClient::start(SourceContext &ctx, std::shared_ptr<zmq::context_t> zctx, int epoll_fd, std::uint32_t bit) {
  zctx_ = std::move(zctx);
  epoll_fd_ = epoll_fd;
  bit_ = bit;
  if (!active()) {
    return;
  }
  backfilled_ = &ctx.counter("backfilled");
  unrecoverable_ = &ctx.counter("unrecoverable");
  duplicates_ = &ctx.counter("replay_duplicates");
  restarts_ = &ctx.counter("replay_restarts");
  queries_ = &ctx.counter("replay_queries");
  timeouts_ = &ctx.counter("replay_timeouts");
  errors_ = &ctx.counter("replay_errors");
  held_ = &ctx.gauge("replay_held");
  for (const auto &p : pubs_) {
    ctx.log().info("gap backfill for publisher '{}' from {}", p.name, p.endpoint);
  }
}

ReplayClient::Verdict ReplayClient::onMessage(SourceContext &ctx, const std::string &name, Message &m,
                                              const std::string &endpoint, std::uint64_t generation) {
  auto found = by_name_.find(name);
  if (found == by_name_.end()) {
    return Verdict::Pass;
  }
  std::uint32_t idx = found->second;
  Pub &p = pubs_[idx];
  auto seq = seqIdOf(m);
  auto gen = p.generation.find(endpoint);
  const bool first_of_conn = gen == p.generation.end() || gen->second != generation;
  p.generation[endpoint] = generation;
  auto hold = [&](std::int64_t at) {
    if (p.held.size() >= settings_.hold) {
      closeReq(p);  // an answer coming later would be for ranges given up
      failed(ctx, p, fmt::format("more than replay_hold={} newer messages arrived meanwhile", settings_.hold),
             true);
      release(p);
      return Verdict::Pass;  // after what release() made ready
    }
    p.held.push_back({std::move(m), endpoint, false, at});
    ++held_count_;
    held_->set(held_count_);
    return Verdict::Held;
  };
  if (!seq) {  // no seq_id: passes, in its place when the publisher's messages are held
    return p.waiting ? hold(p.last.value_or(0)) : Verdict::Pass;
  }
  if (!p.last) {
    p.last = *seq;
    return Verdict::Pass;
  }
  // The first message of a new connection: a seq_id at or below the last one is the
  // publisher's numbering starting again (a restarted publisher with an in-memory store),
  // not a duplicate (on one connection, messages cannot come back).
  if (*seq <= *p.last && first_of_conn && !p.waiting) {
    restarts_->add();
    ctx.log().warn("publisher '{}': seq_id {} at or below the last one, {}, on a new connection to {}: its "
                   "numbering started again (a restart); tracking from it",
                   p.name, *seq, *p.last, endpoint);
    p.last = *seq;
    return Verdict::Pass;
  }
  if (*seq <= *p.last) {
    duplicates_->add();
    ctx.countDrop("replay_duplicate");
    log_.warn(ctx, "replay_duplicate",
              "dropped (replay_duplicate): seq_id {} of publisher '{}' is not above the last one, {} (a late "
              "duplicate, or the publisher restarted its numbering)",
              *seq, p.name, *p.last);
    return Verdict::Drop;
  }
  std::int64_t gap = *seq - *p.last - 1;
  std::int64_t first = *p.last + 1;
  p.last = *seq;
  if (gap == 0) {
    return p.waiting ? hold(*seq) : Verdict::Pass;
  }
  if (gap > settings_.max_gap) {
    unrecoverable_->add(static_cast<std::uint64_t>(gap));
    log_.warn(ctx, "replay_max_gap",
              "publisher '{}': {} message(s) missing (seq_id {} to {}), more than replay_max_gap={}: not asked "
              "for, counted unrecoverable",
              p.name, gap, first, *seq - 1, settings_.max_gap);
    return p.waiting ? hold(*seq) : Verdict::Pass;
  }
  p.ranges.emplace_back(first, *seq - 1);
  if (p.sub_endpoint.empty() || !p.waiting) {
    p.sub_endpoint = endpoint;
  }
  Verdict v = hold(*seq);
  if (v == Verdict::Held && !p.waiting) {
    ask(ctx, idx);
  }
  return v;
}

void ReplayClient::ask(SourceContext &ctx, std::uint32_t idx) {
  Pub &p = pubs_[idx];
  const auto &range = p.ranges.front();
  try {
    if (!p.req) {
      p.req.emplace(*zctx_, zmq::socket_type::req);
      p.req->set(zmq::sockopt::linger, 0);
      p.req->set(zmq::sockopt::maxmsgsize, static_cast<std::int64_t>(2 * limits_.max_bytes));
      p.req->connect(p.endpoint);
      p.req_fd = p.req->get(zmq::sockopt::fd);
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.u32 = bit_ | idx;
      if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, p.req_fd, &ev) != 0) {
        throw std::runtime_error(fmt::format("epoll_ctl: {}", std::strerror(errno)));
      }
    }
    replay::Query q;
    q.seq_id_range = range;
    std::string text = replay::encodeQuery(q);
    if (!p.req->send(zmq::buffer(text), zmq::send_flags::dontwait)) {
      throw std::runtime_error("the REQ socket cannot send");
    }
  } catch (const std::exception &e) {
    closeReq(p);
    errors_->add();
    failed(ctx, p, fmt::format("cannot ask {}: {}", p.endpoint, e.what()));
    next(ctx, idx);
    return;
  }
  queries_->add();
  p.waiting = true;
  p.deadline = Clock::now() + std::chrono::milliseconds(settings_.timeout_ms);
  ctx.log().info("publisher '{}': asking {} for seq_id {} to {}", p.name, p.endpoint, range.first, range.second);
}

void ReplayClient::onReadable(SourceContext &ctx, std::uint32_t idx) {
  if (idx >= pubs_.size()) {
    return;
  }
  Pub &p = pubs_[idx];
  if (!p.req || (p.req->get(zmq::sockopt::events) & ZMQ_POLLIN) == 0) {
    return;  // ZMQ_FD signals commands too; reading ZMQ_EVENTS reset it
  }
  std::vector<zmq::message_t> frames;
  while (true) {
    zmq::message_t f;
    if (!p.req->recv(f, zmq::recv_flags::dontwait)) {
      break;
    }
    bool more = f.more();
    frames.push_back(std::move(f));
    if (!more) {
      break;
    }
  }
  if (frames.empty() || !p.waiting) {
    return;
  }
  answered(ctx, p, frames);
  next(ctx, idx);
}

void ReplayClient::answered(SourceContext &ctx, Pub &p, std::vector<zmq::message_t> &frames) {
  auto range = p.ranges.front();
  std::string reason;
  if (frames.size() == 1 && replay::isErrorFrame(frames[0].to_string_view(), &reason)) {
    errors_->add();
    failed(ctx, p, fmt::format("{} answered error: '{}'", p.endpoint, reason));
    return;
  }
  std::set<std::int64_t> got;
  for (auto &f : frames) {
    Message m;
    fedmsg::Result r = fedmsg::decodeEnvelope(f.to_string_view(), m, limits_);
    if (!r.ok()) {
      ctx.countDrop(r.reason);
      log_.warn(ctx, r.reason, "dropped ({}): {} (replayed by {})", r.reason, r.detail, p.endpoint);
      continue;
    }
    auto seq = seqIdOf(m);
    if (!seq || *seq < range.first || *seq > range.second || !got.insert(*seq).second) {
      ctx.countDrop("replay_unasked");
      log_.warn(ctx, "replay_unasked", "dropped (replay_unasked): {} replayed a message outside seq_id {} to {}",
                p.endpoint, range.first, range.second);
      continue;
    }
    m.setMeta("zmq.backfilled", p.endpoint);
    p.recovered.push_back({std::move(m), p.sub_endpoint, true, *seq});
  }
  p.ranges.pop_front();
  backfilled_->add(got.size());
  std::int64_t lost = span(range) - static_cast<std::int64_t>(got.size());
  if (lost > 0) {
    unrecoverable_->add(static_cast<std::uint64_t>(lost));
    log_.warn(ctx, "replay_incomplete", "publisher '{}': {} replayed {} of seq_id {} to {}; {} unrecoverable",
              p.name, p.endpoint, got.size(), range.first, range.second, lost);
  } else {
    ctx.log().info("publisher '{}': backfilled seq_id {} to {} from {}", p.name, range.first, range.second,
                   p.endpoint);
  }
}

/// The range asked for is lost: counted unrecoverable.
void ReplayClient::failed(SourceContext &ctx, Pub &p, const std::string &why, bool all) {
  while (!p.ranges.empty()) {
    auto range = p.ranges.front();
    p.ranges.pop_front();
    unrecoverable_->add(static_cast<std::uint64_t>(span(range)));
    log_.warn(ctx, "replay_failed", "publisher '{}': seq_id {} to {} unrecoverable: {}", p.name, range.first,
              range.second, why);
    if (!all) {
      break;
    }
  }
}

/// After an answer, an error or a timeout: the next range, or the held messages go.
void ReplayClient::next(SourceContext &ctx, std::uint32_t idx) {
  Pub &p = pubs_[idx];
  p.waiting = false;
  if (p.ranges.empty()) {
    release(p);
  } else {
    ask(ctx, idx);
  }
}

void ReplayClient::release(Pub &p) {
  std::vector<Item> out = std::move(p.recovered);
  out.insert(out.end(), std::make_move_iterator(p.held.begin()), std::make_move_iterator(p.held.end()));
  held_count_ -= static_cast<std::int64_t>(p.held.size());
  if (held_ != nullptr) {
    held_->set(held_count_);
  }
  p.recovered.clear();
  p.held.clear();
  p.waiting = false;
  std::stable_sort(out.begin(), out.end(), [](const Item &a, const Item &b) { return a.seq < b.seq; });
  ready_.insert(ready_.end(), std::make_move_iterator(out.begin()), std::make_move_iterator(out.end()));
}

void ReplayClient::housekeeping(SourceContext &ctx) {
  if (!active()) {
    return;
  }
  auto now = Clock::now();
  for (std::uint32_t idx = 0; idx < pubs_.size(); ++idx) {
    Pub &p = pubs_[idx];
    if (p.waiting && now >= p.deadline) {
      timeouts_->add();
      closeReq(p);  // a REQ socket without its answer cannot send again
      failed(ctx, p, fmt::format("no answer from {} within replay_timeout={} ms", p.endpoint, settings_.timeout_ms));
      next(ctx, idx);
    }
  }
}

int ReplayClient::msUntilDeadline() const {
  auto now = Clock::now();
  int best = -1;
  for (const auto &p : pubs_) {
    if (p.waiting) {
      auto left = std::chrono::ceil<std::chrono::milliseconds>(p.deadline - now).count();
      int ms = static_cast<int>(std::max<std::int64_t>(0, left));
      best = best < 0 ? ms : std::min(best, ms);
    }
  }
  return best;
}

std::vector<ReplayClient::Item> ReplayClient::takeReady() {
  std::vector<Item> out;
  out.swap(ready_);
  return out;
}

void ReplayClient::abandonAll(SourceContext &ctx) {
  for (auto &p : pubs_) {
    if (p.waiting || !p.held.empty()) {
      closeReq(p);
      failed(ctx, p, "shutting down", true);
      release(p);
    }
  }
}

void ReplayClient::closeReq(Pub &p) noexcept {
  if (p.req) {
    if (epoll_fd_ >= 0 && p.req_fd >= 0) {
      (void)::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, p.req_fd, nullptr);
    }
    p.req.reset();
    p.req_fd = -1;
  }
}

void ReplayClient::close() noexcept {
  for (auto &p : pubs_) {
    closeReq(p);
  }
  epoll_fd_ = -1;
  zctx_.reset();
}

}  // namespace switchyard::zmqt
