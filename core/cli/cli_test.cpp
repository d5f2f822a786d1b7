// SPDX-License-Identifier: MIT
// `switchyard test`: the command and the runner (see cli_test.hpp).
#include "cli_test.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <regex>

#include <fmt/format.h>

#include "cli_test_run.hpp"
#include "config.hpp"
#include "log.hpp"
#include "metric_names.hpp"
#include "registry.hpp"

namespace switchyard::cli {

CLI::App *addTestCommand(CLI::App &app, TestOptions &o) {
  auto *test = app.add_subcommand(
      "test",
      "Run pipeline unit tests: feed a pipeline given messages with its network inputs and outputs "
      "replaced by in-memory ones, and check what each output sends and what was dropped, and why");
  test->add_option("files", o.files, "Test files (YAML; docs/testing-pipelines.md)")->required();
  test->add_option("--timeout", o.timeout_s, "Seconds one test case may run")
      ->check(CLI::Range(0.1, 3600.0))
      ->capture_default_str();
  test->add_flag("--verbose", o.verbose, "Show the plugins' log lines (by default only errors)");
  return test;
}

namespace {

using namespace pipetest;

const char *plural(std::size_t n) { return n == 1 ? "" : "s"; }

void printDiags(const std::vector<Diagnostic> &diags) {
  // The stand-ins are plugins of the test's engine only: not worth naming in "known plugins".
  static const std::regex kStandIn("(, )?test-stand-in:[a-z-]+");
  static const std::regex kNoneLeft("known (source|sink) plugins: *$");
  for (const auto &d : diags) {
    std::string line = std::regex_replace(d.str(), kStandIn, "");
    line = std::regex_replace(line, std::regex("plugins: , "), "plugins: ");
    line = std::regex_replace(line, kNoneLeft, "no $1 plugins were found (see --plugin-path)");
    std::fprintf(stderr, "%s\n", line.c_str());
  }
  std::fprintf(stderr, "%zu error%s\n", diags.size(), plural(diags.size()));
}

/// Sets the test file's environment for the pipeline's ${VAR}s and puts the old one back.
class ScopedEnv {
 public:
  explicit ScopedEnv(const std::vector<std::pair<std::string, std::string>> &vars) {
    for (const auto &[k, v] : vars) {
      const char *old = std::getenv(k.c_str());
      saved_.emplace_back(k, old != nullptr ? std::optional<std::string>(old) : std::nullopt);
      ::setenv(k.c_str(), v.c_str(), 1);
    }
  }
  ~ScopedEnv() {
    for (auto it = saved_.rbegin(); it != saved_.rend(); ++it) {
      if (it->second) {
        ::setenv(it->first.c_str(), it->second->c_str(), 1);
      } else {
        ::unsetenv(it->first.c_str());
      }
    }
  }
  ScopedEnv(const ScopedEnv &) = delete;
  ScopedEnv &operator=(const ScopedEnv &) = delete;

 private:
  std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
};

/// A case checked against the pipeline file and made ready to run.
struct Planned {
  const TestCase *c = nullptr;
  const PipelineSpec *pipeline = nullptr;
  std::vector<RawInput> inputs;
  std::map<std::size_t, const ExpectedOutput *> expected;  ///< outputs[i] -> what the case expects
};

class Runner {
 public:
  Runner(const TestOptions &o, const Common &common) : o_(o), common_(common), tools_(searchPath(common)) {}

