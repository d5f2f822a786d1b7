#!/usr/bin/python3
"""The origin's signature survives ZeroMQ -> AMQP -> ZeroMQ when
signatures are carried across (BRIDGE_KEEP_SIGNATURES=true): the envelope that leaves the
far end is byte-identical to the one the publisher sent.

Two bridge processes chained through one exchange (e.g. two sites): zmq-to-amqp.yaml
publishes to it with carry_envelope and message_id_mode uuid; amqp-to-zmq.yaml consumes
it with restore_envelope, checks the origin signature (verifier) and re-emits the original
envelope (signer keep_signed) instead of re-signing.

Also checked on the AMQP leg, with python3-pika: message_id is the UUID of msg_id (the
fedora-messaging wire format), the full msg_id is in fedmsg_msg_id, and the fedmsg_*
headers are enough for python3-cryptography to re-check the origin signature. A message
whose body was changed on AMQP (carried signature no longer matching) is dropped by the
verifier and never reaches ZeroMQ."""
import json
import uuid

import bridgetest as bt

CARRY = ("fedmsg_timestamp", "fedmsg_i", "fedmsg_username", "fedmsg_crypto", "fedmsg_signature",
         "fedmsg_certificate")


def envelopes(base):
    """Envelopes covering every way a key can travel: own header, fedmsg_extra, absent."""
    t = base + ".t"
    yield bt.fedmsg_envelope(t + "0", {"k": "v\u00e9"}, i=1)
    yield bt.fedmsg_envelope(t + "1", {"k": 1}, i=2, headers={"x-h": "1", "n": 3, "f": 1.5, "z": None})
    yield bt.fedmsg_envelope(t + "2", {"k": 2}, i=3, headers=None)
    yield bt.fedmsg_envelope(t + "3", {"k": 3}, i=4, headers={})
    yield bt.fedmsg_envelope(t + "4", {"k": 4}, i=5, timestamp=1700000000.5)  # a float (PHP emitter)
    yield bt.fedmsg_envelope(t + "5", {"k": 5}, i=2 ** 63 + 5, seq_id=42,
                             **{"\u043a\u043b\u044e\u0447": "\u0437\u043d\u0430\u0447\u0435\u043d\u0438\u0435"})
    yield bt.fedmsg_envelope(t + "6", {"big": 2 ** 80, "f": [1e-05, 0.1, 1e16, -0.0], "s": "\U0001F600\u2028",
                                       "nested": {"b": [{"z": 1, "a": 2}], "a": {}}}, i=7)
    yield bt.fedmsg_envelope(t + "7", {"k": 7}, i=8, username="\u00e9l\u00e8ve")
    yield bt.fedmsg_envelope(t + "9", {"k": 9}, i=10, msg_id="datanommer-legacy-id")  # not a UUID
    env = bt.fedmsg_envelope(t + "8", {"k": 8}, i=9)
    del env["i"]  # optional fields may be absent
    yield env


def rebuild_from_amqp(rk, props, body):
    """The origin envelope from an AMQP delivery, in Python: the fedmsg_* headers hold the
    envelope fields besides topic (routing key), msg (body) and msg_id."""
    h = props.headers
    env = json.loads(h["fedmsg_extra"]) if "fedmsg_extra" in h else {}
    for k in CARRY:
        if k in h:
            env[k[len("fedmsg_"):]] = h[k]
    env.update(topic=rk, msg=json.loads(body), msg_id=h["fedmsg_msg_id"])
    return env


