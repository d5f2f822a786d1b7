// SPDX-License-Identifier: MIT
#include "cli_common.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <string_view>

#include "cli_reload.hpp"
#include "cli_systemd.hpp"
#include "log.hpp"
#include "ops_endpoint.hpp"
#include "runtime_tap.hpp"

namespace switchyard::cli {

namespace {
constexpr std::string_view kValuedGlobals[] = {"--plugin-path", "--log-level", "--log-format"};
}  // namespace

void addGlobalOptions(CLI::App &app, Common &c) {
  // Subcommands made after this inherit fall-through: an option a subcommand does not
  // know is parsed by the app, wherever it stands on the command line.
  app.fallthrough();
  app.add_option("--plugin-path", c.plugin_paths,
                 "Directory searched for plugins before SWITCHYARD_PLUGIN_PATH, the "
                 "configuration's plugin_path and the install directory (repeatable, one "
                 "directory per use)")
      ->allow_extra_args(false)
      ->take_all();
  app.add_option("--log-level", c.log_level, "trace, debug, info, warn, error or critical")
      ->capture_default_str();
  app.add_option("--log-format", c.log_format, "text or json (one JSON object per line)")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();
}

bool setupLogging(const Common &c) {
  LogLevel level;
  if (!logging::parseLevel(c.log_level, level)) {
    std::fprintf(stderr,
                 "switchyard: unknown log level '%s' (use trace, debug, info, warn, error or critical)\n",
                 c.log_level.c_str());
    return false;
  }
  logging::setup(level, c.log_format == "json" ? logging::Format::Json : logging::Format::Text);
  return true;
}

EngineOptions engineOptions(const Common &c) {
  EngineOptions o;
  o.plugin_paths = c.plugin_paths;
  return o;
}

namespace {
/// Optimal string alignment distance (Damerau-Levenshtein without repeated edits of a
/// substring), which is what a typo is: insertions, deletions, substitutions, swaps.
std::size_t editDistance(std::string_view a, std::string_view b) {
  std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
  for (std::size_t i = 0; i <= a.size(); ++i) {
    d[i][0] = i;
  }
  for (std::size_t j = 0; j <= b.size(); ++j) {
    d[0][j] = j;
  }
  for (std::size_t i = 1; i <= a.size(); ++i) {
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.size()][b.size()];
}
}  // namespace

std::string closestMatch(std::string_view word, const std::vector<std::string> &candidates,
                         std::size_t max_distance) {
  std::string best;
  std::size_t best_d = max_distance + 1;
  if (word.size() > 64) {
    return best;  // nobody mistypes 64 characters; keep the table small
  }
  for (const auto &c : candidates) {
    std::size_t dist = editDistance(word, c);
    if (dist < best_d && dist < std::max(word.size(), c.size())) {
      best = c;
      best_d = dist;
    }
  }
  return best;
}

bool checkSubcommandName(const CLI::App &app, int argc, const char *const *argv) {
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--") {
      return true;
    }
    if (arg.starts_with("-")) {
      for (auto opt : kValuedGlobals) {
        if (arg == opt) {
          ++i;  // its value
        }
      }
      continue;
    }
    std::vector<std::string> names;
    for (const auto *sub : app.get_subcommands([](const CLI::App *) { return true; })) {
      if (sub->get_name() == arg) {
        return true;
      }
      names.push_back(sub->get_name());
    }
    std::string hint = closestMatch(arg, names);
    std::string all;
    for (const auto &n : names) {
      all += (all.empty() ? "" : ", ") + n;
    }
    if (!hint.empty()) {
      std::fprintf(stderr, "switchyard: unknown command '%.*s'; did you mean '%s'?\n",
                   static_cast<int>(arg.size()), arg.data(), hint.c_str());
    } else {
      std::fprintf(stderr, "switchyard: unknown command '%.*s' (commands: %s)\n",
                   static_cast<int>(arg.size()), arg.data(), all.c_str());
    }
    return false;
  }
  return true;  // no command at all: CLI11 says one is required
}

sigset_t blockStopSignals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGHUP);  // a reload (cli_reload.cpp), or a stop where nothing can reload
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
  std::unique_ptr<ops::Endpoint> http;  // the operations endpoint, when configured (ops_endpoint.hpp)
  try {
    http = ops::startEndpoint(engine, [&engine](http::Server &s) { tap::addRoute(s, engine); });  // + GET /tap
  } catch (const std::exception &e) {
    log->critical("start failed: {}", e.what());
    return kExitFailure;
  }
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
  if (http) {
    http->engineStarted();
  }
  systemd::started(engine);  // READY=1 (only `switchyard run` enables notifications)
  using Clock = std::chrono::steady_clock;
  const auto interval =
      std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(stats_interval));
  auto next_stats = Clock::now() + interval;
  bool stopping = false;
  while (!engine.wait(std::chrono::milliseconds(0))) {
    timespec ts{0, 50 * 1000 * 1000};
    int sig = sigtimedwait(&signals, nullptr, &ts);
    if (http) {
      http->tick();  // /health/live
    }
    const bool reloading = sig == SIGHUP && !stopping && engine.reloadable();
    if (reloading) {
      systemd::notifyReloading();  // RELOADING=1, and READY=1 once the reload is over
    }
    if (sig == SIGHUP && reload::onSignal(engine, stopping)) {
      sig = 0;  // reloaded, or kept the running configuration (the log says why)
    }
    if (reloading) {
      systemd::notifyReady(engine);
    }
    if (sig == SIGINT || sig == SIGTERM || sig == SIGHUP) {
      if (stopping) {
        log->warn("second signal: exiting without draining");
        std::_Exit(kExitFailure);
      }
      log->info("received {}, stopping: draining in-flight messages",
                sig == SIGINT ? "SIGINT" : sig == SIGHUP ? "SIGHUP" : "SIGTERM");
      stopping = true;
      systemd::stopping();
      engine.requestStop();
    }
    systemd::loop(engine);  // WATCHDOG=1, STATUS=
    if (stats_interval > 0 && on_stats && Clock::now() >= next_stats) {
      on_stats();
      next_stats += interval;
    }
  }
  if (!stopping) {
    systemd::stopping();  // every input ended by itself
  }
  return engine.stop() ? kExitOk : kExitFailure;
}

}  // namespace switchyard::cli
