// SPDX-License-Identifier: MIT
//
// Configuration phase 2: every plugin entry against its plugin's schema (unknown plugin,
// wrong kind for its place, unknown key, wrong type, missing required key, the schema's
// enum values and bounds), YAML converted to JSON typed per schema, defaults applied.
#include <algorithm>
#include <charconv>

#include <fmt/format.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "config_detail.hpp"
#include "registry.hpp"

namespace switchyard {

using namespace config_detail;

namespace {

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

}  // namespace

namespace {
/// The node of @p key in @p spec's entry and where it is written; null (and the mark of the
/// deepest part found) when the file does not go that far.
const ConfigNode *keyNode(const PluginSpec &spec, std::string_view key, Mark &m) {
  m = spec.mark;
  const ConfigNode *n = spec.node.get();
  std::size_t i = 0;
  while (n != nullptr && i < key.size()) {
    if (key[i] == '.') {
      ++i;
      continue;
    }
    if (key[i] == '[') {
      auto close = key.find(']', i);
      std::size_t index = 0;
      auto [end, ec] = std::from_chars(key.data() + i + 1, key.data() + std::min(close, key.size()), index);
      if (close == std::string_view::npos || ec != std::errc() || end != key.data() + close ||
          n->kind != Kind::Sequence || index >= n->items.size()) {
        return nullptr;
      }
      m = n->item_marks[index];
      n = n->items[index].get();
      i = close + 1;
      continue;
    }
    auto stop = key.find_first_of(".[", i);
    std::string_view name = key.substr(i, stop == std::string_view::npos ? std::string_view::npos : stop - i);
    const ConfigNode::Entry *e = n->kind == Kind::Map ? n->find(name) : nullptr;
    if (e == nullptr) {
      return nullptr;
    }
    m = e->value_mark;
    n = e->value.get();
    i = stop == std::string_view::npos ? key.size() : stop;
  }
  return n;
}
}  // namespace

Mark keyMark(const PluginSpec &spec, std::string_view key) {
  Mark m;
  (void)keyNode(spec, key, m);
  return m;
}

bool sameSetting(const PluginSpec &a, const PluginSpec &b, std::string_view key) {
  if (key.empty()) {
    return false;
  }
  Mark ma, mb;
  const ConfigNode *na = keyNode(a, key, ma);
  const ConfigNode *nb = keyNode(b, key, mb);
  if (na == nullptr || nb == nullptr) {
    return false;
  }
  return na == nb || (!na->source.empty() && na->source == nb->source);
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
    bool schema_ok = true;
    for (const auto &k : *schema) {
      schema_ok = checkKeyConstraints(st, type_mark, type_path, spec.type, k) && schema_ok;
    }
    if (!schema_ok) {
      spec.config_json.clear();
      return;
    }

    rapidjson::Document doc;
    doc.SetObject();
    auto &alloc = doc.GetAllocator();
    // A bad value (or an unknown key) is reported here, and the plugin is still made from
    // the rest with that key left to its default (spec.bad_keys), so that one check run
    // also reports the plugin's own problems with the other keys. Only a missing required
    // key keeps the plugin from being made at all (`complete`).
    bool ok = true;
    bool complete = true;
    spec.bad_keys.clear();
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
        spec.bad_keys.push_back(e.key);
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
          complete = false;
        }
        continue;
      }
      rapidjson::Value value;
      if (!typedValue(st, v, e.value_mark, *ks, path, value, alloc) ||
          !checkValueConstraints(st, value, e.value_mark,
                                 v.kind == Kind::Sequence ? &v.item_marks : nullptr, *ks, path)) {
        ok = false;
        spec.bad_keys.push_back(e.key);
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
        complete = false;  // given but wrong (reported above): nothing to stand in for it
        continue;
      }
      if (!k.default_json) {
        continue;  // no default: the plugin sees the key as not set
      }
      rapidjson::Document def;
      def.Parse(k.default_json->data(), k.default_json->size());
      if (def.HasParseError()) {
        st.add(spec.mark, joinPath(spec.path, k.name),
               fmt::format("plugin '{}' declares an invalid default for '{}' (not JSON)", spec.type,
                           k.name));
        ok = false;
        complete = false;
        continue;
      }
      rapidjson::Value value(def, alloc);
      rapidjson::Value key(k.name.data(), static_cast<rapidjson::SizeType>(k.name.size()), alloc);
      doc.AddMember(key, value, alloc);
    }
    if (!complete) {
      spec.config_json.clear();
      return;
    }
    spec.partial = !ok;
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
  checkJournals(st, model, registry);
}

}  // namespace switchyard
