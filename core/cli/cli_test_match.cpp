// SPDX-License-Identifier: MIT
// `switchyard test`: matching what an output sent against an expected message (see
// cli_test_run.hpp).
#include <cmath>

#include <fmt/format.h>

#include "cli_test_run.hpp"

namespace switchyard::cli::pipetest {
namespace {

using Type = json::Value::Type;

/// Deep equality; an integer equals a number of the same value (YAML 1 and JSON 1.0).
bool same(const json::Value &a, const json::Value &b) {
  if ((a.type == Type::Integer || a.type == Type::Float) && (b.type == Type::Integer || b.type == Type::Float)) {
    if (a.type == Type::Integer && b.type == Type::Integer) {
      return a.text == b.text;
    }
    auto num = [](const json::Value &v) { return v.type == Type::Float ? v.number : std::strtod(v.text.c_str(), nullptr); };
    return num(a) == num(b);
  }
  if (a.type != b.type) {
    return false;
  }
  switch (a.type) {
    case Type::Null: return true;
    case Type::Bool: return a.boolean == b.boolean;
    case Type::String: return a.text == b.text;
    case Type::Array:
      if (a.items.size() != b.items.size()) {
        return false;
      }
      for (std::size_t i = 0; i < a.items.size(); ++i) {
        if (!same(a.items[i], b.items[i])) {
          return false;
        }
      }
      return true;
    case Type::Object:
      if (a.members.size() != b.members.size()) {
        return false;
      }
      for (std::size_t i = 0; i < a.members.size(); ++i) {
        if (a.members[i].key != b.members[i].key || !same(a.members[i].value, b.members[i].value)) {
          return false;
        }
      }
      return true;
    default: return false;
  }
}

/// `contains`: a substring of a string, an item of a list, a subset of a mapping (each
/// expected member contained in the member of that name).
bool contains(const json::Value &got, const json::Value &want) {
  if (got.type == Type::String && want.type == Type::String) {
    return got.text.find(want.text) != std::string::npos;
  }
  if (got.type == Type::Array) {
    for (const auto &item : got.items) {
      if (same(item, want) || (want.isObject() && item.isObject() && contains(item, want))) {
        return true;
      }
    }
    return false;
  }
  if (got.isObject() && want.isObject()) {
    for (const auto &m : want.members) {
      const json::Value *g = got.find(m.key);
      if (g == nullptr || !(same(*g, m.value) || contains(*g, m.value))) {
        return false;
      }
    }
    return true;
  }
  return same(got, want);
}

/// The value at @p steps, or null when a step is missing (@p missing_at names it).
const json::Value *lookup(const json::Value &root, const std::vector<PathStep> &steps, std::string &missing_at) {
  const json::Value *v = &root;
  std::string at;
  for (const auto &s : steps) {
    if (s.index) {
      at += fmt::format("[{}]", *s.index);
      if (!v->isArray() || *s.index >= v->items.size()) {
        missing_at = at;
        return nullptr;
      }
      v = &v->items[*s.index];
    } else {
      at += (at.empty() ? "" : ".") + s.key;
      const json::Value *next = v->find(s.key);
      if (next == nullptr) {
        missing_at = at;
        return nullptr;
      }
      v = next;
    }
  }
  return v;
}

std::string keysOf(const json::Value &v) {
  std::string out;
  for (const auto &m : v.members) {
    out += (out.empty() ? "" : ", ") + m.key;
  }
  return out;
}

}  // namespace

std::string render(const json::Value &v, std::size_t max) {
  std::string s = json::canonical(v);
  if (s.size() > max) {
    s.resize(max);
    s += "...";
  }
  return s;
}

void matchMessage(const TestFile &f, const ExpectedMessage &want, const Capture &got, const std::string &where,
                  PluginTools &tools, std::vector<std::string> &diffs) {
  for (const auto &m : want.fields) {
    std::string missing_at;
    const json::Value *v = lookup(got.view, m.steps, missing_at);
    std::string head = fmt::format("{}: {}", where, m.field);
    if (m.op == FieldMatcher::Op::Exists) {
      if ((v != nullptr) != m.exists) {
        diffs.push_back(fmt::format("{}: expected {}, got {}", head, m.exists ? "present" : "absent",
                                    v != nullptr ? render(*v) : "absent"));
      }
      continue;
    }
    if (v == nullptr) {
      if (m.steps.size() == 1) {
        diffs.push_back(fmt::format("{}: no such field (this output has: {})", head, keysOf(got.view)));
      } else {
        diffs.push_back(fmt::format("{}: absent (no {}), expected {}", head, missing_at, render(m.value)));
      }
      continue;
    }
    switch (m.op) {
      case FieldMatcher::Op::Equals:
        if (!same(*v, m.value)) {
          diffs.push_back(fmt::format("{}: expected {}, got {}", head, render(m.value), render(*v)));
        }
        break;
      case FieldMatcher::Op::Contains:
        if (!contains(*v, m.value)) {
          diffs.push_back(fmt::format("{}: expected to contain {}, got {}", head, render(m.value), render(*v)));
        }
        break;
      case FieldMatcher::Op::Regex: {
        std::string text = v->isString() ? v->text : json::canonical(*v);
        if (!std::regex_search(text, *m.re)) {
          diffs.push_back(fmt::format("{}: expected to match /{}/, got {}", head, m.pattern, render(*v)));
        }
        break;
      }
      default: break;
    }
  }
  if (want.verifies) {
    if (!got.wire) {
      diffs.push_back(fmt::format("{}: verifies: only a zmq-pub output's envelope can be verified", where));
      return;
    }
    VerifySpec spec{resolvePath(f, want.verifies->ca_file),
                    want.verifies->crl_file.empty() ? std::string() : resolvePath(f, want.verifies->crl_file)};
    if (std::string problem = tools.verify(spec, *got.wire); !problem.empty()) {
      diffs.push_back(fmt::format("{}: verifies: expected a signature that verifies against {}, but {}", where,
                                  want.verifies->ca_file, problem));
    }
  }
}

}  // namespace switchyard::cli::pipetest
