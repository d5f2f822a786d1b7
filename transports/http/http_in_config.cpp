// SPDX-License-Identifier: MIT
// http-in's configuration: schema, checks, secrets, TLS files, the listen address.
#include "http_in_config.hpp"

#include <arpa/inet.h>
#include <fnmatch.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

namespace switchyard::httpin {

const sy_config_key kSchema[] = {
    {"listen", SY_CFG_STRING, 1, nullptr,
     "ADDR:PORT to listen on (\"0.0.0.0:8443\", \"[::]:8443\", \"127.0.0.1:8080\"). Plain HTTP (no tls) "
     "only on a loopback address.",
     0},
    {"tls", SY_CFG_MAP, 0, nullptr,
     "HTTPS: {cert_file, key_file, client_ca_file}. client_ca_file lets clients authenticate with a "
     "certificate it signed (senders' client_cn).",
     0},
    {"senders", SY_CFG_LIST, 1, nullptr,
     "Who may post: a list of {name, token_file | token_env, client_cn, topics}. Each needs a bearer "
     "token or a client certificate CN (or both), and the topics it may use.",
     0},
    {"max_body", SY_CFG_INT, 0, "1048576",
     "Largest request body in bytes; a larger one is answered 413.", 0, nullptr, SY_BOUND_MIN | SY_BOUND_MAX, 2,
     1073741824},
    {"max_batch", SY_CFG_INT, 0, "100", "Most messages (lines) in one application/x-ndjson POST; more: 413.", 0,
     nullptr, SY_BOUND_MIN | SY_BOUND_MAX, 1, 100000},
    {"timeout", SY_CFG_FLOAT, 0, "30",
     "Seconds a request waits for every output to confirm its messages; then it is answered 503.", 0, nullptr,
     SY_BOUND_MIN | SY_BOUND_MAX, 0.1, 3600},
    {"max_in_flight", SY_CFG_INT, 0, "1000",
     "Messages taken and not yet settled, at most; a request that would go beyond is answered 503 at once.", 0,
     nullptr, SY_BOUND_MIN | SY_BOUND_MAX, 1, 10000000},
    {"threads", SY_CFG_INT, 0, "8", "HTTP worker threads: requests served at the same time.", 0, nullptr,
     SY_BOUND_MIN | SY_BOUND_MAX, 1, 1024},
    {"retry_after", SY_CFG_INT, 0, "5", "Seconds sent in the Retry-After header of a 503.", 0, nullptr,
     SY_BOUND_MIN | SY_BOUND_MAX, 0, 3600},
    {"read_timeout", SY_CFG_FLOAT, 0, "10",
     "Seconds a client may take to send its request (headers and body); a slower one is disconnected.", 0,
     nullptr, SY_BOUND_MIN | SY_BOUND_MAX, 0.1, 3600},
    {nullptr, 0, 0, nullptr, nullptr, 0},
};

bool TopicRule::matches(std::string_view topic) const {
  if (glob) {
    return ::fnmatch(text.c_str(), std::string(topic).c_str(), 0) == 0;
  }
  if (topic.size() < text.size() || topic.compare(0, text.size(), text) != 0) {
    return false;
  }
  return topic.size() == text.size() || text.empty() || text.back() == '.' || topic[text.size()] == '.';
}

bool Sender::allows(std::string_view topic) const {
  for (const auto &t : topics) {
    if (t.matches(topic)) {
      return true;
    }
  }
  return false;
}

bool parseListen(const std::string &listen, std::string &host, int &port, std::string &err) {
  auto colon = listen.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == listen.size()) {
    err = fmt::format("'{}' is not ADDR:PORT (e.g. \"0.0.0.0:8443\", \"[::1]:8443\")", listen);
    return false;
  }
  host = listen.substr(0, colon);
  if (host.front() == '[') {
    if (host.back() != ']' || host.size() < 3) {
      err = fmt::format("'{}': an IPv6 address goes in brackets, \"[::1]:8443\"", listen);
      return false;
    }
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string::npos) {
    err = fmt::format("'{}': write an IPv6 address in brackets, \"[{}]:PORT\"", listen, host);
    return false;
  }
  std::string p = listen.substr(colon + 1);
  char *end = nullptr;
  long v = std::strtol(p.c_str(), &end, 10);
  if (end == p.c_str() || *end != '\0' || v < 1 || v > 65535) {
    err = fmt::format("'{}': the port must be a number from 1 to 65535", listen);
    return false;
  }
  port = static_cast<int>(v);
  return true;
}

