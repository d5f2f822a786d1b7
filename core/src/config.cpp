// SPDX-License-Identifier: MIT
//
// Configuration parsing (phase 1) and plugin-entry validation (phase 2).
//
// The document is read through yaml-cpp's event stream (YAML::Parser + EventHandler)
// into our own small tree instead of YAML::Node, because the event stream lets us
//   - see every key of a mapping, so duplicate keys are reported (YAML::Node keeps one
//     silently),
//   - keep aliases shared (an alias bomb costs no memory while parsing) and refuse an
//     alias that refers to the node containing it,
//   - know, for each scalar, whether it was a key or a value (${VAR} is expanded only in
//     values) and whether it was quoted (quoted scalars are never type-inferred),
//   - bound nesting and the number of nodes ourselves.
// Every check collects Diagnostics instead of stopping at the first problem.
#include "config.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>
#include <unordered_map>

#include <fmt/format.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/exceptions.h>
#include <yaml-cpp/mark.h>
#include <yaml-cpp/parser.h>

#include "registry.hpp"

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

namespace {

using Kind = ConfigNode::Kind;
using NodePtr = std::shared_ptr<ConfigNode>;

Mark toMark(const YAML::Mark &m) {
  if (m.is_null()) {
    return {};
  }
  return {m.line + 1, m.column + 1};
}

std::string joinPath(const std::string &parent, std::string_view key) {
  if (parent.empty()) {
    return std::string(key);
  }
  return fmt::format("{}.{}", parent, key);
}

std::string join(const std::vector<std::string> &v, std::string_view sep = ", ") {
  std::string out;
  for (const auto &s : v) {
    if (!out.empty()) {
      out += sep;
    }
    out += s;
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// Scalars

bool isNullWord(std::string_view s) { return s == "~" || s == "null" || s == "Null" || s == "NULL"; }

bool parseInt(std::string_view s, std::int64_t &out) {
  if (s.empty()) {
    return false;
  }
  bool negative = false;
  std::string_view body = s;
  if (body.front() == '-' || body.front() == '+') {
    negative = body.front() == '-';
    body.remove_prefix(1);
  }
  int base = 10;
  if (body.size() > 2 && body[0] == '0' && (body[1] == 'x' || body[1] == 'X')) {
    base = 16;
    body.remove_prefix(2);
  } else if (body.size() > 2 && body[0] == '0' && (body[1] == 'o' || body[1] == 'O')) {
    base = 8;
    body.remove_prefix(2);
  }
  if (body.empty()) {
    return false;
  }
  std::uint64_t magnitude = 0;
  auto [end, ec] = std::from_chars(body.data(), body.data() + body.size(), magnitude, base);
  if (ec != std::errc() || end != body.data() + body.size()) {
    return false;
  }
  if (negative) {
    if (magnitude > static_cast<std::uint64_t>(INT64_MAX) + 1) {
      return false;
    }
    out = magnitude == static_cast<std::uint64_t>(INT64_MAX) + 1
              ? INT64_MIN
              : -static_cast<std::int64_t>(magnitude);
    return true;
  }
  if (magnitude > static_cast<std::uint64_t>(INT64_MAX)) {
    return false;
  }
  out = static_cast<std::int64_t>(magnitude);
  return true;
}

/// Whether @p s looks like an integer at all (to tell "too large" from "not a number").
bool looksIntegral(std::string_view s) {
  if (!s.empty() && (s.front() == '-' || s.front() == '+')) {
    s.remove_prefix(1);
  }
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

/// YAML 1.2 core-schema floats (finite ones only: JSON has no inf/nan).
bool parseFloat(std::string_view s, double &out) {
  std::size_t i = 0;
  if (i < s.size() && (s[i] == '-' || s[i] == '+')) {
    ++i;
  }
  std::size_t digits = 0;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
    ++i;
    ++digits;
  }
  if (i < s.size() && s[i] == '.') {
    ++i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
      ++i;
      ++digits;
    }
  }
  if (digits == 0) {
    return false;
  }
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '-' || s[i] == '+')) {
      ++i;
    }
    std::size_t exp_digits = 0;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
      ++i;
      ++exp_digits;
    }
    if (exp_digits == 0) {
      return false;
    }
  }
  if (i != s.size()) {
    return false;
  }
  std::string_view body = s;
  if (body.front() == '+') {
    body.remove_prefix(1);
  }
  double v = 0;
  auto [end, ec] = std::from_chars(body.data(), body.data() + body.size(), v);
  if (ec != std::errc() || end != body.data() + body.size() || !std::isfinite(v)) {
    return false;
  }
  out = v;
  return true;
}

/// For boolean keys: YAML 1.1 words as well (yes/no/on/off), in the usual three cases.
bool parseBoolWord(std::string_view s, bool &out) {
  static const char *const kTrue[] = {"true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON"};
  static const char *const kFalse[] = {"false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF"};
  for (const char *w : kTrue) {
    if (s == w) {
      out = true;
      return true;
    }
  }
  for (const char *w : kFalse) {
    if (s == w) {
      out = false;
      return true;
    }
  }
  return false;
}

/// For inference (untyped values): only true/false, as in the YAML 1.2 core schema.
bool parseStrictBool(std::string_view s, bool &out) {
  if (s == "true" || s == "True" || s == "TRUE") {
    out = true;
    return true;
  }
  if (s == "false" || s == "False" || s == "FALSE") {
    out = false;
    return true;
  }
  return false;
}

bool validVarName(std::string_view n) {
  if (n.empty() || (n[0] >= '0' && n[0] <= '9')) {
    return false;
  }
  return std::all_of(n.begin(), n.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  });
}

