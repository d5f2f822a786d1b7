#!/usr/bin/python3
"""Parse once, serialise once: a message crossing either example bridge is parsed once on
entry and serialised at most once on exit, counted by the codec itself.

The codec counts every call that reads JSON text (envelope decode, json::parse,
validateJson, the parsed body and headers of a message, the canonical scan) and every one
that writes JSON for output (EnvelopeBuilder::build, the canonical writer), by kind
(switchyard/codec_stats.hpp, docs/codec.md). `switchyard run --stats-interval` logs them as
`stats: pipeline= plugin="codec" codec_parses{reason=KIND}=N ...` (the counts that changed since
the previous line, the totals at exit). Each bridge runs alone in its
process, so the counts at exit divided by the messages bridged are the counts per message.

ZeroMQ -> AMQP: python3-zmq publishes N fedmsg envelopes signed with a certificate of a CA
made at test time -> examples/pipelines/zmq-to-amqp.yaml (zmq-sub, verifier, loop-guard,
amqp-publish) -> a python3-pika consumer. AMQP -> ZeroMQ: python3-pika publishes N messages
-> examples/pipelines/amqp-to-zmq.yaml (amqp-consume, verifier, loop-guard, signer,
zmq-pub) -> a python3-zmq subscriber. Half of the messages carry headers."""
import contextlib
import json
import re

import bridgetest as bt

N = 30
CODEC_RE = re.compile(r'stats: pipeline= plugin="codec"((?: codec_\w+\{reason=[^}]*\}=\d+)+)$', re.M)
COUNT_RE = re.compile(r' (codec_parses|codec_serialisations)\{reason=([^}]*)\}=(\d+)')


def codec_counts(bridge):
    """Last logged codec counts: ({kind: parses}, {kind: serialisations}); a count never
    logged is zero."""
    parses, sers = {}, {}
    for line in CODEC_RE.finditer(bridge.stderr()):
        for m in COUNT_RE.finditer(line.group(1)):
            (parses if m.group(1) == "codec_parses" else sers)[m.group(2)] = int(m.group(3))
    return parses, sers


def measure(direction, bridge, send, received):
    """Runs @send() (which bridges N messages) on the idle @bridge, waits for @received(),
    stops the bridge and returns the codec's (parses, serialisations) per message. The
    caller waited for a `connected` gauge logged after the start: every parse of the load
    and the start was logged by that tick (a stats line holds every count that changed)."""
    p0, s0 = codec_counts(bridge)
    send()
    received()
    bridge.finish()
    p1, s1 = codec_counts(bridge)
    parses = {k: (v - p0.get(k, 0)) / N for k, v in p1.items() if v != p0.get(k, 0)}
    sers = {k: (v - s0.get(k, 0)) / N for k, v in s1.items() if v != s0.get(k, 0)}
    bt.log(f"{direction}: per bridged message: parses {parses} (total {sum(parses.values()):g}), "
           f"serialisations {sers} (total {sum(sers.values()):g})")
    bt.check(sum(parses.values()) == 1, f"parsed once per message: {parses}")
    bt.check(sum(sers.values()) <= 1, f"serialised at most once per message: {sers}")
    return parses, sers


