// SPDX-License-Identifier: MIT
//
// verifier (filter): see verifier.hpp and docs/plugins/verifier.md.
//
//   filters:
//     - type: verifier
//       ca_file: /etc/pki/fedmsg/ca.crt
//       crl_file: /etc/pki/fedmsg/crl.pem
//       routing_policy: {org.fedoraproject.prod.bodhi.update.comment: [bodhi-app01.example.org]}
#include "verifier.hpp"

SWITCHYARD_PLUGIN(switchyard::plugins::VerifierFactory, SY_KIND_FILTER, "verifier", "1.0.0",
                  "Verifies fedmsg x509 signatures, CA/CRL chain and routing policy", SY_FLAG_PARALLEL,
                  switchyard::plugins::kVerifierSchema)
