// SPDX-License-Identifier: MIT
//
// Fuzz target "config": the YAML configuration loader and validator, through the core's
// configuration API (ConfigParser phase 1: YAML, duplicate keys, ${VAR} interpolation, the
// document's shape; phase 2: every plugin entry against its schema) with in-process
// plugins of every key type. The input is the file's text; FUZZ_HOST, FUZZ_PORT,
// FUZZ_EMPTY and FUZZ_LIST are set for ${VAR} (FUZZ_UNSET is not).
// Properties: nothing but diagnostics comes out of bad text (no crash, no exception, no
// hang: the limits on size, nodes, aliases and depth hold); every diagnostic names the
// file and says something, at a line and column inside the text (for UTF-8 text: yaml-cpp
// reads other bytes as UTF-16 or UTF-32); a configuration without
// errors has a JSON object as each plugin's configuration.
#include <algorithm>
#include <cstdlib>
#include <string>
#include <vector>

#include "config.hpp"
#include "fuzz_check.hpp"
#include "registry.hpp"
#include "switchyard/fedmsg.hpp"
#include "switchyard/json.hpp"

namespace sy = switchyard;

namespace {

std::vector<sy::KeySpec> sourceSchema() {
  return {
      {"address", SY_CFG_STRING, true, std::nullopt, "where to connect", false, {}, {}, {}},
      {"port", SY_CFG_INT, false, "5672", "port", false, {}, 1, 65535},
      {"ratio", SY_CFG_FLOAT, false, std::nullopt, "a number", false, {}, 0, 1},
      {"verbose", SY_CFG_BOOL, false, "false", "a boolean", false, {}, {}, {}},
      {"topics", SY_CFG_STRING_LIST, false, R"(["a.b"])", "topics", false, {}, {}, {}},
      {"options", SY_CFG_MAP, false, std::nullopt, "a mapping", false, {}, {}, {}},
      {"items", SY_CFG_LIST, false, std::nullopt, "a list", false, {}, {}, {}},
      {"extra", SY_CFG_ANY, false, std::nullopt, "anything", false, {}, {}, {}},
      {"password", SY_CFG_STRING, false, std::nullopt, "a secret", true, {}, {}, {}},
      {"mode", SY_CFG_STRING, false, R"("keep")", "a choice", false, {"keep", "uuid"}, {}, {}},
  };
}

sy::PluginRegistry &registry() {
  static sy::PluginRegistry *reg = [] {
    setenv("FUZZ_HOST", "tcp://localhost:9940", 1);
    setenv("FUZZ_PORT", "5672", 1);
    setenv("FUZZ_EMPTY", "", 1);
    setenv("FUZZ_LIST", "[a, b]", 1);
    unsetenv("FUZZ_UNSET");
    auto *r = new sy::PluginRegistry;
    auto add = [r](const char *name, sy_plugin_kind kind, std::vector<sy::KeySpec> schema) {
      sy::PluginDescriptor d;
      d.kind = kind;
      d.name = name;
      d.version = "1";
      r->addInProcess(std::move(d), std::move(schema), [](const sy::CreateArgs &) { return nullptr; });
    };
    add("src", SY_KIND_SOURCE, sourceSchema());
    add("sink", SY_KIND_SINK,
        {{"path", SY_CFG_STRING, false, R"("-")", "file", false, {}, {}, {}},
         {"count", SY_CFG_INT, false, std::nullopt, "how many", false, {}, {}, {}}});
    add("filter", SY_KIND_FILTER, {{"prefix", SY_CFG_STRING, false, R"("")", "prepended", false, {}, {}, {}}});
    return r;
  }();
  return *reg;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
  const std::string_view text = syfuzz::bytes(data, size);
  sy::PluginRegistry &reg = registry();
  std::vector<sy::Diagnostic> diags;
  sy::ConfigParser parser;
  sy::ConfigModel model = parser.parse(text, "fuzz.yaml", diags);
  if (model.checkable) {
    parser.validatePlugins(model, reg, diags);
  }
  const long lines = std::count(text.begin(), text.end(), '\n') + 2;
  const bool utf8 = switchyard::fedmsg::isValidUtf8(text) && text.find('\0') == std::string_view::npos;
  bool errors = false;
  for (const auto &d : diags) {
    FUZZ_CHECK(d.file == "fuzz.yaml");
    FUZZ_CHECK(!d.message.empty());
    // Positions inside the text for UTF-8 text without NUL bytes; yaml-cpp marks an error at
    // the end of the text up to two columns past its last byte (corpus/config/
    // yaml-error-mark-past-end). Other bytes make yaml-cpp guess UTF-16 or UTF-32 and count
    // in that encoding's characters (corpus/config/yaml-utf16-guess-marks).
    FUZZ_CHECK(d.line >= 0 && d.column >= 0);
    if (utf8) {
      FUZZ_CHECK(d.line <= lines);
      FUZZ_CHECK(static_cast<std::size_t>(d.column) <= size + 2);
    }
    FUZZ_CHECK(!d.str().empty());
    errors = errors || !d.warning;
  }
  if (!errors) {
    FUZZ_CHECK(model.checkable);
    for (const auto &p : model.pipelines) {
      std::vector<const sy::PluginSpec *> specs{&p.input};
      for (const auto &f : p.filters) specs.push_back(&f);
      for (const auto &o : p.outputs) specs.push_back(&o);
      for (const auto *s : specs) {
        auto v = switchyard::json::parse(s->config_json);
        FUZZ_CHECK(v.has_value() && v->isObject());
      }
    }
  }
  return 0;
}
