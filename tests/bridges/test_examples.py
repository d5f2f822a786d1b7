#!/usr/bin/python3
"""The shipped example bridges work as shipped: each of examples/pipelines/zmq-to-amqp.yaml,
amqp-to-zmq.yaml and bridge.yaml is run unmodified by the real `switchyard`, with only the
environment its header comment documents (the broker, the endpoints, FEDMSG_CA/CERT/KEY;
no FEDMSG_NITPICKY, no other override), against a private RabbitMQ.

* `switchyard check` accepts each file in that environment and says nothing about the
  routing policy;
* an independent python3-zmq fedmsg publisher signs envelopes with a certificate of a CA made
  here with openssl (tests/crypto/pyhelper.py); every one reaches a python3-pika consumer of
  zmq.topic;
* python3-pika publishes to amq.topic; every message reaches a python3-zmq subscriber, signed
  by the bridge (checked with python3-cryptography);
* the verifiers' counters (the stats lines) show every signed message verified and nothing
  dropped: in particular no policy_denied, which is what an empty routing policy with
  nitpicky on would give."""
import json
import os
import re
import subprocess

import bridgetest as bt

N = 20
EXAMPLES = ("zmq-to-amqp.yaml", "amqp-to-zmq.yaml", "bridge.yaml")


def documented(name):
    """The variables the file's header comment names, and every ${VAR} the file reads."""
    with open(os.path.join(bt.PIPELINES, name)) as f:
        text = f.read()
    header = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        header.append(line)
    body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    return (set(re.findall(r"\b[A-Z][A-Z0-9_]{3,}\b", "\n".join(header))),
            set(re.findall(r"\$\{([A-Z0-9_]+)", body)))


def environment(name, env):
    """@env, checked against what @name documents; the process environment holds none of the
    variables the examples read, so the bridge sees exactly @env."""
    in_header, read = documented(name)
    bt.check(read <= in_header, f"{name}: variables read but not documented in its header: {read - in_header}")
    bt.check(set(env) <= in_header, f"{name}: the test sets undocumented variables {set(env) - in_header}")
    bt.check("FEDMSG_NITPICKY" not in env, "the examples must work without FEDMSG_NITPICKY")
    return env


def scrub_environment():
    names = set()
    for name in EXAMPLES:
        names |= documented(name)[1]
    for k in names:
        os.environ.pop(k, None)


def check_file(name, env):
    full = dict(os.environ)
    full.update(env)
    p = subprocess.run([bt.zmqtest.BIN, "check", os.path.join(bt.PIPELINES, name)], env=full,
                       capture_output=True, text=True, timeout=60)
    out = p.stdout + p.stderr
    bt.check(p.returncode == 0, f"check {name}: exit {p.returncode}\n{out}")
    bt.check(not re.search(r"(?i)policy_denied|den(y|ies) every|refuses? every|every signed message", out),
             f"check {name} says the routing policy refuses messages:\n{out}")


def send_fedmsg(pub, signer, base, sent):
    for n in range(N):
        env = signer.sign(bt.fedmsg_envelope(f"{base}.t{n % 3}", {"n": n, "text": "caf\u00e9"}, i=n + 1))
        bt.send_envelope(pub, env)
        sent[env["msg_id"]] = env


def expect_on_amqp(collector, sent):
    got = bt.settle(collector.snapshot, timeout=60, at_least=N)
    ids = sorted(props.message_id for _, _, props, _ in got)
    bt.check(ids == sorted(sent), f"{len(got)} deliveries on zmq.topic for {N} signed fedmsg messages")
    for _, rk, props, body in got:
        bt.check(rk == sent[props.message_id]["topic"], f"routing key {rk}")
        bt.check(body == bt.canonical(sent[props.message_id]["msg"]).encode(), f"body {body!r}")


def send_amqp(ch, base, sent):
    for n in range(N):
        topic = f"{base}.t{n % 4}"
        body = {"n": n, "hello": "w\u00f6rld"}
        sent[bt.publish_amqp(ch, "amq.topic", topic, body)] = (topic, body)


