// SPDX-License-Identifier: MIT
//
// OpenSSL 3 helpers shared by the signer and verifier filters: RAII handles, base64 the
// way fedmsg writes and reads it (docs/plugins/signer.md), PEM loading, and RSA PKCS#1 v1.5
// signatures over SHA-1. Nothing here throws; failures come back as nullopt/false with
// a message in an out-parameter.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <openssl/evp.h>
#include <openssl/x509.h>

namespace switchyard::x509 {

struct X509Free {
  void operator()(X509 *p) const noexcept { X509_free(p); }
};
struct X509CrlFree {
  void operator()(X509_CRL *p) const noexcept { X509_CRL_free(p); }
};
struct PkeyFree {
  void operator()(EVP_PKEY *p) const noexcept { EVP_PKEY_free(p); }
};
struct StoreFree {
  void operator()(X509_STORE *p) const noexcept { X509_STORE_free(p); }
};
struct MdCtxFree {
  void operator()(EVP_MD_CTX *p) const noexcept { EVP_MD_CTX_free(p); }
};
using CertPtr = std::unique_ptr<X509, X509Free>;
using CrlPtr = std::unique_ptr<X509_CRL, X509CrlFree>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;
using StorePtr = std::unique_ptr<X509_STORE, StoreFree>;
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, MdCtxFree>;

/// The queued OpenSSL errors as one line (and clears the queue).
std::string opensslErrors();

/// Standard base64 (RFC 4648, '+' '/', '=' padding) on one line.
std::string base64Encode(std::string_view bytes);
/// fedmsg's layout: @p b64 cut into 76-character lines joined by '\n', plus a final '\n'
/// (fedmsg's signature encoding; what M2Crypto and Python's base64.encodebytes produce).
std::string wrap76(std::string_view b64);
/// Lenient decoding like Python's base64.b64decode(validate=False): characters outside the
/// alphabet (newlines, spaces) are skipped; fails on bad padding or an impossible length.
std::optional<std::string> base64Decode(std::string_view text);

/// The first certificate of a PEM text.
CertPtr certFromPem(std::string_view pem, std::string *error);
/// The first certificate / CRL of a PEM file.
CertPtr loadCertFile(const std::string &path, std::string *error);
CrlPtr loadCrlFile(const std::string &path, std::string *error);
/// An unencrypted PEM private key. Refuses a file that group or others may access
/// (mode & 077), and a key that is not RSA (fedmsg verifiers only know RSA).
PkeyPtr loadPrivateKeyFile(const std::string &path, std::string *error);
/// The certificate re-encoded as PEM text ("-----BEGIN CERTIFICATE-----\n...\n").
std::optional<std::string> certToPem(X509 *cert);
/// Value of the first commonName attribute of the subject, as UTF-8.
std::optional<std::string> commonName(X509 *cert);

/// RSA PKCS#1 v1.5 signature with SHA-1 (identical to `openssl dgst -sha1 -sign`).
std::optional<std::string> signSha1(EVP_PKEY *key, std::string_view data, std::string *error);
/// Verifies such a signature with the public key of @p cert.
bool verifySha1(X509 *cert, std::string_view data, std::string_view signature, std::string *error);
/// A verification context for that check with @p cert's key, set up once; null (and
/// @p error set) when the key is not RSA. Setting up OpenSSL 3's provider state is about
/// 15 % of a verification, so a verifier keeps one per certificate and copies it.
MdCtxPtr sha1VerifyTemplate(X509 *cert, std::string *error);
/// verifySha1() on a copy of @p tmpl (from sha1VerifyTemplate()). THREADING: the template
/// is only read, so one template serves concurrent calls.
bool verifySha1(const EVP_MD_CTX *tmpl, std::string_view data, std::string_view signature, std::string *error);

}  // namespace switchyard::x509