bool isLoopback(const std::string &host) {
  if (host == "localhost") {
    return true;
  }
  in_addr a4{};
  if (::inet_pton(AF_INET, host.c_str(), &a4) == 1) {
    return (ntohl(a4.s_addr) >> 24) == 127;
  }
  in6_addr a6{};
  if (::inet_pton(AF_INET6, host.c_str(), &a6) == 1) {
    return IN6_IS_ADDR_LOOPBACK(&a6);
  }
  return false;
}

namespace {

std::string strOf(const rapidjson::Value &v) { return {v.GetString(), v.GetStringLength()}; }

void parseTls(const sdk::Config &c, Tls &tls) {
  const auto &v = c.value("tls");
  if (!v.IsObject()) {
    c.problem("tls", "'tls' must be a map: {cert_file: PATH, key_file: PATH, client_ca_file: PATH}");
    return;
  }
  for (const auto &m : v.GetObject()) {
    std::string k = strOf(m.name);
    std::string *slot = k == "cert_file" ? &tls.cert_file
                        : k == "key_file" ? &tls.key_file
                        : k == "client_ca_file" ? &tls.client_ca_file
                                                : nullptr;
    if (slot == nullptr) {
      c.problem("tls." + k, fmt::format("unknown key 'tls.{}'; known: cert_file, key_file, client_ca_file", k));
    } else if (!m.value.IsString() || m.value.GetStringLength() == 0) {
      c.problem("tls." + k, fmt::format("'tls.{}' must be a file path", k));
    } else {
      *slot = strOf(m.value);
    }
  }
  if (tls.cert_file.empty()) {
    c.problem("tls.cert_file", "tls needs cert_file (the server's certificate chain, PEM)");
  }
  if (tls.key_file.empty()) {
    c.problem("tls.key_file", "tls needs key_file (the server certificate's private key, PEM)");
  }
  tls.on = true;
}

void parseSender(const sdk::Config &c, const rapidjson::Value &v, Sender &s, bool have_ca) {
  if (!v.IsObject()) {
    c.problem(s.key, fmt::format("'{}' must be a map: {{name, token_file | token_env, client_cn, topics}}", s.key));
    return;
  }
  for (const auto &m : v.GetObject()) {
    std::string k = strOf(m.name);
    std::string key = s.key + "." + k;
    if (k == "topics") {
      std::vector<std::string> list;
      if (m.value.IsString()) {
        list.push_back(strOf(m.value));
      } else if (m.value.IsArray()) {
        for (const auto &e : m.value.GetArray()) {
          if (!e.IsString()) {
            c.problem(key, fmt::format("'{}' must be a list of topic prefixes or patterns (strings)", key));
            return;
          }
          list.push_back(strOf(e));
        }
      } else {
        c.problem(key, fmt::format("'{}' must be a list of topic prefixes or patterns", key));
        continue;
      }
      for (auto &t : list) {
        if (t.empty()) {
          c.problem(key, fmt::format("'{}' has an empty entry; use \"*\" for every topic", key));
          continue;
        }
        bool glob = t.find_first_of("*?[") != std::string::npos;
        s.topics.push_back({std::move(t), glob});
      }
      continue;
    }
    std::string *slot = k == "name" ? &s.name
                        : k == "token_file" ? &s.token_file
                        : k == "token_env" ? &s.token_env
                        : k == "client_cn" ? &s.client_cn
                                           : nullptr;
    if (slot == nullptr) {
      c.problem(key, fmt::format("unknown key '{}'; known: name, token_file, token_env, client_cn, topics", key));
    } else if (!m.value.IsString() || m.value.GetStringLength() == 0) {
      c.problem(key, fmt::format("'{}' must be a non-empty string", key));
    } else {
      *slot = strOf(m.value);
    }
  }
  if (v.HasMember("token")) {
    c.problem(s.key + ".token", "secrets are never written in the configuration: use token_file or token_env");
  }
  if (s.name.empty()) {
    c.problem(s.key + ".name", fmt::format("'{}' needs a name (used in logs and counters)", s.key));
  }
  if (!s.token_file.empty() && !s.token_env.empty()) {
    c.problem(s.key + ".token_env", "token_file and token_env are two ways to give one token: keep one");
  }
  if (!s.hasToken() && s.client_cn.empty()) {
    c.problem(s.key, fmt::format("'{}' has no credentials: give token_file or token_env (a bearer token), or "
                                 "client_cn (with tls.client_ca_file), or both",
                                 s.key));
  }
  if (!s.client_cn.empty() && !have_ca) {
    c.problem(s.key + ".client_cn",
              "client_cn needs client certificates: set tls.client_ca_file (the CA that signs them)");
  }
  if (s.topics.empty() && !v.HasMember("topics")) {
    c.problem(s.key + ".topics", fmt::format("'{}' needs topics: the prefixes or patterns it may post "
                                             "(\"*\" for every topic)",
                                             s.key));
  }
}

}  // namespace

