// SPDX-License-Identifier: MIT
//
// AMQP field tables <-> JSON trees (json::Value, switchyard/json.hpp): headers of the
// messages (fedora_messaging::Properties::headers, what a delivery carries) and the queue
// arguments of the configuration. Types mirror pika's choices so fedora-messaging reads
// them: integer -> I (32 bits) or l (64), bool -> t, string -> S, object -> F, array -> A,
// null -> V; a float -> D (decimal) when exact, else its JSON text as S.
#pragma once

#include <amqp.h>

#include <deque>
#include <string>
#include <string_view>
#include <vector>

#include "switchyard/fedora_messaging.hpp"
#include "switchyard/json.hpp"

namespace switchyard::amqp {

/// Owns the memory of AMQP tables built from JSON. Keep it alive until the publish is done.
/// A referencing arena (copy_strings false) copies no string: the table points into the
/// trees it was built from, which must then outlive its use (amqp-publish builds the table
/// of one publish from the message's headers and publishes it at once).
class TableArena {
 public:
  explicit TableArena(bool copy_strings = true) : copy_(copy_strings) {}
  /// Appends the members of the JSON object @p obj to @p out. Returns false with @p error
  /// for a value AMQP cannot carry (not an object, a key over 128 bytes, nesting over 32).
  bool fromJson(const json::Value &obj, std::vector<amqp_table_entry_t> &out, std::string &error);
  /// The same for the headers of a publish (fedora_messaging::publishHeaders()).
  bool fromHeaders(const std::vector<fedora_messaging::HeaderRef> &headers, std::vector<amqp_table_entry_t> &out,
                   std::string &error);
  /// @p s as AMQP bytes: a copy owned by the arena, or @p s itself when referencing.
  amqp_bytes_t bytes(std::string_view s);
  void clear();

 private:
  bool entry(std::string_view key, amqp_table_entry_t &e, std::string &error);
  amqp_bytes_t own(std::string s);
  bool copy_;
  bool value(const json::Value &v, amqp_field_value_t &out, std::string &error, int depth);
  std::deque<std::string> strings_;
  std::deque<std::vector<amqp_table_entry_t>> tables_;
  std::deque<std::vector<amqp_field_value_t>> arrays_;
};

/// @p table as a JSON object. Text that is not UTF-8 keeps its ASCII and gets U+FFFD for
/// the rest; non-finite floats become null.
json::Value tableToJson(const amqp_table_t &table);

/// The JSON text of a tree tableToJson() made, for Message::headers() (members in the tree's
/// order, UTF-8 as is). Written on entry beside the tree, which travels with the message:
/// no stage parses this text again.
std::string jsonText(const json::Value &v);

}  // namespace switchyard::amqp
