// SPDX-License-Identifier: MIT
//
// zmq-sub: the endpoints that DNS SRV records give (docs/plugins/zmq-sub.md, "DNS SRV
// discovery"). Each resolution of a name is compared with the last good one: endpoints
// that appeared are connected (a socket of their own, like a configured endpoint, named
// by the SRV name for replay_endpoints), endpoints that went away are read empty and
// disconnected. Nothing restarts; the other sockets are left alone.
//
// Priority and weight, for a subscriber (which wants every publisher, not one server):
// every target of the best (lowest) priority is connected; weight only orders the
// connection attempts (highest first). When none of the connected targets of a name has a
// live connection kSrvFallback after they were connected, the next priority is added as
// well; once a target of the best priority is connected again, the fallback targets are
// disconnected.
#include <sys/epoll.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "zmq_probe.hpp"
#include "zmq_sub.hpp"

namespace switchyard::zmqt {
namespace {
constexpr auto kSrvFallback = std::chrono::seconds(10);
}  // namespace

Status ZmqSubSource::startSrv(SourceContext &ctx) {
  if (settings_.srv.empty()) {
    return Status::ok();
  }
  srv_added_ = &ctx.counter("srv_added");
  srv_removed_ = &ctx.counter("srv_removed");
  (void)ctx.counter("srv_failures");
  (void)ctx.counter("srv_resolutions");
  srv_endpoints_ = &ctx.gauge("srv_endpoints");
  try {
    srv_ = std::make_unique<SrvResolver>(
        settings_.srv, std::chrono::seconds(settings_.srv_interval_s), settings_.dns_servers,
        [this](int fd, std::uint32_t events) {
          epoll_event ev{};
          ev.events = events;
          ev.data.u32 = kSrvBit | static_cast<std::uint32_t>(fd);
          if (events == 0) {
            (void)::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
          } else if (::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, fd, &ev) != 0 && errno == ENOENT) {
            (void)::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev);
          }
        });
  } catch (const std::exception &e) {
    return Status::fatal(e.what(), settings_.dns_servers.empty() ? "srv" : "dns_servers");
  }
  for (const auto &name : settings_.srv) {
    srv_state_[name];
    ctx.log().info("resolving SRV {} every {} s at most", name, settings_.srv_interval_s);
  }
  serviceSrv(ctx);
  return Status::ok();
}

/// Every poll: starts the due resolutions and applies the finished ones.
void ZmqSubSource::serviceSrv(SourceContext &ctx) {
  if (!srv_) {
    return;
  }
  srv_->startDue();
  for (auto &r : srv_->take()) {
    ctx.counter("srv_resolutions").add();
    auto &state = srv_state_[r.name];
    if (!r.ok) {
      ctx.counter("srv_failures").add();
      conn_log_.warn(ctx, "srv_failure " + r.name, "cannot resolve SRV {}: {}; keeping its {} endpoint(s)", r.name,
                     r.error, state.targets.size());
      continue;
    }
    if (r.targets != state.targets) {
      std::string list;
      for (const auto &t : r.targets) {
        list += fmt::format("{}{} (priority {}, weight {})", list.empty() ? "" : ", ", t.endpoint, t.priority,
                            t.weight);
      }
      ctx.log().info("SRV {}: {} (TTL {} s)", r.name, list, r.ttl);
      state.targets = std::move(r.targets);
      state.levels = 1;
      applySrv(ctx, r.name);
    }
  }
  srvFallback(ctx);
}

/// Connects what the name's records want and disconnects what they no longer do.
void ZmqSubSource::applySrv(SourceContext &ctx, const std::string &name) {
  const auto &state = srv_state_[name];
  std::vector<std::string> want;
  std::size_t levels = 0;
  int last_priority = -1;
  for (const auto &t : state.targets) {  // by priority, then weight (highest first)
    if (t.priority != last_priority) {
      if (++levels > state.levels) {
        break;
      }
      last_priority = t.priority;
    }
    want.push_back(t.endpoint);
  }
  for (std::size_t k = 0; k < sockets_.size(); ++k) {
    auto &s = sockets_[k];
    if (!s.dead && s.srv == name && std::find(want.begin(), want.end(), s.endpoint) == want.end()) {
      removeSocket(ctx, k);
    }
  }
  for (const auto &e : want) {
    bool have = std::any_of(sockets_.begin(), sockets_.end(),
                            [&](const Socket &s) { return !s.dead && s.endpoint == e; });
    if (!have) {
      addSrvEndpoint(ctx, e, name);
    }
  }
}