Settings parseSettings(const sdk::Config &c) {
  Settings s;
  c.collect([&] {
    s.listen = c.str("listen");
    std::string err;
    if (!parseListen(s.listen, s.host, s.port, err)) {
      c.problem("listen", err);
    } else {
      s.loopback = isLoopback(s.host);
    }
  });
  if (c.has("tls")) {
    c.collect([&] { parseTls(c, s.tls); });
  }
  if (!s.tls.on && !s.host.empty()) {
    if (!s.loopback) {
      c.problem("listen", fmt::format("plain HTTP on '{}', which is not a loopback address: tokens and messages "
                                      "would cross the network in clear; add tls: {{cert_file, key_file}} or "
                                      "listen on 127.0.0.1",
                                      s.listen));
    } else {
      c.warning("listen", "no tls: plain HTTP, acceptable on loopback only (tests, a local TLS proxy in front); "
                          "add tls: {cert_file, key_file} for anything else");
    }
  }
  c.collect([&] {
    const auto &v = c.value("senders");
    if (!v.IsArray() || v.Empty()) {
      c.problem("senders", "'senders' must be a non-empty list of {name, token_file | token_env, client_cn, topics}");
      return;
    }
    std::set<std::string> names, cns;
    for (rapidjson::SizeType i = 0; i < v.Size(); ++i) {
      Sender snd;
      snd.key = fmt::format("senders[{}]", i);
      parseSender(c, v[i], snd, !s.tls.client_ca_file.empty());
      if (!snd.name.empty() && !names.insert(snd.name).second) {
        c.problem(snd.key + ".name", fmt::format("sender name '{}' is used twice", snd.name));
      }
      if (!snd.client_cn.empty() && !cns.insert(snd.client_cn).second) {
        c.problem(snd.key + ".client_cn",
                  fmt::format("client_cn '{}' is given to two senders: a certificate must name one", snd.client_cn));
      }
      s.senders.push_back(std::move(snd));
    }
  });
  c.collect([&] { s.max_body = static_cast<std::size_t>(c.integer("max_body")); });
  c.collect([&] { s.max_batch = static_cast<std::size_t>(c.integer("max_batch")); });
  c.collect([&] { s.timeout = c.seconds("timeout"); });
  c.collect([&] { s.max_in_flight = static_cast<std::size_t>(c.integer("max_in_flight")); });
  c.collect([&] { s.threads = static_cast<int>(c.integer("threads")); });
  c.collect([&] { s.retry_after = static_cast<int>(c.integer("retry_after")); });
  c.collect([&] { s.read_timeout = c.seconds("read_timeout"); });
  if (s.max_batch > s.max_in_flight) {
    c.problem("max_batch", fmt::format("max_batch ({}) is above max_in_flight ({}): such a batch could never be "
                                       "taken; lower max_batch or raise max_in_flight",
                                       s.max_batch, s.max_in_flight));
  }
  return s;
}

