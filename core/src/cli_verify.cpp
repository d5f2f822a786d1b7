// SPDX-License-Identifier: MIT
// `switchyard verify-missing`: builds the two-pipeline configuration of
// examples/pipelines/verify-missing.yaml from command-line options and runs it exactly as
// `switchyard run` would (same plugins, counters, drain).
#include "cli_verify.hpp"

#include <signal.h>

#include <chrono>
#include <cstdio>
#include <stdexcept>

#include <fmt/format.h>

#include "log.hpp"

namespace switchyard::cli {
namespace {

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitConfig = 2;
constexpr const char *kZmqPipeline = "verify-zmq";
constexpr const char *kAmqpPipeline = "verify-amqp";

/// A YAML double-quoted scalar. `$` is doubled because the configuration loader expands
/// `${VAR}` in values and command-line text must stay literal.
std::string quote(std::string_view s) {
  std::string out = "\"";
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += ch;
    } else if (c == '$') {
      out += "$$";
    } else if (c < 0x20 || c == 0x7F) {
      out += fmt::format("\\x{:02x}", c);
    } else {
      out += ch;
    }
  }
  out += '"';
  return out;
}

std::string list(const std::vector<std::string> &items) {
  std::string out = "[";
  for (std::size_t k = 0; k < items.size(); ++k) {
    out += (k > 0 ? ", " : "") + quote(items[k]);
  }
  return out + "]";
}

std::string num(double v) { return fmt::format("{}", v); }

/// The settings both verify-missing instances must share.
std::string sinkKeys(const VerifyOptions &o, const char *side) {
  std::string s = fmt::format("      - type: verify-missing\n        side: {}\n        group: verify-missing\n", side);
  s += "        window: " + num(o.window) + "\n";
  s += "        retain: " + num(o.retain) + "\n";
  s += "        startup_grace: " + num(o.startup_grace) + "\n";
  s += fmt::format("        max_entries: {}\n", o.max_entries);
  s += fmt::format("        log_matches: {}\n", o.log_matches ? "true" : "false");
  if (!o.report.empty()) {
    s += "        report: " + quote(o.report) + "\n";
  }
  return s;
}

void logSummary(const Engine &engine) {
  auto log = logging::core();
  auto z = [&](const char *name) { return engine.counter(kZmqPipeline, name); };
  auto a = [&](const char *name) { return engine.counter(kAmqpPipeline, name); };
  log->info(
      "verify-missing: matched={} only_via_zeromq={} only_via_amqp={} (of which during ZeroMQ loss: {}) "
      "duplicates zeromq={} amqp={} late zeromq={} amqp={} evicted={} unverifiable={} seen zeromq={} amqp={}",
      z("matched"), z("unmatched"), a("unmatched"), a("unmatched_zmq_loss"), z("duplicates"), a("duplicates"),
      z("late"), a("late"), z("evicted") + a("evicted"), z("unverifiable") + a("unverifiable"), z("seen"),
      a("seen"));
}

}  // namespace

CLI::App *addVerifyCommand(CLI::App &app, VerifyOptions &opts) {
  auto *cmd = app.add_subcommand(
      "verify-missing",
      "Report messages seen on only one bus (ZeroMQ or AMQP) within a window "
      "(replaces fedmsg-migration-tools verify_missing)");
  cmd->add_option("--zmq-endpoint", opts.zmq_endpoints, "ZeroMQ address to subscribe to (repeatable)")->required();
  cmd->add_option("--topic", opts.topics, "ZeroMQ topic prefix (repeatable; default: everything)");
  cmd->add_option("--amqp-url", opts.amqp_url, "amqp://user:password@host:port/vhost or amqps://...")
      ->envname("SWITCHYARD_AMQP_URL")
      ->required();
  cmd->add_option("--password-file", opts.password_file, "File whose first line is the AMQP password");
  cmd->add_option("--ca-file", opts.ca_file, "amqps: CA bundle that signed the broker's certificate");
  cmd->add_option("--cert-file", opts.cert_file, "amqps: client certificate (SASL EXTERNAL)");
  cmd->add_option("--key-file", opts.key_file, "amqps: client key");
  cmd->add_option("--queue", opts.queue, "Queue declared non-durable and auto-delete")->capture_default_str();
  cmd->add_option("--binding", opts.bindings,
                  "EXCHANGE:ROUTING_KEY bound to the queue (repeatable; default zmq.topic:# and amq.topic:#)");
  cmd->add_option("--queue-ttl", opts.queue_ttl_ms, "x-message-ttl of the queue, milliseconds (0: none)")
      ->capture_default_str();
  cmd->add_option("--window", opts.window, "Seconds a message may wait for its twin on the other bus")
      ->capture_default_str();
  cmd->add_option("--retain", opts.retain, "Seconds a settled id is remembered (duplicates, late arrivals)")
      ->capture_default_str();
  cmd->add_option("--startup-grace", opts.startup_grace,
                  "Seconds after start-up during which one-sided messages are not reported")
      ->capture_default_str();
  cmd->add_option("--max-entries", opts.max_entries, "Ids held in memory at most")->capture_default_str();
  cmd->add_option("--report", opts.report, "Append one JSON line per one-sided message to this file");
  cmd->add_option("--id-header", opts.id_header,
                  "AMQP header holding the full fedmsg msg_id (bridges in UUID mode; \"\": message_id only)")
      ->capture_default_str();
  cmd->add_flag("--log-matches", opts.log_matches, "Log every matched message at info level");
  cmd->add_option("--stats-interval", opts.stats_interval,
                  "Log the counters every N seconds (0: only at exit)")
      ->capture_default_str();
  cmd->add_flag("--print-config", opts.print_config, "Print the pipeline configuration and exit");
  return cmd;
}