  /// Runs one test file; false when it (or its pipeline file) has errors.
  bool file(const std::string &path) {
    std::vector<Diagnostic> diags;
    TestFile f;
    if (!loadTestFile(path, f, diags)) {
      printDiags(diags);
      return false;
    }
    ScopedEnv env(f.environment);
    // The whole configuration, checked as `run` would (its problems are the file's problems).
    {
      Engine engine(options());
      installStandIns(engine, std::make_shared<CaseIO>());
      try {
        engine.loadFile(f.pipeline_file);
      } catch (const ConfigError &e) {
        std::fprintf(stderr, "%s:%d:%d: pipeline_file: the pipeline configuration %s has errors:\n", f.path.c_str(),
                     f.pipeline_file_mark.line, f.pipeline_file_mark.column, f.pipeline_file.c_str());
        printDiags(e.diagnostics());
        return false;
      }
    }
    ConfigModel model = parseConfigFile(f.pipeline_file, diags);
    std::vector<Planned> plans;
    for (const auto &c : f.cases) {
      Planned p;
      if (plan(f, c, model, p, diags)) {
        plans.push_back(std::move(p));
      }
    }
    if (!diags.empty()) {
      printDiags(diags);
      return false;
    }
    for (const auto &p : plans) {
      std::vector<std::string> diffs;
      run(f, p, diffs);
      if (diffs.empty()) {
        ++passed_;
        std::printf("ok      %s: %s\n", f.path.c_str(), p.c->name.c_str());
      } else {
        ++failed_;
        std::printf("FAILED  %s: %s\n", f.path.c_str(), p.c->name.c_str());
        for (const auto &d : diffs) {
          std::printf("          %s\n", d.c_str());
        }
      }
      std::fflush(stdout);
    }
    return true;
  }

  [[nodiscard]] std::size_t passed() const { return passed_; }
  [[nodiscard]] std::size_t failed() const { return failed_; }

 private:
  static std::vector<std::string> searchPath(const Common &c) {
    return pluginSearchPath(c.plugin_paths, true, {}, true);
  }
  EngineOptions options() const {
    EngineOptions eo = engineOptions(common_);
    eo.log_config_warnings = false;
    return eo;
  }

  bool plan(const TestFile &f, const TestCase &c, const ConfigModel &model, Planned &p,
            std::vector<Diagnostic> &diags) {
    p.c = &c;
    auto add = [&](Mark m, const std::string &path, std::string message) {
      diags.push_back({f.path, m.line, m.column, path, std::move(message)});
    };
    std::string names;
    for (const auto &pl : model.pipelines) {
      names += (names.empty() ? "" : ", ") + pl.name;
      if (pl.name == c.pipeline || (c.pipeline.empty() && model.pipelines.size() == 1)) {
        p.pipeline = &pl;
      }
    }
    if (p.pipeline == nullptr) {
      add(c.pipeline_mark, c.path + ".pipeline",
          c.pipeline.empty() ? fmt::format("{} has {} pipelines ({}): name the one under test", f.pipeline_file,
                                           model.pipelines.size(), names)
                             : fmt::format("{} has no pipeline '{}' (it has: {})", f.pipeline_file, c.pipeline, names));
      return false;
    }
    const PipelineSpec &pl = *p.pipeline;
    bool ok = true;
    if (!c.input.empty() && !hasInputStandIn(pl.input.type)) {
      add(c.pipeline_mark, c.path + ".input",
          fmt::format("pipelines.{}.input is {}, which has no in-memory stand-in: switchyard test feeds zmq-sub, "
                      "amqp-consume and stdin inputs",
                      pl.name, pl.input.type));
      return false;
    }
    for (const auto &in : c.input) {
      RawInput raw;
      if (prepareInput(f, in, pl.input.type, tools_, raw, diags)) {
        p.inputs.push_back(std::move(raw));
      } else {
        ok = false;
      }
    }
    for (const auto &out : c.outputs) {
      std::optional<std::size_t> index;
      std::string types;
      for (std::size_t i = 0; i < pl.outputs.size(); ++i) {
        types += fmt::format("{}outputs[{}] ({})", types.empty() ? "" : ", ", i, pl.outputs[i].type);
        if (out.selector == fmt::format("outputs[{}]", i) || out.selector == pl.outputs[i].type) {
          if (index && out.selector == pl.outputs[i].type) {
            add(out.mark, out.path,
                fmt::format("pipeline '{}' has several {} outputs: write outputs[N]", pl.name, out.selector));
            ok = false;
          }
          index = i;
        }
      }
      if (!index) {
        add(out.mark, out.path,
            fmt::format("pipeline '{}' has no output '{}' (it has: {})", pl.name, out.selector, types));
        ok = false;
        continue;
      }
      if (!hasOutputStandIn(pl.outputs[*index].type)) {
        add(out.mark, out.path,
            fmt::format("outputs[{}] is {}, which has no in-memory stand-in: only what zmq-pub, amqp-publish and "
                        "stdout outputs send can be checked (check its counters instead)",
                        *index, pl.outputs[*index].type));
        ok = false;
        continue;
      }
      if (p.expected.count(*index) != 0) {
        add(out.mark, out.path, fmt::format("outputs[{}] is expected twice", *index));
        ok = false;
      }
      p.expected[*index] = &out;
    }
    return ok;
  }

