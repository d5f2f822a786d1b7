// SPDX-License-Identifier: MIT
// The `switchyard` command line.
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "cli_check.hpp"
#include "cli_fedmsg.hpp"
#include "cli_import.hpp"
#include "cli_journal.hpp"
#include "cli_tail.hpp"
#include "cli_test.hpp"
#include "cli_tap.hpp"
#include "cli_top.hpp"
#include "http_endpoint.hpp"
#include "verify_missing/cli.hpp"
#ifdef SY_HAVE_STORE
#include "store/query_cli.hpp"  // `switchyard query` (transports/store)
#endif
#include "cli_common.hpp"
#include "cli_stats.hpp"
#include "cli_systemd.hpp"
#include "log.hpp"
#include "registry.hpp"
#include "switchyard/engine.hpp"

namespace sy = switchyard;

namespace {

using sy::cli::kExitConfig;
using sy::cli::kExitFailure;
using sy::cli::kExitOk;

using sy::cli::Common;
using sy::cli::engineOptions;

int cmdRun(const std::string &file, const Common &c, double stats_interval, const std::string &http) {
  sigset_t signals = sy::cli::blockStopSignals();
  sy::Engine engine(engineOptions(c));
  try {
    engine.loadFile(file);
  } catch (const sy::ConfigError &e) {
    sy::cli::printDiagnostics(e);
    return kExitConfig;
  }
  engine.setHttpListen(http);  // --http wins over settings.http.listen
  sy::logging::core()->info("starting {}", file);
  sy::cli::systemd::enable();  // only `run` notifies systemd
  sy::cli::StatsLog stats(engine);
  int rc = sy::cli::runEngine(engine, signals, stats_interval, [&stats] { stats.interval(); });
  stats.totals();  // always: every drop is accounted for at exit
  sy::logging::core()->info("stopped");
  return rc;
}

const char *typeName(std::uint32_t t) {
  switch (t) {
    case SY_CFG_STRING: return "string";
    case SY_CFG_INT: return "integer";
    case SY_CFG_FLOAT: return "number";
    case SY_CFG_BOOL: return "boolean";
    case SY_CFG_STRING_LIST: return "list of strings";
    case SY_CFG_MAP: return "mapping";
    case SY_CFG_LIST: return "list";
    case SY_CFG_ANY: return "any";
  }
  return "?";
}

int cmdPlugins(const std::string &name, const Common &c) {
  sy::PluginRegistry registry;
  try {
    registry.scan(sy::pluginSearchPath(c.plugin_paths, true, {}, true));
  } catch (const std::exception &e) {
    std::fprintf(stderr, "switchyard: %s\n", e.what());
    return kExitConfig;
  }
  for (const auto &r : registry.refusals()) {
    std::fprintf(stderr, "refused %s: %s\n", r.path.c_str(), r.reason.c_str());
  }
  if (name.empty()) {
    std::printf("%-7s %-16s %-9s %-5s %s\n", "KIND", "NAME", "VERSION", "ABI", "FILE");
    for (const auto *d : registry.all()) {
      std::printf("%-7s %-16s %-9s %u.%-3u %s\n", sy::kindName(d->kind), d->name.c_str(),
                  d->version.c_str(), d->abi_major, d->abi_minor, d->path.c_str());
    }
    if (registry.all().empty()) {
      std::string dirs;
      for (const auto &dir : registry.directories()) {
        dirs += (dirs.empty() ? "" : ":") + dir;
      }
      std::fprintf(stderr, "no plugins found in the search path %s\n", dirs.c_str());
    }
    return kExitOk;
  }
  const auto *d = registry.find(name);
  if (d == nullptr) {
    std::vector<std::string> names;
    for (const auto *p : registry.all()) {
      names.push_back(p->name);
    }
    std::string hint = sy::cli::closestMatch(name, names);
    std::fprintf(stderr, "switchyard: no plugin named '%s'%s\n", name.c_str(),
                 hint.empty() ? "" : fmt::format("; did you mean '{}'?", hint).c_str());
    // A file that looks like it was meant to be this plugin: say why it was refused.
    for (const auto &r : registry.refusals()) {
      if (r.path.ends_with("-" + name + ".so")) {
        std::fprintf(stderr, "  %s was refused: %s\n", r.path.c_str(), r.reason.c_str());
      }
    }
    return kExitConfig;
  }
  try {
    const auto &schema = registry.schema(name);
    std::printf("%s %s (%s, ABI %u.%u)%s%s\n  %s\n  file: %s\n\nconfiguration keys:\n",
                d->name.c_str(), d->version.c_str(), sy::kindName(d->kind), d->abi_major,
                d->abi_minor, d->canAck() ? ", acknowledges" : "", d->parallel() ? ", parallel" : "",
                d->description.c_str(), d->path.c_str());
    if (schema.empty()) {
      std::printf("  (none besides type)\n");
    }
    for (const auto &k : schema) {
      std::string req = k.required ? "required"
                                   : (k.default_json ? "default " + *k.default_json : "optional");
      std::printf("  %s (%s, %s)%s\n      %s\n", k.name.c_str(), typeName(k.type), req.c_str(),
                  k.secret ? " [secret]" : "", k.description.c_str());
      // The schema's constraints, checked by `switchyard check` (sy_config_key, abi.h).
      if (!k.enum_values.empty()) {
        std::string values;
        for (const auto &v : k.enum_values) {
          values += (values.empty() ? "'" : ", '") + v + "'";
        }
        std::printf("      allowed values: %s\n", values.c_str());
      }
      if (k.min || k.max) {
        std::string range = k.min && k.max ? fmt::format("{} to {}", *k.min, *k.max)
                            : k.min        ? fmt::format("at least {}", *k.min)
                                           : fmt::format("at most {}", *k.max);
        std::printf("      range: %s\n", range.c_str());
      }
    }
  } catch (const std::exception &e) {
    std::fprintf(stderr, "switchyard: %s\n", e.what());
    return kExitFailure;
  }
  return kExitOk;
}

}  // namespace