void ZmqSubSource::addSrvEndpoint(SourceContext &ctx, const std::string &endpoint, const std::string &name) {
  std::size_t idx = sockets_.size();
  for (std::size_t k = 0; k < sockets_.size(); ++k) {
    if (sockets_[k].dead && !sockets_[k].ready) {
      idx = k;
      break;
    }
  }
  try {
    Socket s = openOne(ctx, endpoint, idx);
    s.name = name;
    s.srv = name;
    if (idx == sockets_.size()) {
      sockets_.push_back(std::move(s));
    } else {
      sockets_[idx] = std::move(s);
    }
  } catch (const std::exception &e) {
    ctx.counter("srv_failures").add();
    ctx.log().warn("SRV {}: cannot connect to {}: {}", name, endpoint, e.what());
    return;
  }
  if (Status st = watch(idx); !st.isOk()) {
    ctx.log().warn("SRV {}: cannot watch {}: {}", name, endpoint, st.message());
  }
  srv_added_->add();
  srv_endpoints_->add(1);
  ctx.log().info("SRV {}: added endpoint {}", name, endpoint);
}

/// Reads what the socket holds, then closes it. The publishers' sequence state is kept: if
/// the endpoint comes back, its new connection is a new generation (a restart, not a gap).
void ZmqSubSource::removeSocket(SourceContext &ctx, std::size_t idx) {
  auto &s = sockets_[idx];
  std::size_t got = 0;
  while (!drainSocket(ctx, s, kMaxPerPoll, got) && !stopped_intake_ && !ctx.stopping()) {
  }
  for (zmq::socket_t *z : {&s.sock, &s.monitor}) {
    try {
      int fd = z->get(zmq::sockopt::fd);
      (void)::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
    } catch (const zmq::error_t &) {
    }
  }
  (void)zmq_socket_monitor(s.sock.handle(), nullptr, 0);
  clearLost(s);
  if (s.up) {
    s.up = false;
    --live_connections_;
  }
  s.monitor.close();
  s.sock.close();
  s.dead = true;
  srv_removed_->add();
  srv_endpoints_->add(-1);
  ctx.log().info("SRV {}: removed endpoint {} (no longer in its records); disconnected", s.srv, s.endpoint);
  updateConnectedGauges();
}

/// Priority fallback (see the top of the file).
void ZmqSubSource::srvFallback(SourceContext &ctx) {
  auto now = Clock::now();
  for (auto &[name, state] : srv_state_) {
    if (state.targets.empty()) {
      continue;
    }
    bool any_up = false;
    bool best_up = false;
    bool all_old = true;
    bool any = false;
    int best = state.targets.front().priority;
    for (const auto &s : sockets_) {
      if (s.dead || s.srv != name) {
        continue;
      }
      any = true;
      any_up = any_up || s.up;
      all_old = all_old && now - s.opened_at >= kSrvFallback;
      auto t = std::find_if(state.targets.begin(), state.targets.end(),
                            [&](const SrvTarget &x) { return x.endpoint == s.endpoint; });
      best_up = best_up || (s.up && t != state.targets.end() && t->priority == best);
    }
    std::size_t distinct = 0;
    int last = -1;
    for (const auto &t : state.targets) {
      if (t.priority != last) {
        ++distinct;
        last = t.priority;
      }
    }
    if (any && !any_up && all_old && state.levels < distinct) {
      ++state.levels;
      ctx.log().warn("SRV {}: no target of the {} best priorit{} is reachable for {} s: adding the next priority",
                     name, state.levels - 1, state.levels == 2 ? "y" : "ies",
                     std::chrono::duration_cast<std::chrono::seconds>(kSrvFallback).count());
      applySrv(ctx, name);
    } else if (best_up && state.levels > 1) {
      state.levels = 1;
      ctx.log().info("SRV {}: the best priority is reachable again: dropping the fallback targets", name);
      applySrv(ctx, name);
    }
  }
}

Status ZmqSubSource::probeSrv(ProbeReport &report, std::chrono::milliseconds timeout) noexcept {
  try {
    auto start = Clock::now();
    auto results = SrvResolver::resolveAll(settings_.srv, settings_.dns_servers, timeout / 2);
    std::vector<std::string> targets;
    for (const auto &r : results) {
      if (!r.ok) {
        report.result("SRV " + r.name,
                      Status::error(fmt::format("cannot resolve: {}; check the name and dns_servers", r.error)));
        continue;
      }
      std::string list;
      for (const auto &t : r.targets) {
        list += (list.empty() ? "" : ", ") + t.endpoint;
        targets.push_back(t.endpoint);
      }
      report.result(fmt::format("SRV {} -> {}", r.name, list), Status::ok());
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(timeout - (Clock::now() - start));
    return probeEndpoints(report, targets, false, std::max(left, std::chrono::milliseconds(200)));
  } catch (const std::exception &e) {
    report.result("SRV " + (settings_.srv.empty() ? std::string() : settings_.srv.front()), Status::error(e.what()));
    return Status::ok();
  }
}

}  // namespace switchyard::zmqt