def expect_on_zmq(sub, sent, pki):
    sub.wait_count(N, 60)
    got = bt.settle(sub.snapshot, timeout=30, at_least=N)
    bt.check(len(got) == N, f"{len(got)} ZeroMQ messages for {N} AMQP messages")
    seen = set()
    for frames in got:
        env = json.loads(frames[1])
        bt.check(bt.verify(env, f"{pki}/ca.crt") == "other.example.org", "signed by the bridge's certificate")
        key = bt.strip_year(env["msg_id"])
        bt.check(key in sent and key not in seen, f"unexpected or duplicate {env['msg_id']}")
        seen.add(key)
        bt.check((env["topic"], env["msg"]) == sent[key], "topic and body")


def verifier_clean(bridge, pipeline, verified):
    drops = bridge.drops(pipeline, "verifier")
    bt.check(drops == {}, f"{pipeline}: the verifier dropped {drops}")
    bt.check(bridge.counter(pipeline, "verifier", "dropped", reason="policy_denied") == 0, "policy_denied")
    got = bridge.counter(pipeline, "verifier", "verified")
    bt.check(got == verified, f"{pipeline}: verified={got}, want {verified}")


def zmq_to_amqp(broker, pki):
    base = bt.unique("org.fedoraproject.dev.example-z2a")
    pub_port = bt.free_port()
    env = environment("zmq-to-amqp.yaml", {
        "AMQP_URL": broker.url,
        "FEDMSG_ENDPOINT": f"tcp://127.0.0.1:{pub_port}",
        "FEDMSG_BRIDGE_ENDPOINT": f"tcp://127.0.0.1:{bt.free_port()}",  # no AMQP->ZeroMQ bridge here
        "FEDMSG_CA": f"{pki}/ca.crt",
    })
    check_file("zmq-to-amqp.yaml", env)
    conn = broker.connection()
    conn.channel().exchange_declare("zmq.topic", "topic", durable=True)  # as amqp-publish declares it
    collector = bt.Collector(broker, [("zmq.topic", base + ".#")])
    pub = bt.publisher(pub_port)
    bridge = bt.Bridge("zmq-to-amqp.yaml", env)
    try:
        bt.check(pub.wait_subscription(30) == b"", "zmq-sub subscribes to everything")
        bridge.wait_counter("zmq-to-amqp", "amqp-publish", "connected", lambda v: v == 1)
        sent = {}
        send_fedmsg(pub, bt.FedmsgSigner(f"{pki}/good.key", f"{pki}/good.crt"), base, sent)
        expect_on_amqp(collector, sent)
        bridge.finish()
        verifier_clean(bridge, "zmq-to-amqp", N)
        bt.check(bridge.counter("zmq-to-amqp", "amqp-publish", "confirmed") == N, "all confirmed")
        bt.log(f"zmq-to-amqp.yaml as shipped: {N} signed fedmsg messages crossed, 0 policy_denied")
    finally:
        if bridge.proc.poll() is None:
            bridge.stop()
        collector.close()
        pub.close()
        conn.close()


def amqp_to_zmq(broker, pki):
    base = bt.unique("org.fedoraproject.dev.example-a2z")
    queue = bt.unique("sy-example-a2z")
    port = bt.free_port()
    env = environment("amqp-to-zmq.yaml", {
        "AMQP_URL": broker.url,
        "AMQP_TO_ZMQ_QUEUE": queue,
        "AMQP_TO_ZMQ_BINDING": base + ".#",  # this test's messages only
        "FEDMSG_BRIDGE_BIND": f"tcp://127.0.0.1:{port}",
        "FEDMSG_CA": f"{pki}/ca.crt",
        "FEDMSG_CERT": f"{pki}/other.crt",
        "FEDMSG_KEY": f"{pki}/other.key",
    })
    check_file("amqp-to-zmq.yaml", env)
    bridge = bt.Bridge("amqp-to-zmq.yaml", env)
    sub = bt.ZmqCollector(f"tcp://127.0.0.1:{port}", topic=base.encode())
    conn = broker.connection()
    ch = conn.channel()
    try:
        bridge.wait_counter("amqp-to-zmq", "zmq-pub", "subscriptions", lambda v: v >= 1)
        bridge.wait_counter("amqp-to-zmq", "amqp-consume", "connected", lambda v: v == 1)
        sent = {}
        send_amqp(ch, base, sent)
        expect_on_zmq(sub, sent, pki)
        bt.wait_for(lambda: broker.queue_counts(queue)[:2] == (0, 0), 30, "queue drained and acked")
        bridge.finish()
        # Native AMQP messages carry no signature: passed as unsigned, none refused.
        verifier_clean(bridge, "amqp-to-zmq", 0)
        bt.check(bridge.counter("amqp-to-zmq", "verifier", "unsigned_passed") == N, "unsigned_passed")
        bt.check(bridge.counter("amqp-to-zmq", "zmq-pub", "sent") == N, "every message handed to ZeroMQ")
        bt.log(f"amqp-to-zmq.yaml as shipped: {N} AMQP messages crossed, signed by the bridge")
    finally:
        if bridge.proc.poll() is None:
            bridge.stop()
        sub.close()
        ch.queue_delete(queue)
        conn.close()


