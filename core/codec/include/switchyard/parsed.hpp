// SPDX-License-Identifier: MIT
//
// Parse once: a message's body and headers as json::Value trees, parsed on first use and
// cached on the message (Message::parsedBodyCache(), shared by its copies, dropped when a
// stage sets new text). Every stage that needs the tree asks here, so the bytes are parsed
// at most once per message whatever the pipeline.
//
// THREADING: a Message is used by one thread at a time; these functions are as safe as that.
#pragma once

#include <memory>
#include <string>

#include "switchyard/json.hpp"
#include "switchyard/message.hpp"

namespace switchyard::codec {

/// The body's tree, or null when the body is not JSON (then @p reason, if given, receives
/// json::parse()'s reason). Parses (and caches) only on the first call.
const json::Value *parsedBody(const Message &msg, std::string *reason = nullptr);

/// The headers' tree (an object), or null when the headers are not a JSON object. Empty
/// headers ("{}" or "") give an empty object without parsing.
const json::Value *parsedHeaders(const Message &msg, std::string *reason = nullptr);

/// Stores @p body as the message's parsed body: for an input that parsed it anyway.
void setParsedBody(const Message &msg, json::Value body);

}  // namespace switchyard::codec
