// SPDX-License-Identifier: MIT
//
// verifier: the schema and the factory, which reads the configuration once per configured
// verifier. Every problem is recorded (sdk::Config::problem) so that one `switchyard check`
// names them all, each at its key; settings that work but are probably a mistake are
// warnings (sdk::Config::warning), which check prints and start-up logs once. See
// docs/plugins/verifier.md ("Checks when the configuration is loaded").
#include <openssl/err.h>
#include <openssl/x509.h>

#include "verifier.hpp"

namespace switchyard::plugins {

const sy_config_key kVerifierSchema[] = {
    {"ca_file", SY_CFG_STRING, 1, nullptr,
     "PEM file of the CA that signs the publishers' certificates; only its first certificate is used.", 0},
    {"crl_file", SY_CFG_STRING, 0, nullptr,
     "PEM CRL of that CA (first CRL in the file). Without it revocation is NOT checked (a warning at start).",
     0},
    {"routing_policy", SY_CFG_MAP, 0, "{}",
     "Map of topic to the list of certificate common names allowed to publish it.", 0},
    {"nitpicky", SY_CFG_BOOL, 0, "true",
     "Refuse topics that routing_policy does not list (fedmsg's routing_nitpicky; default deny). With an "
     "empty routing_policy that refuses every signed message, so that configuration is refused.",
     0},
    {"allow_unsigned", SY_CFG_BOOL, 0, "false",
     "Let messages without signature pass (counted as unsigned_passed), for buses that do not sign.", 0},
    {"auth_level", SY_CFG_INT, 0, "-1",
     "OpenSSL verification security level for the certificate chain; -1 keeps OpenSSL's default "
     "(accepts the RSA-1024/SHA-1 material of existing fedmsg deployments).",
     0},
    {nullptr, 0, 0, nullptr, nullptr, 0},
};

namespace {

std::optional<std::string> optionalStr(const sdk::Config &c, const char *key) {
  if (!c.has(key)) {
    return std::nullopt;
  }
  std::string v = c.str(key);
  if (v.empty()) {
    return std::nullopt;
  }
  return v;
}

/// routing_policy: topic -> list of common names (a single name is taken as a list of one).
std::unordered_map<std::string, std::vector<std::string>> readPolicy(const sdk::Config &config) {
  std::unordered_map<std::string, std::vector<std::string>> out;
  const rapidjson::Value &policy = config.value("routing_policy");
  if (!policy.IsObject()) {
    config.problem("routing_policy", "routing_policy must map topics to lists of common names");
    return out;
  }
  for (const auto &m : policy.GetObject()) {
    std::string topic(m.name.GetString(), m.name.GetStringLength());
    std::vector<std::string> names;
    bool ok = true;
    if (m.value.IsString()) {
      names.emplace_back(m.value.GetString(), m.value.GetStringLength());
    } else if (m.value.IsArray()) {
      for (const auto &e : m.value.GetArray()) {
        if (!e.IsString()) {
          config.problem("routing_policy",
                         "routing_policy['" + topic + "'] must be a list of common names (strings)");
          ok = false;
          break;
        }
        names.emplace_back(e.GetString(), e.GetStringLength());
      }
    } else {
      config.problem("routing_policy", "routing_policy['" + topic + "'] must be a list of common names");
      ok = false;
    }
    if (ok) {
      out[topic] = std::move(names);
    }
  }
  return out;
}

/// The CA and CRL files, each on its own, so that both are reported when both are bad:
/// readable, PEM, the CRL issued and signed by that CA; an expired CA or CRL is a warning
/// (every signed message would be refused until it is renewed, but the file may be
/// replaced before the first message: the verifier re-reads it).
void checkTrustFiles(const sdk::Config &config, const std::string &ca_file, const std::optional<std::string> &crl_file) {
  std::string error;
  x509::CertPtr ca = x509::loadCertFile(ca_file, &error);
  if (!ca) {
    config.problem("ca_file", error);
  } else if (X509_cmp_current_time(X509_get0_notAfter(ca.get())) < 0) {
    config.warning("ca_file", "the CA certificate in '" + ca_file +
                                  "' has expired: every signed message is refused until the file holds a valid one");
  }
  if (!crl_file) {
    config.warning("crl_file", "no crl_file: revocation is NOT checked, a revoked certificate still passes; set "
                               "crl_file to the CA's CRL (fedmsg's crl_location)");
    return;
  }
  x509::CrlPtr crl = x509::loadCrlFile(*crl_file, &error);
  if (!crl) {
    config.problem("crl_file", error);
    return;
  }
  if (ca) {
    EVP_PKEY *ca_key = X509_get0_pubkey(ca.get());
    if (X509_NAME_cmp(X509_CRL_get_issuer(crl.get()), X509_get_subject_name(ca.get())) != 0 || ca_key == nullptr ||
        X509_CRL_verify(crl.get(), ca_key) != 1) {
      ERR_clear_error();
      config.problem("crl_file", "the CRL in '" + *crl_file + "' was not issued by the CA in '" + ca_file +
                                     "': every signed message would be refused; give that CA's CRL");
      return;
    }
  }
  const ASN1_TIME *next = X509_CRL_get0_nextUpdate(crl.get());
  if (next != nullptr && X509_cmp_current_time(next) < 0) {
    config.warning("crl_file", "the CRL in '" + *crl_file +
                                   "' is past its next update: every signed message is refused until it is renewed");
  }
}

}  // namespace

VerifierFactory::VerifierFactory(const sdk::Config &config)
    : shared_(std::make_shared<VerifierShared>(config.str("ca_file"), optionalStr(config, "crl_file"),
                                               static_cast<int>(config.integer("auth_level")))) {
  shared_->nitpicky = config.boolean("nitpicky");
  shared_->allow_unsigned = config.boolean("allow_unsigned");
  shared_->policy = readPolicy(config);
  bool empty_policy = config.value("routing_policy").IsObject() && config.value("routing_policy").ObjectEmpty();
  if (shared_->nitpicky && empty_policy) {
    // fedmsg's routing_nitpicky with no routing_policy: no signed message can ever pass.
    std::string what = "nitpicky is true and routing_policy is empty, so every signed message would be dropped "
                       "as policy_denied; list who may publish each topic in routing_policy (topic: [certificate "
                       "common names], as fedmsg's routing_policy), or set nitpicky: false to accept any "
                       "certificate the CA issued";
    if (shared_->allow_unsigned) {
      config.warning("routing_policy", what + " (only unsigned messages pass, through allow_unsigned)");
    } else {
      config.problem("routing_policy", what);
    }
  } else if (!shared_->nitpicky && empty_policy) {
    config.warning("routing_policy", "routing_policy is empty and nitpicky is false: any certificate the CA "
                                     "issued may publish any topic; list the topics that matter in "
                                     "routing_policy to pin their publishers");
  }
  if (shared_->allow_unsigned) {
    config.warning("allow_unsigned", "allow_unsigned is true: messages without a signature pass unverified "
                                     "(counted as unsigned_passed); set it false on a bus where everyone signs");
  }
  checkTrustFiles(config, config.str("ca_file"), optionalStr(config, "crl_file"));
  if (!config.problems().empty()) {
    // Callers that construct the factory directly (tests) see the first problem; the SDK
    // reports every recorded one (and this one once: it is the same).
    const auto &first = config.problems().front();
    throw sdk::ConfigError(first.key, first.message);
  }
  std::string error;
  if (!shared_->trust.load(&error)) {
    throw sdk::ConfigError(error.find(config.str("ca_file")) != std::string::npos ? "ca_file" : "crl_file", error);
  }
}

Plugin *VerifierFactory::instantiate(const InstanceArgs &args) noexcept {
  return sdk::barrier(args.error, [&]() -> Plugin * { return make().release(); });
}

}  // namespace switchyard::plugins