def both(broker, pki):
    base = bt.unique("org.fedoraproject.dev.example-both")
    queue = bt.unique("sy-example-both")
    pub_port, bridge_port = bt.free_port(), bt.free_port()
    env = environment("bridge.yaml", {
        "AMQP_URL": broker.url,
        "FEDMSG_ENDPOINT": f"tcp://127.0.0.1:{pub_port}",
        "FEDMSG_BRIDGE_ENDPOINT": f"tcp://127.0.0.1:{bridge_port}",
        "FEDMSG_BRIDGE_BIND": f"tcp://127.0.0.1:{bridge_port}",
        "FEDMSG_CA": f"{pki}/ca.crt",
        "FEDMSG_CERT": f"{pki}/other.crt",
        "FEDMSG_KEY": f"{pki}/other.key",
        "AMQP_TO_ZMQ_QUEUE": queue,
        "AMQP_TO_ZMQ_BINDING": base + ".#",
    })
    check_file("bridge.yaml", env)
    conn = broker.connection()
    ch = conn.channel()
    ch.exchange_declare("zmq.topic", "topic", durable=True)
    collector = bt.Collector(broker, [("zmq.topic", base + ".#")])
    pub = bt.publisher(pub_port)
    bridge = bt.Bridge("bridge.yaml", env)
    sub = bt.ZmqCollector(f"tcp://127.0.0.1:{bridge_port}", topic=base.encode())
    try:
        bt.check(pub.wait_subscription(30) == b"", "zmq-sub subscribes to everything")
        # Two prefixes on the bridge's PUB socket: "" from its own zmq-sub, ours.
        bridge.wait_counter("amqp-to-zmq", "zmq-pub", "subscriptions", lambda v: v >= 2)
        bridge.wait_counter("zmq-to-amqp", "amqp-publish", "connected", lambda v: v == 1)
        bridge.wait_counter("amqp-to-zmq", "amqp-consume", "connected", lambda v: v == 1)
        to_amqp, to_zmq = {}, {}
        send_fedmsg(pub, bt.FedmsgSigner(f"{pki}/good.key", f"{pki}/good.crt"), base, to_amqp)
        send_amqp(ch, base, to_zmq)
        expect_on_amqp(collector, to_amqp)
        expect_on_zmq(sub, to_zmq, pki)
        # What amqp-to-zmq published comes back to zmq-to-amqp on the bridge's socket, signed
        # by the bridge: verified, then stopped by loop-guard.
        bridge.wait_counter("zmq-to-amqp", "loop-guard", "dropped", lambda v: v == N, reason="loop_username")
        bridge.finish()
        verifier_clean(bridge, "zmq-to-amqp", 2 * N)
        verifier_clean(bridge, "amqp-to-zmq", 0)
        bt.check(bridge.counter("zmq-to-amqp", "amqp-publish", "confirmed") == N, "confirmed")
        bt.check(bridge.counter("amqp-to-zmq", "zmq-pub", "sent") == N, "sent on ZeroMQ")
        bt.log(f"bridge.yaml as shipped: {N} messages crossed each way, 0 policy_denied")
    finally:
        if bridge.proc.poll() is None:
            bridge.stop()
        sub.close()
        collector.close()
        pub.close()
        ch.queue_delete(queue)
        conn.close()


def main():
    scrub_environment()
    broker = bt.amqp_fixture.Broker()
    pki = bt.make_pki()
    zmq_to_amqp(broker, pki)
    amqp_to_zmq(broker, pki)
    both(broker, pki)
    print("ok")


if __name__ == "__main__":
    main()
