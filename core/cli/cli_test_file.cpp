// SPDX-License-Identifier: MIT
// `switchyard test`: reading a test file (see cli_test_file.hpp).
#include "cli_test_file.hpp"

#include <filesystem>
#include <regex>
#include <set>

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include "config_detail.hpp"
#include "metric_names.hpp"

namespace switchyard::cli::pipetest {
namespace {

using config_detail::joinPath;
using Kind = TNode::Kind;

constexpr std::size_t kMaxNodes = 200000;
constexpr int kMaxDepth = 100;

struct Reader {
  std::string file;
  std::vector<Diagnostic> &diags;
  std::size_t nodes = 0;

  void add(Mark m, std::string path, std::string message) const {
    diags.push_back({file, m.line, m.column, std::move(path), std::move(message)});
  }

  static Mark mark(const YAML::Mark &m) { return config_detail::toMark(m); }

  std::shared_ptr<const TNode> build(const YAML::Node &y, const std::string &path, int depth) {
    auto n = std::make_shared<TNode>();
    n->mark = mark(y.Mark());
    if (++nodes > kMaxNodes || depth > kMaxDepth) {
      if (nodes == kMaxNodes + 1 || depth == kMaxDepth + 1) {
        add(n->mark, path, fmt::format("the test file is too large or too deep (at most {} values, {} levels)",
                                       kMaxNodes, kMaxDepth));
      }
      return n;
    }
    switch (y.Type()) {
      case YAML::NodeType::Scalar: {
        n->kind = Kind::Scalar;
        n->plain = y.Tag() == "?";
        std::string expanded;
        std::string problem = config_detail::expandVariables(y.Scalar(), expanded);
        if (!problem.empty()) {
          add(n->mark, path, problem);
        }
        n->scalar = std::move(expanded);
        break;
      }
      case YAML::NodeType::Sequence: {
        n->kind = Kind::Sequence;
        std::size_t i = 0;
        for (const auto &item : y) {
          n->items.push_back(build(item, fmt::format("{}[{}]", path, i++), depth + 1));
        }
        break;
      }
      case YAML::NodeType::Map: {
        n->kind = Kind::Map;
        for (const auto &kv : y) {
          Mark km = mark(kv.first.Mark());
          if (!kv.first.IsScalar()) {
            add(km, path, "keys must be plain text");
            continue;
          }
          std::string key = kv.first.Scalar();
          std::string at = joinPath(path, key);
          if (n->find(key) != nullptr) {
            add(km, at, fmt::format("duplicate key '{}' (first at line {})", key, n->find(key)->key_mark.line));
            continue;
          }
          n->entries.push_back({key, km, build(kv.second, at, depth + 1)});
        }
        break;
      }
      default:
        break;
    }
    return n;
  }

  // --- shape helpers ----------------------------------------------------------------------

  bool isString(const TNode &n, const std::string &path, const char *what) const {
    if (n.kind != Kind::Scalar) {
      add(n.mark, path, fmt::format("{} must be a string", what));
      return false;
    }
    return true;
  }
  bool isMap(const TNode &n, const std::string &path, const char *what) const {
    if (n.kind != Kind::Map) {
      add(n.mark, path, fmt::format("{} must be a mapping", what));
      return false;
    }
    return true;
  }
  bool isList(const TNode &n, const std::string &path, const char *what) const {
    if (n.kind != Kind::Sequence) {
      add(n.mark, path, fmt::format("{} must be a list", what));
      return false;
    }
    return true;
  }
  void unknownKeys(const TNode &n, const std::string &path, const std::vector<std::string> &allowed,
                   const char *what) const {
    for (const auto &e : n.entries) {
      if (!config_detail::isKnown(allowed, e.key)) {
        add(e.key_mark, joinPath(path, e.key),
            fmt::format("unknown key '{}' {}{}; allowed keys: {}", e.key, what,
                        config_detail::suggestion(e.key, allowed), config_detail::join(allowed)));
      }
    }
  }

