// SPDX-License-Identifier: MIT
//
// The TLS files of the common keys (tls.ca_file, tls.cert_file, tls.key_file), checked
// when the configuration is loaded so that `switchyard check` names every unusable file
// in one run: readable, the PEM content each must hold (problems), and a private key that
// belongs to its certificate (OpenSSL's X509_check_private_key; a warning, because start()
// refuses such a pair as a permanent failure of its own). The handshake itself is left to
// the connection (and to `switchyard check --connect`).
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <memory>

#include "amqp_common.hpp"

#ifdef SY_AMQP_HAVE_OPENSSL
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#endif

namespace switchyard::amqp {
namespace {

#ifdef SY_AMQP_HAVE_OPENSSL
struct FileFree {
  void operator()(FILE *f) const noexcept { std::fclose(f); }
};
struct X509Free {
  void operator()(X509 *p) const noexcept { X509_free(p); }
};
struct PkeyFree {
  void operator()(EVP_PKEY *p) const noexcept { EVP_PKEY_free(p); }
};
using FilePtr = std::unique_ptr<FILE, FileFree>;
using CertPtr = std::unique_ptr<X509, X509Free>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;

/// OpenSSL's reason for the last failure (clears the queue).
std::string lastReason() {
  unsigned long e = ERR_peek_last_error();
  std::string why;
  if (e != 0) {
    const char *r = ERR_reason_error_string(e);
    why = r != nullptr ? r : "unknown OpenSSL error";
  }
  ERR_clear_error();
  return why.empty() ? "no PEM data found" : why;
}

/// A passphrase callback that gives none: an encrypted key fails instead of prompting.
int noPassphrase(char *, int, int, void *) { return -1; }

/// The first certificate of @p f, or null with @p why.
CertPtr readCert(FILE *f, std::string &why) {
  CertPtr c(PEM_read_X509(f, nullptr, nullptr, nullptr));
  if (!c) {
    why = lastReason();
  }
  return c;
}
#endif

/// Opens @p path for reading, or records why it cannot be read at @p key.
bool readable(const sdk::Config &c, const std::string &key, const std::string &path, const char *what) {
  std::ifstream in(path);
  if (!in) {
    c.problem(key, fmt::format("cannot read the {} '{}': {}", what, path, std::strerror(errno)));
    return false;
  }
  return true;
}

}  // namespace

void checkTlsFiles(const sdk::Config &c, const Settings &s) {
  bool ca_ok = !s.ca_file.empty() && readable(c, "tls.ca_file", s.ca_file, "CA file");
  bool cert_ok = !s.cert_file.empty() && readable(c, "tls.cert_file", s.cert_file, "client certificate");
  bool key_ok = !s.key_file.empty() && readable(c, "tls.key_file", s.key_file, "client key");
#ifdef SY_AMQP_HAVE_OPENSSL
  std::string why;
  if (ca_ok) {
    FilePtr f(std::fopen(s.ca_file.c_str(), "r"));
    if (!f || !readCert(f.get(), why)) {
      c.problem("tls.ca_file", fmt::format("'{}' holds no PEM certificate: {}", s.ca_file, why));
    }
  }
  CertPtr cert;
  if (cert_ok) {
    FilePtr f(std::fopen(s.cert_file.c_str(), "r"));
    if (f) {
      cert = readCert(f.get(), why);
    }
    if (!cert) {
      c.problem("tls.cert_file", fmt::format("'{}' holds no PEM certificate: {}", s.cert_file, why));
    }
  }
  PkeyPtr key;
  if (key_ok) {
    FilePtr f(std::fopen(s.key_file.c_str(), "r"));
    if (f) {
      key.reset(PEM_read_PrivateKey(f.get(), nullptr, noPassphrase, nullptr));
    }
    if (!key) {
      why = lastReason();
      c.problem("tls.key_file",
                fmt::format("'{}' holds no unencrypted PEM private key: {}", s.key_file, why));
    }
  }
  if (cert && key && X509_check_private_key(cert.get(), key.get()) != 1) {
    // A warning, not a problem: start() refuses the pair as a permanent TLS failure (exit
    // status 3, which units do not restart), as it always did; check names it beforehand.
    ERR_clear_error();
    c.warning("tls.key_file", fmt::format("'{}' is not the private key of the certificate '{}': every connection "
                                          "will be refused before it is opened; give the key that was made with "
                                          "that certificate",
                                          s.key_file, s.cert_file));
  }
#else
  (void)ca_ok, (void)cert_ok, (void)key_ok;
#endif
}

std::int64_t certNotAfter(const std::string &path) noexcept {
#ifdef SY_AMQP_HAVE_OPENSSL
  if (path.empty()) {
    return 0;
  }
  FilePtr f(std::fopen(path.c_str(), "r"));
  if (!f) {
    return 0;
  }
  std::string why;
  CertPtr cert = readCert(f.get(), why);
  std::tm tm{};
  if (!cert || ASN1_TIME_to_tm(X509_get0_notAfter(cert.get()), &tm) != 1) {
    ERR_clear_error();
    return 0;
  }
  return static_cast<std::int64_t>(timegm(&tm));
#else
  (void)path;
  return 0;
#endif
}

}  // namespace switchyard::amqp