/// Expands ${VAR} and ${VAR:-default} (default used when VAR is unset or empty); "$$" is a
/// literal "$", any other "$" is kept as it is. Returns an empty string on success, else
/// the problem. Never quotes an expanded value: it may be a secret.
std::string expandVariables(std::string_view in, std::string &out) {
  out.clear();
  out.reserve(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c != '$' || i + 1 >= in.size()) {
      out += c;
      continue;
    }
    if (in[i + 1] == '$') {
      out += '$';
      ++i;
      continue;
    }
    if (in[i + 1] != '{') {
      out += '$';
      continue;
    }
    auto close = in.find('}', i + 2);
    if (close == std::string_view::npos) {
      return "unterminated '${': expected ${NAME} or ${NAME:-default} (write $$ for a literal $)";
    }
    std::string_view body = in.substr(i + 2, close - i - 2);
    std::string_view name = body;
    std::string_view fallback;
    bool has_default = false;
    if (auto p = body.find(":-"); p != std::string_view::npos) {
      name = body.substr(0, p);
      fallback = body.substr(p + 2);
      has_default = true;
    }
    if (!validVarName(name)) {
      return fmt::format(
          "'${{{}}}' is not a valid placeholder: a variable name is letters, digits and _ "
          "(write $$ for a literal $)",
          name);
    }
    std::string var(name);
    const char *env = std::getenv(var.c_str());
    std::string_view value;
    if (env != nullptr && (*env != '\0' || !has_default)) {
      value = env;
    } else if (has_default) {
      value = fallback;
    } else {
      return fmt::format(
          "environment variable {} is not set (write ${{{}:-default}} to give a default)", var,
          var);
    }
    if (value.find_first_of("\r\n") != std::string_view::npos) {
      return fmt::format("the value of ${{{}}} contains a newline, which is not allowed", var);
    }
    out.append(value);
    i = close;
  }
  return {};
}

/// Whether a key holds an unescaped "${".
bool hasPlaceholder(std::string_view s) {
  for (std::size_t i = 0; i + 1 < s.size(); ++i) {
    if (s[i] == '$') {
      if (s[i + 1] == '$') {
        ++i;
      } else if (s[i + 1] == '{') {
        return true;
      }
    }
  }
  return false;
}

std::size_t editDistance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) {
    row[j] = j;
  }
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diag = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

/// " (did you mean 'x'?)" for a close candidate, else "".
std::string suggestion(std::string_view word, const std::vector<std::string> &candidates) {
  std::string best;
  std::size_t best_d = 3;
  for (const auto &c : candidates) {
    std::size_t d = editDistance(word, c);
    if (d < best_d && d < std::max<std::size_t>(c.size(), 2)) {
      best_d = d;
      best = c;
    }
  }
  return best.empty() ? std::string() : fmt::format(" (did you mean '{}'?)", best);
}

std::string shortValue(std::string_view s) {
  if (s.size() > 40) {
    return fmt::format("'{}...'", s.substr(0, 37));
  }
  return fmt::format("'{}'", s);
}

/// "a mapping", "a list", "null", "'abc'" -- never the value of a secret key.
std::string describe(const ConfigNode &n, bool secret = false) {
  switch (n.kind) {
    case Kind::Null: return "null (no value)";
    case Kind::Sequence: return "a list";
    case Kind::Map: return "a mapping";
    case Kind::Scalar: break;
  }
  if (secret) {
    return n.plain ? "a scalar" : "a quoted string";
  }
  return n.plain ? shortValue(n.scalar) : fmt::format("the quoted string {}", shortValue(n.scalar));
}

// ---------------------------------------------------------------------------------------
// Phase 1a: events -> tree

struct Abort {
  Mark mark;
  std::string message;
};

class TreeBuilder final : public YAML::EventHandler {
 public:
  TreeBuilder(std::string_view text, std::string file, std::vector<Diagnostic> &diags)
      : text_(text), file_(std::move(file)), diags_(diags) {}

  NodePtr root;

  void OnDocumentStart(const YAML::Mark &mark) override {
    if (++documents_ > 1) {
      throw Abort{toMark(mark),
                  "a second YAML document starts here; a configuration is a single mapping "
                  "(check the indentation, or remove the '---'/'...' line)"};
    }
  }
  void OnDocumentEnd() override {}

  void OnNull(const YAML::Mark &mark, YAML::anchor_t anchor) override {
    count(mark);
    Slot s = slot();
    if (s == Slot::Skip) {
      return;
    }
    if (s == Slot::Key) {
      add(toMark(mark), stack_.back().path, "a mapping key is empty");
      setKey({}, toMark(mark), false);
      return;
    }
    auto n = std::make_shared<ConfigNode>();
    n->kind = Kind::Null;
    // An empty value has no position of its own (yaml-cpp gives the next token's): use
    // its key's.
    n->mark = s == Slot::Value ? stack_.back().key_mark : toMark(mark);
    attach(n, anchor, n->mark);
  }

  void OnAlias(const YAML::Mark &mark, YAML::anchor_t anchor) override {
    count(mark);
    Slot s = slot();
    if (s == Slot::Skip) {
      return;
    }
    if (s == Slot::Key) {
      add(toMark(mark), stack_.back().path, "an alias cannot be used as a mapping key");
      setKey({}, toMark(mark), false);
      return;
    }
    std::string path = childPath();
    auto it = anchors_.find(anchor);
    NodePtr target;
    if (it == anchors_.end()) {
      add(toMark(mark), path, "an alias to an anchor inside a mapping key is not supported");
    } else if (it->second->open) {
      add(toMark(mark), path, "recursive alias: it refers to a node that contains it");
    } else {
      target = it->second;
    }
    if (!target) {
      target = std::make_shared<ConfigNode>();
      target->mark = toMark(mark);
      target->broken = true;
    }
    attach(target, 0, toMark(mark));
  }

  void OnScalar(const YAML::Mark &mark, const std::string &tag, YAML::anchor_t anchor,
                const std::string &value) override {
    count(mark);
    Slot s = slot();
    if (s == Slot::Skip) {
      return;
    }
    Mark m = toMark(mark);
    bool quoted = tag == "!";
    if (quoted) {
      checkQuoteClosed(mark, s == Slot::Key ? stack_.back().path : childPath());
    }
    if (s == Slot::Key) {
      Frame &f = stack_.back();
      if (hasPlaceholder(value)) {
        add(m, joinPath(f.path, value),
            "a ${...} placeholder is not allowed in a key: only values are expanded "
            "(write $$ for a literal $)");
      }
      bool usable = true;
      if (auto seen = f.seen.find(value); seen != f.seen.end()) {
        add(m, joinPath(f.path, value),
            fmt::format("duplicate key '{}' (first defined at line {}, column {}); each key "
                        "may appear once in a mapping",
                        value, seen->second.line, seen->second.column));
        usable = false;
      } else {
        f.seen.emplace(value, m);
      }
      setKey(value, m, usable);
      if (anchor != 0) {
        // A key used as an anchor: register a scalar copy so that aliases to it work.
        auto n = std::make_shared<ConfigNode>();
        n->kind = Kind::Scalar;
        n->mark = m;
        n->scalar = value;
        n->plain = !quoted;
        anchors_[anchor] = n;
      }
      return;
    }
    std::string path = childPath();
    auto n = std::make_shared<ConfigNode>();
    n->kind = Kind::Scalar;
    n->mark = m;
    if (tag == "?") {
      n->plain = true;
      if (isNullWord(value)) {
        n->kind = Kind::Null;
      }
    } else if (tag == "!" || tag == "tag:yaml.org,2002:str") {
      n->plain = false;
    } else if (tag == "tag:yaml.org,2002:int" || tag == "tag:yaml.org,2002:float" ||
               tag == "tag:yaml.org,2002:bool" || tag == "tag:yaml.org,2002:null") {
      n->plain = true;
      if (tag == "tag:yaml.org,2002:null") {
        n->kind = Kind::Null;
      }
    } else {
      add(m, path, fmt::format("unsupported tag '{}' (only !!str, !!int, !!float, !!bool, !!null)", tag));
      n->broken = true;
    }
    if (n->kind == Kind::Scalar && value.find('$') != std::string::npos) {
      std::string problem = expandVariables(value, n->scalar);
      if (!problem.empty()) {
        add(m, path, problem);
        n->broken = true;
      }
    } else {
      n->scalar = value;
    }
    attach(n, anchor, m);
  }

