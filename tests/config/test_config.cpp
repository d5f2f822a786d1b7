// SPDX-License-Identifier: MIT
// Unit tests of the configuration parser and validator (core/src/config.cpp): every error
// class with its exact line and column, ${VAR} interpolation, defaults, type conversion,
// all errors at once, and the hardening limits.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
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

namespace {

// ---------------------------------------------------------------------------------------
// In-process test plugins and their schemas

std::vector<KeySpec> sourceSchema() {
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
std::vector<KeySpec> sinkSchema() {
  return {
      {"path", SY_CFG_STRING, false, R"("-")", "file", false},
      {"count", SY_CFG_INT, false, std::nullopt, "how many", false},
  };
}
std::vector<KeySpec> filterSchema() {
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
std::unique_ptr<sy::Engine> testEngine() {
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
std::vector<Diagnostic> load(const std::string &yaml) {
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
Checked check(const std::string &yaml, const std::string &file = "t.yaml") {
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

std::string dump(const std::vector<Diagnostic> &d) {
  std::string out;
  for (const auto &x : d) {
    out += x.str() + "\n";
  }
  return out;
}

/// Exactly one diagnostic at @p line:@p col with @p path whose message contains @p text.
bool has(const std::vector<Diagnostic> &d, int line, int col, const std::string &path,
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
rapidjson::Document json(const sy::PluginSpec &s) {
  rapidjson::Document d;
  d.Parse(s.config_json.c_str());
  REQUIRE_MESSAGE(!d.HasParseError(), s.config_json);
  REQUIRE(d.IsObject());
  return d;
}

const char *kHead = "version: 1\npipelines:\n  p:\n";

}  // namespace

// =======================================================================================

TEST_CASE("a valid configuration loads and gets typed JSON with defaults") {
  const std::string yaml = R"(version: 1
pipelines:
  p:
    input:
      type: t-src
      address: 5672
    filters:
      - type: t-filter
    outputs:
      - {type: t-sink, count: 3}
      - type: t-sink
)";
  auto c = check(yaml);
  REQUIRE_MESSAGE(c.diags.empty(), dump(c.diags));
  REQUIRE(c.model.pipelines.size() == 1);
  const auto &p = c.model.pipelines[0];
  CHECK(p.name == "p");
  CHECK(p.input.type == "t-src");
  CHECK(p.input.path == "pipelines.p.input");
  CHECK(p.input.mark.line == 5);
  CHECK(p.input.mark.column == 7);
  // address is a string key: a numeric-looking plain scalar stays a string; defaults of
  // port, verbose and topics are filled in; keys without default are omitted.
  CHECK(p.input.config_json ==
        R"({"address":"5672","port":5672,"verbose":false,"topics":["a.b"]})");
  REQUIRE(p.filters.size() == 1);
  CHECK(p.filters[0].config_json == R"({"prefix":""})");
  CHECK(p.filters[0].path == "pipelines.p.filters[0]");
  REQUIRE(p.outputs.size() == 2);
  CHECK(p.outputs[0].config_json == R"({"count":3,"path":"-"})");
  CHECK(p.outputs[0].mark.line == 10);
  CHECK(p.outputs[0].mark.column == 9);
  CHECK(p.outputs[1].path == "pipelines.p.outputs[1]");
  CHECK(p.outputs[1].config_json == R"({"path":"-"})");
  // key_marks point at each given value.
  REQUIRE(p.input.key_marks.count("address") == 1);
  CHECK(p.input.key_marks.at("address").line == 6);
  CHECK(p.input.key_marks.at("address").column == 16);
  CHECK(p.outputs[0].key_marks.at("count").column == 31);

  // And through the Engine: loads without a diagnostic.
  CHECK(load(yaml).empty());
}

TEST_CASE("type conversion per schema type") {
  setenv("SY_CFG_TEST_PORT", "1234", 1);
  auto c = check(std::string(kHead) + R"(    input:
      type: t-src
      address: "quoted"
      port: ${SY_CFG_TEST_PORT}
      ratio: 2
      verbose: yes
      topics: single
      options: {q: "12", n: 12, f: 1.5, t: true, z: ~, e: null, s: yes, neg: -3, h: 0x10, l: [a, "1"]}
      items: [1, x, {a: b}]
      extra: 'text'
      password: hunter2
    outputs:
      - {type: t-sink, count: "42", path: 007}
)");
  REQUIRE_MESSAGE(c.diags.empty(), dump(c.diags));
  auto d = json(c.model.pipelines[0].input);
  CHECK(std::string(d["address"].GetString()) == "quoted");
  REQUIRE(d["port"].IsInt64());
  CHECK(d["port"].GetInt64() == 1234);
  REQUIRE(d["ratio"].IsNumber());
  CHECK(d["ratio"].GetDouble() == 2.0);
  REQUIRE(d["verbose"].IsBool());
  CHECK(d["verbose"].GetBool());
  REQUIRE(d["topics"].IsArray());
  REQUIRE(d["topics"].Size() == 1);
  CHECK(std::string(d["topics"][0].GetString()) == "single");
  const auto &o = d["options"];
  REQUIRE(o.IsObject());
  CHECK(o["q"].IsString());  // quoted stays a string
  CHECK(o["n"].IsInt64());
  CHECK(o["n"].GetInt64() == 12);
  CHECK(o["f"].IsDouble());
  CHECK(o["f"].GetDouble() == 1.5);
  CHECK(o["t"].IsBool());
  CHECK(o["z"].IsNull());
  CHECK(o["e"].IsNull());
  CHECK(o["s"].IsString());  // YAML 1.2: yes is not a boolean where no type is declared
  CHECK(o["neg"].GetInt64() == -3);
  CHECK(o["h"].GetInt64() == 16);
  REQUIRE(o["l"].IsArray());
  CHECK(o["l"][1].IsString());
  REQUIRE(d["items"].IsArray());
  CHECK(d["items"][0].IsInt64());
  CHECK(d["items"][1].IsString());
  CHECK(d["items"][2].IsObject());
  CHECK(std::string(d["extra"].GetString()) == "text");
  CHECK(std::string(d["password"].GetString()) == "hunter2");
  auto s = json(c.model.pipelines[0].outputs[0]);
  CHECK(s["count"].GetInt64() == 42);               // quoted digits are accepted for an int
  CHECK(std::string(s["path"].GetString()) == "007");  // string key keeps the text as written
}

TEST_CASE("booleans: yes/no/on/off and true/false") {
  for (auto [text, want] : std::vector<std::pair<std::string, bool>>{
           {"true", true}, {"false", false}, {"yes", true}, {"no", false}, {"On", true},
           {"OFF", false}, {"True", true}}) {
    auto c = check(std::string(kHead) + "    input: {type: t-src, address: a, verbose: " + text +
                   "}\n    outputs: [{type: t-sink}]\n");
    REQUIRE_MESSAGE(c.diags.empty(), dump(c.diags));
    CHECK(json(c.model.pipelines[0].input)["verbose"].GetBool() == want);
  }
}

TEST_CASE("syntax errors carry yaml-cpp's position") {
  auto d = load("version: 1\npipelines: [a, b\nx: 1\n");
  REQUIRE(d.size() == 1);
  CHECK(d[0].line == 3);
  CHECK(d[0].column == 2);
  CHECK(d[0].message.find("YAML syntax error") == 0);

  d = load("version: 1\npipelines:\n\tp: 1\n");
  REQUIRE(d.size() == 1);
  CHECK(d[0].line == 3);
  CHECK(d[0].column == 3);
  CHECK(d[0].message.find("tab") != std::string::npos);

  d = load("version: 1\nkey: @x\n");
  REQUIRE(d.size() == 1);
  CHECK_DIAG(d, 2, 6, "", "unknown token");

  // yaml-cpp 0.7 accepts this; we do not.
  d = load("version: 1\npipelines: \"p\n");
  REQUIRE(d.size() == 1);
  CHECK_DIAG(d, 2, 12, "pipelines", "unterminated quoted string");
  d = load("version: 1\npipelines: {a: 'it''s\n");
  REQUIRE(d.size() == 1);
  CHECK_DIAG(d, 2, 16, "pipelines.a", "unterminated quoted string");
}

TEST_CASE("document shape: empty file, second document, top level not a mapping") {
  auto d = load("");
  REQUIRE(d.size() == 1);
  CHECK_DIAG(d, 1, 1, "", "no YAML document");
  d = load("# only a comment\n");
  REQUIRE(d.size() == 1);
  CHECK_DIAG(d, 1, 1, "", "no YAML document");
  d = load("- a\nversion: 1\n");
  REQUIRE(d.size() == 1);
  CHECK_DIAG(d, 2, 1, "", "second YAML document");
  d = load("version: 1\n---\nversion: 1\n");
  REQUIRE(d.size() == 1);
  CHECK_DIAG(d, 2, 1, "", "second YAML document");
  d = load("[1, 2]\n");
  REQUIRE(d.size() == 1);
  CHECK_DIAG(d, 1, 1, "", "expected a mapping");
}

TEST_CASE("top level: version, unknown keys, pipelines") {
  auto d = load("pipelines:\n  p:\n    input: {type: t-src, address: a}\n    outputs: [{type: t-sink}]\n");
  REQUIRE(d.size() == 1);
  CHECK_DIAG(d, 1, 1, "version", "missing required key 'version'");

  d = load("version: 2\npipelines:\n  p:\n    input: {type: t-src, address: a}\n    outputs: [{type: t-sink}]\n");
  REQUIRE(d.size() == 1);
  CHECK_DIAG(d, 1, 10, "version", "expected 1");

  d = load("version: 1\npipeline:\n  p: {}\n");
  REQUIRE(d.size() == 2);
  CHECK_DIAG(d, 2, 1, "pipeline", "unknown key 'pipeline' at the top level (did you mean 'pipelines'?)");
  CHECK_DIAG(d, 2, 1, "pipeline", "allowed keys: version, plugin_path, settings, pipelines");
  CHECK_DIAG(d, 1, 1, "pipelines", "missing required key 'pipelines'");

  d = load("version: 1\npipelines: {}\n");
  REQUIRE(d.size() == 1);
  CHECK_DIAG(d, 2, 12, "pipelines", "no pipelines");
  d = load("version: 1\npipelines:\n");
  REQUIRE(d.size() == 1);
  CHECK_DIAG(d, 2, 1, "pipelines", "no pipelines");
  d = load("version: 1\npipelines: [a]\n");
  REQUIRE(d.size() == 1);
  CHECK_DIAG(d, 2, 12, "pipelines", "expected a mapping of pipeline names");
}

TEST_CASE("pipelines: unknown keys, bad names, missing input and outputs") {
  auto d = load(R"(version: 1
pipelines:
  a/b:
    input: {type: t-src, address: a}
    outputs: [{type: t-sink}]
    output: x
  empty-outputs:
    input: {type: t-src, address: a}
    outputs: []
  no-outputs:
    input: {type: t-src, address: a}
  no-input:
    outputs:
      - type: t-sink
  null-outputs:
    input: {type: t-src, address: a}
    outputs:
  map-outputs:
    input: {type: t-src, address: a}
    outputs: {type: t-sink}
  list-input:
    input: [{type: t-src, address: a}]
    outputs: [{type: t-sink}]
  bad-filters:
    input: {type: t-src, address: a}
    filters: {type: t-filter}
    outputs: [{type: t-sink}]
  no-type:
    input: {address: a}
    outputs: [x]
)");
  CHECK_DIAG(d, 3, 3, "pipelines.a/b", "invalid pipeline name 'a/b'");
  CHECK_DIAG(d, 6, 5, "pipelines.a/b.output", "unknown key 'output' in a pipeline (did you mean 'outputs'?)");
  CHECK_DIAG(d, 9, 14, "pipelines.empty-outputs.outputs", "at least one output");
  CHECK_DIAG(d, 11, 5, "pipelines.no-outputs.outputs", "missing required key 'outputs'");
  CHECK_DIAG(d, 13, 5, "pipelines.no-input.input", "missing required key 'input'");
  CHECK_DIAG(d, 17, 5, "pipelines.null-outputs.outputs", "at least one output");
  CHECK_DIAG(d, 20, 14, "pipelines.map-outputs.outputs", "expected a list of sink entries");
  CHECK_DIAG(d, 22, 12, "pipelines.list-input.input", "exactly one input");
  CHECK_DIAG(d, 26, 14, "pipelines.bad-filters.filters", "expected a list of filter entries");
  CHECK_DIAG(d, 29, 12, "pipelines.no-type.input", "missing required key 'type'");
  CHECK_DIAG(d, 30, 15, "pipelines.no-type.outputs[0]", "expected a plugin entry");
  CHECK_MESSAGE(d.size() == 11, dump(d));
}

TEST_CASE("unknown plugin lists the known plugins of the needed kind") {
  auto d = load(std::string(kHead) + R"(    input: {type: t-sorce, address: a}
    filters:
      - type: nope
    outputs:
      - type: stdout
)");
  REQUIRE_MESSAGE(d.size() == 3, dump(d));
  CHECK_DIAG(d, 4, 19, "pipelines.p.input.type", "unknown plugin 't-sorce' (did you mean 't-src'?); known source plugins: t-src");
  CHECK_DIAG(d, 6, 15, "pipelines.p.filters[0].type", "unknown plugin 'nope'; known filter plugins: t-filter");
  CHECK_DIAG(d, 8, 15, "pipelines.p.outputs[0].type", "known sink plugins: t-sink");
}

TEST_CASE("a plugin of the wrong kind for its place") {
  auto d = load(std::string(kHead) + R"(    input: {type: t-sink}
    filters: [{type: t-src, address: a}]
    outputs:
      - type: t-filter
)");
  REQUIRE_MESSAGE(d.size() == 3, dump(d));
  CHECK_DIAG(d, 4, 19, "pipelines.p.input.type", "'t-sink' is a sink; an input must be a source");
  CHECK_DIAG(d, 5, 22, "pipelines.p.filters[0].type", "'t-src' is a source; an entry of filters must be a filter");
  CHECK_DIAG(d, 7, 15, "pipelines.p.outputs[0].type", "'t-filter' is a filter; an output must be a sink");
}

TEST_CASE("unknown plugin keys list the allowed keys") {
  auto d = load(std::string(kHead) + R"(    input:
      type: t-src
      address: a
      prot: 1
    outputs:
      - type: t-sink
        colour: red
)");
  REQUIRE_MESSAGE(d.size() == 2, dump(d));
  CHECK_DIAG(d, 7, 7, "pipelines.p.input.prot",
             "unknown key 'prot' for plugin 't-src' (did you mean 'port'?); allowed keys: address, "
             "port, ratio, verbose, topics, options, items, extra, password, pin");
  CHECK_DIAG(d, 10, 9, "pipelines.p.outputs[0].colour", "allowed keys: path, count");
}

TEST_CASE("wrong types say what was expected and what was given") {
  auto d = load(std::string(kHead) + R"(    input:
      type: t-src
      address: {a: b}
      port: 1.5
      ratio: abc
      verbose: maybe
      topics: [a, [b]]
      options: [x]
      items: {a: b}
    outputs:
      - type: t-sink
        count: "abc"
      - {type: t-sink, count: 99999999999999999999}
)");
  CHECK_DIAG(d, 6, 16, "pipelines.p.input.address", "expected a string, got a mapping");
  CHECK_DIAG(d, 7, 13, "pipelines.p.input.port", "expected an integer, got '1.5'");
  CHECK_DIAG(d, 8, 14, "pipelines.p.input.ratio", "expected a number, got 'abc'");
  CHECK_DIAG(d, 9, 16, "pipelines.p.input.verbose", "expected true or false");
  CHECK_DIAG(d, 10, 19, "pipelines.p.input.topics[1]", "expected a string, got a list");
  CHECK_DIAG(d, 11, 16, "pipelines.p.input.options", "expected a mapping, got a list");
  CHECK_DIAG(d, 12, 14, "pipelines.p.input.items", "expected a list, got a mapping");
  CHECK_DIAG(d, 15, 16, "pipelines.p.outputs[0].count", "expected an integer, got the quoted string 'abc'");
  CHECK_DIAG(d, 16, 31, "pipelines.p.outputs[1].count", "out of range");
  CHECK_MESSAGE(d.size() == 9, dump(d));
}

TEST_CASE("missing required keys") {
  auto d = load(std::string(kHead) + R"(    input:
      type: t-src
      port: 1
    outputs: [{type: t-sink}]
  q:
    input: {type: t-src, address: }
    outputs: [{type: t-sink}]
)");
  REQUIRE_MESSAGE(d.size() == 2, dump(d));
  CHECK_DIAG(d, 5, 7, "pipelines.p.input.address", "missing required key 'address' (a string) for plugin 't-src'");
  CHECK_DIAG(d, 9, 26, "pipelines.q.input.address", "required key 'address' has no value");
}

TEST_CASE("duplicate keys are found at every level") {
  auto d = load(R"(version: 1
version: 1
pipelines:
  p:
    input: {type: t-src, address: a, address: b}
    outputs:
      - type: t-sink
        path: x
        path: y
    input: {type: t-src, address: c}
  p:
    input: {type: t-src, address: a}
    outputs: [{type: t-sink}]
settings:
  drain_timeout: 1
  drain_timeout: 2
)");
  CHECK_DIAG(d, 2, 1, "version", "duplicate key 'version' (first defined at line 1, column 1)");
  CHECK_DIAG(d, 5, 38, "pipelines.p.input.address", "duplicate key 'address' (first defined at line 5, column 26)");
  CHECK_DIAG(d, 9, 9, "pipelines.p.outputs[0].path", "duplicate key 'path' (first defined at line 8, column 9)");
  CHECK_DIAG(d, 10, 5, "pipelines.p.input", "duplicate key 'input' (first defined at line 5, column 5)");
  CHECK_DIAG(d, 11, 3, "pipelines.p", "duplicate key 'p' (first defined at line 4, column 3)");
  CHECK_DIAG(d, 16, 3, "settings.drain_timeout", "duplicate key 'drain_timeout'");
  CHECK_MESSAGE(d.size() == 6, dump(d));

  // Inside a free-form value too.
  d = load(std::string(kHead) +
           "    input: {type: t-src, address: a, options: {x: {y: 1, y: 2}}}\n    outputs: [{type: t-sink}]\n");
  REQUIRE_MESSAGE(d.size() == 1, dump(d));
  CHECK_DIAG(d, 4, 58, "pipelines.p.input.options.x.y", "duplicate key 'y' (first defined at line 4, column 52)");
}

TEST_CASE("all errors at once: five problems, five diagnostics") {
  // unknown key + wrong type + missing required key + duplicate key + unknown plugin
  auto d = load(R"(version: 1
pipelines:
  one:
    input:
      type: t-src
      address: a
      colour: blue
      port: eighty
    outputs:
      - type: t-sink
        path: a
        path: b
  two:
    input: {type: t-src}
    outputs:
      - type: no-such-sink
)");
  CHECK_DIAG(d, 7, 7, "pipelines.one.input.colour", "unknown key 'colour'");
  CHECK_DIAG(d, 8, 13, "pipelines.one.input.port", "expected an integer, got 'eighty'");
  CHECK_DIAG(d, 12, 9, "pipelines.one.outputs[0].path", "duplicate key 'path'");
  CHECK_DIAG(d, 14, 12, "pipelines.two.input.address", "missing required key 'address'");
  CHECK_DIAG(d, 16, 15, "pipelines.two.outputs[0].type", "unknown plugin 'no-such-sink'");
  CHECK_MESSAGE(d.size() == 5, dump(d));
  // Reported in file order, each printable as file:line:column: path: message.
  for (std::size_t i = 1; i < d.size(); ++i) {
    CHECK(d[i - 1].line <= d[i].line);
  }
  CHECK(d[0].str() == "t.yaml:7:7: pipelines.one.input.colour: unknown key 'colour' for plugin 't-src'; "
                      "allowed keys: address, port, ratio, verbose, topics, options, items, extra, "
                      "password, pin");
}

TEST_CASE("interpolation of ${VAR} in values") {
  setenv("SY_CFG_TEST_SET", "hello", 1);
  setenv("SY_CFG_TEST_EMPTY", "", 1);
  setenv("SY_CFG_TEST_NL", "two\nlines", 1);
  unsetenv("SY_CFG_TEST_UNSET");

  SUBCASE("set, default, empty, escape") {
    auto c = check(std::string(kHead) + R"(    input:
      type: t-src
      address: "${SY_CFG_TEST_SET}-x"
      extra:
        - ${SY_CFG_TEST_UNSET:-fallback}
        - "${SY_CFG_TEST_EMPTY:-dflt}"
        - ${SY_CFG_TEST_EMPTY}
        - $$HOME
        - a$b
        - '$${SY_CFG_TEST_SET}'
        - "${SY_CFG_TEST_SET:-z}"
    outputs: [{type: t-sink}]
)");
    REQUIRE_MESSAGE(c.diags.empty(), dump(c.diags));
    auto d = json(c.model.pipelines[0].input);
    CHECK(std::string(d["address"].GetString()) == "hello-x");
    const auto &e = d["extra"];
    REQUIRE(e.Size() == 7);
    CHECK(std::string(e[0].GetString()) == "fallback");
    CHECK(std::string(e[1].GetString()) == "dflt");  // set but empty: the default applies
    CHECK(std::string(e[2].GetString()).empty());
    CHECK(std::string(e[3].GetString()) == "$HOME");
    CHECK(std::string(e[4].GetString()) == "a$b");
    CHECK(std::string(e[5].GetString()) == "${SY_CFG_TEST_SET}");
    CHECK(std::string(e[6].GetString()) == "hello");
  }

  SUBCASE("the type field and settings are expanded too") {
    setenv("SY_CFG_TEST_PLUGIN", "t-sink", 1);
    setenv("SY_CFG_TEST_N", "7", 1);
    auto c = check(R"(version: 1
settings: {queue_max_messages: "${SY_CFG_TEST_N}"}
pipelines:
  p:
    input: {type: t-src, address: a, port: "${SY_CFG_TEST_N}"}
    outputs: [{type: "${SY_CFG_TEST_PLUGIN}"}]
)");
    REQUIRE_MESSAGE(c.diags.empty(), dump(c.diags));
    CHECK(c.model.settings.queue_max_messages == 7);
    CHECK(c.model.pipelines[0].outputs[0].type == "t-sink");
    CHECK(json(c.model.pipelines[0].input)["port"].GetInt64() == 7);
  }

  SUBCASE("errors: unset, newline, key position, bad name, unterminated") {
    auto d = load(std::string(kHead) + R"(    input:
      type: t-src
      address: ${SY_CFG_TEST_UNSET}
      extra: {"${SY_CFG_TEST_SET}": 1}
      password: "${SY_CFG_TEST_NL}"
      options: {a: "${1BAD}", b: "${SY_CFG_TEST_SET"}
    outputs: [{type: t-sink}]
)");
    CHECK_DIAG(d, 6, 16, "pipelines.p.input.address", "environment variable SY_CFG_TEST_UNSET is not set");
    CHECK_DIAG(d, 7, 15, "pipelines.p.input.extra.${SY_CFG_TEST_SET}", "placeholder is not allowed in a key");
    CHECK_DIAG(d, 8, 17, "pipelines.p.input.password", "contains a newline");
    CHECK_DIAG(d, 9, 20, "pipelines.p.input.options.a", "not a valid placeholder");
    CHECK_DIAG(d, 9, 34, "pipelines.p.input.options.b", "unterminated '${'");
    CHECK_MESSAGE(d.size() == 5, dump(d));
    for (const auto &x : d) {
      CHECK(x.message.find("two") == std::string::npos);  // never the variable's value
    }
  }
}

TEST_CASE("values of secret keys never appear in diagnostics") {
  setenv("SY_CFG_TEST_SECRET", "s3cr3t-canary", 1);
  auto d = load(std::string(kHead) + R"(    input:
      type: t-src
      address: a
      pin: "hunter2-canary"
      password: [s3cr3t-canary]
    outputs: [{type: t-sink, count: "${SY_CFG_TEST_SECRET}x"}]
)");
  CHECK_DIAG(d, 7, 12, "pipelines.p.input.pin", "expected an integer, got a quoted string");
  CHECK_DIAG(d, 8, 17, "pipelines.p.input.password", "expected a string, got a list");
  REQUIRE_MESSAGE(d.size() == 3, dump(d));
  for (const auto &x : d) {
    CHECK(x.str().find("hunter2") == std::string::npos);
  }
  // A non-secret key quotes the value it did not understand.
  CHECK_DIAG(d, 9, 37, "pipelines.p.outputs[0].count", "got the quoted string 's3cr3t-canaryx'");
}

TEST_CASE("settings") {
  auto c = check(R"(version: 1
settings:
  queue_max_messages: 5
  queue_max_bytes: 1024
  drain_timeout: 2.5
pipelines:
  p: {input: {type: t-src, address: a}, outputs: [{type: t-sink}]}
)");
  REQUIRE_MESSAGE(c.diags.empty(), dump(c.diags));
  CHECK(c.model.settings.queue_max_messages == 5);
  CHECK(c.model.settings.queue_max_bytes == 1024);
  CHECK(c.model.settings.drain_timeout_s == 2.5);

  c = check("version: 1\npipelines:\n  p: {input: {type: t-src, address: a}, outputs: [{type: t-sink}]}\n");
  CHECK(c.model.settings.queue_max_messages == 1000);
  CHECK(c.model.settings.drain_timeout_s == 10.0);

  auto d = load(R"(version: 1
settings:
  queue_max_messages: 0
  queue_max_bytes: lots
  drain_timeout: -1
  drain_timeuot: 3
pipelines:
  p: {input: {type: t-src, address: a}, outputs: [{type: t-sink}]}
)");
  CHECK_DIAG(d, 3, 23, "settings.queue_max_messages", "must be at least 1");
  CHECK_DIAG(d, 4, 20, "settings.queue_max_bytes", "expected an integer, got 'lots'");
  CHECK_DIAG(d, 5, 18, "settings.drain_timeout", "must not be negative");
  CHECK_DIAG(d, 6, 3, "settings.drain_timeuot", "did you mean 'drain_timeout'?");
  CHECK_MESSAGE(d.size() == 4, dump(d));
}

TEST_CASE("retry: settings.retry is every output's default; an output's own retry overrides it") {
  auto c = check(R"(version: 1
settings:
  retry: {initial_backoff: 0.5, max_duration: 60}
pipelines:
  p:
    input: {type: t-src, address: a}
    outputs:
      - {type: t-sink}
      - {type: t-sink, retry: {max_backoff: 30, jitter: 0}}
)");
  REQUIRE_MESSAGE(c.diags.empty(), dump(c.diags));
  CHECK(c.model.settings.retry.initial_backoff_s == 0.5);
  auto &outs = c.model.pipelines.at(0).outputs;
  REQUIRE(outs.size() == 2);
  CHECK(outs[0].retry.initial_backoff_s == 0.5);
  CHECK(outs[0].retry.max_backoff_s == 5.0);
  CHECK(outs[0].retry.max_duration_s == 60);
  CHECK(outs[1].retry.initial_backoff_s == 0.5);
  CHECK(outs[1].retry.max_backoff_s == 30);
  CHECK(outs[1].retry.jitter == 0);
  CHECK(outs[1].config_json.find("retry") == std::string::npos);  // the runtime's key, not the plugin's

  auto d = load(R"(version: 1
settings:
  retry: {max_backoff: 0.5}
pipelines:
  p:
    input: {type: t-src, address: a, retry: {}}
    outputs:
      - {type: t-sink, retry: {initial_backof: 1}}
      - {type: t-sink, retry: {initial_backoff: 10, max_backoff: 2}}
      - {type: t-sink, retry: {max_duration: -1, jitter: 0.9}}
      - {type: t-sink, retry: 5}
)");
  CHECK_DIAG(d, 3, 24, "settings.retry.max_backoff", "at least 1 s");
  CHECK_DIAG(d, 6, 38, "pipelines.p.input.retry", "unknown key 'retry'");
  CHECK_DIAG(d, 8, 32, "pipelines.p.outputs[0].retry.initial_backof", "did you mean 'initial_backoff'?");
  CHECK_DIAG(d, 9, 31, "pipelines.p.outputs[1].retry", "initial_backoff (10 s) is larger than max_backoff (2 s)");
  CHECK_DIAG(d, 10, 46, "pipelines.p.outputs[2].retry.max_duration", "must not be negative");
  CHECK_DIAG(d, 10, 58, "pipelines.p.outputs[2].retry.jitter", "between 0 and 0.5");
  CHECK_DIAG(d, 11, 31, "pipelines.p.outputs[3].retry", "expected a mapping");
  CHECK_MESSAGE(d.size() == 7, dump(d));
}

TEST_CASE("plugin_path is made absolute against the configuration's directory") {
  namespace fs = std::filesystem;
  fs::path dir = fs::temp_directory_path() / fmt::format("sy-config-test-{}", ::getpid());
  fs::create_directories(dir / "plugins");
  fs::create_directories(dir / "more");
  std::string file = (dir / "c.yaml").string();
  auto c = check("version: 1\nplugin_path: plugins\npipelines:\n  p: {input: {type: t-src, address: a}, "
                 "outputs: [{type: t-sink}]}\n",
                 file);
  REQUIRE_MESSAGE(c.diags.empty(), dump(c.diags));
  REQUIRE(c.model.plugin_paths.size() == 1);
  CHECK(c.model.plugin_paths[0] == (dir / "plugins").string());

  c = check("version: 1\nplugin_path: [./more, " + (dir / "plugins").string() +
                "]\npipelines:\n  p: {input: {type: t-src, address: a}, outputs: [{type: t-sink}]}\n",
            file);
  REQUIRE_MESSAGE(c.diags.empty(), dump(c.diags));
  REQUIRE(c.model.plugin_paths.size() == 2);
  CHECK(c.model.plugin_paths[0] == (dir / "more").string());

  c = check("version: 1\nplugin_path: [missing, {a: b}]\npipelines: {}\n", file);
  CHECK(!c.model.checkable);
  REQUIRE_MESSAGE(c.diags.size() == 3, dump(c.diags));
  CHECK(c.diags[0].line == 2);
  CHECK(c.diags[0].column == 15);
  CHECK(c.diags[0].path == "plugin_path[0]");
  CHECK(c.diags[0].message.find("does not exist") != std::string::npos);
  CHECK(c.diags[1].path == "plugin_path[1]");
  fs::remove_all(dir);
}

TEST_CASE("keys: complex, empty, alias; tags") {
  auto d = load("version: 1\n? [a, b]\n: 1\npipelines: {}\n");
  CHECK_DIAG(d, 2, 3, "", "a mapping key must be a scalar");
  d = load("version: 1\nx: &k 1\n*k : 2\n");
  CHECK_DIAG(d, 3, 1, "", "an alias cannot be used as a mapping key");
  d = load("version: !!int 1\npipelines:\n  p: {input: !custom {type: t-src}, outputs: [{type: t-sink}]}\n");
  REQUIRE_MESSAGE(d.size() == 1, dump(d));
  CHECK_DIAG(d, 3, 14, "pipelines.p.input", "unsupported tag '!custom'");
}

TEST_CASE("a plugin constructor's error points at the key it names") {
  auto d = load(std::string(kHead) + "    input:\n      type: t-src\n      address: a\n      port: 0\n"
                                     "    outputs: [{type: t-sink}]\n");
  REQUIRE_MESSAGE(d.size() == 1, dump(d));
  CHECK_DIAG(d, 7, 13, "pipelines.p.input.port", "port must not be 0");
}

TEST_CASE("aliases are expanded when they are shared, and refused when recursive") {
  auto c = check(R"(version: 1
pipelines:
  a:
    input: &src {type: t-src, address: shared}
    outputs: &outs [{type: t-sink}]
  b:
    input: *src
    outputs: *outs
)");
  REQUIRE_MESSAGE(c.diags.empty(), dump(c.diags));
  REQUIRE(c.model.pipelines.size() == 2);
  CHECK(c.model.pipelines[1].input.config_json == c.model.pipelines[0].input.config_json);

  // A problem with an aliased value is reported where the alias is used.
  auto d = load(R"(version: 1
pipelines:
  a:
    input: {type: t-src, address: a, port: &n eighty}
    outputs: [{type: t-sink, count: *n}]
)");
  CHECK_DIAG(d, 4, 44, "pipelines.a.input.port", "expected an integer, got 'eighty'");
  CHECK_DIAG(d, 5, 37, "pipelines.a.outputs[0].count", "expected an integer, got 'eighty'");
  CHECK_MESSAGE(d.size() == 2, dump(d));

  d = load(std::string(kHead) + "    input: {type: t-src, address: a, extra: &x [1, *x]}\n"
                                     "    outputs: [{type: t-sink}]\n");
  REQUIRE_MESSAGE(d.size() == 1, dump(d));
  CHECK_DIAG(d, 4, 52, "pipelines.p.input.extra[1]", "recursive alias");
}

TEST_CASE("hardening: size limit, deep nesting, alias bomb") {
  using Clock = std::chrono::steady_clock;

  SUBCASE("a file over 4 MiB is refused before parsing") {
    std::string big = "version: 1\n# " + std::string(sy::kMaxConfigBytes, 'x') + "\n";
    auto d = load(big);
    REQUIRE(d.size() == 1);
    CHECK_DIAG(d, 1, 1, "", "larger than 4 MiB");
  }

  SUBCASE("10000 levels of flow nesting") {
    std::string deep = "version: 1\npipelines: " + std::string(10000, '[') + std::string(10000, ']') + "\n";
    auto start = Clock::now();
    auto d = load(deep);
    CHECK(Clock::now() - start < std::chrono::seconds(1));
    REQUIRE_MESSAGE(d.size() == 1, dump(d));
    CHECK(d[0].line == 2);
    // "pipelines: " is 11 columns; the root mapping is the first level.
    CHECK(d[0].column == 12 + sy::kMaxConfigDepth - 1);
    CHECK(d[0].message.find("nested more than") != std::string::npos);
  }

  SUBCASE("2000 levels of block nesting") {
    std::string deep = "version: 1\n";
    for (int i = 0; i < 2000; ++i) {
      deep += std::string(static_cast<std::size_t>(i), ' ') + "a:\n";
    }
    auto d = load(deep);
    REQUIRE_MESSAGE(d.size() == 1, dump(d));
    CHECK(d[0].line > 100);
    CHECK(d[0].column > 0);
    CHECK(d[0].message.find("nested") != std::string::npos);
  }

  SUBCASE("an alias bomb stops at the expansion budget") {
    std::string bomb = "version: 1\nx0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n";
    for (int i = 1; i < 10; ++i) {
      bomb += fmt::format("x{}: &a{} [", i, i);
      for (int j = 0; j < 10; ++j) {
        bomb += fmt::format("{}*a{}", j == 0 ? "" : ", ", i - 1);
      }
      bomb += "]\n";
    }
    bomb += "pipelines:\n  p:\n    input: {type: t-src, address: a, extra: *a9}\n    outputs: [{type: t-sink}]\n";
    auto start = Clock::now();
    auto d = load(bomb);
    CHECK(Clock::now() - start < std::chrono::seconds(2));
    bool budget = false;
    for (const auto &x : d) {
      if (x.message.find("alias bomb") != std::string::npos) {
        budget = true;
        CHECK(x.line == 2);
        CHECK(x.path.rfind("pipelines.p.input.extra", 0) == 0);
      }
    }
    CHECK_MESSAGE(budget, dump(d));
  }

  SUBCASE("too many nodes") {
    std::string many = "version: 1\nx: [";
    for (std::size_t i = 0; i < sy::kMaxConfigNodes + 10; ++i) {
      many += "1,";
    }
    many += "1]\n";
    auto d = load(many);
    REQUIRE(d.size() == 1);
    CHECK(d[0].line == 2);
    CHECK(d[0].message.find("more than") != std::string::npos);
  }
}

TEST_CASE("parseConfigFile reads a file and refuses a large one without reading it all") {
  namespace fs = std::filesystem;
  fs::path f = fs::temp_directory_path() / fmt::format("sy-config-big-{}.yaml", ::getpid());
  {
    std::ofstream out(f);
    out << "version: 1\n";
    out << std::string(5u << 20, '#') << "\n";
  }
  std::vector<Diagnostic> d;
  sy::parseConfigFile(f.string(), d);
  REQUIRE(d.size() == 1);
  CHECK(d[0].line == 1);
  CHECK(d[0].message.find("larger than 4 MiB") != std::string::npos);
  fs::remove(f);

  d.clear();
  sy::parseConfigFile("/nonexistent/sy.yaml", d);
  REQUIRE(d.size() == 1);
  CHECK(d[0].message.find("cannot read") != std::string::npos);
}
