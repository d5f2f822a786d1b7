// SPDX-License-Identifier: MIT
#include "cli_common.hpp"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>

#include "log.hpp"

namespace switchyard::cli {

sigset_t blockStopSignals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  return signals;
}

void printDiagnostics(const ConfigError &e) {
  for (const auto &d : e.diagnostics()) {
    std::fprintf(stderr, "%s\n", d.str().c_str());
  }
  std::fprintf(stderr, "%zu error(s)\n", e.diagnostics().size());
}

int runEngine(Engine &engine, const sigset_t &signals, double stats_interval,
              const std::function<void()> &on_stats, const std::function<void()> &on_started) {
  auto log = logging::core();
  try {
    engine.start();
  } catch (const StartError &e) {
    log->critical("start failed: {}", e.what());
    if (e.permanent()) {
      log->critical("this is not a transient error: fix the configuration or the broker's set-up; "
                    "exiting with status {} (restarting cannot help)",
                    kExitPermanent);
      return kExitPermanent;
    }
    return kExitFailure;
  } catch (const std::exception &e) {
    log->critical("start failed: {}", e.what());
    return kExitFailure;
  }
  if (on_started) {
    on_started();
  }
  using Clock = std::chrono::steady_clock;
  const auto interval =
      std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(stats_interval));
  auto next_stats = Clock::now() + interval;
  bool stopping = false;
  while (!engine.wait(std::chrono::milliseconds(0))) {
    timespec ts{0, 50 * 1000 * 1000};
    int sig = sigtimedwait(&signals, nullptr, &ts);
    if (sig == SIGINT || sig == SIGTERM) {
      if (stopping) {
        log->warn("second signal: exiting without draining");
        std::_Exit(kExitFailure);
      }
      log->info("received {}, stopping: draining in-flight messages",
                sig == SIGINT ? "SIGINT" : "SIGTERM");
      stopping = true;
      engine.requestStop();
    }
    if (stats_interval > 0 && on_stats && Clock::now() >= next_stats) {
      on_stats();
      next_stats += interval;
    }
  }
  return engine.stop() ? kExitOk : kExitFailure;
}

}  // namespace switchyard::cli
