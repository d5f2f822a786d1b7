// SPDX-License-Identifier: MIT
// DNS SRV resolution with c-ares (see zmq_srv.hpp).
#include "zmq_srv.hpp"

#include <arpa/nameser.h>
#include <ares.h>
#include <sys/epoll.h>
#include <sys/select.h>

#include <algorithm>
#include <mutex>
#include <stdexcept>

#include <fmt/format.h>

namespace switchyard::zmqt {
namespace {

constexpr auto kRetryAfterFailure = std::chrono::seconds(10);

void libraryInit() {
  static std::once_flag once;
  static int status = ARES_SUCCESS;
  std::call_once(once, [] { status = ares_library_init(ARES_LIB_INIT_ALL); });
  if (status != ARES_SUCCESS) {
    throw std::runtime_error(fmt::format("c-ares: {}", ares_strerror(status)));
  }
}

/// Skips a (possibly compressed) domain name at @p at; false when the message is short.
bool skipName(const unsigned char *buf, int len, int &at) {
  while (at < len) {
    unsigned char l = buf[at];
    if ((l & 0xC0) == 0xC0) {
      at += 2;
      return at <= len;
    }
    at += 1 + l;
    if (l == 0) {
      return at <= len;
    }
  }
  return false;
}

/// The smallest TTL of the answer's SRV records (ares_parse_srv_reply does not give it).
std::uint32_t minSrvTtl(const unsigned char *buf, int len) {
  if (len < 12) {
    return 0;
  }
  int qd = (buf[4] << 8) | buf[5];
  int an = (buf[6] << 8) | buf[7];
  int at = 12;
  for (int k = 0; k < qd; ++k) {
    if (!skipName(buf, len, at)) {
      return 0;
    }
    at += 4;
  }
  std::uint32_t best = 0;
  bool any = false;
  for (int k = 0; k < an; ++k) {
    if (!skipName(buf, len, at) || at + 10 > len) {
      break;
    }
    int type = (buf[at] << 8) | buf[at + 1];
    std::uint32_t ttl = (std::uint32_t{buf[at + 4]} << 24) | (std::uint32_t{buf[at + 5]} << 16) |
                        (std::uint32_t{buf[at + 6]} << 8) | std::uint32_t{buf[at + 7]};
    int rdlen = (buf[at + 8] << 8) | buf[at + 9];
    at += 10 + rdlen;
    if (type == ns_t_srv) {
      best = any ? std::min(best, ttl) : ttl;
      any = true;
    }
  }
  return best;
}

ares_channel makeChannel(const std::vector<std::string> &servers, ares_sock_state_cb cb, void *data) {
  libraryInit();
  ares_options opts{};
  int mask = ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES;
  opts.timeout = 1000;
  opts.tries = 2;
  if (cb != nullptr) {
    opts.sock_state_cb = cb;
    opts.sock_state_cb_data = data;
    mask |= ARES_OPT_SOCK_STATE_CB;
  }
  ares_channel ch = nullptr;
  int st = ares_init_options(&ch, &opts, mask);
  if (st != ARES_SUCCESS) {
    throw std::runtime_error(fmt::format("cannot set up the DNS resolver (c-ares): {}", ares_strerror(st)));
  }
  if (!servers.empty()) {
    std::string csv;
    for (const auto &s : servers) {
      csv += (csv.empty() ? "" : ",") + s;
    }
    st = ares_set_servers_ports_csv(ch, csv.c_str());
    if (st != ARES_SUCCESS) {
      ares_destroy(ch);
      throw std::runtime_error(fmt::format("dns_servers '{}' is not usable ({}): write HOST or HOST:PORT, e.g. "
                                           "127.0.0.1:5353",
                                           csv, ares_strerror(st)));
    }
  }
  return ch;
}

SrvResult parseAnswer(const std::string &name, int status, const unsigned char *abuf, int alen) {
  SrvResult r;
  r.name = name;
  if (status != ARES_SUCCESS) {
    r.error = ares_strerror(status);
    return r;
  }
  ares_srv_reply *reply = nullptr;
  int st = ares_parse_srv_reply(abuf, alen, &reply);
  if (st != ARES_SUCCESS) {
    r.error = fmt::format("bad SRV answer: {}", ares_strerror(st));
    return r;
  }
  for (ares_srv_reply *p = reply; p != nullptr; p = p->next) {
    std::string host = p->host;
    if (host == "." || host.empty()) {
      continue;  // "service not available here" (RFC 2782)
    }
    r.targets.push_back({fmt::format("tcp://{}:{}", host, p->port), p->priority, p->weight});
  }
  ares_free_data(reply);
  std::stable_sort(r.targets.begin(), r.targets.end(), [](const SrvTarget &a, const SrvTarget &b) {
    return a.priority != b.priority ? a.priority < b.priority : a.weight > b.weight;
  });
  r.targets.erase(std::unique(r.targets.begin(), r.targets.end(),
                              [](const SrvTarget &a, const SrvTarget &b) { return a.endpoint == b.endpoint; }),
                  r.targets.end());
  if (r.targets.empty()) {
    r.error = "no usable SRV record";
    return r;
  }
  r.ttl = minSrvTtl(abuf, alen);
  r.ok = true;
  return r;
}

}  // namespace

struct SrvResolver::Impl {
  struct Name {
    std::string name;
    Clock::time_point due;
    bool running = false;
  };
  struct Call {
    Impl *impl;
    std::size_t idx;
  };
  ares_channel ch = nullptr;
  std::vector<Name> names;
  std::chrono::seconds interval;
  Watch watch;
  std::vector<SrvResult> done;

