// SPDX-License-Identifier: MIT
//
//
// Configuration reading and parsing (phase 1a: YAML -> our tree).
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
#include <sys/stat.h>

#include <fstream>
#include <sstream>
#include <unordered_map>

#include <fmt/format.h>
#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/exceptions.h>
#include <yaml-cpp/mark.h>
#include <yaml-cpp/parser.h>

#include "config_detail.hpp"

namespace switchyard {

using namespace config_detail;

namespace {

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
      if (auto bad = invalidUtf8(value); bad != std::string::npos) {
        add(m, f.path, utf8Problem(value, bad, true));
      }
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
      if (hasPlaceholder(value)) {
        n->source = value;
      }
      std::string problem = expandVariables(value, n->scalar);
      if (!problem.empty()) {
        add(m, path, problem);
        n->broken = true;
      }
    } else {
      n->scalar = value;
    }
    if (!n->broken) {
      if (auto bad = invalidUtf8(n->scalar); bad != std::string::npos) {
        add(m, path, utf8Problem(n->scalar, bad, false));
        n->broken = true;  // reported: the schema checks say nothing more about it
      }
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
