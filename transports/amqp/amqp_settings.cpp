// SPDX-License-Identifier: MIT
//
// The common keys of both plugins (Settings), failure names and the reconnect pace.
#include <algorithm>
#include <cerrno>
#include <cstring>
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

namespace {

/// One URL of `url` into @p n; problems recorded at @p key ("url", "url[1]").
bool readUrl(const sdk::Config &c, const std::string &key, const std::string &url, Node &n) {
  n.redacted_url = redactUrl(url);
  amqp_connection_info info{};
  std::vector<char> buf(url.begin(), url.end());
  buf.push_back('\0');
  if (url.find('\0') != std::string::npos || amqp_parse_url(buf.data(), &info) != AMQP_STATUS_OK) {
    c.problem(key, "'" + n.redacted_url +
                       "' is not an AMQP URL: write amqp://USER:PASSWORD@HOST:PORT/VHOST (amqps:// for TLS)");
    return false;
  }
  n.host = info.host;
  n.port = info.port;
  n.user = info.user;
  n.password = info.password;
  n.vhost = info.vhost;
  n.tls = info.ssl != 0;
  bool ok = true;
  if (n.host.empty()) {
    c.problem(key, "'" + n.redacted_url + "' names no host: write amqp://USER:PASSWORD@HOST:PORT/VHOST");
    ok = false;
  }
  if (n.port < 1 || n.port > 65535) {
    c.problem(key, fmt::format("'{}': port {} is out of range (1 to 65535)", n.redacted_url, n.port));
    ok = false;
  }
  // "amqp://host/" has an empty path; like pika, take it as the default vhost "/".
  if (n.vhost.empty()) {
    n.vhost = "/";
  }
  return ok;
}

/// `url`: one URL, or a list of them (the nodes of a cluster), all amqp:// or all amqps://.
void readUrls(const sdk::Config &c, Settings &s) {
  const auto &v = c.value("url");
  std::vector<std::string> urls;
  if (v.IsString()) {
    urls.emplace_back(v.GetString(), v.GetStringLength());
  } else if (v.IsArray()) {
    for (const auto &u : v.GetArray()) {
      if (!u.IsString()) {
        c.problem("url", "'url' must be a URL or a list of URLs (strings)");
        return;
      }
      urls.emplace_back(u.GetString(), u.GetStringLength());
    }
  } else {
    c.problem("url", "'url' must be a URL or a list of URLs (strings)");
    return;
  }
  if (urls.empty()) {
    c.problem("url", "'url' is an empty list: give at least one amqp://USER:PASSWORD@HOST:PORT/VHOST");
    return;
  }
  bool list = v.IsArray() && urls.size() > 1;
  for (std::size_t i = 0; i < urls.size(); ++i) {
    std::string key = list ? fmt::format("url[{}]", i) : std::string("url");
    Node n;
    if (!readUrl(c, key, urls[i], n)) {
      continue;
    }
    if (!s.nodes.empty() && n.tls != s.nodes.front().tls) {
      c.problem(key, fmt::format("'{}' is {} but '{}' is {}: the nodes of one url list share the TLS settings, "
                                 "so use amqps:// for all of them or for none",
                                 n.redacted_url, n.tls ? "amqps://" : "amqp://", s.nodes.front().redacted_url,
                                 s.nodes.front().tls ? "amqps://" : "amqp://"));
      continue;
    }
    for (const auto &o : s.nodes) {
      if (o.host == n.host && o.port == n.port && o.vhost == n.vhost) {
        c.problem(key, fmt::format("'{}' is listed twice in url: name each node once", n.redacted_url));
      }
    }
    s.nodes.push_back(std::move(n));
  }
  if (!s.nodes.empty()) {
    s.useNode(0);
  } else {
    s.redacted_url = redactUrl(urls.front());
  }
}

}  // namespace

void Settings::useNode(std::size_t i) {
  if (i >= nodes.size()) {
    return;
  }
  node = i;
  static_cast<Node &>(*this) = nodes[i];
}

Settings Settings::fromConfig(const sdk::Config &c) {
  Settings s;
  readUrls(c, s);
  if (c.has("password_file")) {
    std::string path = c.str("password_file");
    std::ifstream in(path);
    if (!in) {
      c.problem("password_file", fmt::format("cannot read the password_file '{}': {}", path, std::strerror(errno)));
    } else {
      std::getline(in, s.password);
      if (!s.password.empty() && s.password.back() == '\r') {
        s.password.pop_back();
      }
      for (auto &n : s.nodes) {
        n.password = s.password;
      }
    }
  }
  bool tls_ok = true;
  if (c.has("tls")) {
    const auto &t = c.value("tls");
    if (!t.IsObject()) {
      c.problem("tls", "'tls' must be a mapping {ca_file, cert_file, key_file}");
      tls_ok = false;
    } else {
      for (const auto &m : t.GetObject()) {
        std::string k(m.name.GetString(), m.name.GetStringLength());
        if (k != "ca_file" && k != "cert_file" && k != "key_file") {
          c.problem("tls." + k, "unknown key tls." + k + "; allowed: ca_file, cert_file, key_file");
          tls_ok = false;
          continue;
        }
        if (!m.value.IsString()) {
          c.problem("tls." + k, "tls." + k + " must be a string (a file path)");
          tls_ok = false;
          continue;
        }
        std::string v(m.value.GetString(), m.value.GetStringLength());
        (k == "ca_file" ? s.ca_file : k == "cert_file" ? s.cert_file : s.key_file) = v;
      }
    }
    if (!s.cert_file.empty() && s.key_file.empty()) {
      c.problem("tls.cert_file", "tls.cert_file '" + s.cert_file +
                                     "' has no tls.key_file: give the certificate's private key too (or neither)");
    } else if (s.cert_file.empty() && !s.key_file.empty()) {
      c.problem("tls.key_file", "tls.key_file '" + s.key_file +
                                    "' has no tls.cert_file: give the key's certificate too (or neither)");
    }
    checkTlsFiles(c, s);
    if (!s.tls && (!s.ca_file.empty() || !s.cert_file.empty() || !s.key_file.empty())) {
      c.problem("tls", "tls settings need an amqps:// url (the url '" + s.redacted_url + "' is plain amqp://)");
    }
  }
  std::string sasl = c.str("sasl");
  if (sasl == "external") {
    if (s.cert_file.empty() && tls_ok) {
      c.problem("sasl", "sasl: external logs in with the client certificate: set tls.cert_file and tls.key_file");
    }
    s.external = true;
  } else if (sasl == "auto") {
    s.external = !s.cert_file.empty();
  } else if (sasl != "plain") {
    c.problem("sasl", "unknown sasl mechanism '" + sasl + "': use plain, external or auto");
  }
  auto hb = c.integer("heartbeat");
  if (hb < 0 || hb > 65535) {
    c.problem("heartbeat", "heartbeat must be between 0 and 65535 seconds");
  } else {
    s.heartbeat = static_cast<int>(hb);
  }
  s.connect_timeout = c.number("connect_timeout");
  if (!(s.connect_timeout > 0)) {
    c.problem("connect_timeout", "connect_timeout must be positive");
    s.connect_timeout = 10;
  }
  s.max_delay = c.number("reconnect_max_delay");
  if (!(s.max_delay > 0)) {
    c.problem("reconnect_max_delay", "reconnect_max_delay must be positive");
    s.max_delay = 5;
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
