// SPDX-License-Identifier: MIT
// http-in (source): the plugin, its input-thread side, start/stop and the probe.
// The HTTP side is in http_in_server.cpp.
//
//   input:
//     type: http-in
//     listen: 0.0.0.0:8443
//     tls: {cert_file: /etc/switchyard/tls/ingest.crt, key_file: /etc/switchyard/tls/ingest.key}
//     senders:
//       - {name: ci, token_file: /etc/switchyard/tokens/ci, topics: [org.example.ci]}
#include "http_in.hpp"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <httplib.h>

namespace switchyard::httpin {

namespace {
// Every reason a request can be refused with (the label of refused{reason}).
constexpr const char *kReasons[] = {
    "no_credentials", "bad_token",      "bad_client_certificate", "unknown_client", "forbidden_topic",
    "bad_body",       "oversize",       "too_many_messages",      "wrong_content_type", "not_found",
    "bad_request",    "busy",           "stopping",               "timeout",          "retry",
    "dropped",        "rejected",       "internal_error",         "stalled",
};
}  // namespace

HttpIn::HttpIn(const sdk::Config &c) : s_(parseSettings(c)) {}

HttpIn::~HttpIn() {
  stop();
}

Status HttpIn::start(SourceContext &ctx) noexcept {
  try {
    log_ = &ctx.log();
    requests_ = &ctx.counter("requests");
    accepted_ = &ctx.counter("accepted");
    accepted_messages_ = &ctx.counter("accepted_messages");
    for (const char *r : kReasons) {
      refused_.emplace(r, &ctx.counter("refused", r));
    }
    in_flight_gauge_ = &ctx.gauge("http_in_flight");
    std::string key, err;
    if (!loadSecrets(s_, key, err)) {
      return Status::permanent(err, key);
    }
    efd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (efd_ < 0) {
      return Status::fatal(fmt::format("eventfd: {}", std::strerror(errno)));
    }
    if (!buildServer(key, err)) {
      return Status::permanent(err, key);
    }
    if (!server_->bind_to_port(s_.host, s_.port)) {
      std::string why = tryBind(s_);
      return Status::fatal(why.empty() ? fmt::format("cannot listen on {}", s_.listen) : why, "listen");
    }
    {
      std::lock_guard lk(q_m_);
      intake_open_ = true;
    }
    accepting_ = true;
    listener_ = std::thread([this] { server_->listen_after_bind(); });
    // httplib's stop() does nothing before the loop runs: wait for it (a stop right after
    // the start would otherwise leave the listener running for good).
    for (int i = 0; i < 5000 && !server_->is_running(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    ctx.log().info("listening on {}://{} ({} sender{})", s_.tls.on ? "https" : "http", s_.listen, s_.senders.size(),
                   s_.senders.size() == 1 ? "" : "s");
    return Status::ok();
  } catch (const std::exception &e) {
    return Status::fatal(fmt::format("start: {}", e.what()));
  }
}

Status HttpIn::poll(SourceContext &ctx, std::chrono::milliseconds timeout) noexcept {
  pollfd p[2] = {{efd_, POLLIN, 0}, {ctx.wakeFd(), POLLIN, 0}};
  int n = ::poll(p, 2, static_cast<int>(timeout.count()));
  if (n < 0 && errno != EINTR) {
    return Status::fatal(fmt::format("poll: {}", std::strerror(errno)));
  }
  if (n > 0 && (p[0].revents & POLLIN) != 0) {
    std::uint64_t v;
    (void)!::read(efd_, &v, sizeof v);
    submitQueued(ctx);
  }
  return Status::ok();
}

void HttpIn::submitQueued(SourceContext &ctx) {
  std::deque<std::shared_ptr<Batch>> taken;
  {
    std::lock_guard lk(q_m_);
    taken.swap(queue_);
  }
  for (auto &b : taken) {
    for (std::size_t i = 0; i < b->msgs.size(); ++i) {
      std::uint64_t tag = ++next_tag_;
      tags_.emplace(tag, std::make_pair(b, i));  // before submit: a filter's drop completes at once
      if (ctx.submit(std::move(b->msgs[i]), tag) == SourceContext::SubmitResult::Stopping) {
        tags_.erase(tag);
        settle(*b, i, Outcome::Retry, "stopping");
      }
    }
    b->msgs.clear();
  }
}

void HttpIn::settle(Batch &b, std::size_t i, Outcome o, std::string_view reason) {
  {
    std::lock_guard lk(b.m);
    if (b.settled[i]) {
      return;
    }
    b.settled[i] = true;
    b.outcomes[i] = o;
    b.reasons[i] = std::string(reason);
    --b.remaining;
  }
  b.cv.notify_all();
  stalled_.store(false, std::memory_order_relaxed);
  in_flight_.fetch_sub(1);
  if (in_flight_gauge_ != nullptr) {
    in_flight_gauge_->add(-1);
  }
}

void HttpIn::complete(std::uint64_t tag, Outcome outcome, std::string_view reason) noexcept {
  auto it = tags_.find(tag);
  if (it == tags_.end()) {
    return;
  }
  auto [b, i] = std::move(it->second);
  tags_.erase(it);
  try {
    settle(*b, i, outcome, reason);
  } catch (...) {
  }
}

void HttpIn::stopIntake(SourceContext &ctx) noexcept {
  {
    std::lock_guard lk(q_m_);
    intake_open_ = false;
  }
  accepting_ = false;
  // What the workers already queued is still taken (submit accepts it during this call) and
  // answered when it settles; a request arriving meanwhile is answered 503 at once.
  try {
    submitQueued(ctx);
  } catch (...) {
  }
  // Stop listening now: nothing new is taken (a client is refused at once, and at a reload
  // the port is free for the new version sooner). The workers finish the requests they
  // hold; stop() joins them.
  stopListening();
}

void HttpIn::stopListening() noexcept {
  if (server_ && listener_.joinable() && !listening_stopped_) {
    listening_stopped_ = true;
    server_->stop();
  }
}

void HttpIn::stop() noexcept {
  {
    std::lock_guard lk(q_m_);
    intake_open_ = false;
  }
  accepting_ = false;
  try {
    // Anything still unsettled (the drain timeout passed) is answered 503: the sender resends.
    for (auto &[tag, entry] : tags_) {
      settle(*entry.first, entry.second, Outcome::Retry, "shutdown");
    }
    tags_.clear();
    for (auto &b : queue_) {
      for (std::size_t i = 0; i < b->settled.size(); ++i) {
        settle(*b, i, Outcome::Retry, "shutdown");
      }
    }
    queue_.clear();
  } catch (...) {
  }
  stopListening();
  if (listener_.joinable()) {
    listener_.join();
  }
  server_.reset();
  if (efd_ >= 0) {
    ::close(efd_);
    efd_ = -1;
  }
}

Status HttpIn::probe(ProbeReport &report, std::chrono::milliseconds) noexcept {
  try {
    std::string bind = tryBind(s_);
    report.result(fmt::format("listen {}", s_.listen), bind.empty() ? Status::ok() : Status::error(bind, "listen"));
    if (s_.tls.on) {
      std::string key, err;
      SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
      bool ok = ctx != nullptr && setupTls(ctx, s_.tls, key, err);
      if (ctx != nullptr) {
        SSL_CTX_free(ctx);
      }
      std::string what = fmt::format("tls cert_file {}, key_file {}{}", s_.tls.cert_file, s_.tls.key_file,
                                     s_.tls.client_ca_file.empty() ? "" : ", client_ca_file " + s_.tls.client_ca_file);
      report.result(what, ok ? Status::ok() : Status::error(err, key));
    }
    Settings copy = s_;
    for (std::size_t i = 0; i < copy.senders.size(); ++i) {
      const Sender &snd = copy.senders[i];
      if (!snd.hasToken()) {
        continue;
      }
      Settings one = copy;
      one.senders = {snd};
      std::string key, err;
      bool ok = loadSecrets(one, key, err);
      std::string what = snd.token_file.empty() ? fmt::format("sender {}: token_env {}", snd.name, snd.token_env)
                                                : fmt::format("sender {}: token_file {}", snd.name, snd.token_file);
      report.result(what, ok ? Status::ok() : Status::error(err, key));
    }
    return Status::ok();
  } catch (const std::exception &e) {
    return Status::error(fmt::format("probe: {}", e.what()));
  }
}

}  // namespace switchyard::httpin

SWITCHYARD_PLUGIN(switchyard::httpin::HttpIn, SY_KIND_SOURCE, "http-in", "1.0.0",
                  "HTTPS ingest: senders POST JSON messages; the response is the acknowledgement", SY_FLAG_CAN_ACK,
                  switchyard::httpin::kSchema)
