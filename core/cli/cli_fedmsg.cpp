// SPDX-License-Identifier: MIT
// `switchyard logger`: builds a one-pipeline configuration and runs it, exactly as
// `switchyard run` would (same plugins, same counters, same drain).
#include "cli_fedmsg.hpp"

#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <atomic>
#include <memory>
#include <optional>
#include <stdexcept>

#include <fmt/format.h>

#include "cli_common.hpp"
#include "log.hpp"
#include "switchyard/fedmsg.hpp"

namespace switchyard::cli {
namespace {

constexpr const char *kLoggerInput = "logger-input";

/// The envelope username fedmsg uses: getpass.getuser() (LOGNAME, USER, ... then the
/// password database).
std::string processUser() {
  for (const char *var : {"LOGNAME", "USER", "LNAME", "USERNAME"}) {
    if (const char *v = std::getenv(var); v != nullptr && *v != '\0') {
      return v;
    }
  }
  if (const passwd *pw = ::getpwuid(::geteuid()); pw != nullptr && pw->pw_name != nullptr) {
    return pw->pw_name;
  }
  return "unknown";
}

/// A JSON object or array: what --message publishes as the payload itself.
bool looksLikeJsonDocument(std::string_view text) {
  auto first = text.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos || (text[first] != '{' && text[first] != '[')) {
    return false;
  }
  return fedmsg::validateJson(text).ok();
}

/// Turns input lines into fedmsg payloads the way fedmsg-logger does: {"log": LINE}, or
/// the line itself when it is JSON (--json-input). One message for --message, which is
/// taken as JSON when it is a JSON object or array (unless --plain).
class LoggerSource final : public Source {
 public:
  LoggerSource(LoggerOptions opts, std::shared_ptr<std::atomic<bool>> ended)
      : opts_(std::move(opts)), ended_(std::move(ended)) {}

  Status start(SourceContext &) noexcept override { return Status::ok(); }

  Status poll(SourceContext &ctx, std::chrono::milliseconds timeout) noexcept override {
    if (done_) {
      return ended();
    }
    if (opts_.has_message) {
      handleLine(ctx, opts_.message);
      done_ = true;
      return ended();
    }
    pollfd p{0, POLLIN, 0};
    int n = ::poll(&p, 1, static_cast<int>(timeout.count()));
    if (n <= 0) {
      return Status::ok();
    }
    char chunk[65536];
    ssize_t got = ::read(0, chunk, sizeof chunk);
    if (got < 0) {
      return errno == EINTR || errno == EAGAIN ? Status::ok()
                                               : Status::fatal(fmt::format("read: {}", std::strerror(errno)));
    }
    if (got == 0) {
      if (!buf_.empty()) {
        handleLine(ctx, buf_);
      }
      done_ = true;
      return ended();
    }
    buf_.append(chunk, static_cast<std::size_t>(got));
    std::size_t start = 0;
    for (auto nl = buf_.find('\n'); nl != std::string::npos; nl = buf_.find('\n', start)) {
      handleLine(ctx, std::string_view(buf_).substr(start, nl - start));
      start = nl + 1;
    }
    buf_.erase(0, start);
    return Status::ok();
  }

  void stopIntake(SourceContext &) noexcept override { done_ = true; }

 private:
  Status ended() noexcept {
    ended_->store(true);
    return Status::endOfStream();
  }

  void handleLine(SourceContext &ctx, std::string_view line) noexcept {
    try {
      if (!line.empty() && line.back() == '\r') {
        line.remove_suffix(1);
      }
      if (line.empty() && !opts_.has_message) {
        return;
      }
      Message m;
      m.setTopic(opts_.topic);
      if (opts_.json_input || (opts_.has_message && !opts_.plain && looksLikeJsonDocument(line))) {
        auto r = fedmsg::validateJson(line);
        if (!r.ok()) {
          ctx.countDrop(r.reason);
          ctx.log().warn("input line {}: {}; skipped", line_no_ + 1, r.detail);
          ++line_no_;
          return;
        }
        m.setBody(std::string(line));
      } else {
        if (!fedmsg::isValidUtf8(line)) {
          ctx.countDrop("invalid_utf8");
          ctx.log().warn("input line {}: not valid UTF-8; skipped", line_no_ + 1);
          ++line_no_;
          return;
        }
        std::string body = "{\"log\":";
        fedmsg::appendAsciiJsonString(body, line);
        body += '}';
        m.setBody(std::move(body));
      }
      ++line_no_;
      (void)ctx.submit(std::move(m), line_no_);
    } catch (const std::exception &e) {
      ctx.countDrop("internal_error");
      ctx.log().error("{}", e.what());
    }
  }

