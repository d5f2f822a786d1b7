// SPDX-License-Identifier: MIT
// Minimal first cut; the full validator (all diagnostics, duplicate keys, ${VAR}) replaces it.
#include "config.hpp"

#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <yaml-cpp/yaml.h>

#include "registry.hpp"

namespace switchyard {
namespace {

void toJson(const YAML::Node &n, rapidjson::Writer<rapidjson::StringBuffer> &w) {
  switch (n.Type()) {
    case YAML::NodeType::Map:
      w.StartObject();
      for (const auto &kv : n) {
        auto k = kv.first.as<std::string>();
        w.Key(k.c_str(), static_cast<rapidjson::SizeType>(k.size()));
        toJson(kv.second, w);
      }
      w.EndObject();
      break;
    case YAML::NodeType::Sequence:
      w.StartArray();
      for (const auto &e : n) {
        toJson(e, w);
      }
      w.EndArray();
      break;
    case YAML::NodeType::Scalar: {
      const auto &s = n.Scalar();
      if (n.Tag() != "!") {
        std::int64_t i;
        double d;
        bool b;
        if (YAML::convert<std::int64_t>::decode(n, i)) {
          w.Int64(i);
          break;
        }
        if (YAML::convert<double>::decode(n, d)) {
          w.Double(d);
          break;
        }
        if (YAML::convert<bool>::decode(n, b)) {
          w.Bool(b);
          break;
        }
      }
      w.String(s.c_str(), static_cast<rapidjson::SizeType>(s.size()));
      break;
    }
    default:
      w.Null();
  }
}

PluginSpec specOf(const YAML::Node &n, std::string path) {
  PluginSpec p;
  p.path = std::move(path);
  p.mark = {n.Mark().line + 1, n.Mark().column + 1};
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  w.StartObject();
  for (const auto &kv : n) {
    auto k = kv.first.as<std::string>();
    if (k == "type") {
      p.type = kv.second.as<std::string>();
      continue;
    }
    p.key_marks[k] = {kv.first.Mark().line + 1, kv.first.Mark().column + 1};
    w.Key(k.c_str());
    toJson(kv.second, w);
  }
  w.EndObject();
  p.config_json = sb.GetString();
  return p;
}

}  // namespace

ConfigModel ConfigParser::parse(std::string_view text, const std::string &file,
                                std::vector<Diagnostic> &diags) {
  ConfigModel m;
  m.file = file;
  try {
    YAML::Node root = YAML::Load(std::string(text));
    for (const auto &kv : root["pipelines"]) {
      PipelineSpec p;
      p.name = kv.first.as<std::string>();
      std::string base = "pipelines." + p.name;
      p.input = specOf(kv.second["input"], base + ".input");
      int i = 0;
      for (const auto &f : kv.second["filters"]) {
        p.filters.push_back(specOf(f, fmt::format("{}.filters[{}]", base, i++)));
      }
      i = 0;
      for (const auto &o : kv.second["outputs"]) {
        p.outputs.push_back(specOf(o, fmt::format("{}.outputs[{}]", base, i++)));
      }
      m.pipelines.push_back(std::move(p));
    }
  } catch (const YAML::Exception &e) {
    diags.push_back({file, e.mark.line + 1, e.mark.column + 1, "", e.msg});
  }
  return m;
}

void ConfigParser::validatePlugins(ConfigModel &model, PluginRegistry &registry,
                                   std::vector<Diagnostic> &diags) {
  auto check = [&](PluginSpec &s) {
    if (registry.find(s.type) == nullptr) {
      diags.push_back({model.file, s.mark.line, s.mark.column, s.path,
                       fmt::format("unknown plugin '{}'", s.type)});
    }
  };
  for (auto &p : model.pipelines) {
    check(p.input);
    for (auto &f : p.filters) {
      check(f);
    }
    for (auto &o : p.outputs) {
      check(o);
    }
  }
}

ConfigModel parseConfigFile(const std::string &path, std::vector<Diagnostic> &diags) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    diags.push_back({path, 0, 0, "", "cannot read the file"});
    return {};
  }
  std::stringstream ss;
  ss << in.rdbuf();
  ConfigParser parser;
  return parser.parse(ss.str(), path, diags);
}

}  // namespace switchyard