  void OnSequenceStart(const YAML::Mark &mark, const std::string &tag, YAML::anchor_t anchor,
                       YAML::EmitterStyle::value) override {
    startCollection(mark, tag, anchor, Kind::Sequence);
  }
  void OnSequenceEnd() override { endCollection(); }
  void OnMapStart(const YAML::Mark &mark, const std::string &tag, YAML::anchor_t anchor,
                  YAML::EmitterStyle::value) override {
    startCollection(mark, tag, anchor, Kind::Map);
  }
  void OnMapEnd() override { endCollection(); }

 private:
  enum class Slot { Root, Key, Value, Item, Skip };

  struct Frame {
    NodePtr node;           ///< null for a collection used as a key (skipped)
    bool key_root = false;  ///< the outermost skipped collection of a complex key
    std::string path;
    // mappings: the key waiting for its value
    bool have_key = false;
    bool key_usable = false;
    std::string key;
    Mark key_mark;
    std::unordered_map<std::string, Mark> seen;
  };

  void add(Mark m, std::string path, std::string message) {
    diags_.push_back({file_, m.line, m.column, std::move(path), std::move(message)});
  }

  void count(const YAML::Mark &mark) {
    if (++nodes_ > kMaxConfigNodes) {
      throw Abort{toMark(mark), fmt::format("the document has more than {} YAML nodes; refusing it",
                                            kMaxConfigNodes)};
    }
  }

  [[nodiscard]] Slot slot() const {
    if (stack_.empty()) {
      return Slot::Root;
    }
    const Frame &f = stack_.back();
    if (!f.node) {
      return Slot::Skip;
    }
    if (f.node->kind == Kind::Sequence) {
      return Slot::Item;
    }
    return f.have_key ? Slot::Value : Slot::Key;
  }

  /// Key path of the node about to be attached.
  [[nodiscard]] std::string childPath() const {
    if (stack_.empty()) {
      return {};
    }
    const Frame &f = stack_.back();
    if (f.node && f.node->kind == Kind::Sequence) {
      return fmt::format("{}[{}]", f.path, f.node->items.size());
    }
    return joinPath(f.path, f.key);
  }

  void setKey(std::string key, Mark m, bool usable) {
    Frame &f = stack_.back();
    f.have_key = true;
    f.key_usable = usable;
    f.key = std::move(key);
    f.key_mark = m;
  }

  /// @p at is where the node is written at this place (differs from n->mark for aliases).
  void attach(const NodePtr &n, YAML::anchor_t anchor, Mark at) {
    if (anchor != 0) {
      anchors_[anchor] = n;
    }
    if (stack_.empty()) {
      root = n;
      return;
    }
    Frame &f = stack_.back();
    if (f.node->kind == Kind::Sequence) {
      f.node->items.push_back(n);
      f.node->item_marks.push_back(at);
      return;
    }
    if (f.key_usable) {
      f.node->entries.push_back({std::move(f.key), f.key_mark, at, n});
    }
    f.have_key = false;
    f.key_usable = false;
    f.key.clear();
  }

  void startCollection(const YAML::Mark &mark, const std::string &tag, YAML::anchor_t anchor,
                       Kind kind) {
    count(mark);
    if (stack_.size() >= static_cast<std::size_t>(kMaxConfigDepth)) {
      throw Abort{toMark(mark), fmt::format("nested more than {} levels deep; refusing the document",
                                            kMaxConfigDepth)};
    }
    Slot s = slot();
    if (s == Slot::Skip || s == Slot::Key) {
      if (s == Slot::Key) {
        add(toMark(mark), stack_.back().path,
            "a mapping key must be a scalar (complex keys are not supported)");
      }
      Frame f;
      f.key_root = s == Slot::Key;
      stack_.push_back(std::move(f));
      return;
    }
    std::string path = childPath();
    auto n = std::make_shared<ConfigNode>();
    n->kind = kind;
    n->mark = toMark(mark);
    n->open = true;
    if (tag != "?" && tag != "!" && tag != "tag:yaml.org,2002:map" && tag != "tag:yaml.org,2002:seq") {
      add(n->mark, path, fmt::format("unsupported tag '{}'", tag));
      n->broken = true;
    }
    attach(n, anchor, n->mark);
    Frame f;
    f.node = n;
    f.path = std::move(path);
    stack_.push_back(std::move(f));
  }

  void endCollection() {
    Frame f = std::move(stack_.back());
    stack_.pop_back();
    if (f.node) {
      f.node->open = false;
      return;
    }
    if (f.key_root) {
      setKey({}, {}, false);
    }
  }

  /// yaml-cpp 0.7 accepts a quoted scalar that runs to the end of the file; refuse it.
  void checkQuoteClosed(const YAML::Mark &mark, const std::string &path) {
    if (mark.pos < 0 || static_cast<std::size_t>(mark.pos) >= text_.size()) {
      return;
    }
    auto pos = static_cast<std::size_t>(mark.pos);
    char q = text_[pos];
    if (q != '"' && q != '\'') {
      return;
    }
    for (std::size_t i = pos + 1; i < text_.size(); ++i) {
      if (q == '"' && text_[i] == '\\') {
        ++i;
      } else if (text_[i] == q) {
        if (q == '\'' && i + 1 < text_.size() && text_[i + 1] == '\'') {
          ++i;
        } else {
          return;
        }
      }
    }
    add(toMark(mark), path, fmt::format("unterminated quoted string: the closing {} is missing", q));
    unterminated = true;
  }

 public:
  bool unterminated = false;  ///< a quoted scalar swallowed the rest of the file

 private:

  std::string_view text_;
  std::string file_;
  std::vector<Diagnostic> &diags_;
  std::vector<Frame> stack_;
  std::unordered_map<YAML::anchor_t, NodePtr> anchors_;
  std::size_t nodes_ = 0;
  int documents_ = 0;
};

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

bool isKnown(const std::vector<std::string> &v, const std::string &s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

/// A positive integer setting; false (reported) when it is not one.
bool settingInt(const State &st, const ConfigNode::Entry &e, const std::string &path,
                std::int64_t min, std::int64_t &out) {
  const ConfigNode &n = *e.value;
  if (n.broken) {
    return false;
  }
  std::int64_t v = 0;
  if (n.kind != Kind::Scalar || !parseInt(n.scalar, v)) {
    st.add(e.value_mark, path, fmt::format("expected an integer, got {}", describe(n)));
    return false;
  }
  if (v < min) {
    st.add(e.value_mark, path, fmt::format("must be at least {}, got {}", min, v));
    return false;
  }
  out = v;
  return true;
}

/// A `retry:` mapping (settings.retry, or an output's own): every key optional, each
/// overriding the value already in @p policy.
void checkRetry(const State &st, const ConfigNode::Entry &re, const std::string &path,
                RetryPolicy &policy) {
  const ConfigNode &n = *re.value;
  if (n.kind == Kind::Null || n.broken) {
    return;
  }
  if (n.kind != Kind::Map) {
    st.add(re.value_mark, path,
           fmt::format("expected a mapping (initial_backoff, max_backoff, max_duration, jitter), got {}",
                       describe(n)));
    return;
  }
  static const std::vector<std::string> kKeys = {"initial_backoff", "max_backoff", "max_duration",
                                                 "jitter"};
  RetryPolicy p = policy;
  bool ok = true;
  for (const auto &e : n.entries) {
    std::string kpath = joinPath(path, e.key);
    if (!isKnown(kKeys, e.key)) {
      st.unknownKey(e, path, "in retry", kKeys);
      ok = false;
      continue;
    }
    const ConfigNode &vn = *e.value;
    if (vn.kind == Kind::Null || vn.broken) {
      continue;
    }
    double d = 0;
    if (vn.kind != Kind::Scalar || !parseFloat(vn.scalar, d)) {
      st.add(e.value_mark, kpath,
             fmt::format("expected {}, got {}", e.key == "jitter" ? "a fraction (0 to 0.5)" : "a number of seconds",
                         describe(vn)));
      ok = false;
      continue;
    }
    if (e.key == "initial_backoff") {
      if (d < 0.001 || d > 3600) {
        st.add(e.value_mark, kpath, fmt::format("must be between 0.001 and 3600 seconds, got {}", vn.scalar));
        ok = false;
      }
      p.initial_backoff_s = d;
    } else if (e.key == "max_backoff") {
      if (d < 1 || d > 3600) {
        st.add(e.value_mark, kpath,
               fmt::format("must be between 1 and 3600 seconds (at least 1 s, so that a failing "
                           "message is retried at most once a second), got {}",
                           vn.scalar));
        ok = false;
      }
      p.max_backoff_s = d;
    } else if (e.key == "max_duration") {
      if (d < 0) {
        st.add(e.value_mark, kpath, "must not be negative (0: retry without a time limit)");
        ok = false;
      }
      p.max_duration_s = d;
    } else {
      if (d < 0 || d > 0.5) {
        st.add(e.value_mark, kpath, fmt::format("must be between 0 and 0.5, got {}", vn.scalar));
        ok = false;
      }
      p.jitter = d;
    }
  }
  if (ok && p.initial_backoff_s > p.max_backoff_s) {
    st.add(re.value_mark, path,
           fmt::format("initial_backoff ({} s) is larger than max_backoff ({} s)", p.initial_backoff_s,
                       p.max_backoff_s));
    ok = false;
  }
  if (ok) {
    policy = p;
  }
}

void checkSettings(const State &st, const ConfigNode::Entry &se, Settings &settings) {
  const ConfigNode &n = *se.value;
  if (n.kind == Kind::Null || n.broken) {
    return;
  }
  if (n.kind != Kind::Map) {
    st.add(se.value_mark, "settings", fmt::format("expected a mapping, got {}", describe(n)));
    return;
  }
  static const std::vector<std::string> kKeys = {"queue_max_messages", "queue_max_bytes",
                                                 "drain_timeout", "retry"};
  for (const auto &e : n.entries) {
    std::string path = joinPath("settings", e.key);
    if (!isKnown(kKeys, e.key)) {
      st.unknownKey(e, "settings", "in settings", kKeys);
      continue;
    }
    if (e.value->kind == Kind::Null) {
      continue;  // an empty value keeps the default
    }
    std::int64_t v = 0;
    if (e.key == "retry") {
      checkRetry(st, e, path, settings.retry);
    } else if (e.key == "queue_max_messages") {
      if (settingInt(st, e, path, 1, v)) {
        settings.queue_max_messages = static_cast<std::size_t>(v);
      }
    } else if (e.key == "queue_max_bytes") {
      if (settingInt(st, e, path, 1, v)) {
        settings.queue_max_bytes = static_cast<std::size_t>(v);
      }
    } else {
      const ConfigNode &vn = *e.value;
      double d = 0;
      if (vn.broken) {
        continue;
      }
      if (vn.kind != Kind::Scalar || !parseFloat(vn.scalar, d)) {
        st.add(e.value_mark, path, fmt::format("expected a number of seconds, got {}", describe(vn)));
      } else if (d < 0) {
        st.add(e.value_mark, path, "must not be negative");
      } else {
        settings.drain_timeout_s = d;
      }
    }
  }
}

/// plugin_path: a string or a list of strings, relative to the configuration's directory.
/// Returns false when it could not be understood (plugins would then be searched wrongly).
bool checkPluginPath(const State &st, const ConfigNode::Entry &pe, const std::string &file,
                     std::vector<std::string> &out) {
  const ConfigNode &n = *pe.value;
  if (n.kind == Kind::Null) {
    return true;
  }
  struct Item {
    const ConfigNode *node;
    std::string path;
    Mark at;
  };
  std::vector<Item> items;
  if (n.kind == Kind::Scalar) {
    items.push_back({&n, "plugin_path", pe.value_mark});
  } else if (n.kind == Kind::Sequence) {
    for (std::size_t i = 0; i < n.items.size(); ++i) {
      items.push_back({n.items[i].get(), fmt::format("plugin_path[{}]", i), n.item_marks[i]});
    }
  } else {
    st.add(pe.value_mark, "plugin_path",
           fmt::format("expected a directory or a list of directories, got {}", describe(n)));
    return false;
  }
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path base;
  if (!file.empty() && file.front() != '<') {
    base = fs::absolute(fs::path(file), ec).parent_path();
  } else {
    base = fs::current_path(ec);
  }
  bool ok = true;
  for (const auto &[item, path, at] : items) {
    if (item->broken) {
      ok = false;
      continue;
    }
    if (item->kind != Kind::Scalar || item->scalar.empty()) {
      st.add(at, path, fmt::format("expected a directory, got {}", describe(*item)));
      ok = false;
      continue;
    }
    fs::path p(item->scalar);
    if (p.is_relative()) {
      p = base / p;
    }
    p = p.lexically_normal();
    if (!fs::is_directory(p, ec)) {
      st.add(at, path,
             fmt::format("plugin directory '{}' does not exist or is not a directory", p.string()));
      ok = false;
      continue;
    }
    out.push_back(p.string());
  }
  return ok;
}

/// A plugin entry {type: NAME, ...}: checked for shape here, against its schema in phase 2.
/// @p at is where the entry is written (an alias's place when it is one).
bool checkPluginEntry(const State &st, const NodePtr &node, Mark at, const std::string &path,
                      PluginSpec &spec) {
  const ConfigNode &n = *node;
  if (!st.spend(n, path)) {
    return false;
  }
  if (n.broken) {
    return false;
  }
  if (n.kind != Kind::Map) {
    st.add(at, path,
           fmt::format("expected a plugin entry (a mapping with 'type' and the plugin's keys), got {}",
                       describe(n)));
    return false;
  }
  const auto *t = n.find("type");
  if (t == nullptr) {
    st.add(at, path, "missing required key 'type' (the plugin's name)");
    return false;
  }
  const ConfigNode &tv = *t->value;
  if (tv.broken) {
    return false;
  }
  if (tv.kind != Kind::Scalar || tv.scalar.empty()) {
    st.add(t->value_mark, path + ".type",
           fmt::format("expected a plugin name, got {}", describe(tv)));
    return false;
  }
  spec.type = tv.scalar;
  spec.path = path;
  spec.mark = at;
  spec.node = node;
  return true;
}

bool validPipelineName(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-';
  });
}

