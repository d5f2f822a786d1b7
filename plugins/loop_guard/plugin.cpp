// SPDX-License-Identifier: MIT
//
// loop-guard (filter): see loop_guard.hpp and docs/plugins/loop-guard.md.
//
//   filters:
//     - type: loop-guard
//       username_marker: amqp-bridge
//       window: 10000
#include "loop_guard.hpp"

SWITCHYARD_PLUGIN(switchyard::plugins::LoopGuardFactory, SY_KIND_FILTER, "loop-guard", "1.0.0",
                  "Drops messages that come back from the other bus (username marker, provenance header, id window)",
                  SY_FLAG_PARALLEL, switchyard::plugins::kLoopGuardSchema)
