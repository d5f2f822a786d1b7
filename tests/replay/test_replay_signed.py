#!/usr/bin/python3
"""Signed and numbered: one `switchyard run` with two pipelines, as an AMQP->ZeroMQ bridge
and a ZeroMQ->AMQP bridge downstream of it would be:

  sign:    stdin -> signer -> zmq-pub (replay_endpoint)       the publishing side
  verify:  zmq-sub -> verifier -> stdout                      the consuming side

Every envelope leaves the publishing side signed and numbered (seq_id 1..N, inserted
after the signature); the consuming side's verifier passes all of them (verified = N,
nothing dropped); a python3-cryptography check written as fedmsg's validator refuses
each numbered envelope the replay endpoint returns and accepts it once seq_id is removed
(the documented incompatibility)."""
import base64
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.environ["SWITCHYARD_SOURCE_ROOT"], "tests", "crypto"))
import pyhelper  # noqa: E402
from replaytest import Switchyard, check, free_port, get_replay, write_config  # noqa: E402

N = 20
TOPIC = "org.fedoraproject.dev.replay.signed"


def fedmsg_valid(env):
    """fedmsg.crypto.x509's check: the signature over the canonical envelope minus
    signature and certificate."""
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding
    env = dict(env)
    sig = base64.b64decode(env.pop("signature"))
    cert = x509.load_pem_x509_certificate(base64.b64decode(env.pop("certificate")))
    try:
        cert.public_key().verify(sig, pyhelper.canonical(env).encode(), padding.PKCS1v15(), hashes.SHA1())
        return True
    except InvalidSignature:
        return False


def main():
    with tempfile.TemporaryDirectory() as tmp:
        pki = os.path.join(tmp, "pki")
        pyhelper.pki(pki)
        p_mid, p_replay = free_port(), free_port()
        cfg = write_config(tmp, f"""version: 1
pipelines:
  sign:
    input: {{type: stdin}}
    filters:
      - type: signer
        cert_file: {pki}/good.crt
        key_file: {pki}/good.key
    outputs:
      - type: zmq-pub
        endpoints: ["tcp://127.0.0.1:{p_mid}"]
        replay_endpoint: "tcp://127.0.0.1:{p_replay}"
        wait_for_subscriber: 30
  verify:
    input:
      type: zmq-sub
      endpoints: ["tcp://127.0.0.1:{p_mid}"]
    filters:
      - type: verifier
        ca_file: {pki}/ca.crt
        crl_file: {pki}/crl.pem
        routing_policy: {{{TOPIC}: [good.example.org]}}
    outputs:
      - {{type: stdout}}
""")
        sy = Switchyard(["run", cfg], stdin=subprocess.PIPE)
        try:
            lines = [json.dumps({"topic": TOPIC, "body": {"n": n, "t": "h\u00e9"}, "id": f"2026-signed-{n}"},
                                separators=(",", ":")) for n in range(N)]
            sy.proc.stdin.write(("\n".join(lines) + "\n").encode())
            sy.proc.stdin.flush()
            out = sy.read_lines(N, 30)
            # What was published, as the replay endpoint keeps it (the replay tests check
            # that it is byte for byte what subscribers receive).
            _, wire = get_replay(f"tcp://127.0.0.1:{p_replay}", {"seq_id_range": [1, N]})
            envs = [json.loads(f) for f in wire]
            check([e["seq_id"] for e in envs] == list(range(1, N + 1)), "seq_ids 1..N")
            for e in envs:
                check("signature" in e and "certificate" in e, "signed")
                check(not fedmsg_valid(e), "fedmsg's validator accepted a numbered envelope")
                check(fedmsg_valid({k: v for k, v in e.items() if k != "seq_id"}), "valid without seq_id")
            check(len(out) == N, f"the verifying pipeline passed {len(out)} of {N}")
            sy.proc.stdin.close()
        finally:
            rc = sy.stop()
        check(rc == 0, f"exit {rc}\n{sy.stderr()[-3000:]}")
        st = sy.stats()
        check(st[("verifier", "verified", "")] == N, f"verified {st[('verifier', 'verified', '')]}\n"
              f"{sy.stderr()[-3000:]}")
        check(st[("verifier", "dropped", "bad_signature")] == 0, "bad_signature drops")
    print("ok")


if __name__ == "__main__":
    main()
