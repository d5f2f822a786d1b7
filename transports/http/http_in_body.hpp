// SPDX-License-Identifier: MIT
// http-in's request bodies and response bodies: one JSON message object, or JSON lines
// (application/x-ndjson), into Messages; the JSON answers.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "switchyard/message.hpp"
#include "switchyard/plugin.hpp"

namespace switchyard::httpin {

/// Parses one message object {topic, body, headers?, id?}. False with @p err saying which
/// field is wrong and how ("\"topic\" must be a non-empty string").
bool parseMessage(std::string_view text, Message &out, std::string &err);

/// Splits an x-ndjson body into its non-blank lines, each with its 1-based line number.
struct Line {
  std::size_t number;
  std::string_view text;
};
std::vector<Line> splitLines(std::string_view body);

/// What a response says about one message.
struct LineResult {
  std::size_t line = 0;  ///< 0 for a single-message POST
  std::string id;
  std::string outcome;  ///< delivered, dropped, reject, retry, pending
  std::string reason;
};

/// {"status":STATUS,"error":ERROR,"detail":DETAIL} (error and detail only when set), plus
/// "id"/"ids" and "results" when given.
std::string responseJson(std::string_view status, std::string_view error, std::string_view detail,
                         const std::vector<std::string> &ids, bool single,
                         const std::vector<LineResult> *results = nullptr);

}  // namespace switchyard::httpin
