// SPDX-License-Identifier: MIT
#include "cli_systemd.hpp"

#include <systemd/sd-daemon.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <set>

#include <fmt/format.h>

#include "log.hpp"

namespace switchyard::cli::systemd {
namespace {

using Clock = std::chrono::steady_clock;

/// How often STATUS= is refreshed while running.
constexpr auto kStatusEvery = std::chrono::seconds(5);

struct State {
  bool enabled = false;
  Clock::duration watchdog{};  ///< half the interval systemd asked for; zero: no watchdog
  Clock::time_point next_watchdog{};
  Clock::time_point next_status{};
  bool warned = false;
};

State &state() {
  static State s;
  return s;
}

void notify(const std::string &text) {
  auto &s = state();
  if (!s.enabled) {
    return;
  }
  int rc = sd_notify(0, text.c_str());
  if (rc < 0 && !s.warned) {
    s.warned = true;
    logging::core()->warn("cannot notify systemd through NOTIFY_SOCKET={}: {} (further failures are not logged)",
                          std::getenv("NOTIFY_SOCKET") ? std::getenv("NOTIFY_SOCKET") : "", std::strerror(-rc));
  }
}

}  // namespace

void enable() {
  auto &s = state();
  const char *socket = std::getenv("NOTIFY_SOCKET");
  s.enabled = socket != nullptr && *socket != '\0';
  if (!s.enabled) {
    return;
  }
  std::uint64_t usec = 0;
  // > 0 only when WATCHDOG_USEC is set and WATCHDOG_PID (if set) is this process.
  if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
    s.watchdog = std::chrono::microseconds(usec / 2);
    logging::core()->info("systemd watchdog: every {} ms", usec / 2000);
  }
}

std::string statusLine(const Engine &engine) {
  std::set<std::string> pipelines;  // by name: a reload may list a draining old version too
  std::set<std::string> running;
  for (const auto &p : engine.status()) {
    pipelines.insert(p.name);
    if (p.state == "running") {
      running.insert(p.name);
    }
  }
  std::int64_t in = 0;
  std::int64_t out = 0;
  std::int64_t dropped = 0;
  for (const auto &c : engine.counters()) {
    if (c.pipeline.empty() || c.gauge) {
      continue;  // process-wide counters (codec) and gauges are not message counts
    }
    if (c.name == "received" && c.plugin.starts_with("input")) {
      in += c.value;
    } else if (c.name == "sent" && c.plugin.starts_with("outputs[")) {
      out += c.value;
    } else if (c.name == "dropped") {
      dropped += c.value;
    }
  }
  std::string what = running.size() == pipelines.size()
                         ? fmt::format("{} pipeline{} running", running.size(), running.size() == 1 ? "" : "s")
                         : fmt::format("{} of {} pipelines running", running.size(), pipelines.size());
  return fmt::format("{}; in {}, out {}, dropped {}", what, in, out, dropped);
}

void started(const Engine &engine) {
  auto &s = state();
  if (!s.enabled) {
    return;
  }
  notify("READY=1\nSTATUS=" + statusLine(engine));
  auto now = Clock::now();
  s.next_status = now + kStatusEvery;
  if (s.watchdog.count() > 0) {
    notify("WATCHDOG=1");
    s.next_watchdog = now + s.watchdog;
  }
}

void loop(const Engine &engine) {
  auto &s = state();
  if (!s.enabled) {
    return;
  }
  auto now = Clock::now();
  if (s.watchdog.count() > 0 && now >= s.next_watchdog) {
    notify("WATCHDOG=1");
    s.next_watchdog = now + s.watchdog;
  }
  if (now >= s.next_status) {
    notify("STATUS=" + statusLine(engine));
    s.next_status = now + kStatusEvery;
  }
}

void stopping() { notify("STOPPING=1\nSTATUS=stopping: draining in-flight messages"); }

void notifyReloading() { notify("RELOADING=1\nSTATUS=reloading the configuration"); }

void notifyReady(const Engine &engine) {
  if (state().enabled) {
    notify("READY=1\nSTATUS=" + statusLine(engine));
  }
}

}  // namespace switchyard::cli::systemd
