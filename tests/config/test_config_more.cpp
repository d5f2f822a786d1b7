// SPDX-License-Identifier: MIT
// Unit tests of the configuration parser and validator, continued (test_config.cpp has
// the first half): ${VAR} interpolation, secrets, settings, retry, plugin_path, keys and
// tags, plugin-side errors, aliases, and the hardening limits.
#include "config_test_util.hpp"

using namespace cfgtest;  // NOLINT
namespace sy = switchyard;

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
