#!/usr/bin/python3
"""The ZeroMQ plugins' readiness gauges, as /health/ready, /pipelines and /metrics show
them, against python3-zmq peers:

  * zmq-sub in connect mode is not ready (gauge connected 0, endpoints_connected 0) until
    its publisher is there, ready once the ZeroMQ handshake is done, and not ready again
    as soon as that publisher goes away;
  * zmq-pub with bind: false follows its connection to the relay's SUB the same way, and
    counts the reconnect when the relay comes back;
  * zmq-sub in bind mode is ready once bound, and counts the publishers connected to it;
  * a sequence gap is counted per publisher: publisher_seq_gaps_total and
    publisher_seq_missing_total{publisher="ENDPOINT|username"} on /metrics."""
import json
import os
import sys
import tempfile

import zmq

from zmqtest import TOPIC, Publisher, Subscriber, Switchyard, check, envelope, free_port, wait_for, write_config
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from sytest import http_get  # noqa: E402

DEADLINE = 10  # seconds for a connection change to show (it shows within a poll, 0.1 s)


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def get(port, path):
    """(status, body) of GET http://127.0.0.1:port/path; status None when nothing answered."""
    return http_get(f"http://127.0.0.1:{port}{path}", timeout=5)[::2]


def gauges(port):
    """{(pipeline, plugin type): {gauge: value}} from /pipelines."""
    status, body = get(port, "/pipelines")
    out = {}
    if status != 200:
        return out
    for p in json.loads(body).get("pipelines", []):
        for pl in p.get("plugins", []):
            out[(p["name"], pl["type"])] = pl.get("gauges", {})
    return out


def wait(cond, what, timeout=DEADLINE):
    return wait_for(cond, timeout, what)


def rebind(port):
    """A SUB bound to @port, or None while the port is still held by the socket just closed."""
    try:
        return Subscriber(f"tcp://127.0.0.1:{port}", bind=True)
    except zmq.ZMQError:
        return None


def not_ready_names(port):
    status, body = get(port, "/health/ready")
    if status != 503:
        return set()
    return {f"{p['pipeline']}/{p['plugin']}" for p in json.loads(body).get("problems", [])}


