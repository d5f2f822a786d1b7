// SPDX-License-Identifier: MIT
//
// Fuzz target "http": http-in's request bodies (transports/http/http_in_body.cpp), what the
// HTTPS ingest reads from a client once the HTTP layer has delivered the body: one JSON
// message object, or x-ndjson lines of them, and the JSON answers naming what was wrong.
// Properties: never a crash; a refused message says why; an accepted one has a non-empty
// topic and a body and headers that are JSON; the lines splitLines() returns are the
// non-blank lines of the body, in order, with increasing line numbers; every answer
// responseJson() writes (with the parser's own error texts in it) is a JSON object.
#include <string>
#include <vector>

#include "../../transports/http/http_in_body.hpp"
#include "fuzz_check.hpp"
#include "switchyard/fedmsg.hpp"
#include "switchyard/json.hpp"

namespace sy = switchyard;
namespace json = switchyard::json;

namespace {

// Blank as http-in means it: spaces and tabs only (the lines come without their one
// trailing CR; another CR is content, and the line is then refused as a message).
bool blank(std::string_view s) { return s.find_first_not_of(" \t") == std::string_view::npos; }

void checkAnswer(const std::string &text) {
  auto v = json::parse(text);
  FUZZ_CHECK(v.has_value() && v->isObject());
}

bool checkMessage(std::string_view text, std::string &err, std::string &id) {
  sy::Message msg;
  if (!sy::httpin::parseMessage(text, msg, err)) {
    FUZZ_CHECK(!err.empty());
    return false;
  }
  FUZZ_CHECK(!msg.topic().empty());
  FUZZ_CHECK(sy::fedmsg::validateJson(msg.body()).ok());
  FUZZ_CHECK(json::parse(msg.headers()).has_value());
  id = msg.id();
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
  const std::string_view body = syfuzz::bytes(data, size);
  std::string err;
  std::string id;
  const bool single = checkMessage(body, err, id);
  checkAnswer(sy::httpin::responseJson(single ? "accepted" : "bad_request", single ? "" : "bad_message", err,
                                       single ? std::vector<std::string>{id} : std::vector<std::string>{}, true));

  const auto lines = sy::httpin::splitLines(body);
  std::vector<sy::httpin::LineResult> results;
  std::vector<std::string> ids;
  std::size_t last = 0;
  for (const auto &line : lines) {
    FUZZ_CHECK(line.number > last);
    last = line.number;
    FUZZ_CHECK(!blank(line.text));
    FUZZ_CHECK(line.text.find('\n') == std::string_view::npos);
    FUZZ_CHECK(line.text.data() >= body.data() && line.text.data() + line.text.size() <= body.data() + body.size());
    std::string line_err;
    std::string line_id;
    const bool ok = checkMessage(line.text, line_err, line_id);
    results.push_back({line.number, line_id, ok ? "delivered" : "reject", line_err});
    if (ok) {
      ids.push_back(line_id);
    }
  }
  checkAnswer(sy::httpin::responseJson("partial", "bad_line", err, ids, false, &results));
  return 0;
}
