// SPDX-License-Identifier: MIT
//
// DNS SRV resolution for zmq-sub (docs/plugins/zmq-sub.md, "DNS SRV discovery"), with
// c-ares (Debian's libc-ares): the queries never block. c-ares tells us through its
// socket-state callback which sockets it waits on; they go into the source's epoll set
// (epoll data: bit | fd) and onFd() hands their readiness back to c-ares.
//
// Each name is resolved at start and then again after min(srv_interval, the records'
// smallest TTL) seconds (at least 1 s). A failed resolution is retried after
// min(srv_interval, 10 s) and leaves the last good set in place.
//
// THREADING: the source's thread only.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace switchyard::zmqt {

struct SrvTarget {
  std::string endpoint;  // tcp://TARGET:PORT
  int priority = 0;
  int weight = 0;
  bool operator==(const SrvTarget &o) const = default;
};

/// The outcome of one resolution of one name.
struct SrvResult {
  std::string name;
  bool ok = false;
  std::string error;                // when !ok
  std::vector<SrvTarget> targets;   // when ok: by priority (lowest first), then weight (highest first)
  std::uint32_t ttl = 0;            // the smallest TTL of the answer's SRV records
};

class SrvResolver {
 public:
  using Clock = std::chrono::steady_clock;
  /// epoll_ctl wrapper: @p fd with @p events (0: remove it from the set).
  using Watch = std::function<void(int fd, std::uint32_t events)>;

  /// Throws std::runtime_error when c-ares cannot be set up or a server is not usable.
  SrvResolver(std::vector<std::string> names, std::chrono::seconds interval, const std::vector<std::string> &servers,
              Watch watch);
  SrvResolver(const SrvResolver &) = delete;
  SrvResolver &operator=(const SrvResolver &) = delete;
  ~SrvResolver();

  /// Starts the resolutions that are due.
  void startDue();
  /// One of c-ares' sockets is ready (epoll events).
  void onFd(int fd, std::uint32_t events);
  /// c-ares' own timeouts (retries, the next server).
  void processTimeouts();
  /// Milliseconds until something is due (a resolution, a c-ares timeout); -1: nothing.
  [[nodiscard]] int msUntilDue() const;
  /// The resolutions finished since the last call.
  std::vector<SrvResult> take();

  /// `switchyard check --connect`: resolves every name at once, within @p timeout.
  static std::vector<SrvResult> resolveAll(const std::vector<std::string> &names,
                                           const std::vector<std::string> &servers,
                                           std::chrono::milliseconds timeout);

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace switchyard::zmqt
