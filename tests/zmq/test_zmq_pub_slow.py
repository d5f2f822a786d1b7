#!/usr/bin/python3
"""What a slow subscriber costs is counted.

stdin -> zmq-pub (no_drop: false, hwm 10) with one python3-zmq SUB that reads 100
messages a second while about 2,000 a second are published (4,000 of 4 KB). libzmq alone
drops silently at the high-water mark; zmq-pub sees the full pipe (ZMQ_XPUB_NODROP + a
non-blocking send):
* slow_subscriber: drop -- the message goes to nobody and is counted. When the subscriber
  has read everything that was sent: received == zmq-pub's `sent` and
  dropped{subscriber_full} == N - received, exactly;
* slow_subscriber: skip (default, libzmq's own way) -- the subscriber misses messages,
  zmq-pub counts the episodes (subscriber_skips >= 1), every message counts as sent.
What arrives is in order, without duplicates."""
import json
import os
import subprocess
import sys
import threading
import time

import zmq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from zmqtest import Subscriber, Switchyard, check, free_port, write_config  # noqa: E402

N = 4000
RATE = 2000  # messages a second into the router
SLOW = 100   # messages a second the subscriber reads while the router publishes


def run(tmp, policy):
    port = free_port()
    cfg = write_config(tmp, f"""version: 1
pipelines:
  slow:
    input: {{type: stdin}}
    outputs:
      - type: zmq-pub
        endpoints: ["tcp://127.0.0.1:{port}"]
        hwm: 10
        no_drop: false
        slow_subscriber: {policy}
        wait_for_subscriber: 30
""", f"slow-{policy}.yaml")
    sub = Subscriber(f"tcp://127.0.0.1:{port}")
    sub.sock.setsockopt(zmq.RCVHWM, 10)
    sy = Switchyard(["run", "--stats-interval", "1", cfg], stdin=subprocess.PIPE)
    pad = "x" * 4000
    fed = threading.Event()

    def feed():
        # Pacing to about RATE messages a second (not synchronisation).
        for n in range(N):
            sy.proc.stdin.write((json.dumps({"topic": "org.fedoraproject.dev.demo.slow",
                                             "body": {"n": n, "pad": pad}}) + "\n").encode())
            if n % 100 == 99:
                sy.proc.stdin.flush()
                time.sleep(100 / RATE)
        sy.proc.stdin.flush()
        fed.set()

    got = []
    feeder = threading.Thread(target=feed, daemon=True)
    try:
        feeder.start()  # zmq-pub waits for the subscription before the first message

        def settled():
            st = sy.stats()
            return st.get(("zmq-pub", "sent", ""), 0) + st.get(("zmq-pub", "dropped", "subscriber_full"), 0) == N

        # Slow while the router publishes: 100 a second.
        deadline = time.monotonic() + 60
        next_check = 0.0
        while True:
            now = time.monotonic()
            if now >= next_check:
                check(sy.proc.poll() is None, "switchyard exited\n" + sy.stderr()[-3000:])
                check(now < deadline, f"zmq-pub did not settle {N} messages\n" + sy.stderr()[-3000:])
                if fed.is_set() and settled():
                    break
                next_check = now + 0.5
            if sub.sock.poll(10, zmq.POLLIN):
                got.append(sub.sock.recv_multipart())
                time.sleep(1 / SLOW)  # pacing the slow reader
        sent = sy.stats()[("zmq-pub", "sent", "")]
        # Then read everything that was sent, fast.
        deadline = time.monotonic() + 60
        if policy == "drop":
            while len(got) < sent:
                check(time.monotonic() < deadline, f"received {len(got)} of {sent} sent")
                if sub.sock.poll(100, zmq.POLLIN):
                    got.append(sub.sock.recv_multipart())
        # (skip: how many will come is not known; the idle second below ends it)
        while sub.sock.poll(1000, zmq.POLLIN):
            check(time.monotonic() < deadline, "still receiving")
            got.append(sub.sock.recv_multipart())
        sy.proc.stdin.close()
        rc = sy.wait(60)
    finally:
        sub.close()
        if sy.proc.poll() is None:
            sy.stop()
    check(rc == 0, f"exit {rc}\n{sy.stderr()[-3000:]}")
    st = sy.stats()
    sent = st.get(("zmq-pub", "sent", ""), 0)
    dropped = st.get(("zmq-pub", "dropped", "subscriber_full"), 0)
    ns = [json.loads(f1)["msg"]["n"] for _, f1 in got]
    check(len(set(ns)) == len(ns) and ns == sorted(ns), "in order, no duplicates")
    others = {k: v for k, v in st.items() if k[0] == "zmq-pub" and k[1] == "dropped" and v and
              k[2] != "subscriber_full"}
    check(not others, f"other drops: {others}")
    if policy == "drop":
        check(sent == len(got), f"sent {sent}, received {len(got)}")
        check(dropped == N - len(got), f"dropped{{subscriber_full}} {dropped}, never received {N - len(got)}")
        check(dropped > 0, "the subscriber was slow enough to lose some")
        check("dropped (subscriber_full)" in sy.stderr(), "logged")
        print(f"ok (drop): {N} published, {len(got)} received by the slow subscriber, "
              f"{dropped} counted as dropped{{subscriber_full}}: exactly the ones it never got")
    else:
        skips = st.get(("zmq-pub", "subscriber_skips", ""), 0)
        check(sent == N and dropped == 0, f"sent {sent} dropped {dropped}")
        check(len(got) < N and skips >= 1, f"received {len(got)}, subscriber_skips {skips}")
        check("skips messages until" in sy.stderr(), "logged")
        print(f"ok (skip): {N} published, {len(got)} received, {skips} skip episode(s) counted")


def main():
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        run(tmp, "drop")
        run(tmp, "skip")


if __name__ == "__main__":
    main()
