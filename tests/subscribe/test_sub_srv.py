#!/usr/bin/python3
"""zmq-sub's DNS SRV discovery against Debian's dnsmasq on a private port of 127.0.0.1:

1. The SRV name points at publisher A: zmq-sub connects to A and receives its messages;
   `switchyard check --connect` resolves the name and reports it and its target.
2. The DNS server goes away: the failed resolutions are counted and logged, and A stays
   connected (its messages still arrive).
3. The records change (dnsmasq back on the same port with B instead of A): with
   srv_interval 300 s, the records' TTL (1 s) and the retry after a failure (10 s at most)
   make zmq-sub resolve again; without a restart
   zmq-sub connects to B and drops A (A sees the unsubscription of a closed connection;
   what A sends then never arrives, B's messages do); the log and the counters say so."""
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from subtest import TOPIC, Dnsmasq, Publisher, Switchyard, check, free_port, wait_for, write_config  # noqa: E402
from zmqtest import envelope  # noqa: E402
from sytest import http_get, run_check  # noqa: E402

T = TOPIC.encode()
NAME = "_fedmsg._tcp.switchyard.test"


def send(pub, msg_id, i):
    pub.send([T, envelope(b"{}", msg_id=msg_id, i=i)])


def gauges(port):
    """zmq-sub's gauges from /pipelines ({} while nothing answers)."""
    status, _, body = http_get(f"http://127.0.0.1:{port}/pipelines", timeout=5)
    if status != 200:
        return {}
    for p in json.loads(body).get("pipelines", []):
        for pl in p.get("plugins", []):
            if pl["type"] == "zmq-sub":
                return pl.get("gauges", {})
    return {}


def main():
    pa, pb, dns_port, http_port = free_port(), free_port(), free_port(), free_port()
    a = Publisher(f"tcp://127.0.0.1:{pa}")
    b = Publisher(f"tcp://127.0.0.1:{pb}")
    dns = Dnsmasq(dns_port, [(NAME, "localhost", pa, 0, 10)])
    with tempfile.TemporaryDirectory() as tmp:
        cfg = write_config(tmp, f"""version: 1
settings:
  http: {{listen: "127.0.0.1:{http_port}"}}
pipelines:
  srv:
    input:
      type: zmq-sub
      srv: [{NAME}]
      srv_interval: 300   # the records' TTL (1 s, dnsmasq --local-ttl) is what makes the change seen
      dns_servers: ["127.0.0.1:{dns_port}"]
    outputs:
      - type: stdout
""")
        rc, out = run_check("--connect", "--timeout", "10", cfg)
        check(rc == 0, f"check --connect exit {rc}\n{out}")
        check(f"SRV {NAME} -> tcp://localhost:{pa}: ok" in out, f"the SRV name is reported\n{out}")
        check(f"tcp://localhost:{pa}: ok" in out.replace(f"SRV {NAME} -> ", ""), f"its target is connected\n{out}")

        sy = Switchyard(["run", cfg])
        try:
            a.wait_subscription()
            sy.wait_log(rf"SRV {NAME}: added endpoint tcp://localhost:{pa}")
            sy.wait_log(rf"SRV {NAME}: tcp://localhost:{pa} \(priority 0, weight 10\) \(TTL 1 s\)")
            send(a, "a-1", 1)
            check([json.loads(l)["id"] for l in sy.read_lines(1, 20)] == ["a-1"], "A's message arrives")

            dns.stop()
            sy.wait_log(rf"cannot resolve SRV {NAME}: .*keeping its 1 endpoint", timeout=20)
            send(a, "a-2", 2)
            check([json.loads(l)["id"] for l in sy.read_lines(1, 20)] == ["a-2"], "A stays connected")

            dns = Dnsmasq(dns_port, [(NAME, "localhost", pb, 0, 10)])
            b.wait_subscription(timeout=20)
            # A's side of the closed connection: XPUB reports the subscription gone.
            unsub = wait_for(lambda: a.sock.poll(100) and a.sock.recv(), 20, "A's unsubscription")
            check(unsub[:1] == b"\x00", f"A sees an unsubscription: {unsub!r}")
            sy.wait_log(rf"SRV {NAME}: removed endpoint tcp://localhost:{pa}")
            send(a, "a-3", 3)  # nobody listens at A any more
            send(b, "b-1", 1)
            check([json.loads(l)["id"] for l in sy.read_lines(1, 20)] == ["b-1"], "B's message arrives")
            g = wait_for(lambda: (lambda g: g if g.get("endpoints_connected") == 1 else None)(gauges(http_port)),
                         10, "one endpoint connected")
            check(g.get("srv_endpoints") == 1, f"gauges {g}")
        finally:
            rc = sy.stop()
            dns.stop()
            a.close()
            b.close()
        check(rc == 0, f"exit {rc}\n{sy.stderr()[-3000:]}")
        check(sy.rest() == [], "A's last message never arrived")
        stats = sy.stats()
        want = {"srv_added": 2, "srv_removed": 1}
        for name, value in want.items():
            got = stats.get(("zmq-sub", name, ""))
            check(got == value, f"{name} = {got}, want {value}\n{stats}")
        check(stats.get(("zmq-sub", "srv_failures", "")) >= 1, f"failures counted: {stats}")
        check(stats.get(("zmq-sub", "zmq_received", "")) == 3, f"a-1, a-2, b-1 received: {stats}")
    print("ok: SRV records followed without a restart")


if __name__ == "__main__":
    main()