std::string verifyConfig(const VerifyOptions &o) {
  std::string cfg = "# generated by switchyard verify-missing\nversion: 1\npipelines:\n";
  cfg += fmt::format("  {}:\n    input:\n      type: zmq-sub\n", kZmqPipeline);
  cfg += "      endpoints: " + list(o.zmq_endpoints) + "\n";
  if (!o.topics.empty()) {
    cfg += "      topics: " + list(o.topics) + "\n";
  }
  // verify_missing subscribed with an unlimited high-water mark: a checker must not be the
  // one that loses messages under a burst.
  cfg += "      hwm: 0\n";
  cfg += "    outputs:\n" + sinkKeys(o, "zmq");

  cfg += fmt::format("  {}:\n    input:\n      type: amqp-consume\n", kAmqpPipeline);
  cfg += "      url: " + quote(o.amqp_url) + "\n";
  if (!o.password_file.empty()) {
    cfg += "      password_file: " + quote(o.password_file) + "\n";
  }
  if (!o.ca_file.empty() || !o.cert_file.empty() || !o.key_file.empty()) {
    cfg += "      tls:\n";
    if (!o.ca_file.empty()) {
      cfg += "        ca_file: " + quote(o.ca_file) + "\n";
    }
    if (!o.cert_file.empty()) {
      cfg += "        cert_file: " + quote(o.cert_file) + "\n";
    }
    if (!o.key_file.empty()) {
      cfg += "        key_file: " + quote(o.key_file) + "\n";
    }
  }
  cfg += "      queue: " + quote(o.queue) + "\n";
  cfg += "      durable: false\n      auto_delete: true\n";
  if (o.queue_ttl_ms > 0) {
    cfg += fmt::format("      arguments: {{x-message-ttl: {}}}\n", o.queue_ttl_ms);
  }
  cfg += "      prefetch: 100\n      bindings:\n";
  for (const auto &b : o.bindings) {
    auto colon = b.find(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == b.size()) {
      throw std::invalid_argument(fmt::format("--binding '{}': expected EXCHANGE:ROUTING_KEY", b));
    }
    cfg += "        - {exchange: " + quote(b.substr(0, colon)) + ", routing_keys: [" + quote(b.substr(colon + 1)) +
           "]}\n";
  }
  cfg += "    outputs:\n" + sinkKeys(o, "amqp");
  cfg += "        id_header: " + quote(o.id_header) + "\n";
  return cfg;
}

int runVerify(const VerifyOptions &opts, const EngineOptions &engine_options) {
  std::string yaml;
  try {
    yaml = verifyConfig(opts);
  } catch (const std::invalid_argument &e) {
    std::fprintf(stderr, "switchyard verify-missing: %s\n", e.what());
    return kExitConfig;
  }
  if (opts.print_config) {
    std::fputs(yaml.c_str(), stdout);
    return kExitOk;
  }
  // Signals are taken synchronously by this thread: block them before any thread starts.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  Engine engine(engine_options);
  try {
    engine.loadString(yaml, "<verify-missing>");
  } catch (const ConfigError &e) {
    for (const auto &d : e.diagnostics()) {
      std::fprintf(stderr, "%s\n", d.str().c_str());
    }
    return kExitConfig;
  }
  auto log = logging::core();
  try {
    engine.start();
  } catch (const std::exception &e) {
    log->critical("start failed: {}", e.what());
    return kExitFailure;
  }
  log->info("verify-missing: listening on {} ZeroMQ endpoint(s) and AMQP queue '{}', window {} s", opts.zmq_endpoints.size(),
            opts.queue, opts.window);
  using Clock = std::chrono::steady_clock;
  const auto interval = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(opts.stats_interval));
  auto next_stats = Clock::now() + interval;
  bool stopping = false;
  while (!engine.wait(std::chrono::milliseconds(0))) {
    timespec ts{0, 100 * 1000 * 1000};
    int sig = sigtimedwait(&signals, nullptr, &ts);
    if (sig == SIGINT || sig == SIGTERM) {
      if (stopping) {
        log->warn("second signal: exiting without draining");
        std::_Exit(kExitFailure);
      }
      stopping = true;
      engine.requestStop();
    }
    if (opts.stats_interval > 0 && Clock::now() >= next_stats) {
      logSummary(engine);
      next_stats += interval;
    }
  }
  bool ok = engine.stop();
  logSummary(engine);
  return ok ? kExitOk : kExitFailure;
}

}  // namespace switchyard::cli
