// SPDX-License-Identifier: MIT
#include "x509.hpp"

#include <sys/stat.h>

#include <array>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

namespace switchyard::x509 {

namespace {

struct BioFree {
  void operator()(BIO *p) const noexcept { BIO_free(p); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;

void setError(std::string *out, std::string msg) {
  if (out != nullptr) {
    *out = std::move(msg);
  }
}

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

BioPtr memBio(std::string_view data) {
  return BioPtr(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
}

BioPtr fileBio(const std::string &path, std::string *error) {
  BioPtr bio(BIO_new_file(path.c_str(), "rb"));
  if (!bio) {
    setError(error, "cannot open '" + path + "': " + std::strerror(errno));
    ERR_clear_error();
  }
  return bio;
}

}  // namespace

std::string opensslErrors() {
  std::string out;
  unsigned long e = 0;
  while ((e = ERR_get_error()) != 0) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) {
      out += "; ";
    }
    out += buf;
  }
  return out.empty() ? std::string("unknown OpenSSL error") : out;
}

std::string base64Encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  auto b = [&](std::size_t k) { return static_cast<unsigned char>(bytes[k]); };
  for (; i + 3 <= bytes.size(); i += 3) {
    unsigned v = (b(i) << 16) | (b(i + 1) << 8) | b(i + 2);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  std::size_t rest = bytes.size() - i;
  if (rest == 1) {
    unsigned v = b(i) << 16;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += "==";
  } else if (rest == 2) {
    unsigned v = (b(i) << 16) | (b(i + 1) << 8);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

std::string wrap76(std::string_view b64) {
  std::string out;
  for (std::size_t i = 0; i < b64.size(); i += 76) {
    if (i != 0) {
      out += '\n';
    }
    out += b64.substr(i, 76);
  }
  out += '\n';
  return out;
}

std::optional<std::string> base64Decode(std::string_view text) {
  // One pass over a lookup table (this runs for every verified message's signature):
  // alphabet characters are decoded, '=' is counted, anything else is skipped. A '='
  // followed by more alphabet characters is refused, as are impossible lengths.
  static constexpr auto kTable = [] {
    std::array<std::int8_t, 256> t{};
    t.fill(-1);
    for (int i = 0; i < 64; ++i) {
      t[static_cast<unsigned char>(kAlphabet[i])] = static_cast<std::int8_t>(i);
    }
    t[static_cast<unsigned char>('=')] = -2;
    return t;
  }();
  std::string out(text.size() / 4 * 3 + 3, '\0');
  std::size_t o = 0;
  std::size_t sextets = 0;
  std::size_t pad = 0;
  unsigned acc = 0;
  int bits = 0;
  for (char c : text) {
    const std::int8_t v = kTable[static_cast<unsigned char>(c)];
    if (v >= 0) {
      if (pad != 0) {
        return std::nullopt;  // '=' before the end
      }
      acc = (acc << 6) | static_cast<unsigned>(v);
      bits += 6;
      ++sextets;
      if (bits >= 8) {
        bits -= 8;
        out[o++] = static_cast<char>((acc >> bits) & 0xFF);
      }
    } else if (v == -2) {
      ++pad;
    }
  }
  if (sextets == 0 || sextets % 4 == 1 || pad > 2 || (pad != 0 && (sextets + pad) % 4 != 0)) {
    return std::nullopt;
  }
  out.resize(o);
  return out;
}

CertPtr certFromPem(std::string_view pem, std::string *error) {
  BioPtr bio = memBio(pem);
  CertPtr cert(bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!cert) {
    setError(error, "not a PEM certificate: " + opensslErrors());
  }
  return cert;
}

CertPtr loadCertFile(const std::string &path, std::string *error) {
  BioPtr bio = fileBio(path, error);
  if (!bio) {
    return nullptr;
  }
  CertPtr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!cert) {
    setError(error, "'" + path + "' holds no PEM certificate: " + opensslErrors());
  }
  return cert;
}

CrlPtr loadCrlFile(const std::string &path, std::string *error) {
  BioPtr bio = fileBio(path, error);
  if (!bio) {
    return nullptr;
  }
  CrlPtr crl(PEM_read_bio_X509_CRL(bio.get(), nullptr, nullptr, nullptr));
  if (!crl) {
    setError(error, "'" + path + "' holds no PEM CRL: " + opensslErrors());
  }
  return crl;
}

PkeyPtr loadPrivateKeyFile(const std::string &path, std::string *error) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    setError(error, "cannot open '" + path + "': " + std::strerror(errno));
    return nullptr;
  }
  if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    setError(error, "private key '" + path + "' is accessible by group or others (mode " + mode +
                        "); chmod 600 it");
    return nullptr;
  }
  BioPtr bio = fileBio(path, error);
  if (!bio) {
    return nullptr;
  }
  // A null password callback with an empty password: an encrypted key fails instead of
  // prompting on the terminal.
  PkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, const_cast<char *>("")));
  if (!key) {
    setError(error, "'" + path + "' holds no unencrypted PEM private key: " + opensslErrors());
    return nullptr;
  }
  if (EVP_PKEY_is_a(key.get(), "RSA") != 1) {
    setError(error, "private key '" + path + "' is not an RSA key (fedmsg signatures are RSA only)");
    return nullptr;
  }
  return key;
}