bool loadSecrets(Settings &s, std::string &key, std::string &err) {
  for (auto &snd : s.senders) {
    if (!snd.token_file.empty()) {
      std::ifstream f(snd.token_file);
      if (!f) {
        key = snd.key + ".token_file";
        err = fmt::format("sender '{}': cannot read token_file '{}': {}; create it (one line, the token) readable "
                          "by this user",
                          snd.name, snd.token_file, std::strerror(errno));
        return false;
      }
      std::stringstream ss;
      ss << f.rdbuf();
      snd.token = ss.str();
    } else if (!snd.token_env.empty()) {
      const char *v = std::getenv(snd.token_env.c_str());
      snd.token = v != nullptr ? v : "";
      if (v == nullptr) {
        key = snd.key + ".token_env";
        err = fmt::format("sender '{}': the environment variable {} is not set; set it to the sender's token",
                          snd.name, snd.token_env);
        return false;
      }
    } else {
      continue;
    }
    while (!snd.token.empty() && (snd.token.back() == '\n' || snd.token.back() == '\r' || snd.token.back() == ' ')) {
      snd.token.pop_back();
    }
    if (snd.token.size() < 16 || snd.token.find_first_of(" \t\r\n") != std::string::npos) {
      key = snd.key + (snd.token_file.empty() ? ".token_env" : ".token_file");
      err = fmt::format("sender '{}': the token from {} must be at least 16 characters without spaces (e.g. "
                        "openssl rand -hex 32)",
                        snd.name, snd.token_file.empty() ? snd.token_env : snd.token_file);
      return false;
    }
  }
  return true;
}

namespace {
std::string sslError() {
  unsigned long e = ERR_get_error();
  if (e == 0) {
    return "unknown OpenSSL error";
  }
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  ERR_clear_error();
  return buf;
}

// Accept every client certificate at the handshake; the request handler trusts its CN only
// when SSL_get_verify_result() says it verified against client_ca_file, and answers 401
// (with the reason) otherwise. Clients without a certificate may still use a token.
int acceptAny(int, X509_STORE_CTX *) { return 1; }
}  // namespace

bool setupTls(SSL_CTX *ctx, const Tls &tls, std::string &key, std::string &err) {
  ERR_clear_error();
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  if (SSL_CTX_use_certificate_chain_file(ctx, tls.cert_file.c_str()) != 1) {
    key = "tls.cert_file";
    err = fmt::format("cannot load the certificate chain '{}': {}; give a PEM certificate (chain) readable by "
                      "this user",
                      tls.cert_file, sslError());
    return false;
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, tls.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    key = "tls.key_file";
    if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH) {
      ERR_clear_error();
      err = fmt::format("the key '{}' does not match the certificate '{}'; give the key the certificate was made "
                        "for",
                        tls.key_file, tls.cert_file);
      return false;
    }
    err = fmt::format("cannot load the private key '{}': {}; give an unencrypted PEM key readable by this user",
                      tls.key_file, sslError());
    return false;
  }
  if (SSL_CTX_check_private_key(ctx) != 1) {
    key = "tls.key_file";
    err = fmt::format("the key '{}' does not match the certificate '{}': {}; give the key the certificate was "
                      "made for",
                      tls.key_file, tls.cert_file, sslError());
    return false;
  }
  if (!tls.client_ca_file.empty()) {
    if (SSL_CTX_load_verify_locations(ctx, tls.client_ca_file.c_str(), nullptr) != 1) {
      key = "tls.client_ca_file";
      err = fmt::format("cannot load the client CA '{}': {}; give the PEM certificate of the CA that signs the "
                        "senders' certificates",
                        tls.client_ca_file, sslError());
      return false;
    }
    STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(tls.client_ca_file.c_str());
    if (names != nullptr) {
      SSL_CTX_set_client_CA_list(ctx, names);
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, acceptAny);
  } else {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
  }
  return true;
}

std::string tryBind(const Settings &s) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo *res = nullptr;
  std::string port = std::to_string(s.port);
  if (int rc = ::getaddrinfo(s.host.c_str(), port.c_str(), &hints, &res); rc != 0) {
    return fmt::format("cannot resolve '{}': {}", s.host, ::gai_strerror(rc));
  }
  std::string err = "no address";
  for (addrinfo *a = res; a != nullptr; a = a->ai_next) {
    int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) {
      err = std::strerror(errno);
      continue;
    }
    int yes = 1;
    (void)::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    bool ok = ::bind(fd, a->ai_addr, a->ai_addrlen) == 0;
    if (!ok) {
      err = std::strerror(errno);
    }
    ::close(fd);
    if (ok) {
      ::freeaddrinfo(res);
      return {};
    }
  }
  ::freeaddrinfo(res);
  return fmt::format("cannot bind {}: {}; free the port or choose another listen address", s.listen, err);
}

}  // namespace switchyard::httpin