  void run(const TestFile &f, const Planned &p, std::vector<std::string> &diffs) {
    const PipelineSpec &pl = *p.pipeline;
    auto io = std::make_shared<CaseIO>();
    io->inputs[pl.name] = p.inputs;
    Engine engine(options());
    installStandIns(engine, io);
    try {
      engine.loadFile(f.pipeline_file);
      engine.start();
    } catch (const std::exception &e) {
      diffs.push_back(fmt::format("the pipeline did not start: {}", e.what()));
      return;
    }
    auto timeout = std::chrono::milliseconds(std::llround(o_.timeout_s * 1000));
    if (!engine.wait(timeout)) {
      diffs.push_back(fmt::format("the pipelines did not finish within {} s ({} message(s) still in flight); "
                                  "see --timeout",
                                  o_.timeout_s, engine.counter(pl.name, "in_flight")));
    }
    bool clean = engine.stop();
    if (!clean || engine.failed()) {
      diffs.push_back("a pipeline failed (run with --verbose for the plugins' log lines)");
    }
    compareOutputs(f, p, *io, diffs);
    compareCounters(p, engine.counters(), diffs);
  }

  void compareOutputs(const TestFile &f, const Planned &p, CaseIO &io, std::vector<std::string> &diffs) {
    const PipelineSpec &pl = *p.pipeline;
    std::lock_guard lock(io.mu);
    for (std::size_t i = 0; i < pl.outputs.size(); ++i) {
      if (!hasOutputStandIn(pl.outputs[i].type)) {
        continue;
      }
      std::string where = fmt::format("outputs[{}] ({})", i, pl.outputs[i].type);
      std::vector<Capture> &got = io.outputs[pl.name][i].sent;
      // zmq-pub holds an envelope back until every lower signer `i` went out: that order.
      if (!got.empty() && std::all_of(got.begin(), got.end(), [](const Capture &c) { return c.signer_seq != 0; })) {
        std::stable_sort(got.begin(), got.end(),
                         [](const Capture &a, const Capture &b) { return a.signer_seq < b.signer_seq; });
      }
      static const std::vector<ExpectedMessage> kNone;
      auto e = p.expected.find(i);
      const std::vector<ExpectedMessage> &want = e != p.expected.end() ? e->second->messages : kNone;
      if (got.size() != want.size()) {
        diffs.push_back(fmt::format("{}: expected {} message{}, got {}", where, want.size(), plural(want.size()),
                                    got.size()));
      }
      for (std::size_t k = 0; k < got.size() || k < want.size(); ++k) {
        std::string at = fmt::format("{} message {}", where, k + 1);
        if (k >= got.size()) {
          diffs.push_back(fmt::format("{}: missing (expected at {}:{})", at, want[k].mark.line, want[k].mark.column));
        } else if (k >= want.size()) {
          const json::Value *topic = got[k].view.find("topic");
          diffs.push_back(fmt::format("{}: not expected (topic {})", at, topic != nullptr ? render(*topic) : "?"));
        } else {
          matchMessage(f, want[k], got[k], at, tools_, diffs);
        }
      }
    }
  }