  LoggerOptions opts_;
  std::shared_ptr<std::atomic<bool>> ended_;
  bool done_ = false;
  std::string buf_;
  std::uint64_t line_no_ = 0;
};

int loadOrReport(Engine &engine, const std::string &yaml, const char *name) {
  try {
    engine.loadString(yaml, name);
  } catch (const ConfigError &e) {
    printDiagnostics(e);
    return kExitConfig;
  }
  return kExitOk;
}

}  // namespace

CLI::App *addLoggerCommand(CLI::App &app, LoggerOptions &opts) {
  auto *cmd = app.add_subcommand(
      "logger", "Publish standard input lines (or --message) to ZeroMQ (like fedmsg-logger) or AMQP (like "
      "fedora-messaging publish), signed with --cert/--key");
  cmd->add_option("--endpoint", opts.endpoint, "ZeroMQ address; connected to unless --bind");
  cmd->add_option("--topic", opts.topic, "Fully qualified topic of every message (AMQP: the routing key)")
      ->required();
  cmd->add_option("--message", opts.message,
                  "Publish this one message instead of reading stdin; a JSON object or array is the "
                  "payload itself, anything else becomes {\"log\": MESSAGE}")
      ->each([&opts](const std::string &) { opts.has_message = true; });
  cmd->add_flag("--json-input", opts.json_input,
                "Input is JSON: publish each line (or --message) as the payload; invalid JSON is refused");
  cmd->add_flag("--plain", opts.plain, "Always publish --message as {\"log\": MESSAGE}, even when it is JSON");
  cmd->add_option("--cert", opts.cert_file,
                  "Sign every message with this certificate (PEM) through the signer plugin (needs --key)");
  cmd->add_option("--key", opts.key_file, "Private RSA key of --cert (PEM, mode 0600)");
  cmd->add_option("--amqp", opts.amqp_url,
                  "Publish to AMQP instead of ZeroMQ (like fedora-messaging publish): amqp://user:password@host/vhost");
  cmd->add_option("--password-file", opts.password_file,
                  "--amqp: file whose first line is the password (keeps it off the command line)");
  cmd->add_option("--exchange", opts.exchange, "--amqp: exchange to publish to")->capture_default_str();
  cmd->add_flag("--bind", opts.bind, "Bind the endpoint instead of connecting (subscribers connect to us)");
  cmd->add_option("--username", opts.username, "Envelope username (default: the process user)");
  cmd->add_option("--wait", opts.wait_for_subscriber,
                  "Seconds to wait for a subscriber before the first message")
      ->capture_default_str();
  cmd->add_option("--timeout", opts.timeout,
                  "Seconds the messages may take to be published after the input ended; then exit 1")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--linger", opts.linger_ms, "Milliseconds queued messages may take to leave at exit")
      ->capture_default_str();
  return cmd;
}

