// SPDX-License-Identifier: MIT
// Shared by the configuration unit tests (test_config.cpp, test_config_more.cpp): the
// in-process test plugins and their schemas, loading through an Engine or straight
// through ConfigParser, and diagnostic matching.
#pragma once

#include <doctest/doctest.h>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <rapidjson/document.h>

#include "config.hpp"
#include "registry.hpp"
#include "switchyard/engine.hpp"

namespace sy = switchyard;
using sy::Diagnostic;
using sy::KeySpec;
namespace cfgtest {

// ---------------------------------------------------------------------------------------
// In-process test plugins and their schemas

inline std::vector<KeySpec> sourceSchema() {
  return {
      {"address", SY_CFG_STRING, true, std::nullopt, "where to connect", false},
      {"port", SY_CFG_INT, false, "5672", "port", false},
      {"ratio", SY_CFG_FLOAT, false, std::nullopt, "a number", false},
      {"verbose", SY_CFG_BOOL, false, "false", "a boolean", false},
      {"topics", SY_CFG_STRING_LIST, false, R"(["a.b"])", "topics", false},
      {"options", SY_CFG_MAP, false, std::nullopt, "a mapping", false},
      {"items", SY_CFG_LIST, false, std::nullopt, "a list", false},
      {"extra", SY_CFG_ANY, false, std::nullopt, "anything", false},
      {"password", SY_CFG_STRING, false, std::nullopt, "a secret", true},
      {"pin", SY_CFG_INT, false, std::nullopt, "a secret number", true},
  };
}
inline std::vector<KeySpec> sinkSchema() {
  return {
      {"path", SY_CFG_STRING, false, R"("-")", "file", false},
      {"count", SY_CFG_INT, false, std::nullopt, "how many", false},
  };
}
inline std::vector<KeySpec> filterSchema() {
  return {
      {"prefix", SY_CFG_STRING, false, R"("")", "prepended", false},
  };
}

class NullSource final : public sy::Source {
 public:
  sy::Status start(sy::SourceContext &) noexcept override { return sy::Status::ok(); }
  sy::Status poll(sy::SourceContext &, std::chrono::milliseconds) noexcept override {
    return sy::Status::endOfStream();
  }
};
class NullSink final : public sy::Sink {
 public:
  sy::Status start(sy::SinkContext &) noexcept override { return sy::Status::ok(); }
  void send(sy::SinkContext &ctx, sy::Message &&, sy::DeliveryId id) noexcept override {
    ctx.done(id, sy::Outcome::Delivered);
  }
};
class NullFilter final : public sy::Filter {
 public:
  sy::Verdict process(sy::FilterContext &, sy::Message &) noexcept override { return sy::Verdict::pass(); }
};

/// An Engine that sees only the in-process test plugins (no .so search at all).
inline std::unique_ptr<sy::Engine> testEngine() {
  sy::EngineOptions o;
  o.use_env_plugin_path = false;
  o.use_config_plugin_path = false;
  o.use_install_dir = false;
  auto e = std::make_unique<sy::Engine>(o);
  e->registerSource("t-src", sourceSchema(), [](const sy::sdk::Config &c) -> std::unique_ptr<sy::Source> {
    // A plugin-side check naming a key: the core must point at that key's value.
    if (c.integer("port") == 0) {
      throw sy::sdk::ConfigError("port", "port must not be 0");
    }
    return std::make_unique<NullSource>();
  });
  e->registerSink("t-sink", sinkSchema(), [](const sy::sdk::Config &) -> std::unique_ptr<sy::Sink> {
    return std::make_unique<NullSink>();
  });
  e->registerFilter("t-filter", filterSchema(),
                    [](const sy::sdk::Config &) -> std::unique_ptr<sy::Filter> {
                      return std::make_unique<NullFilter>();
                    });
  return e;
}

/// Loads @p yaml into a fresh test engine; returns its diagnostics (empty when it loaded).
inline std::vector<Diagnostic> load(const std::string &yaml) {
  auto e = testEngine();
  try {
    e->loadString(yaml, "t.yaml");
  } catch (const sy::ConfigError &err) {
    return err.diagnostics();
  }
  return {};
}

/// Phase 1 + phase 2 straight through ConfigParser, to look at the produced model.
struct Checked {
  sy::ConfigModel model;
  std::vector<Diagnostic> diags;
};
inline Checked check(const std::string &yaml, const std::string &file = "t.yaml") {
  sy::PluginRegistry reg;
  auto add = [&reg](const char *name, sy_plugin_kind kind, std::vector<KeySpec> schema) {
    sy::PluginDescriptor d;
    d.kind = kind;
    d.name = name;
    d.version = "1";
    reg.addInProcess(std::move(d), std::move(schema), [](const sy::CreateArgs &) { return nullptr; });
  };
  add("t-src", SY_KIND_SOURCE, sourceSchema());
  add("t-sink", SY_KIND_SINK, sinkSchema());
  add("t-filter", SY_KIND_FILTER, filterSchema());
  Checked c;
  sy::ConfigParser parser;
  c.model = parser.parse(yaml, file, c.diags);
  if (c.model.checkable) {
    parser.validatePlugins(c.model, reg, c.diags);
  }
  return c;
}

inline std::string dump(const std::vector<Diagnostic> &d) {
  std::string out;
  for (const auto &x : d) {
    out += x.str() + "\n";
  }
  return out;
}

/// Exactly one diagnostic at @p line:@p col with @p path whose message contains @p text.
inline bool has(const std::vector<Diagnostic> &d, int line, int col, const std::string &path,
         const std::string &text) {
  int n = 0;
  for (const auto &x : d) {
    if (x.file == "t.yaml" && x.line == line && x.column == col && x.path == path &&
        x.message.find(text) != std::string::npos) {
      ++n;
    }
  }
  return n == 1;
}

#define CHECK_DIAG(diags, line, col, path, text) \
  CHECK_MESSAGE(has(diags, line, col, path, text), dump(diags))

/// The JSON object of a plugin entry, parsed.
inline rapidjson::Document json(const sy::PluginSpec &s) {
  rapidjson::Document d;
  d.Parse(s.config_json.c_str());
  REQUIRE_MESSAGE(!d.HasParseError(), s.config_json);
  REQUIRE(d.IsObject());
  return d;
}

inline const char *const kHead = "version: 1\npipelines:\n  p:\n";

}  // namespace cfgtest