void checkPipeline(const State &st, const ConfigNode::Entry &pe, ConfigModel &model) {
  std::string base = joinPath("pipelines", pe.key);
  if (!validPipelineName(pe.key)) {
    st.add(pe.key_mark, base,
           fmt::format("invalid pipeline name '{}': use letters, digits, '_', '.' and '-'", pe.key));
  }
  const ConfigNode &n = *pe.value;
  if (!st.spend(n, base) || n.broken) {
    return;
  }
  if (n.kind != Kind::Map) {
    st.add(pe.value_mark, base,
           fmt::format("expected a pipeline (a mapping with input, filters, outputs), got {}",
                       describe(n)));
    return;
  }
  static const std::vector<std::string> kKeys = {"input", "filters", "outputs", "workers"};
  for (const auto &e : n.entries) {
    if (!isKnown(kKeys, e.key)) {
      st.unknownKey(e, base, "in a pipeline", kKeys);
    }
  }
  PipelineSpec p;
  p.name = pe.key;
  p.mark = pe.value_mark;

  if (const auto *w = n.find("workers"); w != nullptr && w->value->kind != Kind::Null && !w->value->broken) {
    p.workers_mark = w->value_mark;
    std::int64_t v = 0;
    const ConfigNode &wv = *w->value;
    if (wv.kind == Kind::Scalar && wv.scalar == "auto") {
      p.workers = 0;
    } else if (wv.kind != Kind::Scalar || !parseInt(wv.scalar, v)) {
      st.add(w->value_mark, base + ".workers",
             fmt::format("expected 'auto' or a number of filter worker threads, got {}", describe(wv)));
    } else if (v < 1 || v > kMaxWorkers) {
      st.add(w->value_mark, base + ".workers",
             fmt::format("must be between 1 and {} (or 'auto'), got {}", kMaxWorkers, v));
    } else {
      p.workers = static_cast<std::size_t>(v);
    }
  }

  if (const auto *in = n.find("input"); in == nullptr) {
    st.add(pe.value_mark, base + ".input", "missing required key 'input' (a source plugin entry)");
  } else if (in->value->kind == Kind::Sequence) {
    st.add(in->value_mark, base + ".input",
           "expected one plugin entry: a pipeline has exactly one input (use several pipelines "
           "to merge inputs)");
  } else {
    checkPluginEntry(st, in->value, in->value_mark, base + ".input", p.input);
  }

  if (const auto *fl = n.find("filters"); fl != nullptr && fl->value->kind != Kind::Null) {
    const ConfigNode &fv = *fl->value;
    if (fv.kind != Kind::Sequence) {
      if (!fv.broken) {
        st.add(fl->value_mark, base + ".filters",
               fmt::format("expected a list of filter entries, got {}", describe(fv)));
      }
    } else {
      for (std::size_t i = 0; i < fv.items.size(); ++i) {
        PluginSpec spec;
        if (checkPluginEntry(st, fv.items[i], fv.item_marks[i], fmt::format("{}.filters[{}]", base, i),
                             spec)) {
          p.filters.push_back(std::move(spec));
        }
      }
    }
  }

  const auto *out = n.find("outputs");
  if (out == nullptr) {
    st.add(pe.value_mark, base + ".outputs",
           "missing required key 'outputs' (a list of one or more sink plugin entries)");
  } else {
    const ConfigNode &ov = *out->value;
    if (ov.broken) {
      // already reported
    } else if (ov.kind == Kind::Null || (ov.kind == Kind::Sequence && ov.items.empty())) {
      st.add(out->value_mark, base + ".outputs", "a pipeline needs at least one output (a sink plugin entry)");
    } else if (ov.kind == Kind::Map) {
      st.add(out->value_mark, base + ".outputs",
             "expected a list of sink entries: write '- type: ...' (outputs fan out to every entry)");
    } else if (ov.kind != Kind::Sequence) {
      st.add(out->value_mark, base + ".outputs",
             fmt::format("expected a list of sink entries, got {}", describe(ov)));
    } else {
      for (std::size_t i = 0; i < ov.items.size(); ++i) {
        PluginSpec spec;
        if (checkPluginEntry(st, ov.items[i], ov.item_marks[i], fmt::format("{}.outputs[{}]", base, i),
                             spec)) {
          p.outputs.push_back(std::move(spec));
        }
      }
    }
  }
  model.pipelines.push_back(std::move(p));
}

