// SPDX-License-Identifier: MIT
// Unit tests of the configuration parser and validator (core/src/config_*.cpp): every
// error class with its exact line and column, defaults, type conversion, all errors at
// once. test_config_more.cpp has the rest (${VAR}, settings, aliases, hardening limits).
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include "config_test_util.hpp"

using namespace cfgtest;  // NOLINT
namespace sy = switchyard;

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