def main():
    pub_port, relay_port, bind_port, http_port = free_port(), free_port(), free_port(), free_port()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = write_config(tmp, f"""version: 1
settings:
  http: {{listen: "127.0.0.1:{http_port}"}}
pipelines:
  sub-connect:
    input: {{type: zmq-sub, endpoints: ["tcp://127.0.0.1:{pub_port}"], reorder_time: 200}}
    outputs: [{{type: stdout}}]
  sub-bind:
    input: {{type: zmq-sub, bind: true, endpoints: ["tcp://127.0.0.1:{bind_port}"]}}
    outputs: [{{type: stdout, path: "{tmp}/bind.jsonl"}}]
  pub-connect:
    input: {{type: stdin}}
    outputs: [{{type: zmq-pub, bind: false, endpoints: ["tcp://127.0.0.1:{relay_port}"]}}]
""")
        sy = Switchyard(["run", cfg], stdin=__import__("subprocess").PIPE)
        pub = relay = bind_pub = None
        try:
            wait(lambda: get(http_port, "/health/live")[0] == 200 or sy.proc.poll() is not None, "the endpoint", 30)
            check(sy.proc.poll() is None, "switchyard run exited:\n" + sy.stderr()[-3000:])
            # Nobody there: both connect-mode plugins are not ready, the bound one is.
            names = wait(lambda: not_ready_names(http_port), "503 from /health/ready")
            check(names == {"sub-connect/input (zmq-sub)", "pub-connect/outputs[0] (zmq-pub)"},
                  f"not ready: {names}")
            g = gauges(http_port)
            check(g[("sub-connect", "zmq-sub")].get("connected") == 0
                  and g[("sub-connect", "zmq-sub")].get("endpoints_connected") == 0, f"gauges {g}")
            check(g[("sub-bind", "zmq-sub")].get("connected") == 1
                  and g[("sub-bind", "zmq-sub")].get("endpoints_connected") == 0, f"gauges {g}")
            check(g[("pub-connect", "zmq-pub")].get("connected") == 0, f"gauges {g}")
            log(f"ok: without peers, not ready: {sorted(names)}")

            # The peers come: ready.
            pub = Publisher(f"tcp://127.0.0.1:{pub_port}")
            relay = Subscriber(f"tcp://127.0.0.1:{relay_port}", bind=True)
            bind_pub = Publisher(f"tcp://127.0.0.1:{bind_port}", bind=False)
            wait(lambda: get(http_port, "/health/ready")[0] == 200, "200 once the peers are there")
            g = wait(lambda: (lambda g: g if g[("sub-bind", "zmq-sub")].get("endpoints_connected") == 1 else None)(
                gauges(http_port)), "the bound zmq-sub to count its publisher")
            check(g[("sub-connect", "zmq-sub")] .get("endpoints_connected") == 1
                  and g[("pub-connect", "zmq-pub")].get("endpoints_connected") == 1, f"gauges {g}")
            log("ok: ready with the peers there; endpoints_connected 1 each")

            # A gap of publisher pytest: i = 1, 2, then 5 (3 and 4 missing).
            pub.wait_subscription()
            for i in (1, 2, 5):
                pub.send([TOPIC.encode(), envelope(b'{"n":%d}' % i, i=i)])
            sy.read_lines(3, timeout=20)
            key = f'publisher="tcp://127.0.0.1:{pub_port}|pytest"'

            def gap_counted():
                status, text = get(http_port, "/metrics")
                lines = [line for line in text.splitlines() if key in line]
                gaps = [line for line in lines if line.startswith("switchyard_publisher_seq_gaps_total{")]
                missing = [line for line in lines if line.startswith("switchyard_publisher_seq_missing_total{")]
                if gaps and missing and gaps[0].endswith(" 1") and missing[0].endswith(" 2"):
                    return gaps + missing
                return None
            lines = wait(gap_counted, "the per-publisher gap on /metrics")
            log(f"ok: per-publisher gap counters: {lines}")

            # The publisher goes away: zmq-sub is not ready at once; the relay too.
            pub.close()
            pub = None
            names = wait(lambda: (lambda n: n if "sub-connect/input (zmq-sub)" in n else None)(
                not_ready_names(http_port)), "503 naming zmq-sub after its publisher left")
            relay.close()
            relay = None
            names = wait(lambda: (lambda n: n if "pub-connect/outputs[0] (zmq-pub)" in n else None)(
                not_ready_names(http_port)), "503 naming zmq-pub after the relay left")
            # The relay comes back: zmq-pub reconnects by itself, counted.
            relay = wait(lambda: rebind(relay_port), "the relay's port to be free again")
            wait(lambda: "pub-connect/outputs[0] (zmq-pub)" not in not_ready_names(http_port),
                 "zmq-pub ready again once the relay is back")

            def pub_counter(name):
                _, text = get(http_port, "/metrics")
                for line in text.splitlines():
                    if line.startswith(f'switchyard_{name}_total{{pipeline="pub-connect",plugin="zmq-pub"'):
                        return int(float(line.rsplit(" ", 1)[1]))
                return None
            wait(lambda: pub_counter("reconnects") == 1 and pub_counter("disconnects") == 1,
                 "zmq-pub reconnects 1 and disconnects 1")
            relay.close()
            relay = None
            bind_pub.close()
            bind_pub = None
            wait(lambda: gauges(http_port).get(("sub-bind", "zmq-sub"), {}).get("endpoints_connected") == 0,
                 "the bound zmq-sub to count 0 publishers")
            check("sub-bind/input (zmq-sub)" not in not_ready_names(http_port), "a bound zmq-sub stays ready")
            log("ok: not ready again once the peers left; the bound zmq-sub stays ready with 0 publishers")
        finally:
            for s in (pub, relay, bind_pub):
                if s is not None:
                    s.close()
            sy.proc.stdin.close()
            rc = sy.stop()
        check(rc == 0, f"exit {rc}\n{sy.stderr()[-3000:]}")


if __name__ == "__main__":
    main()
