// SPDX-License-Identifier: MIT
#include "fuzz_pki.hpp"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>

namespace syfuzz {
namespace {

[[noreturn]] void die(const char *what) {
  std::fprintf(stderr, "fuzz PKI: %s failed\n", what);
  std::abort();
}

struct X509Del {
  void operator()(X509 *x) const { X509_free(x); }
};
struct PkeyDel {
  void operator()(EVP_PKEY *k) const { EVP_PKEY_free(k); }
};
using X509Ptr = std::unique_ptr<X509, X509Del>;
using KeyPtr = std::unique_ptr<EVP_PKEY, PkeyDel>;

void addExt(X509 *cert, X509 *issuer, int nid, const char *value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION *ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  if (ext == nullptr || X509_add_ext(cert, ext, -1) != 1) {
    die("X509_add_ext");
  }
  X509_EXTENSION_free(ext);
}

X509Ptr makeCert(const char *cn, long serial, EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key, bool ca) {
  X509Ptr cert(X509_new());
  if (!cert || X509_set_version(cert.get(), 2) != 1) {
    die("X509_new");
  }
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), serial);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -24L * 3600);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 3650L * 24 * 3600);
  X509_NAME *name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char *>(cn), -1, -1, 0);
  X509_set_issuer_name(cert.get(), issuer != nullptr ? X509_get_subject_name(issuer) : name);
  X509_set_pubkey(cert.get(), key);
  X509 *iss = issuer != nullptr ? issuer : cert.get();
  addExt(cert.get(), iss, NID_basic_constraints, ca ? "critical,CA:TRUE" : "CA:FALSE");
  addExt(cert.get(), iss, NID_key_usage, ca ? "critical,keyCertSign,cRLSign" : "digitalSignature");
  addExt(cert.get(), iss, NID_subject_key_identifier, "hash");
  if (X509_sign(cert.get(), issuer_key, EVP_sha256()) == 0) {
    die("X509_sign");
  }
  return cert;
}

void writeCert(const std::string &path, X509 *cert) {
  FILE *f = std::fopen(path.c_str(), "w");
  if (f == nullptr || PEM_write_X509(f, cert) != 1) {
    die("writing a certificate");
  }
  std::fclose(f);
}

Pki *make() {
  auto *p = new Pki;
  char tmpl[] = "/tmp/switchyard-fuzz-pki-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) {
    die("mkdtemp");
  }
  p->dir = tmpl;
  p->ca_crt = p->dir + "/ca.crt";
  p->leaf_crt = p->dir + "/leaf.crt";
  p->leaf_key = p->dir + "/leaf.key";
  KeyPtr ca_key(EVP_RSA_gen(2048));
  KeyPtr leaf_key(EVP_RSA_gen(2048));
  if (!ca_key || !leaf_key) {
    die("EVP_RSA_gen");
  }
  X509Ptr ca = makeCert("Switchyard fuzz CA", 1, ca_key.get(), nullptr, ca_key.get(), true);
  X509Ptr leaf = makeCert("fuzz.example.org", 2, leaf_key.get(), ca.get(), ca_key.get(), false);
  writeCert(p->ca_crt, ca.get());
  writeCert(p->leaf_crt, leaf.get());
  const mode_t old = umask(077);
  FILE *f = std::fopen(p->leaf_key.c_str(), "w");
  umask(old);
  if (f == nullptr || PEM_write_PrivateKey(f, leaf_key.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    die("writing the key");
  }
  std::fclose(f);
  std::atexit([] {
    std::error_code ec;
    std::filesystem::remove_all(pki().dir, ec);
  });
  return p;
}

}  // namespace

const Pki &pki() {
  static const Pki *p = make();
  return *p;
}

}  // namespace syfuzz
