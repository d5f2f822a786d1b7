#!/usr/bin/python3
"""GET /metrics of a running bridge, parsed by a real Prometheus text parser.

examples/pipelines/zmq-to-amqp.yaml runs with `--http 127.0.0.1:PORT` against the private
RabbitMQ (tests/amqp/amqp_fixture.py); an independent python3-zmq publisher sends N
envelopes signed with a certificate of a CA made at test time and 2 unsigned ones; a
python3-pika consumer gets the N. Debian's python3-prometheus-client parses every scrape.

Checked:
  * /health/ready answers 200 once the bridge is connected (JSON body);
  * every family is switchyard_*, with HELP and a TYPE, and the expected types: counters
    (received, completed, sent, dropped), gauges (queue_depth, queue_bytes, in_flight,
    connected), the latency histogram;
  * labels: pipeline, plugin (the plugin's name), place (input, filters[0], outputs[0]) and
    each counter's own label under its name (outcome for completed, reason for dropped);
  * the counters move with the traffic by exactly what was sent: received +N+2,
    completed{outcome=delivered} +N, completed{outcome=dropped} +2, the verifier's
    dropped{reason=unsigned} +2, amqp-publish's sent +N; the latency histogram's count
    equals the delivered messages, its buckets are cumulative and end at +Inf = count;
  * /pipelines: the pipeline running and ready, its four plugins in order with the same
    counters, the time of the last message."""
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "bridges"))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))

import bridgetest as bt  # noqa: E402
import zmqtest  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402
from sytest import http_get  # noqa: E402

N = 30
PIPE = "zmq-to-amqp"


class HttpBridge(bt.Bridge):
    """`switchyard run examples/pipelines/NAME --http ADDR` with @env set."""

    def __init__(self, name, env, http):
        saved = dict(os.environ)
        os.environ.update(env)
        try:  # zmqtest.Switchyard starts the child with the current environment
            zmqtest.Switchyard.__init__(self, ["run", os.path.join(bt.PIPELINES, name), "--http", http])
        finally:
            os.environ.clear()
            os.environ.update(saved)


def scrape(url):
    status, ctype, text = http_get(url + "/metrics")
    bt.check(status == 200 and ctype.startswith("text/plain; version=0.0.4"), f"/metrics: {status} {ctype}")
    families = {f.name: f for f in text_string_to_metric_families(text)}
    samples = {}
    for fam in families.values():
        for s in fam.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples, families


def v(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), 0)


INPUT = dict(pipeline=PIPE, plugin="zmq-sub", place="input")
VERIFIER = dict(pipeline=PIPE, plugin="verifier", place="filters[0]")
OUTPUT = dict(pipeline=PIPE, plugin="amqp-publish", place="outputs[0]")
LAT = "switchyard_pipeline_latency_seconds"


def figures(samples):
    return {
        "received": v(samples, "switchyard_received_total", **INPUT),
        "delivered": v(samples, "switchyard_completed_total", **INPUT, outcome="delivered"),
        "dropped": v(samples, "switchyard_completed_total", **INPUT, outcome="dropped"),
        "unsigned": v(samples, "switchyard_dropped_total", **VERIFIER, reason="unsigned"),
        "sent": v(samples, "switchyard_sent_total", **OUTPUT),
        "latency_count": v(samples, LAT + "_count", pipeline=PIPE),
    }


