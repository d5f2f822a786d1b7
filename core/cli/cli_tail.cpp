// SPDX-License-Identifier: MIT
// `switchyard tail` and `switchyard record`: see cli_tail.hpp for the pipelines.
#include "cli_tail.hpp"

#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <regex>
#include <stdexcept>
#include <unordered_map>

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include "cli_common.hpp"
#include "cli_format.hpp"
#include "log.hpp"

namespace switchyard::cli {
namespace {

constexpr const char *kPipeline = "tail";
constexpr const char *kVerdictPipeline = "tail-verdicts";

/// --include / --exclude: ECMAScript regular expressions searched anywhere in the topic
/// (fedmsg-tail's re.search); a topic must match one --include (when any) and no --exclude.
class SelectFilter final : public Filter {
 public:
  SelectFilter(std::vector<std::regex> inc, std::vector<std::regex> exc)
      : include_(std::move(inc)), exclude_(std::move(exc)) {}
  Verdict process(FilterContext &, Message &msg) noexcept override {
    try {
      bool in = include_.empty();
      for (const auto &re : include_) {
        if (std::regex_search(msg.topic(), re)) {
          in = true;
          break;
        }
      }
      if (!in) {
        return Verdict::drop("not_included");
      }
      for (const auto &re : exclude_) {
        if (std::regex_search(msg.topic(), re)) {
          return Verdict::drop("excluded");
        }
      }
    } catch (const std::exception &) {
      return Verdict::drop("regex_error");  // std::regex may throw on pathological input
    }
    return Verdict::pass();
  }

 private:
  std::vector<std::regex> include_, exclude_;
};

/// Shared between the sink that prints or hands over and the code that runs the engine.
struct Shared {
  std::unique_ptr<Printer> printer;
  std::function<void()> stop;  ///< engine.requestStop()
  // The handoff to the verdict pipeline (--validate).
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Message> queue;
  bool closed = false;

  void afterPrint() {
    if (printer->full() || !printer->healthy()) {
      stop();
    }
  }
};

class PrintSink final : public Sink {
 public:
  explicit PrintSink(std::shared_ptr<Shared> s) : s_(std::move(s)) {}
  Status start(SinkContext &) noexcept override { return Status::ok(); }
  void send(SinkContext &ctx, Message &&msg, DeliveryId id) noexcept override {
    try {
      bool shown = s_->printer->print(msg, nullptr);
      ctx.done(id, shown ? Outcome::Delivered : Outcome::Dropped, shown ? "" : "limit_reached");
      s_->afterPrint();
    } catch (const std::exception &e) {
      ctx.done(id, Outcome::Dropped, "internal_error");
    }
  }

 private:
  std::shared_ptr<Shared> s_;
};

class HandoffSink final : public Sink {
 public:
  explicit HandoffSink(std::shared_ptr<Shared> s) : s_(std::move(s)) {}
  Status start(SinkContext &) noexcept override { return Status::ok(); }
  void send(SinkContext &ctx, Message &&msg, DeliveryId id) noexcept override {
    try {
      std::lock_guard lock(s_->mu);
      s_->queue.push_back(std::move(msg));
    } catch (const std::exception &) {
      ctx.done(id, Outcome::Dropped, "internal_error");
      return;
    }
    s_->cv.notify_one();
    ctx.done(id, Outcome::Delivered);
  }
  Status flush(SinkContext &, std::chrono::milliseconds) noexcept override {
    close();
    return Status::ok();
  }
  void stop() noexcept override { close(); }

