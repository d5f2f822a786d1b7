// SPDX-License-Identifier: MIT
//
// Internal to the configuration code (config_*.cpp): the parsed YAML tree, where
// diagnostics go, and the helpers the phases share. See config.hpp for the phases.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <rapidjson/document.h>
#include <yaml-cpp/mark.h>

#include "config.hpp"
#include "switchyard/abi.h"

namespace switchyard {

struct ConfigNode {
  enum class Kind { Null, Scalar, Sequence, Map };
  struct Entry {
    std::string key;
    Mark key_mark;
    Mark value_mark;  ///< where the value is written here (an alias's own place, not its anchor's)
    std::shared_ptr<ConfigNode> value;
  };

  Kind kind = Kind::Null;
  Mark mark;
  std::string scalar;   ///< after ${VAR} expansion
  std::string source;   ///< as written, when it held a ${VAR} placeholder (else empty)
  bool plain = true;    ///< plain scalar: type inferred; quoted or !!str: always a string
  bool broken = false;  ///< a problem was already reported for this node (e.g. unset ${VAR})
  bool open = false;    ///< still being built (an alias to it would be recursive)
  std::vector<std::shared_ptr<ConfigNode>> items;  ///< sequence
  std::vector<Mark> item_marks;                    ///< where each item is written (see value_mark)
  std::vector<Entry> entries;                      ///< mapping, file order, duplicates dropped

  [[nodiscard]] const Entry *find(std::string_view key) const {
    for (const auto &e : entries) {
      if (e.key == key) {
        return &e;
      }
    }
    return nullptr;
  }
};

namespace config_detail {

using Kind = ConfigNode::Kind;
using NodePtr = std::shared_ptr<ConfigNode>;
using Alloc = rapidjson::Document::AllocatorType;

// config_diag.cpp: positions, paths, scalars, ${VAR}, suggestions ----------------------

Mark toMark(const YAML::Mark &m);
std::string joinPath(const std::string &parent, std::string_view key);
std::string join(const std::vector<std::string> &v, std::string_view sep = ", ");
bool isNullWord(std::string_view s);
/// YAML 1.2 integers (decimal, 0x, 0o), 64-bit signed.
bool parseInt(std::string_view s, std::int64_t &out);
/// Whether @p s looks like an integer at all (to tell "too large" from "not a number").
bool looksIntegral(std::string_view s);
/// YAML 1.2 core-schema floats (finite ones only: JSON has no inf/nan).
bool parseFloat(std::string_view s, double &out);
/// For boolean keys: YAML 1.1 words as well (yes/no/on/off), in the usual three cases.
bool parseBoolWord(std::string_view s, bool &out);
/// For inference (untyped values): only true/false, as in the YAML 1.2 core schema.
bool parseStrictBool(std::string_view s, bool &out);
/// Expands ${VAR} and ${VAR:-default}; returns an empty string on success, else the problem.
std::string expandVariables(std::string_view in, std::string &out);
/// Offset of the first byte of @p s that is not part of well-formed UTF-8 (overlong forms,
/// surrogates and code points above U+10FFFF included), or npos when it is all UTF-8.
std::size_t invalidUtf8(std::string_view s);
/// The diagnostic for a scalar that is not UTF-8 (names the byte, never quotes the value).
std::string utf8Problem(std::string_view s, std::size_t at, bool key);
/// Whether a key holds an unescaped "${".
bool hasPlaceholder(std::string_view s);
/// " (did you mean 'x'?)" for a close candidate, else "".
std::string suggestion(std::string_view word, const std::vector<std::string> &candidates);
/// "'abc'", or "'abc...'" for a long one.
std::string shortValue(std::string_view s);
/// "a mapping", "a list", "null", "'abc'" -- never the value of a secret key.
std::string describe(const ConfigNode &n, bool secret = false);
/// "a string", "an integer", ... for messages.
const char *typeWord(sy_config_type t);
bool isKnown(const std::vector<std::string> &v, const std::string &s);

// ---------------------------------------------------------------------------------------
// Shared state of both phases: where diagnostics go, and the expansion budget.

struct State {
  std::string file;
  std::vector<Diagnostic> &diags;
  std::size_t &budget_used;
  bool &budget_reported;

  void add(Mark m, std::string path, std::string message) const {
    diags.push_back({file, m.line, m.column, std::move(path), std::move(message)});
  }

  /// Counts one produced value against kMaxExpandedNodes; false (reported once) when spent.
  bool spend(const ConfigNode &n, const std::string &path) const {
    if (++budget_used <= kMaxExpandedNodes) {
      return true;
    }
    if (!budget_reported) {
      budget_reported = true;
      add(n.mark, path,
          fmt::format("the configuration expands to more than {} values through aliases; "
                      "refusing it (alias bomb?)",
                      kMaxExpandedNodes));
    }
    return false;
  }

  void unknownKey(const ConfigNode::Entry &e, const std::string &parent_path,
                  const std::string &what, const std::vector<std::string> &allowed) const {
    add(e.key_mark, joinPath(parent_path, e.key),
        fmt::format("unknown key '{}' {}{}; allowed keys: {}", e.key, what,
                    suggestion(e.key, allowed), join(allowed)));
  }
};


// config_settings.cpp: the document's shape (phase 1) ------------------------------------

/// A `retry:` mapping (settings.retry, or an output's own): every key optional, each
/// overriding the value already in @p policy.
void checkRetry(const State &st, const ConfigNode::Entry &re, const std::string &path,
                RetryPolicy &policy);
/// The root mapping: version, settings, plugin_path, pipelines.
void checkRoot(const State &st, const ConfigNode &root, ConfigModel &model, bool &paths_ok);

// config_journal.cpp: a pipeline's `journal:` ---------------------------------------------

/// Phase 1: the keys of pipeline @p p's `journal:` mapping (@p base: "pipelines.NAME").
void checkJournal(const State &st, const ConfigNode::Entry &je, const std::string &base, PipelineSpec &p);
/// Phase 2: a journal on an input that can redeliver, two pipelines sharing a directory, a
/// directory that cannot be created or written.
void checkJournals(const State &st, ConfigModel &model, const PluginRegistry &registry);

// config_schema.cpp: a plugin's declared constraints (enum values, bounds) ---------------

/// Checks the schema's own constraints (enum values only on strings, bounds only on
/// numbers, min <= max); reports a problem of the plugin at @p at and returns false.
bool checkKeyConstraints(const State &st, Mark at, const std::string &path, const std::string &plugin,
                         const KeySpec &k);
/// Checks a converted value against the key's enum values and bounds; reports at @p at
/// (items of a string list at @p item_marks when given) and returns false when it breaks one.
bool checkValueConstraints(const State &st, const rapidjson::Value &v, Mark at,
                           const std::vector<Mark> *item_marks, const KeySpec &k,
                           const std::string &path);
/// "one of 'a', 'b'", "at least 1", "between 1 and 10", "" -- for listings and messages.
std::string constraintText(const KeySpec &k);

}  // namespace config_detail
}  // namespace switchyard
