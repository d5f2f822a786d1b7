#!/usr/bin/python3
"""zmq-sub with many endpoints (one SUB socket each, fedmsg topology), which it waits on
through an epoll set of the sockets' ZMQ_FD and a ready list:

1. 200 independent python3-zmq publishers send 25 messages each, interleaved in a random
   order: every message arrives exactly once, each publisher's messages in its own order,
   and the sequence tracker sees 200 publishers and no gap.
2. Idle wake-up: after the publishers were quiet for 2 s (the scenario under test, not a
   synchronisation), one message on one publisher out of the 200 must still arrive: ZMQ_FD
   signals edges only, so a socket the source forgot to re-arm would never be read again.
   Repeated for a few publishers, then a burst on several at once."""
import json
import os
import random
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import zmq  # noqa: E402
from zmqtest import TOPIC, Publisher, Switchyard, check, envelope, write_config  # noqa: E402

T = TOPIC.encode()
PUBLISHERS = 200
PER_PUBLISHER = 25
IDLE_S = 2.0
ARRIVAL_DEADLINE_S = 10.0


def main():
    ctx = zmq.Context()
    pubs = []
    try:
        for _ in range(PUBLISHERS):
            # Port 0: the OS picks a free port per publisher (no collisions between them).
            pubs.append(Publisher("tcp://127.0.0.1:*", ctx=ctx))
        endpoints = [p.sock.getsockopt(zmq.LAST_ENDPOINT).decode() for p in pubs]
        check(len(set(endpoints)) == PUBLISHERS, "distinct endpoints")
        run(pubs, endpoints)
    finally:
        for p in pubs:
            p.sock.setsockopt(zmq.LINGER, 0)
            p.close()
        ctx.term()


def run(pubs, endpoints):
    rng = random.Random(42)
    nexti = [1] * PUBLISHERS  # fedmsg's `i`, per publisher

    def send(k):
        i = nexti[k]
        nexti[k] += 1
        msg_id = f"2026-p{k}-{i}"
        pubs[k].send([T, envelope(b'{"p":%d,"i":%d}' % (k, i), msg_id=msg_id, i=i,
                                  username=f"u{k}")])
        return msg_id

    with tempfile.TemporaryDirectory() as tmp:
        eps = ", ".join(f'"{e}"' for e in endpoints)
        cfg = write_config(tmp, f"""version: 1
pipelines:
  many:
    input:
      type: zmq-sub
      endpoints: [{eps}]
      hwm: 0
    outputs:
      - type: stdout
""")
        sy = Switchyard(["run", cfg])
        try:
            for p in pubs:
                p.wait_subscription(timeout=30)

            # 1. Interleaved traffic on every publisher.
            order = [k for k in range(PUBLISHERS) for _ in range(PER_PUBLISHER)]
            rng.shuffle(order)
            sent = [send(k) for k in order]
            lines = sy.read_lines(len(sent), timeout=120)
            got = [json.loads(l)["id"] for l in lines]
            check(sorted(got) == sorted(sent), "every message arrives exactly once")
            last = [0] * PUBLISHERS
            for msg_id in got:
                _, p, i = msg_id.split("-")
                k, i = int(p[1:]), int(i)
                check(i == last[k] + 1, f"publisher {k}: {i} after {last[k]} (order)")
                last[k] = i
            check(last == [PER_PUBLISHER] * PUBLISHERS, "every publisher complete")

            # 2. Idle, then one message on a single publisher; a few times, then a burst.
            wake = rng.sample(range(PUBLISHERS), 4)
            for n, k in enumerate(wake):
                time.sleep(IDLE_S if n == 0 else 0.3)  # the idle period is the scenario
                t0 = time.monotonic()
                msg_id = send(k)
                line = sy.read_lines(1, timeout=ARRIVAL_DEADLINE_S)[0]
                check(json.loads(line)["id"] == msg_id, f"got {line!r}, want {msg_id}")
                sent.append(msg_id)
                print(f"idle wake-up on publisher {k}: {1000 * (time.monotonic() - t0):.1f} ms")
            time.sleep(IDLE_S)
            burst = [send(k) for k in rng.sample(range(PUBLISHERS), 10)]
            got_burst = [json.loads(l)["id"] for l in sy.read_lines(len(burst), timeout=ARRIVAL_DEADLINE_S)]
            check(sorted(got_burst) == sorted(burst), f"burst after idle: {got_burst} vs {burst}")
            sent += burst
        finally:
            rc = sy.stop()
        check(rc == 0, f"exit {rc}\n{sy.stderr()[-3000:]}")
        check(sy.rest() == [], "no extra output")
        stats = sy.stats()
        check(stats.get(("zmq-sub", "zmq_received", "")) == len(sent), f"zmq_received: {stats}")
        check(stats.get(("zmq-sub", "seq_missing", ""), 0) == 0, "no sequence gaps")
        check(stats.get(("zmq-sub", "seq_duplicates", ""), 0) == 0, "no duplicates")
        check(stats.get(("zmq-sub", "seq_reordered", ""), 0) == 0, "no reordering")
        pubs_seen = stats.get(("zmq-sub", "publishers", ""))
        check(pubs_seen == PUBLISHERS, f"publishers gauge {pubs_seen}, want {PUBLISHERS}")
        drops = {k: v for k, v in stats.items() if k[0] == "zmq-sub" and k[1] == "dropped" and v}
        check(not drops, f"unexpected drops {drops}")
    print(f"ok: {len(sent)} messages from {PUBLISHERS} publishers, each once and in order")


if __name__ == "__main__":
    main()
