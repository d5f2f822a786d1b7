// SPDX-License-Identifier: MIT
//
// signer (filter): see signer.hpp and docs/plugins/signer.md.
//
//   filters:
//     - type: signer
//       cert_file: /etc/pki/fedmsg/bridge.crt
//       key_file: /etc/pki/fedmsg/bridge.key
#include "signer.hpp"

SWITCHYARD_PLUGIN(switchyard::plugins::SignerFactory, SY_KIND_FILTER, "signer", "1.0.0",
                  "Signs fedmsg envelopes (x509: RSA PKCS#1 v1.5 / SHA-1), like fedmsg's signer", SY_FLAG_PARALLEL,
                  switchyard::plugins::kSignerSchema)
