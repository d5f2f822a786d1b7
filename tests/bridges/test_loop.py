#!/usr/bin/python3
"""No loops, no duplicates, with both directions in one process
(examples/pipelines/bridge.yaml).

Peers: a fedmsg publisher (python3-zmq, signed envelopes), a python3-pika consumer bound
to BOTH exchanges (zmq.topic and amq.topic), a ZeroMQ subscriber on the publisher's socket
and one on the bridge's PUB socket (the 9940-style endpoint). zmq-to-amqp also reads the
bridge's PUB socket, as the reference deployment does, so every message bridged from AMQP
comes back to it and must be dropped there.

1,000 messages are injected on each bus. Each must arrive exactly once at each
destination it belongs to (fedmsg -> zmq.topic; AMQP -> amq.topic and the bridge's PUB)
and never anywhere else (a fedmsg message never on the bridge's PUB or amq.topic, an AMQP
message never on zmq.topic or the publisher's socket). The loop drops are counted: the
zmq-to-amqp loop-guard dropped exactly what amqp-to-zmq published (username marker).
Then messages bridged one way are fed back the other way by a third party, with the
provenance header kept or stripped: each direction drops them (loop_header, loop_id)."""
import collections
import json

import bridgetest as bt

N = 1000


def main():
    broker = bt.amqp_fixture.Broker()
    pki = bt.make_pki()
    conn = broker.connection()
    ch = conn.channel()
    ch.exchange_declare("zmq.topic", "topic", durable=True)
    run = bt.unique("org.fedoraproject.dev.loop")
    f_base, a_base = run + ".fedmsg", run + ".amqp"
    queue = bt.unique("sy-bridge-loop")
    collector = bt.Collector(broker, [("zmq.topic", run + ".#"), ("amq.topic", run + ".#")])
    pub_port, bridge_port = bt.free_port(), bt.free_port()
    pub = bt.publisher(pub_port)
    # The subscribers use the run's prefix, zmq-sub subscribes to "": on the bridge's XPUB
    # two distinct prefixes tell that both are connected.
    sub_pub = bt.ZmqCollector(f"tcp://127.0.0.1:{pub_port}", topic=run.encode())
    sub_bridge = bt.ZmqCollector(f"tcp://127.0.0.1:{bridge_port}", topic=run.encode())
    bridge = bt.Bridge("bridge.yaml", bt.bridge_env(
        broker, pki,
        FEDMSG_ENDPOINT=f"tcp://127.0.0.1:{pub_port}",
        FEDMSG_BRIDGE_ENDPOINT=f"tcp://127.0.0.1:{bridge_port}",
        FEDMSG_BRIDGE_BIND=f"tcp://127.0.0.1:{bridge_port}",
        AMQP_TO_ZMQ_QUEUE=queue, AMQP_TO_ZMQ_BINDING=run + ".#"))
    signer = bt.FedmsgSigner(f"{pki}/good.key", f"{pki}/good.crt")
    try:
        subs = {pub.wait_subscription(30), pub.wait_subscription(30)}
        bt.check(subs == {b"", run.encode()}, f"publisher subscriptions {subs}")
        bridge.wait_counter("amqp-to-zmq", "zmq-pub", "subscriptions", lambda v: v == 2)
        bridge.wait_counter("amqp-to-zmq", "amqp-consume", "connected", lambda v: v == 1)
        bridge.wait_counter("zmq-to-amqp", "amqp-publish", "connected", lambda v: v == 1)

        f_ids, a_ids = set(), set()
        for n in range(N):  # interleaved: both directions busy at once
            env = signer.sign(bt.fedmsg_envelope(f"{f_base}.t{n % 7}", {"n": n}, i=n + 1, username="apache"))
            bt.send_envelope(pub, env)
            f_ids.add(bt.strip_year(env["msg_id"]))
            a_ids.add(bt.publish_amqp(ch, "amq.topic", f"{a_base}.t{n % 5}", {"n": n}))
        bt.check(len(f_ids) == N and len(a_ids) == N and not f_ids & a_ids, "distinct ids")

        amqp = bt.settle(collector.snapshot, timeout=120, idle=3.0, at_least=2 * N)
        on_pub = bt.settle(sub_pub.snapshot, timeout=30, idle=1.0, at_least=N)
        on_bridge = bt.settle(sub_bridge.snapshot, timeout=30, idle=1.0, at_least=N)

        # AMQP: fedmsg ids once on zmq.topic, AMQP ids once on amq.topic, nothing else
        seen = collections.Counter((ex, bt.strip_year(props.message_id)) for ex, _, props, _ in amqp)
        bt.check(sum(seen.values()) == 2 * N, f"{sum(seen.values())} AMQP deliveries, expected {2 * N}")
        bt.check(set(seen) == {("zmq.topic", i) for i in f_ids} | {("amq.topic", i) for i in a_ids},
                 "every message on its exchange only: " +
                 str([k for k in seen if k not in {("zmq.topic", i) for i in f_ids} |
                      {("amq.topic", i) for i in a_ids}][:5]))
        bt.check(max(seen.values()) == 1, "no duplicates on AMQP")
        for ex, rk, props, body in amqp:
            bt.check(rk.startswith(f_base if ex == "zmq.topic" else a_base), f"{rk} on {ex}")

        # ZeroMQ, publisher side: exactly the fedmsg messages (nothing comes back there)
        ids = collections.Counter(bt.strip_year(json.loads(f[1])["msg_id"]) for f in on_pub)
        bt.check(set(ids) == f_ids and max(ids.values()) == 1, "publisher side: the fedmsg messages, once")
        # ZeroMQ, bridge side: exactly the AMQP messages, once each, signed by the bridge
        ids = collections.Counter()
        for topic, raw in on_bridge:
            env = json.loads(raw)
            ids[bt.strip_year(env["msg_id"])] += 1
            bt.check(env["username"] == "amqp-bridge" and topic.decode().startswith(a_base), "bridge side")
        bt.check(set(ids) == a_ids and max(ids.values()) == 1, "bridge side: the AMQP messages, once: " +
                 f"{len(set(ids) & a_ids)} of {N}, {len(set(ids) & f_ids)} fedmsg ones")

        # The other two rules, for loops that dodge the username marker: messages bridged one
        # way and fed back the other way by a third party, with the provenance header kept
        # (loop_header) or stripped (then the shared id window knows the id: loop_id).
        M = 10
        for ex, rk, props, body in [d for d in amqp if d[0] == "zmq.topic"][:M]:
            ch.basic_publish("amq.topic", rk, body, props)  # republished as is
        for ex, rk, props, body in [d for d in amqp if d[0] == "zmq.topic"][M:2 * M]:
            bt.publish_amqp(ch, "amq.topic", rk, body, message_id=props.message_id)  # headers stripped
        for n, (topic, raw) in enumerate(on_bridge[:2 * M]):
            env = json.loads(raw)
            env["username"] = "mallory"  # not the marker
            if n >= M:
                del env["headers"]
            bt.send_envelope(pub, signer.sign(env))
        bt.settle(collector.snapshot, timeout=30, idle=2.0, at_least=2 * N + 2 * M)
        bt.settle(sub_pub.snapshot, timeout=30, idle=1.0, at_least=N + 2 * M)
        bt.check(len(collector.snapshot()) == 2 * N + 2 * M, "nothing fed back reached zmq.topic")
        bt.check(len(sub_bridge.snapshot()) == N, "nothing fed back reached the bridge's PUB")

        bridge.finish()
        z_drops = bridge.drops("zmq-to-amqp", "loop-guard")
        a_drops = bridge.drops("amqp-to-zmq", "loop-guard")
        a_sent = bridge.counter("amqp-to-zmq", "zmq-pub", "sent")
        bt.log(f"loop drops: zmq-to-amqp {z_drops}, amqp-to-zmq {a_drops}; amqp-to-zmq sent {a_sent}")
        bt.check(a_sent == N, f"amqp-to-zmq sent {a_sent}")
        # every message amqp-to-zmq published came back to zmq-to-amqp and was dropped as a loop
        bt.check(z_drops == {"loop_username": a_sent, "loop_header": M, "loop_id": M},
                 f"zmq-to-amqp loop drops {z_drops}")
        bt.check(a_drops == {"loop_header": M, "loop_id": M}, f"amqp-to-zmq loop drops {a_drops}")
        bt.check(bridge.counter("zmq-to-amqp", "zmq-sub", "received") == 2 * N + 2 * M, "zmq-sub received all")
        bt.check(bridge.counter("zmq-to-amqp", "verifier", "verified") == 2 * N + 2 * M, "all signatures valid")
        bt.check(bridge.counter("zmq-to-amqp", "amqp-publish", "confirmed") == N, "fedmsg -> AMQP confirmed")
        bt.check(bridge.counter("amqp-to-zmq", "amqp-consume", "acked") == N + 2 * M, "AMQP deliveries acked")
        print("ok")
    finally:
        if bridge.proc.poll() is None:
            bridge.stop()
        for c in (collector, sub_pub, sub_bridge):
            c.close()
        pub.close()
        ch.queue_delete(queue)
        conn.close()


if __name__ == "__main__":
    main()