  static void sockState(void *data, ares_socket_t fd, int readable, int writable) {
    auto *self = static_cast<Impl *>(data);
    std::uint32_t ev = (readable != 0 ? EPOLLIN : 0U) | (writable != 0 ? EPOLLOUT : 0U);
    self->watch(fd, ev);
  }
  static void answered(void *arg, int status, int timeouts, unsigned char *abuf, int alen) {
    (void)timeouts;
    std::unique_ptr<Call> call(static_cast<Call *>(arg));
    Impl *self = call->impl;
    Name &n = self->names[call->idx];
    n.running = false;
    if (status == ARES_EDESTRUCTION) {
      return;
    }
    SrvResult r = parseAnswer(n.name, status, abuf, alen);
    auto next = r.ok ? std::min<std::chrono::seconds>(self->interval, std::chrono::seconds(std::max<std::uint32_t>(r.ttl, 1)))
                     : std::min<std::chrono::seconds>(self->interval, kRetryAfterFailure);
    n.due = Clock::now() + next;
    self->done.push_back(std::move(r));
  }
};

SrvResolver::SrvResolver(std::vector<std::string> names, std::chrono::seconds interval,
                         const std::vector<std::string> &servers, Watch watch)
    : impl_(std::make_unique<Impl>()) {
  impl_->interval = interval;
  impl_->watch = std::move(watch);
  auto now = Clock::now();
  for (auto &n : names) {
    impl_->names.push_back({std::move(n), now, false});
  }
  impl_->ch = makeChannel(servers, &Impl::sockState, impl_.get());
}

SrvResolver::~SrvResolver() {
  if (impl_ && impl_->ch != nullptr) {
    ares_destroy(impl_->ch);  // runs the callbacks with ARES_EDESTRUCTION; they free their Call
  }
}

void SrvResolver::startDue() {
  auto now = Clock::now();
  for (std::size_t k = 0; k < impl_->names.size(); ++k) {
    auto &n = impl_->names[k];
    if (!n.running && now >= n.due) {
      n.running = true;
      ares_query(impl_->ch, n.name.c_str(), ns_c_in, ns_t_srv, &Impl::answered, new Impl::Call{impl_.get(), k});
    }
  }
}

void SrvResolver::onFd(int fd, std::uint32_t events) {
  ares_socket_t r = (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) != 0 ? fd : ARES_SOCKET_BAD;
  ares_socket_t w = (events & EPOLLOUT) != 0 ? fd : ARES_SOCKET_BAD;
  ares_process_fd(impl_->ch, r, w);
}

void SrvResolver::processTimeouts() { ares_process_fd(impl_->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD); }

int SrvResolver::msUntilDue() const {
  auto now = Clock::now();
  std::int64_t best = -1;
  for (const auto &n : impl_->names) {
    if (!n.running) {
      auto left = std::max<std::int64_t>(0, std::chrono::ceil<std::chrono::milliseconds>(n.due - now).count());
      best = best < 0 ? left : std::min(best, left);
    }
  }
  timeval tv{};
  if (ares_timeout(impl_->ch, nullptr, &tv) != nullptr) {
    std::int64_t ms = static_cast<std::int64_t>(tv.tv_sec) * 1000 + (tv.tv_usec + 999) / 1000;
    best = best < 0 ? ms : std::min(best, ms);
  }
  return static_cast<int>(std::min<std::int64_t>(best, 1 << 30));
}

std::vector<SrvResult> SrvResolver::take() {
  std::vector<SrvResult> out;
  out.swap(impl_->done);
  return out;
}

std::vector<SrvResult> SrvResolver::resolveAll(const std::vector<std::string> &names,
                                               const std::vector<std::string> &servers,
                                               std::chrono::milliseconds timeout) {
  Impl impl;
  impl.interval = std::chrono::seconds(1);
  impl.ch = makeChannel(servers, nullptr, nullptr);
  auto now = Clock::now();
  for (const auto &n : names) {
    impl.names.push_back({n, now, true});
  }
  for (std::size_t k = 0; k < impl.names.size(); ++k) {
    ares_query(impl.ch, impl.names[k].name.c_str(), ns_c_in, ns_t_srv, &Impl::answered, new Impl::Call{&impl, k});
  }
  auto deadline = now + timeout;
  while (impl.done.size() < names.size() && Clock::now() < deadline) {
    fd_set rd;
    fd_set wr;
    FD_ZERO(&rd);
    FD_ZERO(&wr);
    int nfds = ares_fds(impl.ch, &rd, &wr);
    if (nfds == 0) {
      break;
    }
    auto left = std::chrono::duration_cast<std::chrono::microseconds>(deadline - Clock::now());
    timeval max{static_cast<time_t>(left.count() / 1000000), static_cast<suseconds_t>(left.count() % 1000000)};
    timeval tv{};
    timeval *tvp = ares_timeout(impl.ch, &max, &tv);
    (void)::select(nfds, &rd, &wr, nullptr, tvp);
    ares_process(impl.ch, &rd, &wr);
  }
  std::vector<SrvResult> out = std::move(impl.done);
  impl.done.clear();
  ares_destroy(impl.ch);  // what did not finish: ARES_EDESTRUCTION
  impl.ch = nullptr;
  for (const auto &n : names) {
    if (std::none_of(out.begin(), out.end(), [&](const SrvResult &r) { return r.name == n; })) {
      out.push_back({n, false, fmt::format("no answer within {} ms", timeout.count()), {}, 0});
    }
  }
  return out;
}

}  // namespace switchyard::zmqt
