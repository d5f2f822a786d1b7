#!/usr/bin/python3
"""Forged envelopes must not poison the loss accounting.

A python3-zmq publisher sends 1,200 genuine envelopes of publisher `alpha` (signed with a
test key the verifier trusts, `i` = 1..1200 with 9 values never sent) and, interleaved with
them, 476 forged envelopes that carry the same name and `i` = 1 under a signature that does
not match. Pipeline: zmq-sub -> verifier -> stdout. zmq-sub tracks `i` only for envelopes
the verifier did not refuse, so `seq_missing` is exactly 9 (not millions), no restart is
counted, and the 476 show up as `seq_unverified` and as the verifier's bad_signature drops.
Keys and CA are made with openssl at test time (tests/crypto/pyhelper.py)."""
import base64
import json
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "crypto"))
import pyhelper  # noqa: E402
from zmqtest import TOPIC, Publisher, Switchyard, check, free_port, write_config  # noqa: E402

from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import padding  # noqa: E402

GENUINE = 1200
SKIPPED = {100, 101, 102, 103, 104, 500, 777, 778, 1100}  # never sent: 9 truly missing, 4 runs
FORGED = 476


class Signer:
    def __init__(self, pki):
        with open(os.path.join(pki, "good.key"), "rb") as f:
            self.key = serialization.load_pem_private_key(f.read(), password=None)
        with open(os.path.join(pki, "good.crt"), "rb") as f:
            pem = x509.load_pem_x509_certificate(f.read()).public_bytes(serialization.Encoding.PEM)
        self.cert = base64.b64encode(pem).decode()

    def sign(self, env):
        env = dict(env, crypto="x509")
        sig = self.key.sign(pyhelper.canonical(env).encode(), padding.PKCS1v15(), hashes.SHA1())
        return dict(env, signature=base64.b64encode(sig).decode(), certificate=self.cert)


def main():
    with tempfile.TemporaryDirectory() as tmp:
        pki = os.path.join(tmp, "pki")
        os.makedirs(pki)
        pyhelper.pki(pki)
        signer = Signer(pki)

        def env(i, n):
            return {"topic": TOPIC, "msg": {"n": n}, "msg_id": f"2026-seq-forged-{n}", "timestamp": 1700000000,
                    "i": i, "username": "alpha"}

        frames = []
        genuine_ids = []
        forged_sent = 0
        for i in range(1, GENUINE + 1):
            if i not in SKIPPED:
                e = signer.sign(env(i, i))
                frames.append(e)
                genuine_ids.append(e["msg_id"])
            if forged_sent < FORGED and i % 2 == 0:
                # A real signature of another envelope: the name, `i` and certificate are
                # right, the signature is not.
                forged_sent += 1
                e = signer.sign(env(1, 100000 + forged_sent))
                e["msg"] = {"n": "forged"}
                frames.append(e)
        check(forged_sent == FORGED, "test setup")

        port = free_port()
        endpoint = f"tcp://127.0.0.1:{port}"
        pub = Publisher(endpoint)
        cfg = write_config(tmp, f"""version: 1
pipelines:
  seq:
    input:
      type: zmq-sub
      endpoints: ["{endpoint}"]
      hwm: 0
    filters:
      - type: verifier
        ca_file: {pki}/ca.crt
        nitpicky: false
    outputs:
      - type: stdout
""")
        sy = Switchyard(["run", cfg])
        try:
            pub.wait_subscription()
            for e in frames:
                pub.send([TOPIC.encode(), json.dumps(e, sort_keys=True).encode()])
            lines = sy.read_lines(len(genuine_ids), timeout=40)
        finally:
            rc = sy.stop()
            pub.close()
        check(rc == 0, f"exit {rc}\n{sy.stderr()[-3000:]}")
        got = [json.loads(l)["id"] for l in lines]
        check(got == genuine_ids, "exactly the genuine envelopes come out, in order")
        check(sy.rest() == [], "nothing else comes out")
        stats = sy.stats()
        want = {
            ("zmq-sub", "seq_missing", ""): len(SKIPPED),
            ("zmq-sub", "seq_gaps", ""): 4,
            ("zmq-sub", "seq_restarts", ""): 0,
            ("zmq-sub", "seq_duplicates", ""): 0,
            ("zmq-sub", "seq_reordered", ""): 0,
            ("zmq-sub", "seq_late", ""): 0,
            ("zmq-sub", "seq_unverified", ""): FORGED,
            ("zmq-sub", "seq_open", ""): 0,
            ("zmq-sub", "publishers", ""): 1,
            ("zmq-sub", "zmq_received", ""): len(frames),
            ("verifier", "dropped", "bad_signature"): FORGED,
        }
        for key, value in want.items():
            check(stats.get(key) == value, f"{key} = {stats.get(key)}, want {value}\n{sy.stderr()[-3000:]}")
    print(f"ok: {FORGED} forged envelopes ignored, seq_missing = {len(SKIPPED)} exactly")


if __name__ == "__main__":
    main()
