// SPDX-License-Identifier: MIT
#include "cli_reload.hpp"

#include <chrono>
#include <exception>

#include "log.hpp"

namespace switchyard::cli::reload {

bool onSignal(Engine &engine, bool stopping) {
  auto log = logging::core();
  if (stopping) {
    log->info("received SIGHUP while stopping: no reload");
    return true;
  }
  if (!engine.reloadable()) {
    return false;
  }
  log->info("received SIGHUP, reloading the configuration");
  const auto began = std::chrono::steady_clock::now();
  try {
    ReloadReport r = engine.reload();
    const double took =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count();
    if (r.failed.empty()) {
      log->info("reload: {} ({:.2f} s)", r.str(), took);
    } else {
      log->error("reload: {} ({:.2f} s)", r.str(), took);
    }
  } catch (const ConfigError &e) {
    for (const auto &d : e.diagnostics()) {
      log->error("reload: {}", d.str());
    }
    log->error("reload: {} error(s) in the new configuration; the running configuration stays "
               "(fix the file and send SIGHUP again)",
               e.diagnostics().size());
  } catch (const std::exception &e) {
    log->error("reload failed: {}; the running configuration stays", e.what());
  }
  return true;
}

}  // namespace switchyard::cli::reload