  void matcher(const TNode::Entry &e, const std::string &path, ExpectedMessage &out) const {
    FieldMatcher m;
    m.field = e.key;
    m.mark = e.key_mark;
    m.path = path;
    if (std::string problem = parseFieldPath(e.key, m.steps); !problem.empty()) {
      add(e.key_mark, path, problem);
      return;
    }
    const TNode &v = *e.value;
    static const std::vector<std::string> kOps = {"equals", "contains", "regex", "exists"};
    bool is_op = v.kind == Kind::Map && v.entries.size() == 1 && config_detail::isKnown(kOps, v.entries[0].key);
    if (!is_op) {
      m.value = toJson(v);
      out.fields.push_back(std::move(m));
      return;
    }
    const auto &op = v.entries[0];
    const TNode &arg = *op.value;
    std::string op_path = joinPath(path, op.key);
    if (op.key == "equals") {
      m.value = toJson(arg);
    } else if (op.key == "contains") {
      m.op = FieldMatcher::Op::Contains;
      m.value = toJson(arg);
    } else if (op.key == "regex") {
      m.op = FieldMatcher::Op::Regex;
      if (!isString(arg, op_path, "a regex")) {
        return;
      }
      m.pattern = arg.scalar;
      try {
        m.re = std::make_shared<const std::regex>(m.pattern, std::regex::ECMAScript);
      } catch (const std::regex_error &err) {
        add(arg.mark, op_path, fmt::format("invalid regular expression '{}': {}", m.pattern, err.what()));
        return;
      }
    } else {
      m.op = FieldMatcher::Op::Exists;
      bool b = false;
      if (arg.kind != Kind::Scalar || !config_detail::parseBoolWord(arg.scalar, b)) {
        add(arg.mark, op_path, "exists takes true or false");
        return;
      }
      m.exists = b;
    }
    out.fields.push_back(std::move(m));
  }

  void expectedMessage(const TNode &n, const std::string &path, ExpectedOutput &out) const {
    ExpectedMessage msg;
    msg.mark = n.mark;
    msg.path = path;
    if (!isMap(n, path, "an expected message (field: value, ...)")) {
      return;
    }
    for (const auto &e : n.entries) {
      std::string at = joinPath(path, e.key);
      if (e.key == "verifies") {
        VerifySpec v;
        if (!isMap(*e.value, at, "verifies ({ca_file: ..., crl_file: ...})")) {
          continue;
        }
        unknownKeys(*e.value, at, {"ca_file", "crl_file"}, "in verifies");
        const auto *ca = e.value->find("ca_file");
        if (ca == nullptr) {
          add(e.value->mark, at, "verifies needs ca_file: the CA the signature must chain to");
          continue;
        }
        if (isString(*ca->value, joinPath(at, "ca_file"), "ca_file")) {
          v.ca_file = ca->value->scalar;
        }
        if (const auto *crl = e.value->find("crl_file"); crl && isString(*crl->value, joinPath(at, "crl_file"), "crl_file")) {
          v.crl_file = crl->value->scalar;
        }
        msg.verifies = v;
        continue;
      }
      matcher(e, at, msg);
    }
    out.messages.push_back(std::move(msg));
  }

  void counterChecks(const TNode &n, const std::string &path, std::vector<CounterCheck> &out, bool drops) const {
    if (!isMap(n, path, drops ? "drops (counter{reason=...}: count)" : "counters (name: count)")) {
      return;
    }
    static const std::regex kKey(R"(^(?:(input|filters\[\d+\]|outputs\[\d+\])\.)?([A-Za-z_][A-Za-z0-9_]*)(?:\{(?:([A-Za-z_]+)=)?([^}]*)\})?$)");
    for (const auto &e : n.entries) {
      std::string at = joinPath(path, e.key);
      std::smatch sm;
      if (!std::regex_match(e.key, sm, kKey)) {
        add(e.key_mark, at,
            fmt::format("'{}' is not a counter: write [PLACE.]NAME[{{LABEL=VALUE}}], e.g. dropped{{reason=bad_signature}} "
                        "or outputs[0].sent (PLACE: input, filters[N], outputs[N])",
                        e.key));
        continue;
      }
      CounterCheck c;
      c.text = e.key;
      c.place = sm[1];
      c.name = sm[2];
      c.label = sm[4];
      c.mark = e.key_mark;
      c.path = at;
      std::string label_name = sm[3];
      if (!label_name.empty() && label_name != labelName(c.name)) {
        add(e.key_mark, at, fmt::format("the label of '{}' is '{}', not '{}'", c.name, labelName(c.name), label_name));
        continue;
      }
      if (drops && !isDropCounter(c.name)) {
        add(e.key_mark, at,
            fmt::format("'{}' is not a drop counter (dropped, failed, errors, lost, retry_exhausted); put it "
                        "under counters",
                        c.name));
        continue;
      }
      std::int64_t v = 0;
      if (e.value->kind != Kind::Scalar || !config_detail::parseInt(e.value->scalar, v) || v < 0) {
        add(e.value->mark, at, "the count must be an integer, 0 or more");
        continue;
      }
      c.count = v;
      out.push_back(std::move(c));
    }
  }