  static void compareCounters(const Planned &p, const std::vector<CounterSample> &samples,
                              std::vector<std::string> &diffs) {
    const std::string &pipeline = p.pipeline->name;
    auto sum = [&](const CounterCheck &c, bool &exists) {
      std::int64_t total = 0;
      exists = false;
      for (const auto &s : samples) {
        if (s.pipeline != pipeline || s.name != c.name) {
          continue;
        }
        if (!c.place.empty() && !(s.plugin == c.place || s.plugin.starts_with(c.place + " ("))) {
          continue;
        }
        exists = true;  // the name is known there (a label may not have been counted yet)
        if (c.label.empty() || s.label == c.label) {
          total += s.value;
        }
      }
      return total;
    };
    // "it has: sent, failed{reason=x}" for a counter that is not there at all (a typo?).
    auto known = [&](const std::string &place) {
      std::vector<std::string> names;
      for (const auto &s : samples) {
        if (s.pipeline == pipeline && !s.gauge && (place.empty() || s.plugin.starts_with(place + " ("))) {
          const std::string &n = s.name;
          if (std::find(names.begin(), names.end(), n) == names.end()) {
            names.push_back(n);
          }
        }
      }
      std::string out;
      for (const auto &n : names) {
        out += (out.empty() ? "" : ", ") + n;
      }
      return out;
    };
    auto show = [](const std::string &name, const std::string &label) {
      return label.empty() ? name : fmt::format("{}{{{}={}}}", name, labelName(name), label);
    };
    for (const auto *list : {&p.c->drops, &p.c->counters}) {
      for (const auto &c : *list) {
        bool exists = false;
        std::int64_t got = sum(c, exists);
        // Drop counters are made at the first drop; any other name that is nowhere is a typo.
        if (got != c.count && !exists && list == &p.c->counters) {
          diffs.push_back(fmt::format("{}: expected {}, got 0 (no such counter{}; there are: {})", c.text, c.count,
                                      c.place.empty() ? "" : " at " + c.place, known(c.place)));
        } else if (got != c.count) {
          diffs.push_back(fmt::format("{}: expected {}, got {}", c.text, c.count, got));
        }
      }
    }
    // Every drop must be expected: what did not reach an output, and why.
    std::map<std::pair<std::string, std::string>, std::int64_t> drops;
    for (const auto &s : samples) {
      if (s.pipeline == pipeline && !s.gauge && s.value != 0 && isDropCounter(s.name)) {
        drops[{s.name, s.label}] += s.value;
      }
    }
    for (const auto &[key, value] : drops) {
      bool listed = false;
      for (const auto &c : p.c->drops) {
        listed = listed || (c.name == key.first && (c.label.empty() || c.label == key.second));
      }
      if (!listed) {
        diffs.push_back(fmt::format("unexpected {}: {} (not listed under drops)", show(key.first, key.second), value));
      }
    }
  }

  const TestOptions &o_;
  const Common &common_;
  PluginTools tools_;
  std::size_t passed_ = 0;
  std::size_t failed_ = 0;
};

}  // namespace

int runTest(const TestOptions &o, const Common &common) {
  LogLevel level = LogLevel::Error;
  if (o.verbose && !logging::parseLevel(common.log_level, level)) {
    level = LogLevel::Info;
  }
  logging::setup(level, common.log_format == "json" ? logging::Format::Json : logging::Format::Text);
  Runner runner(o, common);
  std::size_t bad = 0;
  for (const auto &file : o.files) {
    if (!runner.file(file)) {
      ++bad;
    }
  }
  std::string summary = fmt::format("{} passed, {} failed", runner.passed(), runner.failed());
  if (bad > 0) {
    summary += fmt::format(", {} test file{} with errors", bad, plural(bad));
  }
  std::printf("%s\n", summary.c_str());
  if (bad > 0) {
    return kExitConfig;
  }
  return runner.failed() > 0 ? kExitFailure : kExitOk;
}

}  // namespace switchyard::cli