void checkRoot(const State &st, const ConfigNode &root, ConfigModel &model, bool &paths_ok) {
  if (root.kind != Kind::Map) {
    st.add(root.mark, "",
           fmt::format("expected a mapping with the keys version and pipelines at the top level, got {}",
                       describe(root)));
    return;
  }
  static const std::vector<std::string> kKeys = {"version", "plugin_path", "settings", "pipelines"};
  for (const auto &e : root.entries) {
    if (!isKnown(kKeys, e.key)) {
      st.unknownKey(e, "", "at the top level", kKeys);
    }
  }
  if (const auto *v = root.find("version"); v == nullptr) {
    st.add(root.mark, "version", "missing required key 'version' (write 'version: 1')");
  } else if (!v->value->broken) {
    std::int64_t ver = 0;
    const ConfigNode &vn = *v->value;
    if (vn.kind != Kind::Scalar || !parseInt(vn.scalar, ver) || ver != 1) {
      st.add(v->value_mark, "version",
             fmt::format("unsupported configuration version {}; expected 1", describe(vn)));
    }
  }
  if (const auto *pp = root.find("plugin_path"); pp != nullptr) {
    paths_ok = checkPluginPath(st, *pp, model.file, model.plugin_paths);
  }
  if (const auto *s = root.find("settings"); s != nullptr) {
    checkSettings(st, *s, model.settings);
  }
  const auto *pl = root.find("pipelines");
  if (pl == nullptr) {
    st.add(root.mark, "pipelines", "missing required key 'pipelines' (a mapping of pipeline names)");
    return;
  }
  const ConfigNode &pn = *pl->value;
  if (pn.broken) {
    return;
  }
  if (pn.kind == Kind::Null || (pn.kind == Kind::Map && pn.entries.empty())) {
    st.add(pl->value_mark, "pipelines",
           "no pipelines: 'pipelines' must map at least one pipeline name to its definition");
    return;
  }
  if (pn.kind != Kind::Map) {
    st.add(pl->value_mark, "pipelines",
           fmt::format("expected a mapping of pipeline names to pipelines, got {}", describe(pn)));
    return;
  }
  for (const auto &e : pn.entries) {
    checkPipeline(st, e, model);
  }
}

// ---------------------------------------------------------------------------------------
// Phase 2 helpers: YAML -> JSON typed per schema

using Alloc = rapidjson::Document::AllocatorType;

/// Untyped conversion (SY_CFG_MAP / LIST / ANY): quoted scalars stay strings, plain ones
/// are inferred. False when the budget ran out or the node was broken (already reported).
bool toJson(const State &st, const ConfigNode &n, const std::string &path, rapidjson::Value &out,
            Alloc &alloc, int depth) {
  if (!st.spend(n, path)) {
    return false;
  }
  if (n.broken) {
    return false;
  }
  if (depth > kMaxConfigDepth) {
    st.add(n.mark, path,
           fmt::format("nested more than {} levels deep (aliases included)", kMaxConfigDepth));
    return false;
  }
  switch (n.kind) {
    case Kind::Null:
      out.SetNull();
      return true;
    case Kind::Scalar: {
      std::int64_t i = 0;
      double d = 0;
      bool b = false;
      if (n.plain && parseInt(n.scalar, i)) {
        out.SetInt64(i);
      } else if (n.plain && parseFloat(n.scalar, d)) {
        out.SetDouble(d);
      } else if (n.plain && parseStrictBool(n.scalar, b)) {
        out.SetBool(b);
      } else {
        out.SetString(n.scalar.data(), static_cast<rapidjson::SizeType>(n.scalar.size()), alloc);
      }
      return true;
    }
    case Kind::Sequence:
      out.SetArray();
      for (std::size_t i = 0; i < n.items.size(); ++i) {
        rapidjson::Value v;
        if (!toJson(st, *n.items[i], fmt::format("{}[{}]", path, i), v, alloc, depth + 1)) {
          return false;
        }
        out.PushBack(v, alloc);
      }
      return true;
    case Kind::Map:
      out.SetObject();
      for (const auto &e : n.entries) {
        rapidjson::Value v;
        if (!toJson(st, *e.value, joinPath(path, e.key), v, alloc, depth + 1)) {
          return false;
        }
        rapidjson::Value k(e.key.data(), static_cast<rapidjson::SizeType>(e.key.size()), alloc);
        out.AddMember(k, v, alloc);
      }
      return true;
  }
  return false;
}

/// Converts one given value per its key's schema type; reports and returns false when it
/// does not fit. Values of secret keys are never quoted in a message.
bool typedValue(const State &st, const ConfigNode &n, Mark at, const KeySpec &k,
                const std::string &path, rapidjson::Value &out, Alloc &alloc) {
  if (n.broken) {
    return false;
  }
  auto wrong = [&](std::string_view expected) {
    st.add(at, path, fmt::format("expected {}, got {}", expected, describe(n, k.secret)));
    return false;
  };
  switch (k.type) {
    case SY_CFG_STRING:
      if (n.kind != Kind::Scalar) {
        return wrong("a string");
      }
      if (!st.spend(n, path)) {
        return false;
      }
      out.SetString(n.scalar.data(), static_cast<rapidjson::SizeType>(n.scalar.size()), alloc);
      return true;
    case SY_CFG_INT: {
      std::int64_t v = 0;
      if (n.kind != Kind::Scalar) {
        return wrong("an integer");
      }
      if (!parseInt(n.scalar, v)) {
        if (looksIntegral(n.scalar)) {
          st.add(at, path, "integer out of range (64-bit signed)");
          return false;
        }
        return wrong("an integer");
      }
      if (!st.spend(n, path)) {
        return false;
      }
      out.SetInt64(v);
      return true;
    }
    case SY_CFG_FLOAT: {
      std::int64_t i = 0;
      double d = 0;
      if (n.kind != Kind::Scalar) {
        return wrong("a number");
      }
      if (!st.spend(n, path)) {
        return false;
      }
      if (parseInt(n.scalar, i)) {
        out.SetInt64(i);
        return true;
      }
      if (!parseFloat(n.scalar, d)) {
        return wrong("a number");
      }
      out.SetDouble(d);
      return true;
    }
    case SY_CFG_BOOL: {
      bool b = false;
      if (n.kind != Kind::Scalar || !parseBoolWord(n.scalar, b)) {
        return wrong("true or false (yes/no and on/off are accepted too)");
      }
      if (!st.spend(n, path)) {
        return false;
      }
      out.SetBool(b);
      return true;
    }
    case SY_CFG_STRING_LIST: {
      if (n.kind == Kind::Scalar) {
        if (!st.spend(n, path)) {
          return false;
        }
        out.SetArray();
        rapidjson::Value s(n.scalar.data(), static_cast<rapidjson::SizeType>(n.scalar.size()), alloc);
        out.PushBack(s, alloc);
        return true;
      }
      if (n.kind != Kind::Sequence) {
        return wrong("a list of strings");
      }
      if (!st.spend(n, path)) {
        return false;
      }
      out.SetArray();
      bool ok = true;
      for (std::size_t i = 0; i < n.items.size(); ++i) {
        const ConfigNode &e = *n.items[i];
        std::string ip = fmt::format("{}[{}]", path, i);
        if (e.broken) {
          ok = false;
          continue;
        }
        if (e.kind != Kind::Scalar) {
          st.add(n.item_marks[i], ip, fmt::format("expected a string, got {}", describe(e, k.secret)));
          ok = false;
          continue;
        }
        if (!st.spend(e, ip)) {
          return false;
        }
        rapidjson::Value s(e.scalar.data(), static_cast<rapidjson::SizeType>(e.scalar.size()), alloc);
        out.PushBack(s, alloc);
      }
      return ok;
    }
    case SY_CFG_MAP:
      if (n.kind != Kind::Map) {
        return wrong("a mapping");
      }
      return toJson(st, n, path, out, alloc, 0);
    case SY_CFG_LIST:
      if (n.kind != Kind::Sequence) {
        return wrong("a list");
      }
      return toJson(st, n, path, out, alloc, 0);
    case SY_CFG_ANY:
      return toJson(st, n, path, out, alloc, 0);
    default:
      st.add(at, path, fmt::format("the plugin declares an unknown type {} for this key",
                                       static_cast<unsigned>(k.type)));
      return false;
  }
}

