// SPDX-License-Identifier: MIT
// The JSON-lines message format of the stdin and stdout plugins:
//   {"topic":"a.b","body":{...},"headers":{...},"id":"..."}
// `body` and `headers` are kept as the exact bytes of the line (no re-serialisation), so
// a line read by stdin and written by stdout comes out unchanged.
#pragma once

#include <string>
#include <string_view>

#include <rapidjson/reader.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "switchyard/message.hpp"

namespace switchyard::jsonl {

/// Parses one line into @p out. Returns "" on success, else a snake_case reason.
/// @p detail receives a human-readable explanation.
std::string parseLine(std::string_view line, Message &out, std::string &detail);

/// Appends the line for @p m (without a newline) to @p out.
void formatLine(const Message &m, std::string &out);

}  // namespace switchyard::jsonl
