// SPDX-License-Identifier: MIT
// How `switchyard tail` and `switchyard record` show a message: JSON lines (the default
// when standard output is not a terminal, and what `record` writes), pretty (indented,
// coloured on a terminal) or terse (one line).
#pragma once

#include <cstdio>
#include <mutex>
#include <string>
#include <string_view>

#include "switchyard/message.hpp"

namespace switchyard::cli {

enum class TailFormat { Json, Pretty, Terse };

/// The signature verdict shown with a message.
struct SignatureVerdict {
  /// "valid" / "invalid" (the verifier ran: --validate), "signed" / "unsigned" (it did not).
  std::string state;
  std::string reason;  ///< the verifier's drop reason when invalid ("bad_signature", ...)
};

/// What is shown of a message besides topic, body, headers and id: read from the fedmsg
/// envelope it carries (ZeroMQ, or AMQP with a carried envelope), else from the message.
struct MessageInfo {
  std::string timestamp;  ///< JSON number text; "" when unknown
  std::string username;
  bool has_username = false;
  std::string i;  ///< JSON integer text; "" when absent
  bool signed_ = false;
};

MessageInfo messageInfo(const Message &m);
/// Verdict when no verifier ran: "signed" or "unsigned".
SignatureVerdict unverifiedVerdict(const MessageInfo &info);

/// Appends one JSON line (no newline):
/// {"topic","body","headers","id","timestamp","username","i","signature"[,"signature_error"]}.
/// body and headers keep their bytes (a raw line feed becomes a space); the line is what
/// the stdin plugin reads back (unknown keys are ignored there).
void formatJsonLine(const Message &m, const MessageInfo &info, const SignatureVerdict &v,
                    std::string &out);
/// Appends the multi-line, indented form; ANSI colours when @p colour.
void formatPretty(const Message &m, const MessageInfo &info, const SignatureVerdict &v, bool colour,
                  std::string &out);
/// Appends one line: time, topic, username, i, verdict, id and the body (cut at 160 bytes).
void formatTerse(const Message &m, const MessageInfo &info, const SignatureVerdict &v, bool colour,
                 std::string &out);

/// Writes formatted messages to a stream, one at a time from any thread, flushing each.
class Printer {
 public:
  Printer(std::FILE *out, TailFormat format, bool colour, std::int64_t limit)
      : out_(out), format_(format), colour_(colour), limit_(limit) {}
  /// Shows @p m; returns false when the limit was reached before it (it is not shown).
  bool print(const Message &m, const SignatureVerdict *verdict);
  /// Messages shown so far.
  [[nodiscard]] std::int64_t shown() const;
  /// True once the limit (if any) was reached.
  [[nodiscard]] bool full() const;
  /// False after a write failed (e.g. the reader of a pipe went away).
  [[nodiscard]] bool healthy() const;

 private:
  mutable std::mutex mu_;
  std::FILE *out_;
  TailFormat format_;
  bool colour_;
  std::int64_t limit_;  ///< 0: none
  std::int64_t shown_ = 0;
  bool healthy_ = true;
  std::string buf_;
};

}  // namespace switchyard::cli
