#!/usr/bin/python3
"""The two example bridges end to end on a private RabbitMQ.

ZeroMQ -> AMQP: an independent python3-zmq fedmsg publisher sends envelopes signed with a
certificate of a CA made at test time -> examples/pipelines/zmq-to-amqp.yaml -> a
python3-pika consumer bound to zmq.topic gets every message once, in the fedora-messaging
wire format (docs/plugins/amqp-publish.md): routing key = topic, body = msg, the envelope headers as
AMQP headers, message_id = msg_id (reference parity).

AMQP -> ZeroMQ: python3-pika publishes to amq.topic -> examples/pipelines/amqp-to-zmq.yaml
-> a python3-zmq subscriber gets envelopes whose signature python3-cryptography verifies
over Python's canonical bytes, with the AMQP headers, severity and schema name in the
envelope's `headers`, username amqp-bridge; every delivery is acknowledged."""
import json
import re

import bridgetest as bt

N = 40


def zmq_to_amqp(broker, pki):
    conn = broker.connection()
    ch = conn.channel()
    ch.exchange_declare("zmq.topic", "topic", durable=True)  # as amqp-publish declares it
    base = bt.unique("org.fedoraproject.dev.z2a")
    collector = bt.Collector(broker, [("zmq.topic", base + ".#")])
    pub_port = bt.free_port()
    pub = bt.publisher(pub_port)
    bridge = bt.Bridge("zmq-to-amqp.yaml", bt.bridge_env(
        broker, pki,
        FEDMSG_ENDPOINT=f"tcp://127.0.0.1:{pub_port}",
        # the AMQP->ZeroMQ bridge's socket: nothing listens there in this test
        FEDMSG_BRIDGE_ENDPOINT=f"tcp://127.0.0.1:{bt.free_port()}"))
    signer = bt.FedmsgSigner(f"{pki}/good.key", f"{pki}/good.crt")
    try:
        bt.check(pub.wait_subscription(30) == b"", "zmq-sub subscribes to everything")
        bridge.wait_counter("zmq-to-amqp", "amqp-publish", "connected", lambda v: v == 1)
        sent = {}
        for n in range(N):
            env = bt.fedmsg_envelope(f"{base}.t{n % 3}",
                                     {"n": n, "s": "v\u00e9\u4e2d", "f": 1.5, "big": 2 ** 70, "l": [1, None, True]},
                                     i=n + 1, username="apache")
            if n % 2 == 0:
                env["headers"] = {"x-h": "1", "n": 3, "ok": True, "nested": {"a": [1, "b"]}}
            env = signer.sign(env)
            bt.send_envelope(pub, env)
            sent[env["msg_id"]] = env
        got = bt.settle(collector.snapshot, timeout=60, at_least=N)
        bt.check(len(got) == N, f"{len(got)} deliveries for {N} messages")
        seen = set()
        for exchange, rk, props, body in got:
            bt.check(exchange == "zmq.topic", exchange)
            mid = props.message_id
            bt.check(mid in sent and mid not in seen, f"unexpected or duplicate message_id {mid}")
            seen.add(mid)
            env = sent[mid]
            bt.check(rk == env["topic"], f"routing key {rk} != topic {env['topic']}")
            # body = msg, byte for byte as the envelope carried it (never the whole envelope)
            bt.check(body == bt.canonical(env["msg"]).encode(), f"body {body!r}")
            bt.check(json.loads(body) == env["msg"], "body value")
            bt.check(props.content_type == "application/json", props.content_type)
            bt.check(props.content_encoding == "utf-8", props.content_encoding)
            bt.check(props.delivery_mode == 2, props.delivery_mode)
            bt.check(props.user_id is None and props.timestamp is None, "no user_id/timestamp")
            h = props.headers
            bt.check(h["fedora_messaging_schema"] == "base.message", h)
            bt.check(h["fedora_messaging_schema_package"] == "fedora_messaging", h)
            bt.check(h["fedora_messaging_severity"] == 20, h)
            bt.check(h["priority"] == 0, h)
            bt.check(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", h["sent-at"]), h["sent-at"])
            for k, v in env.get("headers", {}).items():
                bt.check(h.get(k) == v, f"header {k}: {h.get(k)!r} != {v!r}")
            bt.check(h.get("x-switchyard-bridged") == "zmq-to-amqp", "provenance mark")
            bt.check(not any(k.startswith("fedmsg_") for k in h), f"carry headers are off by default: {h}")
        bt.check(seen == set(sent), "every message once")
        bridge.finish()
        bt.check(bridge.counter("zmq-to-amqp", "verifier", "verified") == N, "all verified")
        bt.check(bridge.counter("zmq-to-amqp", "amqp-publish", "confirmed") == N, "all confirmed")
        bt.check(bridge.drops("zmq-to-amqp", "verifier") == {}, bridge.drops("zmq-to-amqp", "verifier"))
        bt.log(f"zmq-to-amqp: {N} signed fedmsg messages -> zmq.topic, wire format checked")
    finally:
        if bridge.proc.poll() is None:
            bridge.stop()
        collector.close()
        pub.close()
        conn.close()


def amqp_to_zmq(broker, pki):
    queue = bt.unique("sy-a2z-e2e")
    base = bt.unique("org.fedoraproject.dev.a2z")
    pub_port = bt.free_port()
    bridge = bt.Bridge("amqp-to-zmq.yaml", bt.bridge_env(
        broker, pki,
        AMQP_TO_ZMQ_QUEUE=queue, AMQP_TO_ZMQ_BINDING=base + ".#",
        FEDMSG_BRIDGE_BIND=f"tcp://127.0.0.1:{pub_port}"))
    sub = bt.ZmqCollector(f"tcp://127.0.0.1:{pub_port}")
    conn = broker.connection()
    ch = conn.channel()
    try:
        bridge.wait_counter("amqp-to-zmq", "zmq-pub", "subscriptions", lambda v: v >= 1)
        bridge.wait_counter("amqp-to-zmq", "amqp-consume", "connected", lambda v: v == 1)
        sent = {}
        for n in range(N):
            body = {"hello": "w\u00f6rld", "n": [n, 2], "f": 0.25}
            headers = {"fedora_messaging_schema": "anitya.project.version.update",
                       "fedora_messaging_schema_package": "anitya_schema",
                       "fedora_messaging_severity": 30, "sent-at": "2026-11-22T11:53:02+00:00",
                       "priority": 0, "x-custom": "x", "fedora_messaging_user_alice": True,
                       "nested": {"a": [1, "b"]}}
            mid = bt.publish_amqp(ch, "amq.topic", f"{base}.t{n % 4}", body, headers)
            sent[mid] = (f"{base}.t{n % 4}", body, headers)
        sub.wait_count(N, 60)
        got = bt.settle(sub.snapshot, timeout=30, at_least=N)
        bt.check(len(got) == N, f"{len(got)} ZeroMQ messages for {N}")
        seen = set()
        for frames in got:
            bt.check(len(frames) == 2, "two frames")
            env = json.loads(frames[1])
            cn = bt.verify(env, f"{pki}/ca.crt")  # python3-cryptography, Python's canonical bytes
            bt.check(cn == "other.example.org", f"signed by the bridge's certificate, not {cn}")
            bt.check(env["crypto"] == "x509", env)
            mid = bt.strip_year(env["msg_id"])
            bt.check(re.fullmatch(r"\d{4}-.*", env["msg_id"]), "year-prefixed msg_id")
            bt.check(mid in sent and mid not in seen, f"unexpected or duplicate {env['msg_id']}")
            seen.add(mid)
            topic, body, headers = sent[mid]
            bt.check(frames[0].decode() == topic == env["topic"], "frame 0 = envelope topic = routing key")
            bt.check(env["msg"] == body, "msg = body")
            bt.check(env["username"] == "amqp-bridge", "username marker")
            bt.check(isinstance(env["timestamp"], int) and isinstance(env["i"], int), "timestamp, i")
            for k, v in headers.items():  # AMQP headers, severity, schema: kept, unlike the reference
                bt.check(env["headers"].get(k) == v, f"header {k}: {env['headers'].get(k)!r} != {v!r}")
            bt.check(env["headers"]["x-switchyard-bridged"] == "amqp-to-zmq", "provenance mark")
        bt.check(seen == set(sent), "every message once")
        # acknowledged once handed to ZeroMQ: the queue ends empty with nothing unacked
        bt.wait_for(lambda: broker.queue_counts(queue)[:2] == (0, 0), 30, "queue drained and acked")
        bridge.finish()
        bt.check(bridge.counter("amqp-to-zmq", "amqp-consume", "acked") == N, "every delivery acked")
        bt.check(bridge.counter("amqp-to-zmq", "zmq-pub", "sent") == N, "every message handed to ZeroMQ")
        bt.log(f"amqp-to-zmq: {N} AMQP messages -> signed fedmsg, verified with python3-cryptography")
    finally:
        if bridge.proc.poll() is None:
            bridge.stop()
        sub.close()
        ch.queue_delete(queue)
        conn.close()


def main():
    broker = bt.amqp_fixture.Broker()
    pki = bt.make_pki()
    zmq_to_amqp(broker, pki)
    amqp_to_zmq(broker, pki)
    print("ok")


if __name__ == "__main__":
    main()