def zmq_to_amqp(broker, pki, cleanup):
    ch = cleanup.enter_context(contextlib.closing(broker.connection())).channel()
    ch.exchange_declare("zmq.topic", "topic", durable=True)
    base = bt.unique("org.fedoraproject.dev.once-z2a")
    collector = bt.Collector(broker, [("zmq.topic", base + ".#")])
    cleanup.callback(collector.close)
    port = bt.free_port()
    pub = bt.publisher(port)
    cleanup.callback(pub.close)
    bridge = bt.Bridge("zmq-to-amqp.yaml", bt.bridge_env(
        broker, pki, FEDMSG_ENDPOINT=f"tcp://127.0.0.1:{port}",
        FEDMSG_BRIDGE_ENDPOINT=f"tcp://127.0.0.1:{bt.free_port()}"))
    cleanup.callback(lambda: bridge.proc.poll() is None and bridge.stop())
    signer = bt.FedmsgSigner(f"{pki}/good.key", f"{pki}/good.crt")
    bt.check(pub.wait_subscription(30) == b"", "zmq-sub subscribes to everything")
    bridge.wait_counter("zmq-to-amqp", "amqp-publish", "connected", lambda v: v == 1)

    def send():
        for n in range(N):
            env = bt.fedmsg_envelope(f"{base}.t{n % 3}", {"n": n, "s": "v\u00e9", "f": 1.5, "l": [1, None]},
                                     i=n + 1, username="apache")
            if n % 2 == 0:
                env["headers"] = {"x-h": "1", "n": 3, "nested": {"a": [1, "b"]}}
            bt.send_envelope(pub, signer.sign(env))

    def received():
        got = bt.settle(collector.snapshot, timeout=60, at_least=N)
        bt.check(len(got) == N, f"{len(got)} deliveries for {N} messages")

    measure("zmq-to-amqp", bridge, send, received)
    bt.check(bridge.counter("zmq-to-amqp", "verifier", "verified") == N, "all verified")
    bt.check(bridge.counter("zmq-to-amqp", "amqp-publish", "confirmed") == N, "all confirmed")


def amqp_to_zmq(broker, pki, cleanup):
    queue = bt.unique("sy-a2z-once")
    base = bt.unique("org.fedoraproject.dev.once-a2z")
    port = bt.free_port()
    bridge = bt.Bridge("amqp-to-zmq.yaml", bt.bridge_env(
        broker, pki, AMQP_TO_ZMQ_QUEUE=queue, AMQP_TO_ZMQ_BINDING=base + ".#",
        FEDMSG_BRIDGE_BIND=f"tcp://127.0.0.1:{port}"))
    cleanup.callback(lambda: bridge.proc.poll() is None and bridge.stop())
    sub = bt.ZmqCollector(f"tcp://127.0.0.1:{port}")
    cleanup.callback(sub.close)
    ch = cleanup.enter_context(contextlib.closing(broker.connection())).channel()
    cleanup.callback(ch.queue_delete, queue)
    bridge.wait_counter("amqp-to-zmq", "zmq-pub", "subscriptions", lambda v: v >= 1)
    bridge.wait_counter("amqp-to-zmq", "amqp-consume", "connected", lambda v: v == 1)

    def send():
        for n in range(N):
            headers = {"fedora_messaging_severity": 30, "x-custom": "x"} if n % 2 == 0 else None
            bt.publish_amqp(ch, "amq.topic", f"{base}.t{n % 4}", {"hello": "w\u00f6rld", "n": [n, 2]}, headers)

    def received():
        got = bt.settle(sub.snapshot, timeout=60, at_least=N)
        bt.check(len(got) == N, f"{len(got)} ZeroMQ messages for {N}")
        for frames in got[:3]:
            bt.verify(json.loads(frames[1]), f"{pki}/ca.crt")  # really signed
        bt.wait_for(lambda: broker.queue_counts(queue)[:2] == (0, 0), 30, "queue drained and acked")

    _, sers = measure("amqp-to-zmq", bridge, send, received)
    bt.check(sers.get("envelope", 0) == 1, f"exactly one envelope built per message: {sers}")
    bt.check(bridge.counter("amqp-to-zmq", "zmq-pub", "sent") == N, "every message sent")


def main():
    broker = bt.amqp_fixture.Broker()
    pki = bt.make_pki()
    failures = []
    for direction in (zmq_to_amqp, amqp_to_zmq):
        try:  # both directions run and report their counts, whichever fails
            with contextlib.ExitStack() as cleanup:
                direction(broker, pki, cleanup)
        except AssertionError as e:
            failures.append(f"{direction.__name__}: {e}")
    bt.check(not failures, "; ".join(failures))
    print("ok")


if __name__ == "__main__":
    main()
