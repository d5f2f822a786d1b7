// SPDX-License-Identifier: MIT
//
// The plugin test kit (docs/writing-a-plugin.md): fake contexts and host
// (testkit/context.hpp), an in-memory source and sink (testkit/mem.hpp), and a Harness
// that pushes messages through one plugin (testkit/harness.hpp). Header-only; a test
// that loads plugin libraries with Harness::load links -ldl (glibc 2.34+: nothing).
#pragma once

#include "switchyard/testkit/context.hpp"
#include "switchyard/testkit/harness.hpp"
#include "switchyard/testkit/mem.hpp"
