// SPDX-License-Identifier: MIT
// http-in's settings (docs/plugins/http-in.md): what the configuration says, checked when it
// is loaded, and the pieces start() and probe() share (secrets, TLS context, binding).
#pragma once

#include <openssl/ssl.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "switchyard/sdk.hpp"

namespace switchyard::httpin {

/// One allowed topic entry: a dotted prefix ("org.fedoraproject.prod.bodhi" matches that
/// topic and every topic below it) or a shell-style glob with '*', '?' or '[' matched against
/// the whole topic ("*.bodhi.update.*").
struct TopicRule {
  std::string text;
  bool glob = false;
  [[nodiscard]] bool matches(std::string_view topic) const;
};

struct Sender {
  std::string name;
  std::string token_file;  ///< one of token_file and token_env, or neither (client_cn only)
  std::string token_env;
  std::string client_cn;
  std::vector<TopicRule> topics;
  std::string key;      ///< "senders[2]", for messages
  std::string token;    ///< resolved by loadSecrets(); never logged
  [[nodiscard]] bool hasToken() const { return !token_file.empty() || !token_env.empty(); }
  [[nodiscard]] bool allows(std::string_view topic) const;
};

struct Tls {
  bool on = false;
  std::string cert_file, key_file, client_ca_file;
};

struct Settings {
  std::string listen;  ///< as written, for messages
  std::string host;    ///< without brackets
  int port = 0;
  bool loopback = false;
  Tls tls;
  std::vector<Sender> senders;
  std::size_t max_body = 1 << 20;
  std::size_t max_batch = 100;
  std::chrono::milliseconds timeout{30000};
  std::size_t max_in_flight = 1000;
  int threads = 8;
  int retry_after = 5;  ///< seconds, the Retry-After of a 503
  std::chrono::milliseconds read_timeout{10000};
};

extern const sy_config_key kSchema[];

/// Parses and checks the configuration; every problem goes to c.problem() with its key.
Settings parseSettings(const sdk::Config &c);

/// Reads every sender's token (token_file, token_env). False with @p key and @p err (naming
/// the file or variable and the fix) at the first one that cannot be had.
bool loadSecrets(Settings &s, std::string &key, std::string &err);

/// Loads the certificate chain, the key (and checks they match) and the client CA into
/// @p ctx. False with @p key ("tls.cert_file") and @p err naming the file and the fix.
bool setupTls(SSL_CTX *ctx, const Tls &tls, std::string &key, std::string &err);

/// Binds a TCP socket to the listen address and closes it again ("" when it could be bound,
/// else what failed: address in use, no such address).
std::string tryBind(const Settings &s);

/// "host:port" parsed; false with @p err when it is not an address and port.
bool parseListen(const std::string &listen, std::string &host, int &port, std::string &err);
bool isLoopback(const std::string &host);

}  // namespace switchyard::httpin