def main():
    broker = bt.amqp_fixture.Broker()
    pki = bt.make_pki()
    conn = broker.connection()
    ch = conn.channel()
    ch.exchange_declare("zmq.topic", "topic", durable=True)
    base = bt.unique("org.fedoraproject.dev.metrics")
    collector = bt.Collector(broker, [("zmq.topic", base + ".#")])
    pub_port, port = bt.free_port(), bt.free_port()
    pub = bt.publisher(pub_port)
    url = f"http://127.0.0.1:{port}"
    bridge = HttpBridge("zmq-to-amqp.yaml", bt.bridge_env(
        broker, pki, FEDMSG_ENDPOINT=f"tcp://127.0.0.1:{pub_port}",
        FEDMSG_BRIDGE_ENDPOINT=f"tcp://127.0.0.1:{bt.free_port()}"), f"127.0.0.1:{port}")
    signer = bt.FedmsgSigner(f"{pki}/good.key", f"{pki}/good.crt")
    try:
        bt.check(pub.wait_subscription(30) == b"", "zmq-sub subscribes to everything")
        bt.wait_for(lambda: http_get(url + "/health/ready")[0] == 200 or bridge.proc.poll() is not None, 60,
                    "/health/ready 200")
        bt.check(bridge.proc.poll() is None, "bridge exited:\n" + bridge.stderr()[-4000:])
        status, ctype, body = http_get(url + "/health/ready")
        bt.check(ctype == "application/json" and json.loads(body)["status"] == "ready", body)

        before_samples, families = scrape(url)
        before = figures(before_samples)
        for name, fam in families.items():
            bt.check(name.startswith("switchyard_") and fam.documentation, f"{name}: name and HELP")
        types = {n: f.type for n, f in families.items()}
        for name, t in [("switchyard_received", "counter"), ("switchyard_sent", "counter"),
                        ("switchyard_queue_depth", "gauge"), ("switchyard_queue_bytes", "gauge"),
                        ("switchyard_in_flight", "gauge"), ("switchyard_connected", "gauge"),
                        ("switchyard_pipeline_latency_seconds", "histogram"), ("switchyard_build_info", "gauge")]:
            bt.check(types.get(name) == t, f"{name}: type {types.get(name)}, want {t}")
        bt.check(v(before_samples, "switchyard_connected", **OUTPUT) == 1, "amqp-publish connected gauge")

        for n in range(N):
            env = signer.sign(bt.fedmsg_envelope(f"{base}.t{n % 3}", {"n": n}, i=n + 1, username="apache"))
            bt.send_envelope(pub, env)
        for n in range(2):
            bt.send_envelope(pub, bt.fedmsg_envelope(f"{base}.unsigned", {"n": n}, i=N + n + 1))
        collector.wait_count(N, 60)

        want = {"received": N + 2, "delivered": N, "dropped": 2, "unsigned": 2, "sent": N, "latency_count": N}

        def moved():
            now = figures(scrape(url)[0])
            return all(now[k] - before[k] == d for k, d in want.items())
        try:
            bt.wait_for(moved, 30, "the counters to move with the traffic")
        except AssertionError:
            raise AssertionError(f"before {before}, after {figures(scrape(url)[0])}, want +{want}")
        bt.wait_for(lambda: v(scrape(url)[0], "switchyard_in_flight", pipeline=PIPE) == 0, 30, "in_flight 0")
        samples, _ = scrape(url)
        bt.check(v(samples, "switchyard_queue_depth", **OUTPUT) == 0, "queue drained")
        count = v(samples, LAT + "_count", pipeline=PIPE)
        bt.check(count == figures(samples)["delivered"], f"latency count {count} = delivered")
        buckets = sorted((float(dict(k)["le"]), val) for (n, k), val in samples.items()
                         if n == LAT + "_bucket" and dict(k)["pipeline"] == PIPE)
        bt.check(buckets[-1] == (float("inf"), count), f"+Inf bucket {buckets[-1]} = count {count}")
        bt.check(all(a[1] <= b[1] for a, b in zip(buckets, buckets[1:])), f"cumulative: {buckets}")
        bt.check(v(samples, LAT + "_sum", pipeline=PIPE) > 0, "latency sum")

        status, _, body = http_get(url + "/pipelines")
        p = [x for x in json.loads(body)["pipelines"] if x["name"] == PIPE]
        bt.check(status == 200 and len(p) == 1, body)
        p = p[0]
        bt.check(p["state"] == "running" and p["ready"] is True and p["last_message"].endswith("Z"), body)
        bt.check([(x["place"], x["type"]) for x in p["plugins"]] ==
                 [("input", "zmq-sub"), ("filters[0]", "verifier"), ("filters[1]", "loop-guard"),
                  ("outputs[0]", "amqp-publish")], body)
        bt.check(p["plugins"][0]["counters"]["received"] == before["received"] + N + 2, body)
        bt.check(p["plugins"][1]["counters"]["dropped"]["unsigned"] == before["unsigned"] + 2, body)
        bt.check(p["plugins"][3]["counters"]["sent"] == before["sent"] + N, body)
        bt.check(p["plugins"][3]["gauges"]["connected"] == 1, body)
        bridge.finish()
    finally:
        if bridge.proc.poll() is None:
            bridge.proc.kill()
        collector.close()
        pub.close()
        conn.close()
    bt.log("ok")


if __name__ == "__main__":
    main()
