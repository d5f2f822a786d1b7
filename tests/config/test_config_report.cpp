// SPDX-License-Identifier: MIT
// Unit tests of how plugins report problems and warnings about their configuration
// (sdk::Config::problem(), warning(), collect(); CreateArgs::report) and of probes
// (Plugin::probe(), Engine::probe()): every problem of every plugin in one load, each once
// (also with several filter workers), at its key's line and column (nested keys too);
// warnings apart from errors; the SDK without a report (the test kit's path).
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <chrono>
#include <string>
#include <vector>

#include "switchyard/engine.hpp"
#include "switchyard/sdk.hpp"

namespace sy = switchyard;
using sy::Diagnostic;
using sy::KeySpec;

namespace {

std::vector<KeySpec> schema() {
  return {
      {"cert_file", SY_CFG_STRING, false, R"("")", "cert", false},
      {"key_file", SY_CFG_STRING, false, R"("")", "key", false},
      {"mode", SY_CFG_STRING, false, R"("fast")", "mode", false},
      {"tls", SY_CFG_MAP, false, std::nullopt, "tls", false},
      {"verify", SY_CFG_BOOL, false, "true", "verify", false},
      {"endpoints", SY_CFG_STRING_LIST, false, "[]", "endpoints", false},
  };
}

/// Records what it finds the way a converted plugin does: every problem, then goes on.
void inspect(const sy::sdk::Config &c) {
  if (c.str("cert_file").empty() != c.str("key_file").empty()) {
    c.problem("key_file", "cert_file and key_file go together");
  }
  c.collect([&] { (void)c.oneOf("mode", {"fast", "safe"}); });
  if (c.has("tls")) {
    const auto &tls = c.value("tls");
    if (tls.HasMember("colour")) {
      c.problem("tls.colour", "unknown TLS key 'colour'");
    }
  }
  auto eps = c.strings("endpoints");
  for (std::size_t i = 0; i < eps.size(); ++i) {
    if (eps[i].find("://") == std::string::npos) {
      c.problem("endpoints[" + std::to_string(i) + "]", "not an endpoint");
    }
  }
  if (!c.boolean("verify")) {
    c.warning("verify", "nothing is verified");
  }
}

class Source final : public sy::Source {
 public:
  explicit Source(const sy::sdk::Config &c) { inspect(c); }
  sy::Status start(sy::SourceContext &) noexcept override { return sy::Status::ok(); }
  sy::Status poll(sy::SourceContext &, std::chrono::milliseconds) noexcept override {
    return sy::Status::endOfStream();
  }
  sy::Status probe(sy::ProbeReport &report, std::chrono::milliseconds timeout) noexcept override {
    report.result("tcp://127.0.0.1:1", sy::Status::error("connection refused"));
    report.result("file /etc/hostname", timeout.count() == 1500 ? sy::Status::ok() : sy::Status::error("timeout"));
    return sy::Status::ok();
  }
};
class Sink final : public sy::Sink {
 public:
  explicit Sink(const sy::sdk::Config &c) { inspect(c); }
  sy::Status start(sy::SinkContext &) noexcept override { return sy::Status::ok(); }
  void send(sy::SinkContext &ctx, sy::Message &&, sy::DeliveryId id) noexcept override {
    ctx.done(id, sy::Outcome::Delivered);
  }
};
int g_filters_made = 0;
class Filter final : public sy::Filter {
 public:
  explicit Filter(const sy::sdk::Config &c) {
    ++g_filters_made;
    inspect(c);
  }
  sy::Verdict process(sy::FilterContext &, sy::Message &) noexcept override { return sy::Verdict::pass(); }
  sy::Status probe(sy::ProbeReport &, std::chrono::milliseconds) noexcept override {
    return sy::Status::error("cannot probe");
  }
};

void registerAll(sy::Engine &e) {
  e.registerSource("src", schema(), [](const sy::sdk::Config &c) { return std::make_unique<Source>(c); });
  e.registerSink("out", schema(), [](const sy::sdk::Config &c) { return std::make_unique<Sink>(c); });
  e.registerFilter("flt", schema(), [](const sy::sdk::Config &c) { return std::make_unique<Filter>(c); }, true);
}

sy::EngineOptions quiet() {
  sy::EngineOptions o;
  o.use_env_plugin_path = false;
  o.use_install_dir = false;
  o.log_config_warnings = false;
  return o;
}

std::vector<std::string> lines(const std::vector<Diagnostic> &d) {
  std::vector<std::string> out;
  for (const auto &x : d) {
    out.push_back(x.str());
  }
  return out;
}

}  // namespace

