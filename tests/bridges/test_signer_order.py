#!/usr/bin/python3
"""`i` leaves in order.

amqp-consume -> signer (workers: 4, so four signer instances share one `i` counter) ->
zmq-pub, 5,000 messages, with a python3-zmq SUB: the envelopes arrive with `i` = 1, 2,
3, ... 5,000 (strictly increasing by one, so a subscriber counts no false gap), every
signature checks out with python3-cryptography, and zmq-pub skipped no `i` (the reorder
buffer never gave up on one) and sent none late."""
import base64
import json

import bridgetest as bt
import zmqtest

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

N = 5000


def main():
    broker = bt.amqp_fixture.Broker()
    pki = bt.make_pki()
    tmp = bt.tmpdir("sy-signer-order-")
    conn = broker.connection()
    ch = conn.channel()
    queue = bt.unique("sy-signer-order")
    topic = bt.unique("org.fedoraproject.dev.order")
    port = bt.free_port()
    cfg = zmqtest.write_config(tmp, f"""version: 1
pipelines:
  signed:
    workers: 4
    input:
      type: amqp-consume
      url: "{broker.url}"
      queue: {queue}
      bindings: [{{exchange: amq.topic, routing_keys: ["{topic}.#"]}}]
      prefetch: 500
    filters:
      - type: signer
        cert_file: "{pki}/other.crt"
        key_file: "{pki}/other.key"
    outputs:
      - type: zmq-pub
        endpoints: ["tcp://127.0.0.1:{port}"]
        hwm: 0
        no_drop: true
        wait_for_subscriber: 30
""", "signed.yaml")
    sub = bt.ZmqCollector(f"tcp://127.0.0.1:{port}")
    router = bt.Bridge(cfg, {})
    try:
        router.wait_counter("signed", "amqp-consume", "connected", lambda v: v == 1, timeout=30)
        router.wait_counter("signed", "zmq-pub", "subscriptions", lambda v: v >= 1, timeout=30)
        ch.confirm_delivery()
        for n in range(N):
            bt.publish_amqp(ch, "amq.topic", f"{topic}.t{n % 7}", {"n": n, "pad": "x" * (n % 200)},
                            message_id=f"order-{n:05d}")
        got = bt.settle(sub.snapshot, timeout=120, idle=2.0, at_least=N)
        bt.wait_for(lambda: broker.queue_counts(queue)[:2] == (0, 0), 30, "queue empty, nothing unacked")
        router.finish()
    finally:
        if router.proc.poll() is None:
            router.stop()
        sub.close()
        ch.queue_delete(queue)
        conn.close()

    envs = [json.loads(f1) for _, f1 in got]
    seq = [e["i"] for e in envs]
    bad = [(k, a, b) for k, (a, b) in enumerate(zip(seq, seq[1:])) if b != a + 1]
    bt.check(len(envs) == N, f"{len(envs)} envelopes for {N}")
    bt.check(seq[0] == 1 and not bad, f"`i` not 1, 2, 3, ...: first {seq[0]}, breaks {bad[:10]}")
    bt.check(sorted(e["msg_id"].split("-", 1)[1] for e in envs) == [f"order-{n:05d}" for n in range(N)],
             "every message once")
    # Signatures: the full check (chain to the test CA) on the first, then the same
    # certificate's key over Python's canonical bytes for every envelope.
    bt.check(bt.verify(envs[0], f"{pki}/ca.crt") == "other.example.org", "signer identity")
    cert_field = envs[0]["certificate"]
    key = x509.load_pem_x509_certificate(base64.b64decode(cert_field)).public_key()
    for e in envs:
        e = dict(e)
        bt.check(e.pop("certificate") == cert_field, "same certificate")
        sig = base64.b64decode(e.pop("signature"))
        key.verify(sig, bt.canonical(e).encode("utf-8"), padding.PKCS1v15(), hashes.SHA1())
    c = router.counters()
    reordered = router.counter("signed", "zmq-pub", "reordered")
    bt.check(router.counter("signed", "zmq-pub", "reorder_skipped") == 0, f"skipped: {c}")
    bt.check(router.counter("signed", "zmq-pub", "reorder_late") == 0, f"late: {c}")
    bt.check(router.counter("signed", "zmq-pub", "sent") == N, f"sent: {c}")
    bt.check(router.counter("signed", "amqp-consume", "completed", reason="delivered") == N, f"acked: {c}")
    bt.log(f"ok: {N} signed envelopes left with i = 1..{N} in order; "
           f"{reordered} had to wait for a lower i (signed out of order by the workers)")
    print("ok")


if __name__ == "__main__":
    main()
