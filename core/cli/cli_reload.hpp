// SPDX-License-Identifier: MIT
// SIGHUP: reload the configuration of a running `switchyard run` (Engine::reload()).
#pragma once

#include "switchyard/engine.hpp"

namespace switchyard::cli::reload {

/// Handles SIGHUP in runEngine(). For an engine loaded from a file: re-reads it and applies
/// it (Engine::reload()), logging what changed, or every problem of a file that does not
/// load while the running configuration stays; true. While @p stopping: nothing (true).
/// False when the engine has nothing to reload (its configuration was made from the
/// command line: tail, logger, ...): the caller then treats SIGHUP as a stop, as a hang-up
/// of the terminal should.
bool onSignal(Engine &engine, bool stopping);

}  // namespace switchyard::cli::reload