TEST_CASE("every problem of every plugin in one load, each once, at its key") {
  sy::Engine e(quiet());
  registerAll(e);
  const std::string yaml = R"(version: 1
pipelines:
  p:
    workers: 4
    input:
      type: src
      cert_file: /c.pem
      mode: slow
    filters:
      - type: flt
        verify: false
        tls:
          colour: blue
    outputs:
      - type: out
        endpoints: ["tcp://a:1", nowhere]
        nosuchkey: 1
)";
  g_filters_made = 0;
  try {
    e.loadString(yaml, "f.yaml");
    FAIL("expected a ConfigError");
  } catch (const sy::ConfigError &err) {
    std::vector<std::string> want = {
        "f.yaml:6:7: pipelines.p.input.key_file: cert_file and key_file go together",
        "f.yaml:8:13: pipelines.p.input.mode: 'mode' must be one of fast, safe, got 'slow'",
        "f.yaml:13:19: pipelines.p.filters[0].tls.colour: unknown TLS key 'colour'",
        "f.yaml:16:34: pipelines.p.outputs[0].endpoints[1]: not an endpoint",
        "f.yaml:17:9: pipelines.p.outputs[0].nosuchkey: unknown key 'nosuchkey' for plugin 'out'; "
        "allowed keys: cert_file, key_file, mode, tls, verify, endpoints, retry",
    };
    CHECK(lines(err.diagnostics()) == want);
    REQUIRE(err.warnings().size() == 1);
    CHECK(err.warnings()[0].str() == "f.yaml:11:17: pipelines.p.filters[0].verify: warning: nothing is verified");
  }
  CHECK(g_filters_made == 1);  // the failing first instance: no other worker's
}

TEST_CASE("a list item's problem points at the item") {
  sy::Engine e(quiet());
  registerAll(e);
  try {
    e.loadString("version: 1\npipelines:\n  p:\n    input: {type: src}\n    outputs:\n"
                 "      - type: out\n        endpoints:\n          - tcp://a:1\n          - nowhere\n",
                 "g.yaml");
    FAIL("expected a ConfigError");
  } catch (const sy::ConfigError &err) {
    CHECK(lines(err.diagnostics()) ==
          std::vector<std::string>{"g.yaml:9:13: pipelines.p.outputs[0].endpoints[1]: not an endpoint"});
  }
}

TEST_CASE("warnings alone do not fail the load; each is kept once, with workers") {
  sy::Engine e(quiet());
  registerAll(e);
  g_filters_made = 0;
  e.loadString(R"(version: 1
pipelines:
  p:
    workers: 4
    input: {type: src, verify: false}
    filters: [{type: flt, verify: false}]
    outputs: [{type: out}]
)",
               "w.yaml");
  CHECK(g_filters_made == 4);
  CHECK(lines(e.warnings()) == std::vector<std::string>{
                                   "w.yaml:5:32: pipelines.p.input.verify: warning: nothing is verified",
                                   "w.yaml:6:35: pipelines.p.filters[0].verify: warning: nothing is verified",
                               });
  SUBCASE("probe: one result per thing, one instance per place, failures of the probe itself") {
    auto results = e.probe(std::chrono::milliseconds(1500));
    std::vector<std::string> got;
    for (const auto &r : results) {
      got.push_back(r.str());
    }
    CHECK(got == std::vector<std::string>{
                     "pipelines.p.input (src): tcp://127.0.0.1:1: FAILED: connection refused",
                     "pipelines.p.input (src): file /etc/hostname: ok",
                     "pipelines.p.filters[0] (flt): probe: FAILED: cannot probe",
                 });
  }
}

