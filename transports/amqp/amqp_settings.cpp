// SPDX-License-Identifier: MIT
//
// The common keys of both plugins (Settings), failure names and the reconnect pace.
#include <algorithm>
#include <fstream>
#include <vector>

#include "amqp_common.hpp"

namespace switchyard::amqp {

std::string redactUrl(std::string_view url) {
  auto scheme = url.find("://");
  std::size_t start = scheme == std::string_view::npos ? 0 : scheme + 3;
  auto at = url.find('@', start);
  if (at == std::string_view::npos) {
    return std::string(url);
  }
  auto colon = url.find(':', start);
  if (colon == std::string_view::npos || colon > at) {
    return std::string(url);
  }
  return std::string(url.substr(0, colon + 1)) + "***" + std::string(url.substr(at));
}

Settings Settings::fromConfig(const sdk::Config &c) {
  Settings s;
  std::string url = c.str("url");
  s.redacted_url = redactUrl(url);
  amqp_connection_info info{};
  std::vector<char> buf(url.begin(), url.end());
  buf.push_back('\0');
  if (amqp_parse_url(buf.data(), &info) != AMQP_STATUS_OK) {
    throw sdk::ConfigError("url", "'url' is not a valid amqp:// or amqps:// URL: " + s.redacted_url);
  }
  s.host = info.host;
  s.port = info.port;
  s.user = info.user;
  s.password = info.password;
  s.vhost = info.vhost;
  // "amqp://host/" has an empty path; like pika, take it as the default vhost "/".
  if (s.vhost.empty()) {
    s.vhost = "/";
  }
  s.tls = info.ssl != 0;
  if (c.has("password_file")) {
    std::ifstream in(c.str("password_file"));
    if (!in) {
      throw sdk::ConfigError("password_file", "cannot read password_file '" + c.str("password_file") + "'");
    }
    std::getline(in, s.password);
    if (!s.password.empty() && s.password.back() == '\r') {
      s.password.pop_back();
    }
  }
  if (c.has("tls")) {
    const auto &t = c.value("tls");
    if (!t.IsObject()) {
      throw sdk::ConfigError("tls", "'tls' must be a mapping {ca_file, cert_file, key_file}");
    }
    for (const auto &m : t.GetObject()) {
      std::string k(m.name.GetString(), m.name.GetStringLength());
      if (!m.value.IsString()) {
        throw sdk::ConfigError("tls", "tls." + k + " must be a string (a file path)");
      }
      std::string v(m.value.GetString(), m.value.GetStringLength());
      if (k == "ca_file") {
        s.ca_file = v;
      } else if (k == "cert_file") {
        s.cert_file = v;
      } else if (k == "key_file") {
        s.key_file = v;
      } else {
        throw sdk::ConfigError("tls", "unknown key tls." + k + "; allowed: ca_file, cert_file, key_file");
      }
    }
    if (s.cert_file.empty() != s.key_file.empty()) {
      throw sdk::ConfigError("tls", "tls.cert_file and tls.key_file must be given together");
    }
    for (const auto *f : {&s.ca_file, &s.cert_file, &s.key_file}) {
      if (!f->empty() && !std::ifstream(*f)) {
        throw sdk::ConfigError("tls", "cannot read '" + *f + "'");
      }
    }
    if (!s.tls && (!s.ca_file.empty() || !s.cert_file.empty())) {
      throw sdk::ConfigError("tls", "tls settings need an amqps:// url");
    }
  }
  std::string sasl = c.str("sasl");
  if (sasl == "external") {
    if (s.cert_file.empty()) {
      throw sdk::ConfigError("sasl", "sasl: external needs tls.cert_file and tls.key_file");
    }
    s.external = true;
  } else if (sasl == "auto") {
    s.external = !s.cert_file.empty();
  } else if (sasl != "plain") {
    throw sdk::ConfigError("sasl", "sasl must be plain, external or auto");
  }
  auto hb = c.integer("heartbeat");
  if (hb < 0 || hb > 65535) {
    throw sdk::ConfigError("heartbeat", "heartbeat must be between 0 and 65535 seconds");
  }
  s.heartbeat = static_cast<int>(hb);
  s.connect_timeout = c.number("connect_timeout");
  if (!(s.connect_timeout > 0)) {
    throw sdk::ConfigError("connect_timeout", "connect_timeout must be positive");
  }
  s.max_delay = c.number("reconnect_max_delay");
  if (!(s.max_delay > 0)) {
    throw sdk::ConfigError("reconnect_max_delay", "reconnect_max_delay must be positive");
  }
  s.app = c.str("app");
  return s;
}

sdk::BackoffPolicy reconnectPolicy(double max_s) noexcept {
  // 0.5 s, 1 s, 2 s, ... capped; each with +-25 % jitter so a fleet does not retry in step;
  // the first retry always comes within a second.
  sdk::BackoffPolicy p;
  p.initial_s = 0.5;
  p.max_s = std::max(max_s, 0.5);
  p.jitter = 0.25;
  p.first_max_s = 0.9;
  return p;
}

std::chrono::milliseconds nextDelay(Backoff &b) noexcept {
  auto cap = std::chrono::milliseconds(static_cast<std::int64_t>(b.policy().max_s * 1000));
  return std::min(b.next(), cap);
}

std::chrono::milliseconds retryDelay(PluginContext &ctx, Backoff &backoff, std::string_view url,
                                     const ConnectError &err) noexcept {
  auto d = nextDelay(backoff);
  if (err.permanent()) {
    ctx.counter("permanent_errors", failureName(err.kind)).add();
    ctx.log().error("cannot connect to {}: {}; this will not fix itself; retrying in {} ms", url, err.text(),
                    d.count());
  } else {
    ctx.log().warn("cannot connect to {}: {}; retrying in {} ms", url, err.text(), d.count());
  }
  return d;
}

const char *failureName(Failure f) noexcept {
  switch (f) {
    case Failure::Transient: return "transient";
    case Failure::Credentials: return "credentials";
    case Failure::Vhost: return "vhost";
    case Failure::Declaration: return "declaration";
    case Failure::Access: return "access";
    case Failure::Tls: return "tls";
  }
  return "unknown";
}

void classifyDeclare(const amqp_rpc_reply_t &r, const std::string &what, ConnectError &e) {
  int code = replyCode(r);
  if (code == 406) {
    e.kind = Failure::Declaration;
    e.fix = what + " already exists with other properties: make the configuration match it (arguments, durable, "
                   "auto_delete, exchange_type) or delete it on the broker so it can be declared again";
  } else if (code == 403) {
    e.kind = Failure::Access;
    e.fix = "grant the user the permission on " + what +
            " (rabbitmqctl set_permissions), or use passive: true / declare_exchange: false to only check it";
  }
}

}  // namespace switchyard::amqp