  void testCase(const TNode &n, const std::string &path, std::set<std::string> &names, TestFile &f) const {
    if (!isMap(n, path, "a test case")) {
      return;
    }
    unknownKeys(n, path, {"name", "pipeline", "input", "outputs", "drops", "counters"}, "in a test case");
    TestCase c;
    c.mark = n.mark;
    c.path = path;
    if (const auto *name = n.find("name"); name == nullptr) {
      add(n.mark, path, "a test case needs a name");
    } else if (isString(*name->value, joinPath(path, "name"), "name")) {
      c.name = name->value->scalar;
      if (!names.insert(c.name).second) {
        add(name->value->mark, joinPath(path, "name"), fmt::format("two test cases are named '{}'", c.name));
      }
    }
    if (const auto *p = n.find("pipeline"); p != nullptr && isString(*p->value, joinPath(path, "pipeline"), "pipeline")) {
      c.pipeline = p->value->scalar;
      c.pipeline_mark = p->value->mark;
    } else {
      c.pipeline_mark = n.mark;
    }
    if (const auto *in = n.find("input"); in != nullptr) {
      std::string at = joinPath(path, "input");
      if (isList(*in->value, at, "input (the messages the input receives)")) {
        for (std::size_t i = 0; i < in->value->items.size(); ++i) {
          c.input.push_back({in->value->items[i], fmt::format("{}[{}]", at, i)});
        }
      }
    }
    if (const auto *outs = n.find("outputs"); outs != nullptr) {
      std::string at = joinPath(path, "outputs");
      if (isMap(*outs->value, at, "outputs (OUTPUT: [expected messages])")) {
        for (const auto &e : outs->value->entries) {
          ExpectedOutput o;
          o.selector = e.key;
          o.mark = e.key_mark;
          o.path = at + "." + e.key;
          if (e.value->kind == Kind::Null) {
            out_push(c, std::move(o));  // `outputs[0]:` alone: nothing expected
            continue;
          }
          if (!isList(*e.value, o.path, "the expected messages of an output")) {
            continue;
          }
          for (std::size_t i = 0; i < e.value->items.size(); ++i) {
            expectedMessage(*e.value->items[i], fmt::format("{}[{}]", o.path, i), o);
          }
          out_push(c, std::move(o));
        }
      }
    }
    if (const auto *d = n.find("drops"); d != nullptr && d->value->kind != Kind::Null) {
      counterChecks(*d->value, joinPath(path, "drops"), c.drops, true);
    }
    if (const auto *d = n.find("counters"); d != nullptr && d->value->kind != Kind::Null) {
      counterChecks(*d->value, joinPath(path, "counters"), c.counters, false);
    }
    f.cases.push_back(std::move(c));
  }