std::string loggerConfig(const LoggerOptions &opts) {
  bool amqp = !opts.amqp_url.empty();
  if (amqp == !opts.endpoint.empty()) {
    throw std::invalid_argument(amqp ? "give either --endpoint (ZeroMQ) or --amqp URL, not both"
                                     : "no destination: give --endpoint tcp://HOST:PORT (ZeroMQ) or --amqp URL");
  }
  if (opts.cert_file.empty() != opts.key_file.empty()) {
    throw std::invalid_argument("signing needs both --cert and --key");
  }
  if (!amqp && !opts.password_file.empty()) {
    throw std::invalid_argument("--password-file applies to --amqp");
  }
  if (amqp && opts.bind) {
    throw std::invalid_argument("--bind applies to ZeroMQ (--endpoint), not to --amqp");
  }
  std::string cfg = fmt::format("version: 1\npipelines:\n  logger:\n    input:\n      type: {}\n", kLoggerInput);
  if (!opts.cert_file.empty()) {
    // The signer builds the envelope (msg_id, timestamp, i, username) and signs it.
    cfg += "    filters:\n      - type: signer\n";
    cfg += "        cert_file: " + yamlQuote(opts.cert_file) + "\n";
    cfg += "        key_file: " + yamlQuote(opts.key_file) + "\n";
    cfg += "        username: " + yamlQuote(opts.username.empty() ? processUser() : opts.username) + "\n";
  }
  if (amqp) {
    cfg += "    outputs:\n      - type: amqp-publish\n";
    cfg += "        url: " + yamlQuote(opts.amqp_url) + "\n";
    cfg += "        exchange: " + yamlQuote(opts.exchange) + "\n";
    if (!opts.password_file.empty()) {
      cfg += "        password_file: " + yamlQuote(opts.password_file) + "\n";
    }
    // A signed envelope crosses in headers, so `tail --amqp --validate` (restore_envelope)
    // can check it; fedora-messaging consumers ignore those headers.
    cfg += fmt::format("        carry_envelope: {}\n", opts.cert_file.empty() ? "false" : "true");
    return cfg;
  }
  cfg += "    outputs:\n      - type: zmq-pub\n";
  cfg += "        endpoints: " + yamlList({opts.endpoint}) + "\n";
  cfg += fmt::format("        bind: {}\n", opts.bind ? "true" : "false");
  // A short-lived publisher must not lose its lines: wait for a subscriber, block
  // instead of dropping at the high-water mark, and give queued messages time to leave.
  cfg += "        no_drop: true\n";
  cfg += fmt::format("        wait_for_subscriber: {}\n", opts.wait_for_subscriber);
  cfg += fmt::format("        linger: {}\n", opts.linger_ms);
  if (!opts.username.empty()) {
    cfg += "        username: " + yamlQuote(opts.username) + "\n";
  }
  return cfg;
}

int runLogger(const LoggerOptions &opts, const EngineOptions &engine_options) {
  if (opts.wait_for_subscriber < 0) {
    std::fprintf(stderr, "switchyard logger: --wait must not be negative\n");
    return kExitConfig;
  }
  std::string yaml;
  try {
    yaml = loggerConfig(opts);
  } catch (const std::invalid_argument &e) {
    std::fprintf(stderr, "switchyard logger: %s\n", e.what());
    return kExitConfig;
  }
  sigset_t signals = blockStopSignals();
  Engine engine(engine_options);
  auto ended = std::make_shared<std::atomic<bool>>(false);
  engine.registerSource(kLoggerInput, {}, [opts, ended](const sdk::Config &) {
    return std::make_unique<LoggerSource>(opts, ended);
  });
  if (int rc = loadOrReport(engine, yaml, "<logger>"); rc != kExitOk) {
    return rc;
  }
  // Once the input ended, the messages get --timeout seconds to be published (a broker
  // that is down, a subscriber that never reads): then stop, and count what is left.
  using Clock = std::chrono::steady_clock;
  std::optional<Clock::time_point> ended_at;
  bool gave_up = false;
  auto watchdog = [&] {
    if (!ended->load() || gave_up) {
      return;
    }
    if (!ended_at) {
      ended_at = Clock::now();
    } else if (Clock::now() - *ended_at > std::chrono::duration<double>(opts.timeout)) {
      gave_up = true;
      logging::core()->error("messages not published within --timeout {} s after the input ended: giving up",
                             opts.timeout);
      engine.requestStop();
    }
  };
  int rc = runEngine(engine, signals, 0.2, watchdog);
  std::int64_t dropped = engine.counter("logger", "dropped");
  std::int64_t failed = engine.counter("logger", "failed");
  if (rc == kExitOk && (dropped > 0 || failed > 0)) {
    logging::core()->error("{} message(s) not published ({} dropped, {} failed)", dropped + failed,
                           dropped, failed);
    return kExitFailure;
  }
  return rc;
}

}  // namespace switchyard::cli
