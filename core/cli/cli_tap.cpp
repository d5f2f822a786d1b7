// SPDX-License-Identifier: MIT
// `switchyard tap` (see cli_tap.hpp), a client of GET /tap (core/src/runtime_tap_route.cpp).
#include "cli_tap.hpp"

#include <cstdio>
#include <string_view>

#include <fmt/format.h>
#include <httplib.h>

#include "cli_common.hpp"
#include "switchyard/json.hpp"

namespace switchyard::cli {

namespace {

/// "http://HOST:PORT" from what the user typed: a URL, "HOST:PORT", or ":PORT" / "PORT"
/// (then 127.0.0.1). Empty when it is none of them (@p why says so).
std::string baseUrl(std::string url, std::string &why) {
  while (!url.empty() && url.back() == '/') {
    url.pop_back();
  }
  if (url.starts_with("https://")) {
    why = "https is not served: the operations endpoint speaks plain HTTP (keep it on loopback or behind a proxy)";
    return {};
  }
  if (url.starts_with("http://")) {
    url = url.substr(7);
  }
  if (url.find('/') != std::string::npos) {
    why = "give the endpoint's address only (http://HOST:PORT), without a path";
    return {};
  }
  if (url.find_first_not_of("0123456789") == std::string::npos && !url.empty()) {
    url = "127.0.0.1:" + url;
  } else if (url.starts_with(":")) {
    url = "127.0.0.1" + url;
  }
  if (url.empty() || url.rfind(':') == std::string::npos || url.rfind(':') + 1 == url.size()) {
    why = "expected http://HOST:PORT (or HOST:PORT, or a port for 127.0.0.1)";
    return {};
  }
  return "http://" + url;
}

/// The `error` member of a JSON error body, or the body itself.
std::string errorText(const std::string &body) {
  if (auto v = json::parse(body)) {
    if (auto e = v->findString("error")) {
      return std::string(*e);
    }
  }
  std::string_view t = body;
  while (!t.empty() && (t.back() == '\n' || t.back() == '\r')) {
    t.remove_suffix(1);
  }
  return std::string(t);
}

}  // namespace

CLI::App *addTapCommand(CLI::App &app, TapOptions &opts) {
  auto *cmd = app.add_subcommand(
      "tap", "Print a live sample of the messages passing a running instance (its HTTP endpoint, settings.http.tap)");
  cmd->add_option("url", opts.url, "The instance's HTTP endpoint: http://HOST:PORT, HOST:PORT or a local port")
      ->required();
  cmd->add_option("pipeline", opts.pipeline, "Only this pipeline's messages (default: every pipeline)");
  cmd->add_option("--limit", opts.limit, "Stop after this many messages")->check(CLI::Range(1ULL, 100000ULL));
  cmd->add_option("--seconds", opts.seconds, "Stop after this many seconds")->check(CLI::Range(0.001, 3600.0));
  cmd->add_option("--body-bytes", opts.body_bytes, "Show at most this many bytes of each body (longer ones are cut)")
      ->check(CLI::Range(0ULL, 1048576ULL));
  cmd->footer(
      "Each message is one JSON line on standard output (time, pipeline, topic, id, headers, body, body_bytes, "
      "truncated); how the tap ended, and how many messages were skipped because this reader fell behind, goes to "
      "standard error. Exit status: 0 when the tap ran, 1 when the endpoint cannot be reached or refused it.");
  return cmd;
}

int runTap(const TapOptions &opts) {
  std::string why;
  std::string base = baseUrl(opts.url, why);
  if (base.empty()) {
    std::fprintf(stderr, "switchyard tap: '%s': %s\n", opts.url.c_str(), why.c_str());
    return kExitConfig;
  }
  httplib::Client client(base);
  client.set_connection_timeout(5, 0);
  // The server sends a blank line after 5 s without a message: a read that waits far
  // longer means the instance is gone.
  client.set_read_timeout(30, 0);
  httplib::Params params{{"limit", std::to_string(opts.limit)},
                         {"seconds", fmt::format("{}", opts.seconds)},
                         {"body_bytes", std::to_string(opts.body_bytes)}};
  if (!opts.pipeline.empty()) {
    params.emplace("pipeline", opts.pipeline);
  }
  int status = 0;
  std::string pending;   // a line not complete yet
  std::string error_body;
  std::string end_line;  // {"end": ...}
  std::uint64_t printed = 0;
  auto on_response = [&](const httplib::Response &r) {
    status = r.status;
    return true;
  };
  auto on_data = [&](const char *data, size_t len) {
    if (status != 200) {
      error_body.append(data, len);
      return error_body.size() < 65536;
    }
    pending.append(data, len);
    std::size_t start = 0;
    for (std::size_t nl = pending.find('\n'); nl != std::string::npos; nl = pending.find('\n', start)) {
      std::string_view line(pending.data() + start, nl - start);
      start = nl + 1;
      if (line.empty()) {
        continue;  // keep-alive
      }
      if (line.starts_with("{\"end\":")) {
        end_line = line;
        continue;
      }
      std::fwrite(line.data(), 1, line.size(), stdout);
      std::fputc('\n', stdout);
      ++printed;
    }
    std::fflush(stdout);
    pending.erase(0, start);
    return true;
  };
  auto res = client.Get("/tap", params, httplib::Headers{}, on_response, on_data);
  if (!res) {
    std::fprintf(stderr, "switchyard tap: cannot read %s/tap: %s\n", base.c_str(),
                 httplib::to_string(res.error()).c_str());
    return kExitFailure;
  }
  if (status != 200) {
    std::fprintf(stderr, "switchyard tap: %s/tap answered %d: %s\n", base.c_str(), status,
                 errorText(error_body).c_str());
    return kExitFailure;
  }
  if (auto v = json::parse(end_line); v && v->find("end") != nullptr) {
    const json::Value &e = *v->find("end");
    const json::Value *skipped = e.find("skipped");
    std::string reason(e.findString("reason").value_or("?"));
    std::fprintf(stderr, "switchyard tap: %llu message(s), %s skipped (this reader fell behind); ended: %s\n",
                 static_cast<unsigned long long>(printed),
                 skipped != nullptr && skipped->type == json::Value::Type::Integer ? skipped->text.c_str() : "0",
                 reason.c_str());
  } else {
    std::fprintf(stderr, "switchyard tap: %llu message(s); the stream ended early (the instance stopped?)\n",
                 static_cast<unsigned long long>(printed));
  }
  return kExitOk;
}

}  // namespace switchyard::cli