const char *typeWord(sy_config_type t) {
  switch (t) {
    case SY_CFG_STRING: return "a string";
    case SY_CFG_INT: return "an integer";
    case SY_CFG_FLOAT: return "a number";
    case SY_CFG_BOOL: return "true or false";
    case SY_CFG_STRING_LIST: return "a list of strings";
    case SY_CFG_MAP: return "a mapping";
    case SY_CFG_LIST: return "a list";
    case SY_CFG_ANY: return "any value";
  }
  return "a value";
}

/// yaml-cpp's messages for a tab in indentation vary ("illegal map value", "end of map
/// not found"...): name the tab when the line of the error, or the one before, has one.
std::string tabHint(std::string_view text, const YAML::Mark &mark) {
  if (mark.line < 0) {
    return {};
  }
  int line = 0;
  std::size_t start = 0;
  std::vector<std::string_view> lines;
  while (start <= text.size() && line <= mark.line) {
    auto end = text.find('\n', start);
    if (end == std::string_view::npos) {
      end = text.size();
    }
    if (line >= mark.line - 1) {
      lines.push_back(text.substr(start, end - start));
    }
    start = end + 1;
    ++line;
  }
  for (auto l : lines) {
    auto indent = l.substr(0, l.find_first_not_of(" \t"));
    if (indent.find('\t') != std::string_view::npos) {
      return " (a tab is used for indentation: YAML allows only spaces)";
    }
  }
  return {};
}

}  // namespace

// ---------------------------------------------------------------------------------------

ConfigModel ConfigParser::parse(std::string_view text, const std::string &file,
                                std::vector<Diagnostic> &diags) {
  ConfigModel model;
  model.file = file;
  model.checkable = false;
  State st{file, diags, budget_used_, budget_reported_};
  if (text.size() > kMaxConfigBytes) {
    st.add({1, 1}, "",
           fmt::format("the file is {} bytes; configurations larger than {} MiB are refused",
                       text.size(), kMaxConfigBytes >> 20));
    return model;
  }
  std::string buffer(text);
  std::istringstream in(buffer);
  TreeBuilder builder(text, file, diags);
  try {
    YAML::Parser parser(in);
    if (parser.HandleNextDocument(builder)) {
      // A second document is refused from OnDocumentStart.
      parser.HandleNextDocument(builder);
    }
  } catch (const Abort &a) {
    if (builder.unterminated) {
      return model;  // the open quote is the cause; what follows is its consequence
    }
    st.add(a.mark, "", a.message);
    return model;
  } catch (const YAML::DeepRecursion &e) {
    st.add(toMark(e.mark), "", "nested too deeply: yaml-cpp's recursion limit was reached here");
    return model;
  } catch (const YAML::Exception &e) {
    if (builder.unterminated) {
      return model;  // the open quote is the cause; what follows is its consequence
    }
    st.add(toMark(e.mark), "", fmt::format("YAML syntax error: {}{}", e.msg, tabHint(text, e.mark)));
    return model;
  } catch (const std::exception &e) {
    st.add({1, 1}, "", fmt::format("cannot parse the file: {}", e.what()));
    return model;
  }
  if (builder.unterminated) {
    return model;  // the rest of the document is inside the string: checking it is noise
  }
  if (!builder.root) {
    st.add({1, 1}, "",
           "the file holds no YAML document: expected a mapping with version and pipelines");
    return model;
  }
  bool paths_ok = true;
  checkRoot(st, *builder.root, model, paths_ok);
  model.checkable = paths_ok && builder.root->kind == Kind::Map;
  return model;
}

