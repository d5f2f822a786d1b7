#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""signer and verifier when the configuration is loaded (PKI made with openssl at test time):

1. `switchyard check` reports every problem of every signer and verifier in one run, each
   once, at its key's file:line:column: an unreadable CA, a file that is not a CRL, a CRL
   of another CA, nitpicky with an empty routing_policy (which would drop every signed
   message), a missing certificate, a key that is not the certificate's.
2. Warnings: no crl_file, allow_unsigned, nitpicky with an empty policy next to
   allow_unsigned: `check` prints each once with file:line:column and passes (exit 0),
   also with `workers: 4`; `--strict` fails.
3. `switchyard run` of that file logs each warning exactly once at start-up (the CRL warning
   the docs promise, allow_unsigned once, not twice)."""
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pyhelper  # noqa: E402

BIN = os.environ["SWITCHYARD_BIN"]


def run(args, timeout=60, stdin=subprocess.DEVNULL):
    p = subprocess.run([BIN] + args, capture_output=True, text=True, timeout=timeout, stdin=stdin)
    return p.returncode, p.stdout + p.stderr


def expect_once(out, patterns):
    for pat in patterns:
        n = len(re.findall(pat, out, re.M))
        assert n == 1, f"{pat!r} found {n} times, want once\n{out}"


def foreign_crl(pki, path):
    """A CRL signed by the foreign CA (python3-cryptography)."""
    import datetime
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    with open(os.path.join(pki, "foreign-ca.key"), "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    with open(os.path.join(pki, "foreign-ca.crt"), "rb") as f:
        ca = x509.load_pem_x509_certificate(f.read())
    now = datetime.datetime.now(datetime.timezone.utc)
    crl = (x509.CertificateRevocationListBuilder().issuer_name(ca.subject).last_update(now)
           .next_update(now + datetime.timedelta(days=30)).sign(key, hashes.SHA256()))
    with open(path, "wb") as f:
        f.write(crl.public_bytes(serialization.Encoding.PEM))


def test_errors(tmp, pki):
    foreign_crl(pki, os.path.join(tmp, "foreign-crl.pem"))
    cfg = os.path.join(tmp, "errors.yaml")
    with open(cfg, "w") as f:
        f.write(f"""version: 1
pipelines:
  p:
    input: {{type: stdin}}
    filters:
      - type: verifier
        ca_file: {tmp}/no-such-ca.crt
        crl_file: {pki}/good.crt
      - type: verifier
        ca_file: {pki}/ca.crt
        crl_file: {tmp}/foreign-crl.pem
        routing_policy: {{}}
      - type: signer
        cert_file: {tmp}/no-such.crt
        key_file: {pki}/good.key
      - type: signer
        cert_file: {pki}/good.crt
        key_file: {pki}/other.key
    outputs: [{{type: stdout}}]
""")
    rc, out = run(["check", cfg])
    assert rc == 2, f"exit {rc}\n{out}"
    f0 = r"pipelines\.p\.filters\[0\]"
    f1 = r"pipelines\.p\.filters\[1\]"
    expect_once(out, [
        rf"/errors\.yaml:6:9: {f0}\.routing_policy: nitpicky is true and routing_policy is empty",
        rf"/errors\.yaml:7:18: {f0}\.ca_file: cannot open '[^']*no-such-ca\.crt': No such file or directory",
        rf"/errors\.yaml:8:19: {f0}\.crl_file: '[^']*good\.crt' holds no PEM CRL",
        rf"/errors\.yaml:11:19: {f1}\.crl_file: the CRL in '[^']*foreign-crl\.pem' was not issued by the CA",
        rf"/errors\.yaml:12:25: {f1}\.routing_policy: nitpicky is true and routing_policy is empty, so every "
        r"signed message would be dropped as policy_denied; list who may publish each topic in routing_policy.*"
        r"or set nitpicky: false",
        r"/errors\.yaml:14:20: pipelines\.p\.filters\[2\]\.cert_file: cannot open '[^']*no-such\.crt'",
        r"/errors\.yaml:18:19: pipelines\.p\.filters\[3\]\.key_file: key_file '[^']*other\.key' does not match the "
        r"public key of cert_file",
        r"^7 error\(s\)",
    ])
    print("ok: every signer and verifier problem in one check run, each once")


def test_warnings(tmp, pki):
    cfg = os.path.join(tmp, "warnings.yaml")
    with open(cfg, "w") as f:
        f.write(f"""version: 1
pipelines:
  p:
    workers: 4
    input: {{type: stdin}}
    filters:
      - type: verifier
        ca_file: {pki}/ca.crt
        allow_unsigned: true
    outputs: [{{type: stdout}}]
""")
    rc, out = run(["check", cfg])
    assert rc == 0, f"exit {rc}\n{out}"
    f0 = r"pipelines\.p\.filters\[0\]"
    warnings = [
        rf"{f0}(\.crl_file)?: (warning: )?no crl_file: revocation is NOT checked",
        rf"{f0}(\.allow_unsigned)?: (warning: )?allow_unsigned is true: messages without a signature pass",
        rf"{f0}(\.routing_policy)?: (warning: )?nitpicky is true and routing_policy is empty.*only unsigned "
        r"messages pass",
    ]
    expect_once(out, [
        r"/warnings\.yaml:7:\d+: " + warnings[0],
        r"/warnings\.yaml:9:25: " + warnings[1],
        r"/warnings\.yaml:7:\d+: " + warnings[2],
        r"^0 error\(s\), 3 warning\(s\)",
        r"warnings\.yaml: OK \(3 warnings\)",
    ])
    rc, out = run(["check", "--strict", cfg])
    assert rc == 2, f"--strict: exit {rc}\n{out}"
    print("ok: check shows each warning once (workers: 4), --strict fails")

    # run: each warning logged once at start-up; stdin at EOF ends it
    rc, out = run(["run", cfg])
    assert rc == 0, f"run: exit {rc}\n{out}"
    for w in warnings:
        n = len(re.findall(w, out))
        assert n == 1, f"run logged {w!r} {n} times, want once\n{out}"
    print("ok: run logs each warning once")


def main():
    with tempfile.TemporaryDirectory(prefix="sy-check-crypto-") as tmp:
        pki = os.path.join(tmp, "pki")
        os.mkdir(pki)
        pyhelper.pki(pki)
        test_errors(tmp, pki)
        test_warnings(tmp, pki)


if __name__ == "__main__":
    main()
