// SPDX-License-Identifier: MIT
//
// The fixed CA of the verifier fuzz target: a CA and one leaf certificate made with OpenSSL
// when the target starts (no key is kept in the repository), written as PEM files into a
// private temporary directory that is removed at exit.
#pragma once

#include <string>

namespace syfuzz {

struct Pki {
  std::string dir;
  std::string ca_crt;    ///< the CA certificate (verifier ca_file)
  std::string leaf_crt;  ///< the signer's certificate, CN fuzz.example.org, issued by the CA
  std::string leaf_key;  ///< its RSA key, mode 0600
};

/// Made once per process; aborts when OpenSSL cannot make it.
const Pki &pki();

}  // namespace syfuzz