void ConfigParser::validatePlugins(ConfigModel &model, PluginRegistry &registry,
                                   std::vector<Diagnostic> &diags) {
  State st{model.file, diags, budget_used_, budget_reported_};

  auto known = [&](sy_plugin_kind kind) {
    std::vector<std::string> names;
    for (const auto *d : registry.all()) {
      if (d->kind == kind) {
        names.push_back(d->name);
      }
    }
    return names;
  };

  auto check = [&](PluginSpec &spec, sy_plugin_kind want, const char *place) {
    if (spec.type.empty() || !spec.node) {
      return;  // phase 1 already reported why
    }
    const ConfigNode &n = *spec.node;
    const auto *type_entry = n.find("type");
    Mark type_mark = type_entry != nullptr ? type_entry->value_mark : spec.mark;
    std::string type_path = spec.path + ".type";
    const PluginDescriptor *d = registry.find(spec.type);
    if (d == nullptr) {
      auto names = known(want);
      std::vector<std::string> all_names;
      for (const auto *x : registry.all()) {
        all_names.push_back(x->name);
      }
      std::string list = names.empty()
                             ? fmt::format("no {} plugins were found (searched: {})", kindName(want),
                                           registry.directories().empty()
                                               ? std::string("no directories")
                                               : join(registry.directories()))
                             : fmt::format("known {} plugins: {}", kindName(want), join(names));
      // A file that would have provided it but was refused says more than "unknown".
      std::string refused;
      for (const auto &r : registry.refusals()) {
        std::string_view base(r.path);
        base.remove_prefix(std::min(base.size(), base.rfind('/') + 1));
        if (base.size() > spec.type.size() + 3 && base.substr(base.size() - 3) == ".so" &&
            base.substr(base.size() - 3 - spec.type.size(), spec.type.size()) == spec.type &&
            base[base.size() - 4 - spec.type.size()] == '-') {
          refused = fmt::format(" (refused {}: {})", r.path, r.reason);
          break;
        }
      }
      st.add(type_mark, type_path,
             fmt::format("unknown plugin '{}'{}{}; {}", spec.type, refused,
                         suggestion(spec.type, all_names), list));
      return;
    }
    if (d->kind != want) {
      auto names = known(want);
      st.add(type_mark, type_path,
             fmt::format("'{}' is a {}; {} must be a {}{}", spec.type, kindName(d->kind), place,
                         kindName(want),
                         names.empty() ? std::string() : fmt::format(" ({})", join(names))));
      return;
    }
    const std::vector<KeySpec> *schema = nullptr;
    try {
      schema = &registry.schema(spec.type);
    } catch (const std::exception &e) {
      st.add(type_mark, type_path, fmt::format("cannot load plugin '{}': {}", spec.type, e.what()));
      return;
    }
    std::vector<std::string> allowed;
    for (const auto &k : *schema) {
      allowed.push_back(k.name);
    }
    if (want == SY_KIND_SINK) {
      allowed.push_back("retry");
    }

    rapidjson::Document doc;
    doc.SetObject();
    auto &alloc = doc.GetAllocator();
    bool ok = true;
    spec.key_marks.clear();
    spec.retry = model.settings.retry;
    for (const auto &e : n.entries) {
      if (e.key == "type") {
        continue;
      }
      std::string path = joinPath(spec.path, e.key);
      if (want == SY_KIND_SINK && e.key == "retry") {  // the runtime's key, on every output
        spec.has_retry = true;
        checkRetry(st, e, path, spec.retry);
        continue;
      }
      auto ks = std::find_if(schema->begin(), schema->end(),
                             [&](const KeySpec &k) { return k.name == e.key; });
      if (ks == schema->end()) {
        if (allowed.empty()) {
          st.add(e.key_mark, path,
                 fmt::format("unknown key '{}': plugin '{}' takes no keys besides type", e.key,
                             spec.type));
        } else {
          st.add(e.key_mark, path,
                 fmt::format("unknown key '{}' for plugin '{}'{}; allowed keys: {}", e.key,
                             spec.type, suggestion(e.key, allowed), join(allowed)));
        }
        ok = false;
        continue;
      }
      const ConfigNode &v = *e.value;
      spec.key_marks[e.key] = e.value_mark;
      if (v.kind == Kind::Null && !v.broken) {
        // An empty value means "not set": the default applies, a required key is missing.
        if (ks->required) {
          st.add(e.key_mark, path,
                 fmt::format("required key '{}' has no value (expected {})", e.key, typeWord(ks->type)));
          ok = false;
        }
        continue;
      }
      rapidjson::Value value;
      if (!typedValue(st, v, e.value_mark, *ks, path, value, alloc)) {
        ok = false;
        continue;
      }
      rapidjson::Value key(e.key.data(), static_cast<rapidjson::SizeType>(e.key.size()), alloc);
      doc.AddMember(key, value, alloc);
    }
    for (const auto &k : *schema) {
      if (doc.HasMember(k.name.c_str())) {
        continue;
      }
      const auto *given = n.find(k.name);
      if (k.required) {
        if (given == nullptr) {
          st.add(spec.mark, joinPath(spec.path, k.name),
                 fmt::format("missing required key '{}' ({}) for plugin '{}'", k.name,
                             typeWord(k.type), spec.type));
          ok = false;
        }
        continue;
      }
      if (!k.default_json || (given != nullptr && given->value->kind != Kind::Null)) {
        continue;  // no default, or given but wrong (reported above)
      }
      rapidjson::Document def;
      def.Parse(k.default_json->data(), k.default_json->size());
      if (def.HasParseError()) {
        st.add(spec.mark, joinPath(spec.path, k.name),
               fmt::format("plugin '{}' declares an invalid default for '{}' (not JSON)", spec.type,
                           k.name));
        ok = false;
        continue;
      }
      rapidjson::Value value(def, alloc);
      rapidjson::Value key(k.name.data(), static_cast<rapidjson::SizeType>(k.name.size()), alloc);
      doc.AddMember(key, value, alloc);
    }
    if (!ok) {
      spec.config_json.clear();
      return;
    }
    rapidjson::StringBuffer sb;
    rapidjson::Writer<rapidjson::StringBuffer> w(sb);
    doc.Accept(w);
    spec.config_json.assign(sb.GetString(), sb.GetSize());
  };

  for (auto &p : model.pipelines) {
    check(p.input, SY_KIND_SOURCE, "an input");
    for (auto &f : p.filters) {
      check(f, SY_KIND_FILTER, "an entry of filters");
    }
    for (auto &o : p.outputs) {
      check(o, SY_KIND_SINK, "an output");
    }
  }
}

bool readConfigText(const std::string &path, std::string &text, std::vector<Diagnostic> &diags) {
  struct stat sb {};
  if (::stat(path.c_str(), &sb) == 0 && S_ISREG(sb.st_mode) &&
      static_cast<std::size_t>(sb.st_size) > kMaxConfigBytes) {
    diags.push_back({path, 1, 1, "",
                     fmt::format("the file is {} bytes; configurations larger than {} MiB are refused",
                                 static_cast<long long>(sb.st_size), kMaxConfigBytes >> 20)});
    return false;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    diags.push_back({path, 0, 0, "", "cannot read the file"});
    return false;
  }
  // Read at most one byte past the limit: the parser refuses what is too large.
  text.resize(kMaxConfigBytes + 1);
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<std::size_t>(in.gcount()));
  return true;
}

ConfigModel parseConfigFile(const std::string &path, std::vector<Diagnostic> &diags) {
  std::string text;
  if (!readConfigText(path, text, diags)) {
    return {};
  }
  ConfigParser parser;
  return parser.parse(text, path, diags);
}

}  // namespace switchyard
