// SPDX-License-Identifier: MIT
// Unit tests of a schema's constraints (core/src/config_schema.cpp): allowed values of
// strings and string-list items, bounds of integers and numbers, each reported at the
// value's line and column with its key path; defaults applied only when they keep to
// them; a schema whose constraints make no sense is refused naming the plugin. Also the
// SDK's schema builder (sdk::key) and Config getters with defaults, enums and ranges.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <vector>

#include "config.hpp"
#include "registry.hpp"
#include "switchyard/engine.hpp"
#include "switchyard/sdk.hpp"

namespace sy = switchyard;
using sy::Diagnostic;
using sy::KeySpec;

namespace {

KeySpec spec(const char *name, sy_config_type type, std::optional<std::string> def) {
  KeySpec k;
  k.name = name;
  k.type = type;
  k.default_json = std::move(def);
  return k;
}

std::vector<KeySpec> constrainedSchema() {
  auto mode = spec("mode", SY_CFG_STRING, R"("fast")");
  mode.enum_values = {"fast", "safe"};
  auto port = spec("port", SY_CFG_INT, "5672");
  port.min = 1;
  port.max = 65535;
  auto ratio = spec("ratio", SY_CFG_FLOAT, std::nullopt);
  ratio.min = 0;
  auto cap = spec("cap", SY_CFG_INT, std::nullopt);
  cap.max = 10;
  auto kinds = spec("kinds", SY_CFG_STRING_LIST, R"(["a"])");
  kinds.enum_values = {"a", "b"};
  auto pass = spec("pass", SY_CFG_STRING, std::nullopt);
  pass.enum_values = {"open", "sesame"};
  pass.secret = true;
  return {mode, port, ratio, cap, kinds, pass};
}

struct Checked {
  sy::ConfigModel model;
  std::vector<Diagnostic> diags;
};

Checked check(const std::string &yaml, std::vector<KeySpec> schema = constrainedSchema()) {
  sy::PluginRegistry reg;
  sy::PluginDescriptor d;
  d.kind = SY_KIND_SOURCE;
  d.name = "c-src";
  d.version = "1";
  reg.addInProcess(std::move(d), std::move(schema), [](const sy::CreateArgs &) { return nullptr; });
  sy::PluginDescriptor s;
  s.kind = SY_KIND_SINK;
  s.name = "c-sink";
  s.version = "1";
  reg.addInProcess(std::move(s), {}, [](const sy::CreateArgs &) { return nullptr; });
  Checked c;
  sy::ConfigParser parser;
  c.model = parser.parse(yaml, "t.yaml", c.diags);
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

bool has(const std::vector<Diagnostic> &d, int line, int col, const std::string &path, const std::string &text) {
  int n = 0;
  for (const auto &x : d) {
    n += x.line == line && x.column == col && x.path == path && x.message.find(text) != std::string::npos;
  }
  return n == 1;
}

#define CHECK_DIAG(diags, line, col, path, text) CHECK_MESSAGE(has(diags, line, col, path, text), dump(diags))

std::string doc(const std::string &input) {
  return "version: 1\npipelines:\n  p:\n    input:\n      type: c-src\n" + input +
         "    outputs: [{type: c-sink}]\n";
}

}  // namespace

TEST_CASE("schema constraints: values that keep to them pass, defaults are applied") {
  auto c = check(doc("      mode: safe\n      port: 65535\n      ratio: 0\n      cap: -3\n"
                     "      kinds: [a, b]\n      pass: sesame\n"));
  REQUIRE_MESSAGE(c.diags.empty(), dump(c.diags));
  const auto &json = c.model.pipelines.at(0).input.config_json;
  CHECK(json.find(R"("mode":"safe")") != std::string::npos);
  auto d = check(doc(""));
  REQUIRE_MESSAGE(d.diags.empty(), dump(d.diags));
  CHECK(d.model.pipelines.at(0).input.config_json.find(R"("port":5672)") != std::string::npos);
}

TEST_CASE("schema constraints: each breach at its value's line and column") {
  auto c = check(doc("      mode: fats\n"        // 6
                     "      port: 0\n"           // 7
                     "      ratio: -0.5\n"       // 8
                     "      cap: 11\n"           // 9
                     "      kinds: [a, c, b]\n"  // 10
                     "      pass: guess-7f3a\n"  // 11
                     ));
  CHECK(c.diags.size() == 6);
  CHECK_DIAG(c.diags, 6, 13, "pipelines.p.input.mode",
             "expected one of 'fast', 'safe', got 'fats' (did you mean 'fast'?)");
  CHECK_DIAG(c.diags, 7, 13, "pipelines.p.input.port", "must be between 1 and 65535, got 0");
  CHECK_DIAG(c.diags, 8, 14, "pipelines.p.input.ratio", "must be at least 0, got -0.5");
  CHECK_DIAG(c.diags, 9, 12, "pipelines.p.input.cap", "must be at most 10, got 11");
  CHECK_DIAG(c.diags, 10, 18, "pipelines.p.input.kinds[1]", "expected one of 'a', 'b', got 'c'");
  CHECK_DIAG(c.diags, 11, 13, "pipelines.p.input.pass", "expected one of 'open', 'sesame', got another value");
  CHECK(dump(c.diags).find("7f3a") == std::string::npos);  // a secret is never quoted
}

TEST_CASE("schema constraints: a single scalar given for a string list is checked too") {
  auto c = check(doc("      kinds: z\n"));
  CHECK_DIAG(c.diags, 6, 14, "pipelines.p.input.kinds", "expected one of 'a', 'b', got 'z'");
}

TEST_CASE("schema constraints: a schema whose constraints make no sense names the plugin") {
  auto enum_on_int = spec("n", SY_CFG_INT, std::nullopt);
  enum_on_int.enum_values = {"x"};
  auto c = check(doc(""), {enum_on_int});
  CHECK_DIAG(c.diags, 5, 13, "pipelines.p.input.type", "plugin 'c-src' has a bad schema: key 'n' declares allowed values");

  auto bounds_on_string = spec("s", SY_CFG_STRING, std::nullopt);
  bounds_on_string.min = 1;
  CHECK_DIAG(check(doc(""), {bounds_on_string}).diags, 5, 13, "pipelines.p.input.type", "declares bounds");

  auto crossed = spec("n", SY_CFG_INT, std::nullopt);
  crossed.min = 5;
  crossed.max = 1;
  CHECK_DIAG(check(doc(""), {crossed}).diags, 5, 13, "pipelines.p.input.type", "declares min 5 above max 1");

  auto bad_default = spec("m", SY_CFG_STRING, R"("slow")");
  bad_default.enum_values = {"fast", "safe"};
  CHECK_DIAG(check(doc(""), {bad_default}).diags, 5, 13, "pipelines.p.input.type",
             "has a default (\"slow\") that is not one of 'fast', 'safe'");
}

// --- The SDK side --------------------------------------------------------------------------

namespace {
constexpr sy_config_key kBuilt[] = {
    sy::sdk::key("mode", SY_CFG_STRING, "\"a\"", "Mode.").oneOf("a|b"),
    sy::sdk::key("n", SY_CFG_INT, nullptr, "N.").required().range(1, 9),
    sy::sdk::key("t", SY_CFG_STRING, "\"\"", "Token.").secret(),
    sy::sdk::kEndOfSchema,
};
}  // namespace

TEST_CASE("sdk::key builds schema entries in a constant expression") {
  static_assert(kBuilt[0].enum_values != nullptr);
  CHECK(std::string(kBuilt[0].enum_values) == "a|b");
  CHECK(kBuilt[1].required == 1);
  CHECK(kBuilt[1].bounds == (SY_BOUND_MIN | SY_BOUND_MAX));
  CHECK(kBuilt[1].min == 1);
  CHECK(kBuilt[1].max == 9);
  CHECK(kBuilt[2].secret == 1);
  CHECK(kBuilt[3].name == nullptr);
  CHECK(sy::sdk::enumValues("x|y|z") == std::vector<std::string>{"x", "y", "z"});
  CHECK(sy::sdk::enumValues(nullptr).empty());
}

TEST_CASE("sdk::Config getters: defaults, enums, ranges, seconds") {
  sy::sdk::Config c(R"({"mode":"b","n":7,"r":0.5,"wait":1.5,"neg":-1})", nullptr, "t");
  CHECK(c.str("missing", "dflt") == "dflt");
  CHECK(c.str("mode", "dflt") == "b");
  CHECK(c.integer("missing", 42) == 42);
  CHECK(c.number("missing", 2.5) == 2.5);
  CHECK(c.boolean("missing", true));
  CHECK(c.integer("n", 1, 9) == 7);
  CHECK_THROWS_WITH_AS((void)c.integer("n", 1, 5), "'n' must be between 1 and 5, got 7", sy::sdk::ConfigError);
  CHECK(c.number("r", 0, 1) == 0.5);
  CHECK(c.oneOf("mode", {"a", "b"}) == "b");
  CHECK_THROWS_WITH_AS((void)c.oneOf("mode", {"a", "c"}), "'mode' must be one of a, c, got 'b'",
                       sy::sdk::ConfigError);
  enum class M { A, B };
  CHECK(c.oneOf<M>("mode", {{"a", M::A}, {"b", M::B}}) == M::B);
  CHECK(c.seconds("wait") == std::chrono::milliseconds(1500));
  CHECK_THROWS_AS((void)c.seconds("neg"), sy::sdk::ConfigError);
}

namespace {
class CountingContext final : public sy::PluginContext {
 public:
  sy::Logger &log() noexcept override { std::abort(); }
  sy::Counter &counter(std::string_view name, std::string_view label = {}) noexcept override {
    names.push_back(std::string(name) + "/" + std::string(label));
    return counters[names.size() - 1];
  }
  sy::Gauge &gauge(std::string_view) noexcept override { return g; }
  void countDrop(std::string_view) noexcept override {}
  [[nodiscard]] std::string_view pipeline() const noexcept override { return "p"; }
  [[nodiscard]] std::string_view instance() const noexcept override { return "i"; }
  [[nodiscard]] bool stopping() const noexcept override { return false; }
  std::vector<std::string> names;
  sy::Counter counters[4];
  sy::Gauge g;
};
constexpr sy::sdk::CounterSpec kCounters[] = {{"passed", "Passed."}, {"dropped", "Dropped.", "too_old"}};
}  // namespace

TEST_CASE("sdk::Counters: declared beside the schema, looked up once, cached") {
  sy::sdk::Counters counters(kCounters);
  counters[0].add();  // before attach(): counts locally, never crashes
  CountingContext ctx;
  counters.attach(ctx);
  CHECK(ctx.names == std::vector<std::string>{"passed/", "dropped/too_old"});
  counters[0].add(2);
  counters[1].add();
  CHECK(ctx.counters[0].value() == 2);
  CHECK(ctx.counters[1].value() == 1);
  REQUIRE(counters.find("dropped") != nullptr);
  CHECK(counters.find("dropped")->value() == 1);
  CHECK(counters.find("nope") == nullptr);
}
