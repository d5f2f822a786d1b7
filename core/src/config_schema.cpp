// SPDX-License-Identifier: MIT
//
// The constraints a plugin declares beside each key of its schema (sy_config_key's
// enum_values, bounds, min, max; KeySpec's enum_values, min, max): whether the schema's
// own constraints make sense, and whether a value keeps to them. Checked in phase 2
// (config_plugins.cpp) after the value was converted to its key's type.
#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "config_detail.hpp"

namespace switchyard::config_detail {

namespace {

bool isStringType(sy_config_type t) { return t == SY_CFG_STRING || t == SY_CFG_STRING_LIST; }
bool isNumberType(sy_config_type t) { return t == SY_CFG_INT || t == SY_CFG_FLOAT; }

std::string quotedList(const std::vector<std::string> &values) {
  std::string out;
  for (const auto &v : values) {
    if (!out.empty()) {
      out += ", ";
    }
    out += fmt::format("'{}'", v);
  }
  return out;
}

/// The problem with one scalar value (a string, or a number) under @p k, or "" when it
/// keeps to the constraints. Never quotes the value of a secret key.
std::string breach(const rapidjson::Value &v, const KeySpec &k) {
  if (!k.enum_values.empty() && v.IsString()) {
    std::string s(v.GetString(), v.GetStringLength());
    for (const auto &allowed : k.enum_values) {
      if (s == allowed) {
        return {};
      }
    }
    if (k.secret) {
      return fmt::format("expected one of {}, got another value", quotedList(k.enum_values));
    }
    return fmt::format("expected one of {}, got {}{}", quotedList(k.enum_values), shortValue(s),
                       suggestion(s, k.enum_values));
  }
  if ((k.min || k.max) && v.IsNumber()) {
    double d = v.GetDouble();
    bool low = k.min && d < *k.min;
    bool high = k.max && d > *k.max;
    if (!low && !high) {
      return {};
    }
    std::string got = k.secret ? std::string("another value")
                               : (v.IsInt64() ? fmt::format("{}", v.GetInt64()) : fmt::format("{}", d));
    if (k.min && k.max) {
      return fmt::format("must be between {} and {}, got {}", *k.min, *k.max, got);
    }
    if (low) {
      return fmt::format("must be at least {}, got {}", *k.min, got);
    }
    return fmt::format("must be at most {}, got {}", *k.max, got);
  }
  return {};
}

}  // namespace

std::string constraintText(const KeySpec &k) {
  if (!k.enum_values.empty()) {
    return fmt::format("one of {}", quotedList(k.enum_values));
  }
  if (k.min && k.max) {
    return fmt::format("between {} and {}", *k.min, *k.max);
  }
  if (k.min) {
    return fmt::format("at least {}", *k.min);
  }
  if (k.max) {
    return fmt::format("at most {}", *k.max);
  }
  return {};
}

bool checkKeyConstraints(const State &st, Mark at, const std::string &path, const std::string &plugin,
                         const KeySpec &k) {
  auto bad = [&](const std::string &what) {
    st.add(at, path, fmt::format("plugin '{}' has a bad schema: key '{}' {}", plugin, k.name, what));
    return false;
  };
  if (!k.enum_values.empty() && !isStringType(k.type)) {
    return bad(fmt::format("declares allowed values but is {}", typeWord(k.type)));
  }
  if ((k.min || k.max) && !isNumberType(k.type)) {
    return bad(fmt::format("declares bounds but is {}", typeWord(k.type)));
  }
  if ((k.min && !std::isfinite(*k.min)) || (k.max && !std::isfinite(*k.max))) {
    return bad("declares a bound that is not a finite number");
  }
  if (k.min && k.max && *k.min > *k.max) {
    return bad(fmt::format("declares min {} above max {}", *k.min, *k.max));
  }
  if (k.default_json && !k.required) {
    rapidjson::Document def;
    def.Parse(k.default_json->data(), k.default_json->size());
    if (def.HasParseError()) {
      return true;  // reported where defaults are applied
    }
    bool ok = def.IsArray() ? std::all_of(def.Begin(), def.End(),
                                          [&](const rapidjson::Value &e) { return breach(e, k).empty(); })
                            : breach(def, k).empty();
    if (!ok) {
      return bad(fmt::format("has a default ({}) that is not {}", k.secret ? "hidden" : *k.default_json,
                             constraintText(k)));
    }
  }
  return true;
}

bool checkValueConstraints(const State &st, const rapidjson::Value &v, Mark at,
                           const std::vector<Mark> *item_marks, const KeySpec &k,
                           const std::string &path) {
  if (k.enum_values.empty() && !k.min && !k.max) {
    return true;
  }
  if (!v.IsArray()) {
    std::string problem = breach(v, k);
    if (!problem.empty()) {
      st.add(at, path, problem);
      return false;
    }
    return true;
  }
  bool ok = true;
  for (rapidjson::SizeType i = 0; i < v.Size(); ++i) {
    std::string problem = breach(v[i], k);
    if (problem.empty()) {
      continue;
    }
    bool has_mark = item_marks != nullptr && i < item_marks->size();
    st.add(has_mark ? (*item_marks)[i] : at, has_mark ? fmt::format("{}[{}]", path, i) : path, problem);
    ok = false;
  }
  return ok;
}

}  // namespace switchyard::config_detail