int main(int argc, char **argv) {
  CLI::App app{"Switchyard: a plugin-based message router (fedmsg/ZeroMQ <-> AMQP)", "switchyard"};
  app.set_version_flag("--version", std::string("switchyard ") + SWITCHYARD_VERSION);
  app.require_subcommand(1);
  Common common;
  sy::cli::addGlobalOptions(app, common);  // before the subcommands: they inherit fall-through

  std::string file;
  double stats_interval = 0;
  auto *run = app.add_subcommand("run", "Run the pipelines of a configuration file");
  run->add_option("file", file, "Configuration file (YAML)")->required();
  run->add_option("--stats-interval", stats_interval,
                  "Every N seconds, log the counters that changed, one line per plugin (0: only the totals, at exit)");
  std::string http_listen;
  run->add_option("--http", http_listen,
                  "Serve /metrics, /health/live, /health/ready and /pipelines on ADDR:PORT (a bare PORT: "
                  "127.0.0.1 only); overrides settings.http.listen")
      ->check(CLI::Validator(
          [](std::string &v) {
            sy::http::Listen where;
            auto why = sy::http::parseListen(v, where);
            return why ? *why : std::string();
          },
          "ADDR:PORT", "http-listen"));

  sy::cli::CheckOptions check_opts;
  auto *check = sy::cli::addCheckCommand(app, check_opts);

  std::string plugin_name;
  auto *plugins = app.add_subcommand("plugins", "List plugins, or show one plugin's configuration keys");
  plugins->add_option("name", plugin_name, "Plugin to describe");

  sy::cli::TailOptions tail_opts;
  auto *tail = sy::cli::addTailCommand(app, tail_opts);
  sy::cli::TailOptions record_opts;
  auto *record = sy::cli::addRecordCommand(app, record_opts);
  sy::cli::LoggerOptions logger_opts;
  auto *logger = sy::cli::addLoggerCommand(app, logger_opts);
  sy::cli::VerifyOptions verify_opts;
  auto *verify = sy::cli::addVerifyCommand(app, verify_opts);
  sy::cli::ImportOptions import_opts;
  auto *import_cmd = sy::cli::addImportCommand(app, import_opts);
  sy::cli::TestOptions test_opts;
  auto *test_cmd = sy::cli::addTestCommand(app, test_opts);
  sy::cli::TapOptions tap_opts;
  auto *tap = sy::cli::addTapCommand(app, tap_opts);
  sy::cli::TopOptions top_opts;
  auto *top = sy::cli::addTopCommand(app, top_opts);
  sy::cli::JournalOptions journal_opts;
  auto *journal = sy::cli::addJournalCommand(app, journal_opts);
#ifdef SY_HAVE_STORE
  sy::cli::QueryOptions query_opts;
  auto *query = sy::cli::addQueryCommand(app, query_opts);
#endif

  for (auto *sub : app.get_subcommands([](const CLI::App *) { return true; })) {
    sub->footer("Global options, before or after the command: --log-level LEVEL, --log-format text|json, "
                "--plugin-path DIR (repeatable). Exit status: 0 OK, 1 failure, 2 bad arguments or "
                "configuration, 3 permanent start error (docs/cli.md).");
  }
  app.footer("The options above go before or after the command. Each command has --help; docs/cli.md "
             "describes them all.");
  if (!sy::cli::checkSubcommandName(app, argc, argv)) {
    return kExitConfig;
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError &e) {
    return app.exit(e) == 0 ? kExitOk : kExitConfig;
  }
  if (!sy::cli::setupLogging(common)) {
    return kExitConfig;
  }
  try {
    if (*run) {
      return cmdRun(file, common, stats_interval, http_listen);
    }
    if (*check) {
      return sy::cli::runCheck(check_opts, engineOptions(common));
    }
    if (*plugins) {
      return cmdPlugins(plugin_name, common);
    }
    if (*tail) {
      return sy::cli::runTail(tail_opts, engineOptions(common));
    }
    if (*record) {
      return sy::cli::runTail(record_opts, engineOptions(common));
    }
    if (*logger) {
      return sy::cli::runLogger(logger_opts, engineOptions(common));
    }
    if (*verify) {
      return sy::cli::runVerify(verify_opts, engineOptions(common));
    }
#ifdef SY_HAVE_STORE
    if (*query) {
      return sy::cli::runQuery(query_opts);
    }
#endif
    if (*import_cmd) {
      return sy::cli::runImport(import_opts);
    }
    if (*test_cmd) {
      return sy::cli::runTest(test_opts, common);
    }
    if (*tap) {
      return sy::cli::runTap(tap_opts);
    }
    if (*top) {
      return sy::cli::runTop(top_opts);
    }
    if (*journal) {
      return sy::cli::runJournal(journal_opts);
    }
  } catch (const std::exception &e) {
    std::fprintf(stderr, "switchyard: %s\n", e.what());
    return kExitFailure;
  }
  return kExitFailure;
}