 private:
  void close() noexcept {
    {
      std::lock_guard lock(s_->mu);
      s_->closed = true;
    }
    s_->cv.notify_all();
  }
  std::shared_ptr<Shared> s_;
};

/// Feeds the verdict pipeline and prints each message once the verifier is done with it,
/// in the order received, valid or not.
class VerdictSource final : public Source {
 public:
  VerdictSource(std::shared_ptr<Shared> s, bool valid_only) : s_(std::move(s)), valid_only_(valid_only) {}
  Status start(SourceContext &ctx) noexcept override {
    ctx.wantFiltered(true);
    return Status::ok();
  }
  Status poll(SourceContext &ctx, std::chrono::milliseconds timeout) noexcept override {
    std::deque<Message> batch;
    bool closed = false;
    {
      std::unique_lock lock(s_->mu);
      s_->cv.wait_for(lock, timeout, [this] { return !s_->queue.empty() || s_->closed; });
      batch.swap(s_->queue);
      closed = s_->closed;
    }
    submitAll(ctx, batch);
    if (closed && batch.empty() && pending_.empty()) {
      return Status::endOfStream();
    }
    return Status::ok();
  }
  void stopIntake(SourceContext &ctx) noexcept override {
    std::deque<Message> batch;
    {
      std::lock_guard lock(s_->mu);
      batch.swap(s_->queue);
    }
    submitAll(ctx, batch);
  }
  void filtered(std::uint64_t tag, bool passed, std::string_view, std::string_view reason) noexcept override {
    auto it = pending_.find(tag);
    if (it == pending_.end()) {
      return;
    }
    try {
      SignatureVerdict v{passed ? "valid" : "invalid", passed ? std::string() : std::string(reason)};
      if (passed || !valid_only_) {
        s_->printer->print(it->second, &v);
        s_->afterPrint();
      }
    } catch (const std::exception &) {
    }
    pending_.erase(it);
  }

