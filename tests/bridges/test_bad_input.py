#!/usr/bin/python3
"""No bad message stops a bridge (where one
such message ends the reference zmq_to_amqp with exit status 0).

examples/pipelines/bridge.yaml runs both directions. Each bad message is followed by a
good one, which must still come out on the other side; at the end every bad message is
counted under its own reason, the AMQP channel was never closed (one connect, no
disconnect) and the process exits 0 on SIGTERM.

ZeroMQ side: JSON that is not an object ([1], "x", 3), `headers` that is not an object (a
list, a string), a `username` without `msg_id`, a 300-byte topic (AMQP routing keys hold
255 bytes: refused before publishing), a `msg` that is not an object (fedora-messaging's
base schema), invalid JSON, invalid UTF-8, a single frame.
AMQP side: a body that is not JSON, not UTF-8, JSON but not an object."""
import json

import bridgetest as bt


def main():
    broker = bt.amqp_fixture.Broker()
    pki = bt.make_pki()
    conn = broker.connection()
    ch = conn.channel()
    ch.exchange_declare("zmq.topic", "topic", durable=True)
    run = bt.unique("org.fedoraproject.dev.bad")
    queue = bt.unique("sy-bridge-bad")
    collector = bt.Collector(broker, [("zmq.topic", run + ".#")])
    pub_port, bridge_port = bt.free_port(), bt.free_port()
    pub = bt.publisher(pub_port)
    sub = bt.ZmqCollector(f"tcp://127.0.0.1:{bridge_port}", topic=run.encode())
    bridge = bt.Bridge("bridge.yaml", bt.bridge_env(
        broker, pki,
        FEDMSG_ENDPOINT=f"tcp://127.0.0.1:{pub_port}",
        FEDMSG_BRIDGE_ENDPOINT=f"tcp://127.0.0.1:{bridge_port}",
        FEDMSG_BRIDGE_BIND=f"tcp://127.0.0.1:{bridge_port}",
        AMQP_TO_ZMQ_QUEUE=queue, AMQP_TO_ZMQ_BINDING=run + ".#"))
    signer = bt.FedmsgSigner(f"{pki}/good.key", f"{pki}/good.crt")
    topic = run + ".z"
    try:
        pub.wait_subscription(30)
        bridge.wait_counter("amqp-to-zmq", "zmq-pub", "subscriptions", lambda v: v == 2)
        bridge.wait_counter("amqp-to-zmq", "amqp-consume", "connected", lambda v: v == 1)
        bridge.wait_counter("zmq-to-amqp", "amqp-publish", "connected", lambda v: v == 1)

        good_n = [0]

        def good_zmq():
            good_n[0] += 1
            env = signer.sign(bt.fedmsg_envelope(topic, {"good": good_n[0]}, i=good_n[0]))
            bt.send_envelope(pub, env)
            collector.wait_count(good_n[0], 30)  # the next good message still flows

        def signed(t, msg, **kw):
            env = signer.sign(bt.fedmsg_envelope(t, msg, **kw))
            return [t.encode(), bt.canonical(env).encode()]

        no_id = bt.fedmsg_envelope(topic, {"k": 1}, username="apache")
        del no_id["msg_id"]
        long_topic = run + "." + "x" * (300 - len(run) - 1)
        bad_zmq = [
            ("not_an_object", [topic.encode(), b"[1]"]),
            ("not_an_object", [topic.encode(), b'"x"']),
            ("not_an_object", [topic.encode(), b"3"]),
            ("bad_headers", [topic.encode(), json.dumps(bt.fedmsg_envelope(topic, {}, headers=[1])).encode()]),
            ("bad_headers", [topic.encode(), json.dumps(bt.fedmsg_envelope(topic, {}, headers="s")).encode()]),
            ("missing_msg_id", [topic.encode(), json.dumps(no_id).encode()]),
            ("routing_key_too_long", signed(long_topic, {"k": "long"})),
            ("body_not_object", signed(topic, [1, 2])),
            ("body_not_object", signed(topic, None)),
            ("invalid_json", [topic.encode(), b'{"topic": '] ),
            ("invalid_utf8", [topic.encode(), b'{"topic": "\xff"}']),
            ("wrong_frame_count", [topic.encode() + b"\0{}"]),
        ]
        bt.check(len(long_topic.encode()) == 300, "a 300-byte topic")
        good_zmq()
        for reason, frames in bad_zmq:
            pub.send(frames)
            good_zmq()
        got = bt.settle(collector.snapshot, timeout=30, at_least=good_n[0])
        bt.check(sorted(json.loads(b)["good"] for _, _, _, b in got) == list(range(1, good_n[0] + 1)),
                 "exactly the good messages reached AMQP")

        good_a = [0]

        def good_amqp():
            good_a[0] += 1
            bt.publish_amqp(ch, "amq.topic", run + ".a", {"good": good_a[0]})
            sub.wait_count(good_a[0], 30)

        bad_amqp = [("invalid_json", b"not json"), ("invalid_json", b'{"a": 1'),
                    ("invalid_utf8", b'{"a": "\xff"}'), ("not_an_object", b"[1]"),
                    ("not_an_object", b'"x"'), ("not_an_object", b"null")]
        good_amqp()
        for reason, body in bad_amqp:
            bt.publish_amqp(ch, "amq.topic", run + ".a", body)
            good_amqp()
        got = bt.settle(sub.snapshot, timeout=30, at_least=good_a[0])
        bt.check(sorted(json.loads(f[1])["msg"]["good"] for f in got) == list(range(1, good_a[0] + 1)),
                 "exactly the good messages reached ZeroMQ")
        bt.wait_for(lambda: broker.queue_counts(queue)[:2] == (0, 0), 30, "every delivery settled")

        bridge.finish()
        want = {}
        for reason, _ in bad_zmq:
            want[reason] = want.get(reason, 0) + 1
        z = bridge.drops("zmq-to-amqp", "zmq-sub")
        z.update(bridge.drops("zmq-to-amqp", "amqp-publish"))
        bt.log(f"zmq-to-amqp refusals: {z}")
        bt.check(z == want, f"zmq-to-amqp counted {z}, expected {want}")
        want_a = {}
        for reason, _ in bad_amqp:
            want_a[reason] = want_a.get(reason, 0) + 1
        a = bridge.drops("amqp-to-zmq", "amqp-consume")
        bt.log(f"amqp-to-zmq refusals: {a}")
        bt.check(a == want_a, f"amqp-to-zmq counted {a}, expected {want_a}")
        bt.check(bridge.counter("amqp-to-zmq", "amqp-consume", "nacked", "reject") == len(bad_amqp),
                 "bad AMQP bodies rejected without requeue")
        for p, k in (("zmq-to-amqp", "amqp-publish"), ("amqp-to-zmq", "amqp-consume")):
            bt.check(bridge.counter(p, k, "connects") == 1 and bridge.counter(p, k, "disconnects") == 0,
                     f"{p} {k}: the connection and channel stayed up")
        bt.check(bridge.counter("zmq-to-amqp", "amqp-publish", "confirmed") == good_n[0], "good ones confirmed")
        print("ok")
    finally:
        if bridge.proc.poll() is None:
            bridge.stop()
        collector.close()
        sub.close()
        pub.close()
        ch.queue_delete(queue)
        conn.close()


if __name__ == "__main__":
    main()
