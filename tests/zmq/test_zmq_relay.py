#!/usr/bin/python3
"""Done-when 5 (relay): examples/pipelines/relay.yaml, with its two well-known ports swapped
for free ones, relays like fedmsg-relay: an active python publisher and `switchyard logger`
connect to the inbound side, a python subscriber and `switchyard tail` connect to the
outbound side, and every envelope comes out byte-identical."""
import json
import os
import queue
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from zmqtest import (SOURCE_ROOT, TOPIC, Publisher, Subscriber, Switchyard, check, envelope,  # noqa: E402
                     free_port, write_config)

T = TOPIC.encode()


def warm_up(pub, received, timeout=30.0):
    """Sends probes until @received() sees one: the outbound subscription has arrived."""
    deadline = time.monotonic() + timeout
    n = 0
    while time.monotonic() < deadline:
        n += 1
        pub.send([T, envelope(b'{"probe":%d}' % n, msg_id=f"2026-probe-{n}", i=None)])
        if received(0.1):
            return
    raise AssertionError("the relay never delivered a probe")


def main():
    with open(os.path.join(SOURCE_ROOT, "examples", "pipelines", "relay.yaml"), encoding="utf-8") as f:
        text = f.read()
    p_in, p_out = free_port(), free_port()
    for old, new in (("tcp://*:2003", f"tcp://127.0.0.1:{p_in}"), ("tcp://*:4001", f"tcp://127.0.0.1:{p_out}")):
        check(text.count(old) == 1, f"relay.yaml should name {old} once")
        text = text.replace(old, new)
    inbound, outbound = f"tcp://127.0.0.1:{p_in}", f"tcp://127.0.0.1:{p_out}"

    with tempfile.TemporaryDirectory() as tmp:
        relay = Switchyard(["run", write_config(tmp, text, "relay.yaml")])
        tail = None
        try:
            relay.wait_log(r"bound tcp://127\.0\.0\.1:%d" % p_out)
            pub = Publisher(inbound, bind=False)  # active mode: the publisher connects
            pub.wait_subscription()
            sub = Subscriber(outbound)

            def sub_got(t):
                if sub.sock.poll(int(t * 1000)):
                    sub.sock.recv_multipart()
                    return True
                return False
            warm_up(pub, sub_got)
            while sub_got(0.2):  # drain the remaining probes
                pass

            raws = []
            for n in range(300):
                if n % 2:
                    raw = envelope(b'{"n":%d,"big":123456789012345678901234567890,"f":1e+16}' % n,
                                   msg_id=f"2026-r{n}", i=n)
                else:
                    raw = json.dumps({"topic": TOPIC, "msg": {"\u00e9": n}, "msg_id": f"2026-r{n}",
                                      "timestamp": 1.5, "i": n, "username": "someone"}).encode()
                raws.append(raw)
                pub.send([T, raw])
            got = sub.recv_n(len(raws))
            for n, (raw, (f0, f1)) in enumerate(zip(raws, got)):
                check(f0 == T and f1 == raw, f"message {n} changed: {raw!r} -> {f1!r}")

            # fedmsg-logger -> relay -> fedmsg-tail, with our own commands.
            tail = Switchyard(["tail", outbound])
            def tail_got(t):
                try:
                    tail.lines.get(timeout=t)
                    return True
                except queue.Empty:
                    return False
            warm_up(pub, tail_got)
            lg = Switchyard(["logger", "--endpoint", inbound, "--topic", TOPIC + ".logged", "--message",
                             "via the relay", "--wait", "30"])
            check(lg.wait(60) == 0, f"logger failed\n{lg.stderr()[-2000:]}")
            while True:
                out = json.loads(tail.read_lines(1)[0])
                if "probe" not in out["body"]:
                    break
            check(out["topic"] == TOPIC + ".logged" and out["body"] == {"log": "via the relay"}, out)
        finally:
            if tail is not None:
                tail.stop()
            rc = relay.stop()
        check(rc == 0, f"relay exit {rc}\n{relay.stderr()[-3000:]}")
        stats = relay.stats()
        check(stats.get(("zmq-sub", "dropped", ""), 0) == 0, "relay dropped nothing on input")
        check(stats.get(("zmq-pub", "envelopes_passed_through", ""), 0) >= len(raws) + 1, f"stats {stats}")
    print(f"ok: relay.yaml relays {len(raws)} envelopes byte-identical, and logger -> relay -> tail")


if __name__ == "__main__":
    main()
