#!/usr/bin/python3
"""zmq-sub's SRV priorities against Debian's dnsmasq: the best priority's target (A) has
nobody listening, so after the 10 s fallback time the next priority's target (B) is
connected as well and its messages arrive; once A listens and zmq-sub's connection to it is
up, the fallback target B is disconnected again (B sees the unsubscription) and A's
messages arrive."""
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from subtest import TOPIC, Dnsmasq, Publisher, Switchyard, check, free_port, wait_for, write_config  # noqa: E402
from zmqtest import envelope  # noqa: E402

T = TOPIC.encode()
NAME = "_fedmsg._tcp.priority.test"


def main():
    pa, pb, dns_port = free_port(), free_port(), free_port()
    b = Publisher(f"tcp://127.0.0.1:{pb}")
    dns = Dnsmasq(dns_port, [(NAME, "localhost", pa, 0, 10), (NAME, "localhost", pb, 10, 10)])
    a = None
    with tempfile.TemporaryDirectory() as tmp:
        cfg = write_config(tmp, f"""version: 1
pipelines:
  srv:
    input:
      type: zmq-sub
      srv: [{NAME}]
      dns_servers: ["127.0.0.1:{dns_port}"]
    outputs:
      - type: stdout
""")
        sy = Switchyard(["run", cfg])
        try:
            started = time.monotonic()
            sy.wait_log(rf"SRV {NAME}: added endpoint tcp://localhost:{pa}")
            b.wait_subscription(timeout=30)
            waited = time.monotonic() - started
            check(waited >= 9.5, f"the fallback came after {waited:.1f} s, before 10 s")
            sy.wait_log(rf"SRV {NAME}: no target of the 1 best priority is reachable for 10 s")
            b.send([T, envelope(b"{}", msg_id="b-1", i=1)])
            check([json.loads(l)["id"] for l in sy.read_lines(1, 20)] == ["b-1"], "B's message arrives")

            a = Publisher(f"tcp://127.0.0.1:{pa}")
            a.wait_subscription(timeout=20)
            unsub = wait_for(lambda: b.sock.poll(100) and b.sock.recv(), 20, "B's unsubscription")
            check(unsub[:1] == b"\x00", f"B sees an unsubscription: {unsub!r}")
            sy.wait_log(rf"SRV {NAME}: the best priority is reachable again")
            a.send([T, envelope(b"{}", msg_id="a-1", i=1)])
            check([json.loads(l)["id"] for l in sy.read_lines(1, 20)] == ["a-1"], "A's message arrives")
        finally:
            rc = sy.stop()
            dns.stop()
            b.close()
            if a is not None:
                a.close()
        check(rc == 0, f"exit {rc}\n{sy.stderr()[-3000:]}")
        stats = sy.stats()
        for name, value in {"srv_added": 2, "srv_removed": 1}.items():
            got = stats.get(("zmq-sub", name, ""))
            check(got == value, f"{name} = {got}, want {value}\n{stats}")
    print("ok: the next priority is a fallback only while the best one is unreachable")


if __name__ == "__main__":
    main()