std::optional<std::string> certToPem(X509 *cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) {
    ERR_clear_error();
    return std::nullopt;
  }
  char *data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  if (n <= 0 || data == nullptr) {
    return std::nullopt;
  }
  return std::string(data, static_cast<std::size_t>(n));
}

std::optional<std::string> commonName(X509 *cert) {
  X509_NAME *name = X509_get_subject_name(cert);
  if (name == nullptr) {
    return std::nullopt;
  }
  int idx = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
  if (idx < 0) {
    return std::nullopt;
  }
  ASN1_STRING *data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx));
  unsigned char *utf8 = nullptr;
  int n = ASN1_STRING_to_UTF8(&utf8, data);
  if (n < 0 || utf8 == nullptr) {
    ERR_clear_error();
    return std::nullopt;
  }
  std::string out(reinterpret_cast<char *>(utf8), static_cast<std::size_t>(n));
  OPENSSL_free(utf8);
  return out;
}

std::optional<std::string> signSha1(EVP_PKEY *key, std::string_view data, std::string *error) {
  MdCtxPtr ctx(EVP_MD_CTX_new());
  EVP_PKEY_CTX *pctx = nullptr;
  if (!ctx || EVP_DigestSignInit(ctx.get(), &pctx, EVP_sha1(), nullptr, key) != 1 ||
      EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) != 1) {
    setError(error, "cannot set up RSA/SHA-1 signing: " + opensslErrors());
    return std::nullopt;
  }
  std::size_t len = 0;
  const auto *p = reinterpret_cast<const unsigned char *>(data.data());
  if (EVP_DigestSign(ctx.get(), nullptr, &len, p, data.size()) != 1) {
    setError(error, "signing failed: " + opensslErrors());
    return std::nullopt;
  }
  std::string sig(len, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char *>(sig.data()), &len, p, data.size()) != 1) {
    setError(error, "signing failed: " + opensslErrors());
    return std::nullopt;
  }
  sig.resize(len);
  return sig;
}

MdCtxPtr sha1VerifyTemplate(X509 *cert, std::string *error) {
  EVP_PKEY *key = X509_get0_pubkey(cert);
  if (key == nullptr || EVP_PKEY_is_a(key, "RSA") != 1) {
    ERR_clear_error();
    setError(error, "the certificate's key is not RSA");
    return nullptr;
  }
  MdCtxPtr ctx(EVP_MD_CTX_new());
  EVP_PKEY_CTX *pctx = nullptr;
  if (!ctx || EVP_DigestVerifyInit(ctx.get(), &pctx, EVP_sha1(), nullptr, key) != 1 ||
      EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) != 1) {
    setError(error, "cannot set up RSA/SHA-1 verification: " + opensslErrors());
    return nullptr;
  }
  return ctx;
}

bool verifySha1(const EVP_MD_CTX *tmpl, std::string_view data, std::string_view signature, std::string *error) {
  MdCtxPtr ctx(EVP_MD_CTX_new());
  if (!ctx || EVP_MD_CTX_copy_ex(ctx.get(), tmpl) != 1) {
    setError(error, "cannot set up RSA/SHA-1 verification: " + opensslErrors());
    return false;
  }
  int rc = EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char *>(signature.data()),
                            signature.size(), reinterpret_cast<const unsigned char *>(data.data()),
                            data.size());
  if (rc != 1) {
    setError(error, "signature does not match: " + opensslErrors());
    return false;
  }
  return true;
}

bool verifySha1(X509 *cert, std::string_view data, std::string_view signature, std::string *error) {
  MdCtxPtr tmpl = sha1VerifyTemplate(cert, error);
  return tmpl && verifySha1(tmpl.get(), data, signature, error);
}

}  // namespace switchyard::x509
