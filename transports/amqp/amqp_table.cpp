// SPDX-License-Identifier: MIT
#include "amqp_table.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "switchyard/fedmsg.hpp"

namespace switchyard::amqp {

// --- JSON -> AMQP table ---------------------------------------------------------------

amqp_bytes_t TableArena::own(std::string s) {
  strings_.push_back(std::move(s));
  auto &str = strings_.back();
  return amqp_bytes_t{str.size(), str.data()};
}

amqp_bytes_t TableArena::bytes(std::string_view s) {
  if (!copy_) {
    // rabbitmq-c only reads the bytes of a table it encodes.
    return amqp_bytes_t{s.size(), const_cast<char *>(s.data())};
  }
  return own(std::string(s));
}

void TableArena::clear() {
  strings_.clear();
  tables_.clear();
  arrays_.clear();
}

bool TableArena::entry(std::string_view key, amqp_table_entry_t &e, std::string &error) {
  if (key.size() > 128) {
    error = "header name longer than 128 bytes";
    return false;
  }
  e.key = bytes(key);
  return true;
}

bool TableArena::fromJson(const json::Value &obj, std::vector<amqp_table_entry_t> &out, std::string &error) {
  if (!obj.isObject()) {
    error = "headers are not a JSON object";
    return false;
  }
  out.reserve(out.size() + obj.members.size());
  for (const auto &m : obj.members) {
    amqp_table_entry_t e{};
    if (!entry(m.key, e, error) || !value(m.value, e.value, error, 1)) {
      return false;
    }
    out.push_back(e);
  }
  return true;
}

bool TableArena::fromHeaders(const std::vector<fedora_messaging::HeaderRef> &headers,
                             std::vector<amqp_table_entry_t> &out, std::string &error) {
  out.reserve(out.size() + headers.size());
  for (const auto &h : headers) {
    amqp_table_entry_t e{};
    if (!entry(h.key, e, error)) {
      return false;
    }
    if (h.value != nullptr) {
      if (!value(*h.value, e.value, error, 1)) {
        return false;
      }
    } else {
      e.value.kind = AMQP_FIELD_KIND_UTF8;
      e.value.value.bytes = bytes(h.text);
    }
    out.push_back(e);
  }
  return true;
}

namespace {

template <typename T>
bool integerAs(const std::string &digits, T &out) {
  auto r = std::from_chars(digits.data(), digits.data() + digits.size(), out);
  return r.ec == std::errc() && r.ptr == digits.data() + digits.size();
}

}  // namespace

bool TableArena::value(const json::Value &v, amqp_field_value_t &out, std::string &error, int depth) {
  if (depth > 32) {
    error = "headers nested deeper than 32 levels";
    return false;
  }
  using Type = json::Value::Type;
  switch (v.type) {
    case Type::Null: out.kind = AMQP_FIELD_KIND_VOID; break;
    case Type::Bool:
      out.kind = AMQP_FIELD_KIND_BOOLEAN;
      out.value.boolean = v.boolean ? 1 : 0;
      break;
    case Type::Integer: {
      std::int32_t i32 = 0;
      std::int64_t i64 = 0;
      if (integerAs(v.text, i32)) {
        out.kind = AMQP_FIELD_KIND_I32;
        out.value.i32 = i32;
      } else if (integerAs(v.text, i64)) {
        out.kind = AMQP_FIELD_KIND_I64;
        out.value.i64 = i64;
      } else {
        // Beyond 64 bits: its digits as text rather than a rounded number.
        out.kind = AMQP_FIELD_KIND_UTF8;
        out.value.bytes = bytes(v.text);
      }
      break;
    }
    case Type::Float: {
      // Not `d`: pika (Debian 12) decodes doubles with long(), so 1.5 would arrive as 1.
      // A decimal (scale + int32) is exact for the usual values; anything else is sent as
      // its JSON text (`S`) rather than silently rounded.
      double d = v.number;
      bool done = false;
      for (int scale = 0; scale <= 9 && !done && std::isfinite(d); ++scale) {
        double scaled = d * std::pow(10.0, scale);
        double r = std::round(scaled);
        if (std::fabs(r) <= 2147483647.0 && std::fabs(scaled - r) <= 1e-9 * std::max(1.0, std::fabs(scaled))) {
          out.kind = AMQP_FIELD_KIND_DECIMAL;
          out.value.decimal.decimals = static_cast<std::uint8_t>(scale);
          out.value.decimal.value = static_cast<std::uint32_t>(static_cast<std::int32_t>(r));
          done = true;
        }
      }
      if (!done) {
        out.kind = AMQP_FIELD_KIND_UTF8;
        out.value.bytes = own(json::pythonFloatRepr(d));
      }
      break;
    }
    case Type::String:
      out.kind = AMQP_FIELD_KIND_UTF8;
      out.value.bytes = bytes(v.text);
      break;
    case Type::Object: {
      tables_.emplace_back();
      auto &entries = tables_.back();
      entries.reserve(v.members.size());
      for (const auto &m : v.members) {
        amqp_table_entry_t e{};
        e.key = bytes(m.key);
        if (!value(m.value, e.value, error, depth + 1)) {
          return false;
        }
        entries.push_back(e);
      }
      out.kind = AMQP_FIELD_KIND_TABLE;
      out.value.table = amqp_table_t{static_cast<int>(entries.size()), entries.data()};
      break;
    }
    case Type::Array: {
      arrays_.emplace_back();
      auto &items = arrays_.back();
      items.reserve(v.items.size());
      for (const auto &x : v.items) {
        amqp_field_value_t fv{};
        if (!value(x, fv, error, depth + 1)) {
          return false;
        }
        items.push_back(fv);
      }
      out.kind = AMQP_FIELD_KIND_ARRAY;
      out.value.array = amqp_array_t{static_cast<int>(items.size()), items.data()};
      break;
    }
  }
  return true;
}

// --- AMQP table -> JSON ---------------------------------------------------------------

namespace {

std::string text(const amqp_bytes_t &b) {
  std::string_view s(static_cast<const char *>(b.bytes), b.len);
  if (fedmsg::isValidUtf8(s)) {
    return std::string(s);
  }
  // Binary or broken text: keep the ASCII, replace the rest, so the headers stay valid JSON.
  std::string fixed;
  for (unsigned char c : s) {
    if (c < 0x80) {
      fixed += static_cast<char>(c);
    } else {
      fixed += "\xEF\xBF\xBD";
    }
  }
  return fixed;
}

json::Value toValue(const amqp_field_value_t &v, int depth);

json::Value tableValue(const amqp_table_t &t, int depth) {
  json::Value obj = json::Value::object();
  for (int i = 0; i < t.num_entries; ++i) {
    obj.set(text(t.entries[i].key), toValue(t.entries[i].value, depth + 1));
  }
  return obj;
}

json::Value finite(double d) { return std::isfinite(d) ? json::Value::fromDouble(d) : json::Value::null(); }

json::Value toValue(const amqp_field_value_t &v, int depth) {
  if (depth > 64) {
    return json::Value::null();
  }
  switch (v.kind) {
    case AMQP_FIELD_KIND_BOOLEAN: return json::Value::fromBool(v.value.boolean != 0);
    case AMQP_FIELD_KIND_I8: return json::Value::fromInt(v.value.i8);
    case AMQP_FIELD_KIND_U8: return json::Value::fromInt(v.value.u8);
    case AMQP_FIELD_KIND_I16: return json::Value::fromInt(v.value.i16);
    case AMQP_FIELD_KIND_U16: return json::Value::fromInt(v.value.u16);
    case AMQP_FIELD_KIND_I32: return json::Value::fromInt(v.value.i32);
    case AMQP_FIELD_KIND_U32: return json::Value::fromInt(v.value.u32);
    case AMQP_FIELD_KIND_I64: return json::Value::fromInt(v.value.i64);
    case AMQP_FIELD_KIND_U64:
    case AMQP_FIELD_KIND_TIMESTAMP: return json::Value::fromIntegerText(std::to_string(v.value.u64));
    case AMQP_FIELD_KIND_F32: return finite(v.value.f32);
    case AMQP_FIELD_KIND_F64: return finite(v.value.f64);
    case AMQP_FIELD_KIND_DECIMAL:
      // The value is a signed 32-bit integer on the wire.
      return finite(static_cast<double>(static_cast<std::int32_t>(v.value.decimal.value)) /
                    std::pow(10.0, v.value.decimal.decimals));
    case AMQP_FIELD_KIND_UTF8:
    case AMQP_FIELD_KIND_BYTES: return json::Value::fromString(text(v.value.bytes));
    case AMQP_FIELD_KIND_TABLE: return tableValue(v.value.table, depth);
    case AMQP_FIELD_KIND_ARRAY: {
      json::Value arr = json::Value::array();
      arr.items.reserve(static_cast<std::size_t>(v.value.array.num_entries));
      for (int i = 0; i < v.value.array.num_entries; ++i) {
        arr.items.push_back(toValue(v.value.array.entries[i], depth + 1));
      }
      return arr;
    }
    case AMQP_FIELD_KIND_VOID:
    default: return json::Value::null();
  }
}

}  // namespace

json::Value tableToJson(const amqp_table_t &table) { return tableValue(table, 0); }

namespace {

using Writer = rapidjson::Writer<rapidjson::StringBuffer>;

void write(Writer &w, const json::Value &v) {
  using Type = json::Value::Type;
  switch (v.type) {
    case Type::Null: w.Null(); break;
    case Type::Bool: w.Bool(v.boolean); break;
    case Type::Integer:
      w.RawValue(v.text.data(), v.text.size(), rapidjson::kNumberType);
      break;
    case Type::Float: {
      std::string repr = json::pythonFloatRepr(v.number);  // finite: tableToJson makes null of the rest
      w.RawValue(repr.data(), repr.size(), rapidjson::kNumberType);
      break;
    }
    case Type::String: w.String(v.text.data(), static_cast<rapidjson::SizeType>(v.text.size())); break;
    case Type::Array:
      w.StartArray();
      for (const auto &i : v.items) {
        write(w, i);
      }
      w.EndArray();
      break;
    case Type::Object:
      w.StartObject();
      for (const auto &m : v.members) {
        w.Key(m.key.data(), static_cast<rapidjson::SizeType>(m.key.size()));
        write(w, m.value);
      }
      w.EndObject();
      break;
  }
}

}  // namespace

std::string jsonText(const json::Value &v) {
  rapidjson::StringBuffer sb;
  Writer w(sb);
  write(w, v);
  return std::string(sb.GetString(), sb.GetSize());
}

}  // namespace switchyard::amqp