def main():
    broker = bt.amqp_fixture.Broker()
    pki = bt.make_pki()
    conn = broker.connection()
    ch = conn.channel()
    exchange = bt.unique("sy-tunnel")
    ch.exchange_declare(exchange, "topic", durable=True)
    base = bt.unique("org.fedoraproject.dev.sig")
    queue = bt.unique("sy-bridge-sig")
    collector = bt.Collector(broker, [(exchange, base + ".#")])
    pub_port, far_port = bt.free_port(), bt.free_port()
    pub = bt.publisher(pub_port)
    far = bt.ZmqCollector(f"tcp://127.0.0.1:{far_port}")
    common = dict(BRIDGE_KEEP_SIGNATURES="true")
    z2a = bt.Bridge("zmq-to-amqp.yaml", bt.bridge_env(
        broker, pki, FEDMSG_ENDPOINT=f"tcp://127.0.0.1:{pub_port}",
        FEDMSG_BRIDGE_ENDPOINT=f"tcp://127.0.0.1:{bt.free_port()}",
        ZMQ_TO_AMQP_EXCHANGE=exchange, BRIDGE_MESSAGE_ID_MODE="uuid", **common))
    a2z = bt.Bridge("amqp-to-zmq.yaml", bt.bridge_env(
        broker, pki, AMQP_TO_ZMQ_EXCHANGE=exchange, AMQP_TO_ZMQ_QUEUE=queue, AMQP_TO_ZMQ_BINDING=base + ".#",
        FEDMSG_BRIDGE_BIND=f"tcp://127.0.0.1:{far_port}", **common))
    signer = bt.FedmsgSigner(f"{pki}/good.key", f"{pki}/good.crt")
    try:
        pub.wait_subscription(30)
        z2a.wait_counter("zmq-to-amqp", "amqp-publish", "connected", lambda v: v == 1)
        a2z.wait_counter("amqp-to-zmq", "amqp-consume", "connected", lambda v: v == 1)
        a2z.wait_counter("amqp-to-zmq", "zmq-pub", "subscriptions", lambda v: v >= 1)

        sent = {}
        for env in envelopes(base):
            env = signer.sign(env)
            data = bt.send_envelope(pub, env)  # canonical, as fedmsg publishers send it
            sent[env["msg_id"]] = (env, data)
        n = len(sent)

        # the AMQP leg
        amqp = bt.settle(collector.snapshot, timeout=60, at_least=n)
        bt.check(len(amqp) == n, f"{len(amqp)} AMQP deliveries for {n}")
        for ex, rk, props, body in amqp:
            h = props.headers
            full = h["fedmsg_msg_id"]
            bt.check(full in sent, f"fedmsg_msg_id {full}")
            bt.check(uuid.UUID(props.message_id).version == 4, f"message_id {props.message_id} is a UUID4")
            if full != "datanommer-legacy-id":
                bt.check(props.message_id == bt.strip_year(full), f"message_id {props.message_id} of {full}")
            env, _ = sent[full]
            bt.check(rebuild_from_amqp(rk, props, body) == env, "the fedmsg_* headers carry the envelope")
            bt.check(bt.verify(rebuild_from_amqp(rk, props, body), f"{pki}/ca.crt") == "good.example.org",
                     "origin signature checks out on the AMQP side")
            bt.check("x-switchyard-bridged" not in h, "a signed message is not marked (keep_signed)")
            if isinstance(env.get("headers"), dict):
                for k, v in env["headers"].items():
                    if not isinstance(v, float):
                        bt.check(h.get(k) == v, f"fedmsg header {k} also as an AMQP header")

        # the far end: byte-identical envelopes
        far.wait_count(n, 60)
        got = bt.settle(far.snapshot, timeout=30, at_least=n)
        bt.check(len(got) == n, f"{len(got)} at the far end for {n}")
        for topic, data in got:
            env = json.loads(data)
            original, original_bytes = sent[env["msg_id"]]
            bt.check(data == original_bytes, f"not byte-identical:\n{data!r}\n{original_bytes!r}")
            bt.check(topic.decode() == original["topic"], "frame 0")
            bt.check(bt.verify(env, f"{pki}/ca.crt") == "good.example.org", "the origin's signature")

        # a carried message changed on the AMQP side: its signature no longer matches
        ex, rk, props, body = amqp[0]
        forged = json.loads(body)
        forged["forged"] = True
        ch.basic_publish(exchange, rk, json.dumps(forged).encode(), props)
        a2z.wait_counter("amqp-to-zmq", "verifier", "dropped", lambda v: v == 1, reason="bad_signature")

        z2a.finish()
        a2z.finish()
        bt.check(len(far.snapshot()) == n, "the forged message never reached ZeroMQ")
        bt.check(z2a.counter("zmq-to-amqp", "amqp-publish", "envelopes_carried") == n, "carried")
        bt.check(a2z.counter("amqp-to-zmq", "amqp-consume", "envelopes_restored") == n + 1, "restored")
        bt.check(a2z.counter("amqp-to-zmq", "verifier", "verified") == n, "origin signatures checked")
        bt.check(a2z.counter("amqp-to-zmq", "signer", "kept_signed") == n, "not re-signed")
        bt.check(a2z.counter("amqp-to-zmq", "zmq-pub", "envelopes_passed_through") == n, "sent byte-exact")
        bt.log(f"{n} signed envelopes crossed ZeroMQ -> AMQP -> ZeroMQ byte-identical")
        print("ok")
    finally:
        for b in (z2a, a2z):
            if b.proc.poll() is None:
                b.stop()
        collector.close()
        far.close()
        pub.close()
        ch.queue_delete(queue)
        ch.exchange_delete(exchange)
        conn.close()


if __name__ == "__main__":
    main()
