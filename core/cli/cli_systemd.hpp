// SPDX-License-Identifier: MIT
// systemd service notifications of `switchyard run` (sd_notify through libsystemd):
// READY=1, STATUS=, WATCHDOG=1, STOPPING=1, RELOADING=1. Each call is a no-op unless
// enable() ran and systemd gave the process a NOTIFY_SOCKET (docs/operations.md, systemd).
#pragma once

#include <string>

#include "switchyard/engine.hpp"

namespace switchyard::cli::systemd {

/// Turns notifications on for this process. Only `switchyard run` calls it: the other
/// commands that run an engine (tail, logger, verify-missing) never notify.
void enable();

/// Every pipeline started: READY=1 with the first STATUS=.
void started(const Engine &engine);
/// Each turn of the run loop: WATCHDOG=1 every half watchdog interval when systemd set
/// WATCHDOG_USEC for this process, STATUS= every few seconds.
void loop(const Engine &engine);
/// A stop (drain) began: STOPPING=1.
void stopping();
/// A reload begins: RELOADING=1. After it, reloaded() says READY=1 again.
void notifyReloading();
/// A reload ended (applied or refused, the process runs either way): READY=1, STATUS=.
void notifyReady(const Engine &engine);

/// The one-line STATUS= summary: "2 pipelines running; in 120, out 118, dropped 2" (the
/// inputs' `received`, the outputs' `sent`, every `dropped`), "1 of 2 pipelines running; ..."
/// when some pipeline ended or failed.
std::string statusLine(const Engine &engine);

}  // namespace switchyard::cli::systemd