  static void out_push(TestCase &c, ExpectedOutput o) { c.outputs.push_back(std::move(o)); }
};

}  // namespace

json::Value toJson(const TNode &n) {
  switch (n.kind) {
    case Kind::Null:
      return json::Value::null();
    case Kind::Scalar: {
      if (!n.plain) {
        return json::Value::fromString(n.scalar);
      }
      std::int64_t i = 0;
      double d = 0;
      bool b = false;
      if (config_detail::isNullWord(n.scalar)) {
        return json::Value::null();
      }
      if (config_detail::parseInt(n.scalar, i)) {
        return json::Value::fromInt(i);
      }
      if (config_detail::parseFloat(n.scalar, d)) {
        return json::Value::fromDouble(d);
      }
      if (config_detail::parseStrictBool(n.scalar, b)) {
        return json::Value::fromBool(b);
      }
      return json::Value::fromString(n.scalar);
    }
    case Kind::Sequence: {
      json::Value a = json::Value::array();
      for (const auto &item : n.items) {
        a.items.push_back(toJson(*item));
      }
      return a;
    }
    case Kind::Map: {
      json::Value o = json::Value::object();
      for (const auto &e : n.entries) {
        o.set(e.key, toJson(*e.value));
      }
      return o;
    }
  }
  return json::Value::null();
}

bool isDropCounter(std::string_view name) {
  return name == "dropped" || name == "failed" || name == "errors" || name == "lost" || name == "retry_exhausted";
}

std::string parseFieldPath(std::string_view text, std::vector<PathStep> &steps) {
  steps.clear();
  std::size_t i = 0;
  auto bad = [&](std::string_view why) {
    return fmt::format("bad field path '{}': {} (write e.g. body.items[0].name or headers[\"a.b\"])", text, why);
  };
  if (text.empty()) {
    return bad("empty");
  }
  while (i < text.size()) {
    if (text[i] == '[') {
      auto close = text.find(']', i);
      if (close == std::string_view::npos) {
        return bad("'[' without ']'");
      }
      std::string_view inside = text.substr(i + 1, close - i - 1);
      if (inside.size() >= 2 && inside.front() == '"' && inside.back() == '"') {
        steps.push_back({std::string(inside.substr(1, inside.size() - 2)), std::nullopt});
      } else {
        std::int64_t n = 0;
        if (!config_detail::parseInt(inside, n) || n < 0) {
          return bad("an index must be a number 0 or more, a key in double quotes");
        }
        steps.push_back({"", static_cast<std::size_t>(n)});
      }
      i = close + 1;
      if (i < text.size() && text[i] == '.') {
        ++i;
        if (i == text.size()) {
          return bad("ends with '.'");
        }
      }
      continue;
    }
    auto end = text.find_first_of(".[", i);
    std::string_view key = text.substr(i, end == std::string_view::npos ? std::string_view::npos : end - i);
    if (key.empty()) {
      return bad("an empty key");
    }
    steps.push_back({std::string(key), std::nullopt});
    i = end == std::string_view::npos ? text.size() : end;
    if (i < text.size() && text[i] == '.') {
      ++i;
      if (i == text.size()) {
        return bad("ends with '.'");
      }
    }
  }
  return {};
}

std::string resolvePath(const TestFile &f, const std::string &p) {
  if (p.empty() || p.front() == '/') {
    return p;
  }
  return (std::filesystem::path(f.dir) / p).lexically_normal().string();
}

bool loadTestFile(const std::string &path, TestFile &out, std::vector<Diagnostic> &diags) {
  std::size_t before = diags.size();
  out.path = path;
  out.dir = std::filesystem::path(path).parent_path().string();
  if (out.dir.empty()) {
    out.dir = ".";
  }
  std::string text;
  if (!readConfigText(path, text, diags)) {
    return false;
  }
  Reader r{path, diags};
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception &e) {
    Mark m = Reader::mark(e.mark);
    r.add(m, "", fmt::format("YAML syntax error: {}", e.msg));
    return false;
  }
  auto doc = r.build(root, "", 0);
  if (diags.size() > before) {
    return false;
  }
  if (doc->kind != Kind::Map) {
    r.add(doc->mark, "", "a test file is a mapping with pipeline_file, environment and tests");
    return false;
  }
  r.unknownKeys(*doc, "", {"pipeline_file", "environment", "tests"}, "at the top level");
  if (const auto *pf = doc->find("pipeline_file"); pf == nullptr) {
    r.add(doc->mark, "pipeline_file", "missing: the pipeline configuration under test (relative to this file)");
  } else if (r.isString(*pf->value, "pipeline_file", "pipeline_file")) {
    out.pipeline_file = resolvePath(out, pf->value->scalar);
    out.pipeline_file_mark = pf->value->mark;
  }
  if (const auto *env = doc->find("environment"); env != nullptr && env->value->kind != Kind::Null) {
    if (r.isMap(*env->value, "environment", "environment (VARIABLE: value)")) {
      static const std::regex kName("^[A-Za-z_][A-Za-z0-9_]*$");
      for (const auto &e : env->value->entries) {
        std::string at = joinPath("environment", e.key);
        if (!std::regex_match(e.key, kName)) {
          r.add(e.key_mark, at, fmt::format("'{}' is not an environment variable name", e.key));
        } else if (e.value->kind == Kind::Scalar) {
          out.environment.emplace_back(e.key, e.value->scalar);
        } else if (e.value->kind == Kind::Null) {
          out.environment.emplace_back(e.key, "");
        } else {
          r.add(e.value->mark, at, "an environment value must be a string");
        }
      }
    }
  }
  const auto *tests = doc->find("tests");
  if (tests == nullptr) {
    r.add(doc->mark, "tests", "missing: the list of test cases");
  } else if (r.isList(*tests->value, "tests", "tests")) {
    if (tests->value->items.empty()) {
      r.add(tests->value->mark, "tests", "no test cases");
    }
    std::set<std::string> names;
    for (std::size_t i = 0; i < tests->value->items.size(); ++i) {
      r.testCase(*tests->value->items[i], fmt::format("tests[{}]", i), names, out);
    }
  }
  return diags.size() == before;
}

}  // namespace switchyard::cli::pipetest