 private:
  void submitAll(SourceContext &ctx, std::deque<Message> &batch) noexcept {
    try {
      for (auto &m : batch) {
        std::uint64_t tag = ++next_tag_;
        pending_.emplace(tag, m);
        if (ctx.submit(std::move(m), tag) != SourceContext::SubmitResult::Accepted) {
          pending_.erase(tag);
        }
      }
    } catch (const std::exception &) {
    }
    batch.clear();
  }
  std::shared_ptr<Shared> s_;
  bool valid_only_;
  std::uint64_t next_tag_ = 0;
  std::unordered_map<std::uint64_t, Message> pending_;
};

class DiscardSink final : public Sink {
 public:
  Status start(SinkContext &) noexcept override { return Status::ok(); }
  void send(SinkContext &ctx, Message &&, DeliveryId id) noexcept override { ctx.done(id, Outcome::Delivered); }
};

std::vector<std::regex> compile(const std::vector<std::string> &patterns, const char *option) {
  std::vector<std::regex> out;
  for (const auto &p : patterns) {
    try {
      out.emplace_back(p, std::regex::ECMAScript | std::regex::optimize);
    } catch (const std::regex_error &e) {
      throw std::invalid_argument(fmt::format("{} '{}': not a valid regular expression ({})", option, p, e.what()));
    }
  }
  return out;
}

/// routing_policy and nitpicky from a YAML file (a verifier fragment such as the one
/// `switchyard import-fedmsg-config` writes), as YAML flow text for the verifier entry.
std::string policyKeys(const TailOptions &o) {
  if (o.policy_file.empty()) {
    return fmt::format("        nitpicky: {}\n", o.nitpicky ? "true" : "false");
  }
  YAML::Node doc;
  try {
    doc = YAML::LoadFile(o.policy_file);
  } catch (const YAML::Exception &e) {
    throw std::invalid_argument(fmt::format("--policy {}: {}", o.policy_file, e.what()));
  }
  auto bad = [&](const std::string &what) {
    return std::invalid_argument(fmt::format("--policy {}: {} (expected a mapping with routing_policy: "
                                             "{{TOPIC: [COMMON_NAME, ...]}} and optionally nitpicky: true|false)",
                                             o.policy_file, what));
  };
  if (!doc.IsMap()) {
    throw bad("not a YAML mapping");
  }
  if (!doc["routing_policy"] && doc["verifier"] && doc["verifier"].IsMap()) {
    doc = doc["verifier"];  // the whole output of import-fedmsg-config
  }
  bool nitpicky = o.nitpicky;
  for (const char *key : {"nitpicky", "routing_nitpicky"}) {
    if (doc[key]) {
      try {
        nitpicky = doc[key].as<bool>() || o.nitpicky;
      } catch (const YAML::Exception &) {
        throw bad(fmt::format("{} is not true or false", key));
      }
    }
  }
  std::string out = fmt::format("        nitpicky: {}\n        routing_policy:\n", nitpicky ? "true" : "false");
  auto policy = doc["routing_policy"];
  if (policy && !policy.IsNull() && !policy.IsMap()) {
    throw bad("routing_policy is not a mapping");
  }
  std::size_t topics = 0;
  if (policy && policy.IsMap()) {
    for (const auto &kv : policy) {
      std::vector<std::string> names;
      if (kv.second.IsSequence()) {
        for (const auto &n : kv.second) {
          names.push_back(n.as<std::string>());
        }
      } else if (kv.second.IsScalar()) {
        names.push_back(kv.second.as<std::string>());
      } else {
        throw bad(fmt::format("routing_policy['{}'] is not a list of names", kv.first.as<std::string>()));
      }
      out += "          " + yamlQuote(kv.first.as<std::string>()) + ": " + yamlList(names) + "\n";
      ++topics;
    }
  }
  if (topics == 0) {
    out.resize(out.size() - std::string("        routing_policy:\n").size());
  }
  return out;
}

void addSourceOptions(CLI::App *cmd, TailOptions &opts) {
  cmd->add_option("--topic", opts.topics, "ZeroMQ topic prefix to subscribe to (repeatable; default: all)")
      ->allow_extra_args(false)
      ->take_all();
  opts.bind_option = cmd->add_option("--bind", opts.bind_values,
                  "ZeroMQ: bind the endpoints instead of connecting (--bind alone, or --bind ENDPOINT); "
                  "AMQP: --bind EXCHANGE=ROUTING_KEY binds the private queue (repeatable; default amq.topic=#)")
      ->expected(0, 1)
      ->allow_extra_args(false)
      ->take_all();
  cmd->add_option("--amqp", opts.amqp_url,
                  "Consume from AMQP instead of ZeroMQ: amqp://user:password@host:port/vhost or amqps://");
  cmd->add_option("--password-file", opts.password_file,
                  "AMQP: file whose first line is the password (keeps it off the command line)");
  cmd->add_option("--queue", opts.queue,
                  "AMQP queue name (default: a server-named exclusive auto-delete queue, gone when tail exits)");
  cmd->add_option("--include", opts.include,
                  "Show only topics matching this regular expression (ECMAScript, searched anywhere in "
                  "the topic; repeatable: any may match)")
      ->allow_extra_args(false)
      ->take_all();
  cmd->add_option("--exclude", opts.exclude,
                  "Hide topics matching this regular expression (repeatable)")
      ->allow_extra_args(false)
      ->take_all();
  cmd->add_option("--limit", opts.limit, "Exit after this many messages (0: never)")->check(CLI::NonNegativeNumber);
  cmd->add_flag("--validate", opts.validate,
                "Check each signature with the verifier plugin and show the verdict (needs --ca)");
  cmd->add_option("--ca", opts.ca_file, "--validate: CA certificate (PEM), fedmsg's ca_cert_location");
  cmd->add_option("--crl", opts.crl_file, "--validate: CRL (PEM), fedmsg's crl_location");
  cmd->add_option("--policy", opts.policy_file,
                  "--validate: YAML file with routing_policy (and nitpicky), e.g. the verifier fragment "
                  "of import-fedmsg-config");
  cmd->add_flag("--nitpicky", opts.nitpicky,
                "--validate: refuse topics the routing policy does not list (default: allow them, as "
                "fedmsg's routing_nitpicky: false)");
  cmd->add_flag("--valid-only", opts.valid_only,
                "--validate: show only messages whose signature is valid (fedmsg-tail's behaviour)");
}

bool isTty(std::FILE *f) { return ::isatty(::fileno(f)) == 1; }

}  // namespace

CLI::App *addTailCommand(CLI::App &app, TailOptions &opts) {
  auto *cmd = app.add_subcommand(
      "tail",
      "Show fedmsg messages from ZeroMQ endpoints (like fedmsg-tail) or AMQP (like fedora-messaging "
      "consume), with username, timestamp, i and signature verdict");
  cmd->add_option("endpoints", opts.endpoints, "ZeroMQ addresses, e.g. tcp://hub.fedoraproject.org:9940");
  addSourceOptions(cmd, opts);
  auto *fmt_group = cmd->add_option_group("format", "Output format (default: pretty on a terminal, else JSON lines)");
  fmt_group->add_flag("--json", opts.json, "One JSON object per line (what `record` writes)");
  fmt_group->add_flag("--pretty", opts.pretty, "Indented, coloured on a terminal");
  fmt_group->add_flag("--terse", opts.terse, "One line per message");
  fmt_group->require_option(0, 1);
  cmd->add_option("--color", opts.colour, "Colours for --pretty and --terse: auto (on a terminal, unless NO_COLOR is set), always or never")
      ->check(CLI::IsMember({"auto", "always", "never"}))
      ->capture_default_str();
  return cmd;
}

CLI::App *addRecordCommand(CLI::App &app, TailOptions &opts) {
  auto *cmd = app.add_subcommand(
      "record",
      "Write the messages of ZeroMQ endpoints or AMQP to FILE as JSON lines (like fedora-messaging record)");
  cmd->add_option("file", opts.record_file, "File to write (created or truncated)")->required();
  cmd->add_option("endpoints", opts.endpoints, "ZeroMQ addresses");
  addSourceOptions(cmd, opts);
  return cmd;
}

void resolveBind(TailOptions &o) {
  bool amqp = !o.amqp_url.empty();
  if (o.bind_option != nullptr && o.bind_option->count() > o.bind_values.size()) {
    o.bind = true;  // a bare --bind
  }
  for (const auto &v : o.bind_values) {
    if (v.empty()) {
      o.bind = true;  // a bare --bind
    } else if (v.find("://") != std::string::npos) {
      o.bind = true;  // --bind ENDPOINT: CLI11 took the endpoint as the option's value
      o.endpoints.insert(o.endpoints.begin(), v);
    } else {
      auto eq = v.find('=');
      if (eq == std::string::npos || eq == 0 || eq + 1 == v.size()) {
        throw std::invalid_argument(fmt::format(
            "--bind '{}': expected EXCHANGE=ROUTING_KEY (AMQP, e.g. amq.topic=org.fedoraproject.#) or a "
            "ZeroMQ endpoint (tcp://...)", v));
      }
      o.amqp_bindings.emplace_back(v.substr(0, eq), v.substr(eq + 1));
    }
  }
  if (amqp && (o.bind || !o.endpoints.empty() || !o.topics.empty())) {
    throw std::invalid_argument(
        "--amqp consumes from AMQP: ZeroMQ endpoints, --topic and a bare --bind do not apply (bind the "
        "queue with --bind EXCHANGE=ROUTING_KEY)");
  }
  if (!amqp && !o.amqp_bindings.empty()) {
    throw std::invalid_argument("--bind EXCHANGE=ROUTING_KEY needs --amqp URL");
  }
  if (!amqp && o.endpoints.empty()) {
    throw std::invalid_argument("no source: give ZeroMQ endpoints (tcp://HOST:PORT ...) or --amqp URL");
  }
  if (!amqp && (!o.queue.empty() || !o.password_file.empty())) {
    throw std::invalid_argument("--queue and --password-file need --amqp URL");
  }
  if (o.validate && o.ca_file.empty()) {
    throw std::invalid_argument("--validate needs --ca FILE (the CA certificate, fedmsg's ca_cert_location)");
  }
  if (!o.validate && (!o.ca_file.empty() || !o.crl_file.empty() || !o.policy_file.empty() || o.valid_only)) {
    throw std::invalid_argument("--ca, --crl, --policy and --valid-only only apply with --validate");
  }
}

std::string tailConfig(const TailOptions &o) {
  std::string cfg = fmt::format("version: 1\npipelines:\n  {}:\n    input:\n", kPipeline);
  if (o.amqp_url.empty()) {
    cfg += "      type: zmq-sub\n      endpoints: " + yamlList(o.endpoints) + "\n";
    cfg += fmt::format("      bind: {}\n", o.bind ? "true" : "false");
    if (!o.topics.empty()) {
      cfg += "      topics: " + yamlList(o.topics) + "\n";
    }
  } else {
    cfg += "      type: amqp-consume\n      url: " + yamlQuote(o.amqp_url) + "\n";
    if (!o.password_file.empty()) {
      cfg += "      password_file: " + yamlQuote(o.password_file) + "\n";
    }
    // A private queue, like fedora-messaging consume's default: server-named, exclusive,
    // deleted with the connection. Messages published with carry_envelope keep their
    // fedmsg envelope (username, i, signature).
    cfg += "      queue: " + yamlQuote(o.queue) + "\n      durable: false\n      auto_delete: true\n";
    cfg += "      prefetch: 100\n      restore_envelope: true\n      missing_message_id: generate\n";
    cfg += "      bindings:\n";
    auto bindings = o.amqp_bindings;
    if (bindings.empty()) {
      bindings.emplace_back("amq.topic", "#");
    }
    for (const auto &[exchange, key] : bindings) {
      cfg += "        - {exchange: " + yamlQuote(exchange) + ", routing_keys: [" + yamlQuote(key) + "]}\n";
    }
  }
  if (!o.include.empty() || !o.exclude.empty()) {
    cfg += "    filters:\n      - type: tail-select\n";
  }
  cfg += fmt::format("    outputs:\n      - type: {}\n", o.validate ? "tail-handoff" : "tail-print");
  if (o.validate) {
    cfg += fmt::format("  {}:\n    input: {{type: tail-verdicts}}\n    filters:\n", kVerdictPipeline);
    cfg += "      - type: verifier\n        ca_file: " + yamlQuote(o.ca_file) + "\n";
    if (!o.crl_file.empty()) {
      cfg += "        crl_file: " + yamlQuote(o.crl_file) + "\n";
    }
    cfg += policyKeys(o);
    cfg += "    outputs:\n      - type: tail-discard\n";
  }
  return cfg;
}

int runTail(TailOptions opts, const EngineOptions &engine_options) {
  const char *cmd = opts.record_file.empty() ? "tail" : "record";
  std::vector<std::regex> inc, exc;
  std::string yaml;
  try {
    resolveBind(opts);
    inc = compile(opts.include, "--include");
    exc = compile(opts.exclude, "--exclude");
    yaml = tailConfig(opts);
  } catch (const std::invalid_argument &e) {
    std::fprintf(stderr, "switchyard %s: %s\n", cmd, e.what());
    return kExitConfig;
  }
  std::FILE *out = stdout;
  std::unique_ptr<std::FILE, int (*)(std::FILE *)> file(nullptr, &std::fclose);
  if (!opts.record_file.empty()) {
    file.reset(std::fopen(opts.record_file.c_str(), "we"));
    if (!file) {
      std::fprintf(stderr, "switchyard record: cannot open '%s' for writing: %s\n", opts.record_file.c_str(),
                   std::strerror(errno));
      return kExitConfig;
    }
    out = file.get();
  }
  TailFormat format = opts.pretty ? TailFormat::Pretty
                      : opts.terse ? TailFormat::Terse
                      : opts.json || !opts.record_file.empty() || !isTty(out) ? TailFormat::Json
                                                                               : TailFormat::Pretty;
  bool colour = opts.colour == "always" ||
                (opts.colour == "auto" && isTty(out) && std::getenv("NO_COLOR") == nullptr);

  sigset_t signals = blockStopSignals();
  Engine engine(engine_options);
  auto shared = std::make_shared<Shared>();
  shared->printer = std::make_unique<Printer>(out, format, colour, opts.limit);
  shared->stop = [&engine] { engine.requestStop(); };
  engine.registerFilter("tail-select", {}, [inc, exc](const sdk::Config &) {
    return std::make_unique<SelectFilter>(inc, exc);
  });
  engine.registerSink("tail-print", {}, [shared](const sdk::Config &) { return std::make_unique<PrintSink>(shared); });
  engine.registerSink("tail-handoff", {}, [shared](const sdk::Config &) { return std::make_unique<HandoffSink>(shared); });
  engine.registerSource("tail-verdicts", {}, [shared, &opts](const sdk::Config &) {
    return std::make_unique<VerdictSource>(shared, opts.valid_only);
  });
  engine.registerSink("tail-discard", {}, [](const sdk::Config &) { return std::make_unique<DiscardSink>(); });
  try {
    engine.loadString(yaml, fmt::format("<{}>", cmd));
  } catch (const ConfigError &e) {
    printDiagnostics(e);
    return kExitConfig;
  }
  int rc = runEngine(engine, signals, 0, {}, [&] {
    std::string from = opts.amqp_url.empty() ? fmt::format("{} ZeroMQ endpoint(s)", opts.endpoints.size())
                                             : std::string("AMQP");
    logging::core()->info("{}: started, reading from {}{}{}", cmd, from,
                          opts.validate ? ", checking signatures" : "",
                          opts.record_file.empty() ? "" : ", writing to " + opts.record_file);
  });
  if (!opts.record_file.empty()) {
    logging::core()->info("{} message(s) written to {}", shared->printer->shown(), opts.record_file);
  }
  if (!shared->printer->healthy()) {
    logging::core()->error("writing the output failed: {}", std::strerror(errno));
    return kExitFailure;
  }
  return rc;
}

}  // namespace switchyard::cli