TEST_CASE("without a report (the test kit), problems become one Status naming the first key") {
  static const sy_config_key kSchema[] = {
      sy::sdk::key("cert_file", SY_CFG_STRING, "\"\"", "cert"),
      sy::sdk::key("key_file", SY_CFG_STRING, "\"x\"", "key"),
      sy::sdk::key("mode", SY_CFG_STRING, "\"slow\"", "mode"),
      sy::sdk::key("verify", SY_CFG_BOOL, "false", "verify"),
      sy::sdk::key("endpoints", SY_CFG_STRING_LIST, "[]", "endpoints"),
      sy::sdk::kEndOfSchema,
  };
  (void)kSchema;
  sy::Status error;
  sy::CreateArgs args;
  std::string json = R"({"cert_file":"","key_file":"x","mode":"slow","verify":false,"endpoints":[]})";
  args.config_json = json;
  args.instance = "x";
  args.error = &error;
  sy::PluginFactory *f = sy::sdk::createFactory<Sink>(&args);
  CHECK(f == nullptr);
  CHECK(error.key() == "key_file");
  CHECK(error.message() == "cert_file and key_file go together (and 1 more problem)");
}

TEST_CASE("a value the schema refuses does not hide the plugin's own problems with the others") {
  auto s = schema();
  s[2].enum_values = {"fast", "safe"};  // mode: now the core refuses 'slow' itself
  sy::Engine e(quiet());
  e.registerSink("out", s, [](const sy::sdk::Config &c) { return std::make_unique<Sink>(c); });
  e.registerSource("src", schema(), [](const sy::sdk::Config &c) { return std::make_unique<Source>(c); });
  try {
    e.loadString(R"(version: 1
pipelines:
  p:
    input: {type: src}
    outputs:
      - type: out
        mode: slow
        cert_file: /c.pem
        colour: red
        endpoints: nowhere
)",
                 "h.yaml");
    FAIL("expected a ConfigError");
  } catch (const sy::ConfigError &err) {
    // The plugin saw mode's default ("fast") and no colour, so it says nothing about
    // either; its problems with cert_file and endpoints are reported in the same run.
    CHECK(lines(err.diagnostics()) ==
          std::vector<std::string>{
              "h.yaml:6:9: pipelines.p.outputs[0].key_file: cert_file and key_file go together",
              "h.yaml:7:15: pipelines.p.outputs[0].mode: expected one of 'fast', 'safe', got 'slow'",
              "h.yaml:9:9: pipelines.p.outputs[0].colour: unknown key 'colour' for plugin 'out'; allowed keys: "
              "cert_file, key_file, mode, tls, verify, endpoints, retry",
              "h.yaml:10:20: pipelines.p.outputs[0].endpoints[0]: not an endpoint",
          });
  }
}

TEST_CASE("one setting used at several places is one problem; settings written apart stay apart") {
  sy::Engine e(quiet());
  registerAll(e);
  try {
    e.loadString(R"(version: 1
pipelines:
  a:
    input: {type: src}
    outputs:
      - {type: out, endpoints: &eps [nowhere]}
      - {type: out, endpoints: *eps}
      - {type: out, endpoints: [nowhere]}
)",
                 "m.yaml");
    FAIL("expected a ConfigError");
  } catch (const sy::ConfigError &err) {
    INFO(std::string(err.what()));
    CHECK(lines(err.diagnostics()) ==
          std::vector<std::string>{
              "m.yaml:6:38: pipelines.a.outputs[0].endpoints[0]: not an endpoint "
              "(also at 6:38 pipelines.a.outputs[1].endpoints[0])",  // the item is written in the anchor
              "m.yaml:8:33: pipelines.a.outputs[2].endpoints[0]: not an endpoint",
          });
  }
}
